package hub

import (
	"testing"
	"time"
)

// TestJoinAndLeaveLeaveTheLogToItsReaders: subscribing and closing take no write lock on
// the topic's log, so clients that come and go in a crowd never hold up the delivery of
// a change to the live subscribers. While a reader holds the log, a client subscribes
// and closes; before, each of those waited for every reader to finish.
func TestJoinAndLeaveLeaveTheLogToItsReaders(t *testing.T) {
	t.Parallel()
	h := New(Config{Linger: time.Hour, Heartbeat: time.Hour})
	defer h.Close()
	subscribeIn(t, h, idleSource{}, "", JSONPatch) // the live subscriber the topic keeps
	tp := topicOf(t, h)
	tp.mu.RLock() // a reader of the log, as each live subscriber is on every change
	done := make(chan error, 1)
	go func() {
		for range 10 {
			sub, err := h.Subscribe("k", func() Source { return idleSource{} }, "", MergePatch)
			if err != nil {
				done <- err
				return
			}
			sub.Close()
		}
		done <- nil
	}()
	select {
	case err := <-done:
		tp.mu.RUnlock()
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		tp.mu.RUnlock()
		<-done
		t.Fatal("subscribing and closing waited for a reader of the log")
	}
	if n := tp.subscribers(); n != 1 {
		t.Fatalf("%d subscribers counted; want 1", n)
	}
}
