package hub

import (
	"bytes"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/pollsse/caddy-poll-sse/diff"
)

// TestHistoryByteBudget publishes 1,000 changes of a 1 MiB document, each rewriting
// nearly all of it, and checks after a GC that the heap holds no more than the history's
// byte budget plus a constant: the log's budget, the current document and slack. A
// history bounded by count alone holds all 1,000 patches, a GiB.
//
// It does not run in parallel: it measures the heap.
func TestHistoryByteBudget(t *testing.T) {
	const (
		size     = 1 << 20
		changes  = 1000
		budget   = 16 << 20
		logBytes = 1 << 20
		slack    = 8 << 20 // the current document, the frames being built, runtime noise
	)
	doc := bytes.Repeat([]byte("d"), size) // the document JSON, shared by every version
	before := heapAfterGC()

	h := New(Config{HistoryBytes: budget, Linger: time.Hour})
	h.logBytes = logBytes
	defer h.Close()
	sub, err := h.Subscribe("k", func() Source { return idleSource{} }, "", JSONPatch)
	if err != nil {
		t.Fatal(err)
	}
	sub.Close() // the topic lingers; with no subscriber no frame is encoded, only history kept
	tp := topicOf(t, h)
	for i := range changes {
		v := &diff.Version{ID: fmt.Sprintf("v%d", i), JSON: doc}
		tp.Publish(diff.NewChange(v, bigPatch(i, size), nil))
	}

	grown := heapAfterGC() - before
	t.Logf("heap grew %d MiB over %d changes of %d MiB; history holds %d versions, %d MiB",
		grown>>20, changes, size>>20, tp.hist.n, tp.hist.size>>20)
	if limit := int64(budget + logBytes + slack); grown > limit {
		t.Fatalf("heap grew %d MiB, more than the history budget %d MiB + log %d MiB + %d MiB",
			grown>>20, budget>>20, logBytes>>20, slack>>20)
	}
	if tp.hist.size > budget || tp.hist.n < 2 {
		t.Fatalf("history holds %d bytes in %d versions; budget %d", tp.hist.size, tp.hist.n, budget)
	}
	runtime.KeepAlive(doc)
}

// bigPatch returns a distinct allocation of size bytes standing for a JSON Patch; the
// history never reads it.
func bigPatch(i, size int) []byte {
	p := make([]byte, size)
	copy(p, fmt.Sprintf(`[{"op":"replace","path":"/pad","value":"%d`, i))
	return p
}

func heapAfterGC() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// TestHistoryEvictsOldestPastBudget: versions beyond the byte budget are forgotten oldest
// first, a resume from one of them gets a snapshot, and the newest version stays even
// when its patch alone is larger than the budget.
func TestHistoryEvictsOldestPastBudget(t *testing.T) {
	t.Parallel()
	h := newHistory(100, 3*(1000+entryOverhead+2))
	for i := range 10 {
		h.add(fmt.Sprintf("v%d", i), make([]byte, 1000), diff.Touches{}, false)
	}
	if h.n != 3 {
		t.Fatalf("%d versions held; want 3", h.n)
	}
	if _, ok := h.patchesSince("v6", 1<<20); ok {
		t.Fatal("an evicted version is still resumable")
	}
	if p, ok := h.patchesSince("v7", 1<<20); !ok || len(p) != 2 {
		t.Fatalf("resume from v7: %d patches, %v; want 2", len(p), ok)
	}
	if _, ok := h.patchesSince("v7", 1500); ok {
		t.Fatal("patches beyond the limit were returned")
	}
	h.add("huge", make([]byte, 10_000), diff.Touches{}, false)
	if h.n != 1 || h.size != int64(10_000+len("huge")+entryOverhead) {
		t.Fatalf("%d versions, %d bytes held after a patch beyond the budget; want the newest alone", h.n, h.size)
	}
	if _, ok := h.patchesSince("huge", 0); !ok {
		t.Fatal("the newest version is not in the history")
	}
}
