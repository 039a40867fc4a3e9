package tests

import (
	"net/http"
	"testing"
	"time"
)

const stopStreams = 5000

// TestOpsStop5000Streams opens 5,000 streams, each of which receives its first event,
// then sends POST /stop to the admin API: Caddy exits within 1 s and every one of the
// 5,000 connections ends.
func TestOpsStop5000Streams(t *testing.T) {
	if testing.Short() {
		t.Skip("5,000 streams")
	}
	u := newUpstream(t, map[string]any{"rev": 0, "note": "stop"})
	caddy := startCaddy(t, pollSSE(u.url(), "interval 1s"))
	opened := time.Now()
	streams := openRawStreams(t, caddy.siteAddr, "/", stopStreams, nil)
	for i, ev := range firstEvents(t, streams, 2*rawTimeout) {
		if ev.typ != "snapshot" {
			t.Fatalf("stream %d: first event %q, want snapshot", i, ev.typ)
		}
	}
	t.Logf("%d streams open and holding their snapshot after %v", stopStreams, time.Since(opened).Round(time.Millisecond))

	start := time.Now()
	if status, body, err := caddy.admin(http.MethodPost, "/stop", "", nil, nil); err != nil || status != http.StatusOK {
		t.Logf("POST /stop: status %d, %v: %s", status, err, body)
	}
	if !caddy.waitExit(caddyStopTimeout) {
		t.Fatalf("caddy did not exit within %v of POST /stop", caddyStopTimeout)
	}
	took := time.Since(start)
	t.Logf("stop with %d open streams: caddy exited after %v", stopStreams, took.Round(time.Millisecond))
	if took > stopWithin {
		t.Errorf("caddy took %v to exit after POST /stop with %d streams, want under %v", took, stopStreams, stopWithin)
	}
	last := allEnd(t, "stop", streams, start, start.Add(caddyStopTimeout))
	t.Logf("stop: all %d connections seen ended within %v", stopStreams, last.Round(time.Millisecond))
}
