package redisstore

import (
	"context"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/redis/go-redis/v9"

	"github.com/pollsse/caddy-poll-sse/hub"
	"github.com/pollsse/caddy-poll-sse/poller"
	"github.com/pollsse/caddy-poll-sse/redisstore/redistest"
)

// The documented bound of a loop's Redis memory (README, "Scale-out with Redis"): each
// version kept costs its compressed size plus entryOverhead, times allocatorSlack for the
// allocator's size classes (jemalloc rounds an allocation up by less than a quarter), and
// the lease costs leaseBytes.
const (
	entryOverhead  = 100
	allocatorSlack = 1.25
	leaseBytes     = 200
)

// TestStreamMemoryWithinFormula appends 1,000 changes of a 256 KB document, as a lease
// holder does, and checks Redis's own count of the stream's and lease's memory against
// the documented formula, with the compressed size measured independently by a zstd
// encoder of its own.
func TestStreamMemoryWithinFormula(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	client := redis.NewClient(&redis.Options{Addr: r.Addr})
	t.Cleanup(func() { _ = client.Close() })
	st := &Store{Client: client, History: 1000}
	s := st.Source(poller.Config{URL: "http://127.0.0.1:9/board"}, nil)
	ctx := context.Background()
	value := st.leaseValue()
	client.Set(ctx, s.lease, value, 0)
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	const changes, sampled = 1000, 10 // the compressed size is measured on every tenth
	var raw, compressed int
	b := newBoard(1000)
	var doc []byte // one buffer for every change: fresh 256 KB buffers cost the race detector dearly
	for i := range changes {
		b.next(20)
		doc = b.appendDoc(doc[:0])
		if n, err := s.offer(ctx, value, digest(doc), poller.Result{Body: doc, Status: 200}); err != nil || n != appendDone {
			t.Fatalf("change %d: %d, %v", i, n, err)
		}
		raw += len(doc)
		if i%sampled == 0 {
			compressed += len(enc.EncodeAll(doc, nil))
		}
	}
	compressed *= sampled
	entries, err := client.XLen(ctx, s.stream).Result()
	if err != nil || entries != changes {
		t.Fatalf("stream holds %d entries, %v; want %d", entries, err, changes)
	}
	used := memoryUsage(t, client, s.stream) + memoryUsage(t, client, s.lease)
	c := float64(compressed) / changes
	bound := int64(float64(entries)*allocatorSlack*(c+entryOverhead)) + leaseBytes
	if used > bound {
		t.Errorf("Redis holds %d bytes for the loop; the formula bounds it at %d", used, bound)
	}
	t.Logf("%d versions of a %d-byte document: compressed %.0f bytes (ratio %.1f), Redis %d bytes (%.0f per version), formula %d",
		changes, raw/changes, c, float64(raw)/float64(compressed), used, float64(used)/float64(entries), bound)
}

func memoryUsage(t *testing.T, c redis.UniversalClient, key string) int64 {
	t.Helper()
	n, err := c.MemoryUsage(context.Background(), key, 0).Result()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestStreamTrimmedToHistory appends more changes than the history keeps: the stream
// keeps about History entries (MAXLEN ~ trims whole nodes).
func TestStreamTrimmedToHistory(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	client := redis.NewClient(&redis.Options{Addr: r.Addr})
	t.Cleanup(func() { _ = client.Close() })
	st := &Store{Client: client, History: 50}
	s := st.Source(poller.Config{URL: "http://127.0.0.1:9/board"}, nil)
	ctx := context.Background()
	value := st.leaseValue()
	client.Set(ctx, s.lease, value, 0)
	b := newBoard(40)
	for range 400 {
		b.next(4)
		doc := b.doc()
		if _, err := s.offer(ctx, value, digest(doc), poller.Result{Body: doc, Status: 200}); err != nil {
			t.Fatal(err)
		}
	}
	// A stream node holds up to 100 entries (stream-node-max-entries), and MAXLEN ~
	// removes whole nodes only.
	if n, _ := client.XLen(ctx, s.stream).Result(); n < 50 || n > 50+100 {
		t.Fatalf("stream holds %d entries; want 50 to 150", n)
	}
}

// heapPeak samples the bytes of live heap objects until stop is closed, and returns the
// largest sample.
func heapPeak(stop <-chan struct{}) func() uint64 {
	var (
		wg   sync.WaitGroup
		peak uint64
	)
	wg.Go(func() {
		sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			metrics.Read(sample)
			peak = max(peak, sample[0].Value.Uint64())
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	})
	return func() uint64 { wg.Wait(); return peak }
}

// restorePeak fills a stream with docs documents of docSize bytes that hardly compress,
// eight runs of documents alike (so that the node spends its time reading, not parsing,
// and the hub keeps as much whatever docs is), then
// starts a node on it and returns how much its heap grew, at most, until its client
// held the last document.
func restorePeak(t *testing.T, docs, docSize int) int64 {
	r := redistest.New(t)
	client := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer client.Close()
	st := &Store{Client: client, LeaseTTL: time.Hour}
	cfg := poller.Config{URL: "http://127.0.0.1:9/blobs"}
	_, stream := st.Keys(cfg)
	var last []byte
	for i := range docs {
		if i%(docs/8) == 0 {
			last = randomDoc(docSize)
		}
		addBodies(t, client, stream, [][]byte{last})
	}
	h := hub.New(hub.Config{History: 4, HistoryBytes: 2 << 20, Linger: time.Hour})
	defer h.Close()
	n := &node{hub: h, store: st, cfg: cfg}
	runtime.GC()
	stop := make(chan struct{})
	base, peak := heapBytes(), heapPeak(stop)
	c := n.subscribe(t, "")
	c.waitDoc(t, string(last))
	close(stop)
	c.sub.Close()
	return int64(peak()) - int64(base)
}

func heapBytes() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// TestRestoreHeapBounded starts a node on a full stream of large documents: its heap
// grows by less than restoreHeapBound while it restores them, and a stream five times
// larger costs it no more than restoreHeapSlack more, since it reads a page at a time.
// Reading a stream whole would cost its size. Not parallel: it measures the process's
// heap.
func TestRestoreHeapBounded(t *testing.T) {
	const (
		docSize = 256 << 10
		// restoreHeapBound: what the hub keeps whatever the stream's size (its frame
		// log, up to 16 MiB, and history, 2 MiB here: eight versions of 256 KiB use
		// less), the document parsed and its patch, a page as read (about readBudget)
		// and decoded, and the garbage the collector leaves at GOGC=20.
		restoreHeapBound = 32 << 20
		restoreHeapSlack = 8 << 20
	)
	defer debug.SetGCPercent(debug.SetGCPercent(20))
	small := restorePeak(t, 32, docSize)
	large := restorePeak(t, 160, docSize)
	t.Logf("restoring %d KiB documents: the heap grew by %.1f MiB at most for 8 MiB of them, %.1f MiB for 40 MiB",
		docSize>>10, float64(small)/(1<<20), float64(large)/(1<<20))
	if large > restoreHeapBound {
		t.Errorf("the heap grew by %d MiB restoring 40 MiB of documents; want at most %d MiB", large>>20, restoreHeapBound>>20)
	}
	if large-small > restoreHeapSlack {
		t.Errorf("a stream 32 MiB larger grew the heap %d MiB more; want at most %d MiB", (large-small)>>20, restoreHeapSlack>>20)
	}
}
