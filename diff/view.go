package diff

import (
	"errors"
	"fmt"
	"slices"
)

// ErrViewSelect reports a pattern or pointer of a view that cannot be served safely, such
// as one that reaches into the rows of a filtered array.
var ErrViewSelect = errors.New("view pointer not allowed")

// RowFilter keeps the elements of the array at Array whose member Member equals Value: a
// string member by its value, a number by its text as received. Elements without that
// member, or with another kind of value, are kept for nobody.
type RowFilter struct {
	// Array is an RFC 6901 pointer, without "*" tokens, to the array in the upstream
	// document as received.
	Array  string
	Member string
	Value  string
}

// View picks one audience's part out of the versions a Tracker makes: the subtree at a
// pointer, with the rows of a filtered array kept when their member matches. It has its
// own Tracker, so its versions are derived from its own content: the same part has the
// same id wherever it is served. A view whose part did not change costs a walk down its
// pointer and a comparison of node pointers, since the Tracker's incremental parse keeps
// every unchanged subtree. It is not safe for concurrent use.
type View struct {
	sel    pointer // the view's root, relative to the tracked document
	arr    pointer // the filtered array relative to the view's root; nil when none applies
	member string
	value  string
	tr     *Tracker

	root *node   // the view's root as last fed
	rows []*node // the rows kept as last fed
	kept []*node // the rows kept now, while they are encoded
	buf  []byte
}

// NewView returns the view of documents tracked with route at sel, a pointer into the
// upstream document as received (under route.Select), filtered by f when it is not nil.
// A sel that reaches into the rows of f's array is an error wrapping ErrViewSelect: the
// filter could not hold there.
func NewView(route Options, sel string, f *RowFilter) (*View, error) {
	r, err := route.compile()
	if err != nil {
		return nil, err
	}
	abs, err := parsePointer(sel)
	if err != nil {
		return nil, fmt.Errorf("select: %w", err)
	}
	if !exactPrefix(abs, r.sel) {
		return nil, fmt.Errorf("%w: %q lies outside select %q", ErrViewSelect, sel, r.sel.String())
	}
	v := &View{sel: abs[len(r.sel):]}
	if f != nil {
		if err := v.setFilter(r.sel, abs, f); err != nil {
			return nil, err
		}
	}
	if v.tr, err = NewTracker(Options{ArrayKeys: rebaseKeys(r, v.sel)}); err != nil {
		return nil, err
	}
	return v, nil
}

// setFilter applies f to the view at abs, of a route selecting base.
func (v *View) setFilter(base, abs pointer, f *RowFilter) error {
	arr, err := parsePointer(f.Array)
	if err != nil {
		return fmt.Errorf("filter: %w", err)
	}
	if f.Member == "" {
		return errors.New("filter: the member must not be empty")
	}
	switch {
	case len(abs) > len(arr) && exactPrefix(abs, arr):
		return fmt.Errorf("%w: %q reaches into the rows of filtered array %q", ErrViewSelect, abs.String(), f.Array)
	case exactPrefix(arr, abs):
		v.arr, v.member, v.value = arr[len(abs):], f.Member, f.Value
	}
	if v.arr != nil && !exactPrefix(arr, base) {
		return fmt.Errorf("filter %q lies outside select %q", f.Array, base.String())
	}
	return nil
}

// CheckViewPattern checks a client_select pattern against the route's options and filter
// (nil for none): it must parse, lie under select, and not reach into filtered rows.
func CheckViewPattern(route Options, pattern string, f *RowFilter) error {
	r, err := route.compile()
	if err != nil {
		return err
	}
	p, err := parsePointer(pattern)
	if err != nil {
		return fmt.Errorf("client_select: %w", err)
	}
	if !exactPrefix(p, r.sel) || slices.Contains(p[:len(r.sel)], wildcard) {
		return fmt.Errorf("client_select %q lies outside select %q", pattern, r.sel.String())
	}
	if f == nil {
		return nil
	}
	arr, err := parsePointer(f.Array)
	if err != nil {
		return fmt.Errorf("filter: %w", err)
	}
	if len(p) > len(arr) && p.hasPrefix(arr) {
		return fmt.Errorf("%w: client_select %q may reach into the rows of filtered array %q", ErrViewSelect, pattern, f.Array)
	}
	return nil
}

// CheckFilter checks a filter's array pointer against the route's options: it must parse,
// hold no "*" token and lie under select.
func CheckFilter(route Options, f RowFilter) error {
	r, err := route.compile()
	if err != nil {
		return err
	}
	arr, err := parsePointer(f.Array)
	if err != nil {
		return fmt.Errorf("filter: %w", err)
	}
	if slices.Contains(arr, wildcard) {
		return fmt.Errorf("filter %q: the array pointer may not hold a * token", f.Array)
	}
	if !exactPrefix(arr, r.sel) {
		return fmt.Errorf("filter %q lies outside select %q", f.Array, r.sel.String())
	}
	if f.Member == "" {
		return errors.New("filter: the member must not be empty")
	}
	return nil
}

// MatchPattern reports whether the concrete pointer sel matches pattern, in which a "*"
// token matches any one token. Both must parse.
func MatchPattern(pattern, sel string) bool {
	p, err := parsePointer(pattern)
	if err != nil {
		return false
	}
	s, err := parsePointer(sel)
	if err != nil || len(s) != len(p) {
		return false
	}
	for i, tok := range p {
		if tok != wildcard && tok != s[i] {
			return false
		}
	}
	return true
}

// exactPrefix reports whether p lies at or under q, token for token: a "*" in a concrete
// pointer is a member named "*".
func exactPrefix(p, q pointer) bool {
	return len(p) >= len(q) && slices.Equal(p[:len(q)], q)
}

// rebaseKeys returns the route's array keys that apply within the view at sel, as
// pointers relative to the view's root.
func rebaseKeys(r rules, sel pointer) []ArrayKey {
	var out []ArrayKey
	for _, k := range r.keys {
		if len(k.at) < len(sel) || !k.at[:len(sel)].hasPrefix(sel) {
			continue
		}
		out = append(out, ArrayKey{Pointer: k.at[len(sel):].String(), Member: k.member})
	}
	return out
}

// Current returns the view's current version, or nil before its first.
func (v *View) Current() *Version { return v.tr.Current() }

// Update takes the tracked document's newest version and returns the view's change, if
// its part changed. rows is shared by the views of one tracked document, so that the rows
// of a filtered array are grouped once per version however many views read them. A view
// whose pointer does not resolve, or whose filtered array is not an array, is an error
// wrapping ErrSelect, and its current version is kept.
func (v *View) Update(doc *Version, rows *RowIndex) (Change, bool, error) {
	if doc.doc == nil { // a version made elsewhere, such as read back from a store
		parsed, err := Parse(doc.JSON)
		if err != nil {
			return Change{}, false, err
		}
		doc = parsed
	}
	root := nodeAt(doc.doc, v.sel)
	if root == nil {
		return Change{}, false, fmt.Errorf("%w: %s", ErrSelect, v.sel)
	}
	if v.arr == nil {
		if root == v.root && v.tr.cur != nil {
			return Change{}, false, nil
		}
		v.buf = appendJSON(v.buf[:0], root)
		return v.feed(root, nil)
	}
	arr := nodeAt(root, v.arr)
	if arr == nil || arr.kind != kindArray {
		return Change{}, false, fmt.Errorf("%w: filtered array %s is not an array", ErrSelect, v.arr)
	}
	mine := rows.of(arr, v.member)[v.value]
	if v.tr.cur != nil && sameRows(arr, mine, v.rows) && sameOutside(v.root, root, v.arr) {
		v.root = root
		return Change{}, false, nil
	}
	v.kept = v.kept[:0]
	for _, i := range mine {
		v.kept = append(v.kept, arr.kids[i])
	}
	v.buf = encodeFiltered(v.buf[:0], root, v.arr, v.kept)
	return v.feed(root, v.kept)
}

// sameRows reports whether the rows of arr at positions at are the nodes rows.
func sameRows(arr *node, at []int, rows []*node) bool {
	if len(at) != len(rows) {
		return false
	}
	for j, i := range at {
		if arr.kids[i] != rows[j] {
			return false
		}
	}
	return true
}

// feed passes the view's bytes in v.buf to its tracker.
func (v *View) feed(root *node, rows []*node) (Change, bool, error) {
	ch, changed, err := v.tr.Update(v.buf)
	if err != nil {
		return Change{}, false, err
	}
	v.root, v.rows = root, append(v.rows[:0], rows...)
	return ch, changed, nil
}

// nodeAt returns the node at p under n, or nil.
func nodeAt(n *node, p pointer) *node {
	for _, tok := range p {
		if n = n.child(tok); n == nil {
			return nil
		}
	}
	return n
}

// sameOutside reports whether a and b hold the same nodes everywhere except inside the
// array at path: each container on the way holds the very same other children. a may be
// nil. A false answer only costs an encoding and a byte comparison.
func sameOutside(a, b *node, path pointer) bool {
	if a == b || len(path) == 0 {
		return a != nil
	}
	if a == nil || a.kind != b.kind || len(a.kids) != len(b.kids) || !slices.Equal(a.keys, b.keys) {
		return false
	}
	at := childIndex(b, path[0])
	if at < 0 {
		return false
	}
	for i, kid := range a.kids {
		if i != at && kid != b.kids[i] {
			return false
		}
	}
	return sameOutside(a.kids[at], b.kids[at], path[1:])
}

// childIndex returns the index of the member or element tok of a container, or -1.
func childIndex(n *node, tok string) int {
	switch n.kind {
	case kindObject:
		if i, ok := slices.BinarySearch(n.keys, tok); ok {
			return i
		}
	case kindArray:
		if i, ok := arrayIndex(tok); ok && i < len(n.kids) {
			return i
		}
	}
	return -1
}

// encodeFiltered appends the canonical encoding of n with the array at path holding rows
// only.
func encodeFiltered(dst []byte, n *node, path pointer, rows []*node) []byte {
	if len(path) == 0 {
		dst = append(dst, '[')
		for i, r := range rows {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSON(dst, r)
		}
		return append(dst, ']')
	}
	at := childIndex(n, path[0])
	open, closing := byte('['), byte(']')
	if n.kind == kindObject {
		open, closing = '{', '}'
	}
	dst = append(dst, open)
	for i, kid := range n.kids {
		if i > 0 {
			dst = append(dst, ',')
		}
		if n.kind == kindObject {
			dst = append(quote(dst, n.keys[i]), ':')
		}
		if i == at {
			dst = encodeFiltered(dst, kid, path[1:], rows)
		} else {
			dst = appendJSON(dst, kid)
		}
	}
	return append(dst, closing)
}

// RowIndex groups the rows of a filtered array by the value of their member, for every
// view that filters it: it is built once for all views, and kept from one version of the
// array to the next while the array keeps its length and every changed row its value, as
// when one row changes in place; then a change costs a pointer comparison per row. The
// zero RowIndex is ready to use; it is not safe for concurrent use.
type RowIndex struct {
	arr    *node
	member string
	rows   map[string][]int // row positions by value
}

// of returns the positions of the rows of arr by the value of member.
func (x *RowIndex) of(arr *node, member string) map[string][]int {
	if x.rows != nil && x.member == member && (x.arr == arr || x.sameGroups(arr)) {
		x.arr = arr
		return x.rows
	}
	x.arr, x.member = arr, member
	x.rows = make(map[string][]int, len(x.rows))
	for i, row := range arr.kids {
		if k, ok := rowValue(row, member); ok {
			x.rows[k] = append(x.rows[k], i)
		}
	}
	return x.rows
}

// sameGroups reports whether arr groups as the array last grouped: as many rows, and each
// row that changed has the same value.
func (x *RowIndex) sameGroups(arr *node) bool {
	old := x.arr.kids
	if len(old) != len(arr.kids) {
		return false
	}
	for i, row := range arr.kids {
		if row == old[i] {
			continue
		}
		a, okA := rowValue(old[i], x.member)
		b, okB := rowValue(row, x.member)
		if okA != okB || a != b {
			return false
		}
	}
	return true
}

// rowValue returns the value of a row's member by which it is filtered: a string's value
// or a number's text. Rows that are not objects, lack the member or hold another kind of
// value there have none.
func rowValue(row *node, member string) (string, bool) {
	if row.kind != kindObject {
		return "", false
	}
	m := row.member(member)
	if m == nil || m.kind != kindString && m.kind != kindNumber {
		return "", false
	}
	return m.text, true
}
