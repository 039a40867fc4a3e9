package diff_test

import (
	"bytes"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/pollsse/caddy-poll-sse/diff"
	"github.com/pollsse/caddy-poll-sse/diff/difftest"
)

// patchesOf returns the JSON Patch of each change.
func patchesOf(changes []diff.Change) [][]byte {
	out := make([][]byte, len(changes))
	for i, ch := range changes {
		out[i] = ch.Patch
	}
	return out
}

// sameMergeFromTouches checks that the merge patch built from the changes' Touches is
// merge, the one MergeFromPatch built from their joined patch, byte for byte, or that
// both refuse (ok false); and so for the Touches of the same changes read back from
// their patches, as a change made elsewhere is.
func sameMergeFromTouches(changes []diff.Change, to *diff.Version, merge []byte, ok bool) error {
	here, elsewhere := make([]diff.Touches, len(changes)), make([]diff.Touches, len(changes))
	for i, ch := range changes {
		var err error
		if here[i], err = ch.Touches(); err != nil {
			return fmt.Errorf("Touches of a change made here: %w", err)
		}
		if elsewhere[i], err = diff.NewChange(ch.Version, ch.Patch, nil).Touches(); err != nil {
			return fmt.Errorf("Touches of %s: %w", ch.Patch, err)
		}
	}
	for name, ts := range map[string][]diff.Touches{"made here": here, "read back": elsewhere} {
		got, gotOK := diff.MergeFromTouches(ts, to)
		if gotOK != ok || !bytes.Equal(got, merge) {
			return fmt.Errorf("MergeFromTouches (%s) = %s, %v; MergeFromPatch = %s, %v", name, got, gotOK, merge, ok)
		}
		if err := sameAppended(ts, to, merge); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

// sameAppended checks that AppendMergeFromTouches, into a reused buffer holding a
// prefix, appends merge after the prefix, or leaves the buffer as it was when the merge
// patch is refused (merge nil).
func sameAppended(ts []diff.Touches, to *diff.Version, merge []byte) error {
	buf := make([]byte, 0, 7)
	buf = append(buf, "prefix:"...)
	got, ok := diff.AppendMergeFromTouches(buf, ts, to)
	want := "prefix:" + string(merge)
	if ok != (merge != nil) || string(got) != want {
		return fmt.Errorf("AppendMergeFromTouches = %q, %v; want %q", got, ok, want)
	}
	return nil
}

// TestMergeFromTouchesMatchesPatch holds the catch-up merge patch built from Touches to
// the one MergeFromPatch builds from the joined patch, over long runs of versions under
// every option set (keyed arrays move elements, ignored members vanish, selected parts
// come and go), from every version of the run to the last.
func TestMergeFromTouchesMatchesPatch(t *testing.T) {
	t.Parallel()
	count, length := 6, 100
	if testing.Short() {
		count = 2
	}
	catchUpRuns(t, count, length, 1, func(f *failures, c *catchUpCount, name string, states []*diff.Version, changes []diff.Change) {
		to := states[len(states)-1]
		for k := range changes {
			merge, ok, err := diff.MergeFromPatch(diff.JoinPatches(patchesOf(changes[k:])), to)
			if err == nil {
				err = sameMergeFromTouches(changes[k:], to, merge, ok)
			}
			f.check(fmt.Sprintf("%s from %d", name, k), err)
			merged := 0
			if ok {
				merged = 1
			}
			c.add(1, merged)
		}
	})
}

// catchUpCount counts the catch-ups a run of sequences checked: merge patches, and
// refusals to express a change as one.
type catchUpCount struct {
	cases            int
	merges, refusals *atomic.Int64
}

// add counts n catch-ups, of which merged were merge patches.
func (c *catchUpCount) add(n, merged int) {
	c.merges.Add(int64(merged))
	c.refusals.Add(int64(n - merged))
	c.cases += n
}

// catchUpRuns runs check on count random sequences of length bodies, seeded from seed,
// tracked under every option set, each set in a parallel subtest, and fails the test if
// the runs held no merge patch or no refusal between them.
func catchUpRuns(t *testing.T, count, length int, seed int64, check func(f *failures, c *catchUpCount, name string, states []*diff.Version, changes []diff.Change)) {
	var merges, refusals atomic.Int64
	t.Cleanup(func() {
		if merges.Load() == 0 || refusals.Load() == 0 {
			t.Errorf("the catch-ups lack merge patches or refusals: %d merges, %d refusals", merges.Load(), refusals.Load())
		}
	})
	for i, o := range sequenceOptions {
		t.Run(o.name, func(t *testing.T) {
			t.Parallel()
			f := failures{t: t}
			c := catchUpCount{merges: &merges, refusals: &refusals}
			for j := range count {
				sq := difftest.RandomSequence(int64(i)+seed, j, length)
				states, changes, err := trackSequence(o.opts, sq.Bodies)
				if err != nil {
					f.check(sq.Name, err)
					continue
				}
				check(&f, &c, sq.Name, states, changes)
			}
			f.report(c.cases)
		})
	}
}

// trackSequence runs bodies through a Tracker with opts and returns the versions it
// streamed and the change into each but the first. Bodies the Tracker refuses are
// skipped, as a poll loop skips them.
func trackSequence(opts diff.Options, bodies [][]byte) ([]*diff.Version, []diff.Change, error) {
	tr, err := diff.NewTracker(opts)
	if err != nil {
		return nil, nil, err
	}
	var states []*diff.Version
	var changes []diff.Change
	for _, body := range bodies {
		ch, changed, err := tr.Update(body)
		if err != nil || !changed {
			continue
		}
		if states != nil {
			changes = append(changes, ch)
		}
		states = append(states, ch.Version)
	}
	if len(states) == 0 {
		return nil, nil, fmt.Errorf("no body was streamed")
	}
	return states, changes, nil
}

// TestTouchesOfBadPatch checks that a change made elsewhere whose patch is not an RFC
// 6902 patch has no Touches, but an error: no merge patch is built across it.
func TestTouchesOfBadPatch(t *testing.T) {
	t.Parallel()
	v, err := diff.Parse([]byte(`{"a":1}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, patch := range []string{`{}`, `[{"op":"replace"}]`, `[{"op":"replace","path":"a","value":1}]`, `[`} {
		if _, err := diff.NewChange(v, []byte(patch), nil).Touches(); err == nil {
			t.Errorf("Touches of %s: no error", patch)
		}
	}
}
