package diff

import (
	"bytes"
	"fmt"

	"github.com/wI2L/jsondiff"
)

// Change is a new version and the RFC 6902 patch that takes a holder of the previous
// version to it.
type Change struct {
	Version *Version
	// Patch is a JSON array of operations; nil for the first version of a stream.
	Patch []byte
}

// Tracker follows one upstream: it keeps the last body and the current version, parsed.
// It is not safe for concurrent use; one poll loop owns it.
type Tracker struct {
	body []byte
	cur  *Version
}

// Current returns the current version, or nil before the first document.
func (t *Tracker) Current() *Version { return t.cur }

// Update takes the body of one successful poll. An unchanged body costs one byte
// comparison and no parse. A body that differs in bytes but not in content (member
// order, white space) yields no change. A body that is not JSON is an error wrapping
// ErrNotJSON, and the current version is kept.
func (t *Tracker) Update(body []byte) (Change, bool, error) {
	if t.cur != nil && bytes.Equal(body, t.body) {
		return Change{}, false, nil
	}
	next, err := Parse(body)
	if err != nil {
		return Change{}, false, err
	}
	t.body = append(t.body[:0], body...)
	if t.cur != nil && t.cur.ID == next.ID {
		return Change{}, false, nil
	}
	ch := Change{Version: next}
	if t.cur != nil {
		if ch.Patch, err = JSONPatch(t.cur, next); err != nil {
			return Change{}, false, err
		}
	}
	t.cur = next
	return ch, true, nil
}

// JSONPatch returns the RFC 6902 patch, as a JSON array, from a to b.
func JSONPatch(a, b *Version) ([]byte, error) {
	patch, err := jsondiff.CompareWithoutMarshal(a.doc, b.doc)
	if err != nil {
		return nil, fmt.Errorf("diffing documents: %w", err)
	}
	if len(patch) == 0 {
		return []byte("[]"), nil
	}
	return marshal(patch)
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
