package tests

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

// convergenceStart is the document the upstream serves first.
const convergenceStart = `{"title":"Board","count":0,"items":[1,2,3],"meta":{"owner":{"name":"ann"}}}`

// convergenceSteps are upstream edits, each applied to the document before it.
var convergenceSteps = []struct {
	name string
	doc  string
}{
	{"member added", `{"title":"Board","count":0,"items":[1,2,3],"meta":{"owner":{"name":"ann"}},"status":"open"}`},
	{"member removed", `{"title":"Board","count":0,"items":[1,2,3],"meta":{"owner":{"name":"ann"}}}`},
	{"number changed", `{"title":"Board","count":1,"items":[1,2,3],"meta":{"owner":{"name":"ann"}}}`},
	{"nested object added", `{"title":"Board","count":1,"items":[1,2,3],"meta":{"owner":{"name":"ann","contact":{"email":"ann@example.com"}}}}`},
	{"nested member changed", `{"title":"Board","count":1,"items":[1,2,3],"meta":{"owner":{"name":"bob","contact":{"email":"ann@example.com"}}}}`},
	{"nested object removed", `{"title":"Board","count":1,"items":[1,2,3],"meta":{}}`},
	{"array grows", `{"title":"Board","count":1,"items":[1,2,3,4,5],"meta":{}}`},
	{"array shrinks", `{"title":"Board","count":1,"items":[2,4],"meta":{}}`},
	{"array of objects", `{"title":"Board","count":1,"items":[{"id":1,"v":"a"},{"id":2,"v":"b"}],"meta":{}}`},
	{"array element edited", `{"title":"Board","count":1,"items":[{"id":1,"v":"a"},{"id":2,"v":"c"}],"meta":{}}`},
	{"array emptied", `{"title":"Board","count":1,"items":[],"meta":{}}`},
	{"unicode values", `{"title":"Zürich ☃ 😀 中文","count":1,"items":[],"meta":{}}`},
	{"unicode keys", `{"title":"Zürich ☃ 😀 中文","count":1,"items":[],"meta":{"ключ":"значение","🔑":true}}`},
	{"JSON Pointer escapes in keys", `{"title":"Board","count":1,"items":[],"meta":{"a/b":1,"m~n":2,"~1":3,"":"empty key"}}`},
	{"line breaks and separators in strings", `{"title":"line1\nline2\r\nline3\rline4\u2028end","count":1,"items":[],"meta":{"html":"<b>&amp;</b>"}}`},
	{"types change", `{"title":null,"count":"one","items":{"was":"an array"},"meta":[]}`},
	{"deep nesting", `{"title":null,"count":"one","items":{"was":"an array"},"meta":[],"deep":{"a":{"b":{"c":[{"d":[1,[2,[3,{"e":"f"}]]]}]}}}}`},
	{"numbers and literals", `{"title":null,"count":12345678901234567890,"items":[true,false,null],"meta":[-0.001,1.5e300,0]}`},
	{"many members at once", manyMembers(30)},
	{"back to the start", convergenceStart},
}

func manyMembers(n int) string {
	m := map[string]any{"title": "many", "items": []int{}}
	for i := range n {
		m[fmt.Sprintf("k%02d", i)] = map[string]int{"n": i}
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// TestConvergence checks the basic contract on one connection: the response header, the
// retry field, a snapshot first, then each upstream change as exactly one patch that
// takes the client's document to the upstream's, with well-formed event ids that are
// derived from content (the same document gets the same id again).
func TestConvergence(t *testing.T) {
	t.Parallel()
	u := newUpstream(t, json.RawMessage(convergenceStart))
	caddy := startCaddy(t, pollSSE(u.url(), "interval 50ms", "retry 1500ms"))
	c := dialSSE(t, caddy.url(""))
	checkStreamHeaders(t, c.resp)

	first := c.mustNext(5 * time.Second)
	if first.Type != "snapshot" {
		t.Fatalf("first event %q, want snapshot", first.Type)
	}
	if first.retry < 1125*time.Millisecond || first.retry > 1875*time.Millisecond {
		t.Errorf("retry before the first event: %v, want 1.5s give or take 25 %%", first.retry)
	}
	c.waitFor(u.document(), time.Second)
	checkID(t, first)
	startID := first.LastEventID

	for _, step := range convergenceSteps {
		ok := t.Run(step.name, func(st *testing.T) {
			c.t = st // the client reports to the step running it
			convergeStep(st, c, u, step.doc)
		})
		c.t = t
		if !ok {
			break
		}
	}
	if t.Failed() {
		return
	}
	if c.lastID != startID {
		t.Errorf("the start document came back with id %q, first had %q: ids must derive from content", c.lastID, startID)
	}
}

// convergeStep changes the upstream document and checks that exactly one patch with a
// new, well-formed id brings the client to it.
func convergeStep(t *testing.T, c *sseClient, u *upstream, doc string) {
	prevID := c.lastID
	want := u.set(t, json.RawMessage(doc))
	got := c.waitFor(want, 5*time.Second)
	if len(got) != 1 || got[0].Type != "patch" {
		t.Fatalf("want exactly one patch, got %s", summarize(got))
	}
	checkID(t, got[0])
	if got[0].LastEventID == prevID {
		t.Errorf("id %q did not change with the document", prevID)
	}
}

// checkID checks that a version event's id is short and made of safe characters.
func checkID(t testing.TB, r received) {
	t.Helper()
	if !versionID.MatchString(r.LastEventID) {
		t.Errorf("%s id %q: want 1 to 64 bytes of [A-Za-z0-9_.-]", r.Type, r.LastEventID)
	}
}
