package hub

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pollsse/caddy-poll-sse/diff"
	"github.com/pollsse/caddy-poll-sse/poller"
	"github.com/pollsse/caddy-poll-sse/redisstore/redistest"
)

// counter is an upstream serving the document {"n":n}, counting requests.
type counter struct {
	n, hits atomic.Int64
	srv     *httptest.Server
}

func newCounter(t *testing.T) *counter {
	c := &counter{}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		c.hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"n":%d,"pad":"%s"}`, c.n.Load(), padding)
	}))
	t.Cleanup(c.srv.Close)
	return c
}

const padding = "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz"

func (c *counter) doc() string { return fmt.Sprintf(`{"n":%d,"pad":"%s"}`, c.n.Load(), padding) }

// node is one hub sharing its loop through Redis.
type node struct {
	hub    *Hub
	store  *RedisStore
	source func() Source
}

func newNode(t *testing.T, r *redistest.Server, up *counter, interval time.Duration) *node {
	t.Helper()
	store := &RedisStore{Client: redis.NewClient(&redis.Options{Addr: r.Addr}), LeaseTTL: 600 * time.Millisecond}
	h := New(Config{Linger: time.Second})
	t.Cleanup(func() { h.Close(); _ = store.Client.Close() })
	cfg := poller.Config{URL: up.srv.URL, Interval: interval, Client: up.srv.Client()}
	newPoller := func() *poller.Poller {
		p, err := poller.New(cfg)
		if err != nil {
			t.Error(err)
		}
		return p
	}
	return &node{hub: h, store: store, source: func() Source {
		return store.Source("loop", newPoller, new(diff.Tracker))
	}}
}

func (n *node) subscribe(t *testing.T, lastID string) *client {
	t.Helper()
	sub, err := n.hub.Subscribe("loop", n.source, lastID, JSONPatch)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Close)
	return &client{sub: sub, format: JSONPatch}
}

// TestRedisOnePollPerCluster runs three nodes on one Redis, each with subscribers: the
// upstream is polled about once per interval in all, and every subscriber follows every
// change.
func TestRedisOnePollPerCluster(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	up := newCounter(t)
	const interval = 100 * time.Millisecond
	var clients []*client
	for range 3 {
		n := newNode(t, r, up, interval)
		for range 3 {
			clients = append(clients, n.subscribe(t, ""))
		}
	}
	for _, c := range clients {
		c.waitDoc(t, up.doc())
	}
	start, hits := time.Now(), up.hits.Load()
	for i := 1; i <= 5; i++ {
		up.n.Store(int64(i))
		for _, c := range clients {
			c.waitDoc(t, up.doc())
		}
	}
	took := time.Since(start)
	polls := up.hits.Load() - hits
	if want := int64(took/interval) + 3; polls > want {
		t.Errorf("the upstream got %d requests in %v; one node polling would make about %d", polls, took, want-3)
	}
	t.Logf("3 nodes: %d upstream requests in %v at interval %v", polls, took.Round(time.Millisecond), interval)
}

// TestRedisResumeOnAnotherNode moves a client from one node to another, and to a node
// started after every earlier one stopped: it is caught up with one patch each time.
func TestRedisResumeOnAnotherNode(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	up := newCounter(t)
	a := newNode(t, r, up, 50*time.Millisecond)
	ca := a.subscribe(t, "")
	ca.waitDoc(t, up.doc())
	held := ca.id

	b := newNode(t, r, up, 50*time.Millisecond)
	watcher := b.subscribe(t, "")
	up.n.Store(1)
	watcher.waitDoc(t, up.doc())
	moved := b.subscribe(t, held)
	moved.doc = ca.doc
	moved.waitDoc(t, up.doc())
	if got := moved.types(0); len(got) != 1 || got[0] != "patch" {
		t.Fatalf("moving from node A to node B: events %v; want one patch", got)
	}

	a.hub.Close()
	b.hub.Close()
	c := newNode(t, r, up, 50*time.Millisecond)
	fresh := c.subscribe(t, held)
	fresh.doc = ca.doc
	fresh.waitDoc(t, up.doc())
	if got := fresh.types(0); len(got) != 1 || got[0] != "patch" {
		t.Fatalf("resuming on a node started after the others stopped: events %v; want one patch", got)
	}
}

// TestRedisLeaseHandover stops the node holding the lease: another node takes over
// within the lease's TTL and a few intervals, and its subscribers go on converging.
func TestRedisLeaseHandover(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	up := newCounter(t)
	const interval = 50 * time.Millisecond
	nodes := []*node{newNode(t, r, up, interval), newNode(t, r, up, interval)}
	var clients []*client
	for _, n := range nodes {
		clients = append(clients, n.subscribe(t, ""))
	}
	for _, c := range clients {
		c.waitDoc(t, up.doc())
	}
	leader := leaderOf(t, nodes)
	other := nodes[1-leader]
	nodes[leader].hub.Close()
	stopped := time.Now()
	up.n.Store(1)
	c := clients[1-leader]
	c.waitDoc(t, up.doc())
	gap := time.Since(stopped)
	if bound := nodes[0].store.LeaseTTL + 4*interval + time.Second; gap > bound {
		t.Errorf("the other node took %v to take over; want within %v", gap, bound)
	}
	t.Logf("lease handed over: the change reached the other node's client %v after the holder stopped", gap.Round(time.Millisecond))
	if !leads(other) {
		t.Error("the remaining node does not hold the lease")
	}
}

func leaderOf(t *testing.T, nodes []*node) int {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for i, n := range nodes {
			if leads(n) {
				return i
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("no node took the lease")
	return -1
}

func leads(n *node) bool {
	for _, ls := range n.hub.Loops() {
		if src, ok := ls.Source.(*RedisSource); ok && src.Leader() {
			return true
		}
	}
	return false
}

// TestRedisDown stops Redis while clients listen: they keep their stream and document
// and are told the store is unreachable; when Redis is back, the status clears and they
// follow changes again.
func TestRedisDown(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	up := newCounter(t)
	n := newNode(t, r, up, 50*time.Millisecond)
	c := n.subscribe(t, "")
	c.waitDoc(t, up.doc())
	r.Stop()
	waitStatus(t, c, false)
	r.Start()
	waitStatus(t, c, true)
	up.n.Store(7)
	c.waitDoc(t, up.doc())
}

// waitStatus reads until an upstream event with ok = want arrives.
func waitStatus(t *testing.T, c *client, want bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	from := len(c.events)
	for {
		for _, m := range c.events[from:] {
			if m.Type == "upstream" && (m.Data == `{"ok":true}`) == want {
				if !want && !strings.Contains(m.Data, ReasonStoreDown) {
					t.Fatalf("upstream event %s does not name the store", m.Data)
				}
				return
			}
		}
		from = len(c.events)
		if err := c.read(time.Until(deadline)); err != nil {
			t.Fatalf("waiting for upstream ok=%v: %v", want, err)
		}
	}
}
