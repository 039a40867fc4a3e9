package difftest

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

func TestRandomSequencesAreDeterministic(t *testing.T) {
	t.Parallel()
	a, b := RandomSequences(3, 20, 30), RandomSequences(3, 20, 30)
	for i := range a {
		if a[i].Name != b[i].Name || !slices.EqualFunc(a[i].Bodies, b[i].Bodies, bytes.Equal) {
			t.Fatalf("sequence %d differs between two runs of seed 3", i)
		}
	}
}

// TestRandomSequencesCoverTheirCases checks that sequences hold every kind of step,
// and bodies that are not JSON, repeated elements and members, and invalid UTF-8.
func TestRandomSequencesCoverTheirCases(t *testing.T) {
	t.Parallel()
	seen := map[string]int{}
	for _, sq := range RandomSequences(5, 100, 30) {
		for i, body := range sq.Bodies {
			for _, what := range []string{"same document", "again", "new document", "cut short", "not JSON at",
				"duplicate-element", "near-duplicate", "duplicate-member", "escape", "invalid-utf8", "keyed-array", "nest",
				"insert-front", "remove-end", "move", "respell"} {
				if strings.Contains(sq.Steps[i], what) {
					seen[what]++
				}
			}
			if !json.Valid(body) {
				seen["invalid"]++
			}
		}
	}
	for _, what := range []string{"same document", "again", "new document", "cut short", "not JSON at",
		"duplicate-element", "near-duplicate", "duplicate-member", "escape", "invalid-utf8", "keyed-array", "nest",
		"insert-front", "remove-end", "move", "respell", "invalid"} {
		if seen[what] == 0 {
			t.Errorf("no %q step in 3,000", what)
		}
	}
}

func TestScriptEndsWithItsChoices(t *testing.T) {
	t.Parallel()
	for _, choices := range [][]byte{nil, make([]byte, 64), bytes.Repeat([]byte{0xff}, 64), []byte("choices")} {
		sc := NewScript([]byte(`{"items":[{"id":1}]}`), choices)
		n := 0
		for {
			body, _, ok := sc.Next()
			if !ok {
				break
			}
			if body == nil {
				t.Fatal("a step without a body")
			}
			n++
		}
		if n > len(choices) {
			t.Errorf("%d steps from %d choices", n, len(choices))
		}
	}
}

func TestDecodeValueKeepsTheText(t *testing.T) {
	t.Parallel()
	in := `{"b":[1.0,-0,1e400],"a":{"x":null,"x":true},"c":"\u00e9"}`
	v, err := decodeValue([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(v.encode(false)); got != `{"b":[1.0,-0,1e400],"a":{"x":null,"x":true},"c":"é"}` {
		t.Fatalf("decoded and encoded again: %s", got)
	}
}
