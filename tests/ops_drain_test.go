package tests

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	jsonpatch "github.com/evanphx/json-patch/v5"
)

const (
	keepStreams    = 5000
	keepReloads    = 5
	keepRoute      = "keep"
	keepRetry      = 2 * time.Second
	heapSlack      = 8 << 20 // bytes of live heap a run of reloads may leave above its baseline
	drainStreams   = 2000    // on each of the two routes of the drain test
	drainWindow    = 4 * time.Second
	drainShare     = 0.35                    // the most closes one second of the window may hold
	drainSlack     = 2 * time.Second         // past the window, for the last closes to be seen
	drainReadLimit = 30 * time.Second        // for one client to reach a document it is owed
	adminReadLimit = 64 << 20                // bytes of a pprof profile read from the admin API
	metricDraining = pm + "draining_streams" // the gauge of streams being drained
)

// TestOpsReloadKeeps5000Streams holds 5,000 HTTP/1.1 streams on one route and reloads
// 5 times configs that keep that route's settings but change another route's interval
// each time, and add a second site or remove it again, changing the upstream document
// during each reload: no stream is ended; each receives every change, as one patch from
// the document it held to the new one, in order, and nothing else, as a sixth change
// after the reloads arriving next shows; each was sent a `retry:` within 25 % of the
// route's 2s, hundreds of distinct values among them; and Caddy's goroutines and live
// heap come back to where they were before the reloads, give or take 20 goroutines and
// 8 MiB.
func TestOpsReloadKeeps5000Streams(t *testing.T) {
	if testing.Short() {
		t.Skip("5,000 streams")
	}
	u, other := newUpstream(t, keepDoc(0)), newUpstream(t, keepDoc(0))
	extraAddr := freeAddr(t)
	caddy := startCaddyConfig(t, func(c *caddyProc) string { return string(keepConfig(c, u, other, extraAddr, 0)) })
	opened := time.Now()
	streams := openRawStreams(t, caddy.siteAddr, "/", keepStreams, nil)
	first := firstEvents(t, streams, drainReadLimit)
	t.Logf("%d streams open and holding their snapshot after %v", keepStreams, time.Since(opened).Round(time.Millisecond))
	checkRetrySpread(t, streams, keepRetry)
	firstEvents(t, openRawStreams(t, caddy.siteAddr, "/other", 50, nil), rawTimeout) // drained as their route changes
	waitLoops(t, caddy, keepRoute, "one loop with every stream", oneLoopWith(keepStreams))
	g0, h0 := goroutines(t, caddy), liveHeap(t, caddy)

	docs := [][]byte{u.document()}
	for round := 1; round <= keepReloads; round++ {
		caddy.config = keepConfig(caddy, u, other, extraAddr, round)
		docs = append(docs, reloadDuringChange(t, caddy, u, keepDoc(round)))
		served := round%2 == 0
		if !eventually(adminTimeout, func() bool { return canDial(extraAddr) == served }) {
			t.Fatalf("after reload %d the second site is served: %v, want %v", round, !served, served)
		}
	}
	docs = append(docs, u.set(t, keepDoc(keepReloads+1)))
	checkEveryChange(t, streams, first, docs)
	g1, h1 := settled(t, caddy, g0, h0)
	t.Logf("caddy before %d reloads: %d goroutines, %.1f MiB live heap; after: %d goroutines, %.1f MiB",
		keepReloads, g0, mib(h0), g1, mib(h1))
	if g1 > g0+goroutineSlack || h1 > h0+heapSlack {
		t.Errorf("caddy has %d goroutines and %.1f MiB of live heap after %d reloads against %d and %.1f MiB before",
			g1, mib(h1), keepReloads, g0, mib(h0))
	}
}

// keepConfig is the config of round of the keep test: the route on u, the same in every
// round, at /; a route on other at /other whose interval changes each round; and, in
// even rounds but the first, a second site on extraAddr.
func keepConfig(c *caddyProc, u, other *upstream, extraAddr string, round int) []byte {
	body := "handle /other {\n" + indent(pollSSE(other.url(), "name other", fmt.Sprintf("interval %dms", 100+10*round))) + "\n}\n" +
		"handle {\n" + indent(pollSSE(u.url(), "name "+keepRoute, "interval 100ms", "retry 2s")) + "\n}"
	config := caddyfile(c.adminAddr, c.siteAddr, body)
	if round > 0 && round%2 == 0 {
		config += fmt.Sprintf("\nhttp://%s {\n\tbind 127.0.0.1\n\trespond \"extra site\"\n}\n", extraAddr)
	}
	return []byte(config)
}

// keepDoc is the upstream document at revision rev.
func keepDoc(rev int) map[string]any {
	return map[string]any{"rev": rev, "note": "kept across reloads", "items": []int{rev, rev * 2}}
}

func mib(n uint64) float64 { return float64(n) / (1 << 20) }

// reloadDuringChange changes the upstream document to doc while POST /load of caddy's
// config, forced, is in flight, waits for both, then until the route's loop has polled
// the change, and returns the document's JSON.
func reloadDuringChange(t *testing.T, caddy *caddyProc, u *upstream, doc any) []byte {
	t.Helper()
	prev := loopVersion(t, caddy, keepRoute)
	loaded := make(chan error, 1)
	go func() {
		status, body, err := caddy.admin(http.MethodPost, "/load", "text/caddyfile", caddy.config, forceReload)
		if err == nil && status != http.StatusOK {
			err = fmt.Errorf("status %d: %s", status, body)
		}
		loaded <- err
	}()
	want := u.set(t, doc)
	if err := <-loaded; err != nil {
		t.Fatalf("POST /load: %v", err)
	}
	waitLoops(t, caddy, keepRoute, "the change polled", func(ls []loopInfo) bool {
		return len(ls) == 1 && ls[0].Version != nil && *ls[0].Version != prev
	})
	return want
}

// loopVersion returns the version of the one loop of route.
func loopVersion(t *testing.T, caddy *caddyProc, route string) string {
	t.Helper()
	ls := waitLoops(t, caddy, route, "one loop with a version", func(ls []loopInfo) bool {
		return len(ls) == 1 && ls[0].Version != nil
	})
	return *ls[0].Version
}

// checkEveryChange checks that the next version events of every stream are one patch to
// each of docs after the first, in order, taking the document the stream held before
// to the next. A stream that ends counts as a disconnect.
func checkEveryChange(t *testing.T, streams []*rawSSE, first []rawEvent, docs [][]byte) {
	t.Helper()
	var mu sync.Mutex
	disconnects := 0
	errs := eachParallel(len(streams), dialWorkers, func(i int) error {
		deadline := time.Now().Add(drainReadLimit) // what was sent waits in the socket meanwhile
		had := first[i].data
		for k, want := range docs[1:] {
			ev, err := streams[i].nextVersion(deadline)
			if err != nil {
				mu.Lock()
				disconnects++
				mu.Unlock()
				return fmt.Errorf("change %d: stream ended or stalled: %w", k+1, err)
			}
			if err := checkPatchTo(ev, had, want); err != nil {
				return fmt.Errorf("change %d: %w", k+1, err)
			}
			had = string(want)
		}
		return nil
	})
	t.Logf("%d streams through %d changes: %d disconnects, %d failures", len(streams), len(docs)-1, disconnects, len(errs))
	failErrs(t, "every change on every stream", errs)
}

// checkRetrySpread checks that every stream was sent a `retry:` within 25 % of retry,
// and that they are not one value.
func checkRetrySpread(t *testing.T, streams []*rawSSE, retry time.Duration) {
	t.Helper()
	seen := map[time.Duration]bool{}
	least, most := time.Duration(1<<62), time.Duration(0)
	for i, s := range streams {
		if s.retry < retry*3/4 || s.retry > retry*5/4 {
			t.Fatalf("stream %d: retry %v, want within 25 %% of %v", i, s.retry, retry)
		}
		seen[s.retry] = true
		least, most = min(least, s.retry), max(most, s.retry)
	}
	t.Logf("retry sent to %d streams: %v to %v, %d distinct values", len(streams), least, most, len(seen))
	if len(seen) < min(len(streams)/10, 100) {
		t.Errorf("%d distinct retry values among %d streams: not jittered", len(seen), len(streams))
	}
}

// settled waits until Caddy's goroutines and live heap are back within their slack of
// g0 and h0, for adminTimeout at most, and returns the last figures.
func settled(t *testing.T, caddy *caddyProc, g0 int, h0 uint64) (int, uint64) {
	t.Helper()
	var g int
	var h uint64
	eventually(adminTimeout, func() bool {
		g, h = goroutines(t, caddy), liveHeap(t, caddy)
		return g <= g0+goroutineSlack && h <= h0+heapSlack
	})
	return g, h
}

// liveHeap returns the bytes of Caddy's heap in use after a garbage collection, from the
// admin API's pprof endpoint.
func liveHeap(t testing.TB, c *caddyProc) uint64 {
	t.Helper()
	body := adminText(t, c, "/debug/pprof/heap?gc=1&debug=1")
	for line := range strings.SplitSeq(body, "\n") {
		if v, ok := strings.CutPrefix(line, "# HeapAlloc = "); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			if err != nil {
				t.Fatalf("heap profile line %q: %v", line, err)
			}
			return n
		}
	}
	t.Fatalf("no HeapAlloc in the heap profile (%d bytes)", len(body))
	return 0
}

// adminText gets path from the admin API, whole up to adminReadLimit.
func adminText(t testing.TB, c *caddyProc, path string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+c.adminAddr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, adminReadLimit))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d, %v", path, resp.StatusCode, err)
	}
	return string(b)
}

// drainConfig is a site with two routes, /a and /b, each with its own upstream and
// drain 4s; route a polls every intervalA. Without ub, route b is left out.
func drainConfig(caddy *caddyProc, ua, ub *upstream, intervalA string) []byte {
	body := "handle /a {\n" + indent(pollSSE(ua.url(), "name a", "interval "+intervalA, "drain 4s")) + "\n}"
	if ub != nil {
		body += "\nhandle /b {\n" + indent(pollSSE(ub.url(), "name b", "interval 100ms", "drain 4s")) + "\n}"
	}
	return []byte(caddyfile(caddy.adminAddr, caddy.siteAddr, body))
}

// TestOpsReloadDrainsChangedRoute holds 2,000 streams on each of two routes and reloads
// a config that changes route a's interval only. Route a's streams all end within its
// drain 4s (and slack), spread out: no second of the window holds more than 35 % of the
// closes; meanwhile the admin route and the metrics show them draining. Each client of
// route a then resumes with its Last-Event-ID and, applying what it gets, holds the
// upstream document after a change. Route b's 2,000 streams see no disconnect: their
// next event is the patch to b's next document. Last, a reload that removes route b
// drains its streams the same way.
func TestOpsReloadDrainsChangedRoute(t *testing.T) {
	if testing.Short() {
		t.Skip("4,000 streams")
	}
	ua, ub := newUpstream(t, keepDoc(0)), newUpstream(t, keepDoc(100))
	caddy := startCaddyConfig(t, func(c *caddyProc) string { return string(drainConfig(c, ua, ub, "100ms")) })
	as := openRawStreams(t, caddy.siteAddr, "/a", drainStreams, nil)
	bs := openRawStreams(t, caddy.siteAddr, "/b", drainStreams, nil)
	firstA, firstB := firstEvents(t, as, drainReadLimit), firstEvents(t, bs, drainReadLimit)

	start := time.Now()
	ends := watchEnds(as, firstA, start.Add(drainWindow+drainSlack+rawTimeout))
	caddy.config = drainConfig(caddy, ua, ub, "150ms")
	load(t, caddy, caddy.config, nil)
	checkDrainShown(t, caddy, "a", true)
	ua.set(t, keepDoc(1)) // the retired loop polls no more: draining clients get this on resuming
	got := ends()
	checkCloseSpread(t, got, start)
	checkResumeConverges(t, caddy, ua, got)
	held := checkNoDisconnect(t, ub, bs, firstB)

	start = time.Now()
	ends = watchEnds(bs, held, start.Add(drainWindow+drainSlack+rawTimeout))
	caddy.config = drainConfig(caddy, ua, nil, "150ms")
	load(t, caddy, caddy.config, nil)
	checkCloseSpread(t, ends(), start)
	m, _ := scrape(t, caddy)
	for _, route := range []string{"a", "b"} {
		if err := m.has(metricDraining, 0, "route", route); err != nil {
			t.Errorf("after the drains: %v", err)
		}
	}
}

// streamEnd is what a watched stream held when the server ended it, and when.
type streamEnd struct {
	at     time.Time
	doc    string
	lastID string
	err    error // why it was not seen to end cleanly, if it was not
}

// watchEnds reads every stream, applying what it gets to the document it started with,
// until the server ends it or deadline passes, each on a goroutine of its own so that
// every end is seen when it happens. The returned function waits for them all.
func watchEnds(streams []*rawSSE, first []rawEvent, deadline time.Time) func() []streamEnd {
	out := make([]streamEnd, len(streams))
	var wg sync.WaitGroup
	for i, s := range streams {
		wg.Go(func() { out[i] = watchEnd(s, first[i].data, deadline) })
	}
	return func() []streamEnd {
		wg.Wait()
		return out
	}
}

func watchEnd(s *rawSSE, doc string, deadline time.Time) streamEnd {
	for {
		ev, err := s.next(deadline)
		if err != nil {
			end := streamEnd{at: time.Now(), doc: doc, lastID: s.lastID}
			if !errors.Is(err, io.EOF) {
				end.err = err
			}
			return end
		}
		if doc, err = applyEvent(doc, ev); err != nil {
			return streamEnd{at: time.Now(), err: err}
		}
	}
}

// applyEvent applies a snapshot or an RFC 6902 patch event to doc.
func applyEvent(doc string, ev rawEvent) (string, error) {
	switch ev.typ {
	case "snapshot":
		return ev.data, nil
	case "patch":
		p, err := jsonpatch.DecodePatch([]byte(ev.data))
		if err != nil {
			return doc, fmt.Errorf("patch %q: %w", ev.data, err)
		}
		out, err := p.Apply([]byte(doc))
		return string(out), err
	}
	return doc, nil
}

// checkCloseSpread checks that every stream ended cleanly within the drain window and
// slack of start, and that no second of it holds more than drainShare of the closes.
func checkCloseSpread(t *testing.T, ends []streamEnd, start time.Time) {
	t.Helper()
	bins := make([]int, int((drainWindow+drainSlack)/time.Second)+1)
	for i, e := range ends {
		if e.err != nil {
			t.Fatalf("stream %d did not end cleanly: %v", i, e.err)
		}
		at := e.at.Sub(start)
		if at > drainWindow+drainSlack {
			t.Fatalf("stream %d ended %v after the reload began, past drain %v and %v of slack", i, at, drainWindow, drainSlack)
		}
		bins[int(at/time.Second)]++
	}
	t.Logf("closes of %d streams per second after the reload began: %v", len(ends), bins)
	for s, n := range bins {
		if float64(n) > drainShare*float64(len(ends)) {
			t.Errorf("second %d after the reload holds %d of %d closes, over %.0f %%", s, n, len(ends), drainShare*100)
		}
	}
}

// checkDrainShown checks that the admin route shows a retired loop of route with
// streams draining, and a total draining, and, with gauge, that the draining gauge of
// route is above zero: a config without poll_sse routes has no poll_sse metrics.
func checkDrainShown(t *testing.T, caddy *caddyProc, route string, gauge bool) {
	t.Helper()
	var out struct {
		Loops    []loopInfo `json:"loops"`
		Draining int        `json:"draining"`
	}
	if err := json.Unmarshal([]byte(adminText(t, caddy, "/poll_sse/loops")), &out); err != nil {
		t.Fatalf("GET /poll_sse/loops: %v", err)
	}
	shown := 0
	for _, l := range routeLoops(out.Loops, route) {
		if l.Retired {
			shown += l.Draining
		}
	}
	m, _ := scrape(t, caddy)
	value, _ := m.value(metricDraining, "route", route)
	t.Logf("while draining: admin route: %d streams of retired loops of route %s draining, %d in all; %s{route=%q} %v",
		shown, route, out.Draining, metricDraining, route, value)
	if shown == 0 || out.Draining < shown || gauge && value == 0 {
		t.Errorf("drain not shown: admin route %d draining on retired loops of %s, %d in all; gauge %v", shown, route, out.Draining, value)
	}
}

// has returns an error unless the series name with labels has the value want.
func (m metricSet) has(name string, want float64, labels ...string) error {
	if v, ok := m.value(name, labels...); !ok || v != want {
		return fmt.Errorf("%s%v is %v (present %v), want %v", name, labels, v, ok, want)
	}
	return nil
}

// checkResumeConverges reconnects every ended stream with its Last-Event-ID, changes
// the upstream document, and checks that every client, applying what it gets to the
// document it held, comes to hold the new one.
func checkResumeConverges(t *testing.T, caddy *caddyProc, u *upstream, ends []streamEnd) {
	t.Helper()
	resumed := openRawStreams(t, caddy.siteAddr, "/a", len(ends), func(i int) map[string]string {
		return map[string]string{"Last-Event-ID": ends[i].lastID}
	})
	want := u.set(t, keepDoc(2))
	errs := eachParallel(len(resumed), dialWorkers, func(i int) error {
		deadline := time.Now().Add(drainReadLimit)
		doc := ends[i].doc
		for !jsonEqual([]byte(doc), want) {
			ev, err := resumed[i].nextVersion(deadline)
			if err != nil {
				return fmt.Errorf("holding %.100s, not %s: %w", doc, want, err)
			}
			if doc, err = applyEvent(doc, ev); err != nil {
				return err
			}
		}
		return nil
	})
	t.Logf("%d clients resumed after the drain; %d did not reach the upstream document", len(resumed), len(errs))
	failErrs(t, "converging after resuming", errs)
}

// checkNoDisconnect changes u's document and checks that every stream's next version
// event is the patch from the document it first held to the new one: none of them was
// cut. It returns those events.
func checkNoDisconnect(t *testing.T, u *upstream, streams []*rawSSE, first []rawEvent) []rawEvent {
	t.Helper()
	want := u.set(t, keepDoc(101))
	held := make([]rawEvent, len(streams))
	errs := eachParallel(len(streams), dialWorkers, func(i int) error {
		deadline := time.Now().Add(drainReadLimit)
		ev, err := streams[i].nextVersion(deadline)
		if err != nil {
			return fmt.Errorf("disconnected: %w", err)
		}
		held[i] = rawEvent{typ: "snapshot", data: string(want)}
		return checkPatchTo(ev, first[i].data, want)
	})
	t.Logf("route b: %d streams, %d disconnected or missed the change", len(streams), len(errs))
	failErrs(t, "the unchanged route's streams", errs)
	return held
}
