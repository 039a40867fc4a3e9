package redisstore

import (
	"strings"
	"testing"
	"time"

	"github.com/pollsse/caddy-poll-sse/redisstore/redistest"
)

// TestOnePollPerCluster runs three nodes on one Redis, each with subscribers: the
// upstream is polled about once per interval in all, and every subscriber follows every
// change.
func TestOnePollPerCluster(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	up := newUpstream(t, counted(0))
	const interval = 100 * time.Millisecond
	var clients []*client
	for range 3 {
		n := newNode(t, r, up.config(interval))
		for range 3 {
			clients = append(clients, n.subscribe(t, ""))
		}
	}
	for _, c := range clients {
		c.waitDoc(t, up.get())
	}
	start, hits := time.Now(), up.hits.Load()
	for i := 1; i <= 5; i++ {
		up.set(counted(i))
		for _, c := range clients {
			c.waitDoc(t, up.get())
		}
	}
	took := time.Since(start)
	polls := up.hits.Load() - hits
	if want := int64(took/interval) + 3; polls > want {
		t.Errorf("the upstream got %d requests in %v; one node polling would make about %d", polls, took, want-3)
	}
	t.Logf("3 nodes: %d upstream requests in %v at interval %v", polls, took.Round(time.Millisecond), interval)
}

// TestResumeOnAnotherNode moves a client from one node to another, and to a node started
// after every earlier one stopped: it is caught up with one patch each time.
func TestResumeOnAnotherNode(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	up := newUpstream(t, counted(0))
	cfg := up.config(50 * time.Millisecond)
	a := newNode(t, r, cfg)
	ca := a.subscribe(t, "")
	ca.waitDoc(t, up.get())
	held := ca.id

	b := newNode(t, r, cfg)
	watcher := b.subscribe(t, "")
	up.set(counted(1))
	watcher.waitDoc(t, up.get())
	moved := b.subscribe(t, held)
	moved.doc = ca.doc
	moved.waitDoc(t, up.get())
	if got := moved.types(0); len(got) != 1 || got[0] != "patch" {
		t.Fatalf("moving from node A to node B: events %v; want one patch", got)
	}

	a.hub.Close()
	b.hub.Close()
	c := newNode(t, r, cfg)
	fresh := c.subscribe(t, held)
	fresh.doc = ca.doc
	fresh.waitDoc(t, up.get())
	if got := fresh.types(0); len(got) != 1 || got[0] != "patch" {
		t.Fatalf("resuming on a node started after the others stopped: events %v; want one patch", got)
	}
}

// TestLeaseHandover stops the node holding the lease: another node takes over within
// the lease's TTL and a few intervals, and its subscribers go on converging.
func TestLeaseHandover(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	up := newUpstream(t, counted(0))
	const interval = 50 * time.Millisecond
	nodes := []*node{newNode(t, r, up.config(interval)), newNode(t, r, up.config(interval))}
	var clients []*client
	for _, n := range nodes {
		clients = append(clients, n.subscribe(t, ""))
	}
	for _, c := range clients {
		c.waitDoc(t, up.get())
	}
	leader := leaderOf(t, nodes)
	other := nodes[1-leader]
	nodes[leader].hub.Close()
	stopped := time.Now()
	up.set(counted(1))
	c := clients[1-leader]
	c.waitDoc(t, up.get())
	gap := time.Since(stopped)
	if bound := nodes[0].store.LeaseTTL + 4*interval + time.Second; gap > bound {
		t.Errorf("the other node took %v to take over; want within %v", gap, bound)
	}
	t.Logf("lease handed over: the change reached the other node's client %v after the holder stopped", gap.Round(time.Millisecond))
	if !other.leads() {
		t.Error("the remaining node does not hold the lease")
	}
}

// TestRedisDown stops Redis while clients listen: they keep their stream and document
// and are told the store is unreachable; when Redis is back, the status clears and they
// follow changes again.
func TestRedisDown(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	up := newUpstream(t, counted(0))
	n := newNode(t, r, up.config(50*time.Millisecond))
	c := n.subscribe(t, "")
	c.waitDoc(t, up.get())
	r.Stop()
	if data := waitStatus(t, c, false); !strings.Contains(data, ReasonStoreDown) {
		t.Fatalf("upstream event %s does not name the store", data)
	}
	r.Start()
	waitStatus(t, c, true)
	up.set(counted(7))
	c.waitDoc(t, up.get())
}
