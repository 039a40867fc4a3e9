package redisstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pollsse/caddy-poll-sse/diff"
	"github.com/pollsse/caddy-poll-sse/diff/difftest"
	"github.com/pollsse/caddy-poll-sse/hub"
	"github.com/pollsse/caddy-poll-sse/poller"
	"github.com/pollsse/caddy-poll-sse/redisstore/redistest"
	"github.com/pollsse/caddy-poll-sse/sse"
)

// upstream serves the document it is set to, counting requests.
type upstream struct {
	hits atomic.Int64
	srv  *httptest.Server

	mu  sync.Mutex
	doc string
}

func newUpstream(t *testing.T, doc string) *upstream {
	t.Helper()
	u := &upstream{doc: doc}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		u.hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, u.get())
	}))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *upstream) set(doc string) {
	u.mu.Lock()
	u.doc = doc
	u.mu.Unlock()
}

func (u *upstream) get() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.doc
}

func (u *upstream) config(interval time.Duration) poller.Config {
	return poller.Config{URL: u.srv.URL, Interval: interval, Client: u.srv.Client()}
}

// counted is the document of version n, padded so that it is worth compressing.
func counted(n int) string {
	return fmt.Sprintf(`{"n":%d,"pad":"%s"}`, n, strings.Repeat("0123456789abcdef", 8))
}

// node is one hub sharing its loops through Redis.
type node struct {
	hub   *hub.Hub
	store *Store
	cfg   poller.Config
}

func newNode(t *testing.T, r *redistest.Server, cfg poller.Config) *node {
	t.Helper()
	store := &Store{Client: redis.NewClient(&redis.Options{Addr: r.Addr}), LeaseTTL: 600 * time.Millisecond}
	h := hub.New(hub.Config{Linger: time.Second})
	t.Cleanup(func() { h.Close(); _ = store.Client.Close() })
	return &node{hub: h, store: store, cfg: cfg}
}

func (n *node) source() hub.Source { return n.store.Source(n.cfg, new(diff.Tracker)) }

func (n *node) subscribe(t *testing.T, lastID string) *client {
	t.Helper()
	sub, err := n.hub.Subscribe("loop", n.source, lastID, hub.JSONPatch)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Close)
	return &client{sub: sub}
}

// leads reports whether n holds the lease of a loop.
func (n *node) leads() bool {
	for _, ls := range n.hub.Loops() {
		if src, ok := ls.Source.(*Source); ok && src.Leader() {
			return true
		}
	}
	return false
}

func leaderOf(t *testing.T, nodes []*node) int {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for i, n := range nodes {
			if n.leads() {
				return i
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("no node took the lease")
	return -1
}

// client reads a subscription as a browser would, keeping the document by applying
// snapshots and RFC 6902 patches.
type client struct {
	sub    *hub.Subscription
	doc    []byte
	id     string
	events []sse.Message
}

// read takes one batch of frames, waiting at most d.
func (c *client) read(d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	frames, err := c.sub.Next(ctx)
	if err != nil {
		return err
	}
	dec := sse.NewDecoder(bytes.NewReader(bytes.Join(frames, nil)))
	for {
		m, err := dec.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := c.apply(m); err != nil {
			return err
		}
	}
}

func (c *client) apply(m sse.Message) error {
	c.events = append(c.events, m)
	switch m.Type {
	case "snapshot":
		c.doc = []byte(m.Data)
	case "patch":
		doc, err := difftest.ApplyPatch(c.doc, []byte(m.Data))
		if err != nil {
			return fmt.Errorf("applying %s: %w", m.Data, err)
		}
		c.doc = doc
	case "upstream":
		return nil
	default:
		return fmt.Errorf("unexpected event %q", m.Type)
	}
	c.id = m.LastEventID
	return nil
}

// waitDoc reads until the client holds want, for at most 10 s.
func (c *client) waitDoc(t *testing.T, want string) {
	t.Helper()
	c.waitDocWithin(t, want, 10*time.Second)
}

// waitDocWithin reads until the client holds want, for at most d.
func (c *client) waitDocWithin(t *testing.T, want string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !c.holds(want) {
		if err := c.read(time.Until(deadline)); err != nil {
			t.Fatalf("waiting for %s (have %s): %v", want, c.doc, err)
		}
	}
}

func (c *client) holds(want string) bool {
	if c.doc == nil {
		return false
	}
	same, err := difftest.Equal(c.doc, []byte(want))
	return err == nil && same
}

// types lists the event types received since the index from.
func (c *client) types(from int) []string {
	var out []string
	for _, m := range c.events[from:] {
		out = append(out, m.Type)
	}
	return out
}

// waitStatus reads until an upstream event with ok = want arrives, and returns its data.
func waitStatus(t *testing.T, c *client, want bool) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	from := len(c.events)
	for {
		for _, m := range c.events[from:] {
			if m.Type == "upstream" && (m.Data == `{"ok":true}`) == want {
				return m.Data
			}
		}
		from = len(c.events)
		if err := c.read(time.Until(deadline)); err != nil {
			t.Fatalf("waiting for upstream ok=%v: %v", want, err)
		}
	}
}

func contextWithTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// streamBodies returns the bodies of the stream's entries, oldest first, and "!" plus
// the reason for a failure entry, "ok" for a recovery.
func streamBodies(t *testing.T, c redis.UniversalClient, stream string) []string {
	t.Helper()
	msgs, err := c.XRange(context.Background(), stream, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range msgs {
		if data, ok := m.Values["body"].(string); ok {
			body, err := decompress([]byte(data), sizeOf(m), 1<<30)
			if err != nil {
				t.Fatalf("entry %s: %v", m.ID, err)
			}
			out = append(out, string(body))
			continue
		}
		if reason := str(m.Values["error"]); reason != "" {
			out = append(out, "!"+reason)
		} else {
			out = append(out, "ok")
		}
	}
	return out
}

func sizeOf(m redis.XMessage) int64 {
	var n int64
	fmt.Sscan(str(m.Values["size"]), &n)
	return n
}
