package diff

import (
	"fmt"
	"slices"
)

// mergeNode is one level of a merge patch being built: either a leaf that sets a value
// (or, with val nil, deletes a member), or an object of further levels. Most objects of a
// merge patch hold one member: it is kept inline until a second comes.
type mergeNode struct {
	leaf bool
	val  *node
	name string     // of the only level under m, while there is one
	only *mergeNode // the only level under m
	kids map[string]*mergeNode
}

// kid returns the level named name under m, or nil.
func (m *mergeNode) kid(name string) *mergeNode {
	switch {
	case m.kids != nil:
		return m.kids[name]
	case m.only != nil && m.name == name:
		return m.only
	}
	return nil
}

// addKid adds k under m as name, which m does not hold yet.
func (m *mergeNode) addKid(name string, k *mergeNode) {
	switch {
	case m.kids != nil:
		m.kids[name] = k
	case m.only == nil:
		m.name, m.only = name, k
	default:
		m.kids = map[string]*mergeNode{m.name: m.only, name: k}
		m.name, m.only = "", nil
	}
}

// touch is where one operation changes the document: its path, and whether the
// location certainly held no object before it: an add (this package adds only what was
// absent) or the replace of a value of another kind by an object.
type touch struct {
	at      pointer
	creates bool
}

// mergePatch returns the RFC 7386 merge patch with the effect of the operations that
// touched the given paths, in order, and produced doc. Each touched member takes its
// value in doc (or is deleted); an array or scalar on the way is replaced whole. It
// reports false when a merge patch cannot express the change: the root is or becomes an
// array or a scalar, a member's new value is null, or an object is replaced whole where
// the target may still hold an object.
func mergePatch(touches []touch, doc *node) ([]byte, bool) {
	return appendMergePatch(nil, touches, doc)
}

// appendMergePatch is mergePatch appending to dst, which it returns unchanged when it
// reports false.
func appendMergePatch(dst []byte, touches []touch, doc *node) ([]byte, bool) {
	if !objectToObject(touches, doc) {
		return dst, false
	}
	// The members set at the top are at most those touched, and mostly the document's.
	b := mergeBuilder{root: mergeNode{kids: make(map[string]*mergeNode, min(len(touches), len(doc.kids)))}}
	for _, t := range touches {
		if b.covered(t.at) {
			// A value is set at or above t.at already: t.at resolves in doc at or
			// below it, so set would change nothing. A catch-up over many versions
			// touches the same members again and again.
			continue
		}
		at, val := resolve(doc, t.at)
		if !b.set(at, val) || val == nil {
			continue
		}
		if val.kind == kindNull || carriesNullMember(val) {
			return dst, false
		}
		if val.kind == kindObject && !createdWhole(touches, at) {
			return dst, false
		}
	}
	return b.root.appendTo(dst), true
}

// mergeBuilder builds a merge patch's levels, allocating them in blocks: a catch-up over
// many versions sets thousands of members.
type mergeBuilder struct {
	root mergeNode
	free []mergeNode
}

// mergeBlock is how many levels a mergeBuilder allocates at once.
const mergeBlock = 256

func (b *mergeBuilder) newNode() *mergeNode {
	if len(b.free) == 0 {
		b.free = make([]mergeNode, mergeBlock)
	}
	n := &b.free[0]
	b.free = b.free[1:]
	return n
}

// objectToObject reports whether the change took an object to the object doc: a merge
// patch is an object, and only merging an object into an object is read alike by every
// applier (RFC 7386 turns any other target into {} first; many appliers do not, or read an
// array patch as RFC 6902 operations). The walker replaces the root only when its kind
// changes or it is a scalar, so a touch at the root means the root was not an object, or
// is a patch made elsewhere that replaced it whole: either way no merge patch is sent.
func objectToObject(touches []touch, doc *node) bool {
	if doc.kind != kindObject {
		return false
	}
	for _, t := range touches {
		if len(t.at) == 0 {
			return false
		}
	}
	return true
}

// resolve follows p through doc's objects. It returns the prefix of p that a merge patch
// sets, and the value there: nil when that member is gone, or the array or scalar that
// stops the walk, replaced whole.
func resolve(doc *node, p pointer) (pointer, *node) {
	cur := doc
	for i, tok := range p {
		if cur.kind != kindObject {
			return p[:i], cur
		}
		if cur = cur.member(tok); cur == nil {
			return p[:i+1], nil
		}
	}
	return p, cur
}

// covered reports whether a value is set whole at or above p.
func (b *mergeBuilder) covered(p pointer) bool {
	m := &b.root
	for _, tok := range p {
		if m = m.kid(tok); m == nil {
			return false
		}
		if m.leaf {
			return true
		}
	}
	return false
}

// set records that at takes val, and reports whether that made a new leaf.
func (b *mergeBuilder) set(at pointer, val *node) bool {
	m := &b.root
	for _, tok := range at {
		if m.leaf {
			return false // an enclosing value is set whole already
		}
		next := m.kid(tok)
		if next == nil {
			next = b.newNode()
			m.addKid(tok, next)
		}
		m = next
	}
	if m.leaf && m.val == val {
		return false
	}
	*m = mergeNode{leaf: true, val: val}
	return true
}

// createdWhole reports whether the first of touches to reach at, or anything above or
// below it, created the value at or above it: then no object was there before, and a
// merge patch may set a whole object there without leaving stale members behind.
func createdWhole(touches []touch, at pointer) bool {
	for _, t := range touches {
		switch {
		case at.hasPrefix(t.at):
			return t.creates
		case t.at.hasPrefix(at):
			return false
		}
	}
	return false
}

func (m *mergeNode) appendTo(dst []byte) []byte {
	if m.leaf {
		if m.val == nil {
			return append(dst, "null"...)
		}
		return appendJSON(dst, m.val)
	}
	if m.only != nil {
		dst = append(quote(append(dst, '{'), m.name), ':')
		return append(m.only.appendTo(dst), '}')
	}
	keys := make([]string, 0, len(m.kids))
	for k := range m.kids {
		keys = append(keys, k)
	}
	slices.Sort(keys)
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

// touchesOf returns where ops change the document.
func touchesOf(ops []op) ([]touch, error) {
	out := make([]touch, 0, len(ops))
	for _, o := range ops {
		if o.kind == opMove {
			from, err := parsePointer(o.from)
			if err != nil {
				return nil, err
			}
			out = append(out, touch{at: from})
		}
		at, err := parsePointer(o.path)
		if err != nil {
			return nil, err
		}
		creates := o.kind == opAdd || o.kind == opReplace && o.value != nil && o.value.kind == kindObject
		out = append(out, touch{at: at, creates: creates})
	}
	return out, nil
}

// MergeFromPatch returns the RFC 7386 merge patch that has the effect of patch, an RFC
// 6902 patch whose result is to, on the version patch applies to. The merge patch is
// always a JSON object. It reports false when a merge patch cannot express that change,
// among them every change where the root is or becomes an array or a scalar.
func MergeFromPatch(patch []byte, to *Version) ([]byte, bool, error) {
	ops, err := parseOps(patch)
	if err != nil {
		return nil, false, err
	}
	touches, err := touchesOf(ops)
	if err != nil {
		return nil, false, err
	}
	merge, ok := mergePatch(touches, to.doc)
	return merge, ok, nil
}

// parseOps reads the kind and paths of each operation of an RFC 6902 patch.
func parseOps(patch []byte) ([]op, error) {
	var p parser
	doc, err := p.parse(patch, nil, prior{})
	if err != nil {
		return nil, err
	}
	if doc.kind != kindArray {
		return nil, fmt.Errorf("a JSON Patch is an array")
	}
	ops := make([]op, 0, len(doc.kids))
	for _, o := range doc.kids {
		kind, path, from := o.child("op"), o.child("path"), o.child("from")
		if o.kind != kindObject || kind == nil || path == nil {
			return nil, fmt.Errorf("a JSON Patch operation needs op and path")
		}
		var k opKind
		switch kind.text {
		case "test":
			continue
		case "add":
			k = opAdd
		case "remove":
			k = opRemove
		case "move":
			k = opMove
		default: // replace, copy: something is written over what was there
			k = opReplace
		}
		x := op{kind: k, path: path.text, value: o.child("value")}
		if k == opMove && from != nil {
			x.from = from.text
		}
		ops = append(ops, x)
	}
	return ops, nil
}
