package hub

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestSpread checks the drain schedule: n delays, each in its own slot of the window,
// so that every second of a 4 s window holds a quarter of them give or take one, and
// jittered within their slots rather than evenly spaced.
func TestSpread(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		n      int
		window time.Duration
	}{{1, time.Second}, {7, time.Second}, {2000, 4 * time.Second}, {5000, 5 * time.Second}} {
		r := rand.New(rand.NewPCG(uint64(tc.n), 1))
		delays := spread(tc.n, tc.window, r.Float64)
		if len(delays) != tc.n {
			t.Fatalf("spread(%d): %d delays", tc.n, len(delays))
		}
		slot := tc.window / time.Duration(tc.n)
		offsets := map[time.Duration]bool{}
		for i, d := range delays {
			if d < slot*time.Duration(i) || d > slot*time.Duration(i+1) || d >= tc.window {
				t.Fatalf("spread(%d, %v): delay %d is %v, outside its slot", tc.n, tc.window, i, d)
			}
			offsets[d-slot*time.Duration(i)] = true
		}
		if tc.n > 1 && len(offsets) < tc.n/2 {
			t.Errorf("spread(%d): %d distinct offsets within the slots; want jitter", tc.n, len(offsets))
		}
		perSecond := map[time.Duration]int{}
		for _, d := range delays {
			perSecond[d/time.Second]++
		}
		share := float64(tc.n) * float64(time.Second) / float64(tc.window)
		for s, got := range perSecond {
			if float64(got) > share+1 || tc.window > time.Second && float64(got) < share-1 {
				t.Errorf("spread(%d, %v): second %d holds %d delays, want %.0f±1", tc.n, tc.window, s, got, share)
			}
		}
	}
}

// TestDrainSpreadsServedStreams hands 300 connections to the hub and drains them over
// 1 s: every stream stays open until its moment, none is left open past the window
// (with slack), no fifth of the window holds more than 35 % of the closes, the loop and
// the observer count them as draining meanwhile and not after, and a second drain
// schedules none of them again.
func TestDrainSpreadsServedStreams(t *testing.T) {
	t.Parallel()
	const n, window = 300, time.Second
	rec := newRecorder()
	h := newHub(t, Config{Observer: rec})
	src := newDocSource()
	clients := serveClients(t, h, src, n, nil)
	ended := make([]time.Time, n)
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Go(func() {
			c.run()
			ended[i] = time.Now()
		})
	}
	src.send(t, doc(0))
	ids := versions(t, []string{doc(0)})
	for _, c := range clients {
		c.waitID(t, ids[0], 5*time.Second)
	}
	subs := h.topics["k"].members()
	start := time.Now()
	if got := Drain(subs, window); got != n {
		t.Fatalf("Drain scheduled %d of %d streams", got, n)
	}
	if got := Drain(subs, window); got != 0 {
		t.Errorf("a second Drain scheduled %d streams again", got)
	}
	if ls := h.Loops(); len(ls) != 1 || ls[0].Draining < n*9/10 {
		t.Errorf("loops while draining: %+v, want one with about %d draining", ls, n) // the earliest may be gone
	}
	waitGroup(t, &wg, window+5*time.Second)
	bins := make([]int, 6)
	for i, e := range ended {
		at := e.Sub(start)
		if at > window+time.Second {
			t.Errorf("stream %d ended %v after the drain began; window %v", i, at, window)
		}
		bins[min(int(at/(window/5)), 5)]++
	}
	t.Logf("closes per fifth of the window: %v", bins)
	for i, b := range bins[:5] {
		if b > n*35/100 {
			t.Errorf("fifth %d of the window holds %d of %d closes", i, b, n)
		}
	}
	if !eventually(5*time.Second, func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return rec.draining == 0 && rec.subscribers == 0
	}) {
		t.Errorf("observer: %d draining, %d subscribers after the drain", rec.draining, rec.subscribers)
	}
}

// TestDrainSkipsClosed checks that a closed subscription is not drained and that a drain
// ends a reader of Next with ErrDrained.
func TestDrainSkipsClosed(t *testing.T) {
	t.Parallel()
	h := newHub(t, Config{})
	src := newDocSource()
	a, b := subscribe(t, h, src, ""), subscribe(t, h, src, "")
	a.sub.Close()
	if got := Drain([]*Subscription{a.sub, b.sub}, time.Millisecond); got != 1 {
		t.Fatalf("Drain scheduled %d, want 1: the closed one is not drained", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		_, err := b.sub.Next(ctx)
		if errors.Is(err, ErrDrained) {
			return
		}
		if err != nil {
			t.Fatalf("Next: %v, want ErrDrained", err)
		}
	}
}

// TestRetire checks that a retired hub stops its source at once, refuses new
// subscribers, keeps its streams open with heartbeats, ends them spread over the window
// with ErrDrained, and closes once the last has ended, well before the window's end
// when they leave early.
func TestRetire(t *testing.T) {
	t.Parallel()
	h := newHub(t, Config{Heartbeat: 20 * time.Millisecond})
	src := &endingSource{docSource: newDocSource(), ended: make(chan struct{})}
	readers := make([]*client, 20)
	for i := range readers {
		readers[i] = subscribe(t, h, src, "")
	}
	src.send(t, doc(0))
	for _, c := range readers {
		c.waitDoc(t, doc(0))
	}
	done := make(chan struct{})
	start := time.Now()
	h.Retire(600*time.Millisecond, func() { close(done) })
	select {
	case <-src.ended:
	case <-time.After(5 * time.Second):
		t.Fatal("the source still runs after Retire")
	}
	if _, err := h.Subscribe("k", func() Source { return src }, "", JSONPatch); !errors.Is(err, ErrClosed) {
		t.Errorf("Subscribe on a retired hub: %v, want ErrClosed", err)
	}
	ends := make([]time.Duration, len(readers))
	errs := make([]error, len(readers))
	var wg sync.WaitGroup
	for i, c := range readers {
		wg.Go(func() {
			errs[i] = readUntilEnd(c, 5*time.Second)
			ends[i] = time.Since(start)
			c.sub.Close()
		})
	}
	waitGroup(t, &wg, 10*time.Second)
	for i, err := range errs {
		if !errors.Is(err, ErrDrained) {
			t.Fatalf("reader %d ended with %v, want ErrDrained", i, err)
		}
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the retired hub did not close after its last stream ended")
	}
	slices.Sort(ends)
	t.Logf("readers ended from %v to %v after Retire", ends[0].Round(time.Millisecond), ends[len(ends)-1].Round(time.Millisecond))
	if h.Topics() != 0 {
		t.Errorf("%d topics after the retired hub closed", h.Topics())
	}
}

// TestRetireDrainsLateJoiner checks that a stream that joined just before its hub
// retired, and whose subscription opens after Retire looked for streams, is drained too.
func TestRetireDrainsLateJoiner(t *testing.T) {
	t.Parallel()
	h := newHub(t, Config{})
	src := newDocSource()
	tp, err := h.join("k", func() Source { return src }, JSONPatch, true, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	h.Retire(time.Hour, nil)
	s := h.open(tp, "", JSONPatch, Limits{})
	defer s.Close()
	if s.drainable() {
		t.Fatal("a stream that joined as its hub retired is not drained")
	}
}

// TestRetireWithoutStreams checks that a retired hub with no stream closes at once.
func TestRetireWithoutStreams(t *testing.T) {
	t.Parallel()
	h := newHub(t, Config{})
	src := newDocSource()
	c := subscribe(t, h, src, "")
	c.sub.Close()
	done := make(chan struct{})
	h.Retire(time.Hour, func() { close(done) })
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("a retired hub without streams did not close")
	}
}

// TestCloseCutsRetirement checks that Close during a long retirement ends every stream
// at once and lets the retirement finish.
func TestCloseCutsRetirement(t *testing.T) {
	t.Parallel()
	h := newHub(t, Config{})
	src := newDocSource()
	clients := serveClients(t, h, src, 20, nil)
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Go(c.run)
	}
	src.send(t, doc(0))
	ids := versions(t, []string{doc(0)})
	for _, c := range clients {
		c.waitID(t, ids[0], 5*time.Second)
	}
	done := make(chan struct{})
	h.Retire(time.Hour, func() { close(done) })
	h.Close()
	waitGroup(t, &wg, 5*time.Second)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the retirement did not finish after Close")
	}
}

// endingSource is a docSource that closes ended when its Run returns.
type endingSource struct {
	*docSource
	ended chan struct{}
}

func (s *endingSource) Run(ctx context.Context, t *Topic) {
	defer close(s.ended)
	s.docSource.Run(ctx, t)
}

// readUntilEnd reads c until its subscription ends, and returns why.
func readUntilEnd(c *client, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		if err := c.read(time.Until(deadline)); err != nil {
			return err
		}
	}
}

// waitGroup waits for wg, failing the test after d.
func waitGroup(t *testing.T, wg *sync.WaitGroup, d time.Duration) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("not done within %v", d)
	}
}

// eventually checks cond every 10ms until it holds or d has passed.
func eventually(d time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(d); ; time.Sleep(10 * time.Millisecond) {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// TestLifetimeJitter checks the stretch in which max_connection_lifetime ends a stream:
// the last tenth of the lifetime, the drain window when that is longer, never more than
// the second half; and that Lifetime lies in it.
func TestLifetimeJitter(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ d, drain, want time.Duration }{
		{time.Hour, 0, 6 * time.Minute},
		{time.Hour, 5 * time.Second, 6 * time.Minute},
		{time.Minute, 10 * time.Second, 10 * time.Second},
		{10 * time.Second, 5 * time.Second, 5 * time.Second},
		{time.Second, 5 * time.Second, 500 * time.Millisecond},
		{time.Second, 100 * time.Millisecond, 100 * time.Millisecond},
	} {
		if got := lifetimeJitter(tc.d, tc.drain); got != tc.want {
			t.Errorf("lifetimeJitter(%v, %v) = %v, want %v", tc.d, tc.drain, got, tc.want)
		}
		lim := Limits{MaxLifetime: tc.d, Drain: tc.drain}
		for range 100 {
			if got := lim.Lifetime(); got < tc.d-tc.want || got > tc.d {
				t.Fatalf("Lifetime of %+v: %v, want %v to %v", lim, got, tc.d-tc.want, tc.d)
			}
		}
	}
}
