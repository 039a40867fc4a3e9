package tests

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestExpiresClosesStream checks `expires`: a stream whose expiry, in Unix seconds or RFC
// 3339, lies 3 s ahead gets its document and closes within 1 s of that moment, its last
// event an `upstream` event with status 401; a request whose expiry is past, missing or
// unreadable gets 401 and no stream. It runs on a stream handed over to the shared
// writers, and on one written through the ResponseWriter behind `intercept`.
func TestExpiresClosesStream(t *testing.T) {
	t.Parallel()
	for name, middleware := range map[string]string{"handed over": "", "ResponseWriter": "intercept {\n\t\t@err status 5xx\n\t\treplace_status @err 502\n\t}"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			checkExpires(t, middleware)
		})
	}
}

func checkExpires(t *testing.T, middleware string) {
	u := newUpstream(t, map[string]any{"n": 1})
	caddy := startCaddy(t, "route {\n\t"+middleware+"\n\t"+indent(pollSSE(u.url(), "interval 100ms", "expires {http.request.header.X-Expires}"))+"\n}")

	now := time.Now()
	for _, v := range []string{"", "soon", strconv.FormatInt(now.Add(-time.Second).Unix(), 10), now.Add(-time.Minute).Format(time.RFC3339)} {
		c := dialSSE(t, caddy.url(""), withHeader("X-Expires", v))
		if c.resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("expires %q: status %d, want 401", v, c.resp.StatusCode)
		}
		c.close()
		if status, _, _ := getJSON(t, caddy, "/", http.Header{"X-Expires": {v}}); status != http.StatusUnauthorized {
			t.Errorf("JSON GET, expires %q: status %d, want 401", v, status)
		}
	}
	var wg sync.WaitGroup
	for _, format := range []func(time.Time) string{
		func(at time.Time) string { return strconv.FormatInt(at.Unix(), 10) },
		func(at time.Time) string { return at.Format(time.RFC3339Nano) },
	} {
		at := time.Now().Add(3 * time.Second).Truncate(time.Second)
		c := dialSSE(t, caddy.url(""), withHeader("X-Expires", format(at)))
		if c.resp.StatusCode != http.StatusOK {
			t.Fatalf("expires %s: status %d", format(at), c.resp.StatusCode)
		}
		wg.Go(func() {
			c.waitFor([]byte(`{"n":1}`), 5*time.Second)
			ended, err := c.waitEnd(10 * time.Second)
			if err != nil {
				t.Errorf("expires %s: the stream did not end: %v", format(at), err)
				return
			}
			if d := ended.Sub(at); d < -100*time.Millisecond || d > time.Second {
				t.Errorf("expires %s: the stream ended %v after it", format(at), d)
			}
			if last := c.events[len(c.events)-1]; last.Type != "upstream" || !strings.Contains(last.Data, `"status":401`) {
				t.Errorf("expires %s: the last event is %s %q, want upstream with status 401", format(at), last.Type, last.Data)
			}
		})
	}
	wg.Wait()
}

// grantUpstream answers 200 with a document to the bearer tokens it accepts, 401 to the
// others, and records the token of every request.
type grantUpstream struct {
	srv *httptest.Server
	mu  sync.Mutex
	ok  map[string]bool
	hit []grantHit
}

type grantHit struct {
	token string
	at    time.Time
}

func newGrantUpstream(t *testing.T, tokens ...string) *grantUpstream {
	u := &grantUpstream{ok: map[string]bool{}}
	for _, tok := range tokens {
		u.ok[tok] = true
	}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := r.Header.Get("Authorization")
		u.mu.Lock()
		u.hit = append(u.hit, grantHit{tok, time.Now()})
		ok := u.ok[tok]
		u.mu.Unlock()
		if !ok {
			http.Error(w, "bad token", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"for":%q}`, tok)
	}))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *grantUpstream) set(tok string, ok bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.ok[tok] = ok
}

// hitsSince counts the requests with tok since from.
func (u *grantUpstream) hitsSince(tok string, from time.Time) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	n := 0
	for _, h := range u.hit {
		if h.token == tok && !h.at.Before(from) {
			n++
		}
	}
	return n
}

// TestForwardDeniedClosesIdentity checks that with `forward`, an upstream that starts
// answering 401 to one identity's credential tells that identity's streams (an upstream
// event with status 401), closes them, gets no further poll with that credential, and
// answers that identity's new streams and JSON GETs with 401; another identity's stream
// goes on.
func TestForwardDeniedClosesIdentity(t *testing.T) {
	t.Parallel()
	u := newGrantUpstream(t, "Bearer a", "Bearer b")
	caddy := startCaddy(t, pollSSE(u.srv.URL, "interval 100ms", "linger 5s", "forward Authorization"))

	a := dialSSE(t, caddy.url(""), withHeader("Authorization", "Bearer a"))
	b := dialSSE(t, caddy.url(""), withHeader("Authorization", "Bearer b"))
	a.waitFor([]byte(`{"for":"Bearer a"}`), 5*time.Second)
	b.waitFor([]byte(`{"for":"Bearer b"}`), 5*time.Second)

	u.set("Bearer a", false)
	r, _ := a.waitEvent("upstream 401", 5*time.Second, isUpstream(t, func(s upstreamStatus) bool { return !s.OK && s.Status == http.StatusUnauthorized }))
	told := time.Now()
	if _, err := a.waitEnd(3 * time.Second); err != nil {
		t.Fatalf("the denied identity's stream stayed open after %s: %v", r.Data, err)
	}
	for _, h := range []http.Header{{"Accept": {"text/event-stream"}}, {}} {
		h.Set("Authorization", "Bearer a")
		if status, _, _ := getJSON(t, caddy, "/", h); status != http.StatusUnauthorized {
			t.Errorf("new request of the denied identity: status %d, want 401", status)
		}
	}
	c := dialSSE(t, caddy.url(""), withHeader("Authorization", "Bearer a"))
	if c.resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("new stream of the denied identity: status %d, want 401", c.resp.StatusCode)
	}
	c.close()
	time.Sleep(time.Second)
	if n := u.hitsSince("Bearer a", told); n > 0 {
		t.Errorf("%d polls with the refused credential after it was refused", n)
	}
	if got := b.quiet(500 * time.Millisecond); len(ofType(got, "upstream")) > 0 {
		t.Errorf("the other identity was told of trouble: %s", summarize(got))
	}
	if n := u.hitsSince("Bearer b", told); n == 0 {
		t.Error("the other identity's loop stopped polling")
	}
}
