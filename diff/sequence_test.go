package diff_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"unicode/utf8"

	jsonpatch "github.com/evanphx/json-patch/v5"

	"github.com/pollsse/caddy-poll-sse/diff"
	"github.com/pollsse/caddy-poll-sse/diff/difftest"
)

// The sequence oracle holds a Tracker to one invariant over long runs of bodies: after
// every Update, its current version is the one a new Tracker with the same options makes
// from that body alone (the same JSON, byte for byte, and the same id), and the change's
// JSON Patch and merge patch take the previous version to it under independent appliers.
// Reusing the last parse must never show.

// sequenceOptions are the options sequences run under. They name the members that
// difftest's sequence documents hold: "items" (an array keyed by "id"), "a", "b", "id".
var sequenceOptions = []struct {
	name string
	opts diff.Options
}{
	{"plain", diff.Options{}},
	{"select", diff.Options{Select: "/items"}},
	{"select a member that comes and goes", diff.Options{Select: "/a", Ignore: []string{"/a/id"}}},
	{"ignore with wildcards", diff.Options{Ignore: []string{"/*/id", "/items/*/name", "/b"}}},
	{"ignore by index", diff.Options{Ignore: []string{"/items/0", "/items/2/id", "/a/1", "/0/a"}}},
	{"ignore grandchildren", diff.Options{Ignore: []string{"/*/*/*"}}},
	{"array keys", diff.Options{ArrayKeys: []diff.ArrayKey{{Pointer: "/items", Member: "id"}}}},
	{"array keys at the root and by wildcard", diff.Options{ArrayKeys: []diff.ArrayKey{
		{Pointer: "", Member: "id"}, {Pointer: "/*", Member: "id"}, {Pointer: "/*/*/items", Member: "id"}}}},
	{"select, ignore and keys", diff.Options{Select: "/items", Ignore: []string{"/items/*/a", "/items/1/b"},
		ArrayKeys: []diff.ArrayKey{{Pointer: "/items", Member: "id"}}}},
	{"keys and ignore by index", diff.Options{Ignore: []string{"/*/0/id", "/a/*"},
		ArrayKeys: []diff.ArrayKey{{Pointer: "/*", Member: "id"}}}},
	{"select an element", diff.Options{Select: "/items/1", Ignore: []string{"/items/1/id"},
		ArrayKeys: []diff.ArrayKey{{Pointer: "/items/1/*", Member: "id"}}}},
	{"keys whose member is ignored", diff.Options{Ignore: []string{"/items/*/id"},
		ArrayKeys: []diff.ArrayKey{{Pointer: "/items", Member: "id"}}}},
}

// stream is a Tracker under test and the options it was made with.
type stream struct {
	opts  diff.Options
	tr    *diff.Tracker
	plain bool // the streamed document is the body itself: no select, no ignore
	// thorough checks each patch with both appliers and compares documents by value
	// too; otherwise each patch goes through one applier, evanphx/json-patch wherever
	// it can, which keeps long runs cheap.
	thorough bool
}

func newStream(opts diff.Options) (*stream, error) {
	tr, err := diff.NewTracker(opts)
	if err != nil {
		return nil, err
	}
	return &stream{opts: opts, tr: tr, plain: opts.Select == "" && len(opts.Ignore) == 0}, nil
}

// outcome is what one step did, for the statistics of a run.
type outcome int

const (
	outChanged outcome = iota
	outUnchanged
	outRefused
)

// step feeds body to the Tracker and checks the step against a new Tracker fed only
// body, and the change against the appliers.
func (s *stream) step(body []byte) (outcome, error) {
	prev := s.tr.Current()
	ch, changed, err := s.tr.Update(body)
	want, werr := fromScratch(s.opts, body)
	if err != nil || werr != nil {
		return outRefused, s.checkRefused(body, prev, ch, changed, err, werr)
	}
	cur := s.tr.Current()
	if cur.ID != want.ID || !bytes.Equal(cur.JSON, want.JSON) {
		return 0, fmt.Errorf("after %.300q the version is\n%.500s (%s)\nbut from scratch it is\n%.500s (%s)", body, cur.JSON, cur.ID, want.JSON, want.ID)
	}
	o := outChanged
	if !changed {
		o = outUnchanged
	}
	var b []byte
	if s.plain && s.thorough {
		b = body
	}
	switch {
	case prev == nil && b != nil:
		if err := sameDocument(cur.JSON, b); err != nil {
			return 0, err
		}
		return o, checkFirst(ch, changed)
	case prev == nil:
		return o, checkFirst(ch, changed)
	case s.thorough:
		return o, checkStep(prev, cur, b, ch, changed)
	}
	return o, checkChange(prev, cur, ch, changed)
}

// checkChange checks the change ch from the version prev to cur, the current one: each
// of its patches, put through one applier, gives cur's JSON byte for byte once made
// canonical.
func checkChange(prev, cur *diff.Version, ch diff.Change, changed bool) error {
	if !changed {
		return checkUnchanged(prev, cur, nil, ch)
	}
	switch {
	case ch.Version != cur:
		return errors.New("a change without its version as the current one")
	case cur.ID == prev.ID:
		return fmt.Errorf("a change keeps the version id %s", cur.ID)
	}
	got, err := applyPatch(prev.JSON, ch.Patch)
	if err != nil {
		return fmt.Errorf("patch %s does not apply to %s: %v", ch.Patch, prev.JSON, err)
	}
	if err := sameCanonical(got, cur.JSON); err != nil {
		return fmt.Errorf("patch %s from %s: %v", ch.Patch, prev.JSON, err)
	}
	merge := ch.MergePatch()
	if merge == nil {
		return checkMerge(prev.JSON, nil, cur.JSON)
	}
	if got, err = applyMerge(prev.JSON, merge); err != nil {
		return fmt.Errorf("merge patch %s does not apply to %s: %v", merge, prev.JSON, err)
	}
	if err := sameCanonical(got, cur.JSON); err != nil {
		return fmt.Errorf("merge patch %s from %s: %v", merge, prev.JSON, err)
	}
	return nil
}

// applyPatch applies an RFC 6902 patch with evanphx/json-patch, or with difftest's
// reference applier where evanphx/json-patch cannot.
func applyPatch(doc, patch []byte) ([]byte, error) {
	if evanphxCanApply(doc, patch) {
		return evanphxApply(doc, patch)
	}
	return difftest.ApplyPatch(doc, patch)
}

// applyMerge applies an RFC 7386 merge patch with evanphx/json-patch, or with
// difftest's reference applier where evanphx/json-patch departs from the RFC.
func applyMerge(doc, merge []byte) ([]byte, error) {
	if evanphxCanMerge(doc, merge) {
		return jsonpatch.MergePatch(doc, merge)
	}
	return difftest.ApplyMergePatch(doc, merge)
}

// sameCanonical checks that got, the output of an applier, is the document want, a
// version's JSON, byte for byte once parsed from scratch into canonical form.
func sameCanonical(got, want []byte) error {
	if bytes.Equal(got, want) {
		return nil // canonical already
	}
	v, err := diff.Parse(got)
	if err != nil {
		return fmt.Errorf("the applier's output %.300q: %v", got, err)
	}
	if !bytes.Equal(v.JSON, want) {
		return fmt.Errorf("gives %.500s, want %.500s", v.JSON, want)
	}
	return nil
}

// fromScratch returns the version a new Tracker with opts makes of body.
func fromScratch(opts diff.Options, body []byte) (*diff.Version, error) {
	tr, err := diff.NewTracker(opts)
	if err != nil {
		return nil, err
	}
	ch, _, err := tr.Update(body)
	return ch.Version, err
}

// checkRefused checks a step in which the Tracker or the new one refused the body: both
// must, for the same reason, and the Tracker must keep its version.
func (s *stream) checkRefused(body []byte, prev *diff.Version, ch diff.Change, changed bool, err, werr error) error {
	switch {
	case err == nil || werr == nil:
		return fmt.Errorf("%.300q: the Tracker says %v, a new one says %v", body, err, werr)
	case errors.Is(err, diff.ErrNotJSON) != errors.Is(werr, diff.ErrNotJSON),
		errors.Is(err, diff.ErrSelect) != errors.Is(werr, diff.ErrSelect):
		return fmt.Errorf("%.300q: the Tracker says %v, a new one says %v", body, err, werr)
	case !errors.Is(err, diff.ErrNotJSON) && !errors.Is(err, diff.ErrSelect):
		return fmt.Errorf("%.300q: %v wraps neither ErrNotJSON nor ErrSelect", body, err)
	case !json.Valid(body) && !errors.Is(err, diff.ErrNotJSON):
		return fmt.Errorf("%.300q is not JSON, but the error %v does not wrap ErrNotJSON", body, err)
	case errors.Is(err, diff.ErrNotJSON) && json.Valid(body) && utf8.Valid(body) && nesting(body) < 1000:
		return fmt.Errorf("%.300q is JSON, but the Tracker says %v", body, err)
	case changed || ch.Version != nil || ch.Patch != nil:
		return fmt.Errorf("%.300q: a refused body made a change", body)
	case s.tr.Current() != prev:
		return fmt.Errorf("%.300q: a refused body moved the current version", body)
	}
	return nil
}

// nesting returns how deeply the JSON text body nests arrays and objects.
func nesting(body []byte) int {
	depth, deepest, inString := 0, 0, false
	for i := 0; i < len(body); i++ {
		switch c := body[i]; {
		case inString && c == '\\':
			i++
		case c == '"':
			inString = !inString
		case inString:
		case c == '[' || c == '{':
			depth++
			deepest = max(deepest, depth)
		case c == ']' || c == '}':
			depth--
		}
	}
	return deepest
}

// sequenceStats counts what a run of sequences exercised, so that a generator that
// stopped making some case shows.
type sequenceStats struct {
	steps, changed, unchanged, refused atomic.Int64
}

func (st *sequenceStats) add(o outcome) {
	st.steps.Add(1)
	switch o {
	case outChanged:
		st.changed.Add(1)
	case outUnchanged:
		st.unchanged.Add(1)
	default:
		st.refused.Add(1)
	}
}

func (st *sequenceStats) String() string {
	return fmt.Sprintf("%d steps: %d changed, %d unchanged, %d refused",
		st.steps.Load(), st.changed.Load(), st.unchanged.Load(), st.refused.Load())
}

// runSequence streams the bodies of sq under opts and checks every step. It stops at
// the first failure, which it returns with the steps that led to it.
func runSequence(sq difftest.Sequence, opts diff.Options, st *sequenceStats) error {
	s, err := newStream(opts)
	if err != nil {
		return err
	}
	for i, body := range sq.Bodies {
		o, err := s.step(body)
		if err != nil {
			return fmt.Errorf("%s, step %d (%s):\n%w\nbodies so far:\n%s", sq.Name, i, sq.Steps[i], err, listBodies(sq.Bodies[:i+1]))
		}
		st.add(o)
	}
	return nil
}

func listBodies(bodies [][]byte) string {
	var b bytes.Buffer
	for i, body := range bodies[max(0, len(bodies)-4):] {
		fmt.Fprintf(&b, "  %d: %.400q\n", len(bodies)-min(len(bodies), 4)+i, body)
	}
	return b.String()
}

// sequenceRun is how many sequences of how many bodies each option set runs: in all,
// over 200,000 steps.
func sequenceRun() (count, length int) {
	if testing.Short() {
		return 40, 50
	}
	return 340, 50
}

// TestOracleSequences runs seeded random sequences under every option set and checks
// every step against a Tracker that starts from scratch and against the appliers.
func TestOracleSequences(t *testing.T) {
	t.Parallel()
	count, length := sequenceRun()
	var total sequenceStats
	t.Cleanup(func() {
		t.Logf("all option sets: %d steps", total.steps.Load())
		if !testing.Short() && total.steps.Load() < 200_000 {
			t.Errorf("%d steps, want at least 200,000", total.steps.Load())
		}
	})
	for i, o := range sequenceOptions {
		t.Run(o.name, func(t *testing.T) {
			t.Parallel()
			var st sequenceStats
			f := failures{t: t}
			for j := range count {
				f.check("", runSequence(difftest.RandomSequence(int64(i+1), j, length), o.opts, &st))
			}
			f.report(count)
			t.Logf("%s: %v", o.name, &st)
			if st.changed.Load() == 0 || st.unchanged.Load() == 0 || st.refused.Load() == 0 {
				t.Errorf("the sequences lack changed, unchanged or refused bodies: %v", &st)
			}
			total.steps.Add(st.steps.Load())
		})
	}
}
