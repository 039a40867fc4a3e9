package hub

import (
	"context"
	"net"
	"runtime"
	"testing"
)

// maxIdleStreamHeap bounds the heap one idle stream holds, with the net.Conn of both ends
// of its socket, which take about 800 B of it. On linux/amd64 with go1.26 a stream takes
// about 1,800 B in all, its one leg (a stream may carry several subscriptions) included;
// a watch on its context for a close that only the stream makes took another 500, and a
// drain channel that nothing waits on another 110.
const maxIdleStreamHeap = 1860

// TestIdleStreamFootprint measures the heap that idle streams handed to the hub hold,
// their sockets' net.Conn at both ends included (the clients are in this process too),
// and bounds it per stream. Each is handed over as the HTTP handler does it: its first
// frames read with Next and written, then Serve. It runs alone: the heap is the process's.
func TestIdleStreamFootprint(t *testing.T) {
	const n = 2000
	h := newHub(t, Config{})
	src := newDocSource()
	serveClients(t, h, src, 1, nil) // the topic, its source and the writers
	before := liveHeap()
	clients := handOverClients(t, h, src, n)
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

// handOverClients connects n clients over loopback and hands each server end to the hub
// as the HTTP handler does: the response header and the first frames, read with Next,
// are written first. It returns the clients' ends.
func handOverClients(t *testing.T, h *Hub, src Source, n int) []net.Conn {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	clients := make([]net.Conn, n)
	for i := range clients {
		sc, cc := acceptPair(t, ln)
		clients[i] = cc
		sub, err := h.Subscribe("k", func() Source { return src }, "", JSONPatch)
		if err != nil {
			t.Fatal(err)
		}
		frames, err := sub.Next(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		out := append(net.Buffers{[]byte(testHead)}, frames...)
		if _, err := out.WriteTo(sc); err != nil {
			t.Fatal(err)
		}
		sub.Serve(context.Background(), sc)
	}
	return clients
}
