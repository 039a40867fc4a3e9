package diff

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
)

// Change is a new version and the patches that take a holder of the previous version to
// it.
type Change struct {
	Version *Version
	// Patch is an RFC 6902 JSON Patch, a JSON array of operations; nil for the first
	// version of a stream.
	Patch []byte
	merge *lazyMerge
}

// lazyMerge builds a change's merge patch on first use: it costs an encoding of every
// array the change touched, which only merge_patch subscribers need.
type lazyMerge struct {
	once    sync.Once
	touches []touch
	doc     *node
	out     []byte
	given   bool // out came with the change
}

// NewChange returns a change made elsewhere, such as one read back from a shared store:
// version v, reached by the JSON Patch patch, or by the merge patch merge (nil when a
// merge patch cannot express the change). A merge that is not a JSON object, or that
// goes with a patch replacing the root or a v whose root is not an object, is dropped:
// the change then reaches merge_patch subscribers as a snapshot, as one made here would.
func NewChange(v *Version, patch, merge []byte) Change {
	if merge != nil && !givenMergeFits(v, patch, merge) {
		merge = nil
	}
	return Change{Version: v, Patch: patch, merge: &lazyMerge{out: merge, given: true}}
}

// givenMergeFits reports whether merge, given with a change to v by patch, is an object
// merged into an object, as every merge patch this package sends is.
func givenMergeFits(v *Version, patch, merge []byte) bool {
	if t := bytes.TrimLeft(merge, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return false
	}
	ops, err := parseOps(patch)
	if err != nil {
		return false
	}
	touches, err := touchesOf(ops)
	return err == nil && objectToObject(touches, v.doc)
}

// MergePatch returns the change as an RFC 7386 JSON Merge Patch, always a JSON object. It
// is nil for the first version, and when a merge patch cannot express the change: the
// root is or becomes an array or a scalar, or it would have to set a member to null,
// which RFC 7386 reads as a deletion. It is safe for concurrent use.
func (c Change) MergePatch() []byte {
	m := c.merge
	if m == nil || m.given {
		return m.outOrNil()
	}
	m.once.Do(func() {
		if out, ok := mergePatch(m.touches, m.doc); ok {
			m.out = out
		}
	})
	return m.out
}

func (m *lazyMerge) outOrNil() []byte {
	if m == nil {
		return nil
	}
	return m.out
}

// Tracker follows one upstream: it keeps the last body, its parsed document and the
// current version. The zero Tracker streams whole documents. It is not safe for
// concurrent use; one poll loop owns it.
type Tracker struct {
	rules   rules
	rootKey string // the key member when the streamed document is itself a keyed array
	keys    ruleSet
	p       parser
	w       walker

	body, spare []byte
	doc         *node // parsed from body; shares unchanged nodes with cur's document
	reparse     bool  // doc's bookkeeping is unreliable: parse the next body afresh
	cur         *Version
}

// NewTracker returns a Tracker applying o, or an error naming the first invalid setting.
func NewTracker(o Options) (*Tracker, error) {
	r, err := o.compile()
	if err != nil {
		return nil, err
	}
	t := &Tracker{rules: r}
	t.p.ignore = r.ignore
	for _, k := range r.keys {
		if len(k.at) == 0 {
			t.rootKey = k.member
		} else {
			t.keys = append(t.keys, k)
		}
	}
	return t, nil
}

// Current returns the current version, or nil before the first document.
func (t *Tracker) Current() *Version { return t.cur }

// Update takes the body of one successful poll. An unchanged body costs one byte
// comparison and no parse. A body that differs in bytes but not in content (member
// order, white space, ignored members) yields no change. A body that is not JSON is an
// error wrapping ErrNotJSON, one in which the select pointer does not resolve an error
// wrapping ErrSelect, and the current version is kept.
func (t *Tracker) Update(body []byte) (Change, bool, error) {
	if t.cur != nil && bytes.Equal(body, t.body) {
		return Change{}, false, nil
	}
	doc, err := t.parse(body)
	if err != nil {
		return Change{}, false, err
	}
	t.spare = append(t.spare[:0], body...)
	t.body, t.spare = t.spare, t.body
	next := newVersion(doc, len(t.curJSON()))
	prev := t.doc
	t.doc = doc
	if t.cur != nil && t.cur.ID == next.ID {
		return Change{}, false, nil
	}
	ch := Change{Version: next}
	if t.cur != nil {
		ch.Patch, ch.merge = t.changes(prev, doc)
	}
	t.cur = next
	return ch, true, nil
}

// parse parses body, reusing the unchanged parts of the last document.
func (t *Tracker) parse(body []byte) (*node, error) {
	var pr prior
	if t.doc != nil && !t.reparse {
		pr = prior{n: t.doc, raw: t.body[t.doc.off : t.doc.off+t.doc.n], canon: t.curJSON()}
	}
	doc, err := t.p.parse(body, t.rules.sel, pr)
	if err == nil {
		t.reparse = false
		return doc, nil
	}
	// A parse that failed part way may have moved nodes of the last document.
	t.reparse = true
	if errors.Is(err, ErrNotJSON) || errors.Is(err, ErrSelect) {
		return nil, err
	}
	return nil, fmt.Errorf("%w: %v", ErrNotJSON, err)
}

// curJSON returns the canonical encoding of the tracked document, which is the current
// version's: documents that encode alike are the same version.
func (t *Tracker) curJSON() []byte {
	if t.cur == nil {
		return nil
	}
	return t.cur.JSON
}

// changes returns the JSON Patch from a to b, and what the merge patch is built from.
func (t *Tracker) changes(a, b *node) ([]byte, *lazyMerge) {
	t.w.ops, t.w.path = t.w.ops[:0], t.w.path[:0]
	t.w.walk(a, b, scope{keys: t.keys, ignore: t.rules.ignore}, t.rootKey)
	touches, err := touchesOf(t.w.ops)
	if err != nil {
		panic("a patch made here has a bad pointer: " + err.Error())
	}
	return appendPatch(nil, t.w.ops), &lazyMerge{touches: touches, doc: b}
}

// JoinPatches concatenates RFC 6902 patches, each a JSON array, into one array that
// applies them in order. Empty arrays are skipped.
func JoinPatches(patches [][]byte) []byte {
	n := 2
	for _, p := range patches {
		n += len(p)
	}
	out := make([]byte, 0, n)
	out = append(out, '[')
	for _, p := range patches {
		ops := bytes.TrimSpace(p)
		if len(ops) < 2 {
			continue
		}
		ops = bytes.TrimSpace(ops[1 : len(ops)-1])
		if len(ops) == 0 {
			continue
		}
		if len(out) > 1 {
			out = append(out, ',')
		}
		out = append(out, ops...)
	}
	return append(out, ']')
}
