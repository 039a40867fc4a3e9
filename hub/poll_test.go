package hub

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pollsse/caddy-poll-sse/diff"
	"github.com/pollsse/caddy-poll-sse/poller"
	"github.com/pollsse/caddy-poll-sse/sse"
)

// upstream is a real HTTP server whose answer the test sets.
type upstream struct {
	mu      sync.Mutex
	answer  func(w http.ResponseWriter, r *http.Request)
	release chan struct{} // closed when the test ends, so hung answers return
}

func newUpstream(t *testing.T) (*upstream, *httptest.Server) {
	u := &upstream{release: make(chan struct{})}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		answer := u.answer
		u.mu.Unlock()
		answer(w, r)
	}))
	t.Cleanup(func() { close(u.release); srv.Close() })
	return u, srv
}

func (u *upstream) set(f func(w http.ResponseWriter, r *http.Request)) {
	u.mu.Lock()
	u.answer = f
	u.mu.Unlock()
}

func (u *upstream) json(doc string) {
	u.set(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(doc))
	})
}

// TestPollSourceThroughUpstreamTrouble drives a real poll loop through a 500, an HTML page
// and a timeout: the subscriber hears each as an upstream event, keeps its document, and
// converges when the upstream recovers. goleak (TestMain) checks that nothing is left
// running once the hub is closed.
func TestPollSourceThroughUpstreamTrouble(t *testing.T) {
	up, srv := newUpstream(t)
	up.json(doc(1))
	p, err := poller.New(poller.Config{URL: srv.URL, Interval: 20 * time.Millisecond, Timeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	h := New(Config{})
	defer h.Close()
	sub, err := h.Subscribe(srv.URL, func() Source { return NewPollSource(p, newTracker(t, diff.Options{})) }, "", JSONPatch)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	c := &client{sub: sub}
	c.waitDoc(t, doc(1))

	troubles := []struct {
		name, want string
		answer     func(w http.ResponseWriter, r *http.Request)
	}{
		{"500", `"status":500`, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(500) }},
		{"html", `"error":"not JSON (Content-Type text/html)"`, func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			_, _ = w.Write([]byte("<html><body>maintenance</body></html>"))
		}},
		{"html labelled json", `"error":"response is not JSON"`, func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte("<html><body>maintenance</body></html>"))
		}},
		{"timeout", `"error":"timeout"`, func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-up.release:
			}
		}},
	}
	for _, tc := range troubles {
		up.set(tc.answer)
		c.waitEvent(t, "upstream", tc.want)
		if !strings.Contains(c.last().Data, `"ok":false`) || !strings.Contains(c.last().Data, `"since":"`) {
			t.Fatalf("%s: upstream event %s", tc.name, c.last().Data)
		}
	}
	up.json(doc(2))
	c.waitDoc(t, doc(2))
	if !c.saw("upstream", `{"ok":true}`) {
		t.Fatalf("no recovery event in %v", c.types(0))
	}
}

func (c *client) last() sse.Message { return c.events[len(c.events)-1] }

func (c *client) saw(typ, data string) bool {
	for _, m := range c.events {
		if m.Type == typ && strings.Contains(m.Data, data) {
			return true
		}
	}
	return false
}

// waitEvent reads until an event of type typ whose data holds want arrives.
func (c *client) waitEvent(t *testing.T, typ, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for from := len(c.events); ; {
		for _, m := range c.events[from:] {
			if m.Type == typ && strings.Contains(m.Data, want) {
				return
			}
		}
		from = len(c.events)
		if err := c.read(time.Until(deadline)); err != nil {
			t.Fatalf("waiting for %s %s: %v (events %v)", typ, want, err, c.events)
		}
	}
}

// TestPollSourceSelectDoesNotResolve: a document in which the select pointer does not
// resolve is an upstream failure that names select, stays failed while that document is
// served, keeps the last good document, and recovers when select resolves again.
func TestPollSourceSelectDoesNotResolve(t *testing.T) {
	up, srv := newUpstream(t)
	up.json(`{"data":{"x":1},"meta":1}`)
	p, err := poller.New(poller.Config{URL: srv.URL, Interval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	h := New(Config{})
	defer h.Close()
	tr := newTracker(t, diff.Options{Select: "/data"})
	sub, err := h.Subscribe("k", func() Source { return NewPollSource(p, tr) }, "", JSONPatch)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	c := &client{sub: sub}
	c.waitDoc(t, `{"x":1}`)

	up.json(`{"meta":2}`)
	c.waitEvent(t, "upstream", `"ok":false`)
	if !strings.Contains(c.last().Data, "select") || !strings.Contains(c.last().Data, `"status":200`) {
		t.Fatalf("upstream event %s; want status 200 and an error naming select", c.last().Data)
	}
	n := len(c.events)
	if err := c.read(200 * time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("polls of the same document changed the status: %v %v", err, c.events[n:])
	}
	if c.doc == nil || !strings.Contains(string(c.doc), `"x":1`) {
		t.Fatalf("document %s; want the last good one kept", c.doc)
	}

	up.json(`{"data":{"x":2}}`)
	c.waitDoc(t, `{"x":2}`)
	if !c.saw("upstream", `{"ok":true}`) {
		t.Fatalf("no recovery event in %v", c.types(0))
	}
}
