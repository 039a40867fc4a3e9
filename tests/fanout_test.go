package tests

import (
	"testing"
	"time"
)

// TestSharedPolling checks that one poll loop serves every listener: 200 subscribers
// for 10 s at interval 100ms cost about one upstream request per interval, not 200, and
// every subscriber gets the snapshot and a later change.
func TestSharedPolling(t *testing.T) {
	if testing.Short() {
		t.Skip("10 s load test")
	}
	t.Parallel()
	const (
		subscribers = 200
		interval    = 100 * time.Millisecond
		window      = 10 * time.Second
	)
	u := newUpstream(t, map[string]any{"rev": 0, "note": "shared"})
	caddy := startCaddy(t, pollSSE(u.url(), "interval 100ms"))

	start := time.Now()
	clients := make([]*sseClient, subscribers)
	for i := range clients {
		clients[i] = dialSSE(t, caddy.url(""))
		if clients[i].resp.StatusCode != 200 {
			t.Fatalf("subscriber %d: status %d", i, clients[i].resp.StatusCode)
		}
	}
	for i, c := range clients {
		if r := c.mustNext(10 * time.Second); r.Type != "snapshot" {
			t.Fatalf("subscriber %d: first event %q, want snapshot", i, r.Type)
		}
	}
	want := u.set(t, map[string]any{"rev": 1, "note": "shared"})
	for _, c := range clients {
		c.waitFor(want, 10*time.Second)
	}
	time.Sleep(time.Until(start.Add(window)))

	elapsed := time.Since(start)
	n := u.countBetween(start, start.Add(elapsed))
	perInterval := float64(elapsed) / float64(interval)
	t.Logf("%d subscribers, %v: %d upstream requests (%.1f intervals)", subscribers, elapsed.Round(time.Millisecond), n, perInterval)
	if float64(n) > perInterval+3 || float64(n) < perInterval/2 {
		t.Errorf("%d upstream requests in %.1f intervals: want about one per interval", n, perInterval)
	}
}

// TestLoopLifecycle checks that a poll loop keeps polling for linger after its last
// subscriber leaves, then stops (no request later than linger + 5 intervals after the
// leave, and the count stops growing), and that a new subscriber starts it again. The
// linger spans ten intervals, so that a machine too busy to poll on time for a few of
// them still shows the loop polling through it.
func TestLoopLifecycle(t *testing.T) {
	t.Parallel()
	const (
		interval = 100 * time.Millisecond
		linger   = time.Second
		slack    = 5 * interval
	)
	u := newUpstream(t, map[string]any{"rev": 0})
	caddy := startCaddy(t, pollSSE(u.url(), "interval 100ms", "linger 1s"))

	c := dialSSE(t, caddy.url(""))
	c.waitFor(u.document(), 5*time.Second)
	time.Sleep(2 * interval)
	c.close()
	left := time.Now()

	time.Sleep(linger + slack + 100*time.Millisecond)
	stopped := u.count()
	last := u.lastHit()
	time.Sleep(5 * interval)
	if n := u.count(); n != stopped {
		t.Errorf("upstream requests went on growing after linger: %d, then %d", stopped, n)
	}
	if late := last.Sub(left); late > linger+slack {
		t.Errorf("last upstream request %v after the last subscriber left; want within linger + 5 intervals (%v)", late, linger+slack)
	}
	if n := u.countBetween(left, left.Add(linger)); n == 0 {
		t.Errorf("no upstream request during linger: the loop stopped with its last subscriber")
	}

	again := dialSSE(t, caddy.url(""))
	if r := again.mustNext(5 * time.Second); r.Type != "snapshot" {
		t.Fatalf("new subscriber after the loop stopped: first event %q, want snapshot", r.Type)
	}
	want := u.set(t, map[string]any{"rev": 1})
	again.waitFor(want, 5*time.Second)
	if n := u.count(); n <= stopped {
		t.Errorf("polling did not restart: %d requests before, %d after", stopped, n)
	}
}
