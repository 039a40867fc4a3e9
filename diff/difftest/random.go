package difftest

import (
	"fmt"
	"math/rand/v2"
	"strconv"
)

// keys are the object member names the generator draws from, besides plain k<n> names:
// the empty key, the characters JSON Pointer escapes and their escapes spelt literally,
// array-index-like names, astral and combining characters, and characters JSON escapes.
var keys = []string{
	"a", "b", "c", "id", "name", "items", "value",
	"", "~", "/", "~0", "~1", "~01", "a/b", "m~n", "/~/", "-",
	"0", "1", "10", "01",
	"日本語", "😀", "𝄞clef", "e\u0301", "é", "\u00e9\u0301",
	" ", "with space", `"quoted"`, `back\slash`, "tab\there", "nul\u0000", "<&>", "\u2028",
}

// numbers are the number spellings the generator draws from, besides small integers:
// values beyond float64 (1e400), negative zero, integers beyond 64 bits (2^64+1) and
// 2^53 (9007199254740993), and equal values spelt differently (1, 1.0, 1e0, 10E-1).
var numbers = []string{
	"0", "-0", "1", "-1", "1.0", "1e0", "10E-1", "1.5", "0.1", "-2.5e-3", "1E2",
	"1e400", "-1e400", "1e-400", "18446744073709551617", "-9223372036854775809",
	"9007199254740993", "3.14159265358979323846264338327950288", "123456789012345678901234567890",
}

// strs are the string values the generator draws from, besides short random ones.
var strs = []string{
	"", "x", "hello", "日本", "😀🎉", "e\u0301", "line\nbreak", "cr\rlf", "crlf\r\n",
	"<script>&amp;", "\u2028\u2029", `quote"`, `\`, "null", "1e400", "\u0000", "data: x\n\nid: y",
}

const (
	maxDepth   = 4 // nesting of generated documents
	maxMembers = 5 // members of a generated object
	maxElems   = 6 // elements of a generated array
)

// gen draws random values and mutations from one seeded source.
type gen struct {
	rng *rand.Rand
}

// newGen returns a generator for one seed and stream: the pairs of one seed are
// independent streams, so each is regenerated alone from its name.
func newGen(seed int64, stream uint64) *gen {
	return &gen{rng: rand.New(rand.NewPCG(uint64(seed), stream))}
}

func (g *gen) intn(n int) int        { return g.rng.IntN(n) }
func (g *gen) chance(p float64) bool { return g.rng.Float64() < p }
func pick[T any](g *gen, xs []T) T   { return xs[g.rng.IntN(len(xs))] }

// document returns a random document: usually an object, sometimes an array or, rarely,
// a scalar at the root.
func (g *gen) document() *value {
	switch r := g.intn(20); {
	case r < 14:
		return g.object(0)
	case r < 18:
		return g.array(0)
	default:
		return g.scalar()
	}
}

// value returns a random value at the given depth; containers grow rarer with depth.
func (g *gen) value(depth int) *value {
	if depth < maxDepth && g.chance(0.45-0.1*float64(depth)) {
		if g.chance(0.55) {
			return g.object(depth)
		}
		return g.array(depth)
	}
	return g.scalar()
}

func (g *gen) object(depth int) *value {
	v := &value{kind: kindObject, members: []member{}}
	for range g.intn(maxMembers + 1) {
		key := g.newKey(v)
		v.members = append(v.members, member{key: key, val: g.value(depth + 1)})
	}
	return v
}

func (g *gen) array(depth int) *value {
	v := &value{kind: kindArray, elems: []*value{}}
	for range g.intn(maxElems + 1) {
		v.elems = append(v.elems, g.value(depth+1))
	}
	return v
}

func (g *gen) scalar() *value {
	switch r := g.intn(20); {
	case r < 3:
		return &value{kind: kindNull}
	case r < 5:
		return &value{kind: kindBool, b: g.chance(0.5)}
	case r < 12:
		return g.number()
	default:
		return g.str()
	}
}

func (g *gen) number() *value {
	if g.chance(0.5) {
		return &value{kind: kindNumber, text: strconv.Itoa(g.intn(2000) - 1000)}
	}
	return &value{kind: kindNumber, text: pick(g, numbers)}
}

func (g *gen) str() *value {
	if g.chance(0.4) {
		return &value{kind: kindString, text: fmt.Sprintf("s%d", g.intn(100))}
	}
	return &value{kind: kindString, text: pick(g, strs)}
}

// newKey returns a key that the object v does not have yet. After a few draws it
// counts instead, as a script's choices may run out and repeat one draw forever.
func (g *gen) newKey(v *value) string {
	for range 20 {
		k := pick(g, keys)
		if g.chance(0.3) {
			k = fmt.Sprintf("k%d", g.intn(1000))
		}
		if !v.has(k) {
			return k
		}
	}
	for i := len(v.members); ; i++ {
		if k := fmt.Sprintf("n%d", i); !v.has(k) {
			return k
		}
	}
}

// emptyLike returns an empty container, of v's kind when v is one.
func (g *gen) emptyLike(v *value) *value {
	if v.kind == kindArray || (v.kind != kindObject && g.chance(0.5)) {
		return &value{kind: kindArray, elems: []*value{}}
	}
	return &value{kind: kindObject, members: []member{}}
}
