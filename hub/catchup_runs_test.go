package hub

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	jsonpatch "github.com/evanphx/json-patch/v5"

	"github.com/pollsse/caddy-poll-sse/diff"
	"github.com/pollsse/caddy-poll-sse/diff/difftest"
	"github.com/pollsse/caddy-poll-sse/sse"
)

// TestMergeCatchUpsKeptAcrossVersions publishes long runs of versions (objects nested and
// replaced by arrays or scalars, members deleted and added back, documents coming back
// to earlier ones, now and then a change whose patch cannot be read) and, after every
// version, asks for the merge_patch catch-up from every version published before, kept
// runs grown by one change at a time. Each frame must be the one built from scratch from
// the history's rules (a snapshot for an id the history dropped, across an unreadable
// patch, past the document's size, or where a merge patch cannot say the change; else the
// merge patch MergeFromTouches builds over the changes since), byte for byte; and applied
// to the document of the id by evanphx/json-patch and by difftest's applier, each frame
// must give the current document.
func TestMergeCatchUpsKeptAcrossVersions(t *testing.T) {
	t.Parallel()
	length := 250
	if testing.Short() {
		length = 100
	}
	for seed := range 3 {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel()
			o := newCatchUpOracle(t, 40)
			g := newDocWalk(uint64(seed))
			var tr diff.Tracker
			for range length {
				ch, changed, err := tr.Update(g.next())
				if err != nil {
					t.Fatal(err)
				}
				if !changed {
					continue
				}
				o.publish(ch, g.rng.IntN(100) == 0)
				o.checkAll()
			}
			o.report(fmt.Sprint("seed ", seed))
		})
	}
}

// docWalk makes a run of documents: an object of members holding objects, arrays and
// scalars, a few of which change from one document to the next: set, deleted, added
// back, nested deeper, replaced by a value of another kind, set to null; now and then
// the run goes back to an earlier document.
type docWalk struct {
	rng  *rand.Rand
	doc  map[string]any
	past [][]byte
}

func newDocWalk(seed uint64) *docWalk {
	w := &docWalk{rng: rand.New(rand.NewPCG(seed, 99)), doc: map[string]any{}}
	for i := range 40 {
		w.doc[fmt.Sprintf("m%02d", i)] = map[string]any{"pad": strings.Repeat("p", 200), "v": w.value(2)}
	}
	return w
}

// next returns the next document.
func (w *docWalk) next() []byte {
	if len(w.past) > 5 && w.rng.IntN(25) == 0 {
		back := w.past[len(w.past)-1-w.rng.IntN(5)]
		w.doc = nil
		if err := json.Unmarshal(back, &w.doc); err != nil {
			panic(err)
		}
	} else {
		for range 1 + w.rng.IntN(2) {
			w.mutate(w.doc, 0)
		}
	}
	body, err := json.Marshal(w.doc)
	if err != nil {
		panic(err)
	}
	w.past = append(w.past, body)
	return body
}

// mutate changes one member of obj or of an object below it.
func (w *docWalk) mutate(obj map[string]any, depth int) {
	key := w.key(obj)
	if kid, ok := obj[key].(map[string]any); ok && len(kid) > 0 && w.rng.IntN(3) > 0 {
		w.mutate(kid, depth+1)
		return
	}
	switch r := w.rng.IntN(60); {
	case r < 9 && len(obj) > 1:
		delete(obj, key)
	case r < 10:
		obj[key] = nil // a merge patch cannot set a null: the catch-ups across it are snapshots
	case r < 21:
		if arr, ok := obj[key].([]any); ok && len(arr) > 0 {
			obj[key] = append(arr[:0:0], arr[1:]...)
		} else {
			obj[key] = []any{w.value(1), w.rng.IntN(10)}
		}
	case r < 30:
		obj[key] = w.value(2 - min(depth, 2))
	default:
		obj[key] = w.rng.IntN(1000)
	}
}

// key returns one of obj's members, or now and then a new one.
func (w *docWalk) key(obj map[string]any) string {
	if len(obj) == 0 || w.rng.IntN(8) == 0 {
		return fmt.Sprintf("n%d", w.rng.IntN(50))
	}
	keys := slices.Sorted(maps.Keys(obj))
	return keys[w.rng.IntN(len(keys))]
}

// value returns a new value, an object nested up to depth levels or a scalar.
func (w *docWalk) value(depth int) any {
	if depth == 0 || w.rng.IntN(4) == 0 {
		return fmt.Sprintf("s%d-%s", w.rng.IntN(100), strings.Repeat("p", w.rng.IntN(8)))
	}
	obj := map[string]any{}
	for i := range 1 + w.rng.IntN(4) {
		obj[fmt.Sprintf("k%d", i)] = w.value(depth - 1)
	}
	return obj
}

// catchUpOracle publishes versions on a topic of its own and checks the merge_patch
// catch-ups from every version it published.
type catchUpOracle struct {
	t        *testing.T
	tp       *Topic
	history  int
	versions []*diff.Version // published, in order
	touches  []diff.Touches  // into each version; none for the first
	patches  [][]byte        // into each version, as published
	noMerge  []bool          // whether the patch into each version cannot be read
	merges   int
	snaps    int
}

func newCatchUpOracle(t *testing.T, history int) *catchUpOracle {
	h := newHub(t, Config{Linger: time.Hour, History: history})
	h.slots = make(chan struct{}, 1) // a slot of its own: parallel tests do not wait
	keep := subscribeIn(t, h, idleSource{}, "", Snapshot)
	t.Cleanup(keep.sub.Close)
	return &catchUpOracle{t: t, tp: topicOf(t, h), history: history}
}

// unreadable is a patch whose paths cannot be read: no merge patch spans it.
const unreadable = `[{"op":"replace","path":"no slash","value":1}]`

// publish publishes ch, or its version with an unreadable patch when broken.
func (o *catchUpOracle) publish(ch diff.Change, broken bool) {
	if broken && o.versions != nil {
		ch = diff.NewChange(ch.Version, []byte(unreadable), nil)
	}
	ts, err := ch.Touches()
	o.tp.Publish(ch)
	o.versions = append(o.versions, ch.Version)
	o.touches = append(o.touches, ts)
	o.patches = append(o.patches, ch.Patch)
	o.noMerge = append(o.noMerge, err != nil)
}

// checkAll checks the catch-up from every version published before the last.
func (o *catchUpOracle) checkAll() {
	o.t.Helper()
	cur := o.versions[len(o.versions)-1]
	first := max(0, len(o.versions)-o.history-5) // and a few the history dropped
	for k, v := range o.versions[first : len(o.versions)-1] {
		k += first
		if v.ID == cur.ID {
			continue // the client holds the current version: there is nothing to send
		}
		got := o.catchUp(v.ID)
		want := o.fromScratch(v.ID)
		if !bytes.Equal(got, want) {
			o.t.Fatalf("after %d versions, from version %d: the catch-up is\n%.600s\nbuilt from scratch:\n%.600s", len(o.versions), k, got, want)
		}
		if err := o.applies(v, got); err != nil {
			o.t.Fatalf("after %d versions, from version %d: %v", len(o.versions), k, err)
		}
		if bytes.HasPrefix(got, snapshotPrefix) {
			o.snaps++
		} else {
			o.merges++
		}
	}
}

// catchUp returns the frame the topic brings a merge_patch client holding id with.
func (o *catchUpOracle) catchUp(id string) []byte {
	o.tp.mu.RLock()
	fr, c := o.tp.plan(id, MergePatch)
	o.tp.mu.RUnlock()
	if c == nil {
		return fr
	}
	fr, err := o.tp.frameOf(context.Background(), c)
	if err != nil {
		o.t.Fatal(err)
	}
	return fr
}

// fromScratch returns the catch-up frame for a merge_patch client holding id, by the
// history's rules, over the changes since the last time id was published.
func (o *catchUpOracle) fromScratch(id string) []byte {
	n := len(o.versions) - 1
	cur := o.versions[n]
	from := -1
	for k := n - 1; k >= max(0, n-o.history+1); k-- {
		if o.versions[k].ID == id {
			from = k
			break
		}
	}
	if from < 0 {
		return snapshotFrame(cur) // dropped from the history
	}
	size := 0
	for k := from + 1; k <= n; k++ {
		size += len(o.patches[k])
		if o.noMerge[k] || size > len(cur.JSON) {
			return snapshotFrame(cur)
		}
	}
	merge, ok := diff.MergeFromTouches(o.touches[from+1:], cur)
	if !ok || len(merge) >= len(cur.JSON) {
		return snapshotFrame(cur)
	}
	return patchFrame(cur.ID, merge)
}

// applies checks that frame fr, applied to v's document by evanphx/json-patch and by
// difftest's applier, gives the current document.
func (o *catchUpOracle) applies(v *diff.Version, fr []byte) error {
	cur := o.versions[len(o.versions)-1]
	m, err := sse.NewDecoder(bytes.NewReader(fr)).Next()
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	if m.LastEventID != cur.ID {
		return fmt.Errorf("the frame %.200q brings the client to %q, not %q", fr, m.LastEventID, cur.ID)
	}
	if m.Type == "snapshot" {
		if m.Data != string(cur.JSON) {
			return fmt.Errorf("the snapshot is %.200s, not the current document", m.Data)
		}
		return nil
	}
	evanphx, err := jsonpatch.MergePatch(v.JSON, []byte(m.Data))
	if err != nil {
		return fmt.Errorf("evanphx/json-patch on %s: %w", m.Data, err)
	}
	ref, err := difftest.ApplyMergePatch(v.JSON, []byte(m.Data))
	if err != nil {
		return fmt.Errorf("difftest on %s: %w", m.Data, err)
	}
	results := map[string][]byte{"evanphx/json-patch": evanphx, "difftest": ref}
	for name, doc := range results {
		got, err := diff.Parse(doc)
		if err != nil {
			return fmt.Errorf("%s gives %.200s: %w", name, doc, err)
		}
		if !bytes.Equal(got.JSON, cur.JSON) {
			return fmt.Errorf("%s: %s on %s gives\n%s, want\n%s", name, m.Data, v.JSON, got.JSON, cur.JSON)
		}
	}
	return nil
}

// report fails a run that checked too few merge patches or snapshots to mean anything.
func (o *catchUpOracle) report(name string) {
	o.t.Logf("%s: %d versions, %d merge patches and %d snapshots checked", name, len(o.versions), o.merges, o.snaps)
	if o.merges < 100 || o.snaps < 100 {
		o.t.Errorf("%s: %d merge patches and %d snapshots checked; want 100 of each at least", name, o.merges, o.snaps)
	}
}

// TestTouchRunsBounded: the runs a topic keeps are bounded in count and bytes, and those
// from versions the history dropped go at the next version.
func TestTouchRunsBounded(t *testing.T) {
	t.Parallel()
	o := newCatchUpOracle(t, 200)
	g := newDocWalk(5)
	o.publishUntil(g, 150)
	for _, v := range o.versions[:len(o.versions)-1] {
		o.catchUp(v.ID)
	}
	runs, bytes := o.runs()
	if runs == 0 || runs > touchRunsMax {
		t.Errorf("%d runs kept after catch-ups from %d versions; want 1 to %d", runs, len(o.versions)-1, touchRunsMax)
	}
	if bytes <= 0 || bytes > o.tp.runs.budget {
		t.Errorf("the runs weigh %d bytes; want 1 to %d", bytes, o.tp.runs.budget)
	}

	// With a history of 10 versions, the runs from them are gone 10 versions later.
	o = newCatchUpOracle(t, 10)
	o.publishUntil(g, 10)
	for _, v := range o.versions[:len(o.versions)-1] {
		o.catchUp(v.ID)
	}
	if runs, _ := o.runs(); runs == 0 {
		t.Fatal("no run kept")
	}
	o.publishUntil(g, 20)
	if runs, bytes := o.runs(); runs != 0 || bytes != 0 {
		t.Errorf("%d runs of %d bytes kept from versions the history dropped", runs, bytes)
	}
}

// publishUntil publishes the documents of g until n versions are published.
func (o *catchUpOracle) publishUntil(g *docWalk, n int) {
	var tr diff.Tracker
	if len(o.versions) > 0 {
		if _, _, err := tr.Update(o.versions[len(o.versions)-1].JSON); err != nil {
			o.t.Fatal(err)
		}
	}
	for len(o.versions) < n {
		ch, changed, err := tr.Update(g.next())
		if err != nil {
			o.t.Fatal(err)
		}
		if changed {
			o.publish(ch, false)
		}
	}
}

// runs returns how many runs the topic keeps, and their bytes.
func (o *catchUpOracle) runs() (int, int) {
	o.tp.cacheMu.Lock()
	defer o.tp.cacheMu.Unlock()
	return len(o.tp.runs.byID), o.tp.runs.bytes
}
