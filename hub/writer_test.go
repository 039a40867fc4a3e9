package hub

import (
	"runtime"
	"testing"
	"time"
)

// TestPassYieldsTheProcessor runs a hub on one processor, so that a goroutine runs
// during a pass only when the pass lets it, and has a goroutine count, as often as it
// runs, the streams a change has reached. A pass over 10×passYield streams yields at 9
// points, and the goroutine must see it at half of them at least: a pass that held its
// processor would be seen only once it had reached them all.
func TestPassYieldsTheProcessor(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1)) // one writer, one shard
	const n = 10 * passYield
	h, src, _ := handedOverClients(t, n)
	src.send(t, doc(0))
	tp := topicOf(t, h)
	head := func() uint64 {
		tp.mu.RLock()
		defer tp.mu.RUnlock()
		return tp.head
	}
	h0 := waitReached(t, tp, head, n)

	seen := make(chan []int)
	go func() { // it waits its turn behind the pass, and takes it whenever it is let
		var counts []int
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
			c := reached(tp, h0+1)
			counts = append(counts, c)
			if c == n {
				break
			}
			runtime.Gosched()
		}
		seen <- counts
	}()
	src.send(t, doc(1))
	counts := <-seen
	if h := waitReached(t, tp, head, n); h != h0+1 {
		t.Fatalf("the change took %d entries of the log, want 1", h-h0)
	}
	if counts[len(counts)-1] != n {
		t.Fatalf("the change reached %d of %d streams", counts[len(counts)-1], n)
	}
	mid := map[int]bool{} // how far the pass had got, each time it let the goroutine run
	for _, c := range counts {
		if c > 0 && c < n {
			mid[c] = true
		}
	}
	if len(mid) < n/passYield/2 {
		t.Fatalf("the goroutine ran mid-pass at %d points, want at least %d of the %d the pass yields at (counts seen: %v)",
			len(mid), n/passYield/2, n/passYield-1, counts)
	}
}

// reached counts the handed-over streams of tp whose subscription has read the log up
// to seq, as a pass leaves it.
func reached(tp *Topic, seq uint64) int {
	c := 0
	for _, st := range tp.streams() {
		st.mu.Lock()
		if st.legs[0].sub.next >= seq {
			c++
		}
		st.mu.Unlock()
	}
	return c
}

// waitReached waits up to 5 s for the log of tp to hold an entry and for each of its n
// streams to have read the log to its head, and returns the head.
func waitReached(t *testing.T, tp *Topic, head func() uint64, n int) uint64 {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if h := head(); h > 0 && reached(tp, h) == n {
			return h
		}
	}
	t.Fatalf("%d streams of %d read the log to its head, %d", reached(tp, head()), n, head())
	return 0
}
