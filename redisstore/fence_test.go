package redisstore

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pollsse/caddy-poll-sse/poller"
	"github.com/pollsse/caddy-poll-sse/redisstore/redistest"
)

// waitFor polls cond every 10 ms for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestStaleLeaderAppendRefused takes the lease away from the node holding it, as
// another node does once a paused holder's lease expired, while the upstream moves on:
// the old holder's appends are refused by Redis, it stops polling at once, and the stream
// keeps only what the lease holders appended. The lease TTL is an hour, so that renewing
// cannot be what notices the loss.
func TestStaleLeaderAppendRefused(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	up := newUpstream(t, counted(0))
	a := newNode(t, r, up.config(20*time.Millisecond))
	a.store.LeaseTTL = time.Hour
	c := a.subscribe(t, "")
	c.waitDoc(t, counted(0))
	waitFor(t, "node A to lead", a.leads)
	lease, stream := a.store.Keys(a.cfg)
	ctx := context.Background()
	if err := a.store.Client.Set(ctx, lease, "node-b.1.x", 0).Err(); err != nil {
		t.Fatal(err)
	}
	hits := up.hits.Load()
	up.set(counted(1))
	waitFor(t, "node A to poll the new document or stop", func() bool { return up.hits.Load() > hits+3 || !a.leads() })
	if got := streamBodies(t, a.store.Client, stream); !slices.Equal(got, []string{counted(0)}) {
		t.Fatalf("stream %q; want only the document appended while node A held the lease", got)
	}
	if a.leads() {
		t.Fatal("node A still polls after its append was refused")
	}
	if v, _ := a.store.Client.Get(ctx, lease).Result(); v != "node-b.1.x" {
		t.Errorf("lease %q; the new holder's lease was touched", v)
	}
	stopped := up.hits.Load()
	time.Sleep(100 * time.Millisecond)
	if n := up.hits.Load() - stopped; n > 1 {
		t.Errorf("node A polled %d more times after its append was refused", n)
	}
}

// TestAppendFencedByLeaseTerm runs the append script directly: it appends for the
// term holding the lease, and refuses another node, an expired lease, and the same node's
// earlier term.
func TestAppendFencedByLeaseTerm(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	client := redis.NewClient(&redis.Options{Addr: r.Addr})
	t.Cleanup(func() { _ = client.Close() })
	st := &Store{Client: client}
	s := st.Source(poller.Config{URL: "http://127.0.0.1:9/x"}, nil)
	ctx := context.Background()
	first, second := st.leaseValue(), st.leaseValue()
	if first == second {
		t.Fatal("two terms of one node have the same lease value")
	}
	offer := func(value, doc string) int {
		t.Helper()
		n, err := s.offer(ctx, value, digest([]byte(doc)), poller.Result{Body: []byte(doc), Status: 200})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	client.Set(ctx, s.lease, first, 0)
	if n := offer(first, counted(1)); n != appendDone {
		t.Fatalf("holder's append: %d", n)
	}
	if n := offer(first, counted(1)); n != appendNothing {
		t.Fatalf("holder's repeated body: %d; want nothing appended", n)
	}
	client.Set(ctx, s.lease, second, 0) // the node lost its lease and took it again
	if n := offer(first, counted(2)); n != appendRefused {
		t.Fatalf("earlier term's append: %d; want refused", n)
	}
	client.Set(ctx, s.lease, "other-node.1.x", 0)
	if n := offer(second, counted(2)); n != appendRefused {
		t.Fatalf("append under another node's lease: %d; want refused", n)
	}
	client.Del(ctx, s.lease)
	if n := offer(second, counted(2)); n != appendRefused {
		t.Fatalf("append with no lease: %d; want refused", n)
	}
	fail := poller.Result{Status: 503, Err: &poller.Error{Status: 503, Reason: "upstream answered 503"}}
	if n, _ := s.offer(ctx, second, "", fail); n != appendRefused {
		t.Fatalf("failure appended with no lease: %d; want refused", n)
	}
	if got := streamBodies(t, client, s.stream); !slices.Equal(got, []string{counted(1)}) {
		t.Fatalf("stream %q; want only the holder's body", got)
	}
}

// TestConvergesAfterStaleAppend puts an older document after the newest one in the
// stream, as a stale leader's append did: the lease holder, still polling the newest
// document, compares it with the stream's last entry rather than with what it appended
// itself, appends it again, and its clients end on the upstream's document.
func TestConvergesAfterStaleAppend(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	up := newUpstream(t, counted(3))
	b := newNode(t, r, up.config(20*time.Millisecond))
	c := b.subscribe(t, "")
	c.waitDoc(t, counted(3))
	_, stream := b.store.Keys(b.cfg)
	stale := counted(2)
	ctx := context.Background()
	err := b.store.Client.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: []any{
		"sum", digest([]byte(stale)), "size", strconv.Itoa(len(stale)), "body", compress([]byte(stale)),
	}}).Err()
	if err != nil {
		t.Fatal(err)
	}
	c.waitDoc(t, stale)
	c.waitDoc(t, counted(3))
	want := []string{counted(3), stale, counted(3)}
	if got := streamBodies(t, b.store.Client, stream); !slices.Equal(got, want) {
		t.Fatalf("stream %q; want %q", got, want)
	}
}

// TestHealthEntriesAgainstStreamsLast checks that failures and recoveries are appended
// once each against the stream's last entry: a repeated failure adds nothing, another
// reason adds one, and the same body after a failure adds a recovery without the body.
func TestHealthEntriesAgainstStreamsLast(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	client := redis.NewClient(&redis.Options{Addr: r.Addr})
	t.Cleanup(func() { _ = client.Close() })
	st := &Store{Client: client}
	s := st.Source(poller.Config{URL: "http://127.0.0.1:9/x"}, nil)
	ctx := context.Background()
	value := st.leaseValue()
	client.Set(ctx, s.lease, value, 0)
	body := func(doc string) poller.Result { return poller.Result{Body: []byte(doc), Status: 200} }
	fail := func(status int, reason string) poller.Result {
		return poller.Result{Status: status, Err: &poller.Error{Status: status, Reason: reason}}
	}
	steps := []struct {
		r    poller.Result
		want int
	}{
		{body(counted(1)), appendDone},
		{fail(503, "upstream answered 503"), appendDone},
		{fail(503, "upstream answered 503"), appendNothing},
		{fail(502, "upstream answered 502"), appendDone},
		{body(counted(1)), appendDone}, // a recovery
		{body(counted(1)), appendNothing},
		{fail(0, "timeout"), appendDone},
		{body(counted(2)), appendDone},
	}
	for i, step := range steps {
		sum := ""
		if step.r.Err == nil {
			sum = digest(step.r.Body)
		}
		if n, err := s.offer(ctx, value, sum, step.r); err != nil || n != step.want {
			t.Fatalf("step %d: %d, %v; want %d", i, n, err, step.want)
		}
	}
	want := []string{counted(1), "!upstream answered 503", "!upstream answered 502", "ok", "!timeout", counted(2)}
	if got := streamBodies(t, client, s.stream); !slices.Equal(got, want) {
		t.Fatalf("stream %q; want %q", got, want)
	}
}
