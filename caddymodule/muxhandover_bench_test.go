package caddymodule

import (
	"bufio"
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"
)

// BenchmarkIdleConnection reports what an idle stream connection over HTTP/1.1 costs
// the process, server and client side together: goroutines and memory (live heap and
// goroutine stacks) a connection, for a single stream and for mux connections of 3 and 10 streams, handed
// to the shared writers or, behind a wrapper that keeps them on the ResponseWriter path,
// written by a goroutine of their own. The client side of each connection is a bare
// socket, the same in every case.
//
//	go test -run '^$' -bench BenchmarkIdleConnection -benchtime 1x ./caddymodule/
func BenchmarkIdleConnection(b *testing.B) {
	const conns = 200
	for _, bc := range []struct {
		name    string
		streams int
		path    string
	}{
		{"single", 1, "/single?x=1"},
		{"mux-3", 3, "/?"},
		{"mux-10", 10, "/?"},
		{"single-responsewriter", 1, "/single?opaque=1"},
		{"mux-3-responsewriter", 3, "/?opaque=1"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			rig := newMuxRig(b, "bench"+strings.ReplaceAll(bc.name, "-", "_"), bc.streams,
				func(i int) string { return rowsDoc(i, 0) }, nil)
			path := bc.path
			if !strings.HasPrefix(path, "/single") {
				path += "&stream=" + strings.Join(rig.names, "&stream=")
			}
			for b.Loop() {
				openIdle(b, rig, path, 1, bc.streams) // the loops and the writers
				g, heap := usage()
				open := openIdle(b, rig, path, conns, bc.streams)
				time.Sleep(200 * time.Millisecond) // handlers return after the hand-over
				g2, heap2 := usage()
				b.ReportMetric(float64(g2-g)/conns, "goroutines/conn")
				b.ReportMetric(float64(heap2-heap)/conns, "mem-B/conn")
				for _, c := range open {
					_ = c.Close()
				}
			}
		})
	}
}

// usage returns the goroutines, and the bytes of the live heap and of the goroutines'
// stacks, after a collection.
func usage() (int, int64) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return runtime.NumGoroutine(), int64(ms.HeapAlloc + ms.StackInuse)
}

// openIdle opens n streams at path and reads each until its streams' first snapshots
// came; it returns the bare connections.
func openIdle(b *testing.B, rig *muxRig, path string, n, streams int) []net.Conn {
	b.Helper()
	out := make([]net.Conn, n)
	for i := range out {
		conn, err := net.Dial("tcp", rig.srv.Listener.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = conn.Close() })
		fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n", path)
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(conn)
		for seen := 0; seen < streams; {
			line, err := br.ReadString('\n')
			if err != nil {
				b.Fatalf("reading the first events: %v", err)
			}
			if strings.HasPrefix(line, "event: ") && strings.Contains(line, "snapshot") {
				seen++
			}
		}
		_ = conn.SetReadDeadline(time.Time{})
		out[i] = conn
	}
	return out
}
