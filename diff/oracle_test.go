package diff_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"

	"github.com/pollsse/caddy-poll-sse/diff"
	"github.com/pollsse/caddy-poll-sse/diff/difftest"
)

// The oracle tests check every change the diff package makes against appliers written
// apart from it: difftest's reference appliers, which follow RFC 6902 and RFC 7386 to
// the letter, and evanphx/json-patch wherever its known deviations cannot show. A patch
// applies to the document as streamed (Version.JSON of the previous version) and must
// give exactly the new streamed document.

// mergeOf returns the RFC 7386 merge patch of a change, or nil when there is none.
func mergeOf(c diff.Change) []byte { return c.MergePatch() }

// validID is the form of a version id: short and safe in a Last-Event-ID header.
var validID = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// randomPairs is how many random pairs an oracle test runs.
func randomPairs() int {
	if testing.Short() {
		return 1000
	}
	return 10000
}

// failures collects the failures of a bulk test and reports the first few in full.
type failures struct {
	t     *testing.T
	count int
}

const failuresShown = 20

func (f *failures) check(name string, err error) {
	f.t.Helper()
	if err == nil {
		return
	}
	f.count++
	if f.count <= failuresShown {
		f.t.Errorf("%s: %v", name, err)
	}
}

func (f *failures) report(total int) {
	if f.count > failuresShown {
		f.t.Errorf("%d of %d cases failed; the first %d are shown", f.count, total, failuresShown)
	}
}

func newTracker(opts *diff.Options) (*diff.Tracker, error) {
	if opts == nil {
		return new(diff.Tracker), nil
	}
	return diff.NewTracker(*opts)
}

// checkPair runs a pair through a Tracker made with opts (the zero Tracker for nil) and
// checks the change. Without select and ignore the streamed documents must be A and B.
func checkPair(p difftest.Pair, opts *diff.Options) error {
	tr, err := newTracker(opts)
	if err != nil {
		return err
	}
	first, changed, err := tr.Update(p.A)
	if err != nil {
		return fmt.Errorf("first update: %w", err)
	}
	if err := checkFirst(first, changed); err != nil {
		return err
	}
	var b []byte
	if opts == nil || opts.Select == "" && len(opts.Ignore) == 0 {
		b = p.B
		if err := sameDocument(first.Version.JSON, p.A); err != nil {
			return fmt.Errorf("first version: %w", err)
		}
	}
	ch, changed, err := tr.Update(p.B)
	if err != nil {
		return fmt.Errorf("second update: %w", err)
	}
	return checkStep(first.Version, tr.Current(), b, ch, changed)
}

// checkFirst checks the change of a Tracker's first document.
func checkFirst(first diff.Change, changed bool) error {
	switch {
	case !changed || first.Version == nil:
		return errors.New("the first document is not reported as a change")
	case first.Patch != nil || mergeOf(first) != nil:
		return fmt.Errorf("the first version has a patch %s or merge patch %s", first.Patch, mergeOf(first))
	}
	return checkVersion(first.Version)
}

func checkVersion(v *diff.Version) error {
	if !validID.MatchString(v.ID) {
		return fmt.Errorf("version id %q is not 1 to 64 of [A-Za-z0-9_.-]", v.ID)
	}
	if !json.Valid(v.JSON) {
		return fmt.Errorf("version JSON %.200q is not JSON", v.JSON)
	}
	return nil
}

// sameDocument checks that a version's JSON holds the document body.
func sameDocument(version, body []byte) error {
	if eq, err := difftest.Equal(version, body); err != nil || !eq {
		return fmt.Errorf("the streamed document %s is not the body %s (%v)", version, body, err)
	}
	return nil
}

// checkStep checks the change ch made by the update from the version prev to a new
// body b (nil when the streamed document is not b itself, as with select or ignore);
// cur is the Tracker's current version after it.
func checkStep(prev, cur *diff.Version, b []byte, ch diff.Change, changed bool) error {
	if !changed {
		return checkUnchanged(prev, cur, b, ch)
	}
	next := ch.Version
	if next == nil || cur != next {
		return errors.New("a change without its version as the current one")
	}
	if err := checkVersion(next); err != nil {
		return err
	}
	if next.ID == prev.ID {
		return fmt.Errorf("a change keeps the version id %s", next.ID)
	}
	if b != nil {
		if err := sameDocument(next.JSON, b); err != nil {
			return err
		}
		if same, _ := difftest.Identical(prev.JSON, b); same {
			return fmt.Errorf("a change reported between identical documents %s and %s", prev.JSON, b)
		}
	}
	if ch.Patch == nil {
		return errors.New("a change without a patch")
	}
	if err := checkPatch(prev.JSON, ch.Patch, next.JSON); err != nil {
		return err
	}
	return checkMerge(prev.JSON, mergeOf(ch), next.JSON)
}

func checkUnchanged(prev, cur *diff.Version, b []byte, ch diff.Change) error {
	if ch.Version != nil || ch.Patch != nil || mergeOf(ch) != nil {
		return errors.New("no change reported, but the change is not empty")
	}
	if cur == nil || cur.ID != prev.ID {
		return errors.New("no change reported, but the current version moved")
	}
	if b != nil {
		if eq, _ := difftest.Equal(prev.JSON, b); !eq {
			return fmt.Errorf("no change reported from %s to the different document %s", prev.JSON, b)
		}
	}
	return nil
}

// checkPatch checks that patch takes the document from to the document to, with the
// reference applier and, where it can, with evanphx/json-patch.
func checkPatch(from, patch, to []byte) error {
	got, err := difftest.ApplyPatch(from, patch)
	if err != nil {
		return fmt.Errorf("patch %s does not apply to %s: %v", patch, from, err)
	}
	if same, _ := difftest.Identical(got, to); !same {
		return fmt.Errorf("patch %s takes %s to %s, want %s", patch, from, got, to)
	}
	if !evanphxCanApply(from, patch) {
		return nil
	}
	if got, err = evanphxApply(from, patch); err != nil {
		return fmt.Errorf("evanphx/json-patch cannot apply %s to %s: %v", patch, from, err)
	}
	if same, _ := difftest.Identical(got, to); !same {
		return fmt.Errorf("evanphx/json-patch: patch %s takes %s to %s, want %s", patch, from, got, to)
	}
	return nil
}

// evanphxApply applies an RFC 6902 patch with evanphx/json-patch, without its
// negative-index extension.
func evanphxApply(doc, patch []byte) ([]byte, error) {
	p, err := jsonpatch.DecodePatch(patch)
	if err != nil {
		return nil, err
	}
	opts := jsonpatch.NewApplyOptions()
	opts.SupportNegativeIndices = false
	return p.ApplyWithOptions(doc, opts)
}

// evanphxCanApply reports whether evanphx/json-patch can apply patch to doc: it patches
// only object and array documents, cannot set the root to a scalar, and silently skips
// a pointer with an empty token before another token, such as "//" (a member named ""
// of a member named "").
func evanphxCanApply(doc, patch []byte) bool {
	if len(doc) == 0 || doc[0] != '{' && doc[0] != '[' {
		return false
	}
	var ops []struct {
		Path string  `json:"path"`
		From *string `json:"from"`
	}
	if json.Unmarshal(patch, &ops) != nil {
		return false
	}
	for _, op := range ops {
		if op.Path == "" || strings.Contains(op.Path, "//") || op.From != nil && strings.Contains(*op.From, "//") {
			return false
		}
	}
	return true
}

// checkMerge checks a change's merge patch: nil exactly when the root of from or to is
// not an object (a merge patch is an object merged into an object), or when the new
// document has a null member in some object (a merge patch would delete it, or appliers
// would disagree); otherwise an object taking the document from to the document to.
func checkMerge(from, merge, to []byte) error {
	_, hasNull, err := difftest.NullMember(to)
	if err != nil {
		return err
	}
	objects := isObject(from) && isObject(to)
	switch {
	case merge == nil && objects && !hasNull:
		return fmt.Errorf("no merge patch from %s to %s, though both are objects and %[2]s has no null member in any object", from, to)
	case merge == nil:
		return nil // right: no merge patch expresses this change
	case !objects:
		return fmt.Errorf("merge patch %s from %s to %s: a root that is or becomes no object needs a snapshot", merge, from, to)
	case !isObject(merge):
		return fmt.Errorf("merge patch %s is not an object", merge)
	}
	got, err := difftest.ApplyMergePatch(from, merge)
	if err != nil {
		return fmt.Errorf("merge patch %s does not apply to %s: %v", merge, from, err)
	}
	if same, _ := difftest.Identical(got, to); !same {
		return fmt.Errorf("merge patch %s takes %s to %s, want %s", merge, from, got, to)
	}
	if !evanphxCanMerge(from, merge) {
		return nil
	}
	if got, err = jsonpatch.MergePatch(from, merge); err != nil {
		return fmt.Errorf("evanphx/json-patch cannot merge %s into %s: %v", merge, from, err)
	}
	if same, _ := difftest.Identical(got, to); !same {
		return fmt.Errorf("evanphx/json-patch: merge patch %s takes %s to %s, want %s", merge, from, got, to)
	}
	return nil
}

// evanphxCanMerge reports whether evanphx/json-patch's MergePatch follows RFC 7386 for
// these inputs: it rejects a null document, and deletes null members of objects inside
// arrays, which the RFC sets whole.
func evanphxCanMerge(doc, merge []byte) bool {
	if string(doc) == "null" {
		return false
	}
	v, err := difftest.Decode(merge)
	return err == nil && !nullInArray(v, false)
}

func nullInArray(v any, inArray bool) bool {
	switch v := v.(type) {
	case nil:
		return inArray
	case []any:
		for _, e := range v {
			if nullInArray(e, true) {
				return true
			}
		}
	case map[string]any:
		for _, e := range v {
			if nullInArray(e, inArray) {
				return true
			}
		}
	}
	return false
}

func TestOracleSuitePairs(t *testing.T) {
	t.Parallel()
	for _, p := range difftest.SuitePairs() {
		t.Run(p.Name, func(t *testing.T) {
			t.Parallel()
			if err := checkPair(p, nil); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// pairStats counts what a run of pairs exercised, so that a generator that stopped
// producing some case shows.
type pairStats struct{ changed, unchanged, noMerge int }

func (s *pairStats) add(p difftest.Pair) {
	eq, _ := difftest.Equal(p.A, p.B)
	_, null, _ := difftest.NullMember(p.B)
	switch {
	case eq:
		s.unchanged++
	case null:
		s.noMerge++
		s.changed++
	default:
		s.changed++
	}
}

func TestOracleRandomPairs(t *testing.T) {
	t.Parallel()
	pairs := difftest.RandomPairs(1, randomPairs())
	f := failures{t: t}
	var stats pairStats
	for _, p := range pairs {
		f.check(p.Name, checkPair(p, nil))
		stats.add(p)
	}
	f.report(len(pairs))
	t.Logf("%d random pairs: %+v", len(pairs), stats)
	if stats.unchanged == 0 || stats.noMerge == 0 {
		t.Errorf("the random pairs lack unchanged documents or null members: %+v", stats)
	}
}

// TestOracleCatchUp joins the patches of 20 successive versions from every starting
// version on, as a subscriber that fell behind is caught up, and checks the joined
// patch and its merge patch.
func TestOracleCatchUp(t *testing.T) {
	t.Parallel()
	seeds := 100
	if testing.Short() {
		seeds = 20
	}
	f := failures{t: t}
	cases := 0
	for seed := range int64(seeds) {
		name := fmt.Sprintf("versions/%d", seed)
		states, changes, err := streamVersions(difftest.RandomVersions(seed, 20))
		if err != nil {
			f.check(name, err)
			continue
		}
		for i := range len(changes) {
			f.check(fmt.Sprintf("%s from %d", name, i), checkCatchUp(states[i], states[len(states)-1], changes[i:]))
			cases++
		}
	}
	f.report(cases)
	t.Logf("%d catch-up patches from %d sequences of 20 versions", cases, seeds)
}

// streamVersions runs bodies through a Tracker and returns the versions it streamed and
// the change between each two.
func streamVersions(bodies [][]byte) ([]*diff.Version, []diff.Change, error) {
	var tr diff.Tracker
	var states []*diff.Version
	var changes []diff.Change
	for i, body := range bodies {
		ch, changed, err := tr.Update(body)
		if err != nil {
			return nil, nil, fmt.Errorf("version %d: %w", i, err)
		}
		if !changed {
			continue
		}
		states = append(states, ch.Version)
		if i > 0 {
			changes = append(changes, ch)
		}
	}
	return states, changes, nil
}

// checkCatchUp checks the catch-up from version from to version to over changes: the
// joined patch, and its merge patch, which the changes' Touches must give alike.
func checkCatchUp(from, to *diff.Version, changes []diff.Change) error {
	joined := diff.JoinPatches(patchesOf(changes))
	if err := checkPatch(from.JSON, joined, to.JSON); err != nil {
		return fmt.Errorf("joined patch: %w", err)
	}
	merge, ok, err := diff.MergeFromPatch(joined, to)
	if err != nil {
		return fmt.Errorf("MergeFromPatch(%s): %w", joined, err)
	}
	if err := sameMergeFromTouches(changes, to, merge, ok); err != nil {
		return err
	}
	if ok {
		return checkMerge(from.JSON, merge, to.JSON)
	}
	if _, null, _ := difftest.NullMember(to.JSON); null || writesObject(joined) || !isObject(from.JSON) || !isObject(to.JSON) {
		return nil // rightly refused
	}
	return fmt.Errorf("MergeFromPatch refused %s, though %s has no null member in any object and the patch writes no object whole", joined, to.JSON)
}

// isObject reports whether the JSON text doc is an object.
func isObject(doc []byte) bool {
	v, err := difftest.Decode(doc)
	_, ok := v.(map[string]any)
	return err == nil && ok
}

// writesObject reports whether an RFC 6902 patch may set an object whole: an add or
// replace of an object value, or a move or copy. A merge patch that does not know the
// document the patch applies to cannot express that: it cannot delete the members it
// does not know of.
func writesObject(patch []byte) bool {
	var ops []struct {
		Op    string          `json:"op"`
		Value json.RawMessage `json:"value"`
	}
	if json.Unmarshal(patch, &ops) != nil {
		return false
	}
	for _, op := range ops {
		switch op.Op {
		case "move", "copy":
			return true
		case "add", "replace":
			if len(op.Value) > 0 && op.Value[0] == '{' {
				return true
			}
		}
	}
	return false
}

// keyOpts match the elements of /items by their id.
var keyOpts = diff.Options{ArrayKeys: []diff.ArrayKey{{Pointer: "/items", Member: "id"}}}

// TestArrayKeyOneOperation checks that with array_key a single keyed edit of a
// 1,000-element array makes a patch of one operation.
func TestArrayKeyOneOperation(t *testing.T) {
	t.Parallel()
	items := difftest.Items(1000)
	changed := slices.Clone(items)
	changed[500].Price++
	tests := []struct {
		name string
		b    []difftest.Item
		op   string
	}{
		{"insert front", difftest.Insert(items, 0, difftest.NewItem(5000)), "add"},
		{"insert middle", difftest.Insert(items, 500, difftest.NewItem(5000)), "add"},
		{"insert end", difftest.Insert(items, 1000, difftest.NewItem(5000)), "add"},
		{"remove front", difftest.Remove(items, 0), "remove"},
		{"remove middle", difftest.Remove(items, 500), "remove"},
		{"remove end", difftest.Remove(items, 999), "remove"},
		{"move front to end", difftest.Move(items, 0, 999), "move"},
		{"move end to front", difftest.Move(items, 999, 0), "move"},
		{"move middle", difftest.Move(items, 300, 700), "move"},
		{"change a member", changed, "replace"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ch := keyedChange(t, difftest.KeyedDoc(items), difftest.KeyedDoc(tc.b))
			ops := decodeOps(t, ch.Patch)
			if len(ops) != 1 || ops[0]["op"] != tc.op {
				t.Fatalf("patch of %d operations, want one %s: %.300s", len(ops), tc.op, ch.Patch)
			}
		})
	}
}

// keyedChange streams a then b with keyOpts, checks the change, and returns it.
func keyedChange(t *testing.T, a, b []byte) diff.Change {
	t.Helper()
	tr, err := diff.NewTracker(keyOpts)
	if err != nil {
		t.Fatal(err)
	}
	first, _, err := tr.Update(a)
	if err != nil {
		t.Fatal(err)
	}
	ch, changed, err := tr.Update(b)
	if err != nil || !changed {
		t.Fatalf("second update: changed %v, %v", changed, err)
	}
	if err := checkStep(first.Version, tr.Current(), b, ch, changed); err != nil {
		t.Fatal(err)
	}
	return ch
}

func decodeOps(t *testing.T, patch []byte) []map[string]any {
	t.Helper()
	var ops []map[string]any
	if err := json.Unmarshal(patch, &ops); err != nil {
		t.Fatalf("patch %.300s: %v", patch, err)
	}
	return ops
}

// TestArrayKeyRandomPairs runs keyed pairs with array_key, and a quarter of them without
// (the documents are large enough to make more a slow test under -race).
func TestArrayKeyRandomPairs(t *testing.T) {
	t.Parallel()
	pairs := difftest.KeyedPairs(1, randomPairs()/10)
	for _, tc := range []struct {
		name  string
		opts  *diff.Options
		pairs []difftest.Pair
	}{{"array_key", &keyOpts, pairs}, {"positional", nil, pairs[:len(pairs)/4]}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := failures{t: t}
			for _, p := range tc.pairs {
				f.check(p.Name, checkPair(p, tc.opts))
			}
			f.report(len(tc.pairs))
		})
	}
}

// ignoreOpts leave out the updated_at member of every element of /items.
var ignoreOpts = diff.Options{Ignore: []string{"/items/*/updated_at"}}

// withoutUpdatedAt returns the keyed document of items as streamed with ignoreOpts.
func withoutUpdatedAt(t *testing.T, items []difftest.Item) []byte {
	t.Helper()
	var doc struct{ Items []map[string]any }
	if err := json.Unmarshal(difftest.KeyedDoc(items), &doc); err != nil {
		t.Fatal(err)
	}
	for _, it := range doc.Items {
		delete(it, "updated_at")
	}
	b, err := json.Marshal(map[string]any{"items": doc.Items})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// touch returns a copy of items whose updated_at members all changed.
func touch(items []difftest.Item) []difftest.Item {
	out := slices.Clone(items)
	for i := range out {
		out[i].UpdatedAt = "2030-01-01T00:00:00Z"
	}
	return out
}

func mustTracker(t *testing.T, opts diff.Options) *diff.Tracker {
	t.Helper()
	tr, err := diff.NewTracker(opts)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func mustUpdate(t *testing.T, tr *diff.Tracker, body []byte) (diff.Change, bool) {
	t.Helper()
	ch, changed, err := tr.Update(body)
	if err != nil {
		t.Fatalf("Update(%.200s): %v", body, err)
	}
	return ch, changed
}

func TestIgnoreLeavesMembersOut(t *testing.T) {
	t.Parallel()
	items := difftest.Items(50)
	tr := mustTracker(t, ignoreOpts)
	first, _ := mustUpdate(t, tr, difftest.KeyedDoc(items))
	if err := sameDocument(first.Version.JSON, withoutUpdatedAt(t, items)); err != nil {
		t.Fatal(err)
	}
	if ch, changed := mustUpdate(t, tr, difftest.KeyedDoc(touch(items))); changed || tr.Current().ID != first.Version.ID {
		t.Fatalf("a change only in ignored members: changed %v, patch %s", changed, ch.Patch)
	}
	other, _ := mustUpdate(t, mustTracker(t, ignoreOpts), difftest.KeyedDoc(touch(items)))
	if other.Version.ID != first.Version.ID {
		t.Fatalf("documents equal once filtered have ids %s and %s", first.Version.ID, other.Version.ID)
	}
	renamed := touch(items)
	renamed[7].Name = "renamed"
	ch, changed := mustUpdate(t, tr, difftest.KeyedDoc(renamed))
	if err := checkStep(first.Version, tr.Current(), nil, ch, changed); err != nil {
		t.Fatal(err)
	}
	if err := sameDocument(ch.Version.JSON, withoutUpdatedAt(t, renamed)); err != nil {
		t.Fatal(err)
	}
	if ops := decodeOps(t, ch.Patch); len(ops) != 1 || strings.Contains(string(ch.Patch), "updated_at") {
		t.Fatalf("patch %s: want one operation and no ignored member", ch.Patch)
	}
}

// TestIgnoreWithArrayKey checks the legacy list endpoint that stamps every element on
// each poll: an insert at the front is still one operation.
func TestIgnoreWithArrayKey(t *testing.T) {
	t.Parallel()
	opts := diff.Options{Ignore: ignoreOpts.Ignore, ArrayKeys: keyOpts.ArrayKeys}
	items := difftest.Items(1000)
	tr := mustTracker(t, opts)
	first, _ := mustUpdate(t, tr, difftest.KeyedDoc(items))
	b := touch(difftest.Insert(items, 0, difftest.NewItem(5000)))
	ch, changed := mustUpdate(t, tr, difftest.KeyedDoc(b))
	if err := checkStep(first.Version, tr.Current(), nil, ch, changed); err != nil {
		t.Fatal(err)
	}
	if ops := decodeOps(t, ch.Patch); len(ops) != 1 || ops[0]["op"] != "add" {
		t.Fatalf("patch %.300s: want one add", ch.Patch)
	}
}

func TestSelectStreamsThePart(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, sel, body, want string }{
		{"member", "/data", `{"data":{"a":1},"meta":2}`, `{"a":1}`},
		{"array element", "/list/1", `{"list":[0,{"b":2}]}`, `{"b":2}`},
		{"escaped tokens", "/a~1b/~0c", `{"a/b":{"~c":[1]}}`, `[1]`},
		{"empty key", "/", `{"":{"x":1},"y":2}`, `{"x":1}`},
		{"null", "/x", `{"x":null}`, `null`},
		{"big number", "/n", `{"n":18446744073709551617}`, `18446744073709551617`},
		{"whole document", "", `[1]`, `[1]`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ch, _ := mustUpdate(t, mustTracker(t, diff.Options{Select: tc.sel}), []byte(tc.body))
			if same, _ := difftest.Identical(ch.Version.JSON, []byte(tc.want)); !same {
				t.Fatalf("streamed %s, want %s", ch.Version.JSON, tc.want)
			}
		})
	}
}

func TestSelectThatDoesNotResolve(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, sel, bad, good string }{
		{"missing member", "/data", `{"other":1}`, `{"data":1}`},
		{"under a scalar", "/data/x", `{"data":1}`, `{"data":{"x":1}}`},
		{"member of an array", "/data", `[1,2]`, `{"data":[1,2]}`},
		{"index out of range", "/list/5", `{"list":[1]}`, `{"list":[0,1,2,3,4,5]}`},
		{"end of array", "/list/-", `{"list":[1]}`, ""},
		{"leading zero", "/list/01", `{"list":[1,2]}`, ""},
		{"scalar document", "/a", `"a"`, `{"a":"a"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tr := mustTracker(t, diff.Options{Select: tc.sel})
			var good *diff.Version
			if tc.good != "" {
				ch, _ := mustUpdate(t, tr, []byte(tc.good))
				good = ch.Version
			}
			if _, changed, err := tr.Update([]byte(tc.bad)); !errors.Is(err, diff.ErrSelect) || changed {
				t.Fatalf("Update(%s): changed %v, err %v; want ErrSelect", tc.bad, changed, err)
			}
			if tr.Current() != good {
				t.Fatal("a document where select does not resolve moved the current version")
			}
			if good == nil {
				return
			}
			if _, changed := mustUpdate(t, tr, []byte(tc.good+" ")); changed {
				t.Fatal("the good document after a bad one counted as a change")
			}
		})
	}
}

// TestSelectKeepsOutTheRest checks that a change outside the selected part is no change
// and that the patches address the selected part.
func TestSelectKeepsOutTheRest(t *testing.T) {
	t.Parallel()
	opts := diff.Options{Select: "/data", Ignore: []string{"/data/items/*/updated_at"}}
	doc := func(items []difftest.Item, meta string) []byte {
		return []byte(fmt.Sprintf(`{"meta":{"generated_at":%q},"data":%s}`, meta, difftest.KeyedDoc(items)))
	}
	items := difftest.Items(20)
	tr := mustTracker(t, opts)
	first, _ := mustUpdate(t, tr, doc(items, "t1"))
	if err := sameDocument(first.Version.JSON, withoutUpdatedAt(t, items)); err != nil {
		t.Fatal(err)
	}
	if _, changed := mustUpdate(t, tr, doc(touch(items), "t2")); changed || tr.Current().ID != first.Version.ID {
		t.Fatal("a change outside the selected part or in an ignored member counted as a change")
	}
	other, _ := mustUpdate(t, mustTracker(t, opts), doc(items, "t3"))
	if other.Version.ID != first.Version.ID {
		t.Fatalf("documents equal once filtered have ids %s and %s", first.Version.ID, other.Version.ID)
	}
	b := difftest.Remove(items, 3)
	ch, changed := mustUpdate(t, tr, doc(b, "t4"))
	if err := checkStep(first.Version, tr.Current(), nil, ch, changed); err != nil {
		t.Fatal(err)
	}
	if err := sameDocument(ch.Version.JSON, withoutUpdatedAt(t, b)); err != nil {
		t.Fatal(err)
	}
}

// TestArrayKeyAddressesTheUpstreamDocument checks that an array_key pointer with an array
// index names the upstream element at that index when ignore leaves out an element
// before it: a move in that array is one move, and the array after it is compared by
// position.
func TestArrayKeyAddressesTheUpstreamDocument(t *testing.T) {
	t.Parallel()
	tr := mustTracker(t, diff.Options{Ignore: []string{"/lists/0"}, ArrayKeys: []diff.ArrayKey{{Pointer: "/lists/1", Member: "id"}}})
	first, _ := mustUpdate(t, tr, []byte(`{"lists":[[0],[{"id":1},{"id":2},{"id":3}],[{"id":5},{"id":6},{"id":7}]]}`))
	moved := []byte(`{"lists":[[0],[{"id":3},{"id":1},{"id":2}],[{"id":5},{"id":6},{"id":7}]]}`)
	ch, changed := mustUpdate(t, tr, moved)
	if err := checkStep(first.Version, tr.Current(), nil, ch, changed); err != nil {
		t.Fatal(err)
	}
	if got := string(ch.Patch); got != `[{"op":"move","path":"/lists/0/0","from":"/lists/0/2"}]` {
		t.Fatalf("a move in the keyed upstream array /lists/1 made %s", got)
	}
	ch, _ = mustUpdate(t, tr, []byte(`{"lists":[[0],[{"id":3},{"id":1},{"id":2}],[{"id":7},{"id":5},{"id":6}]]}`))
	if ops := decodeOps(t, ch.Patch); len(ops) != 3 || ops[0]["op"] != "replace" {
		t.Fatalf("the upstream array /lists/2, not keyed, was matched by key: %s", ch.Patch)
	}
}
