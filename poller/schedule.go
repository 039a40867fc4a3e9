package poller

import (
	"context"
	"time"
)

// maxStartSpread bounds the interval that sets the start jitter: the first poll waits up to a
// quarter of min(Interval, maxStartSpread).
const maxStartSpread = time.Second

// Clock tells the time and waits. The real clock is the default; tests drive a fake one.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// After returns a channel that receives once d has passed.
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Run polls until ctx ends, calling fn with each result on Run's goroutine; a poll never
// overlaps the previous one. The first poll waits a start jitter in [0, min(Interval, 1s)/4).
// After a success (304 included) the next poll starts Interval after the previous one
// started, at once if that has passed. After the n-th consecutive failure it waits a random
// time in [d/2, d], d = min(Interval·2^n, MaxBackoff), but never less than Interval nor than
// the upstream's Retry-After on a 429 or 503. Poke interrupts any wait. Run starts without
// remembered validators or failures, and is called once per Poller.
func (p *Poller) Run(ctx context.Context, fn func(Result)) {
	p.forget()
	p.setFailures(0)
	wait := p.startJitter()
	for p.sleep(ctx, wait) {
		res := p.Poll(ctx)
		if ctx.Err() != nil {
			return
		}
		fn(res)
		wait = p.nextWait(res)
	}
}

// Poke makes Run poll at once, interrupting any wait. It never blocks: pokes that arrive
// while a poll is in flight, or together, make one extra poll.
func (p *Poller) Poke() {
	select {
	case p.poke <- struct{}{}:
	default:
	}
}

// Backoff reports how many polls in a row have failed and when the next poll is due. It is
// safe to call from any goroutine.
func (p *Poller) Backoff() (failures int, next time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.failures, p.next
}

// sleep waits d, or less if poked, and reports whether ctx is still alive.
func (p *Poller) sleep(ctx context.Context, d time.Duration) bool {
	d = max(d, 0)
	p.mu.Lock()
	p.next = p.cfg.Clock.Now().Add(d)
	p.mu.Unlock()
	if d == 0 {
		// The poll about to start serves any pending poke.
		select {
		case <-p.poke:
		default:
		}
		return ctx.Err() == nil
	}
	select {
	case <-ctx.Done():
		return false
	case <-p.poke:
		return true
	case <-p.cfg.Clock.After(d):
		return true
	}
}

// nextWait returns the wait before the poll after res, counted from res's end.
func (p *Poller) nextWait(res Result) time.Duration {
	if res.Err == nil {
		p.setFailures(0)
		return p.cfg.Interval - res.Duration
	}
	p.mu.Lock()
	p.failures++
	n := p.failures
	p.mu.Unlock()
	return max(p.backoff(n), res.RetryAfter)
}

func (p *Poller) setFailures(n int) {
	p.mu.Lock()
	p.failures = n
	p.mu.Unlock()
}

// backoff returns the wait after the n-th consecutive failure: equal jitter over
// d = min(Interval·2^n, MaxBackoff), never less than Interval.
func (p *Poller) backoff(n int) time.Duration {
	d, ceil := p.cfg.Interval, p.cfg.MaxBackoff
	for i := 0; i < n && d < ceil; i++ {
		if d > ceil/2 {
			d = ceil
		} else {
			d *= 2
		}
	}
	half := d / 2
	return max(half+time.Duration(p.rand()*float64(d-half)), p.cfg.Interval)
}

// startJitter returns the first poll's wait, in [0, min(Interval, maxStartSpread)/4).
func (p *Poller) startJitter() time.Duration {
	span := min(p.cfg.Interval, maxStartSpread) / 4
	if span <= 0 {
		return 0
	}
	return min(time.Duration(p.rand()*float64(span)), span-1)
}

// rand returns the configured Rand's value, kept within [0, 1].
func (p *Poller) rand() float64 {
	switch r := p.cfg.Rand(); {
	case !(r > 0): // negative or NaN
		return 0
	case r > 1:
		return 1
	default:
		return r
	}
}
