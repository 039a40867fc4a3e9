package poller

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func newPoller(t *testing.T, cfg Config) *Poller {
	t.Helper()
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// outcomeServer answers each path of TestPollOutcomes.
func outcomeServer(t *testing.T) *httptest.Server {
	t.Helper()
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(`{}`)) }))
	t.Cleanup(other.Close)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			_, _ = w.Write([]byte(`{"a":1}`))
		case "/500":
			w.WriteHeader(500)
		case "/big":
			_, _ = w.Write([]byte(strings.Repeat(" ", 2048)))
		case "/slow":
			<-r.Context().Done()
		case "/away":
			http.Redirect(w, r, other.URL+"/x", http.StatusFound)
		case "/here":
			http.Redirect(w, r, "/ok", http.StatusFound)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestPollOutcomes(t *testing.T) {
	t.Parallel()
	srv := outcomeServer(t)
	tests := []struct {
		path, reason, body string
		status             int
	}{
		{"/ok", "", `{"a":1}`, 200},
		{"/here", "", `{"a":1}`, 200},
		{"/500", "upstream answered Internal Server Error", "", 500},
		{"/big", "body too large: over 1024 bytes", "", 200},
		{"/slow", "timeout", "", 0},
		{"/away", "redirect to another host refused", "", 0},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			t.Parallel()
			p := newPoller(t, Config{URL: srv.URL + tc.path, MaxBody: 1024, Timeout: 200 * time.Millisecond})
			res := p.Poll(context.Background())
			var perr *Error
			switch {
			case tc.reason == "" && res.Err != nil:
				t.Fatalf("unexpected error %v", res.Err)
			case tc.reason != "" && (!errors.As(res.Err, &perr) || perr.Reason != tc.reason):
				t.Fatalf("error %v; want reason %q", res.Err, tc.reason)
			}
			if string(res.Body) != tc.body || res.Status != tc.status {
				t.Fatalf("body %q status %d; want %q %d", res.Body, res.Status, tc.body, tc.status)
			}
		})
	}
}

func TestHeaderUpIsSent(t *testing.T) {
	t.Parallel()
	got := make(chan http.Header, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Clone()
		_, _ = w.Write([]byte(`{}`))
	}))
	t.Cleanup(srv.Close)
	p := newPoller(t, Config{URL: srv.URL, Header: http.Header{"X-Api-Key": {"k1"}}})
	if res := p.Poll(context.Background()); res.Err != nil {
		t.Fatal(res.Err)
	}
	h := <-got
	if h.Get("X-Api-Key") != "k1" || h.Get("Accept") != "application/json" {
		t.Fatalf("headers %v", h)
	}
}

func TestRunPollsOncePerInterval(t *testing.T) {
	t.Parallel()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		n.Add(1)
		_, _ = w.Write([]byte(`{}`))
	}))
	t.Cleanup(srv.Close)
	p := newPoller(t, Config{URL: srv.URL, Interval: 50 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	var results atomic.Int64
	p.Run(ctx, func(Result) { results.Add(1) })
	if got := n.Load(); got < 5 || got > 12 {
		t.Fatalf("%d requests in 500ms at a 50ms interval", got)
	}
	if results.Load() > n.Load() {
		t.Fatal("more results than requests")
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	t.Parallel()
	for _, cfg := range []Config{
		{URL: "ftp://example.com/x"},
		{URL: "/relative"},
		{URL: "http://"},
		{URL: "http://127.0.0.1/x", Method: "PUT"},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}

func TestRequestShape(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, method, body string
		header             http.Header
		wantCT, wantAccept string
	}{
		{"POST carries body as JSON", http.MethodPost, `{"q":1}`, nil, "application/json", "application/json"},
		{"POST keeps configured Content-Type", http.MethodPost, "q=1", http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, "application/x-www-form-urlencoded", "application/json"},
		{"non-canonical keys override defaults", http.MethodPost, `{}`, http.Header{"content-type": {"text/plain"}, "accept": {"*/*"}}, "text/plain", "*/*"},
		{"GET has no body", http.MethodGet, "", nil, "", "application/json"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec := new(recorder)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				rec.add(r)
				_, _ = w.Write([]byte(`{}`))
			}))
			t.Cleanup(srv.Close)
			p := newPoller(t, Config{URL: srv.URL, Method: tc.method, Body: []byte(tc.body), Header: tc.header})
			for range 2 {
				if res := p.Poll(context.Background()); res.Err != nil {
					t.Fatal(res.Err)
				}
			}
			for _, r := range rec.all() {
				h := r.header
				if r.method != tc.method || r.body != tc.body || h.Get("Content-Type") != tc.wantCT || len(h.Values("Content-Type")) > 1 || h.Get("Accept") != tc.wantAccept {
					t.Fatalf("request %s %q, Content-Type %q, Accept %q; want %s %q, %q, %q", r.method, r.body, h.Values("Content-Type"), h.Get("Accept"), tc.method, tc.body, tc.wantCT, tc.wantAccept)
				}
			}
		})
	}
}
