package hub

import (
	"context"
	"io"
	"net"
	"testing"
	"time"
)

// TestStreamEndsWithItsContextAndAtItsEnd serves streams over loopback sockets, which
// the shared writers write and the close watch watches: one ends when the caller's
// context does, one at its end time, and one served with neither stays open.
func TestStreamEndsWithItsContextAndAtItsEnd(t *testing.T) {
	t.Parallel()
	h := newHub(t, Config{})
	src := newDocSource()
	serveClients(t, h, src, 1, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
	withCtx := serveSocket(t, h, func(sub *Subscription, c net.Conn) { sub.Serve(ctx, c) })
	timed := serveSocket(t, h, func(sub *Subscription, c net.Conn) {
		sub.ServeUntil(context.Background(), c, start.Add(300*time.Millisecond))
	})
	free := serveSocket(t, h, func(sub *Subscription, c net.Conn) { sub.Serve(context.Background(), c) })

	waitEnded(t, timed, "the stream with an end time")
	if took := time.Since(start); took < 250*time.Millisecond {
		t.Fatalf("the stream with an end time ended after %v, before it", took)
	}
	select {
	case <-withCtx:
		t.Fatal("the stream ended before its context")
	default:
	}
	cancel()
	waitEnded(t, withCtx, "the stream whose context ended")
	select {
	case <-free:
		t.Fatal("a stream with neither a context that ends nor an end time ended")
	case <-time.After(200 * time.Millisecond):
	}
}

// serveSocket subscribes a client over a loopback socket, hands the server's end to the
// hub with serve, and returns a channel closed when the hub closes the connection.
func serveSocket(t *testing.T, h *Hub, serve func(*Subscription, net.Conn)) <-chan struct{} {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	server, client := acceptPair(t, ln)
	sub, err := h.Subscribe("k", func() Source { return nil }, "", JSONPatch)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := server.Write([]byte(testHead)); err != nil {
		t.Fatal(err)
	}
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		_, _ = io.Copy(io.Discard, client)
	}()
	serve(sub, server)
	return ended
}

func waitEnded(t *testing.T, ended <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatalf("%s is still open", what)
	}
}
