package hub

import (
	"context"
	"sync"
	"testing"
	"time"
)

// TestFanoutWaitsForThePassesInFlight: wait returns once every pass counted before it
// ended, not before, and at most after its bound when one never ends.
func TestFanoutWaitsForThePassesInFlight(t *testing.T) {
	var f fanout
	start := time.Now()
	f.wait(context.Background(), time.Hour) // nothing in flight
	if d := time.Since(start); d > 50*time.Millisecond {
		t.Fatalf("wait with nothing in flight took %v", d)
	}
	f.begin()
	f.begin()
	returned := make(chan struct{})
	go func() { f.wait(context.Background(), time.Hour); close(returned) }()
	f.end()
	select {
	case <-returned:
		t.Fatal("wait returned with one pass still in flight")
	case <-time.After(50 * time.Millisecond):
	}
	f.end()
	select {
	case <-returned:
	case <-time.After(5 * time.Second):
		t.Fatal("wait did not return once the passes ended")
	}
	if f.inFlight() != nil {
		t.Fatal("a fan-out is in flight after every pass ended")
	}

	f.begin() // never ends
	start = time.Now()
	f.wait(context.Background(), 30*time.Millisecond)
	if d := time.Since(start); d < 30*time.Millisecond || d > 5*time.Second {
		t.Fatalf("wait for a pass that never ends took %v, want its bound of 30ms", d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the client left
	start = time.Now()
	f.wait(ctx, time.Hour)
	if d := time.Since(start); d > time.Second {
		t.Fatalf("wait for a client that left took %v", d)
	}
}

// TestSubscribeWaitsForTheFanOut: a client that subscribes while a change is being
// written to the handed-over streams gets no frame until that is done, at most
// admitWait; then it gets what was planned when it subscribed, and the change from the
// log after it.
func TestSubscribeWaitsForTheFanOut(t *testing.T) {
	h, src, clients := handedOverClients(t, 4)
	docs := []string{doc(0), doc(1)}
	ids := versions(t, docs)
	src.send(t, docs[0])
	for _, c := range clients {
		c.waitID(t, ids[0], 10*time.Second)
	}
	tp := topicOf(t, h)

	tp.fan.begin() // a pass writing a change is in flight
	c := subscribe(t, h, src, "")
	read := make(chan error, 1)
	go func() { read <- c.read(5 * time.Second) }()
	select {
	case err := <-read:
		t.Fatalf("the client read %d batches (%v) while the fan-out was in flight", len(c.batches), err)
	case <-time.After(admitWait / 2):
	}
	src.send(t, docs[1])
	for _, cc := range clients {
		cc.waitID(t, ids[1], 10*time.Second)
	}
	tp.fan.end()
	if err := <-read; err != nil {
		t.Fatal(err)
	}
	if c.id != ids[0] || c.events[0].Type != "snapshot" {
		t.Fatalf("the client's first frames hold %s %q, want the snapshot planned when it subscribed, %q",
			c.events[0].Type, c.id, ids[0])
	}
	c.waitDoc(t, docs[1])

	tp.fan.begin() // a fan-out that never ends holds no client longer than admitWait
	start := time.Now()
	late := subscribe(t, h, src, ids[1])
	if err := late.read(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < admitWait || d > admitWait+5*time.Second {
		t.Errorf("the first frames during a fan-out that never ends came after %v, want about %v", d, admitWait)
	}
	tp.fan.end()
}

// TestFanOutCountReturnsToZero: over many changes to many handed-over streams, with
// clients joining and leaving among them, every pass counted as carrying a change ends,
// so that no client waits once the writing is done.
func TestFanOutCountReturnsToZero(t *testing.T) {
	h, src, clients := handedOverClients(t, 40)
	const changes = 200
	docs := make([]string, changes)
	for i := range docs {
		docs[i] = doc(i)
	}
	ids := versions(t, docs)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() { // clients come and go while the changes are written
		for {
			select {
			case <-stop:
				return
			default:
			}
			more := serveClients(t, h, src, 2, nil)
			for _, c := range more {
				_ = c.conn.Close()
			}
		}
	})
	for _, d := range docs {
		src.send(t, d)
	}
	close(stop)
	wg.Wait()
	for _, c := range clients {
		c.waitID(t, ids[changes-1], 10*time.Second)
	}
	tp := topicOf(t, h)
	deadline := time.Now().Add(5 * time.Second)
	for tp.fan.inFlight() != nil {
		if time.Now().After(deadline) {
			tp.fan.mu.Lock()
			n := tp.fan.n
			tp.fan.mu.Unlock()
			t.Fatalf("%d passes still counted in flight 5s after every client had every change", n)
		}
		time.Sleep(time.Millisecond)
	}
}

// handedOverClients starts a hub whose topic "k" has n clients handed over with Serve,
// each reading in a goroutine of its own, fed by the returned source.
func handedOverClients(t *testing.T, n int) (*Hub, *docSource, []*connClient) {
	t.Helper()
	h := New(Config{})
	t.Cleanup(h.Close)
	src := newDocSource()
	clients := serveClients(t, h, src, n, nil)
	for _, c := range clients {
		go c.run()
	}
	return h, src, clients
}
