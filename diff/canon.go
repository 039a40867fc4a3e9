package diff

import "github.com/go-json-experiment/json/jsontext"

// appendJSON appends the canonical encoding of n to dst: compact, object members sorted
// by name, strings escaped only where JSON requires it. It only reads n.
func appendJSON(dst []byte, n *node) []byte { return encode(dst, n, false) }

// encodeDoc is appendJSON for the Tracker's new document: a node kept from the last
// version is copied from that version's encoding, and each child records where its
// encoding lies relative to its parent's, for the next version to copy from.
func encodeDoc(dst []byte, n *node) []byte { return encode(dst, n, true) }

func encode(dst []byte, n *node, doc bool) []byte {
	if doc && n.prev != nil {
		dst = append(dst, n.prev...)
		n.prev = nil
		return dst
	}
	base := len(dst)
	switch n.kind {
	case kindNull:
		return append(dst, "null"...)
	case kindFalse:
		return append(dst, "false"...)
	case kindTrue:
		return append(dst, "true"...)
	case kindNumber:
		return append(dst, n.text...)
	case kindString:
		return quote(dst, n.text)
	case kindObject:
		dst = append(dst, '{')
		for i, kid := range n.kids {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(quote(dst, n.keys[i]), ':')
			dst = encodeKid(dst, kid, base, doc)
		}
		return append(dst, '}')
	default:
		dst = append(dst, '[')
		for i, kid := range n.kids {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = encodeKid(dst, kid, base, doc)
		}
		return append(dst, ']')
	}
}

func encodeKid(dst []byte, kid *node, base int, doc bool) []byte {
	start := len(dst)
	dst = encode(dst, kid, doc)
	if doc {
		kid.coff, kid.cn = start-base, len(dst)-start
	}
	return dst
}

// quote appends s as a JSON string. Strings in a document are valid UTF-8 (the parser
// replaces invalid bytes), so quoting cannot fail.
func quote(dst []byte, s string) []byte {
	out, err := jsontext.AppendQuote(dst, s)
	if err != nil {
		panic("quoting a document string: " + err.Error())
	}
	return out
}
