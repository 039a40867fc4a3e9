package diff

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestUnchangedSubtreesAreShared(t *testing.T) {
	t.Parallel()
	var tr Tracker
	mustUpdate(t, &tr, `{"a":{"x":[1,2,3]},"b":{"y":"z"},"n":1}`)
	before := tr.doc
	mustUpdate(t, &tr, `{"n":2, "b":{"y":"z"}, "a":{"x":[1,2,3]}}`)
	if tr.doc.member("a") != before.member("a") || tr.doc.member("b") != before.member("b") {
		t.Fatal("unchanged members were parsed again instead of kept")
	}
	if tr.doc.member("n") == before.member("n") {
		t.Fatal("a changed member was kept")
	}
}

func TestShiftedElementsAreShared(t *testing.T) {
	t.Parallel()
	var tr Tracker
	mustUpdate(t, &tr, `[{"id":1},{"id":2},{"id":3},{"id":4}]`)
	old := append([]*node(nil), tr.doc.kids...)
	ch, _ := mustUpdate(t, &tr, `[{"id":0},{"id":1},{"id":2},{"id":3},{"id":4}]`)
	for i, kid := range old {
		if tr.doc.kids[i+1] != kid {
			t.Fatalf("element %d was parsed again after the array shifted", i)
		}
	}
	if got := string(ch.Patch); got != `[{"op":"add","path":"/0","value":{"id":0}}]` {
		t.Fatalf("patch = %s", got)
	}
}

// TestIncrementalMatchesFresh checks that a version built on the last one encodes exactly
// as the same document parsed from scratch, through a run of edits.
func TestIncrementalMatchesFresh(t *testing.T) {
	t.Parallel()
	steps := []string{
		`{"list":[{"k":"a","v":1},{"k":"b","v":2}],"m":{"x":"\u00e9","y":[true,null]}}`,
		`{"list":[{"k":"b","v":2},{"k":"a","v":1}],"m":{"x":"é","y":[true,null]}}`,
		`{"m":{"y":[true,null],"x":"é","z":{}},"list":[{"k":"b","v":2},{"k":"a","v":1},{"k":"b","v":2}]}`,
		`{"m":{"y":[null],"x":"é"},"list":[{"k":"a","v":1}]}`,
		`{"m":1,"list":[{"k":"a","v":1}]}`,
	}
	var tr Tracker
	for _, s := range steps {
		ch, changed, err := tr.Update([]byte(s))
		if err != nil {
			t.Fatal(err)
		}
		want, err := Parse([]byte(s))
		if err != nil {
			t.Fatal(err)
		}
		if changed && !bytes.Equal(ch.Version.JSON, want.JSON) {
			t.Fatalf("incremental %s\nfresh       %s", ch.Version.JSON, want.JSON)
		}
	}
}

func TestParseLikeBrowsers(t *testing.T) {
	t.Parallel()
	for body, want := range map[string]string{
		`{"a":1,"a":2}`:           `{"a":2}`,
		"\"bad \xff byte\"":       `"bad ` + "\uFFFD" + ` byte"`,
		`{"<&>":"\u003c\u2028"}`:  `{"<&>":"<` + "\u2028" + `"}`,
		`[1e400,-0,1.0,1E2]`:      `[1e400,-0,1.0,1E2]`,
		` {"b":[],"a":{}} `:       `{"a":{},"b":[]}`,
		`{"x~y/z":"\"q\"\n\t\\"}`: `{"x~y/z":"\"q\"\n\t\\"}`,
	} {
		v, err := Parse([]byte(body))
		if err != nil {
			t.Fatalf("Parse(%q): %v", body, err)
		}
		if string(v.JSON) != want {
			t.Errorf("Parse(%q) = %s, want %s", body, v.JSON, want)
		}
	}
}

func TestTooDeepIsNotJSON(t *testing.T) {
	t.Parallel()
	deep := strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1)
	if _, err := Parse([]byte(deep)); !errors.Is(err, ErrNotJSON) {
		t.Fatalf("err = %v, want ErrNotJSON", err)
	}
	ok := strings.Repeat("[", maxDepth-1) + strings.Repeat("]", maxDepth-1)
	if _, err := Parse([]byte(ok)); err != nil {
		t.Fatalf("%d levels: %v", maxDepth-1, err)
	}
}

// TestFailedParseDoesNotCorruptTracking: a body that fails part way through the parse
// must not spoil the comparison of the next one with the last good document.
func TestFailedParseDoesNotCorruptTracking(t *testing.T) {
	t.Parallel()
	tr, err := NewTracker(Options{Select: "/data"})
	if err != nil {
		t.Fatal(err)
	}
	first := `{"data":{"a":[1,2],"b":"x"}}`
	mustUpdate(t, tr, first)
	deep := `{"data":{"a":[1,2],"b":` + strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth) + `}}`
	if _, _, err := tr.Update([]byte(deep)); !errors.Is(err, ErrNotJSON) {
		t.Fatalf("err = %v, want ErrNotJSON", err)
	}
	ch, changed := mustUpdate(t, tr, `{"data":{"a":[1,2],"b":"y"}}`)
	if !changed || string(ch.Patch) != `[{"op":"replace","path":"/b","value":"y"}]` {
		t.Fatalf("changed=%v patch=%s", changed, ch.Patch)
	}
}

// TestLentContainerIsNotReusedWhole is the sequence in which an element whose bytes had
// not changed was reused whole after another element had already taken one of its
// children: the shared child's offsets then pointed into the wrong parent, and the next
// version's JSON ended in `"tags"::[}]}`.
func TestLentContainerIsNotReusedWhole(t *testing.T) {
	t.Parallel()
	steps := []string{
		`{"items":[{"id":72634,"price":1.5,"tags":[]},{"id":6,"price":106,"tags":["a","t8"]},{"id":15657,"price":1.5,"tags":[]}]}`,
		`{"items":[{"id":97103,"price":1.5,"tags":[]},{"id":46212,"price":1.5,"tags":[]},{"id":7525,"price":1.5,"tags":[]},{"id":6,"price":14.09,"tags":["a","t8"]},{"id":15657,"price":1.5,"tags":[]}]}`,
		`{"items":[{"id":97103,"price":1.5,"tags":[]},{"id":46212,"price":1.5,"tags":[]},{"id":7525,"price":1.5,"tags":[]},{"id":6,"price":14.09,"tags":["a","t8"]},{"id":15657,"price":98.88,"tags":[]}]}`,
	}
	var tr Tracker
	for i, s := range steps {
		mustUpdate(t, &tr, s)
		want, err := Parse([]byte(s))
		if err != nil {
			t.Fatal(err)
		}
		if got := tr.Current(); !bytes.Equal(got.JSON, want.JSON) || got.ID != want.ID {
			t.Fatalf("step %d: incremental %s (%s)\nfresh %s (%s)", i, got.JSON, got.ID, want.JSON, want.ID)
		}
	}
	if got := tr.Current().ID; got != "Ouxi9WvpzMGXaazW_Rhlng" {
		t.Fatalf("id = %s, want the fresh parse's Ouxi9WvpzMGXaazW_Rhlng", got)
	}
}
