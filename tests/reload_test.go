package tests

import (
	"net/http"
	"testing"
	"time"
)

const (
	openStreams = 50
	endWithin   = 2 * time.Second // reload and stop never wait on open streams
)

// forceReload makes the admin API reload a config identical to the running one, as
// `caddy reload --force` does; without it an unchanged config is not reloaded at all.
var forceReload = http.Header{"Cache-Control": {"must-revalidate"}}

// TestReloadAndStop checks that a config reload neither waits on open streams nor ends
// them, and that a stop ends them at once: with 50 streams open, POST /load of the same
// Caddyfile returns within 2 s, and every stream, still open, gets the next change as
// one patch; then POST /stop makes the process exit within 1 s and every stream ends.
func TestReloadAndStop(t *testing.T) {
	t.Parallel()
	u := newUpstream(t, map[string]any{"rev": 0})
	caddy := startCaddy(t, pollSSE(u.url(), "interval 100ms"))
	clients := openN(t, caddy, u.document())

	start := time.Now()
	status, body, err := caddy.admin(http.MethodPost, "/load", "text/caddyfile", caddy.config, forceReload)
	if err != nil || status != http.StatusOK {
		t.Fatalf("POST /load: status %d, %v: %s", status, err, body)
	}
	if took := time.Since(start); took > endWithin {
		t.Errorf("POST /load took %v, want under %v", took, endWithin)
	} else {
		t.Logf("POST /load returned after %v", took.Round(time.Millisecond))
	}
	want := u.set(t, map[string]any{"rev": 1})
	for i, c := range clients {
		got := c.waitFor(want, 5*time.Second) // fails if the stream ended
		if seq := typeSequence(got, "snapshot", "patch"); len(seq) != 1 || seq[0] != "patch" {
			t.Errorf("stream %d after the reload: %v, want the change as one patch on the same stream", i, seq)
		}
	}

	start = time.Now()
	if status, body, err := caddy.admin(http.MethodPost, "/stop", "", nil, nil); err != nil || status != http.StatusOK {
		t.Logf("POST /stop: status %d, %v: %s", status, err, body)
	}
	if !caddy.waitExit(caddyStopTimeout) {
		t.Fatalf("caddy did not exit within %v of POST /stop", caddyStopTimeout)
	}
	took := time.Since(start)
	t.Logf("stop with %d open streams: caddy exited after %v", openStreams, took.Round(time.Millisecond))
	if took > stopWithin {
		t.Errorf("caddy took %v to exit after POST /stop, want under %v", took, stopWithin)
	}
	checkAllEnd(t, "stop", clients, start)
}

// openN opens openStreams streams and waits until each holds doc.
func openN(t *testing.T, caddy *caddyProc, doc []byte) []*sseClient {
	t.Helper()
	clients := make([]*sseClient, openStreams)
	for i := range clients {
		clients[i] = dialSSE(t, caddy.url(""))
	}
	for _, c := range clients {
		c.waitFor(doc, 10*time.Second)
	}
	return clients
}

// checkAllEnd checks that every client's stream ended within endWithin of start.
func checkAllEnd(t *testing.T, what string, clients []*sseClient, start time.Time) {
	t.Helper()
	var last time.Duration
	for i, c := range clients {
		ended, err := c.waitEnd(time.Until(start.Add(caddyStopTimeout)))
		if err != nil {
			t.Fatalf("%s: stream %d still open %v later (%v)", what, i, caddyStopTimeout, err)
		}
		last = max(last, ended.Sub(start))
	}
	t.Logf("%s: all %d streams ended within %v", what, len(clients), last.Round(time.Millisecond))
	if last > endWithin {
		t.Errorf("%s: streams took %v to end, want under %v", what, last, endWithin)
	}
}

// TestReloadKeepsHistory checks that history survives a reload: a client that left
// several versions ago and resumes after a reload is caught up with one patch (smaller
// than a snapshot of this document), as it would be without the reload.
func TestReloadKeepsHistory(t *testing.T) {
	t.Parallel()
	f := newResumeFixture(t)
	status, body, err := f.caddy.admin(http.MethodPost, "/load", "text/caddyfile", f.caddy.config, forceReload)
	if err != nil || status != http.StatusOK {
		t.Fatalf("POST /load: status %d, %v: %s", status, err, body)
	}
	c := dialSSE(t, f.caddy.url(""), withDocument(f.left, f.leftID), withLastEventID(f.leftID))
	first := c.mustNext(5 * time.Second)
	if !jsonEqual(c.doc, f.up.document()) {
		t.Fatalf("after the first event (%s) the document differs from the upstream's", first.Type)
	}
	if first.Type != "patch" {
		t.Errorf("resuming from history after a reload: first event %q, want one catch-up patch", first.Type)
	}
}
