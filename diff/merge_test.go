package diff_test

import (
	"fmt"
	"testing"

	"github.com/pollsse/caddy-poll-sse/diff"
)

// rootTypeBodies walks the root of a document through every kind and back, with the
// changes that tempt a merge patch most: [1,2] to [], {} to [], "x" to {}, arrays in
// arrays, null and scalars at the root.
var rootTypeBodies = []string{
	`{"a":1,"list":[1,2]}`, `[1,2]`, `[]`, `{}`, `[]`, `[[1,[2]],3]`, `[[1,[2,4]],3]`, `[[1],3]`,
	`"x"`, `{}`, `{"b":{"c":[1]}}`, `7`, `8`, `null`, `{"a":null}`, `true`, `[{"a":1}]`,
	`[{"a":2}]`, `{"a":{"b":2}}`, `{"a":{"b":3}}`, `"y"`, `"x"`, `[1,2]`, `{"list":[1,2]}`,
}

// TestMergePatchNeedsObjectRoots checks, over a sequence whose root changes kind, that a
// change has a merge patch exactly when it takes an object to an object, and that every
// merge patch, live or catch-up, is an object that gives the new document.
func TestMergePatchNeedsObjectRoots(t *testing.T) {
	t.Parallel()
	bodies := make([][]byte, len(rootTypeBodies))
	for i, b := range rootTypeBodies {
		bodies[i] = []byte(b)
	}
	var tr diff.Tracker
	var prev *diff.Version
	for i, body := range bodies {
		ch, changed, err := tr.Update(body)
		if err != nil || !changed {
			t.Fatalf("update %d (%s): changed %v, %v", i, body, changed, err)
		}
		if prev != nil {
			if err := checkMerge(prev.JSON, ch.MergePatch(), ch.Version.JSON); err != nil {
				t.Errorf("%s -> %s: %v", prev.JSON, body, err)
			}
		}
		prev = ch.Version
	}
	states, changes, err := streamVersions(bodies)
	if err != nil {
		t.Fatal(err)
	}
	for i := range changes {
		for j := i + 1; j <= len(changes); j++ {
			if err := checkCatchUp(states[i], states[j], changes[i:j]); err != nil {
				t.Errorf("catch-up %s -> %s: %v", states[i].JSON, states[j].JSON, err)
			}
		}
	}
}

// TestMergeFromPatchRefusesRootChanges checks the catch-up merge patch across changes of
// the root's kind: from an object, through an array or scalar, back to an object, no
// merge patch may stand for the change, since members of the first object would stay.
func TestMergeFromPatchRefusesRootChanges(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, from, to string }{
		{"array emptied", `[1,2]`, `[]`},
		{"object to array", `{}`, `[]`},
		{"string to object", `"x"`, `{}`},
		{"array to object", `[1]`, `{"a":1}`},
		{"null to object", `null`, `{"a":{"b":1}}`},
		{"object to scalar", `{"a":1}`, `3`},
		{"nested arrays", `[[1,[2]]]`, `[[1,[2,3]]]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var tr diff.Tracker
			mustTrackerUpdate(t, &tr, tc.from)
			ch := mustTrackerUpdate(t, &tr, tc.to)
			if m := ch.MergePatch(); m != nil {
				t.Errorf("live merge patch %s from %s to %s; want none (a snapshot)", m, tc.from, tc.to)
			}
			merge, ok, err := diff.MergeFromPatch(ch.Patch, ch.Version)
			if err != nil || ok {
				t.Errorf("MergeFromPatch(%s) = %s, %v, %v; want a refusal", ch.Patch, merge, ok, err)
			}
		})
	}
}

func mustTrackerUpdate(t *testing.T, tr *diff.Tracker, body string) diff.Change {
	t.Helper()
	ch, changed, err := tr.Update([]byte(body))
	if err != nil || !changed {
		t.Fatalf("update %s: changed %v, %v", body, changed, err)
	}
	return ch
}

// TestNewChangeDropsMergeThatIsNoObjectMerge checks that a change made elsewhere keeps
// its merge patch only when it is an object merged into an object.
func TestNewChangeDropsMergeThatIsNoObjectMerge(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		doc, patch, merge string
		keep              bool
	}{
		{`{"a":2}`, `[{"op":"replace","path":"/a","value":2}]`, `{"a":2}`, true},
		{`{"a":2}`, `[{"op":"replace","path":"/a","value":2}]`, ` {"a":2}`, true},
		{`[]`, `[{"op":"remove","path":"/1"},{"op":"remove","path":"/0"}]`, `[]`, false},
		{`[1]`, `[{"op":"add","path":"/0","value":1}]`, `{"0":1}`, false},
		{`{"a":1}`, `[{"op":"replace","path":"","value":{"a":1}}]`, `{"a":1}`, false},
		{`"x"`, `[{"op":"replace","path":"","value":"x"}]`, `"x"`, false},
		{`{}`, `[{"op":"replace","path":"","value":{}}]`, `{}`, false},
		{`{"a":2}`, `not a patch`, `{"a":2}`, false},
	} {
		t.Run(fmt.Sprintf("%s by %s", tc.doc, tc.merge), func(t *testing.T) {
			t.Parallel()
			v, err := diff.Parse([]byte(tc.doc))
			if err != nil {
				t.Fatal(err)
			}
			got := diff.NewChange(v, []byte(tc.patch), []byte(tc.merge)).MergePatch()
			if kept := got != nil; kept != tc.keep {
				t.Errorf("merge patch %q kept: %v, want %v", got, kept, tc.keep)
			}
		})
	}
}
