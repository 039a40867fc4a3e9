package hub

import (
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// Limits bound the subscriptions of one route. Routes with the same settings share a hub,
// its loops and its history, but each keeps limits of its own: the hub holds none, so no
// route, and no config that is still being loaded, changes another's.
type Limits struct {
	// Slots counts the route's open subscriptions. It may outlive a config of the route,
	// so that streams opened under the old config count under the new one. nil: the
	// route's subscriptions are not counted, and MaxSubscribers does not apply.
	Slots *Slots
	// MaxSubscribers caps Slots: beyond it Subscribe returns ErrTooManySubscribers.
	// 0: no cap.
	MaxSubscribers int
	// MaxLifetime ends each stream after a random time in the last tenth of it, or in
	// its last Drain when that is longer, though never in its first half, so that
	// clients reconnect, spread out, and load spreads again. 0: streams live until the
	// client leaves.
	MaxLifetime time.Duration
	// Drain is the window over which the closes of streams that must end are spread.
	Drain time.Duration
}

// Slots counts subscriptions. The zero value counts none.
type Slots struct {
	n atomic.Int64
}

// InUse returns the subscriptions counted.
func (s *Slots) InUse() int { return int(s.n.Load()) }

// take counts one more subscription, unless the cap is reached; it reports whether it
// did.
func (l Limits) take() bool {
	if l.Slots == nil {
		return true
	}
	for {
		n := l.Slots.n.Load()
		if l.MaxSubscribers > 0 && n >= int64(l.MaxSubscribers) {
			return false
		}
		if l.Slots.n.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// give uncounts a subscription counted by take.
func (l Limits) give() {
	if l.Slots != nil {
		l.Slots.n.Add(-1)
	}
}

// Lifetime returns how long a stream opened now may live, with its jitter; 0 for ever.
func (l Limits) Lifetime() time.Duration {
	d := l.MaxLifetime
	if d <= 0 {
		return 0
	}
	return d - rand.N(lifetimeJitter(d, l.Drain)+1)
}

// lifetimeJitter is the stretch at the end of a stream's lifetime d in which it ends:
// the last tenth of d, or the drain window when that is longer, at most half of d.
func lifetimeJitter(d, drain time.Duration) time.Duration {
	return max(d/10, min(drain, d/2))
}
