package diff

import (
	"slices"
	"strings"
)

// A TouchSet is where a run of consecutive changes touched the document, kept so that
// the merge patch over the run is built again for each new version as the run grows by
// one change, instead of walking all its changes again. It holds, for each path touched,
// only what the merge patch needs: whether some change touched it, whether the first
// change to touch it or anything above or below it created the value there, and nothing
// below a path touched before: a value set there is set whole. Its merge patch is the one
// MergeFromTouches returns for the run's changes, byte for byte, and is refused in the
// same cases. The zero TouchSet is a run of no changes. It is not safe for concurrent use.
type TouchSet struct {
	root  setNode
	count uint64    // touches added, the order of the next
	free  []setNode // levels allocated and not used yet
	nodes int       // levels allocated below the root
	text  int       // bytes of their names
	// last is the merge patch built last, for the version the run reached then: the
	// members of the root no change touched since are copied from it.
	last  []byte
	spans []span // scratch: where each member of the root goes in the patch being built
}

// setNode is one level of a TouchSet: a path touched, or a step on the way to one.
type setNode struct {
	name string
	kids []*setNode // by name; none below a level touched itself
	// first is the order, counted from 1, of the first touch of this path itself, 0 when
	// only paths below it were touched; creates is whether that touch created the value.
	first uint64
	// firstBelow is the order of the first touch of this path or of one below it.
	firstBelow uint64
	// At the root's levels: where the member lies in last, and whether a change touched
	// it since last was built.
	in      span
	creates bool
	dirty   bool
}

// span is where a member ("name":value) lies in a merge patch.
type span struct{ start, end int }

const spanSize = 16 // bytes of a span

// setNodeOverhead estimates the bytes a level holds besides its name's text: the node
// (80 bytes), and its share of its parent's slice of kids.
const setNodeOverhead = 96

// Add adds the touches of the run's next change.
func (s *TouchSet) Add(t Touches) {
	for _, x := range t.list {
		s.count++
		s.add(x, s.count)
	}
}

// add adds touch x, of order ord.
func (s *TouchSet) add(x touch, ord uint64) {
	m := &s.root
	if m.first != 0 {
		return // the document was replaced whole: nothing can be merged any more
	}
	setBelow(m, ord)
	for i, tok := range x.at {
		next := m.kid(tok)
		if next == nil {
			next = s.addKid(m, tok)
		}
		if i == 0 {
			next.dirty = true // its value changed: it is built again
		}
		if next.first != 0 {
			// A value is set whole at or above x.at from an earlier touch: x changes
			// nothing else in the merge patch, and is not the first to reach any path.
			return
		}
		m = next
		setBelow(m, ord)
	}
	m.first, m.creates = ord, x.creates
	// Below a path touched, the merge patch sets the value whole: the paths touched
	// under it before matter only for which touch came first, kept in firstBelow.
	m.kids = nil
}

// setBelow records that a touch of order ord reached m or a path below it.
func setBelow(m *setNode, ord uint64) {
	if m.firstBelow == 0 {
		m.firstBelow = ord
	}
}

// kid returns the level named name under m, or nil.
func (m *setNode) kid(name string) *setNode {
	if i, ok := m.find(name); ok {
		return m.kids[i]
	}
	return nil
}

func (m *setNode) find(name string) (int, bool) {
	return slices.BinarySearchFunc(m.kids, name, func(k *setNode, name string) int {
		return strings.Compare(k.name, name)
	})
}

// setBlock is how many levels a TouchSet allocates at once: a catch-up over many
// versions touches thousands of paths.
const setBlock = 64

// addKid adds a level named name under m, which holds none yet, and returns it.
func (s *TouchSet) addKid(m *setNode, name string) *setNode {
	if len(s.free) == 0 {
		s.free = make([]setNode, setBlock)
		s.nodes += setBlock
	}
	k := &s.free[0]
	s.free = s.free[1:]
	k.name, k.dirty = name, true
	i, _ := m.find(name)
	m.kids = slices.Insert(m.kids, i, k)
	s.text += len(name)
	return k
}

// Size estimates the bytes s holds, for memory budgets: every level it allocated, those
// let go under a path touched later included, as their block may still hold them, and
// the merge patch built last.
func (s *TouchSet) Size() int {
	return s.nodes*setNodeOverhead + s.text + cap(s.last) + cap(s.spans)*spanSize
}

// AppendMerge appends to dst the RFC 7386 merge patch that takes the version before the
// run to version to, which must be the result of the run's last change: the merge patch
// MergeFromTouches returns for the run's changes. It reports false in the same cases,
// returning dst as it was. Each touched member takes its value in to's document, kept
// whole; the members of the root that no change touched since the last patch it built
// are copied from that patch, built for the version the run reached then: their values
// are the same.
func (s *TouchSet) AppendMerge(dst []byte, to *Version) ([]byte, bool) {
	if to.doc.kind != kindObject || s.root.first != 0 {
		return dst, false // see objectToObject
	}
	base := len(dst)
	out, ok := s.appendRoot(dst, to.doc)
	if !ok {
		return dst, false
	}
	for i, k := range s.root.kids {
		k.in, k.dirty = s.spans[i], false
	}
	s.last = append(s.last[:0], out[base:]...)
	return out, true
}

// appendRoot appends the merge patch object of the root, whose value in the target is
// the object obj, and records in s.spans where each member goes, relative to the start.
// Members not dirty are copied from s.last, consecutive ones at once.
func (s *TouchSet) appendRoot(dst []byte, obj *node) ([]byte, bool) {
	base := len(dst)
	dst = append(dst, '{')
	kids := s.root.kids
	s.spans = slices.Grow(s.spans[:0], len(kids))[:len(kids)]
	lo := 0 // obj's keys and the kids are both sorted: each search starts past the last
	for i := 0; i < len(kids); {
		if i > 0 {
			dst = append(dst, ',')
		}
		if j := s.cleanRun(i); j > i {
			delta := len(dst) - base - kids[i].in.start
			dst = append(dst, s.last[kids[i].in.start:kids[j-1].in.end]...)
			for ; i < j; i++ {
				s.spans[i] = span{kids[i].in.start + delta, kids[i].in.end + delta}
			}
			continue
		}
		start := len(dst) - base
		var ok bool
		if dst, lo, ok = appendSetKid(dst, kids[i], obj, lo); !ok {
			return dst, false
		}
		s.spans[i] = span{start, len(dst) - base}
		i++
	}
	return append(dst, '}'), true
}

// cleanRun returns the end of the run of members of the root from i that are copied
// from s.last: built then, and touched by no change since.
func (s *TouchSet) cleanRun(i int) int {
	kids := s.root.kids
	for i < len(kids) && !kids[i].dirty && s.last != nil {
		i++
	}
	return i
}

// appendSetLevel appends the merge patch object of level m, whose value in the target
// is the object obj: one member for each level under m. It reports false when a merge
// patch cannot express the change.
func appendSetLevel(dst []byte, m *setNode, obj *node) ([]byte, bool) {
	dst = append(dst, '{')
	lo := 0 // obj's keys and m's kids are both sorted: each search starts past the last
	for i, k := range m.kids {
		if i > 0 {
			dst = append(dst, ',')
		}
		var ok bool
		if dst, lo, ok = appendSetKid(dst, k, obj, lo); !ok {
			return dst, false
		}
	}
	return append(dst, '}'), true
}

// appendSetKid appends the member of the merge patch object for level k, whose value in
// the target is its member of obj, if any, searched from obj's key lo on. It returns
// where the next search starts, and reports false when a merge patch cannot express the
// change.
func appendSetKid(dst []byte, k *setNode, obj *node, lo int) ([]byte, int, bool) {
	dst = append(quote(dst, k.name), ':')
	var val *node
	j, found := searchFrom(obj.keys[lo:], k.name)
	if lo += j; found {
		val = obj.kids[lo]
	}
	dst, ok := appendSetMember(dst, k, val)
	return dst, lo, ok
}

// searchFrom finds name among the sorted keys, as slices.BinarySearch does. A catch-up
// over many versions mostly touches many members of an object, the next one close after
// the last: a few steps forward find it before a binary search would.
func searchFrom(keys []string, name string) (int, bool) {
	const steps = 4
	for i := range min(steps, len(keys)) {
		if keys[i] >= name {
			return i, keys[i] == name
		}
	}
	if len(keys) <= steps {
		return len(keys), false
	}
	i, found := slices.BinarySearch(keys[steps:], name)
	return i + steps, found
}

// appendSetMember appends the merge patch value of level k, whose value in the target is
// val, nil when it is gone: the value whole where k was touched itself or where the walk
// down the target stops, at an array or a scalar, and the object of the levels under k
// otherwise.
func appendSetMember(dst []byte, k *setNode, val *node) ([]byte, bool) {
	switch {
	case val == nil:
		return append(dst, "null"...), true // the member is deleted
	case val.kind == kindObject && k.first == 0:
		return appendSetLevel(dst, k, val)
	case val.kind == kindNull || carriesNullMember(val):
		return dst, false // a merge patch would delete these members instead
	case val.kind == kindObject && k.firstBelow != k.first:
		// A touch below k came before the first of k itself: an object may have been
		// there, whose members the merge patch would leave behind (see createdWhole).
		return dst, false
	case val.kind == kindObject && !k.creates:
		return dst, false
	}
	return appendJSON(dst, val), true
}
