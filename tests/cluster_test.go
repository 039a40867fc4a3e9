package tests

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pollsse/caddy-poll-sse/redisstore/redistest"
)

const (
	clusterInterval = 200 * time.Millisecond
	clusterLease    = time.Second
)

// kill ends the Caddy process at once, as a crash would.
func (c *caddyProc) kill() {
	c.t.Helper()
	_ = c.cmd.Process.Kill()
	if !c.waitExit(caddyStopTimeout) {
		c.t.Fatalf("caddy (pid %d) did not exit after SIGKILL", c.cmd.Process.Pid)
	}
}

// restart starts the process again on the same Caddyfile and ports.
func (c *caddyProc) restart() {
	c.t.Helper()
	c.exited = make(chan struct{})
	c.start(filepath.Dir(c.file))
	c.waitReady()
}

// startCluster starts three Caddy nodes on one Redis, polling u.
func startCluster(t *testing.T, r *redistest.Server, u *upstream) []*caddyProc {
	t.Helper()
	site := pollSSE(u.url(), "interval "+clusterInterval.String(), "linger 2s",
		"store redis "+r.Addr+" {\n\t\tlease_ttl "+clusterLease.String()+"\n\t}")
	nodes := make([]*caddyProc, 3)
	for i := range nodes {
		nodes[i] = startCaddy(t, site)
	}
	return nodes
}

// spread opens n streams over the nodes in turn, and waits until each holds doc.
func spread(t *testing.T, nodes []*caddyProc, n int, doc []byte) []*sseClient {
	t.Helper()
	clients := make([]*sseClient, n)
	for i := range clients {
		clients[i] = dialSSE(t, nodes[i%len(nodes)].url(""))
	}
	for _, c := range clients {
		c.waitFor(doc, 10*time.Second)
	}
	return clients
}

// leader returns the index of the node whose admin API says it holds the loop's lease.
func leader(t *testing.T, nodes []*caddyProc) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for i, n := range nodes {
			if n.holdsLease() {
				return i
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("no node holds the lease")
	return -1
}

func (c *caddyProc) holdsLease() bool {
	select {
	case <-c.exited:
		return false
	default:
	}
	status, body, err := c.admin(http.MethodGet, "/poll_sse/loops", "", nil, nil)
	if err != nil || status != http.StatusOK {
		return false
	}
	var out struct {
		Loops []struct {
			Leader *bool `json:"leader"`
		} `json:"loops"`
	}
	if json.Unmarshal([]byte(body), &out) != nil {
		return false
	}
	for _, l := range out.Loops {
		if l.Leader != nil && *l.Leader {
			return true
		}
	}
	return false
}

// TestClusterOnePollAndFailover runs three Caddy nodes on one Redis with 300 subscribers
// spread over them: the upstream sees about one request per interval in all, and every
// subscriber converges on every change. Then the lease holder is killed: another node
// polls within two intervals plus the lease TTL, and no subscriber diverges.
func TestClusterOnePollAndFailover(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	u := newUpstream(t, map[string]any{"rev": 0})
	nodes := startCluster(t, r, u)
	clients := spread(t, nodes, 300, u.document())

	from := time.Now()
	time.Sleep(2 * time.Second)
	polls := u.countBetween(from, time.Now())
	t.Logf("3 nodes, 300 subscribers: %d upstream requests in 2s at interval %v", polls, clusterInterval)
	if want := int(2*time.Second/clusterInterval) + 2; polls > want {
		t.Errorf("%d upstream requests in 2s; one poll per interval in all would be about %d", polls, want-2)
	}
	want := u.set(t, map[string]any{"rev": 1})
	for _, c := range clients {
		c.waitFor(want, 10*time.Second)
	}

	lead := leader(t, nodes)
	nodes[lead].kill()
	killed := time.Now()
	want = u.set(t, map[string]any{"rev": 2})
	for i, c := range clients {
		if i%3 != lead {
			c.waitFor(want, 10*time.Second)
		}
	}
	gap := firstHitAfter(u, killed).Sub(killed)
	t.Logf("lease holder killed: the next upstream request came %v later (bound: 2 intervals + lease TTL = %v)",
		gap.Round(time.Millisecond), 2*clusterInterval+clusterLease)
	if gap > 2*clusterInterval+clusterLease+500*time.Millisecond {
		t.Errorf("takeover took %v", gap)
	}
}

// firstHitAfter returns when the upstream's first request at or after t arrived.
func firstHitAfter(u *upstream, t time.Time) time.Time {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, h := range u.hits {
		if !h.Before(t) {
			return h
		}
	}
	return time.Time{}
}

// TestClusterResume moves a client from node A to node B, which catches it up with one
// patch; then restarts all three nodes while Redis keeps the history, and a client that
// resumes gets one patch again.
func TestClusterResume(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	u := newUpstream(t, map[string]any{"rev": 0, "pad": strings.Repeat("x", 500)})
	nodes := startCluster(t, r, u)
	a := dialSSE(t, nodes[0].url(""))
	a.waitFor(u.document(), 10*time.Second)
	a.close()

	watcher := dialSSE(t, nodes[1].url(""))
	want := u.set(t, map[string]any{"rev": 1, "pad": strings.Repeat("x", 500)})
	watcher.waitFor(want, 10*time.Second)
	b := dialSSE(t, nodes[1].url(""), withDocument(a.doc, a.lastID), withLastEventID(a.lastID))
	if got := b.waitFor(want, 10*time.Second); len(got) != 1 || got[0].Type != "patch" {
		t.Fatalf("moving from node A to node B: got %s; want one patch", summarize(got))
	}
	watcher.close()
	b.close()

	for _, n := range nodes {
		n.kill()
	}
	want = u.set(t, map[string]any{"rev": 2, "pad": strings.Repeat("x", 500)})
	for _, n := range nodes {
		n.restart()
	}
	c := dialSSE(t, nodes[2].url(""), withDocument(b.doc, b.lastID), withLastEventID(b.lastID))
	if got := c.waitFor(want, 10*time.Second); got[0].Type != "patch" {
		t.Fatalf("resuming after every node restarted: got %s; want a patch first", summarize(got))
	}
}

// TestClusterRedisDown stops Redis for 10 s under open streams: the streams stay open,
// clients are told the store is unreachable, and after Redis is back every client
// converges on the upstream document.
func TestClusterRedisDown(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	u := newUpstream(t, map[string]any{"rev": 0})
	nodes := startCluster(t, r, u)
	clients := spread(t, nodes, 6, u.document())
	r.Stop()
	for _, c := range clients {
		c.waitEvent("store unreachable", 10*time.Second, func(e received) bool {
			return e.Type == "upstream" && strings.Contains(e.Data, "store unreachable")
		})
	}
	time.Sleep(10 * time.Second)
	r.Start()
	want := u.set(t, map[string]any{"rev": 1})
	for _, c := range clients {
		c.waitFor(want, 15*time.Second) // fails if the stream ended
	}
}
