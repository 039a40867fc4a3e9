package hub

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestJitterRetry checks the jittered retry at both ends of the random number, in the
// middle, and its rounding to whole milliseconds.
func TestJitterRetry(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		d    time.Duration
		r    float64
		want time.Duration
	}{
		{3 * time.Second, 0, 2250 * time.Millisecond},
		{3 * time.Second, 0.5, 3 * time.Second},
		{3 * time.Second, 0.9999999, 3750 * time.Millisecond},
		{100 * time.Millisecond, 0, 75 * time.Millisecond},
		{100 * time.Millisecond, 0.25, 88 * time.Millisecond}, // 87.5ms, rounded
		{time.Hour, 0.75, 67*time.Minute + 30*time.Second},
	} {
		if got := jitterRetry(tc.d, tc.r); got != tc.want {
			t.Errorf("jitterRetry(%v, %v) = %v, want %v", tc.d, tc.r, got, tc.want)
		}
	}
}

// TestRetryJitteredPerStream opens 2,000 subscriptions on a hub with Retry 2s and reads
// the `retry:` each is sent first: every one lies within 25 % of 2s, they are not one
// value but hundreds, they reach within 5 % of either end, and their mean is within 3 %
// of 2s, as draws spread evenly over the range give.
func TestRetryJitteredPerStream(t *testing.T) {
	t.Parallel()
	const n, retry = 2000, 2 * time.Second
	h := newHub(t, Config{Retry: retry})
	src := newDocSource()
	lo, hi := retry*3/4, retry*5/4
	seen := map[time.Duration]int{}
	least, most, sum := hi, lo, time.Duration(0)
	for i := range n {
		d := firstRetry(t, h, src)
		if d < lo || d > hi {
			t.Fatalf("stream %d: retry %v, want within %v to %v", i, d, lo, hi)
		}
		seen[d]++
		least, most, sum = min(least, d), max(most, d), sum+d
	}
	mean := sum / n
	t.Logf("%d streams: retry from %v to %v, mean %v, %d distinct values", n, least, most, mean, len(seen))
	if len(seen) < 200 {
		t.Errorf("only %d distinct retry values among %d streams", len(seen), n)
	}
	if least > lo+retry/20 || most < hi-retry/20 {
		t.Errorf("retry values from %v to %v: want them to reach near %v and %v", least, most, lo, hi)
	}
	if mean < retry*97/100 || mean > retry*103/100 {
		t.Errorf("mean retry %v, want within 3 %% of %v", mean, retry)
	}
}

// firstRetry subscribes, reads the `retry:` the subscription starts with, and closes it.
func firstRetry(t *testing.T, h *Hub, src Source) time.Duration {
	t.Helper()
	sub, err := h.Subscribe("k", func() Source { return src }, "", JSONPatch)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	frames, err := sub.Next(ctx)
	if err != nil || len(frames) == 0 {
		t.Fatalf("first frames: %q, %v", frames, err)
	}
	v, ok := strings.CutPrefix(string(frames[0]), "retry: ")
	ms, err := strconv.Atoi(strings.TrimSpace(v))
	if !ok || err != nil {
		t.Fatalf("first frame %q is not a retry", frames[0])
	}
	return time.Duration(ms) * time.Millisecond
}
