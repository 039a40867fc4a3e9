package difftest

import (
	"bytes"
	"encoding/json"
)

// kind is the JSON type of a generated value.
type kind uint8

const (
	kindNull kind = iota
	kindBool
	kindNumber
	kindString
	kindArray
	kindObject
)

// value is a generated JSON value. Objects keep their members in order and numbers
// their exact text, so that encoding is deterministic and can spell numbers as 1e400,
// -0 or 1.0.
type value struct {
	kind    kind
	b       bool
	text    string // a number's literal text or a string's content
	elems   []*value
	members []member
	// lit, when set, is written instead of the value: a string spelt with escapes or
	// invalid UTF-8, or bytes that are not JSON at all.
	lit string
}

type member struct {
	key string
	val *value
}

func (v *value) isContainer() bool { return v.kind == kindArray || v.kind == kindObject }

// clone returns a deep copy of v.
func (v *value) clone() *value {
	c := *v
	if v.elems != nil {
		c.elems = make([]*value, len(v.elems))
		for i, e := range v.elems {
			c.elems[i] = e.clone()
		}
	}
	if v.members != nil {
		c.members = make([]member, len(v.members))
		for i, m := range v.members {
			c.members[i] = member{key: m.key, val: m.val.clone()}
		}
	}
	return &c
}

// has reports whether the object v has a member named key.
func (v *value) has(key string) bool {
	for _, m := range v.members {
		if m.key == key {
			return true
		}
	}
	return false
}

// encode returns v as JSON text: compact, or with spaces and line breaks when spaced.
func (v *value) encode(spaced bool) []byte {
	var buf bytes.Buffer
	v.write(&buf, spaced)
	return buf.Bytes()
}

func (v *value) write(buf *bytes.Buffer, spaced bool) {
	if v.lit != "" {
		buf.WriteString(v.lit)
		return
	}
	switch v.kind {
	case kindNull:
		buf.WriteString("null")
	case kindBool:
		if v.b {
			buf.WriteString("true")
		} else {
			buf.WriteString("false")
		}
	case kindNumber:
		buf.WriteString(v.text)
	case kindString:
		writeString(buf, v.text)
	case kindArray:
		v.writeArray(buf, spaced)
	case kindObject:
		v.writeObject(buf, spaced)
	}
}

func (v *value) writeArray(buf *bytes.Buffer, spaced bool) {
	buf.WriteByte('[')
	for i, e := range v.elems {
		if i > 0 {
			writeSep(buf, spaced)
		}
		e.write(buf, spaced)
	}
	buf.WriteByte(']')
}

func (v *value) writeObject(buf *bytes.Buffer, spaced bool) {
	buf.WriteByte('{')
	for i, m := range v.members {
		if i > 0 {
			writeSep(buf, spaced)
		}
		writeString(buf, m.key)
		if spaced {
			buf.WriteString(" : ")
		} else {
			buf.WriteByte(':')
		}
		m.val.write(buf, spaced)
	}
	buf.WriteByte('}')
}

func writeSep(buf *bytes.Buffer, spaced bool) {
	if spaced {
		buf.WriteString(",\n\t ")
		return
	}
	buf.WriteByte(',')
}

// writeString writes s as a JSON string. encoding/json escapes <, >, & and U+2028/9 as
// \u sequences, which exercises the decoding of escapes.
func writeString(buf *bytes.Buffer, s string) {
	b, err := json.Marshal(s)
	if err != nil {
		panic("difftest: encoding a string: " + err.Error()) // a Go string always encodes
	}
	buf.Write(b)
}
