// Package sse implements the Server-Sent Events wire format as defined by the
// WHATWG HTML standard, section "Server-sent events": an encoder for event
// frames, retry and comment lines, and a decoder that interprets an event
// stream exactly as an EventSource does.
package sse

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// ErrInvalidField is returned when an event id, an event name or a comment
// text contains a line break (CR or LF), a NUL byte or invalid UTF-8. Such a
// value cannot be carried on a single field line, or would be ignored by a
// conforming client.
var ErrInvalidField = errors.New("sse: invalid field value")

// ErrInvalidData is returned when event data contains a NUL byte or invalid
// UTF-8. Line breaks in data are allowed.
var ErrInvalidData = errors.New("sse: invalid event data")

const (
	prefixEvent = "event: "
	prefixID    = "id: "
	prefixData  = "data: "
	prefixRetry = "retry: "
)

// dataLineOverhead is the size of the "data: " prefix plus the trailing LF.
const dataLineOverhead = len(prefixData) + 1

// ID is an event id. The zero value means "no id field". Values are created
// with NewID or MustID, which guarantee that the id fits on one field line
// and is accepted by a conforming client.
type ID struct{ s string }

// NewID returns s as an event id. It returns an error wrapping
// ErrInvalidField if s contains CR, LF, NUL or invalid UTF-8. The empty
// string yields the zero ID.
func NewID(s string) (ID, error) {
	if err := checkField("id", s); err != nil {
		return ID{}, err
	}
	return ID{s: s}, nil
}

// MustID is like NewID but panics if s is not a valid id.
func MustID(s string) ID {
	id, err := NewID(s)
	if err != nil {
		panic(err)
	}
	return id
}

// String returns the id value.
func (id ID) String() string { return id.s }

// IsZero reports whether id is the zero ID, which is not encoded.
func (id ID) IsZero() bool { return id.s == "" }

// Name is an event type. The zero value means "no event field", which a
// client dispatches as type "message". Values are created with NewName or
// MustName.
type Name struct{ s string }

// NewName returns s as an event name. It returns an error wrapping
// ErrInvalidField if s contains CR, LF, NUL or invalid UTF-8. The empty
// string yields the zero Name.
func NewName(s string) (Name, error) {
	if err := checkField("event name", s); err != nil {
		return Name{}, err
	}
	return Name{s: s}, nil
}

// MustName is like NewName but panics if s is not a valid name.
func MustName(s string) Name {
	n, err := NewName(s)
	if err != nil {
		panic(err)
	}
	return n
}

// String returns the name value.
func (n Name) String() string { return n.s }

// IsZero reports whether n is the zero Name, which is not encoded.
func (n Name) IsZero() bool { return n.s == "" }

// checkField reports whether s may be used as a single-line field value.
func checkField(what, s string) error {
	if i := strings.IndexAny(s, "\r\n\x00"); i >= 0 {
		return fmt.Errorf("%w: %s has byte %#02x at offset %d", ErrInvalidField, what, s[i], i)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: %s is not valid utf-8", ErrInvalidField, what)
	}
	return nil
}

// Event is one dispatchable event: an optional name, an optional id and
// data. The zero Event encodes as a single empty data line, which a client
// dispatches as a "message" event with empty data.
type Event struct {
	name Name
	id   ID
	data string
	// dataExtra is the encoded size of the data lines beyond the first
	// line's overhead: the data bytes without line breaks plus the overhead
	// of every additional line.
	dataExtra int
}

// NewEvent returns an event carrying a copy of data. It returns an error
// wrapping ErrInvalidData if data contains NUL or invalid UTF-8. Line breaks
// in data (CRLF, CR or LF) are allowed; each line is encoded on its own data
// line and a client receives them joined by LF.
func NewEvent(name Name, id ID, data []byte) (Event, error) {
	if i := bytes.IndexByte(data, 0); i >= 0 {
		return Event{}, fmt.Errorf("%w: nul byte at offset %d", ErrInvalidData, i)
	}
	if !utf8.Valid(data) {
		return Event{}, fmt.Errorf("%w: data is not valid utf-8", ErrInvalidData)
	}
	s := string(data)
	return Event{name: name, id: id, data: s, dataExtra: dataExtraSize(s)}, nil
}

// Name returns the event name.
func (e Event) Name() Name { return e.name }

// ID returns the event id.
func (e Event) ID() ID { return e.id }

// Data returns the event data as given to NewEvent.
func (e Event) Data() string { return e.data }

// Len returns the size of the encoded event in bytes.
func (e Event) Len() int {
	return fieldSize(prefixEvent, e.name.s) + fieldSize(prefixID, e.id.s) +
		dataLineOverhead + e.dataExtra + 1
}

// AppendTo appends the encoded event to dst and returns the extended
// buffer. The frame consists of an optional event line, an optional id line,
// one data line per line of data and a terminating blank line.
func (e Event) AppendTo(dst []byte) []byte {
	dst = appendField(dst, prefixEvent, e.name.s)
	dst = appendField(dst, prefixID, e.id.s)
	dst = appendData(dst, e.data)
	return append(dst, '\n')
}

// Encode returns the encoded event in a newly allocated slice of exactly
// the right size.
func (e Event) Encode() []byte {
	return e.AppendTo(make([]byte, 0, e.Len()))
}

// WriteTo writes the encoded event to w. It implements io.WriterTo.
func (e Event) WriteTo(w io.Writer) (int64, error) {
	b := e.Encode()
	n, err := w.Write(b)
	if err == nil && n < len(b) {
		err = io.ErrShortWrite
	}
	if err != nil {
		return int64(n), fmt.Errorf("sse: write event: %w", err)
	}
	return int64(n), nil
}

// AppendRetry appends a retry field telling the client to wait d before
// reconnecting, followed by a blank line. The value is written in whole
// milliseconds, rounded down; a negative d is written as 0.
func AppendRetry(dst []byte, d time.Duration) []byte {
	ms := int64(d / time.Millisecond)
	if ms < 0 {
		ms = 0
	}
	dst = append(dst, prefixRetry...)
	dst = strconv.AppendInt(dst, ms, 10)
	return append(dst, '\n', '\n')
}

// AppendComment appends a comment line carrying text, followed by a blank
// line; clients ignore it, which makes it suitable as a heartbeat. An empty
// text yields ":\n\n". It returns dst unchanged and an error wrapping
// ErrInvalidField if text contains CR, LF, NUL or invalid UTF-8.
func AppendComment(dst []byte, text string) ([]byte, error) {
	if err := checkField("comment", text); err != nil {
		return dst, err
	}
	if text == "" {
		return append(dst, ':', '\n', '\n'), nil
	}
	dst = append(dst, ':', ' ')
	dst = append(dst, text...)
	return append(dst, '\n', '\n'), nil
}

// fieldSize returns the encoded size of an optional field line.
func fieldSize(prefix, v string) int {
	if v == "" {
		return 0
	}
	return len(prefix) + len(v) + 1
}

// appendField appends "prefix v\n" unless v is empty.
func appendField(dst []byte, prefix, v string) []byte {
	if v == "" {
		return dst
	}
	return appendLine(dst, prefix, v)
}

// appendLine appends prefix, v and a LF.
func appendLine(dst []byte, prefix, v string) []byte {
	dst = append(dst, prefix...)
	dst = append(dst, v...)
	return append(dst, '\n')
}

// appendData appends one data line per line of data.
func appendData(dst []byte, data string) []byte {
	for {
		i, n := lineBreak(data)
		if i < 0 {
			return appendLine(dst, prefixData, data)
		}
		dst = appendLine(dst, prefixData, data[:i])
		data = data[i+n:]
	}
}

// dataExtraSize returns the encoded size of data's lines beyond the fixed
// overhead of the first line.
func dataExtraSize(data string) int {
	size := 0
	for {
		i, n := lineBreak(data)
		if i < 0 {
			return size + len(data)
		}
		size += i + dataLineOverhead
		data = data[i+n:]
	}
}

// lineBreak returns the offset and length of the first line break (CRLF, CR
// or LF) in s, or -1 and 0 if there is none.
func lineBreak(s string) (int, int) {
	lf := strings.IndexByte(s, '\n')
	head := s
	if lf >= 0 {
		head = s[:lf]
	}
	cr := strings.IndexByte(head, '\r')
	switch {
	case cr >= 0 && cr+1 < len(s) && s[cr+1] == '\n':
		return cr, 2
	case cr >= 0:
		return cr, 1
	case lf >= 0:
		return lf, 1
	}
	return -1, 0
}
