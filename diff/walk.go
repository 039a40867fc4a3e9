package diff

import "strconv"

// walker computes the operations that turn one document into the next. Subtrees the two
// share by pointer cost nothing; arrays named by array_key are matched by key.
type walker struct {
	ops  []op
	path []byte
}

// walk adds the operations from a to b at the current path. s holds the rules that reach
// below it; key is the key member when b is an array to match by key.
func (w *walker) walk(a, b *node, s scope, key string) {
	if a == b {
		return
	}
	switch {
	case a.kind != b.kind:
		w.emit(opReplace, b)
	case b.kind == kindObject:
		w.objects(a, b, s)
	case b.kind == kindArray:
		if key == "" || !w.keyed(a, b, s, key) {
			w.arrays(a, b, s)
		}
	case a.text != b.text:
		w.emit(opReplace, b)
	}
}

func (w *walker) emit(k opKind, v *node) {
	w.ops = append(w.ops, op{kind: k, path: string(w.path), value: v})
}

// at runs fn with tok appended to the current path.
func (w *walker) at(tok string, fn func()) {
	mark := len(w.path)
	w.path = appendToken(w.path, tok)
	fn()
	w.path = w.path[:mark]
}

func (w *walker) index(i int, fn func()) { w.at(strconv.Itoa(i), fn) }

func (w *walker) objects(a, b *node, s scope) {
	i, j := 0, 0
	for i < len(a.keys) || j < len(b.keys) {
		switch {
		case j == len(b.keys) || i < len(a.keys) && a.keys[i] < b.keys[j]:
			w.at(a.keys[i], func() { w.emit(opRemove, nil) })
			i++
		case i == len(a.keys) || b.keys[j] < a.keys[i]:
			w.at(b.keys[j], func() { w.emit(opAdd, b.kids[j]) })
			j++
		default:
			sub, ended := s.member(b.keys[j])
			w.at(b.keys[j], func() { w.walk(a.kids[i], b.kids[j], sub, memberOf(ended)) })
			i++
			j++
		}
	}
}

func memberOf(r *rule) string {
	if r == nil {
		return ""
	}
	return r.member
}

// arrays compares arrays by position, after the common head and tail, so that one
// element inserted or removed anywhere is one operation.
func (w *walker) arrays(a, b *node, s scope) {
	n, m := len(a.kids), len(b.kids)
	head := 0
	for head < n && head < m && equal(a.kids[head], b.kids[head]) {
		head++
	}
	tail := 0
	for tail < n-head && tail < m-head && equal(a.kids[n-1-tail], b.kids[m-1-tail]) {
		tail++
	}
	am, bm := n-head-tail, m-head-tail
	common := min(am, bm)
	for k := head; k < head+common; k++ {
		w.element(a.kids[k], b.kids[k], s, k)
	}
	for k := head + common; k < head+bm; k++ {
		w.index(k, func() { w.emit(opAdd, b.kids[k]) })
	}
	for k := head + am - 1; k >= head+common; k-- {
		w.index(k, func() { w.emit(opRemove, nil) })
	}
}

// element walks the elements a and b at index i of the new array.
func (w *walker) element(a, b *node, s scope, i int) {
	if a == b {
		return
	}
	sub, ended := s.element(i)
	w.index(i, func() { w.walk(a, b, sub, memberOf(ended)) })
}
