package difftest

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// ApplyMergePatch applies an RFC 7386 merge patch to doc as the RFC's own algorithm
// (section 2) does, for use as a reference: an object patch merges member by member, a
// null member deletes, and any other patch, an array included, replaces the target
// whole. Numbers keep their text.
func ApplyMergePatch(doc, patch []byte) ([]byte, error) {
	target, err := Decode(doc)
	if err != nil {
		return nil, fmt.Errorf("decoding document: %w", err)
	}
	p, err := Decode(patch)
	if err != nil {
		return nil, fmt.Errorf("decoding merge patch: %w", err)
	}
	return encode(mergePatch(target, p))
}

// mergePatch is MergePatch(Target, Patch) of RFC 7386 section 2.
func mergePatch(target, patch any) any {
	p, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	t, ok := target.(map[string]any)
	if !ok {
		t = map[string]any{}
	}
	for name, value := range p {
		if value == nil {
			delete(t, name)
			continue
		}
		t[name] = mergePatch(t[name], value)
	}
	return t
}

// encode returns v as compact JSON with sorted members and no HTML escaping.
func encode(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
