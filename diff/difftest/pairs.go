package difftest

import (
	"fmt"
	"math"
	"strings"
)

// RandomPairs returns n pairs of a random document and a mutated copy of it, the same
// for the same seed. Documents nest objects and arrays, use keys that JSON Pointer must
// escape (~, /, ~1, the empty key), astral and combining characters, numbers such as
// 1e400, -0, 1.0 and 2^64+1, and null members. Mutations add, remove and null members,
// insert, remove and move array elements at the front, middle and end, change types
// (at the root too), empty containers, and change or respell scalars; some reorder
// members only, and some documents are spaced out, so that the pair is the same
// document in other bytes. Pair i is named "random/<seed>/<i>: <mutations>".
func RandomPairs(seed int64, n int) []Pair {
	pairs := make([]Pair, n)
	for i := range pairs {
		pairs[i] = randomPair(seed, i)
	}
	return pairs
}

func randomPair(seed int64, i int) Pair {
	g := newGen(seed, uint64(i))
	a := g.document()
	b := a.clone()
	var what []string
	for range g.mutationCount() {
		what = append(what, g.mutate(b))
	}
	return Pair{
		Name: fmt.Sprintf("random/%d/%d: %s", seed, i, strings.Join(what, "; ")),
		A:    a.encode(g.chance(0.1)),
		B:    b.encode(g.chance(0.1)),
	}
}

// mutationCount is how many mutations make one change: mostly one, up to four.
func (g *gen) mutationCount() int {
	switch r := g.intn(20); {
	case r < 12:
		return 1
	case r < 17:
		return 2
	case r < 19:
		return 3
	default:
		return 4
	}
}

// RandomVersions returns n successive versions of a random document, each a mutation of
// the one before, the same for the same seed. Some steps change only the bytes (member
// order, spacing, number spelling), not the document.
func RandomVersions(seed int64, n int) [][]byte {
	g := newGen(seed, math.MaxUint64)
	doc := g.document()
	out := make([][]byte, n)
	for i := range out {
		if i > 0 {
			for range g.mutationCount() {
				g.mutate(doc)
			}
		}
		out[i] = doc.encode(g.chance(0.1))
	}
	return out
}
