package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pollsse/caddy-poll-sse/redisstore/redistest"
)

// splitBrainRounds is how many times the lease holder is paused and resumed.
const splitBrainRounds = 20

// holdingUpstream is an upstream that can hold its next request and answer it, once
// released, with a document of the test's choosing.
type holdingUpstream struct {
	*upstream
	srv *httptest.Server

	mu   sync.Mutex
	next *heldPoll
}

// heldPoll is one held request: arrived is closed when it comes, and it is answered with
// doc once release is closed.
type heldPoll struct {
	doc              []byte
	arrived, release chan struct{}
}

func newHoldingUpstream(t *testing.T, doc any) *holdingUpstream {
	t.Helper()
	h := &holdingUpstream{upstream: newUpstream(t, doc)}
	h.srv = httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *holdingUpstream) url() string { return h.srv.URL + "/state.json" }

// holdNext makes the next request wait for its release, and then get doc.
func (h *holdingUpstream) holdNext(doc []byte) *heldPoll {
	p := &heldPoll{doc: doc, arrived: make(chan struct{}), release: make(chan struct{})}
	h.mu.Lock()
	h.next = p
	h.mu.Unlock()
	return p
}

func (h *holdingUpstream) serve(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	p := h.next
	h.next = nil
	h.mu.Unlock()
	if p == nil {
		h.upstream.serve(w, r)
		return
	}
	close(p.arrived)
	select {
	case <-p.release:
	case <-time.After(maxHang):
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(p.doc)
}

// TestRedisSplitBrain pauses the lease holder (SIGSTOP) while it holds a fresh answer of
// the upstream, for longer than the lease TTL: another node takes the lease and polls the
// newer document the upstream serves meanwhile. Then the old holder resumes (SIGCONT)
// with its answer, now stale: appending it must be refused, since its lease is gone. In
// each of the rounds, every client on every node ends on the upstream's latest document,
// and none ever gets the stale one: over all rounds, each goes through exactly the
// upstream's documents, in order.
func TestRedisSplitBrain(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	u := newHoldingUpstream(t, map[string]any{"rev": 0})
	site := pollSSE(u.url(), "interval "+deployInterval.String(), storeRedis([]string{r.Addr}))
	nodes := startNodes(t, 3, func(int) string { return site })
	var traces []*docTrace
	for i := range 6 {
		name := fmt.Sprintf("node %d client %d", i%3, i/3)
		traces = append(traces, newTrace(name, dialSSE(t, nodes[i%3].url(""))))
	}
	served := [][]byte{u.document()}
	for _, tr := range traces {
		tr.until(served[0], deployWait, nil)
	}
	for round := range splitBrainRounds {
		fresh := splitBrainRound(t, u, nodes, traces, round)
		served = append(served, fresh)
	}
	for _, tr := range traces {
		tr.checkSequence(t, served)
	}
	checkStreamOrder(t, r.Addr, len(served))
}

// checkStreamOrder reads every body the loop's stream holds, at least served: none is a
// paused node's stale answer, and each is newer than the one before.
func checkStreamOrder(t *testing.T, addr string, served int) {
	t.Helper()
	rc := redis.NewClient(&redis.Options{Addr: addr})
	defer rc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	bodies := streamBodies(ctx, t, rc, loopStream(ctx, t, rc))
	if len(bodies) < served {
		t.Errorf("the stream holds %d bodies; the upstream served %d documents, each polled", len(bodies), served)
	}
	prev := -1
	for _, body := range bodies {
		var doc struct {
			Rev   int  `json:"rev"`
			Stale bool `json:"stale"`
		}
		if err := json.Unmarshal(body, &doc); err != nil {
			t.Fatalf("a stored body is not the upstream's JSON: %v: %.200q", err, body)
		}
		if doc.Stale || doc.Rev <= prev {
			t.Errorf("the stream holds %s after rev %d: an older or stale body after a newer one", body, prev)
		}
		prev = doc.Rev
	}
}

// splitBrainRound pauses the lease holder with a stale answer, lets another node take
// over and poll the fresh document, resumes the old holder, and checks that every client
// settles on the fresh document without ever getting the stale one. It returns the fresh
// document.
func splitBrainRound(t *testing.T, u *holdingUpstream, nodes []*caddyProc, traces []*docTrace, round int) []byte {
	t.Helper()
	lead := leader(t, nodes)
	stale, err := json.Marshal(map[string]any{"rev": 2*round + 1, "stale": true})
	if err != nil {
		t.Fatal(err)
	}
	held := u.holdNext(stale)
	select {
	case <-held.arrived:
	case <-time.After(deployWait):
		t.Fatalf("round %d: node %d, the lease holder, did not poll within %v", round, lead, deployWait)
	}
	if !nodes[lead].holdsLease() {
		t.Fatalf("round %d: the poll held is not node %d's, which no longer holds the lease", round, lead)
	}
	nodes[lead].pause()
	close(held.release) // the stale answer waits in the paused node's socket
	fresh := u.set(t, map[string]any{"rev": 2*round + 2})
	paused := time.Now()
	for i, tr := range traces {
		if i%len(nodes) != lead {
			tr.until(fresh, deployWait, neverStale(t, tr.name, round, lead))
		}
	}
	t.Logf("round %d: node %d paused; another node served the fresh document %v later",
		round, lead, time.Since(paused).Round(time.Millisecond))
	nodes[lead].resume()
	// The resumed node reads its stale answer at once and tries to append it; a few
	// intervals later, whatever it managed has reached every client.
	time.Sleep(3 * deployInterval)
	for _, tr := range traces {
		tr.settle(fresh, deployInterval/4, deployWait, neverStale(t, tr.name, round, lead))
	}
	return fresh
}

// neverStale fails the test when a client gets the paused node's stale answer.
func neverStale(t *testing.T, who string, round, paused int) func(doc []byte, r received) {
	return func(doc []byte, r received) {
		if strings.Contains(string(doc), `"stale"`) {
			t.Fatalf("round %d: %s got node %d's stale answer in %s %s: %.200s",
				round, who, paused, r.Type, r.LastEventID, doc)
		}
	}
}

// TestRedisLostEntry deletes the stream's last entry, as a Sentinel failover does when
// the master dies before its replica has it (Redis replicates asynchronously): the lease
// holder, whose own last append is still that body, must append it again, since it is
// not the stream's last. A node started afterwards, which knows the loop only from the
// stream, must serve the upstream's document, not the one before.
func TestRedisLostEntry(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	u := newUpstream(t, versionDoc(0))
	site := pollSSE(u.url(), "interval "+deployInterval.String(), storeRedis([]string{r.Addr}))
	nodes := startNodes(t, 2, func(int) string { return site })
	ls := newLockstep(t, u, follow(t, nodes, 1, "/"))
	ls.step()
	rc := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer rc.Close()
	lost := dropLastEntry(t, rc)
	t.Logf("deleted the stream's last entry %s", lost)
	again := waitAppendedAfter(t, rc, lost)
	t.Logf("the lease holder appended %s", again)

	late := startCaddy(t, site)
	c := newTrace("client of a node started after the loss", dialSSE(t, late.url("")))
	c.until(ls.served[len(ls.served)-1], deployWait, nil)
	ls.traces = append(ls.traces, c)
	ls.step()
	ls.traces = ls.traces[:len(ls.traces)-1]
	ls.check()
	c.checkSequence(t, ls.served[len(ls.served)-2:])
}

// waitAppendedAfter waits until the one stream in Redis ends with an entry newer than
// the entry lost, and returns its id: the lease holder's next poll appends the
// upstream's body again, since it is not the stream's last.
func waitAppendedAfter(t *testing.T, rc *redis.Client, lost string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), deployWait)
	defer cancel()
	stream := loopStream(ctx, t, rc)
	for ctx.Err() == nil {
		last, err := rc.XRevRangeN(ctx, stream, "+", "-", 1).Result()
		if err == nil && len(last) == 1 && streamIDAfter(last[0].ID, lost) {
			return last[0].ID
		}
		time.Sleep(deployInterval / 4)
	}
	t.Fatalf("the stream gained no entry after the lost %s within %v", lost, deployWait)
	return ""
}

// streamIDAfter reports whether the stream entry id a comes after b.
func streamIDAfter(a, b string) bool {
	parse := func(id string) (ms, seq uint64) {
		m, s, _ := strings.Cut(id, "-")
		ms, _ = strconv.ParseUint(m, 10, 64)
		seq, _ = strconv.ParseUint(s, 10, 64)
		return ms, seq
	}
	am, as := parse(a)
	bm, bs := parse(b)
	return am > bm || am == bm && as > bs
}

// dropLastEntry deletes the last entry of the one stream in Redis and returns its id.
func dropLastEntry(t *testing.T, rc *redis.Client) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stream := loopStream(ctx, t, rc)
	last, err := rc.XRevRangeN(ctx, stream, "+", "-", 1).Result()
	if err != nil || len(last) != 1 {
		t.Fatalf("reading the last entry of %s: %v, %v", stream, last, err)
	}
	if err := rc.XDel(ctx, stream, last[0].ID).Err(); err != nil {
		t.Fatal(err)
	}
	return last[0].ID
}
