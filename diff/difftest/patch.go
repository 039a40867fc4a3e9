package difftest

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ApplyPatch applies an RFC 6902 JSON Patch to doc, strictly as the RFC and RFC 6901
// say, for use as a reference: array indexes without leading zeros, "-" only to add at
// the end, the whole document at path "", scalar documents too, and "test" comparing
// numbers by value. Numbers keep their text. It exists beside evanphx/json-patch, which
// cannot patch a scalar document, replace the root with a scalar, or reach a member
// under an empty key ("//").
func ApplyPatch(doc, patch []byte) ([]byte, error) {
	v, err := Decode(doc)
	if err != nil {
		return nil, fmt.Errorf("decoding document: %w", err)
	}
	p, err := Decode(patch)
	if err != nil {
		return nil, fmt.Errorf("decoding patch: %w", err)
	}
	ops, ok := p.([]any)
	if !ok {
		return nil, errors.New("a patch must be an array")
	}
	for i, op := range ops {
		if v, err = applyOp(v, op); err != nil {
			return nil, fmt.Errorf("operation %d: %w", i, err)
		}
	}
	return encode(v)
}

func applyOp(doc any, raw any) (any, error) {
	op, ok := raw.(map[string]any)
	if !ok {
		return nil, errors.New("an operation must be an object")
	}
	name, _ := op["op"].(string)
	path, err := pointerMember(op, "path")
	if err != nil {
		return nil, err
	}
	switch name {
	case "add", "replace", "test":
		val, ok := op["value"]
		if !ok {
			return nil, fmt.Errorf("%s without a value", name)
		}
		return valueOp(doc, name, path, val)
	case "remove":
		return removeValue(doc, path)
	case "move", "copy":
		from, err := pointerMember(op, "from")
		if err != nil {
			return nil, err
		}
		return fromOp(doc, name, from, path)
	}
	return nil, fmt.Errorf("unknown op %q", name)
}

func valueOp(doc any, name string, path []string, val any) (any, error) {
	switch name {
	case "add":
		return addValue(doc, path, val)
	case "replace":
		return replaceValue(doc, path, val)
	}
	cur, err := get(doc, path)
	if err != nil {
		return nil, err
	}
	if !equalValues(cur, val, sameValue) {
		return nil, errors.New("test failed")
	}
	return doc, nil
}

func fromOp(doc any, name string, from, path []string) (any, error) {
	val, err := get(doc, from)
	if err != nil {
		return nil, err
	}
	if name == "copy" {
		return addValue(doc, path, deepCopy(val))
	}
	if len(path) > len(from) && hasPrefix(path, from) {
		return nil, errors.New("move into its own child")
	}
	if doc, err = removeValue(doc, from); err != nil {
		return nil, err
	}
	return addValue(doc, path, val)
}

// pointerMember parses the RFC 6901 pointer in member name of op into its tokens.
func pointerMember(op map[string]any, name string) ([]string, error) {
	s, ok := op[name].(string)
	if !ok {
		return nil, fmt.Errorf("no %s string", name)
	}
	if s == "" {
		return []string{}, nil
	}
	if s[0] != '/' {
		return nil, fmt.Errorf("%s %q does not start with /", name, s)
	}
	toks := strings.Split(s[1:], "/")
	for i, t := range toks {
		if strings.Contains(strings.NewReplacer("~0", "", "~1", "").Replace(t), "~") {
			return nil, fmt.Errorf("%s %q: bad ~ escape", name, s)
		}
		toks[i] = strings.NewReplacer("~1", "/", "~0", "~").Replace(t)
	}
	return toks, nil
}

func hasPrefix(p, prefix []string) bool {
	for i, t := range prefix {
		if p[i] != t {
			return false
		}
	}
	return true
}

// index parses an array index token that must address an element of n (or, with end,
// the position after the last).
func index(tok string, n int, end bool) (int, error) {
	if end && tok == "-" {
		return n, nil
	}
	if tok == "" || len(tok) > 1 && tok[0] == '0' || strings.TrimLeft(tok, "0123456789") != "" {
		return 0, fmt.Errorf("bad array index %q", tok)
	}
	i, err := strconv.Atoi(tok)
	if err != nil || i > n || !end && i == n {
		return 0, fmt.Errorf("array index %q out of range (%d elements)", tok, n)
	}
	return i, nil
}

// get returns the value at path.
func get(doc any, path []string) (any, error) {
	for _, tok := range path {
		switch c := doc.(type) {
		case map[string]any:
			v, ok := c[tok]
			if !ok {
				return nil, fmt.Errorf("no member %q", tok)
			}
			doc = v
		case []any:
			i, err := index(tok, len(c), false)
			if err != nil {
				return nil, err
			}
			doc = c[i]
		default:
			return nil, fmt.Errorf("%q under a scalar", tok)
		}
	}
	return doc, nil
}

// edit applies f to the container that holds the last token of path and returns the
// document with f's result in that container's place. path is not empty.
func edit(doc any, path []string, f func(parent any, tok string) (any, error)) (any, error) {
	if len(path) == 1 {
		return f(doc, path[0])
	}
	child, err := get(doc, path[:1])
	if err != nil {
		return nil, err
	}
	if child, err = edit(child, path[1:], f); err != nil {
		return nil, err
	}
	switch c := doc.(type) {
	case map[string]any:
		c[path[0]] = child
	case []any:
		i, _ := index(path[0], len(c), false)
		c[i] = child
	}
	return doc, nil
}

func addValue(doc any, path []string, val any) (any, error) {
	if len(path) == 0 {
		return val, nil
	}
	return edit(doc, path, func(parent any, tok string) (any, error) {
		switch c := parent.(type) {
		case map[string]any:
			c[tok] = val
			return c, nil
		case []any:
			i, err := index(tok, len(c), true)
			if err != nil {
				return nil, err
			}
			return append(c[:i:i], append([]any{val}, c[i:]...)...), nil
		}
		return nil, fmt.Errorf("adding %q under a scalar", tok)
	})
}

func replaceValue(doc any, path []string, val any) (any, error) {
	if _, err := get(doc, path); err != nil {
		return nil, err
	}
	if len(path) == 0 {
		return val, nil
	}
	return edit(doc, path, func(parent any, tok string) (any, error) {
		switch c := parent.(type) {
		case map[string]any:
			c[tok] = val
		case []any:
			i, _ := index(tok, len(c), false)
			c[i] = val
		}
		return parent, nil
	})
}

func removeValue(doc any, path []string) (any, error) {
	if len(path) == 0 {
		return nil, errors.New("removing the whole document")
	}
	return edit(doc, path, func(parent any, tok string) (any, error) {
		switch c := parent.(type) {
		case map[string]any:
			if _, ok := c[tok]; !ok {
				return nil, fmt.Errorf("removing missing member %q", tok)
			}
			delete(c, tok)
			return c, nil
		case []any:
			i, err := index(tok, len(c), false)
			if err != nil {
				return nil, err
			}
			return append(c[:i:i], c[i+1:]...), nil
		}
		return nil, fmt.Errorf("removing %q under a scalar", tok)
	})
}

func deepCopy(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		panic("difftest: copying a decoded value: " + err.Error()) // decoded values encode
	}
	c, _ := Decode(b)
	return c
}
