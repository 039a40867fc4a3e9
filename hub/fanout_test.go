package hub

import (
	"sync"
	"testing"
	"time"
)

// TestFanoutWaitsForThePassesInFlight: wait returns once every pass counted before it
// ended, not before, and at most after its bound when one never ends.
func TestFanoutWaitsForThePassesInFlight(t *testing.T) {
	var f fanout
	start := time.Now()
	f.wait(time.Hour) // nothing in flight
	if d := time.Since(start); d > 50*time.Millisecond {
		t.Fatalf("wait with nothing in flight took %v", d)
	}
	f.begin()
	f.begin()
	returned := make(chan struct{})
	go func() { f.wait(time.Hour); close(returned) }()
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
	f.wait(30 * time.Millisecond)
	if d := time.Since(start); d < 30*time.Millisecond || d > 5*time.Second {
		t.Fatalf("wait for a pass that never ends took %v, want its bound of 30ms", d)
	}
}

// TestSubscribeWaitsForTheFanOut: a client that subscribes while a change is being
// written to the handed-over streams waits until that is done, at most admitWait; then
// it starts from the log that holds the change.
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
	subscribed := make(chan *Subscription, 1)
	go func() {
		sub, err := h.Subscribe("k", func() Source { return src }, "", JSONPatch)
		if err != nil {
			t.Error(err)
		}
		subscribed <- sub
	}()
	select {
	case <-subscribed:
		t.Fatal("a client subscribed while the fan-out was in flight")
	case <-time.After(admitWait / 2):
	}
	src.send(t, docs[1])
	for _, cc := range clients {
		cc.waitID(t, ids[1], 10*time.Second)
	}
	tp.fan.end()
	var c *client
	select {
	case sub := <-subscribed:
		if sub == nil {
			t.FailNow()
		}
		t.Cleanup(sub.Close)
		c = &client{sub: sub, format: JSONPatch}
	case <-time.After(5 * time.Second):
		t.Fatal("the client did not subscribe once the fan-out ended")
	}
	if err := c.read(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if c.id != ids[1] || c.events[0].Type != "snapshot" {
		t.Fatalf("the client started from %s %q, want the snapshot of the change written meanwhile, %q",
			c.events[0].Type, c.id, ids[1])
	}

	tp.fan.begin() // a fan-out that never ends holds no client longer than admitWait
	start := time.Now()
	subscribe(t, h, src, ids[1])
	if d := time.Since(start); d < admitWait || d > admitWait+5*time.Second {
		t.Errorf("subscribing during a fan-out that never ends took %v, want about %v", d, admitWait)
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
