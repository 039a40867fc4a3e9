package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pollsse/caddy-poll-sse/diff"
	"github.com/pollsse/caddy-poll-sse/diff/difftest"
)

// formatSteps are documents in turn; the third sets a member to null, which a merge patch
// cannot express.
var formatSteps = []string{
	`{"a":1,"b":{"c":2}}`,
	`{"a":2,"b":{"c":2}}`,
	`{"a":2,"b":{"c":null}}`,
	`{"a":3,"b":{"c":null}}`,
}

// topicOf returns the running topic for key "k".
func topicOf(t *testing.T, h *Hub) *Topic {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	tp := h.topics["k"]
	if tp == nil {
		t.Fatal("no topic")
	}
	return tp
}

func TestParseFormat(t *testing.T) {
	t.Parallel()
	for _, f := range []Format{JSONPatch, MergePatch, Snapshot} {
		if got, err := ParseFormat(f.String()); got != f || err != nil {
			t.Errorf("ParseFormat(%q) = %v, %v", f, got, err)
		}
	}
	for _, s := range []string{"", "JSON_PATCH", "patch", "merge"} {
		if _, err := ParseFormat(s); err == nil || !strings.Contains(err.Error(), "json_patch, merge_patch or snapshot") {
			t.Errorf("ParseFormat(%q): %v; want an error listing the formats", s, err)
		}
	}
}

// TestFormatEvents checks the events of each format: json_patch patches, merge_patch merge
// patches or a snapshot when the change sets a member to null, snapshot snapshots; every
// connection starts with a snapshot and every client converges.
func TestFormatEvents(t *testing.T) {
	t.Parallel()
	want := map[Format][]string{
		JSONPatch:  {"snapshot", "patch", "patch", "patch"},
		MergePatch: {"snapshot", "patch", "snapshot", "patch"},
		Snapshot:   {"snapshot", "snapshot", "snapshot", "snapshot"},
	}
	h := newHub(t, Config{})
	src := newDocSource()
	clients := map[Format]*client{}
	for f := range want {
		clients[f] = subscribeIn(t, h, src, "", f)
	}
	for _, doc := range formatSteps {
		src.send(t, doc)
		for _, c := range clients {
			c.waitDoc(t, doc)
		}
	}
	for f, c := range clients {
		if got := c.types(0); !slices.Equal(got, want[f]) {
			t.Errorf("%v: events %v, want %v", f, got, want[f])
		}
	}
	if got := clients[MergePatch].events[1].Data; got != `{"a":2}` {
		t.Errorf("merge_patch event data %s, want {\"a\":2}", got)
	}
}

// TestEachFormatEncodedOnce checks that subscribers of one format get the very same bytes
// for a change, and that it is not encoded in a format nobody reads.
func TestEachFormatEncodedOnce(t *testing.T) {
	t.Parallel()
	for _, f := range []Format{JSONPatch, MergePatch, Snapshot} {
		t.Run(f.String(), func(t *testing.T) {
			t.Parallel()
			h := newHub(t, Config{})
			src := newDocSource()
			a, b := subscribeIn(t, h, src, "", f), subscribeIn(t, h, src, "", f)
			for _, doc := range formatSteps[:2] {
				src.send(t, doc)
				a.waitDoc(t, doc)
				b.waitDoc(t, doc)
			}
			fa, fb := a.batches[len(a.batches)-1], b.batches[len(b.batches)-1]
			if len(fa) != 1 || len(fb) != 1 || &fa[0][0] != &fb[0][0] {
				t.Fatal("subscribers of one format did not get the same frame bytes")
			}
			tp := topicOf(t, h)
			tp.mu.RLock()
			defer tp.mu.RUnlock()
			for other, data := range tp.log[(tp.head-1)%logWindow].data {
				if Format(other) != f && data != nil {
					t.Errorf("the change was encoded in %v, which has no subscriber", Format(other))
				}
			}
		})
	}
}

// TestFormatsJoiningDuringPublish has clients of every format join while changes are
// published: each must reach the last document, whatever format it joined in and when.
func TestFormatsJoiningDuringPublish(t *testing.T) {
	t.Parallel()
	h := newHub(t, Config{})
	src := newDocSource()
	first := subscribe(t, h, src, "")
	const changes = 50
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range changes {
			src.docs <- doc(i)
		}
	}()
	var wg sync.WaitGroup
	for i := range 60 {
		c := subscribeIn(t, h, src, "", Format(i%numFormats))
		wg.Go(func() { c.waitDoc(t, doc(changes-1)) })
	}
	<-done
	wg.Wait()
	first.waitDoc(t, doc(changes-1))
}

// idleSource publishes nothing; tests publish on its topic themselves.
type idleSource struct{}

func (idleSource) Run(ctx context.Context, _ *Topic) { <-ctx.Done() }

// TestFormatJoiningMidPublish: a subscriber whose format nobody used when a change was
// encoded, and who joins before the change is added, still gets it in its format.
func TestFormatJoiningMidPublish(t *testing.T) {
	t.Parallel()
	h := newHub(t, Config{})
	early := subscribeIn(t, h, idleSource{}, "", JSONPatch)
	tp := topicOf(t, h)
	tr := newTracker(t, diff.Options{})
	changes := make([]diff.Change, 2)
	for i, doc := range formatSteps[:2] {
		ch, _, err := tr.Update([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		changes[i] = ch
	}
	tp.Publish(changes[0])
	early.waitDoc(t, formatSteps[0])
	enc := tp.encode(changes[1])
	late := subscribeIn(t, h, idleSource{}, "", MergePatch)
	tp.commit(enc)
	late.waitDoc(t, formatSteps[1])
	early.waitDoc(t, formatSteps[1])
	if got := late.types(0); !slices.Equal(got, []string{"snapshot", "patch"}) {
		t.Fatalf("late subscriber got %v; want a snapshot, then the change as a merge patch", got)
	}
}

// big returns a document large enough that a catch-up patch is smaller than a snapshot.
// null sets member "opt" to null, which a merge patch cannot express.
func big(i int, null bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, `{"n":%d`, i)
	if null {
		b.WriteString(`,"opt":null`)
	}
	for k := range 100 {
		fmt.Fprintf(&b, `,"member%d":"value %d"`, k, k)
	}
	return b.String() + "}"
}

// TestResumeInEachFormat checks resume per format: the current id gets nothing, an id in
// the history one catch-up in the client's format, an unknown id a snapshot.
func TestResumeInEachFormat(t *testing.T) {
	t.Parallel()
	h := newHub(t, Config{})
	src := newDocSource()
	first := subscribe(t, h, src, "")
	ids := map[string]string{}
	docs := map[string]string{"plain": big(0, false), "null": big(1, true), "after null": big(2, true), "current": big(3, true)}
	for _, name := range []string{"plain", "null", "after null", "current"} {
		src.send(t, docs[name])
		first.waitDoc(t, docs[name])
		ids[name] = first.id
	}
	tests := []struct {
		format Format
		held   string // the document the client holds, by name; "" for an unknown id
		want   string // the event it gets; "" for none
	}{
		{JSONPatch, "plain", "patch"},
		{JSONPatch, "current", ""},
		{JSONPatch, "", "snapshot"},
		{MergePatch, "null", "patch"},
		{MergePatch, "plain", "snapshot"}, // the change to null: no merge patch expresses it
		{MergePatch, "current", ""},
		{MergePatch, "", "snapshot"},
		{Snapshot, "plain", "snapshot"},
		{Snapshot, "current", ""},
		{Snapshot, "", "snapshot"},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%v from %q", tc.format, tc.held), func(t *testing.T) {
			t.Parallel()
			id := ids[tc.held]
			if tc.held == "" {
				id = "AAAAAAAAAAAAAAAAAAAAAA"
			}
			c := subscribeIn(t, h, src, id, tc.format)
			c.doc = []byte(docs[tc.held])
			checkResume(t, c, tc.want, docs["current"])
		})
	}
}

// checkResume reads what a resuming client is sent first: one event of type want (or
// nothing), after which it holds doc.
func checkResume(t *testing.T, c *client, want, doc string) {
	t.Helper()
	if err := c.read(time.Second); err != nil {
		t.Fatal(err)
	}
	got := c.types(0)
	switch {
	case want == "" && len(got) != 0:
		t.Fatalf("got %v; want nothing until the next change", got)
	case want != "" && !slices.Equal(got, []string{want}):
		t.Fatalf("got %v; want one %s", got, want)
	case want != "":
		c.waitDoc(t, doc)
	}
}

// TestMergeResumeSendsSnapshotWhenSmaller: a merge catch-up larger than the document is
// replaced by a snapshot.
func TestMergeResumeSendsSnapshotWhenSmaller(t *testing.T) {
	t.Parallel()
	h := newHub(t, Config{})
	src := newDocSource()
	c := subscribe(t, h, src, "")
	long := `{"a":"` + strings.Repeat("x", 500) + `"}`
	src.send(t, long)
	c.waitDoc(t, long)
	held := c.id
	src.send(t, `{"a":"`+strings.Repeat("y", 500)+`"}`)
	src.send(t, `{"b":1}`)
	c.waitDoc(t, `{"b":1}`)
	r := subscribeIn(t, h, src, held, MergePatch)
	r.doc = []byte(long)
	checkResume(t, r, "snapshot", `{"b":1}`)
}

// padded returns a document of about size bytes whose member n is i.
func padded(i, size int) string {
	return fmt.Sprintf(`{"n":%d,"pad":"%s"}`, i, strings.Repeat("p", size))
}

// TestSlowSubscriberCatchesUpInItsFormat: a subscriber that falls out of the log gets one
// catch-up in its format: a patch in json_patch and merge_patch (smaller than the
// document here), a snapshot in snapshot.
func TestSlowSubscriberCatchesUpInItsFormat(t *testing.T) {
	t.Parallel()
	want := map[Format]string{JSONPatch: "patch", MergePatch: "patch", Snapshot: "snapshot"}
	for f, kind := range want {
		t.Run(f.String(), func(t *testing.T) {
			t.Parallel()
			h := newHub(t, Config{})
			src := newDocSource()
			slow, fast := subscribeIn(t, h, src, "", f), subscribeIn(t, h, src, "", f)
			const size, changes = 10_000, logWindow + 10
			src.send(t, padded(0, size))
			slow.waitDoc(t, padded(0, size))
			before := len(slow.events)
			for i := 1; i <= changes; i++ {
				src.send(t, padded(i, size))
				fast.waitDoc(t, padded(i, size))
			}
			slow.waitDoc(t, padded(changes, size))
			if got := slow.types(before); !slices.Equal(got, []string{kind}) {
				t.Fatalf("slow subscriber got %v; want one %s", got, kind)
			}
		})
	}
}

// TestLogByteBudget checks that the log drops its oldest frames past the byte budget, long
// before logWindow frames; that a subscriber behind them gets one catch-up; and that a frame
// larger than the whole budget is still delivered.
func TestLogByteBudget(t *testing.T) {
	t.Parallel()
	h := newHub(t, Config{})
	h.logBytes = 10_000
	src := newDocSource()
	slow, fast := subscribeIn(t, h, src, "", Snapshot), subscribeIn(t, h, src, "", Snapshot)
	src.send(t, padded(0, 1000))
	slow.waitDoc(t, padded(0, 1000))
	before := len(slow.events)
	tp := topicOf(t, h)
	for i := 1; i <= 30; i++ {
		src.send(t, padded(i, 1000))
		fast.waitDoc(t, padded(i, 1000))
		if n, size := logUse(tp); size > h.logBytes || n > 10 {
			t.Fatalf("after %d changes the log holds %d frames of %d bytes; budget %d", i, n, size, h.logBytes)
		}
	}
	slow.waitDoc(t, padded(30, 1000))
	if got := slow.types(before); !slices.Equal(got, []string{"snapshot"}) {
		t.Fatalf("slow subscriber got %v; want one catch-up snapshot", got)
	}
	huge := padded(31, 3*h.logBytes)
	src.send(t, huge)
	fast.waitDoc(t, huge)
	if n, _ := logUse(tp); n != 1 {
		t.Fatalf("the log holds %d frames; want only the one over budget", n)
	}
}

// logUse returns how many frames t's log holds and their bytes.
func logUse(t *Topic) (int, int) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return int(t.head - t.tail), t.logSize
}

// rootTypeSteps walk the root of the document through every kind and back: object,
// array, emptied array, nested arrays, scalars, null, and the changes [1,2] to [], {} to
// [] and "x" to {}. A merge patch is an object merged into an object, so each change
// whose root is or becomes something else must reach merge_patch clients as a snapshot.
var rootTypeSteps = []string{
	`{"a":1,"list":[1,2]}`, `[1,2]`, `[]`, `{}`, `[]`, `[[1,[2]],3]`, `[[1,[2,4]],3]`, `[[1],3]`,
	`"x"`, `{}`, `{"b":{"c":[1]}}`, `7`, `8`, `null`, `{"a":null}`, `true`, `[{"a":1}]`,
	`[{"a":2}]`, `{"a":{"b":2}}`, `{"a":{"b":3}}`, `"y"`, `"x"`, `[1,2]`, `{"list":[1,2]}`,
	`{"list":[1,2],"n":1}`, `[1,2]`,
}

var allFormats = []Format{JSONPatch, MergePatch, Snapshot}

// checkPatchShapes checks every patch event c received since event from: an RFC 6902
// array in json_patch, an RFC 7386 object in merge_patch, none in snapshot.
func checkPatchShapes(t *testing.T, c *client, from int) {
	t.Helper()
	for _, m := range c.events[from:] {
		if m.Type == "patch" && !patchFits(c.format, m.Data) {
			t.Errorf("%v: patch event %s is not of its format", c.format, m.Data)
		}
	}
}

// patchFits reports whether data is what a patch event in format f holds.
func patchFits(f Format, data string) bool {
	data = strings.TrimLeft(data, " \t\r\n")
	switch {
	case data == "":
		return false
	case f == JSONPatch:
		return data[0] == '['
	case f == MergePatch:
		return data[0] == '{'
	}
	return false
}

// checkHolds checks that c holds doc at the topic's current version.
func checkHolds(t *testing.T, c *client, tp *Topic, doc string) {
	t.Helper()
	c.waitDoc(t, doc)
	if cur := tp.current(); c.id != cur.ID {
		t.Fatalf("%v: client holds %s at id %s; the topic is at %s", c.format, c.doc, c.id, cur.ID)
	}
}

// TestRootTypeChangesLive sends changes of the root's kind to live clients of every
// format: after each, every client holds the document at the topic's id, and every patch
// event is of its format.
func TestRootTypeChangesLive(t *testing.T) {
	t.Parallel()
	h := newHub(t, Config{})
	src := newDocSource()
	var clients []*client
	for _, f := range allFormats {
		clients = append(clients, subscribeIn(t, h, src, "", f))
	}
	for _, doc := range rootTypeSteps {
		src.send(t, doc)
		for _, c := range clients {
			checkHolds(t, c, topicOf(t, h), doc)
		}
	}
	for _, c := range clients {
		checkPatchShapes(t, c, 0)
		if got, want := c.types(0), wantTypes(t, c.format, rootTypeSteps); !slices.Equal(got, want) {
			t.Errorf("%v: events %v, want %v", c.format, got, want)
		}
	}
}

// wantTypes returns the events a live client of format f gets for docs: a snapshot
// first; then a patch in json_patch, a snapshot in snapshot, and in merge_patch a patch
// only from an object to an object with no null member in any object.
func wantTypes(t *testing.T, f Format, docs []string) []string {
	t.Helper()
	out := []string{"snapshot"}
	for i := 1; i < len(docs); i++ {
		_, null, err := difftest.NullMember([]byte(docs[i]))
		if err != nil {
			t.Fatal(err)
		}
		merges := isObject(docs[i-1]) && isObject(docs[i]) && !null
		if f == JSONPatch || f == MergePatch && merges {
			out = append(out, "patch")
		} else {
			out = append(out, "snapshot")
		}
	}
	return out
}

func isObject(doc string) bool {
	var v any
	err := json.Unmarshal([]byte(doc), &v)
	_, ok := v.(map[string]any)
	return err == nil && ok
}

// TestRootTypeChangesResume resumes, after each change of the sequence, from every
// version before it in every format: the first event is of the client's format and
// brings it to the current document and id.
func TestRootTypeChangesResume(t *testing.T) {
	t.Parallel()
	h := newHub(t, Config{})
	src := newDocSource()
	live := subscribe(t, h, src, "")
	var ids []string
	for j, doc := range rootTypeSteps {
		src.send(t, doc)
		checkHolds(t, live, topicOf(t, h), doc)
		ids = append(ids, live.id)
		for i := range j {
			for _, f := range allFormats {
				c := subscribeIn(t, h, src, ids[i], f)
				c.doc = []byte(rootTypeSteps[i])
				if ids[i] != ids[j] {
					checkHolds(t, c, topicOf(t, h), doc)
				}
				checkPatchShapes(t, c, 0)
				c.sub.Close()
			}
		}
	}
}

// TestRootTypeChangesCatchUp has a slow client of every format miss every other change
// of the sequence, with a log that keeps only the newest frame: each catch-up is of the
// client's format and brings it to the current document and id.
func TestRootTypeChangesCatchUp(t *testing.T) {
	t.Parallel()
	for _, f := range allFormats {
		t.Run(f.String(), func(t *testing.T) {
			t.Parallel()
			h := newHub(t, Config{})
			h.logBytes = 1 // past the newest frame, every frame is evicted at once
			src := newDocSource()
			slow, fast := subscribeIn(t, h, src, "", f), subscribeIn(t, h, src, "", f)
			for j, doc := range rootTypeSteps {
				src.send(t, doc)
				checkHolds(t, fast, topicOf(t, h), doc)
				if j%2 == 0 {
					checkHolds(t, slow, topicOf(t, h), doc)
				}
			}
			checkPatchShapes(t, slow, 0)
			checkPatchShapes(t, fast, 0)
		})
	}
}
