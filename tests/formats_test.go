package tests

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

const formatWait = 5 * time.Second

// TestFormatsPerClient checks that clients of one route choose their format with
// ?format=: over every convergence step, a json_patch client gets one RFC 6902 patch, a
// merge_patch client one RFC 7386 merge patch (a snapshot when the change sets a member
// to null), and a snapshot client one snapshot; each, applying what it gets, holds the
// upstream's document after every step. All three share one poll loop.
func TestFormatsPerClient(t *testing.T) {
	t.Parallel()
	u := newUpstream(t, json.RawMessage(convergenceStart))
	caddy := startCaddy(t, pollSSE(u.url(), "interval 50ms"))
	clients := map[string]*sseClient{
		"json_patch":  dialSSE(t, caddy.url("")),
		"merge_patch": dialSSE(t, caddy.url(""), withFormat("merge_patch")),
		"snapshot":    dialSSE(t, caddy.url(""), withFormat("snapshot")),
	}
	for _, c := range clients {
		checkStreamHeaders(t, c.resp)
		c.waitFor(u.document(), formatWait)
	}
	mergeTypes := map[string]string{}
	for _, step := range convergenceSteps {
		want := u.set(t, json.RawMessage(step.doc))
		for name, c := range clients {
			got := versionEvents(c.waitFor(want, formatWait))
			if len(got) != 1 {
				t.Fatalf("%s, %s: want one event, got %s", step.name, name, summarize(got))
			}
			checkFormatEvent(t, name, got[0])
			if name == "merge_patch" {
				mergeTypes[step.name] = got[0].Type
			}
		}
	}
	if typ := mergeTypes["types change"]; typ != "snapshot" {
		t.Errorf("merge_patch: a change setting title to null came as %s, want a snapshot", typ)
	}
	if typ := mergeTypes["nested member changed"]; typ != "patch" {
		t.Errorf("merge_patch: a nested member change came as %s, want a merge patch", typ)
	}
}

// checkFormatEvent checks that a change event fits the client's format.
func checkFormatEvent(t *testing.T, format string, r received) {
	t.Helper()
	checkID(t, r)
	switch {
	case format == "snapshot" && r.Type != "snapshot":
		t.Errorf("snapshot client got a %s", r.Type)
	case format == "json_patch" && (r.Type != "patch" || !strings.HasPrefix(r.Data, "[")):
		t.Errorf("json_patch client got %s %.100s, want an RFC 6902 array", r.Type, r.Data)
	case format == "merge_patch" && r.Type == "patch" && !strings.HasPrefix(r.Data, "{"):
		t.Errorf("merge_patch client got patch %.100s, want an RFC 7386 object", r.Data)
	}
}

// TestRouteFormatSnapshot checks `format snapshot`: clients that do not choose get the whole
// document on every change, and a client asking for json_patch gets patches.
func TestRouteFormatSnapshot(t *testing.T) {
	t.Parallel()
	u := newUpstream(t, map[string]any{"rev": 0, "items": []int{1, 2}})
	caddy := startCaddy(t, pollSSE(u.url(), "interval 50ms", "format snapshot"))
	plain := dialSSE(t, caddy.url(""), inFormat("snapshot"))
	patches := dialSSE(t, caddy.url(""), withFormat("json_patch"))
	plain.waitFor(u.document(), formatWait)
	patches.waitFor(u.document(), formatWait)
	for rev := 1; rev <= 3; rev++ {
		want := u.set(t, map[string]any{"rev": rev, "items": []int{1, 2, rev}})
		plain.waitFor(want, formatWait)
		patches.waitFor(want, formatWait)
	}
	if got := typeSequence(plain.events, "snapshot", "patch"); strings.Join(got, " ") != "snapshot snapshot snapshot snapshot" {
		t.Errorf("route in snapshot format: events %v, want four snapshots", got)
	}
	if got := typeSequence(patches.events, "snapshot", "patch"); strings.Join(got, " ") != "snapshot patch patch patch" {
		t.Errorf("?format=json_patch on that route: events %v, want a snapshot then patches", got)
	}
}

// TestResumeInMergePatch checks that a merge_patch client resuming from history gets one
// merge patch that brings its document to the upstream's.
func TestResumeInMergePatch(t *testing.T) {
	t.Parallel()
	f := newResumeFixture(t)
	c := dialSSE(t, f.caddy.url(""), withFormat("merge_patch"), withDocument(f.left, f.leftID), withLastEventID(f.leftID))
	first := c.mustNext(formatWait)
	if first.Type != "patch" || !strings.HasPrefix(first.Data, "{") {
		t.Errorf("first event %s %.100s, want one merge patch", first.Type, first.Data)
	}
	if !jsonEqual(c.doc, f.up.document()) {
		t.Fatalf("after the catch-up the document differs from the upstream's:\n%.300s", c.doc)
	}
}

// TestUnknownFormat checks that ?format= with an unknown value gets 400 with a message
// naming the formats, before any stream starts or any poll is made.
func TestUnknownFormat(t *testing.T) {
	t.Parallel()
	u := newUpstream(t, map[string]any{"ok": true})
	caddy := startCaddy(t, pollSSE(u.url(), "interval 50ms"))
	for _, q := range []string{"format=xml", "format=JSON_PATCH", "format=patch&last_event_id=abc"} {
		req, err := http.NewRequest(http.MethodGet, caddy.url("/?"+q), nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Accept", "text/event-stream")
		resp, err := boundedClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Content-Type") == "text/event-stream" {
			t.Errorf("?%s: status %d, Content-Type %q; want 400 and no stream", q, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if !strings.Contains(string(body), "json_patch, merge_patch or snapshot") {
			t.Errorf("?%s: body %q does not name the formats", q, body)
		}
	}
	if n := u.count(); n != 0 {
		t.Errorf("refused requests made %d upstream polls", n)
	}
}
