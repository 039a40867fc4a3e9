package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/pollsse/caddy-poll-sse/hub"
)

func TestClientAddress(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, clientIP, remote, want string
	}{
		{"client_ip", "203.0.113.7", "127.0.0.1:5000", "203.0.113.7"},
		{"IPv6 by its /64", "2001:db8:1:2:aaaa::1", "127.0.0.1:5000", "2001:db8:1:2::/64"},
		{"same /64", "2001:db8:1:2:ffff:ffff:ffff:ffff", "127.0.0.1:5000", "2001:db8:1:2::/64"},
		{"IPv4-mapped", "::ffff:198.51.100.9", "127.0.0.1:5000", "198.51.100.9"},
		{"zone dropped", "fe80::1%eth0", "127.0.0.1:5000", "fe80::/64"},
		{"no client_ip: the connection", "", "192.0.2.1:5000", "192.0.2.1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tc.remote
			vars := map[string]any{}
			if tc.clientIP != "" {
				vars[caddyhttp.ClientIPVarKey] = tc.clientIP
			}
			r = r.WithContext(context.WithValue(r.Context(), caddyhttp.VarsCtxKey, vars))
			if got := clientAddress(r); got != tc.want {
				t.Fatalf("clientAddress = %q; want %q", got, tc.want)
			}
		})
	}
}

// TestClientLoopsCap runs a hub with a per-client cap of 3 over a long sequence: a
// client's fourth new loop is refused, joining a running loop is not, another client is
// unaffected, and when a client's loops stop its count drops and it may start new ones.
// The count is checked against an independent tally after every step.
func TestClientLoopsCap(t *testing.T) {
	t.Parallel()
	const limit = 3
	c := newClientLoops()
	h := hub.New(hub.Config{Linger: 10 * time.Millisecond, Stopped: c.stopped})
	t.Cleanup(h.Close)
	src := func() hub.Source { return &idleSource{} }
	subs := map[string][]*hub.Subscription{}
	for round := range 5 {
		for _, client := range []string{"a", "b"} {
			for i := range limit + 2 {
				key := fmt.Sprintf("%s-%d-%d", client, round, i)
				sub, err := h.Subscribe(key, c.limit(client, limit, src), "", hub.JSONPatch)
				switch {
				case i < limit && err != nil:
					t.Fatalf("round %d: %s's loop %d refused: %v", round, client, i, err)
				case i >= limit && !errors.Is(err, hub.ErrNoSource):
					t.Fatalf("round %d: %s's loop %d: %v; want hub.ErrNoSource", round, client, i, err)
				case err == nil:
					subs[client] = append(subs[client], sub)
				}
				if got, want := c.running(client), min(i+1, limit); got != want {
					t.Fatalf("round %d: %s runs %d loops; want %d", round, client, got, want)
				}
			}
			// Joining a running loop is free, at the cap.
			key := fmt.Sprintf("%s-%d-0", client, round)
			sub, err := h.Subscribe(key, c.limit(client, limit, src), "", hub.JSONPatch)
			if err != nil {
				t.Fatalf("round %d: %s joining its own loop: %v", round, client, err)
			}
			sub.Close()
		}
		closeAll(subs["a"])
		waitRunning(t, c, "a", 0)
		if got := c.running("b"); got != limit {
			t.Fatalf("round %d: b runs %d loops; want %d", round, got, limit)
		}
		closeAll(subs["b"])
		waitRunning(t, c, "b", 0)
		subs = map[string][]*hub.Subscription{}
	}
}

func closeAll(subs []*hub.Subscription) {
	for _, sub := range subs {
		sub.Close()
	}
}

// waitRunning waits until client runs n loops.
func waitRunning(t *testing.T, c *clientLoops, client string, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for c.running(client) != n && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := c.running(client); got != n {
		t.Fatalf("%s runs %d loops; want %d", client, got, n)
	}
}

// idleSource publishes nothing.
type idleSource struct{ _ byte }

func (*idleSource) Run(ctx context.Context, _ *hub.Topic) { <-ctx.Done() }

// TestDocumentUnavailableSaysRetryAfter checks that a JSON GET the route cannot answer,
// here because its hub has stopped, gets 503 with Retry-After.
func TestDocumentUnavailableSaysRetryAfter(t *testing.T) {
	t.Parallel()
	h := &Handler{Timeout: caddy.Duration(time.Second), Retry: caddy.Duration(2 * time.Second), hub: &routeHub{Hub: hub.New(hub.Config{})}, streams: context.Background()}
	h.hub.Close()
	rec := httptest.NewRecorder()
	err := h.serveDocument(rec, httptest.NewRequest("GET", "/", nil), loop{key: "k", newSource: func() hub.Source { return &idleSource{} }})
	var he caddyhttp.HandlerError
	if !errors.As(err, &he) || he.StatusCode != 503 || rec.Header().Get("Retry-After") != "2" {
		t.Fatalf("JSON GET on a stopped hub: %v, Retry-After %q; want 503 with Retry-After: 2", err, rec.Header().Get("Retry-After"))
	}
}
