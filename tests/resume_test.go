package tests

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"
)

// bigDoc returns a document of 200 members whose member `changed` differs by rev, so that
// a catch-up patch over a few revisions is much smaller than a snapshot.
func bigDoc(rev int) map[string]any {
	doc := map[string]any{"rev": rev}
	for i := range 200 {
		doc[fmt.Sprintf("m%03d", i)] = map[string]any{"n": i, "label": fmt.Sprintf("member %d with some padding text", i)}
	}
	doc["m007"] = map[string]any{"n": 7, "label": fmt.Sprintf("edited %d times", rev)}
	return doc
}

// resumeFixture is a running stream with a client that left at revision 0 while three
// changes happened, seen by a client that stayed.
type resumeFixture struct {
	caddy  *caddyProc
	up     *upstream
	stay   *sseClient // connected throughout, holds the current document
	left   []byte     // the document the client that left holds
	leftID string     // and its version
}

func newResumeFixture(t *testing.T) *resumeFixture {
	u := newUpstream(t, bigDoc(0))
	f := &resumeFixture{up: u, caddy: startCaddy(t, pollSSE(u.url(), "interval 50ms"))}
	leaver := dialSSE(t, f.caddy.url(""))
	leaver.waitFor(u.document(), 5*time.Second)
	f.left, f.leftID = leaver.doc, leaver.lastID
	leaver.close()

	f.stay = dialSSE(t, f.caddy.url(""))
	f.stay.waitFor(u.document(), 5*time.Second)
	for rev := 1; rev <= 3; rev++ {
		f.stay.waitFor(u.set(t, bigDoc(rev)), 5*time.Second)
	}
	return f
}

// TestResumeFromHistory checks resume with an id in history, sent in the Last-Event-ID
// header and in the last_event_id query: the first event is exactly one catch-up patch
// (smaller than a snapshot of this document), the document then equals the upstream's,
// and nothing else follows while the upstream is unchanged.
func TestResumeFromHistory(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		opt  func(id string) dialOption
	}{
		{"header", withLastEventID},
		{"query", func(id string) dialOption { return withRawQuery("last_event_id=" + url.QueryEscape(id)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newResumeFixture(t)
			c := dialSSE(t, f.caddy.url(""), withDocument(f.left, f.leftID), tc.opt(f.leftID))
			checkStreamHeaders(t, c.resp)
			first := c.mustNext(5 * time.Second)
			if first.Type != "patch" {
				t.Fatalf("first event on resume: %q, want one catch-up patch (received %s)", first.Type, c.summary())
			}
			checkID(t, first)
			if !jsonEqual(c.doc, f.up.document()) {
				t.Fatalf("after the catch-up patch the document differs from the upstream's:\n%.300s", c.doc)
			}
			if got := versionEvents(c.quiet(300 * time.Millisecond)); len(got) > 0 {
				t.Errorf("more version events after the catch-up: %s", summarize(got))
			}
		})
	}
}

// TestResumeCurrent checks that a client resuming with the current id receives no
// snapshot or patch until the document changes, and then exactly one patch.
func TestResumeCurrent(t *testing.T) {
	t.Parallel()
	u := newUpstream(t, bigDoc(0))
	caddy := startCaddy(t, pollSSE(u.url(), "interval 50ms"))
	first := dialSSE(t, caddy.url(""))
	first.waitFor(u.document(), 5*time.Second)

	c := dialSSE(t, caddy.url(""), withDocument(first.doc, first.lastID), withLastEventID(first.lastID))
	checkStreamHeaders(t, c.resp)
	if got := c.quiet(400 * time.Millisecond); len(got) > 0 {
		t.Fatalf("resuming at the current version, got %s; want nothing until a change", summarize(got))
	}
	want := u.set(t, bigDoc(1))
	r := c.mustNext(5 * time.Second)
	if r.Type != "patch" {
		t.Fatalf("after a change: %q, want patch", r.Type)
	}
	if !jsonEqual(c.doc, want) {
		t.Fatalf("after the patch the document differs from the upstream's:\n%.300s", c.doc)
	}
}

// TestResumeUnknownOrGarbageID checks that ids that are not in history, or are not ids
// at all, are never an error: the stream opens with 200 and starts with a snapshot.
func TestResumeUnknownOrGarbageID(t *testing.T) {
	t.Parallel()
	u := newUpstream(t, bigDoc(0))
	caddy := startCaddy(t, pollSSE(u.url(), "interval 50ms"))
	long := strings.Repeat("a", 10<<10)
	for _, tc := range []struct {
		name string
		opt  dialOption
	}{
		{"unknown id in header", withLastEventID("AAAAAAAAAAAAAAAAAAAAAA")},
		{"unknown id in query", withRawQuery("last_event_id=AAAAAAAAAAAAAAAAAAAAAA")},
		{"NUL in query", withRawQuery("last_event_id=%00")},
		{"NUL inside id in query", withRawQuery("last_event_id=abc%00def")},
		{"10 KB id in header", withLastEventID(long)},
		{"10 KB id in query", withRawQuery("last_event_id=" + long)},
		{"65-byte id in header", withLastEventID(strings.Repeat("b", 65))},
		{"non-UTF-8 in query", withRawQuery("last_event_id=%FF%FE")},
		{"spaces in header", withLastEventID("abc def")},
		{"spaces in query", withRawQuery("last_event_id=abc%20def")},
		{"CR LF in query", withRawQuery("last_event_id=abc%0D%0Aevent:%20patch")},
		{"non-ASCII in header", withLastEventID("héllo")},
		{"empty query value", withRawQuery("last_event_id=")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := dialSSE(t, caddy.url(""), tc.opt)
			checkStreamHeaders(t, c.resp)
			if r := c.mustNext(5 * time.Second); r.Type != "snapshot" {
				t.Fatalf("first event %q, want snapshot", r.Type)
			}
			if !jsonEqual(c.doc, u.document()) {
				t.Fatalf("snapshot differs from the upstream's document")
			}
		})
	}
}

// TestVersionIDsAcrossNodes checks that ids derive from content only: two Caddy processes
// polling the same upstream give the same document the same id, so a client that moves
// to the other node with its id resumes there with nothing to receive until a change.
func TestVersionIDsAcrossNodes(t *testing.T) {
	t.Parallel()
	u := newUpstream(t, bigDoc(0))
	nodeA := startCaddy(t, pollSSE(u.url(), "interval 50ms"))
	nodeB := startCaddy(t, pollSSE(u.url(), "interval 50ms"))
	a := dialSSE(t, nodeA.url(""))
	a.waitFor(u.document(), 5*time.Second)
	b := dialSSE(t, nodeB.url(""))
	b.waitFor(u.document(), 5*time.Second)
	if a.lastID != b.lastID {
		t.Fatalf("same document, different ids: %q on one node, %q on the other", a.lastID, b.lastID)
	}
	a.close()

	moved := dialSSE(t, nodeB.url(""), withDocument(a.doc, a.lastID), withLastEventID(a.lastID))
	if got := versionEvents(moved.quiet(300 * time.Millisecond)); len(got) > 0 {
		t.Errorf("moving to the other node with the current id, got %s; want nothing", summarize(got))
	}
}
