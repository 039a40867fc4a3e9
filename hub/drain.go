package hub

import (
	"errors"
	"math/rand/v2"
	"time"

	"go.uber.org/zap"
)

// ErrDrained is returned by Next when a drain has ended the subscription.
var ErrDrained = errors.New("stream drained")

// A drain ends streams that must end, such as those of a route that a new config
// changed or removed, without cutting them all at once: each ends at a moment of its
// own within the drain's window, so that their clients, which then reconnect after their
// own jittered `retry:`, come back spread over the window rather than in one burst.

// Drain ends each of subs at a random moment of the next window, unless a drain already
// ends it or it is closed, and returns how many it scheduled. The moments are spread
// evenly (see spread), in random order. A stream served with Serve is closed then; a
// reader of Next gets ErrDrained.
func Drain(subs []*Subscription, window time.Duration) int {
	pending := make([]*Subscription, 0, len(subs))
	for _, s := range subs {
		if s.drainable() {
			pending = append(pending, s)
		}
	}
	rand.Shuffle(len(pending), func(i, j int) { pending[i], pending[j] = pending[j], pending[i] })
	n := 0
	for i, d := range spread(len(pending), window, rand.Float64) {
		if pending[i].drainIn(d) {
			n++
		}
	}
	return n
}

// spread returns n delays within window: the window is cut into n equal slots, and
// delay i falls at a random point of slot i, r returning numbers in [0, 1). So every
// delay is jittered, yet any stretch of the window holds its share of them, give or take
// one: no second of a drain takes more closes than another.
func spread(n int, window time.Duration, r func() float64) []time.Duration {
	out := make([]time.Duration, n)
	slot := float64(window) / float64(max(n, 1))
	for i := range out {
		out[i] = time.Duration(slot * (float64(i) + r()))
	}
	return out
}

// drainable reports whether s is open and no drain ends it yet.
func (s *Subscription) drainable() bool {
	s.endMu.Lock()
	defer s.endMu.Unlock()
	return s.timer == nil && !s.ended && !s.gone
}

// drainIn makes s end after d, unless it is closed or a drain already ends it; it reports
// whether it did. From then until it is closed, s counts as draining.
func (s *Subscription) drainIn(d time.Duration) bool {
	s.endMu.Lock()
	defer s.endMu.Unlock()
	if s.timer != nil || s.ended || s.gone {
		return false
	}
	s.timer = time.AfterFunc(d, s.endNow)
	s.t.draining.Add(1)
	s.t.hub.cfg.Observer.Draining(1)
	return true
}

// endNow ends s: Next returns ErrDrained from then on, and a stream served with Serve is
// closed.
func (s *Subscription) endNow() {
	s.endMu.Lock()
	if s.ended || s.gone {
		s.endMu.Unlock()
		return
	}
	s.ended = true
	if s.end != nil {
		close(s.end)
	}
	f := s.onEnd
	s.endMu.Unlock()
	if f != nil {
		f()
	}
}

// onDrain makes f end the stream that serves s when a drain ends it, and reports
// whether s is still to be served: false when a drain has ended it already.
func (s *Subscription) onDrain(f func()) bool {
	s.endMu.Lock()
	defer s.endMu.Unlock()
	s.onEnd = f
	return !s.ended
}

// forgetDrain stops the drain of a subscription being closed, and uncounts it.
func (s *Subscription) forgetDrain() {
	s.endMu.Lock()
	defer s.endMu.Unlock()
	s.gone = true
	s.onEnd = nil
	if s.timer != nil {
		s.timer.Stop()
		s.t.draining.Add(-1)
		s.t.hub.cfg.Observer.Draining(-1)
	}
}

// Retire ends a hub that no config uses any more without cutting its streams at once.
// Its sources stop now, so nothing polls for it; it takes no new subscribers; heartbeats
// go on; and its streams end spread over window, as Drain ends them. It closes when its
// last stream has ended, or at the end of window at the latest, then calls done, if not
// nil. Close cuts a retirement short.
func (h *Hub) Retire(window time.Duration, done func()) {
	h.mu.Lock()
	if h.closed || h.retired.Load() {
		h.mu.Unlock()
		return
	}
	h.retireWindow.Store(int64(window))
	h.retired.Store(true)
	topics := make([]*Topic, 0, len(h.topics))
	for _, t := range h.topics {
		topics = append(topics, t)
	}
	h.mu.Unlock()
	var subs []*Subscription
	for _, t := range topics {
		t.halt()
		members := t.members()
		h.cfg.Logger.Info("retiring poll loop", append(h.cfg.Describe(t.key),
			zap.Int("streams", len(members)), zap.Duration("drain", window))...)
		subs = append(subs, members...)
	}
	Drain(subs, window)
	if h.subs.Load() == 0 {
		h.emptied()
	}
	go h.closeAfter(window, subs, done)
}

// Retired reports whether Retire was called.
func (h *Hub) Retired() bool { return h.retired.Load() }

// emptied tells a retiring hub that it has no stream left.
func (h *Hub) emptied() { h.emptyOnce.Do(func() { close(h.empty) }) }

// closeAfter closes a retiring hub once it has no stream left, or after window. The
// drain's own timers end its streams within the window; one that has not fired yet, as
// on a busy machine, is ended first, so that each stream ends drained, as it was told.
func (h *Hub) closeAfter(window time.Duration, subs []*Subscription, done func()) {
	tm := time.NewTimer(window)
	defer tm.Stop()
	select {
	case <-tm.C:
	case <-h.empty:
	case <-h.quit:
	}
	for _, s := range subs {
		s.endNow()
	}
	h.Close()
	if done != nil {
		done()
	}
}

// drainingNow returns how many of the topic's subscriptions a drain is to end.
func (t *Topic) drainingNow() int { return int(t.draining.Load()) }
