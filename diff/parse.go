package diff

import (
	"bytes"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
)

// maxDepth bounds how deeply a document may nest; deeper ones are refused as not JSON.
const maxDepth = 1000

var decodeOptions = []jsontext.Options{
	// Like browsers' JSON.parse: the last of duplicate names wins, and invalid UTF-8
	// becomes U+FFFD.
	jsontext.AllowDuplicateNames(true),
	jsontext.AllowInvalidUTF8(true),
}

// parser builds documents. Given the previous document and the bytes it was parsed from,
// it reuses every subtree whose bytes did not change, so that a change costs a scan of
// the body and a parse of what changed, and the diff can skip shared subtrees by
// pointer.
type parser struct {
	gen    uint32
	ignore ruleSet
	decs   []*jsontext.Decoder // one per nesting level being parsed
	depth  int
	// lenders are the previous containers whose children the values being parsed may
	// take, outermost first: one per enclosing value that has a prior.
	lenders []*node
}

// prior is the previous version of a value: its node, raw bytes and canonical encoding.
type prior struct {
	n          *node
	raw, canon []byte
}

// priorKid returns the prior of kid, a child of p.n, unless this parse placed it already.
func (p *parser) priorKid(pr prior, kid *node) prior {
	if kid == nil || kid.gen == p.gen {
		return prior{}
	}
	return prior{n: kid, raw: pr.raw[kid.off : kid.off+kid.n], canon: pr.canon[kid.coff : kid.coff+kid.cn]}
}

// parse parses the part of body that sel points to, against the previous version.
func (p *parser) parse(body []byte, sel pointer, pr prior) (*node, error) {
	p.gen++
	p.depth = 0
	start, end, err := p.locate(body, sel)
	if err != nil {
		return nil, err
	}
	n, err := p.value(body[start:end], p.ignore, pr)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotJSON, err)
	}
	n.off, n.n = start, end-start
	return n, nil
}

// locate checks that body is one JSON value and returns the span of the value sel points
// to.
func (p *parser) locate(body []byte, sel pointer) (int, int, error) {
	d := p.decoder(body)
	defer p.release()
	start, end, err := find(d, sel)
	if err != nil {
		return 0, 0, fmt.Errorf("%w: %v", ErrNotJSON, err)
	}
	if _, err := d.ReadToken(); err != io.EOF {
		return 0, 0, fmt.Errorf("%w: data after the document", ErrNotJSON)
	}
	if start < 0 {
		return 0, 0, fmt.Errorf("%w: %s", ErrSelect, sel)
	}
	return start, end, nil
}

// find reads the next value from d whole and returns the span of the value that toks
// points to within it, or -1 when there is none.
func find(d *jsontext.Decoder, toks pointer) (int, int, error) {
	if len(toks) == 0 {
		v, err := d.ReadValue()
		end := int(d.InputOffset())
		return end - len(v), end, err
	}
	switch d.PeekKind() {
	case '{':
		return findMember(d, toks)
	case '[':
		return findElement(d, toks)
	}
	return -1, -1, d.SkipValue()
}

func findMember(d *jsontext.Decoder, toks pointer) (int, int, error) {
	start, end := -1, -1
	if _, err := d.ReadToken(); err != nil {
		return 0, 0, err
	}
	for d.PeekKind() != '}' {
		name, err := d.ReadToken()
		if err != nil {
			return 0, 0, err
		}
		if name.String() != toks[0] {
			if err := d.SkipValue(); err != nil {
				return 0, 0, err
			}
			continue
		}
		if start, end, err = find(d, toks[1:]); err != nil {
			return 0, 0, err
		}
	}
	_, err := d.ReadToken()
	return start, end, err
}

func findElement(d *jsontext.Decoder, toks pointer) (int, int, error) {
	start, end := -1, -1
	want, ok := arrayIndex(toks[0])
	if _, err := d.ReadToken(); err != nil {
		return 0, 0, err
	}
	var err error
	for i := 0; d.PeekKind() != ']'; i++ {
		if ok && i == want {
			start, end, err = find(d, toks[1:])
		} else {
			err = d.SkipValue()
		}
		if err != nil {
			return 0, 0, err
		}
	}
	_, err = d.ReadToken()
	return start, end, err
}

func (p *parser) decoder(raw []byte) *jsontext.Decoder {
	if p.depth == len(p.decs) {
		p.decs = append(p.decs, jsontext.NewDecoder(bytes.NewReader(nil)))
	}
	d := p.decs[p.depth]
	d.Reset(bytes.NewBuffer(raw), decodeOptions...)
	p.depth++
	return d
}

func (p *parser) release() { p.depth-- }

// value parses raw, one complete and valid JSON value.
func (p *parser) value(raw []byte, ign ruleSet, pr prior) (*node, error) {
	if pr.n != nil && pr.n.lent != p.gen && bytes.Equal(raw, pr.raw) {
		return p.reuse(pr), nil
	}
	if p.depth >= maxDepth {
		return nil, errTooDeep
	}
	switch raw[0] {
	case '{':
		return p.object(raw, ign, sameKind(pr, kindObject))
	case '[':
		return p.array(raw, ign, sameKind(pr, kindArray))
	}
	return p.scalar(raw), nil
}

func sameKind(pr prior, k kind) prior {
	if pr.n == nil || pr.n.kind != k {
		return prior{}
	}
	return pr
}

// reuse places the previous node, unchanged, in the new document.
func (p *parser) reuse(pr prior) *node {
	pr.n.gen = p.gen
	pr.n.prev = pr.canon
	p.lend()
	return pr.n
}

// lend marks the previous containers a reused node was taken from: each now lacks a
// child, so none may be reused whole in this document. A node placed in two parents
// would keep its offsets relative to one of them only, and the next version would copy
// bytes from the wrong place. The innermost lenders are marked first, so the walk stops
// at the first one marked already.
func (p *parser) lend() {
	for i := len(p.lenders) - 1; i >= 0 && p.lenders[i].lent != p.gen; i-- {
		p.lenders[i].lent = p.gen
	}
}

// borrowFrom makes pr.n, if any, the lender of the children of the value being parsed,
// until the returned function is called.
func (p *parser) borrowFrom(pr prior) func() {
	if pr.n == nil {
		return func() {}
	}
	p.lenders = append(p.lenders, pr.n)
	return func() { p.lenders = p.lenders[:len(p.lenders)-1] }
}

func (p *parser) scalar(raw []byte) *node {
	n := &node{gen: p.gen}
	switch raw[0] {
	case 'n':
		n.kind = kindNull
	case 't':
		n.kind = kindTrue
	case 'f':
		n.kind = kindFalse
	case '"':
		n.kind, n.text = kindString, unquote(raw)
	default:
		n.kind, n.text = kindNumber, string(raw)
	}
	return n
}

// unquote returns the value of a valid JSON string literal, invalid UTF-8 replaced.
func unquote(raw []byte) string {
	inner := raw[1 : len(raw)-1]
	if bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
		return string(inner)
	}
	s, _ := jsontext.AppendUnquote(nil, raw) // invalid UTF-8 is replaced, and reported
	return string(s)
}

// validName returns an object member name with invalid UTF-8 replaced.
func validName(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// hashSeed keys the index of an array's previous elements by their bytes.
var hashSeed = maphash.MakeSeed()

var (
	errMalformed = errors.New("malformed value")
	errTooDeep   = fmt.Errorf("nested deeper than %d levels", maxDepth)
)

func (p *parser) object(raw []byte, ign ruleSet, pr prior) (*node, error) {
	d := p.decoder(raw)
	defer p.release()
	if _, err := d.ReadToken(); err != nil {
		return nil, err
	}
	defer p.borrowFrom(pr)()
	n := &node{kind: kindObject, gen: p.gen}
	for d.PeekKind() != '}' {
		tok, err := d.ReadToken()
		if err != nil {
			return nil, err
		}
		name := validName(tok.String())
		sub, drop := ign.member(name)
		if drop != nil {
			if err := d.SkipValue(); err != nil {
				return nil, err
			}
			continue
		}
		kid, err := p.child(d, raw, sub, func([]byte) prior { return p.priorKid(pr, pr.n.member(name)) })
		if err != nil {
			return nil, err
		}
		n.keys, n.kids = append(n.keys, name), append(n.kids, kid)
	}
	sortMembers(n)
	return p.keepIfSame(n, pr), nil
}

// child parses the next value of d, whose input is raw, against the previous value that
// pick chooses for its bytes.
func (p *parser) child(d *jsontext.Decoder, raw []byte, ign ruleSet, pick func(v []byte) prior) (*node, error) {
	v, err := d.ReadValue()
	if err != nil {
		return nil, err
	}
	end := int(d.InputOffset())
	start := end - len(v)
	if start < 0 || end > len(raw) {
		return nil, errMalformed
	}
	kid, err := p.value(raw[start:end], ign, pick(raw[start:end]))
	if err != nil {
		return nil, err
	}
	kid.off, kid.n = start, end-start
	return kid, nil
}

// sortMembers orders an object's members by name; of duplicate names the last wins.
func sortMembers(n *node) {
	if slices.IsSorted(n.keys) && !hasAdjacentDup(n.keys) {
		return
	}
	idx := make([]int, len(n.keys))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return strings.Compare(n.keys[a], n.keys[b]) })
	keys, kids := make([]string, 0, len(idx)), make([]*node, 0, len(idx))
	for j, i := range idx {
		if j+1 < len(idx) && n.keys[idx[j+1]] == n.keys[i] {
			continue
		}
		keys, kids = append(keys, n.keys[i]), append(kids, n.kids[i])
	}
	n.keys, n.kids = keys, kids
}

func hasAdjacentDup(keys []string) bool {
	for i := 1; i < len(keys); i++ {
		if keys[i] == keys[i-1] {
			return true
		}
	}
	return false
}

// keepIfSame returns the previous container instead of n when n has exactly its
// children, so unchanged parts stay shared by pointer even when ignored members changed.
func (p *parser) keepIfSame(n *node, pr prior) *node {
	old := pr.n
	if old == nil || len(old.kids) != len(n.kids) || !slices.Equal(old.keys, n.keys) {
		return n
	}
	for i, kid := range n.kids {
		if old.kids[i] != kid {
			return n
		}
	}
	for _, kid := range n.kids {
		kid.prev = nil
	}
	return p.reuse(pr)
}

func (p *parser) array(raw []byte, ign ruleSet, pr prior) (*node, error) {
	d := p.decoder(raw)
	defer p.release()
	if _, err := d.ReadToken(); err != nil {
		return nil, err
	}
	defer p.borrowFrom(pr)()
	n := &node{kind: kindArray, gen: p.gen}
	m := matcher{p: p, pr: pr, anywhere: ign.positionFree()}
	for i := 0; d.PeekKind() != ']'; i++ {
		sub, drop := ign.element(i)
		if drop != nil {
			if err := d.SkipValue(); err != nil {
				return nil, err
			}
			continue
		}
		kid, err := m.next(d, raw, sub, len(n.kids))
		if err != nil {
			return nil, err
		}
		n.kids = append(n.kids, kid)
	}
	return p.keepIfSame(n, pr), nil
}

// matcher finds the previous element for each new element of an array: the one at the
// same position, or, once elements have shifted, any unplaced one with the same bytes.
type matcher struct {
	p        *parser
	pr       prior
	anywhere bool // elements may be matched at another position
	misses   int
	index    map[uint64][]int
}

func (m *matcher) next(d *jsontext.Decoder, raw []byte, ign ruleSet, pos int) (*node, error) {
	return m.p.child(d, raw, ign, func(v []byte) prior {
		pr := m.at(pos)
		if m.anywhere && m.pr.n != nil && (pr.n == nil || !bytes.Equal(pr.raw, v)) {
			pr = m.elsewhere(pos, v, pr)
		}
		return pr
	})
}

// at returns the unplaced previous element at pos, if any.
func (m *matcher) at(pos int) prior {
	if old := m.pr.n; old != nil && pos >= 0 && pos < len(old.kids) {
		return m.p.priorKid(m.pr, old.kids[pos])
	}
	return prior{}
}

// elsewhere looks for a previous element with the bytes v: next to pos, where one
// insert or removal puts it, then, from the second miss on, anywhere. It returns
// fallback, the element at pos, when there is none.
func (m *matcher) elsewhere(pos int, v []byte, fallback prior) prior {
	for _, near := range [2]int{pos + 1, pos - 1} {
		if pr := m.at(near); pr.n != nil && bytes.Equal(pr.raw, v) {
			return pr
		}
	}
	if m.misses++; m.misses < 2 {
		return fallback
	}
	if pr, ok := m.lookup(v); ok {
		return pr
	}
	return fallback
}

// lookup returns an unplaced previous element whose bytes are v.
func (m *matcher) lookup(v []byte) (prior, bool) {
	if m.index == nil {
		m.index = make(map[uint64][]int)
		for i, kid := range m.pr.n.kids {
			if kid.gen != m.p.gen {
				h := maphash.Bytes(hashSeed, m.pr.raw[kid.off:kid.off+kid.n])
				m.index[h] = append(m.index[h], i)
			}
		}
	}
	for _, i := range m.index[maphash.Bytes(hashSeed, v)] {
		pr := m.p.priorKid(m.pr, m.pr.n.kids[i])
		if pr.n != nil && bytes.Equal(pr.raw, v) {
			return pr, true
		}
	}
	return prior{}, false
}
