package tests

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	jsonpatch "github.com/evanphx/json-patch/v5"
)

const (
	reloadStreams  = 500
	reloadRoute    = "reload"
	rateWindow     = 2 * time.Second // upstream requests are counted over this window
	rateSlack      = 2               // polls a window may hold beyond the expected count
	reloadRounds   = 50
	goroutineSlack = 20
)

// reloadConfig returns the Caddyfile of caddy's addresses with one poll_sse route named
// reloadRoute on u, polled every interval.
func reloadConfig(caddy *caddyProc, u *upstream, interval string) []byte {
	return []byte(caddyfile(caddy.adminAddr, caddy.siteAddr, reloadBody(u, interval)))
}

func reloadBody(u *upstream, interval string) string {
	return pollSSE(u.url(), "name "+reloadRoute, "interval "+interval, "linger 1s", "drain 1s")
}

// TestOpsReload500Streams holds 500 streams on a route with a steady upstream polled
// every 200ms and reloads the same config: POST /load returns within 2 s, and every
// stream stays open and gets nothing until the document changes, then one patch that
// applies to its document, never a snapshot; the upstream sees as many requests in 2 s
// after the reload as before, give or take two, since the one loop went on. A reload with
// another interval then drains the streams within the route's drain 1s (and slack), and
// leaves exactly one loop for the route, with the new clients, and the upstream sees only
// its polls. Last, 50 reloads alternating two configs, with streams opened and closed
// between them, leave one loop and no more goroutines in Caddy than before, give or take
// 20.
func TestOpsReload500Streams(t *testing.T) {
	if testing.Short() {
		t.Skip("500 streams")
	}
	u := newUpstream(t, map[string]any{"rev": 0, "note": "steady"})
	caddy := startCaddy(t, reloadBody(u, "200ms"))
	streams := openRawStreams(t, caddy.siteAddr, "/", reloadStreams, nil)
	first := firstEvents(t, streams, rawTimeout)
	waitLoops(t, caddy, reloadRoute, "one loop with 500 subscribers", oneLoopWith(reloadStreams))

	before := pollsIn(u, rateWindow)
	took := load(t, caddy, caddy.config, forceReload)
	after := pollsIn(u, rateWindow)
	t.Logf("reload with %d streams: POST /load returned after %v; upstream requests in %v: %d before the reload, %d after",
		len(streams), took.Round(time.Millisecond), rateWindow, before, after)
	if took > endWithin {
		t.Errorf("POST /load took %v, want under %v", took, endWithin)
	}
	if after > before+rateSlack {
		t.Errorf("upstream requests in %v: %d after the reload against %d before; a second loop polls", rateWindow, after, before)
	}
	checkNextIsPatch(t, u, streams, first)

	checkIntervalChange(t, caddy, u, streams)
	checkManyReloads(t, caddy, u)
}

// pollsIn waits d and returns the upstream requests that arrived meanwhile.
func pollsIn(u *upstream, d time.Duration) int {
	start := time.Now()
	time.Sleep(d)
	return u.countBetween(start, start.Add(d))
}

// checkNextIsPatch changes the document and checks that the next version event of every
// stream is a patch that takes the snapshot it had before to the new one.
func checkNextIsPatch(t *testing.T, u *upstream, streams []*rawSSE, had []rawEvent) {
	t.Helper()
	want := u.set(t, map[string]any{"rev": 1, "note": "steady"})
	evs := firstEvents(t, streams, rawTimeout)
	bad := 0
	for i, ev := range evs {
		if err := checkPatchTo(ev, had[i].data, want); err != nil {
			if bad++; bad <= 3 {
				t.Errorf("stream %d: %v", i, err)
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d streams did not get one patch to the new document", bad, len(evs))
	}
}

// checkPatchTo checks that ev is a patch that takes doc to want.
func checkPatchTo(ev rawEvent, doc string, want []byte) error {
	if ev.typ != "patch" {
		return fmt.Errorf("first event %q (id %q), want a patch", ev.typ, ev.id)
	}
	p, err := jsonpatch.DecodePatch([]byte(ev.data))
	if err != nil {
		return fmt.Errorf("patch %q: %v", ev.data, err)
	}
	got, err := p.Apply([]byte(doc))
	if err != nil || !jsonEqual(got, want) {
		return fmt.Errorf("patch %.200q gives %.200s (%v), want %.200s", ev.data, got, err, want)
	}
	return nil
}

// checkIntervalChange loads the config with another interval, checks that the old
// streams are drained, and that once new clients have come the route has exactly one
// loop, theirs, and the upstream sees the new interval's polls only.
func checkIntervalChange(t *testing.T, caddy *caddyProc, u *upstream, old []*rawSSE) {
	t.Helper()
	const interval = 500 * time.Millisecond
	caddy.config = reloadConfig(caddy, u, "500ms")
	start := time.Now()
	load(t, caddy, caddy.config, nil)
	allEnd(t, "reload with a new interval", old, start, start.Add(caddyStopTimeout))
	fresh := openRawStreams(t, caddy.siteAddr, "/", 3, nil)
	firstEvents(t, fresh, rawTimeout)
	ls := waitLoops(t, caddy, reloadRoute, "one loop, with the 3 new subscribers", oneLoopWith(3))
	n := pollsIn(u, rateWindow)
	t.Logf("after the interval changed to %v: loops %v; %d upstream requests in %v", interval, ls, n, rateWindow)
	if limit := int(rateWindow/interval) + rateSlack; n > limit {
		t.Errorf("%d upstream requests in %v at interval %v, want at most %d: the old loop still polls", n, rateWindow, interval, limit)
	}
}

// checkManyReloads reloads 50 times, alternating two configs and opening and closing
// streams between reloads, then checks that the route has one loop and that Caddy's
// goroutine count returns to within goroutineSlack of what it was before.
func checkManyReloads(t *testing.T, caddy *caddyProc, u *upstream) {
	t.Helper()
	configs := [2][]byte{reloadConfig(caddy, u, "400ms"), caddy.config}
	g0 := goroutines(t, caddy)
	var kept []*rawSSE
	t.Cleanup(func() { closeRaw(kept) })
	refused := map[string]int{}
	start := time.Now()
	for i := range reloadRounds {
		load(t, caddy, configs[i%2], nil)
		kept = append(kept, churn(t, caddy, refused))
	}
	t.Logf("%d reloads with streams between them took %v; streams opened just after a reload and dropped or refused: %v",
		reloadRounds, time.Since(start).Round(time.Millisecond), refused)
	closeRaw(kept)
	fresh := openRawStreams(t, caddy.siteAddr, "/", 1, nil)
	firstEvents(t, fresh, rawTimeout)
	waitLoops(t, caddy, reloadRoute, "one loop, with one subscriber", oneLoopWith(1))
	g1 := 0
	eventually(adminTimeout, func() bool {
		g1 = goroutines(t, caddy)
		return g1 <= g0+goroutineSlack
	})
	t.Logf("caddy goroutines: %d before %d reloads, %d after", g0, reloadRounds, g1)
	if g1 > g0+goroutineSlack {
		t.Errorf("caddy has %d goroutines after %d reloads against %d before: a leak", g1, reloadRounds, g0)
	}
}

// churn opens two streams, closes one at once and returns the other. A stream that
// races the reload before it, and is dropped or refused, is opened again, a bounded
// number of times; the refusals seen are added to refused.
func churn(t *testing.T, caddy *caddyProc, refused map[string]int) *rawSSE {
	t.Helper()
	var kept *rawSSE
	for i := range 2 {
		s := openAfterReload(t, caddy, refused)
		if i == 0 {
			s.close()
			continue
		}
		kept = s
	}
	return kept
}

// openAfterReload opens a stream, trying again up to 10 times, 20ms apart, while it is
// dropped or refused.
func openAfterReload(t *testing.T, caddy *caddyProc, refused map[string]int) *rawSSE {
	t.Helper()
	for range 10 {
		s, err := dialRaw(caddy.siteAddr, "/", nil)
		switch {
		case err != nil:
			refused[err.Error()]++
		case s.status != http.StatusOK:
			refused[fmt.Sprintf("status %d, Retry-After %q", s.status, s.header.Get("Retry-After"))]++
			s.close()
		default:
			return s
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no stream could be opened after a reload: %v", refused)
	return nil
}

// TestOpsMaxConnectionLifetime checks max_connection_lifetime 1s: the server ends each
// stream no sooner than 0.9 s after it was opened and within 1 s plus 2 s of slack; the
// client reconnects with its Last-Event-ID after the document changed, gets a patch to
// the new document, never a snapshot, and its new stream ends the same way.
func TestOpsMaxConnectionLifetime(t *testing.T) {
	t.Parallel()
	const (
		lifetime = time.Second
		streams  = 5
	)
	u := newUpstream(t, bigDoc(0))
	// With drain 100ms the jitter is the last tenth of the lifetime.
	caddy := startCaddy(t, pollSSE(u.url(), "interval 100ms", "max_connection_lifetime 1s", "drain 100ms"))
	first, had := lifetimeRound(t, caddy, streams, lifetime, nil)
	want := u.set(t, bigDoc(1))
	_, evs := lifetimeRound(t, caddy, streams, lifetime, func(i int) map[string]string {
		return map[string]string{"Last-Event-ID": first[i].lastID}
	})
	for i, ev := range evs {
		if err := checkPatchTo(ev, had[i].data, want); err != nil {
			t.Errorf("stream %d resumed after its lifetime: %v", i, err)
		}
	}
}

// lifetimeRound opens n streams, reads the first version event of each, and checks that
// the server ends each between 90 % of lifetime and lifetime plus slack after it was
// opened. It returns the streams and their first events.
func lifetimeRound(t *testing.T, caddy *caddyProc, n int, lifetime time.Duration, header func(int) map[string]string) ([]*rawSSE, []rawEvent) {
	t.Helper()
	const slack = 2 * time.Second
	opened := time.Now()
	streams := openRawStreams(t, caddy.siteAddr, "/", n, header)
	evs := firstEvents(t, streams, rawTimeout)
	errs := eachParallel(n, n, func(i int) error {
		if err := streams[i].waitEnd(opened.Add(lifetime + slack)); err != nil {
			return fmt.Errorf("not ended within %v of opening: %w", lifetime+slack, err)
		}
		if lived := time.Since(opened); lived < lifetime*9/10 {
			return fmt.Errorf("ended %v after opening, before 90 %% of max_connection_lifetime %v", lived, lifetime)
		}
		return nil
	})
	failErrs(t, "max_connection_lifetime", errs)
	return streams, evs
}
