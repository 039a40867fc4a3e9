package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2/clientcredentials"

	"github.com/pollsse/caddy-poll-sse/poller"
)

// tokenEndpoint issues tokens tok-1, tok-2, … valid for lifetime, each after delay.
type tokenEndpoint struct {
	srv      *httptest.Server
	lifetime time.Duration
	delay    time.Duration
	issued   atomic.Int64
	status   int // answered instead of a token when not 0
}

func newTokenEndpoint(t *testing.T, lifetime time.Duration) *tokenEndpoint {
	t.Helper()
	e := &tokenEndpoint{lifetime: lifetime}
	e.srv = httptest.NewServer(http.HandlerFunc(e.serve))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *tokenEndpoint) serve(w http.ResponseWriter, r *http.Request) {
	time.Sleep(e.delay)
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.FormValue("client_id"), r.FormValue("client_secret")
	}
	if id != "poller" || secret != "s3cret" {
		http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
		return
	}
	if e.status != 0 {
		http.Error(w, `{"error":"server_error","echo":"client_secret=s3cret"}`, e.status)
		return
	}
	n := e.issued.Add(1)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"access_token": fmt.Sprintf("tok-%d", n), "token_type": "Bearer", "expires_in": int(e.lifetime.Seconds()),
	})
}

func (e *tokenEndpoint) cache() *tokenCache {
	conf := &clientcredentials.Config{TokenURL: e.srv.URL, ClientID: "poller", ClientSecret: "s3cret"}
	return newTokenCache(&oauth2Settings{conf: conf}, poller.NewClient())
}

// TestTokenSharedByConcurrentLoops checks that many loops asking for a token at once
// cause one request to the token endpoint, and all get its token.
func TestTokenSharedByConcurrentLoops(t *testing.T) {
	t.Parallel()
	e := newTokenEndpoint(t, time.Minute)
	e.delay = 50 * time.Millisecond
	c := e.cache()
	const loops = 200
	var wg sync.WaitGroup
	got := make([]string, loops)
	for i := range loops {
		wg.Go(func() {
			tok, err := c.token(context.Background())
			if err != nil {
				t.Error(err)
				return
			}
			got[i] = tok.AccessToken
		})
	}
	wg.Wait()
	if n := e.issued.Load(); n != 1 {
		t.Errorf("%d loops caused %d token requests, want 1", loops, n)
	}
	for i, tok := range got {
		if tok != "tok-1" {
			t.Fatalf("loop %d got %q, want tok-1", i, tok)
		}
	}
}

// TestTokenRenewedBeforeExpiry checks that a 60 s token is reused until 54 s of its life
// have passed and renewed then, before it expires.
func TestTokenRenewedBeforeExpiry(t *testing.T) {
	t.Parallel()
	e := newTokenEndpoint(t, time.Minute)
	c := e.cache()
	var offset atomic.Int64
	c.now = func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	steps := []struct {
		at   time.Duration
		want string
	}{{0, "tok-1"}, {30 * time.Second, "tok-1"}, {53 * time.Second, "tok-1"}, {55 * time.Second, "tok-2"}, {100 * time.Second, "tok-2"}, {110 * time.Second, "tok-3"}}
	for _, s := range steps {
		offset.Store(int64(s.at))
		tok, err := c.token(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if tok.AccessToken != s.want {
			t.Errorf("at %v: token %s, want %s", s.at, tok.AccessToken, s.want)
		}
	}
}

// bearerUpstream accepts only the token it is told, and records POST bodies.
type bearerUpstream struct {
	mu     sync.Mutex
	accept string
	bodies []string
	hits   int
}

func (u *bearerUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	u.mu.Lock()
	defer u.mu.Unlock()
	u.hits++
	if r.Header.Get("Authorization") != "Bearer "+u.accept {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	u.bodies = append(u.bodies, string(b))
	_, _ = w.Write([]byte(`{}`))
}

func (u *bearerUpstream) set(tok string) {
	u.mu.Lock()
	u.accept = tok
	u.mu.Unlock()
}

// TestUnauthorizedRenewsOnceAndRetries checks that when the upstream starts refusing a
// token, however young, concurrent POST polls renew it once between them, are sent again
// with their bodies, and succeed, again at a second revocation; and that when the upstream
// refuses every token, a renewal it refused too is not renewed at each poll.
func TestUnauthorizedRenewsOnceAndRetries(t *testing.T) {
	t.Parallel()
	e := newTokenEndpoint(t, time.Hour)
	c := e.cache()
	up := &bearerUpstream{accept: "tok-1"}
	srv := httptest.NewServer(up)
	t.Cleanup(srv.Close)
	rt := http.DefaultTransport
	post := func(body string) (*http.Response, error) {
		req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(body))
		return c.roundTrip(rt, req)
	}
	if resp, err := post("first"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("first poll: %v %v", resp, err)
	}
	up.set("tok-2")
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			resp, err := post(fmt.Sprintf("poll %d", i))
			if err != nil || resp.StatusCode != 200 {
				t.Errorf("poll %d after the token was revoked: %v %v", i, resp, err)
				return
			}
			resp.Body.Close()
		})
	}
	wg.Wait()
	if n := e.issued.Load(); n != 2 {
		t.Errorf("token requests %d, want 2: one renewal for 50 refused polls", n)
	}
	up.mu.Lock()
	for i := range 50 {
		if !strings.Contains(strings.Join(up.bodies, "\n"), fmt.Sprintf("poll %d", i)) {
			t.Errorf("body of poll %d never arrived", i)
		}
	}
	up.mu.Unlock()
	up.set("tok-3") // revoked again: the renewal was taken, so it is renewed too
	if resp, err := post("after a second revocation"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("poll after a second revocation: %v %v", resp, err)
	}
	up.set("never")
	for range 5 {
		resp, err := post("refused")
		if err != nil || resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("poll refused by the upstream: %v %v; want its 401", resp, err)
		}
		resp.Body.Close()
	}
	if n := e.issued.Load(); n != 4 {
		t.Errorf("token requests %d after 5 polls refused whatever the token, want 4: one renewal, then none", n)
	}
}

// TestTokenFailureReason checks that a failed token request is told to clients by its
// status alone, never with the endpoint's answer, and that the loops waiting on it share
// its failure rather than each asking again.
func TestTokenFailureReason(t *testing.T) {
	t.Parallel()
	e := newTokenEndpoint(t, time.Hour)
	e.status = http.StatusBadGateway
	e.delay = 50 * time.Millisecond
	c := e.cache()
	var asked atomic.Int64
	c.client = &http.Client{Transport: countingTransport{&asked}}
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() {
			if _, err := c.token(context.Background()); err == nil {
				t.Error("got a token from a failing endpoint")
			}
		})
	}
	wg.Wait()
	// x/oauth2 asks twice, trying the credentials in the header, then in the body.
	if n := asked.Load(); n != 2 {
		t.Errorf("100 loops waiting on a failing endpoint made %d requests, want the 2 of one token request", n)
	}
	_, err := c.token(context.Background())
	var r poller.Reasoner
	if !errors.As(err, &r) || r.Reason() != "oauth2 token endpoint answered 502" {
		t.Fatalf("error %v; want the reason oauth2 token endpoint answered 502", err)
	}
	if strings.Contains(r.Reason(), "s3cret") {
		t.Error("reason holds the secret")
	}
}

// TestSettingsKeyFollowsCredentials checks that a route's hub is keyed on its OAuth2
// credentials and transport as resolved, never on the secret in clear: a rotated
// secret or another trust pool is another hub, the same ones are the same hub.
func TestSettingsKeyFollowsCredentials(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "secret")
	write := func(v string) {
		if err := os.WriteFile(secret, []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg := func(transport string) string {
		return `{"upstream": "https://127.0.0.1:9/x", "oauth2": {"token_url": "https://127.0.0.1:9/t", "client_id": "poller",
			"client_secret": "{file.` + secret + `}", "scopes": ["a"]}` + transport + `}`
	}
	key := func(raw string) string {
		h, err := loadHandler(t, raw)
		if err != nil {
			t.Fatal(err)
		}
		return h.hubKey
	}
	write("s3cret-1")
	k1 := key(cfg(""))
	if key(cfg("")) != k1 {
		t.Fatal("the same credentials gave two hubs")
	}
	if key(cfg(`, "transport": {"protocol": "http", "tls": {"server_name": "api.internal"}}`)) == k1 {
		t.Error("another transport kept the hub")
	}
	write("s3cret-2")
	if key(cfg("")) == k1 {
		t.Error("a rotated client secret kept the hub")
	}
	if strings.Contains(k1, "s3cret") {
		t.Error("key holds the secret")
	}
}

// countingTransport counts the requests it sends.
type countingTransport struct{ n *atomic.Int64 }

func (c countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return http.DefaultTransport.RoundTrip(req)
}
