package hub

import (
	"context"
	"net"
	"testing"
	"time"
)

// BenchmarkResumeServe measures one client resuming and being handed to the hub: it
// subscribes with the id of one of the last five versions, in one of the two patch
// formats, and is served on a loopback connection, which writes its catch-up and joins
// the shared writers, where it stays until the end, as in a reconnect storm. The
// connections are made outside the timer; the report's allocations are those of the hub
// per resume. Run it with a bounded count, such as -benchtime 5000x: each resume holds
// two sockets.
func BenchmarkResumeServe(b *testing.B) {
	const behind = 5
	h := New(Config{})
	defer h.Close()
	src := newDocSource()
	sub, err := h.Subscribe("k", func() Source { return src }, "", JSONPatch)
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Close()
	live := &client{sub: sub}
	ids := make([]string, behind+1)
	for i := range ids {
		src.docs <- stormDoc(i)
		for !live.holds(stormDoc(i)) {
			if err := live.read(5 * time.Second); err != nil {
				b.Fatal(err)
			}
		}
		ids[i] = live.id
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	formats := []Format{JSONPatch, MergePatch}
	b.ReportAllocs()
	var clients []net.Conn // kept open, as in a storm: each stream joins the others
	i := 0
	for b.Loop() {
		b.StopTimer()
		server, client := acceptPair(b, ln)
		b.StartTimer()
		sub, err := h.Subscribe("k", func() Source { return src }, ids[i%behind], formats[i%len(formats)])
		if err != nil {
			b.Fatal(err)
		}
		sub.Serve(context.Background(), server)
		clients = append(clients, client)
		i++
	}
	b.StopTimer()
	for _, c := range clients {
		_ = c.Close()
	}
}
