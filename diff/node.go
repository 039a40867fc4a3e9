package diff

import "sort"

// kind is the JSON type of a node.
type kind uint8

const (
	kindNull kind = iota
	kindFalse
	kindTrue
	kindNumber
	kindString
	kindObject
	kindArray
)

// node is one value of a parsed document. Documents share unchanged nodes with the
// version before them, so a node is never modified once its version is published, except
// for the fields only the Tracker reads (off, n, coff, cn, gen, prev).
type node struct {
	kind kind
	text string   // a string's value or a number's text, kept exactly as received
	keys []string // an object's member names, sorted; parallel to kids
	kids []*node  // an object's member values or an array's elements

	off, n   int    // the value's raw bytes, relative to the parent's raw bytes
	coff, cn int    // its canonical encoding, relative to the parent's
	gen      uint32 // the parse that last placed this node, so it is placed only once
	lent     uint32 // the parse that took a child of this node into the new document
	prev     []byte // while encoding a reused node: its canonical bytes in the last version
}

// member returns the value of the object member name, or nil; n may be nil.
func (n *node) member(name string) *node {
	if n == nil {
		return nil
	}
	i := sort.SearchStrings(n.keys, name)
	if i < len(n.keys) && n.keys[i] == name {
		return n.kids[i]
	}
	return nil
}

// child returns the member or element tok of a container, or nil.
func (n *node) child(tok string) *node {
	switch n.kind {
	case kindObject:
		return n.member(tok)
	case kindArray:
		if i, ok := arrayIndex(tok); ok && i < len(n.kids) {
			return n.kids[i]
		}
	}
	return nil
}

// equal reports whether a and b are the same JSON value; numbers compare by their text.
func equal(a, b *node) bool {
	if a == b {
		return true
	}
	if a.kind != b.kind || a.text != b.text || len(a.kids) != len(b.kids) {
		return false
	}
	for i, k := range a.keys {
		if b.keys[i] != k {
			return false
		}
	}
	for i, kid := range a.kids {
		if !equal(kid, b.kids[i]) {
			return false
		}
	}
	return true
}

// carriesNullMember reports whether some object within v, however deep, has a member
// whose value is null. RFC 7386 reads such a member in a merge patch as a deletion, and
// appliers differ on whether that holds inside arrays too, so a merge patch never
// carries one.
func carriesNullMember(v *node) bool {
	for _, kid := range v.kids {
		if v.kind == kindObject && kid.kind == kindNull || carriesNullMember(kid) {
			return true
		}
	}
	return false
}
