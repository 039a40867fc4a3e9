package diff

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
)

func mustUpdate(t *testing.T, tr *Tracker, body string) (Change, bool) {
	t.Helper()
	ch, changed, err := tr.Update([]byte(body))
	if err != nil {
		t.Fatalf("Update(%s): %v", body, err)
	}
	return ch, changed
}

// applyOracle applies patch to doc with an independent RFC 6902 implementation.
func applyOracle(t *testing.T, doc, patch []byte) []byte {
	t.Helper()
	p, err := jsonpatch.DecodePatch(patch)
	if err != nil {
		t.Fatalf("decoding patch %s: %v", patch, err)
	}
	out, err := p.Apply(doc)
	if err != nil {
		t.Fatalf("applying patch %s to %s: %v", patch, doc, err)
	}
	return out
}

func TestUpdatePatchesApply(t *testing.T) {
	t.Parallel()
	steps := []string{
		`{"a":1,"b":[1,2,3],"c":{"d":"x"}}`,
		`{"a":2,"b":[1,2,3],"c":{"d":"x"}}`,
		`{"a":2,"b":[0,1,2,3],"c":{"d":"x","e":null}}`,
		`{"a":2,"b":[],"c":{"e":null},"n":1e400,"z":-0}`,
		`{"a/b":{"~k":"v"},"uni":"日本"}`,
		`[1,"two",{"three":3}]`,
		`{"a":12345678901234567890123}`,
	}
	var tr Tracker
	var doc []byte
	for i, s := range steps {
		ch, changed := mustUpdate(t, &tr, s)
		if !changed {
			t.Fatalf("step %d: no change reported", i)
		}
		if i == 0 {
			if ch.Patch != nil {
				t.Fatalf("first version has a patch: %s", ch.Patch)
			}
			doc = ch.Version.JSON
			continue
		}
		doc = applyOracle(t, doc, ch.Patch)
		if !jsonpatch.Equal(doc, []byte(s)) {
			t.Fatalf("step %d: patched %s, want %s", i, doc, s)
		}
	}
}

func TestUpdateUnchanged(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, first, second string
	}{
		{"same bytes", `{"a":1}`, `{"a":1}`},
		{"member order", `{"a":1,"b":2}`, `{"b":2,"a":1}`},
		{"white space", `{"a":1}`, " {\n \"a\" : 1 }\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var tr Tracker
			first, _ := mustUpdate(t, &tr, tc.first)
			if _, changed := mustUpdate(t, &tr, tc.second); changed {
				t.Fatal("change reported for the same document")
			}
			if tr.Current().ID != first.Version.ID {
				t.Fatal("current version moved")
			}
		})
	}
}

func TestUnchangedBodyIsNotParsed(t *testing.T) {
	body := bytes.Repeat([]byte(`{"k":"v"},`), 1000)
	body = append(append([]byte(`[`), body[:len(body)-1]...), ']')
	var tr Tracker
	if _, _, err := tr.Update(body); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(100, func() {
		if _, changed, err := tr.Update(body); changed || err != nil {
			t.Fatal("unexpected change or error")
		}
	})
	if allocs != 0 {
		t.Fatalf("an unchanged body allocated %v times; a parse would allocate", allocs)
	}
}

func TestUpdateRejectsNonJSON(t *testing.T) {
	t.Parallel()
	bad := []string{"<html>oops</html>", `{"a":`, `{"a":1} trailing`, "", `{"a":1}{"b":2}`}
	for _, body := range bad {
		t.Run(fmt.Sprintf("%q", body), func(t *testing.T) {
			t.Parallel()
			var tr Tracker
			good, _ := mustUpdate(t, &tr, `{"ok":true}`)
			_, changed, err := tr.Update([]byte(body))
			if !errors.Is(err, ErrNotJSON) || changed {
				t.Fatalf("Update = changed %v, err %v; want ErrNotJSON", changed, err)
			}
			if tr.Current() != good.Version {
				t.Fatal("a bad body replaced the current version")
			}
			if _, changed := mustUpdate(t, &tr, `{"ok":true}`); changed {
				t.Fatal("the good body after a bad one counted as a change")
			}
		})
	}
}

func TestVersionIDsAreContentDerived(t *testing.T) {
	t.Parallel()
	a, err := Parse([]byte(`{"x":[1,2],"y":"z"}`))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Parse([]byte(`{"y":"z","x":[1, 2]}`))
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse([]byte(`{"y":"z","x":[2,1]}`))
	if err != nil {
		t.Fatal(err)
	}
	if a.ID != b.ID {
		t.Fatalf("same document, ids %q and %q", a.ID, b.ID)
	}
	if a.ID == c.ID {
		t.Fatal("different documents share an id")
	}
	if len(a.ID) != 22 || !json.Valid(a.JSON) {
		t.Fatalf("id %q, json %s", a.ID, a.JSON)
	}
}

func TestJoinPatches(t *testing.T) {
	t.Parallel()
	docs := []string{`{"a":1}`, `{"a":2}`, `{"a":2}`, `{"a":2,"b":[1]}`, `{"b":[1,2]}`}
	var tr Tracker
	var patches [][]byte
	first, _ := mustUpdate(t, &tr, docs[0])
	for _, d := range docs[1:] {
		if ch, changed := mustUpdate(t, &tr, d); changed {
			patches = append(patches, ch.Patch)
		}
	}
	patches = append(patches, []byte("[]"), []byte(" [ ] "))
	joined := JoinPatches(patches)
	got := applyOracle(t, first.Version.JSON, joined)
	if !jsonpatch.Equal(got, []byte(docs[len(docs)-1])) {
		t.Fatalf("joined patch %s gave %s", joined, got)
	}
	if string(JoinPatches(nil)) != "[]" {
		t.Fatalf("JoinPatches(nil) = %s", JoinPatches(nil))
	}
}
