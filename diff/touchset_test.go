package diff_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/pollsse/caddy-poll-sse/diff"
)

// TestTouchSetGrowsLikeMergeFromTouches grows a TouchSet from every version of long
// runs, under every option set, by one change at a time, and after each change holds its
// merge patch to the one MergeFromTouches builds from scratch over the same changes, byte
// for byte, refusals included; each merge patch it builds, applied to the version the
// run started from by an independent applier, must give the last version, byte for byte
// once canonical. The Touches are those of the changes as made, and as read back from
// their patches, as a change made elsewhere is.
func TestTouchSetGrowsLikeMergeFromTouches(t *testing.T) {
	t.Parallel()
	count, length := 4, 100
	if testing.Short() {
		count = 1
	}
	catchUpRuns(t, count, length, 100, func(f *failures, c *catchUpCount, name string, states []*diff.Version, changes []diff.Change) {
		for _, readBack := range []bool{false, true} {
			ts, err := touchesOf(changes, readBack)
			if err != nil {
				f.check(name, err)
				continue
			}
			for k := range ts {
				n, ok, err := growTouchSet(ts[k:], states[k:])
				f.check(fmt.Sprintf("%s (read back %v) from %d", name, readBack, k), err)
				c.add(n, ok)
			}
		}
	})
}

// touchesOf returns the Touches of each change, as made or read back from its patch.
func touchesOf(changes []diff.Change, readBack bool) ([]diff.Touches, error) {
	out := make([]diff.Touches, len(changes))
	for i, ch := range changes {
		if readBack {
			ch = diff.NewChange(ch.Version, ch.Patch, nil)
		}
		var err error
		if out[i], err = ch.Touches(); err != nil {
			return nil, fmt.Errorf("Touches of %s: %w", ch.Patch, err)
		}
	}
	return out, nil
}

// growTouchSet adds ts to a TouchSet one at a time, ts[n] being the change into
// states[n+1], and checks the merge patch after most against MergeFromTouches and an
// applier. It returns how many it checked, and how many of those were not refused.
func growTouchSet(ts []diff.Touches, states []*diff.Version) (n, ok int, err error) {
	var set diff.TouchSet
	buf := []byte("prefix:")
	for n = range ts {
		set.Add(ts[n])
		if n%4 == 2 {
			continue // the next patch is built after two changes: both are taken
		}
		to := states[n+1]
		want, wantOK := diff.MergeFromTouches(ts[:n+1], to)
		got, gotOK := set.AppendMerge(buf[:7], to)
		if gotOK != wantOK || string(got) != "prefix:"+string(want) {
			return n, ok, fmt.Errorf("after %d changes: AppendMerge = %q, %v; MergeFromTouches = %s, %v", n+1, got, gotOK, want, wantOK)
		}
		if !gotOK {
			continue
		}
		ok++
		applied, err := applyMerge(states[0].JSON, got[7:])
		if err == nil {
			err = sameCanonical(applied, to.JSON)
		}
		if err != nil {
			return n, ok, fmt.Errorf("after %d changes: merge patch %s on %s: %w", n+1, got[7:], states[0].JSON, err)
		}
		buf = got
	}
	return n + 1, ok, nil
}

// TestTouchSetOrder: which touch came first decides whether an object may be set whole,
// as it does for MergeFromTouches (a touch below a path before the path itself leaves
// an object there that may have held members), and the size counts what the set holds.
func TestTouchSetOrder(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		bodies []string
		want   string // the merge patch from the first body to the last; "" when refused
	}{
		{"a member then its object replaced by a new one", []string{`{"a":{"x":1}}`, `{"a":{"x":2}}`, `{"a":[1]}`, `{"a":{"y":3}}`}, ""},
		{"an object added then changed inside", []string{`{}`, `{"a":{"x":1}}`, `{"a":{"x":2,"z":{"w":1}}}`}, `{"a":{"x":2,"z":{"w":1}}}`},
		{"a deep member deleted", []string{`{"a":{"b":{"c":1,"d":2}}}`, `{"a":{"b":{"d":2}}}`, `{"a":{"b":{"d":3}}}`}, `{"a":{"b":{"c":null,"d":3}}}`},
		{"an element added, then an object in place of the array", []string{`{"a":[1,2]}`, `{"a":[1,2,3]}`, `{"a":{"b":1}}`}, ""},
		{"an array replaced by an object, then an element", []string{`{"a":[1]}`, `{"a":{"b":1}}`, `{"a":{"b":1,"c":[2]}}`}, `{"a":{"b":1,"c":[2]}}`},
		{"the root replaced", []string{`{"a":1}`, `[1]`, `{"a":2}`}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			bodies := make([][]byte, len(tc.bodies))
			for i, b := range tc.bodies {
				bodies[i] = []byte(b)
			}
			states, changes, err := trackSequence(diff.Options{}, bodies)
			if err != nil {
				t.Fatal(err)
			}
			var set diff.TouchSet
			for _, ch := range changes {
				ts, err := ch.Touches()
				if err != nil {
					t.Fatal(err)
				}
				set.Add(ts)
			}
			got, ok := set.AppendMerge(nil, states[len(states)-1])
			if ok != (tc.want != "") || !bytes.Equal(got, []byte(tc.want)) {
				t.Errorf("AppendMerge = %s, %v; want %q", got, ok, tc.want)
			}
			if set.Size() <= 0 && ok {
				t.Errorf("Size = %d for a set holding paths", set.Size())
			}
		})
	}
}
