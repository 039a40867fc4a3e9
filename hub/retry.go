package hub

import (
	"math/rand/v2"
	"time"
)

// RetryJitter is how far, as a fraction of Config.Retry, the `retry:` each stream is sent
// may lie from it, either way: each client waits its own time before it reconnects, so
// that clients cut at the same moment do not all come back in the same instant.
const RetryJitter = 0.25

// jitterRetry returns d moved by up to RetryJitter of itself, either way, as r, a number
// in [0, 1), goes from the low end to the high one; whole milliseconds, as `retry:`
// carries them.
func jitterRetry(d time.Duration, r float64) time.Duration {
	spread := float64(d) * RetryJitter
	j := time.Duration(float64(d) - spread + 2*spread*r)
	return j.Round(time.Millisecond)
}

// retryFrame returns the `retry:` frame of a new stream: the hub's Retry, jittered.
func (h *Hub) retryFrame() []byte {
	return encodeRetry(jitterRetry(h.cfg.Retry, rand.Float64()))
}
