package tests

import (
	"slices"
	"strings"
	"testing"
	"time"
)

const troubleWait = 5 * time.Second

// TestUpstreamTrouble checks that upstream failures never fail an open stream: on one
// connection the client is told of a 500, of a 200 that is not JSON, and of a timeout,
// each as an `upstream` event with ok:false, then of the recovery with ok:true followed
// by the changed document as a patch. Meanwhile no snapshot or patch is sent, the last
// good document is kept (a client joining during the outage gets it), and the upstream
// events never move the last event id.
func TestUpstreamTrouble(t *testing.T) {
	t.Parallel()
	u := newUpstream(t, map[string]any{"rev": 0, "ok": "yes"})
	caddy := startCaddy(t, pollSSE(u.url(), "interval 100ms", "timeout 300ms"))
	c := dialSSE(t, caddy.url(""))
	good := u.document()
	c.waitFor(good, troubleWait)

	u.setMode(serve500)
	r, _ := c.waitEvent("upstream 500", troubleWait, isUpstream(t, func(s upstreamStatus) bool { return !s.OK }))
	checkFailure(t, r, func(s upstreamStatus) bool { return s.Status == 500 }, `"status":500`)

	u.setMode(serveHTML)
	r, _ = c.waitEvent("upstream not JSON", troubleWait, isUpstream(t, func(s upstreamStatus) bool { return s.Status != 500 }))
	checkFailure(t, r, func(s upstreamStatus) bool { return strings.Contains(strings.ToLower(s.Error), "not json") }, "an error mentioning not JSON")

	u.setMode(serveHang)
	r, _ = c.waitEvent("upstream timeout", troubleWait, isUpstream(t, func(s upstreamStatus) bool { return !strings.Contains(strings.ToLower(s.Error), "json") }))
	checkFailure(t, r, func(s upstreamStatus) bool { return s.Error == "timeout" }, `"error":"timeout"`)
	checkLateJoiner(t, caddy, good)

	want := u.set(t, map[string]any{"rev": 1, "ok": "again"})
	u.setMode(serveJSON)
	r, _ = c.waitEvent("upstream recovery", troubleWait, isUpstream(t, func(s upstreamStatus) bool { return s.OK }))
	if r.Data != `{"ok":true}` {
		t.Errorf("recovery event data %s, want {\"ok\":true}", r.Data)
	}
	c.waitFor(want, troubleWait)

	if got := typeSequence(c.events, "snapshot", "patch"); !slices.Equal(got, []string{"snapshot", "patch"}) {
		t.Errorf("version events %v, want one snapshot then one patch; received %s", got, c.summary())
	}
	if n := c.dials.Load(); n != 1 {
		t.Errorf("client made %d connections, want one stream throughout", n)
	}
}

// checkFailure checks an ok:false upstream event: its data matches, and since is RFC 3339.
func checkFailure(t *testing.T, r received, match func(upstreamStatus) bool, what string) {
	t.Helper()
	s := decodeStatus(t, r)
	if s.OK || !match(s) {
		t.Errorf("upstream event %s: want ok:false with %s", r.Data, what)
	}
	if _, err := time.Parse(time.RFC3339, s.Since); err != nil {
		t.Errorf("upstream event %s: since is not RFC 3339: %v", r.Data, err)
	}
}

// checkLateJoiner checks that a client connecting while the upstream fails gets the last
// good document and is told the upstream is failing.
func checkLateJoiner(t *testing.T, caddy *caddyProc, good []byte) {
	t.Helper()
	c := dialSSE(t, caddy.url(""))
	checkStreamHeaders(t, c.resp)
	c.waitFor(good, troubleWait)
	c.waitEvent("upstream failing", troubleWait, isUpstream(t, func(s upstreamStatus) bool { return !s.OK }))
	c.close()
}

// TestUpstreamDownAtStart checks a stream opened while the upstream fails before any
// document: 200 and open, the first event after retry is `upstream` ok:false, and when the
// upstream recovers the client is told so and gets a snapshot.
func TestUpstreamDownAtStart(t *testing.T) {
	t.Parallel()
	u := newUpstream(t, map[string]any{"rev": 0})
	u.setMode(serve500)
	caddy := startCaddy(t, pollSSE(u.url(), "interval 100ms", "timeout 300ms"))
	c := dialSSE(t, caddy.url(""))
	checkStreamHeaders(t, c.resp)

	first := c.mustNext(troubleWait)
	if first.Type != "upstream" {
		t.Fatalf("first event %q, want upstream", first.Type)
	}
	if first.retry <= 0 {
		t.Errorf("no retry field before the first event")
	}
	checkFailure(t, first, func(s upstreamStatus) bool { return s.Status == 500 }, `"status":500`)

	u.setMode(serveJSON)
	c.waitFor(u.document(), troubleWait)
	if ups := ofType(c.events, "upstream"); !decodeStatus(t, ups[len(ups)-1]).OK {
		c.waitEvent("upstream recovery", troubleWait, isUpstream(t, func(s upstreamStatus) bool { return s.OK }))
	}
	if ups := ofType(c.events, "upstream"); len(ups) != 2 {
		t.Errorf("want upstream ok:false then ok:true; got %s", c.summary())
	}
	if snaps := ofType(c.events, "snapshot"); len(snaps) != 1 {
		t.Errorf("want the document as one snapshot; got %s", c.summary())
	}
}

// TestUpstreamTimeouts checks that a poll is bounded by timeout wherever the upstream
// stalls, before the response header or in the middle of the body: the client is told
// `upstream` with error "timeout", and the stream goes on with the next good document.
func TestUpstreamTimeouts(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		mode upstreamMode
	}{
		{"no response header", serveHang},
		{"body stalls", serveStall},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			u := newUpstream(t, map[string]any{"rev": 0, "pad": strings.Repeat("x", 100)})
			caddy := startCaddy(t, pollSSE(u.url(), "interval 100ms", "timeout 300ms"))
			c := dialSSE(t, caddy.url(""))
			c.waitFor(u.document(), troubleWait)

			u.set(t, map[string]any{"rev": 1, "pad": strings.Repeat("y", 100)})
			u.setMode(tc.mode)
			r, _ := c.waitEvent("upstream failure", troubleWait, isUpstream(t, func(s upstreamStatus) bool { return !s.OK }))
			checkFailure(t, r, func(s upstreamStatus) bool { return s.Error == "timeout" }, `"error":"timeout"`)

			u.setMode(serveJSON)
			c.waitFor(u.document(), troubleWait)
		})
	}
}
