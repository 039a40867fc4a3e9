package diff

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/pollsse/caddy-poll-sse/diff/difftest"
)

// refMergePatch is mergePatch as first written, each level a map and every touch
// resolved: the reference the builder's shortcuts must match.
func refMergePatch(touches []touch, doc *node) ([]byte, bool) {
	if !objectToObject(touches, doc) {
		return nil, false
	}
	root := &refNode{}
	for _, t := range touches {
		at, val := resolve(doc, t.at)
		if !root.set(at, val) || val == nil {
			continue
		}
		if val.kind == kindNull || carriesNullMember(val) {
			return nil, false
		}
		if val.kind == kindObject && !createdWhole(touches, at) {
			return nil, false
		}
	}
	return root.appendTo(nil), true
}

type refNode struct {
	leaf bool
	val  *node
	kids map[string]*refNode
}

func (m *refNode) set(at pointer, val *node) bool {
	for _, tok := range at {
		if m.leaf {
			return false
		}
		if m.kids == nil {
			m.kids = make(map[string]*refNode)
		}
		next := m.kids[tok]
		if next == nil {
			next = &refNode{}
			m.kids[tok] = next
		}
		m = next
	}
	if m.leaf && m.val == val {
		return false
	}
	m.leaf, m.val, m.kids = true, val, nil
	return true
}

func (m *refNode) appendTo(dst []byte) []byte {
	if m.leaf {
		if m.val == nil {
			return append(dst, "null"...)
		}
		return appendJSON(dst, m.val)
	}
	keys := slices.Sorted(maps.Keys(m.kids))
	dst = append(dst, '{')
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(quote(dst, k), ':')
		dst = m.kids[k].appendTo(dst)
	}
	return append(dst, '}')
}

// TestMergePatchMatchesReference holds mergePatch to refMergePatch, byte for byte or
// both refusing, over the catch-ups of long random sequences, from every version to the
// last, plain and with keyed arrays (whose moves touch two paths).
func TestMergePatchMatchesReference(t *testing.T) {
	t.Parallel()
	keyed := Options{ArrayKeys: []ArrayKey{{Pointer: "/items", Member: "id"}, {Pointer: "/*", Member: "id"}}}
	merges, refusals := 0, 0
	for _, o := range []Options{{}, keyed} {
		for j := range 8 {
			tr, err := NewTracker(o)
			if err != nil {
				t.Fatal(err)
			}
			var lists [][]touch
			bodies := difftest.RandomSequence(7, j, 100).Bodies
			if j%2 == 1 {
				bodies = nestedVersions(uint64(j), 100)
			}
			for _, body := range bodies {
				ch, changed, err := tr.Update(body)
				if err != nil || !changed || ch.Patch == nil {
					continue
				}
				ts, err := ch.Touches()
				if err != nil {
					t.Fatal(err)
				}
				lists = append(lists, ts.list)
			}
			for k := range lists {
				all := slices.Concat(lists[k:]...)
				want, wantOK := refMergePatch(all, tr.Current().doc)
				got, ok := mergePatch(all, tr.Current().doc)
				if ok != wantOK || !bytes.Equal(got, want) {
					t.Fatalf("sequence %d from change %d: got %s, %v; want %s, %v", j, k, got, ok, want, wantOK)
				}
				if ok {
					merges++
				} else {
					refusals++
				}
			}
		}
	}
	t.Logf("%d merge patches, %d refusals", merges, refusals)
	if merges == 0 || refusals == 0 {
		t.Errorf("%d merges, %d refusals: the sequences lack one or the other", merges, refusals)
	}
}

// nestedVersions returns n versions of an object of nested objects without nulls, which
// merge patches mostly express: members change, come and go, and turn from scalars into
// objects and back.
func nestedVersions(seed uint64, n int) [][]byte {
	rng := rand.New(rand.NewPCG(seed, 99))
	doc := map[string]any{}
	out := make([][]byte, 0, n)
	for range n {
		for range 1 + rng.IntN(4) {
			mutateNested(rng, doc, 0)
		}
		b, err := json.Marshal(doc)
		if err != nil {
			panic(err)
		}
		out = append(out, b)
	}
	return out
}

func mutateNested(rng *rand.Rand, obj map[string]any, depth int) {
	k := fmt.Sprintf("k%d", rng.IntN(6))
	switch v := obj[k].(type) {
	case map[string]any:
		if depth < 3 && rng.IntN(4) > 0 {
			mutateNested(rng, v, depth+1)
			return
		}
	}
	switch rng.IntN(5) {
	case 0:
		delete(obj, k)
	case 1:
		obj[k] = map[string]any{"a": rng.IntN(3), "b": map[string]any{"c": rng.IntN(3)}}
	case 2:
		obj[k] = []any{rng.IntN(3), rng.IntN(3)}
	default:
		obj[k] = rng.IntN(5)
	}
}
