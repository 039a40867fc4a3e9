package hub

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// admitWait bounds how long a new subscription waits for a fan-out in flight on its
// topic to end.
const admitWait = 100 * time.Millisecond

// A fanout counts the writer passes that carry a new frame of a topic to its handed-over
// streams, and the source's reading of a new body. A new subscription of the topic waits
// for the count to reach zero before it computes and writes its first frames: a change
// reaches the clients already connected first, so clients that reconnect in a loop, or
// all at once, cannot slow its delivery by taking the processors while it is being
// written. The subscription's catch-up was planned when it subscribed, to the version
// then current, which the clients resuming at that time share; the change it waited for
// follows from the log, so it loses nothing by waiting.
type fanout struct {
	mu   sync.Mutex
	n    int                           // guarded by mu
	done atomic.Pointer[chan struct{}] // closed when n falls to zero; nil while n is zero
}

// preparing holds the topic's new subscriptions, as a pass carrying a new frame does,
// until the function it returns is called: its source calls it before it reads a new
// body, and calls the function once the change is published.
func (t *Topic) preparing() (done func()) {
	t.fan.begin()
	return t.fan.end
}

// begin counts one more pass carrying a new frame.
func (f *fanout) begin() {
	f.mu.Lock()
	if f.n == 0 {
		ch := make(chan struct{})
		f.done.Store(&ch)
	}
	f.n++
	f.mu.Unlock()
}

// end uncounts a pass that begin counted.
func (f *fanout) end() {
	f.mu.Lock()
	if f.n--; f.n == 0 {
		close(*f.done.Swap(nil))
	}
	f.mu.Unlock()
}

// inFlight returns the channel closed when the passes in flight end, or nil when none
// is. It takes no lock: every client of a reconnect storm asks.
func (f *fanout) inFlight() <-chan struct{} {
	if ch := f.done.Load(); ch != nil {
		return *ch
	}
	return nil
}

// wait waits until the count of passes in flight falls to zero, at most max, or until
// ctx ends. Passes that begin before it falls hold it too: under changes that follow one
// another without a pause, max is what bounds it.
func (f *fanout) wait(ctx context.Context, max time.Duration) {
	done := f.inFlight()
	if done == nil {
		return
	}
	t := time.NewTimer(max)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	case <-ctx.Done():
	}
}
