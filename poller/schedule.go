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

// MinPokeGap is the shortest time between the start of a poll and the start of a poll that
// a poke brings forward: however often a loop is poked, pokes add at most one poll per
// MinPokeGap.
const MinPokeGap = 100 * time.Millisecond

// pause is the wait before the next poll.
type pause struct {
	d time.Duration // the scheduled wait
	// pokeAfter is the earliest, counted like d, that a poke may end the wait; ignored
	// when hold is set.
	pokeAfter time.Duration
	// hold keeps pokes from shortening the wait: after a failure the backoff, and the
	// upstream's Retry-After, are kept whatever the pokes.
	hold bool
}

// Run polls until ctx ends, calling fn with each result on Run's goroutine; a poll never
// overlaps the previous one. The first poll waits a start jitter in [0, min(Interval, 1s)/4).
// After a success (304 included) the next poll starts Interval after the previous one
// started, at once if that has passed. After the n-th consecutive failure it waits a random
// time in [d/2, d], d = min(Interval·2^n, MaxBackoff), but never less than Interval nor than
// the upstream's Retry-After on a 429 or 503. A poke ends the start jitter, or the wait
// after a success once MinPokeGap has passed since the previous poll started; it never
// shortens the wait after a failure. Run starts without remembered validators or failures,
// and is called once per Poller.
func (p *Poller) Run(ctx context.Context, fn func(Result)) {
	p.forget()
	p.setFailures(0)
	next := pause{d: p.startJitter()}
	for p.sleep(ctx, next) {
		p.takePoke() // this poll serves the pokes that came before it
		res := p.Poll(ctx)
		if ctx.Err() != nil {
			return
		}
		fn(res)
		next = p.nextPause(res)
	}
}

// Poke asks Run to poll soon; see Run for when. It never blocks: pokes that arrive while
// a poll is in flight, or together, make one extra poll.
func (p *Poller) Poke() {
	select {
	case p.poke <- struct{}{}:
	default:
	}
}

// takePoke consumes a pending poke, if any.
func (p *Poller) takePoke() {
	select {
	case <-p.poke:
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

// sleep waits as w says, and reports whether ctx is still alive.
func (p *Poller) sleep(ctx context.Context, w pause) bool {
	d := max(w.d, 0)
	start := p.cfg.Clock.Now()
	p.setNext(start.Add(d))
	if d == 0 {
		return ctx.Err() == nil
	}
	timer := p.cfg.Clock.After(d)
	var pokes chan struct{}
	if !w.hold {
		pokes = p.poke
	}
	select {
	case <-ctx.Done():
		return false
	case <-timer:
		return true
	case <-pokes:
	}
	rest := w.pokeAfter - p.cfg.Clock.Now().Sub(start)
	if rest <= 0 {
		return ctx.Err() == nil
	}
	var early <-chan time.Time // nil when the scheduled poll comes first anyway
	if w.pokeAfter < d {
		early = p.cfg.Clock.After(rest)
		p.setNext(start.Add(w.pokeAfter))
	}
	select {
	case <-ctx.Done():
		return false
	case <-timer:
		return true
	case <-early:
		return true
	}
}

func (p *Poller) setNext(t time.Time) {
	p.mu.Lock()
	p.next = t
	p.mu.Unlock()
}

// nextPause returns the pause before the poll after res, counted from res's end.
func (p *Poller) nextPause(res Result) pause {
	if res.Err == nil {
		p.setFailures(0)
		return pause{d: p.cfg.Interval - res.Duration, pokeAfter: MinPokeGap - res.Duration}
	}
	p.mu.Lock()
	p.failures++
	n := p.failures
	p.mu.Unlock()
	return pause{d: max(p.backoff(n), res.RetryAfter), hold: true}
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
