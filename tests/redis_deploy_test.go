package tests

import (
	"context"
	"fmt"
	"regexp"
	"testing"
	"time"

	"github.com/pollsse/caddy-poll-sse/redisstore/redistest"
)

// deployLoops is how many loops the Cluster test runs, each on an upstream of its own,
// so that their keys spread over the masters.
const deployLoops = 3

// versionDoc is the upstream's document at rev: a list that grows, so that patches
// carry more than one member.
func versionDoc(rev int) map[string]any {
	items := make([]int, rev)
	for i := range items {
		items[i] = i * i
	}
	return map[string]any{"rev": rev, "items": items}
}

// lockstep changes an upstream one version at a time: each is served until every
// follower holds it, so that every client must go through every version.
type lockstep struct {
	t      *testing.T
	u      *upstream
	served [][]byte
	traces []*docTrace
	rev    int
}

func newLockstep(t *testing.T, u *upstream, traces []*docTrace) *lockstep {
	ls := &lockstep{t: t, u: u, served: [][]byte{u.document()}, traces: traces}
	for _, tr := range traces {
		tr.until(ls.served[0], deployWait, nil)
	}
	return ls
}

// change makes the upstream serve the next version and returns it, without waiting.
func (ls *lockstep) change() []byte {
	ls.rev++
	doc := ls.u.set(ls.t, versionDoc(ls.rev))
	ls.served = append(ls.served, doc)
	return doc
}

// step changes the upstream and waits until every follower holds the new version.
func (ls *lockstep) step() {
	ls.t.Helper()
	ls.wait(ls.change(), deployWait)
}

// wait waits, within d each, until every follower holds doc.
func (ls *lockstep) wait(doc []byte, d time.Duration) {
	ls.t.Helper()
	for _, tr := range ls.traces {
		tr.until(doc, d, nil)
	}
}

// drop stops following the clients of node, whose streams end with it, and checks
// what they went through until then.
func (ls *lockstep) drop(node int, nodes int) {
	ls.t.Helper()
	var kept []*docTrace
	for i, tr := range ls.traces {
		if i%nodes == node {
			tr.checkSequence(ls.t, ls.served)
			continue
		}
		kept = append(kept, tr)
	}
	ls.traces = kept
}

// check checks that every follower went through exactly the versions served.
func (ls *lockstep) check() {
	ls.t.Helper()
	for _, tr := range ls.traces {
		tr.checkSequence(ls.t, ls.served)
	}
}

// follow opens perNode streams on each node at path, in turn over the nodes, so that
// trace i is on node i%len(nodes).
func follow(t *testing.T, nodes []*caddyProc, perNode int, path string) []*docTrace {
	traces := make([]*docTrace, 0, perNode*len(nodes))
	for i := range perNode * len(nodes) {
		name := fmt.Sprintf("node %d %s client %d", i%len(nodes), path, i/len(nodes))
		traces = append(traces, newTrace(name, dialSSE(t, nodes[i%len(nodes)].url(""), withPath(path))))
	}
	return traces
}

// TestRedisClusterOnePoll runs three Caddy nodes on a three-master Redis Cluster, with
// three loops whose keys spread over the masters: each upstream sees about one request
// per interval in all, and every client goes through every version, in order. Each
// loop's keys share one hash tag, and so one slot.
func TestRedisClusterOnePoll(t *testing.T) {
	t.Parallel()
	cluster := redistest.NewCluster(t)
	ups := make([]*upstream, deployLoops)
	site := ""
	for i := range ups {
		ups[i] = newUpstream(t, versionDoc(0))
		site += fmt.Sprintf("handle /loop%d {\n%s\n}\n", i,
			indent(pollSSE(ups[i].url(), "interval "+deployInterval.String(), storeRedis(cluster.Addrs))))
	}
	nodes := startNodes(t, 3, func(int) string { return site })
	steps := make([]*lockstep, len(ups))
	for i, u := range ups {
		steps[i] = newLockstep(t, u, follow(t, nodes, 2, fmt.Sprintf("/loop%d", i)))
	}

	const window = 2 * time.Second
	from := time.Now()
	time.Sleep(window)
	for i, u := range ups {
		polls := u.countBetween(from, time.Now())
		t.Logf("loop %d: %d upstream requests in %v from 3 nodes at interval %v", i, polls, window, deployInterval)
		if most := int(window/deployInterval) + 2; polls > most {
			t.Errorf("loop %d: %d upstream requests in %v; one poll per interval in all would be about %d",
				i, polls, window, most-2)
		}
	}
	for range 5 {
		for _, ls := range steps {
			ls.step()
		}
	}
	for _, ls := range steps {
		ls.check()
	}
	checkHashTags(t, cluster)
}

// hashTag is the Redis Cluster hash tag of a key: the first {…} with something inside.
var hashTag = regexp.MustCompile(`\{([^}]+)\}`)

// checkHashTags checks that every key poll_sse wrote in the cluster carries a hash tag,
// and that the keys hold one tag for each loop.
func checkHashTags(t *testing.T, cluster *redistest.Cluster) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var keys []string
	for _, addr := range cluster.Addrs {
		found, err := redistest.Keys(ctx, addr, "poll_sse:*")
		if err != nil {
			t.Fatalf("listing the keys of %s: %v", addr, err)
		}
		keys = append(keys, found...)
	}
	tags := map[string][]string{}
	for _, k := range keys {
		m := hashTag.FindStringSubmatch(k)
		if m == nil {
			t.Errorf("key %q has no hash tag: its loop's keys may sit in different slots", k)
			continue
		}
		tags[m[1]] = append(tags[m[1]], k)
	}
	if len(tags) != deployLoops {
		t.Errorf("%d loops wrote keys under %d hash tags; want one tag a loop: %q", deployLoops, len(tags), keys)
	}
	for tag, ks := range tags {
		if len(ks) < 2 {
			t.Errorf("hash tag %s holds only %q; want a loop's lease and stream", tag, ks)
		}
	}
}

// TestRedisSentinelFailover runs three Caddy nodes on a Redis master and replica watched
// by three Sentinels, with clients on every node. The master is killed while clients
// wait for a version: once a Sentinel promotes the replica, the version arrives, and so
// do the next. Then the node holding the lease is killed, and another node delivers the
// next version. No client on a live node loses, repeats or reorders a version: each goes
// through exactly the upstream's documents, applying each patch with an independent
// applier. Both failover times are logged.
func TestRedisSentinelFailover(t *testing.T) {
	t.Parallel()
	sentinel := redistest.NewSentinel(t)
	u := newUpstream(t, versionDoc(0))
	site := pollSSE(u.url(), "interval "+deployInterval.String(),
		storeRedis(sentinel.Addrs, "sentinel "+sentinel.Master))
	nodes := startNodes(t, 3, func(int) string { return site })
	ls := newLockstep(t, u, follow(t, nodes, 2, "/"))
	for range 3 {
		ls.step()
	}

	old := sentinel.KillMaster()
	killed := time.Now()
	doc := ls.change()
	promoted := sentinel.WaitPromoted(old)
	promotedIn := time.Since(killed)
	ls.traces[0].until(doc, deployWait, nil)
	t.Logf("Sentinel master %s killed: replica %s promoted within %v, the next version reached a client %v after the kill",
		old, promoted, promotedIn.Round(time.Millisecond), time.Since(killed).Round(time.Millisecond))
	ls.wait(doc, deployWait)
	for range 3 {
		ls.step()
	}

	lead := leader(t, nodes)
	nodes[lead].kill()
	killed = time.Now()
	ls.drop(lead, len(nodes))
	doc = ls.change()
	ls.traces[0].until(doc, deployWait, nil)
	t.Logf("lease holder (node %d) killed: the next version reached a client %v later (lease TTL %v, interval %v)",
		lead, time.Since(killed).Round(time.Millisecond), deployLease, deployInterval)
	ls.wait(doc, deployWait)
	for range 3 {
		ls.step()
	}
	ls.check()
}
