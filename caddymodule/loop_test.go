package caddymodule

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/pollsse/caddy-poll-sse/hub"
)

// streamRequest is a stream request from client for target, as Caddy hands it on.
func streamRequest(client, target string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, target, nil)
	r.RemoteAddr = client + ":40000"
	caddyhttp.NewTestReplacer(r)
	return r
}

// TestLoopForCountsTheClientThatStarts checks the loop a request gets, on a route with one
// loop (built once) and on one whose upstream depends on the request: the loop's key, and
// that a loop is counted against the client that starts it and no other, with
// max_loops_per_client 1.
func TestLoopForCountsTheClientThatStarts(t *testing.T) {
	t.Parallel()
	fixed := loadIn(t, `{"upstream": "http://127.0.0.1:9/loop-for-fixed", "max_loops_per_client": 1}`).h
	if fixed.fixed == nil {
		t.Fatal("a route without placeholders or forward builds its loop for every request")
	}
	dynamic := loadIn(t, `{"upstream": "http://127.0.0.1:9/loop-for/{http.request.uri.query.q}", "max_loops_per_client": 1}`).h
	if dynamic.fixed != nil {
		t.Fatal("a route whose upstream has a placeholder has one loop")
	}
	subscribe := func(h *Handler, client, target string) (string, error) {
		t.Helper()
		lp, err := h.loopFor(streamRequest(client, target))
		if err != nil {
			t.Fatal(err)
		}
		sub, err := h.hub.Subscribe(lp.key, lp.newSource, "", hub.JSONPatch)
		if err == nil {
			t.Cleanup(sub.Close)
		}
		return lp.key, err
	}
	steps := []struct {
		h              *Handler
		client, target string
		key            string
		refused        bool
	}{
		{fixed, "192.0.2.1", "/", "http://127.0.0.1:9/loop-for-fixed ", false},
		{fixed, "192.0.2.2", "/", "http://127.0.0.1:9/loop-for-fixed ", false}, // joins: 192.0.2.2 starts none
		{dynamic, "192.0.2.2", "/?q=a", "http://127.0.0.1:9/loop-for/a ", false},
		{dynamic, "192.0.2.2", "/?q=b", "http://127.0.0.1:9/loop-for/b ", true}, // its second
		{dynamic, "192.0.2.1", "/?q=b", "http://127.0.0.1:9/loop-for/b ", false},
		{dynamic, "192.0.2.2", "/?q=b", "http://127.0.0.1:9/loop-for/b ", false}, // joins
	}
	for i, s := range steps {
		key, err := subscribe(s.h, s.client, s.target)
		if key != s.key {
			t.Errorf("step %d: key %q; want %q", i, key, s.key)
		}
		if refused := errors.Is(err, hub.ErrNoSource); refused != s.refused || err != nil && !refused {
			t.Fatalf("step %d: %s for %s: %v; refused: want %v", i, s.client, s.target, err, s.refused)
		}
	}
	for h, want := range map[*Handler]map[string]int{
		fixed:   {"192.0.2.1": 1, "192.0.2.2": 0},
		dynamic: {"192.0.2.1": 1, "192.0.2.2": 1},
	} {
		for client, n := range want {
			if got := h.clients.running(client); got != n {
				t.Errorf("%s runs %d loops of %s; want %d", client, got, h.Upstream, n)
			}
		}
	}
}
