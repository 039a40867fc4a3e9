package sse

import (
	"bytes"
	"math"
	"math/big"
	"math/rand"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func FuzzRoundTrip(f *testing.F) {
	seeds := []struct {
		id, event, data string
		seed            int64
	}{
		{"1", "doc", `{"a":1}`, 0},
		{"", "", "", 1},
		{"v1", "", "a\nb", 2},
		{"", "e", "a\rb", 3},
		{"x", "y", "a\r\nb\rc\nd\n\r", 4},
		{"\uFEFF", "\uFEFFe", "\uFEFFdata", 5},
		{" ", " ", " x\r", -1},
		{"", "", "\r\n\r\n", 7},
		{"", "message", "\n", math.MaxInt64},
		{"id", "ev", "\r", math.MinInt64},
		{"a\nb", "e", "x", 8},
		{"a\rb", "e", "x", 9},
		{"a\r\nb", "e", "x", 10},
		{"id", "ev\n", "x", 11},
		{"\x00", "a", "b", 12},
		{"a", "\x00", "b", 13},
		{"a", "b", "c\x00", 14},
		{"\xff", "e", "x", 15},
		{"i", "\xe2\x82", "x", 16},
		{"i", "e", "\xed\xa0\x80", 17},
		{"i", "e", "ok\xc0", 18},
		{"é☃", "😀", "\uFFFD", 19},
		{"", ":", "data: x\n\nid: 2", 20},
	}
	for _, s := range seeds {
		f.Add(s.id, s.event, s.data, s.seed)
	}
	f.Fuzz(func(t *testing.T, id, event, data string, seed int64) {
		ev, ok := buildEvent(t, id, event, data)
		if !ok {
			return
		}
		checkEncoding(t, ev)
		stream, retry, comment := encodeStream(t, ev, event, seed)
		got, err := decodeAll(newChunkReader(stream, seed, chunkMax(seed)))
		if err != nil {
			t.Fatalf("decode %q: %v", stream, err)
		}
		typ := event
		if typ == "" {
			typ = "message"
		}
		want := decodeResult{
			Messages: []Message{{Type: typ, Data: normalizeBreaks(data), LastEventID: id}},
			Retry:    retry,
			Comments: comment,
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("stream %q:\n got %+v\nwant %+v", stream, got, want)
		}
	})
}

// buildEvent constructs the event and checks that every rejection, and every
// acceptance, is justified by the input.
func buildEvent(t *testing.T, id, event, data string) (Event, bool) {
	t.Helper()
	idv, errID := NewID(id)
	justified(t, "NewID", id, errID, fieldForbidden(id))
	name, errName := NewName(event)
	justified(t, "NewName", event, errName, fieldForbidden(event))
	ev, errData := NewEvent(name, idv, []byte(data))
	justified(t, "NewEvent", data, errData, dataForbidden(data))
	return ev, errID == nil && errName == nil && errData == nil
}

func justified(t *testing.T, fn, in string, err error, forbidden bool) {
	t.Helper()
	if (err != nil) != forbidden {
		t.Fatalf("%s(%q) error = %v, but forbidden content = %v", fn, in, err, forbidden)
	}
}

func fieldForbidden(s string) bool {
	return strings.ContainsAny(s, "\r\n\x00") || !utf8.ValidString(s)
}

func dataForbidden(s string) bool {
	return strings.IndexByte(s, 0) >= 0 || !utf8.ValidString(s)
}

// checkEncoding checks that the encoding entry points agree.
func checkEncoding(t *testing.T, ev Event) {
	t.Helper()
	enc := ev.Encode()
	if len(enc) != ev.Len() || cap(enc) != len(enc) {
		t.Fatalf("Encode len %d cap %d, Len() %d", len(enc), cap(enc), ev.Len())
	}
	if app := ev.AppendTo(nil); !bytes.Equal(app, enc) {
		t.Fatalf("AppendTo = %q, Encode = %q", app, enc)
	}
	if !bytes.HasSuffix(enc, []byte("\n\n")) || bytes.Contains(enc, []byte("\r")) {
		t.Fatalf("malformed frame %q", enc)
	}
}

// encodeStream builds a stream of an optional BOM (odd seed), a retry field,
// an optional comment carrying the event name (seed bit 1) and the event. It
// returns the stream, the retry a client must see and the comment count.
func encodeStream(t *testing.T, ev Event, comment string, seed int64) ([]byte, time.Duration, int) {
	t.Helper()
	var stream []byte
	if seed&1 == 1 {
		stream = append(stream, bom...)
	}
	d := time.Duration(seed)
	stream = AppendRetry(stream, d)
	comments := 0
	if seed&2 != 0 {
		var err error
		if stream, err = AppendComment(stream, comment); err != nil {
			t.Fatalf("AppendComment(%q): %v", comment, err)
		}
		comments = 1
	}
	return ev.AppendTo(stream), max(d.Truncate(time.Millisecond), 0), comments
}

// chunkMax derives the largest read size from seed.
func chunkMax(seed int64) int {
	return 1 + rand.New(rand.NewSource(seed)).Intn(64)
}

// normalizeBreaks replaces CRLF and lone CR with LF.
func normalizeBreaks(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n")
}

func FuzzDecoder(f *testing.F) {
	for _, s := range []string{
		"",
		"data: x\n\n",
		"\uFEFFdata: x\r\n\r\n",
		"\uFEFF\uFEFFdata: x\r\r",
		"event: e\rid: 1\rdata: a\r\ndata: b\n\n",
		": c\nretry: 10\nretry: x\nid: a\x00b\ndata\n\n",
		"data: \xe2\x82A\xed\xa0\x80\xf0\x9f\x98\n\n",
		"id: 1\ndata: a\n\ndata: b\n\nid\ndata: c\n\n",
		"event: x\n\ndata: y\n",
		"data: a\r",
		"retry: 99999999999999999999\n",
		"\xEF\xBBdata: x\n\n",
	} {
		f.Add([]byte(s), int64(len(s)))
	}
	f.Fuzz(func(t *testing.T, input []byte, seed int64) {
		want := referenceParse(input)
		whole, err := decodeAll(bytes.NewReader(input))
		if err != nil {
			t.Fatalf("decode whole: %v", err)
		}
		chunked, err := decodeAll(newChunkReader(input, seed, chunkMax(seed)))
		if err != nil {
			t.Fatalf("decode chunked: %v", err)
		}
		if !reflect.DeepEqual(whole, chunked) {
			t.Fatalf("input %q: chunkings differ:\nwhole   %+v\nchunked %+v", input, whole, chunked)
		}
		if !reflect.DeepEqual(whole, want) {
			t.Fatalf("input %q:\n got %+v\nwant %+v", input, whole, want)
		}
	})
}

// referenceParse interprets an event stream by following the specification
// step by step on the whole input at once.
func referenceParse(input []byte) decodeResult {
	s := strings.TrimPrefix(string(referenceUTF8Decode(input)), "\uFEFF")
	var (
		res               decodeResult
		data, typ, lastID string
		line              string
		ok                bool
	)
	for {
		if line, s, ok = cutLine(s); !ok {
			return res
		}
		if line == "" {
			if data != "" {
				m := Message{Type: typ, Data: strings.TrimSuffix(data, "\n"), LastEventID: lastID}
				if m.Type == "" {
					m.Type = "message"
				}
				res.Messages = append(res.Messages, m)
			}
			data, typ = "", ""
			continue
		}
		if line[0] == ':' {
			res.Comments++
			continue
		}
		name, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch name {
		case "event":
			typ = value
		case "data":
			data += value + "\n"
		case "id":
			if !strings.ContainsRune(value, 0) {
				lastID = value
			}
		case "retry":
			if value != "" && strings.Trim(value, "0123456789") == "" {
				res.Retry = referenceRetry(value)
			}
		}
	}
}

// cutLine splits off the first line terminated by CRLF, CR or LF.
func cutLine(s string) (line, rest string, ok bool) {
	i := strings.IndexAny(s, "\r\n")
	if i < 0 {
		return "", s, false
	}
	if strings.HasPrefix(s[i:], "\r\n") {
		return s[:i], s[i+2:], true
	}
	return s[:i], s[i+1:], true
}

func referenceRetry(digits string) time.Duration {
	ms := new(big.Int)
	ms.SetString(digits, 10)
	ns := ms.Mul(ms, big.NewInt(int64(time.Millisecond)))
	if !ns.IsInt64() {
		return math.MaxInt64
	}
	return time.Duration(ns.Int64())
}

// referenceUTF8Decode is the UTF-8 decoder of the WHATWG Encoding standard,
// without BOM handling, written as the standard's state machine.
func referenceUTF8Decode(b []byte) []rune {
	var (
		out          []rune
		cp           rune
		seen, needed int
		lower, upper byte = 0x80, 0xBF
	)
	for i := 0; i < len(b); {
		c := b[i]
		if needed == 0 {
			switch {
			case c <= 0x7F:
				out = append(out, rune(c))
			case 0xC2 <= c && c <= 0xDF:
				needed, cp = 1, rune(c&0x1F)
			case 0xE0 <= c && c <= 0xEF:
				if c == 0xE0 {
					lower = 0xA0
				}
				if c == 0xED {
					upper = 0x9F
				}
				needed, cp = 2, rune(c&0xF)
			case 0xF0 <= c && c <= 0xF4:
				if c == 0xF0 {
					lower = 0x90
				}
				if c == 0xF4 {
					upper = 0x8F
				}
				needed, cp = 3, rune(c&0x7)
			default:
				out = append(out, utf8.RuneError)
			}
			i++
			continue
		}
		if c < lower || c > upper {
			cp, needed, seen, lower, upper = 0, 0, 0, 0x80, 0xBF
			out = append(out, utf8.RuneError)
			continue // the byte is processed again
		}
		lower, upper = 0x80, 0xBF
		cp = cp<<6 | rune(c&0x3F)
		seen++
		i++
		if seen == needed {
			out = append(out, cp)
			cp, needed, seen = 0, 0, 0
		}
	}
	if needed != 0 {
		out = append(out, utf8.RuneError)
	}
	return out
}
