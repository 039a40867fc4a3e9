package difftest

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// site is one value of a document, with its depth and where it lies.
type site struct {
	v      *value
	depth  int
	parent int    // the index in the list of sites of the value's parent, or -1
	tok    string // the value's reference token in its parent
}

// sites lists every value of the document v, the root first.
func sites(v *value) []site {
	out := make([]site, 0, size(v))
	var walk func(v *value, parent int, tok string, depth int)
	walk = func(v *value, parent int, tok string, depth int) {
		at := len(out)
		out = append(out, site{v: v, depth: depth, parent: parent, tok: tok})
		for i, e := range v.elems {
			walk(e, at, strconv.Itoa(i), depth+1)
		}
		for _, m := range v.members {
			walk(m.val, at, m.key, depth+1)
		}
	}
	walk(v, -1, "", 0)
	return out
}

// path returns the JSON Pointer of the site at index i of all.
func path(all []site, i int) string {
	if all[i].parent < 0 {
		return ""
	}
	return path(all, all[i].parent) + "/" + escapeToken(all[i].tok)
}

// size returns how many values the document v holds.
func size(v *value) int {
	n := 1
	for _, e := range v.elems {
		n += size(e)
	}
	for _, m := range v.members {
		n += size(m.val)
	}
	return n
}

func escapeToken(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

// mutation changes the value at a site in place. It returns false when it does not
// apply to that value.
type mutation struct {
	name  string
	apply func(g *gen, s site) bool
}

var mutations = []mutation{
	{"replace", mutReplace},
	{"retype", mutRetype},
	{"null", mutNull},
	{"empty", mutEmpty},
	{"add-member", mutAddMember},
	{"remove-member", mutRemoveMember},
	{"reorder", mutReorder},
	{"insert-front", insertAt(func(n int) int { return 0 })},
	{"insert-middle", insertAt(func(n int) int { return n / 2 })},
	{"insert-end", insertAt(func(n int) int { return n })},
	{"remove-front", removeAt(func(n int) int { return 0 })},
	{"remove-middle", removeAt(func(n int) int { return n / 2 })},
	{"remove-end", removeAt(func(n int) int { return n - 1 })},
	{"move", mutMove},
	{"scalar", mutScalar},
	{"respell", mutRespell},
}

// mutate applies one random mutation to the document v, at its root about one time in
// ten, and describes it as "<mutation> <pointer>".
func (g *gen) mutate(v *value) string {
	return g.mutateWith(v, mutations)
}

// mutReplace replaces the value by a random one, often of another type.
func mutReplace(g *gen, s site) bool {
	*s.v = *g.value(s.depth)
	return true
}

// mutRetype changes the type of the value: object to array and back keeping the
// values, container to scalar, scalar to container.
func mutRetype(g *gen, s site) bool {
	switch s.v.kind {
	case kindObject:
		elems := []*value{}
		for _, m := range s.v.members {
			elems = append(elems, m.val)
		}
		*s.v = value{kind: kindArray, elems: elems}
	case kindArray:
		members := []member{}
		for i, e := range s.v.elems {
			members = append(members, member{key: fmt.Sprint(i), val: e})
		}
		*s.v = value{kind: kindObject, members: members}
	default:
		*s.v = *g.emptyLike(s.v)
		return true
	}
	if g.chance(0.3) {
		*s.v = *g.scalar()
	}
	return true
}

func mutNull(g *gen, s site) bool {
	if s.v.kind == kindNull {
		return false
	}
	*s.v = value{kind: kindNull}
	return true
}

func mutEmpty(g *gen, s site) bool {
	if s.v.isContainer() && len(s.v.elems)+len(s.v.members) == 0 {
		return false
	}
	*s.v = *g.emptyLike(s.v)
	return true
}

// mutAddMember adds a member at a random place in the member order; a quarter of them
// are null.
func mutAddMember(g *gen, s site) bool {
	if s.v.kind != kindObject {
		return false
	}
	val := g.value(s.depth + 1)
	if g.chance(0.25) {
		val = &value{kind: kindNull}
	}
	m := member{key: g.newKey(s.v), val: val}
	i := g.intn(len(s.v.members) + 1)
	s.v.members = append(s.v.members[:i], append([]member{m}, s.v.members[i:]...)...)
	return true
}

func mutRemoveMember(g *gen, s site) bool {
	if s.v.kind != kindObject || len(s.v.members) == 0 {
		return false
	}
	i := g.intn(len(s.v.members))
	s.v.members = append(s.v.members[:i], s.v.members[i+1:]...)
	return true
}

// mutReorder shuffles the members of an object: the same document.
func mutReorder(g *gen, s site) bool {
	if s.v.kind != kindObject || len(s.v.members) < 2 {
		return false
	}
	g.rng.Shuffle(len(s.v.members), func(i, j int) {
		s.v.members[i], s.v.members[j] = s.v.members[j], s.v.members[i]
	})
	return true
}

func insertAt(where func(n int) int) func(g *gen, s site) bool {
	return func(g *gen, s site) bool {
		if s.v.kind != kindArray {
			return false
		}
		i := where(len(s.v.elems))
		e := g.value(s.depth + 1)
		s.v.elems = append(s.v.elems[:i], append([]*value{e}, s.v.elems[i:]...)...)
		return true
	}
}

func removeAt(where func(n int) int) func(g *gen, s site) bool {
	return func(g *gen, s site) bool {
		if s.v.kind != kindArray || len(s.v.elems) == 0 {
			return false
		}
		i := where(len(s.v.elems))
		s.v.elems = append(s.v.elems[:i], s.v.elems[i+1:]...)
		return true
	}
}

// mutMove moves one element of an array to another index.
func mutMove(g *gen, s site) bool {
	n := len(s.v.elems)
	if s.v.kind != kindArray || n < 2 {
		return false
	}
	from, to := g.intn(n), g.intn(n-1)
	if to >= from {
		to++
	}
	e := s.v.elems[from]
	rest := append(s.v.elems[:from:from], s.v.elems[from+1:]...)
	s.v.elems = append(rest[:to:to], append([]*value{e}, rest[to:]...)...)
	return true
}

// mutScalar replaces a scalar by another of the same type (any type for null).
func mutScalar(g *gen, s site) bool {
	switch s.v.kind {
	case kindBool:
		s.v.b = !s.v.b
	case kindNumber:
		*s.v = *g.number()
	case kindString:
		*s.v = *g.str()
	case kindNull:
		*s.v = *g.scalar()
	default:
		return false
	}
	return true
}

// mutRespell spells a number differently with the same value: 1 as 1.0, 0 as -0,
// 1e400 as 1E400.
func mutRespell(g *gen, s site) bool {
	if s.v.kind != kindNumber {
		return false
	}
	t := s.v.text
	switch {
	case t == "0":
		t = "-0"
	case t == "-0":
		t = "0"
	case strings.ContainsAny(t, "eE"):
		t = strings.NewReplacer("e", "E", "E", "e").Replace(t)
	case strings.Contains(t, "."):
		t += "0"
	default:
		t += pick(g, []string{".0", "e0", "E+0", ".000"})
	}
	s.v.text = t
	return true
}

// sequenceMutations are the mutations of sequences: those of pairs, and those that test
// how a new document reuses the parse of the last one: elements equal to another by
// their bytes or in part, repeated object members, strings spelt with escapes or with
// invalid UTF-8, arrays keyed by an id member (some without valid keys), nested arrays.
var sequenceMutations = append(mutations[:len(mutations):len(mutations)],
	mutation{"duplicate-element", mutDuplicateElement},
	mutation{"near-duplicate", mutNearDuplicate},
	mutation{"duplicate-member", mutDuplicateMember},
	mutation{"escape", mutEscape},
	mutation{"invalid-utf8", mutInvalidUTF8},
	mutation{"keyed-array", mutKeyedArray},
	mutation{"nest", mutNest},
)

// mutateWith applies one of ms to the document v, as mutate does.
func (g *gen) mutateWith(v *value, ms []mutation) string {
	all := sites(v)
	for {
		i := 0
		if !g.chance(0.1) {
			i = g.intn(len(all))
		}
		m := pick(g, ms)
		if m.apply(g, all[i]) {
			return fmt.Sprintf("%s %q", m.name, path(all, i))
		}
	}
}

// where returns an index of an array of n elements at which to insert: the front, the
// middle, the end, or anywhere.
func (g *gen) where(n int) int {
	return pick(g, []int{0, n / 2, n, g.intn(n + 1)})
}

// mutDuplicateElement inserts a copy of an element of an array: two elements then have
// the same bytes.
func mutDuplicateElement(g *gen, s site) bool {
	if s.v.kind != kindArray || len(s.v.elems) == 0 {
		return false
	}
	e := pick(g, s.v.elems).clone()
	s.v.elems = slices.Insert(s.v.elems, g.where(len(s.v.elems)), e)
	return true
}

// mutNearDuplicate inserts a copy of an element of an array with one change inside it:
// the two are equal in part, and share most of their bytes.
func mutNearDuplicate(g *gen, s site) bool {
	if s.v.kind != kindArray || len(s.v.elems) == 0 {
		return false
	}
	e := pick(g, s.v.elems).clone()
	g.mutate(e)
	s.v.elems = slices.Insert(s.v.elems, g.where(len(s.v.elems)), e)
	return true
}

// mutDuplicateMember repeats the name of a member of an object, before it (the last
// wins, so the document stays the same) or after it (the member takes a new value).
func mutDuplicateMember(g *gen, s site) bool {
	if s.v.kind != kindObject || len(s.v.members) == 0 {
		return false
	}
	i := g.intn(len(s.v.members))
	m := member{key: s.v.members[i].key, val: g.value(s.depth + 1)}
	if g.chance(0.5) {
		i++
	}
	s.v.members = slices.Insert(s.v.members, i, m)
	return true
}

// mutEscape spells a string with \u escapes for some of its characters: the same
// document in other bytes.
func mutEscape(g *gen, s site) bool {
	if s.v.kind != kindString || s.v.lit != "" {
		return false
	}
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s.v.text {
		switch {
		case r < 0x20 || r == '"' || r == '\\' || g.chance(0.5):
			writeEscaped(&b, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	s.v.lit = b.String()
	return true
}

// writeEscaped writes r as \u escapes, a surrogate pair beyond the BMP.
func writeEscaped(b *strings.Builder, r rune) {
	if r1, r2 := utf16.EncodeRune(r); r1 != utf8.RuneError {
		fmt.Fprintf(b, `\u%04x\u%04X`, r1, r2)
		return
	}
	fmt.Fprintf(b, `\u%04x`, r)
}

// invalidUTF8 are byte sequences that are not UTF-8: a stray continuation byte, bytes
// never used, a truncated sequence, an encoded surrogate, an overlong encoding.
var invalidUTF8 = []string{"\x80", "\xff", "\xfe\xff", "\xe2\x82", "\xed\xa0\x80", "\xc0\xaf"}

// mutInvalidUTF8 makes a string hold bytes that are not UTF-8, which a parser replaces
// by U+FFFD.
func mutInvalidUTF8(g *gen, s site) bool {
	if s.v.kind != kindString {
		return false
	}
	bad := pick(g, invalidUTF8)
	plain := fmt.Sprintf("s%d", g.intn(10))
	s.v.text = plain + "\uFFFD"
	s.v.lit = `"` + pick(g, []string{bad + plain, plain + bad, plain + bad + plain}) + `"`
	return true
}

// mutKeyedArray replaces a value by an array of objects with an "id" member, as
// array_key matches them. About one array in five has an element without a valid key:
// an id repeated, missing, or not a scalar, or an element that is no object.
func mutKeyedArray(g *gen, s site) bool {
	if s.depth > maxDepth {
		return false
	}
	*s.v = *g.keyedArray(s.depth)
	return true
}

func (g *gen) keyedArray(depth int) *value {
	v := &value{kind: kindArray, elems: []*value{}}
	id := g.intn(5)
	for range g.intn(maxElems + 1) {
		id += 1 + g.intn(3)
		el := &value{kind: kindObject, members: []member{{key: "id", val: &value{kind: kindNumber, text: fmt.Sprint(id)}}}}
		for range g.intn(3) {
			el.members = append(el.members, member{key: g.newKey(el), val: g.value(depth + 2)})
		}
		g.rng.Shuffle(len(el.members), func(i, j int) { el.members[i], el.members[j] = el.members[j], el.members[i] })
		v.elems = append(v.elems, el)
	}
	if len(v.elems) > 0 && g.chance(0.2) {
		g.spoilKey(v)
	}
	return v
}

// spoilKey leaves one element of a keyed array without a valid key.
func (g *gen) spoilKey(v *value) {
	i := g.intn(len(v.elems))
	el := v.elems[i]
	switch g.intn(4) {
	case 0:
		v.elems = slices.Insert(v.elems, g.where(len(v.elems)), el.clone())
	case 1:
		el.members = slices.DeleteFunc(el.members, func(m member) bool { return m.key == "id" })
	case 2:
		el.members = append(el.members, member{key: "id", val: &value{kind: kindArray, elems: []*value{}}})
	default:
		v.elems[i] = g.scalar()
	}
}

// mutNest puts a value in an array, or replaces it by nested arrays.
func mutNest(g *gen, s site) bool {
	if s.depth > maxDepth {
		return false
	}
	if g.chance(0.5) {
		*s.v = value{kind: kindArray, elems: []*value{s.v.clone()}}
		return true
	}
	v := value{kind: kindArray, elems: []*value{}}
	for range 1 + g.intn(3) {
		v.elems = append(v.elems, g.array(maxDepth-1))
	}
	*s.v = v
	return true
}
