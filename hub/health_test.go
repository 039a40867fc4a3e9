package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	jsonpatch "github.com/evanphx/json-patch/v5"

	"github.com/pollsse/caddy-poll-sse/diff"
)

// scriptSource runs the steps sent on steps, as a poll loop would call its topic.
type scriptSource struct{ steps chan func(*Topic) }

func (s scriptSource) Run(ctx context.Context, t *Topic) {
	for {
		select {
		case <-ctx.Done():
			return
		case step := <-s.steps:
			step(t)
		}
	}
}

// do runs step in the source and returns once it ran.
func (s scriptSource) do(t *testing.T, step func(*Topic)) {
	t.Helper()
	done := make(chan struct{})
	select {
	case s.steps <- func(tp *Topic) { step(tp); close(done) }:
	case <-time.After(5 * time.Second):
		t.Fatal("source did not take the step")
	}
	<-done
}

// told returns the upstream status the client was last told: healthy when it was told
// nothing.
func (c *client) told(t *testing.T) Status {
	t.Helper()
	for i := len(c.events) - 1; i >= 0; i-- {
		if c.events[i].Type == "upstream" {
			var st Status
			if err := json.Unmarshal([]byte(c.events[i].Data), &st); err != nil {
				t.Fatal(err)
			}
			return st
		}
	}
	return Status{OK: true}
}

// TestCatchUpBringsUpstreamStatus drives a topic through a long random run of changes,
// failures with changing statuses and reasons, and recoveries, while subscribers in
// each format read only now and then: often so late that they fell out of the log and
// are caught up. After every read a subscriber holds the last document and was last told
// the upstream status the source last reported, whatever it missed.
func TestCatchUpBringsUpstreamStatus(t *testing.T) {
	t.Parallel()
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	h := newHub(t, Config{})
	src := scriptSource{steps: make(chan func(*Topic))}
	clients := []*client{subscribeIn(t, h, src, "", JSONPatch), subscribeIn(t, h, src, "", MergePatch), subscribeIn(t, h, src, "", Snapshot)}
	for _, c := range clients {
		if err := c.read(time.Second); err != nil { // the retry frame
			t.Fatal(err)
		}
	}
	tr := new(diff.Tracker)
	want, last := Status{OK: true}, ""
	reasons := []string{"A", "B", "timeout"}
	codes := []int{0, 502, 503}
	for round := range 60 {
		steps := 1 + rng.IntN(3*logWindow)
		for range steps {
			switch rng.IntN(4) {
			case 0:
				code, reason := codes[rng.IntN(len(codes))], reasons[rng.IntN(len(reasons))]
				src.do(t, func(tp *Topic) { tp.Fail(code, reason) })
				want = Status{Code: code, Reason: reason}
			case 1:
				src.do(t, func(tp *Topic) { tp.Recover() })
				want = Status{OK: true}
			default:
				last = doc(rng.IntN(1000))
				src.do(t, func(tp *Topic) {
					ch, changed, err := tr.Update([]byte(last))
					if err != nil {
						panic(err)
					}
					tp.Recover()
					if changed {
						tp.Publish(ch)
					}
				})
				want = Status{OK: true}
			}
		}
		// A heartbeat, so that every read has a frame even when no step changed anything.
		src.do(t, func(tp *Topic) { tp.heartbeat(time.Now().Add(time.Hour)) })
		for i, c := range clients {
			if err := c.read(time.Second); err != nil {
				t.Fatalf("round %d, client %d: %v", round, i, err)
			}
			if got := c.told(t); got != want {
				t.Fatalf("round %d (%d steps), client %d in format %v: told %+v, upstream %+v", round, steps, i, c.format, got, want)
			}
			if last != "" && !jsonpatch.Equal(c.doc, []byte(last)) {
				t.Fatalf("round %d, client %d: holds %s, want %s", round, i, c.doc, last)
			}
		}
	}
}

// TestCatchUpResendsChangedReason: a subscriber told of one failure that fell out of the
// log while the reason changed is told the new reason by its catch-up.
func TestCatchUpResendsChangedReason(t *testing.T) {
	t.Parallel()
	h := newHub(t, Config{})
	src := scriptSource{steps: make(chan func(*Topic))}
	c := subscribe(t, h, src, "")
	src.do(t, func(tp *Topic) { tp.Fail(503, "A") })
	for len(c.events) == 0 {
		if err := c.read(time.Second); err != nil {
			t.Fatal(err)
		}
	}
	for i := range logWindow + 1 {
		src.do(t, func(tp *Topic) { tp.Fail(503, fmt.Sprint("flapping ", i%2)) })
	}
	src.do(t, func(tp *Topic) { tp.Fail(503, "B") })
	n := len(c.events)
	if err := c.read(time.Second); err != nil {
		t.Fatal(err)
	}
	if got := c.told(t); got.Reason != "B" || len(c.events) != n+1 {
		t.Fatalf("caught up with %v; want one upstream event with reason B", c.events[n:])
	}
}
