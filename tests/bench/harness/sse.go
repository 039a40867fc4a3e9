package main

import "bytes"

// Kind is an event's type, as far as the benchmark cares.
type Kind uint8

// Event kinds.
const (
	KindMessage  Kind = iota // no event field
	KindSnapshot             // event: snapshot
	KindPatch                // event: patch
	KindUpstream             // event: upstream
	KindOther                // any other event type
)

// String names the kind.
func (k Kind) String() string {
	switch k {
	case KindMessage:
		return "message"
	case KindSnapshot:
		return "snapshot"
	case KindPatch:
		return "patch"
	case KindUpstream:
		return "upstream"
	}
	return "other"
}

// Event is what the parser reports for one dispatched event. Its data is not kept: only
// its length and the highest marker T<seq>_<nanos> found in it.
type Event struct {
	Kind    Kind
	DataLen int
	Seq     int64 // the marker's sequence number; valid when HasMark
	Nanos   int64 // the marker's publish time in Unix nanoseconds; valid when HasMark
	HasMark bool
}

// parser states.
const (
	stLineStart  = iota // at the start of a line
	stField             // reading a field name
	stValueStart        // after the colon: one space may follow
	stValue             // reading a field value
	stComment           // reading a comment line
)

// field kinds of the line being read.
const (
	fOther = iota
	fData
	fEvent
	fID
)

// Parser decodes a text/event-stream incrementally from byte slices, with a fixed, small
// amount of state: event data is scanned for markers, never stored.
type Parser struct {
	OnEvent func(Event)

	state    uint8
	afterCR  bool // the last byte was a CR: a following LF belongs to the same line end
	field    [8]byte
	fieldLen int
	cur      int // field kind of the line being read

	typ     [16]byte
	typLen  int // -1 when the type overflowed
	id      [64]byte
	idLen   int // -1 when the id overflowed
	lastID  [64]byte
	lastLen int

	hasData bool
	dataLen int
	mark    markScanner
}

// LastID returns the last event id the stream set.
func (p *Parser) LastID() string { return string(p.lastID[:p.lastLen]) }

// Feed parses b; events complete within it are reported to OnEvent.
func (p *Parser) Feed(b []byte) {
	for i := 0; i < len(b); {
		if p.afterCR {
			p.afterCR = false
			if b[i] == '\n' {
				i++
				continue
			}
		}
		if p.state == stValue && p.cur == fData {
			i = p.dataValue(b, i)
			continue
		}
		p.step(b[i])
		i++
	}
}

// dataValue consumes the value of a data line from b[i:] up to and including its line
// end, scanning it for markers, and returns the next index.
func (p *Parser) dataValue(b []byte, i int) int {
	seg := b[i:]
	end := len(seg)
	if j := bytes.IndexByte(seg, '\n'); j >= 0 {
		end = j
	}
	if j := bytes.IndexByte(seg[:end], '\r'); j >= 0 {
		end = j
	}
	p.dataLen += end
	p.mark.scan(seg[:end])
	if end == len(seg) {
		return len(b)
	}
	p.endLine(seg[end] == '\r')
	return i + end + 1
}

// step consumes one byte outside a data value.
func (p *Parser) step(c byte) {
	if c == '\n' || c == '\r' {
		p.endLine(c == '\r')
		return
	}
	switch p.state {
	case stLineStart:
		if c == ':' {
			p.state = stComment
			return
		}
		p.state = stField
		p.fieldLen = 0
		p.addFieldByte(c)
	case stField:
		if c == ':' {
			p.startValue()
			p.state = stValueStart
			return
		}
		p.addFieldByte(c)
	case stValueStart:
		p.state = stValue
		if c != ' ' {
			p.valueByte(c)
		}
	case stValue:
		p.valueByte(c)
	}
}

func (p *Parser) addFieldByte(c byte) {
	if p.fieldLen < len(p.field) {
		p.field[p.fieldLen] = c
	}
	p.fieldLen++
}

// startValue decides which field the line holds, once its name is complete.
func (p *Parser) startValue() {
	name := p.field[:min(p.fieldLen, len(p.field))]
	if p.fieldLen > len(p.field) {
		name = nil
	}
	switch string(name) {
	case "data":
		p.cur = fData
		if p.hasData {
			p.dataLen++ // the line feed that joins data lines
		}
		p.hasData = true
		p.mark.reset()
	case "event":
		p.cur = fEvent
		p.typLen = 0
	case "id":
		p.cur = fID
		p.idLen = 0
	default:
		p.cur = fOther
	}
}

// valueByte adds one byte of an event or id value.
func (p *Parser) valueByte(c byte) {
	switch p.cur {
	case fEvent:
		p.typLen = appendBounded(p.typ[:], p.typLen, c)
	case fID:
		p.idLen = appendBounded(p.id[:], p.idLen, c)
	case fData:
		p.dataLen++
		p.mark.scan([]byte{c})
	}
}

// appendBounded writes c at buf[n] and returns the new length, or -1 once buf overflowed.
func appendBounded(buf []byte, n int, c byte) int {
	if n < 0 || n >= len(buf) {
		return -1
	}
	buf[n] = c
	return n + 1
}

// endLine finishes the current line; an empty line dispatches the event.
func (p *Parser) endLine(cr bool) {
	p.afterCR = cr
	switch p.state {
	case stLineStart:
		p.dispatch()
		return
	case stField:
		p.startValue() // a field with no colon has an empty value
	}
	if p.cur == fData {
		p.mark.finish()
	}
	if p.cur == fID && p.idLen >= 0 {
		copy(p.lastID[:], p.id[:p.idLen])
		p.lastLen = p.idLen
	}
	p.state = stLineStart
	p.cur = fOther
}

// dispatch reports the event gathered so far, if it has data, and starts the next.
func (p *Parser) dispatch() {
	if p.hasData && p.OnEvent != nil {
		ev := Event{Kind: p.kind(), DataLen: p.dataLen}
		if p.mark.found {
			ev.Seq, ev.Nanos, ev.HasMark = p.mark.bestSeq, p.mark.bestNanos, true
		}
		p.OnEvent(ev)
	}
	p.hasData = false
	p.dataLen = 0
	p.typLen = 0
	p.mark = markScanner{}
}

// kind maps the event type to a Kind.
func (p *Parser) kind() Kind {
	if p.typLen < 0 {
		return KindOther
	}
	switch string(p.typ[:p.typLen]) {
	case "", "message":
		return KindMessage
	case "snapshot":
		return KindSnapshot
	case "patch":
		return KindPatch
	case "upstream":
		return KindUpstream
	}
	return KindOther
}

// markScanner finds markers T<seq>_<nanos> in a byte stream and keeps the one with the
// highest seq.
type markScanner struct {
	state     uint8 // 0 looking for T, 1 in seq digits, 2 in nanos digits
	digits    int
	seq       int64
	nanos     int64
	found     bool
	bestSeq   int64
	bestNanos int64
}

// reset forgets a partial marker, keeping those found.
func (m *markScanner) reset() {
	m.state, m.digits, m.seq, m.nanos = 0, 0, 0, 0
}

// scan consumes b.
func (m *markScanner) scan(b []byte) {
	for i := 0; i < len(b); {
		if m.state == 0 {
			j := bytes.IndexByte(b[i:], 'T')
			if j < 0 {
				return
			}
			i += j + 1
			m.state, m.digits, m.seq = 1, 0, 0
			continue
		}
		m.byte(b[i])
		i++
	}
}

// byte advances a partial marker by c.
func (m *markScanner) byte(c byte) {
	isDigit := c >= '0' && c <= '9'
	switch {
	case isDigit && m.digits < 19:
		if m.state == 1 {
			m.seq = m.seq*10 + int64(c-'0')
		} else {
			m.nanos = m.nanos*10 + int64(c-'0')
		}
		m.digits++
	case m.state == 1 && c == '_' && m.digits > 0:
		m.state, m.digits, m.nanos = 2, 0, 0
	default:
		m.finish()
		if c == 'T' {
			m.state, m.digits, m.seq = 1, 0, 0
		}
	}
}

// finish completes a marker that ends here, if one does.
func (m *markScanner) finish() {
	if m.state == 2 && m.digits > 0 && (!m.found || m.seq > m.bestSeq) {
		m.found, m.bestSeq, m.bestNanos = true, m.seq, m.nanos
	}
	m.reset()
}
