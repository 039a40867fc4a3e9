package hub

import (
	"runtime"
	"testing"
)

// TestIdleStreamsHoldNoGoroutine: 2,000 idle streams handed to the hub add a handful of
// goroutines, not one each, and the writers watch every socket until its client leaves.
func TestIdleStreamsHoldNoGoroutine(t *testing.T) {
	const n = 2000
	h := newHub(t, Config{})
	src := newDocSource()
	serveClients(t, h, src, 1, nil) // the topic, its source and the writers
	before := runtime.NumGoroutine()
	clients := serveClients(t, h, src, n, nil)
	if grown := runtime.NumGoroutine() - before; grown > n/20 {
		t.Fatalf("%d idle streams added %d goroutines", n, grown)
	}
	if w := watched(h); w != n+1 {
		t.Fatalf("%d sockets watched for %d streams", w, n+1)
	}
	for _, c := range clients {
		_ = c.conn.Close()
	}
	waitSubscribers(t, h, 1)
	if w := watched(h); w != 1 {
		t.Fatalf("%d sockets watched for 1 stream", w)
	}
}
