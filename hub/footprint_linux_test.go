package hub

import (
	"runtime"
	"testing"
)

// maxIdleStreamHeap bounds the heap one idle stream holds, with the net.Conn of both ends
// of its socket, which take about 800 B of it. On linux/amd64 with go1.26 a stream takes
// about 1,950 B in all; a watch on its context for a close that only the stream makes
// took another 500, and a drain channel that nothing waits on another 100.
const maxIdleStreamHeap = 2000

// TestIdleStreamFootprint measures the heap that idle streams handed to the hub hold,
// their sockets' net.Conn at both ends included (the clients are in this process too),
// and bounds it per stream. It runs alone: the heap is the process's.
func TestIdleStreamFootprint(t *testing.T) {
	const n = 2000
	h := newHub(t, Config{})
	src := newDocSource()
	serveClients(t, h, src, 1, nil) // the topic, its source and the writers
	before := liveHeap()
	clients := serveClients(t, h, src, n, nil)
	waitSubscribers(t, h, n+1)
	per := (liveHeap() - before) / n
	runtime.KeepAlive(clients)
	t.Logf("%d B of heap per idle stream", per)
	if per > maxIdleStreamHeap {
		t.Fatalf("an idle stream holds %d B of heap, more than %d", per, maxIdleStreamHeap)
	}
}

// liveHeap returns the bytes of live heap objects after a collection.
func liveHeap() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}
