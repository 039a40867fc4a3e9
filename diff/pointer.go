package diff

import (
	"fmt"
	"strconv"
	"strings"
)

// wildcard is the pointer token that matches every member of an object and every element
// of an array, in ignore and array_key pointers.
const wildcard = "*"

// pointer is a parsed RFC 6901 JSON Pointer: its reference tokens, unescaped.
type pointer []string

// parsePointer parses an RFC 6901 pointer: "" is the whole document, anything else starts
// with "/" and escapes "~" as "~0" and "/" as "~1".
func parsePointer(s string) (pointer, error) {
	if s == "" {
		return pointer{}, nil
	}
	if s[0] != '/' {
		return nil, fmt.Errorf("JSON pointer %q must be empty or start with /", s)
	}
	parts := strings.Split(s[1:], "/")
	for i, p := range parts {
		tok, err := unescapeToken(p)
		if err != nil {
			return nil, fmt.Errorf("JSON pointer %q: %v", s, err)
		}
		parts[i] = tok
	}
	return pointer(parts), nil
}

func unescapeToken(s string) (string, error) {
	if !strings.Contains(s, "~") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '~' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 == len(s) || (s[i+1] != '0' && s[i+1] != '1') {
			return "", fmt.Errorf("~ must be followed by 0 or 1")
		}
		if s[i+1] == '0' {
			b.WriteByte('~')
		} else {
			b.WriteByte('/')
		}
		i++
	}
	return b.String(), nil
}

// appendToken appends "/" and tok, escaped, to dst.
func appendToken(dst []byte, tok string) []byte {
	dst = append(dst, '/')
	for i := 0; i < len(tok); i++ {
		switch tok[i] {
		case '~':
			dst = append(dst, '~', '0')
		case '/':
			dst = append(dst, '~', '1')
		default:
			dst = append(dst, tok[i])
		}
	}
	return dst
}

// String returns the pointer in RFC 6901 form.
func (p pointer) String() string {
	var b []byte
	for _, tok := range p {
		b = appendToken(b, tok)
	}
	return string(b)
}

// hasPrefix reports whether q lies at or under p, a wildcard in either matching any token.
func (p pointer) hasPrefix(q pointer) bool {
	if len(p) < len(q) {
		return false
	}
	for i, tok := range q {
		if tok != p[i] && tok != wildcard && p[i] != wildcard {
			return false
		}
	}
	return true
}

// arrayIndex parses an RFC 6901 array index: "0", or digits without a leading zero.
func arrayIndex(tok string) (int, bool) {
	if tok == "" || len(tok) > 1 && tok[0] == '0' {
		return 0, false
	}
	for i := 0; i < len(tok); i++ {
		if tok[i] < '0' || tok[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.Atoi(tok)
	return n, err == nil
}
