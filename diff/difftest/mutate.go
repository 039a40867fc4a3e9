package difftest

import (
	"fmt"
	"strings"
)

// site is one value of a document, with its JSON Pointer and depth.
type site struct {
	v     *value
	path  string
	depth int
}

// sites lists every value of the document v, the root first.
func sites(v *value) []site {
	var out []site
	var walk func(v *value, path string, depth int)
	walk = func(v *value, path string, depth int) {
		out = append(out, site{v: v, path: path, depth: depth})
		for i, e := range v.elems {
			walk(e, fmt.Sprintf("%s/%d", path, i), depth+1)
		}
		for _, m := range v.members {
			walk(m.val, path+"/"+escapeToken(m.key), depth+1)
		}
	}
	walk(v, "", 0)
	return out
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
	all := sites(v)
	for {
		s := all[0]
		if !g.chance(0.1) {
			s = pick(g, all)
		}
		m := pick(g, mutations)
		if m.apply(g, s) {
			return fmt.Sprintf("%s %q", m.name, s.path)
		}
	}
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
