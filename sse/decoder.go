package sse

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"time"
	"unicode/utf8"
)

// defaultType is the event type dispatched when no event field was given.
const defaultType = "message"

// readBufferSize is the size of the decoder's read buffer.
const readBufferSize = 32 << 10

// maxRetainedBuffer is the capacity above which a scratch buffer is released
// rather than reused, so that one huge event does not pin its memory.
const maxRetainedBuffer = 1 << 20

// bom is the UTF-8 encoding of U+FEFF BYTE ORDER MARK.
var bom = []byte{0xEF, 0xBB, 0xBF}

// Message is one dispatched event as an EventSource would see it.
type Message struct {
	// Type is the event type; "message" when none was given.
	Type string
	// Data is the event data, its lines joined by LF.
	Data string
	// LastEventID is the last event ID buffer at dispatch. As in the
	// specification it persists across events until an id field changes it.
	LastEventID string
}

// Decoder interprets an event stream as specified by the WHATWG HTML
// standard, sections "Parsing an event stream" and "Interpreting an event
// stream". The stream is decoded as UTF-8 with invalid sequences replaced by
// U+FFFD, one leading byte order mark is ignored, and lines may end in CRLF,
// a lone CR or a lone LF. Lines may be arbitrarily long.
//
// A Decoder is not safe for concurrent use.
type Decoder struct {
	r        *bufio.Reader
	line     []byte // a line that spans several buffer fills
	skipLF   bool   // the previous line ended in CR, so a leading LF ends it too
	started  bool   // the first line has been read
	data     []byte // data buffer
	typ      string // event type buffer
	lastID   string // last event ID buffer
	retry    time.Duration
	comments int
	err      error // sticky error returned by Next
}

// NewDecoder returns a decoder reading the event stream from r.
func NewDecoder(r io.Reader) *Decoder {
	return &Decoder{r: bufio.NewReaderSize(r, readBufferSize)}
}

// Next returns the next dispatched event. At the end of the stream it
// returns io.EOF; an event that was not terminated by a blank line before
// the end is discarded, as is an unterminated last line. Other read errors
// are returned wrapped. Once Next returns an error it keeps returning it.
func (d *Decoder) Next() (Message, error) {
	for d.err == nil {
		line, err := d.readLine()
		if err != nil {
			d.fail(err)
			break
		}
		if msg, ok := d.processLine(d.stripBOM(line)); ok {
			return msg, nil
		}
	}
	return Message{}, d.err
}

// Retry returns the reconnection time set by the last valid retry field, or
// 0 if there was none. Values too large for a time.Duration saturate.
func (d *Decoder) Retry() time.Duration { return d.retry }

// Comments returns the number of comment lines seen so far.
func (d *Decoder) Comments() int { return d.comments }

// fail records the error that ends the stream and drops pending state.
func (d *Decoder) fail(err error) {
	d.data, d.typ = nil, ""
	if errors.Is(err, io.EOF) {
		d.err = io.EOF
		return
	}
	d.err = fmt.Errorf("sse: read event stream: %w", err)
}

// stripBOM removes one byte order mark from the start of the first line.
func (d *Decoder) stripBOM(line []byte) []byte {
	if d.started {
		return line
	}
	d.started = true
	return bytes.TrimPrefix(line, bom)
}

// readLine returns the next complete line without its terminator. The
// result is valid until the next call. An unterminated line at the end of
// the stream is dropped and the read error is returned.
func (d *Decoder) readLine() ([]byte, error) {
	if cap(d.line) > maxRetainedBuffer {
		d.line = nil
	}
	d.line = d.line[:0]
	for {
		buf, err := d.buffered()
		if err != nil {
			return nil, err
		}
		buf = d.consumeLF(buf)
		if i := indexEOL(buf); i >= 0 {
			return d.takeLine(buf, i), nil
		}
		d.line = append(d.line, buf...)
		d.discard(len(buf))
	}
}

// buffered returns the unread bytes in the read buffer, filling it first if
// it is empty.
func (d *Decoder) buffered() ([]byte, error) {
	if d.r.Buffered() == 0 {
		if _, err := d.r.Peek(1); err != nil {
			return nil, err
		}
	}
	buf, _ := d.r.Peek(d.r.Buffered())
	return buf, nil
}

// consumeLF skips a LF at the start of buf that completes a CRLF whose CR
// ended the previous line.
func (d *Decoder) consumeLF(buf []byte) []byte {
	if !d.skipLF || len(buf) == 0 {
		return buf
	}
	d.skipLF = false
	if buf[0] != '\n' {
		return buf
	}
	d.discard(1)
	return buf[1:]
}

// takeLine completes the current line with buf[:i], where buf[i] is its
// terminator, and consumes it from the reader.
func (d *Decoder) takeLine(buf []byte, i int) []byte {
	d.skipLF = buf[i] == '\r'
	line := buf[:i]
	if len(d.line) > 0 {
		d.line = append(d.line, line...)
		line = d.line
	}
	d.discard(i + 1)
	return line
}

// discard consumes n buffered bytes.
func (d *Decoder) discard(n int) {
	// Discarding bytes that are already buffered cannot fail.
	_, _ = d.r.Discard(n)
}

// indexEOL returns the index of the first CR or LF in b, or -1.
func indexEOL(b []byte) int {
	lf := bytes.IndexByte(b, '\n')
	head := b
	if lf >= 0 {
		head = b[:lf]
	}
	if cr := bytes.IndexByte(head, '\r'); cr >= 0 {
		return cr
	}
	return lf
}

// processLine interprets one line and reports whether it dispatched an
// event.
func (d *Decoder) processLine(line []byte) (Message, bool) {
	switch {
	case len(line) == 0:
		return d.dispatch()
	case line[0] == ':':
		d.comments++
		return Message{}, false
	}
	d.processField(splitField(line))
	return Message{}, false
}

// splitField splits a line into field name and value. The value follows the
// first colon with one leading space removed; a line without a colon is a
// field name with an empty value.
func splitField(line []byte) (name, value []byte) {
	i := bytes.IndexByte(line, ':')
	if i < 0 {
		return line, nil
	}
	value = line[i+1:]
	if len(value) > 0 && value[0] == ' ' {
		value = value[1:]
	}
	return line[:i], value
}

// processField applies one field to the decoder's buffers. Unknown fields
// are ignored.
func (d *Decoder) processField(name, value []byte) {
	switch string(name) {
	case "event":
		d.typ = reuseString(d.typ, value)
	case "data":
		d.data = appendUTF8(d.data, value)
		d.data = append(d.data, '\n')
	case "id":
		if bytes.IndexByte(value, 0) < 0 {
			d.lastID = reuseString(d.lastID, value)
		}
	case "retry":
		if r, ok := parseRetry(value); ok {
			d.retry = r
		}
	}
}

// dispatch ends the current event. It reports false, after resetting the
// event type, if the data buffer is empty.
func (d *Decoder) dispatch() (Message, bool) {
	if len(d.data) == 0 {
		d.typ = ""
		return Message{}, false
	}
	msg := Message{
		Type:        d.typ,
		Data:        string(d.data[:len(d.data)-1]),
		LastEventID: d.lastID,
	}
	if msg.Type == "" {
		msg.Type = defaultType
	}
	d.typ = ""
	d.data = d.data[:0]
	if cap(d.data) > maxRetainedBuffer {
		d.data = nil
	}
	return msg, true
}

// parseRetry parses a retry field value in milliseconds. It reports false
// unless the value is one or more ASCII digits.
func parseRetry(v []byte) (time.Duration, bool) {
	const maxMillis = int64(math.MaxInt64 / time.Millisecond)
	if len(v) == 0 {
		return 0, false
	}
	var ms int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		if ms <= maxMillis {
			ms = ms*10 + int64(c-'0')
		}
	}
	if ms > maxMillis {
		return math.MaxInt64, true
	}
	return time.Duration(ms) * time.Millisecond, true
}

// reuseString returns old if it equals the decoding of b, which avoids an
// allocation when a field repeats its previous value, and the decoding of b
// otherwise.
func reuseString(old string, b []byte) string {
	if string(b) == old {
		return old
	}
	if utf8.Valid(b) {
		return string(b)
	}
	return string(appendUTF8(nil, b))
}

// appendUTF8 appends src to dst, replacing each maximal subpart of an
// ill-formed UTF-8 sequence with U+FFFD as the WHATWG "UTF-8 decode"
// algorithm does.
func appendUTF8(dst, src []byte) []byte {
	if utf8.Valid(src) {
		return append(dst, src...)
	}
	for len(src) > 0 {
		if r, size := utf8.DecodeRune(src); r != utf8.RuneError || size > 1 {
			dst = append(dst, src[:size]...)
			src = src[size:]
			continue
		}
		dst = utf8.AppendRune(dst, utf8.RuneError)
		src = src[maximalSubpart(src):]
	}
	return dst
}

// maximalSubpart returns the length of the ill-formed sequence at the start
// of p: the lead byte plus the continuation bytes that were acceptable
// before the sequence broke off, and at least 1.
func maximalSubpart(p []byte) int {
	need, lo, hi := leadByte(p[0])
	n := 1
	for ; n <= need && n < len(p); n++ {
		if p[n] < lo || p[n] > hi {
			break
		}
		lo, hi = 0x80, 0xBF
	}
	return n
}

// leadByte returns how many continuation bytes the UTF-8 lead byte b
// announces and the accepted range of the first of them. It returns 0
// continuation bytes if b cannot start a sequence.
func leadByte(b byte) (need int, lo, hi byte) {
	switch {
	case 0xC2 <= b && b <= 0xDF:
		return 1, 0x80, 0xBF
	case b == 0xE0:
		return 2, 0xA0, 0xBF
	case b == 0xED:
		return 2, 0x80, 0x9F
	case 0xE1 <= b && b <= 0xEF:
		return 2, 0x80, 0xBF
	case b == 0xF0:
		return 3, 0x90, 0xBF
	case b == 0xF4:
		return 3, 0x80, 0x8F
	case 0xF1 <= b && b <= 0xF3:
		return 3, 0x80, 0xBF
	}
	return 0, 0, 0
}
