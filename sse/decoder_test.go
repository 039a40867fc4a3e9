package sse

import (
	"bytes"
	"errors"
	"io"
	"math"
	"math/rand"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// chunkReader returns the bytes of data in chunks of random size between 1
// and max bytes.
type chunkReader struct {
	data []byte
	rng  *rand.Rand
	max  int
}

func newChunkReader(data []byte, seed int64, max int) *chunkReader {
	return &chunkReader{data: data, rng: rand.New(rand.NewSource(seed)), max: max}
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := min(1+r.rng.Intn(r.max), len(p), len(r.data))
	copy(p, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

// splitReader returns each of its chunks from a separate Read call.
type splitReader struct{ chunks []string }

func (r *splitReader) Read(p []byte) (int, error) {
	for len(r.chunks) > 0 && r.chunks[0] == "" {
		r.chunks = r.chunks[1:]
	}
	if len(r.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.chunks[0])
	r.chunks[0] = r.chunks[0][n:]
	return n, nil
}

// decodeResult is everything a decoder reports for a stream.
type decodeResult struct {
	Messages []Message
	Retry    time.Duration
	Comments int
}

// decodeAll decodes r until an error and returns what was seen.
func decodeAll(r io.Reader) (decodeResult, error) {
	d := NewDecoder(r)
	var res decodeResult
	for {
		msg, err := d.Next()
		if err != nil {
			res.Retry, res.Comments = d.Retry(), d.Comments()
			if err == io.EOF {
				err = nil
			}
			return res, err
		}
		res.Messages = append(res.Messages, msg)
	}
}

// readers returns differently chunked readers over the same input.
func readers(input string) map[string]func() io.Reader {
	return map[string]func() io.Reader{
		"whole":    func() io.Reader { return strings.NewReader(input) },
		"one byte": func() io.Reader { return iotest.OneByteReader(strings.NewReader(input)) },
		"data+eof": func() io.Reader { return iotest.DataErrReader(strings.NewReader(input)) },
		"random":   func() io.Reader { return newChunkReader([]byte(input), 1, 5) },
	}
}

func msg(typ, data, id string) Message {
	return Message{Type: typ, Data: data, LastEventID: id}
}

func TestDecoder(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		input    string
		want     []Message
		retry    time.Duration
		comments int
	}{
		{name: "empty stream", input: ""},
		{name: "blank lines only", input: "\n\r\n\r\n\n"},
		{name: "lf", input: "data: hello\n\n", want: []Message{msg("message", "hello", "")}},
		{name: "crlf", input: "event: e\r\nid: 1\r\ndata: x\r\n\r\n", want: []Message{msg("e", "x", "1")}},
		{name: "cr", input: "event: e\rid: 1\rdata: x\r\r", want: []Message{msg("e", "x", "1")}},
		{name: "mixed endings", input: "data: a\rdata: b\r\ndata: c\n\r\n", want: []Message{msg("message", "a\nb\nc", "")}},
		{name: "lf cr is two line ends", input: "data: a\n\rdata: b\n\n", want: []Message{msg("message", "a", ""), msg("message", "b", "")}},
		{name: "bom at start", input: "\uFEFFdata: a\n\n", want: []Message{msg("message", "a", "")}},
		{name: "only one bom stripped", input: "\uFEFF\uFEFFdata: a\n\n"},
		{name: "bom then blank line", input: "\uFEFF\ndata: a\n\n", want: []Message{msg("message", "a", "")}},
		{name: "bom in data kept", input: "data: \uFEFFa\n\n", want: []Message{msg("message", "\uFEFFa", "")}},
		{name: "bom at later line start", input: "data: a\n\n\uFEFFdata: b\n\n", want: []Message{msg("message", "a", "")}},
		{name: "partial bom", input: "\xEF\xBBdata: a\n\n"},
		{name: "comments", input: ": ping\n:\n\n:data: no\ndata: x\n\n", want: []Message{msg("message", "x", "")}, comments: 3},
		{name: "comment inside event", input: "data: a\n: c\ndata: b\n\n", want: []Message{msg("message", "a\nb", "")}, comments: 1},
		{name: "retry", input: "retry: 1500\n\n", retry: 1500 * time.Millisecond},
		{name: "retry zero", input: "retry: 7\nretry: 0\n", retry: 0},
		{name: "retry last valid wins", input: "retry: 10\nretry: 20\nretry: x\n", retry: 20 * time.Millisecond},
		{name: "retry invalid", input: "retry: 15a\nretry: -1\nretry: 1.5\nretry:  5\nretry: \nretry\n"},
		{name: "retry saturates", input: "retry: 99999999999999999999\n", retry: math.MaxInt64},
		{name: "retry leading zeros", input: "retry: 0003\n", retry: 3 * time.Millisecond},
		{name: "id with nul ignored", input: "id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n", want: []Message{msg("message", "a", "1"), msg("message", "b", "1")}},
		{name: "id persists", input: "id: 1\ndata: a\n\ndata: b\n\nid\ndata: c\n\n", want: []Message{msg("message", "a", "1"), msg("message", "b", "1"), msg("message", "c", "")}},
		{name: "id without data", input: "id: 5\n\ndata: y\n\n", want: []Message{msg("message", "y", "5")}},
		{name: "id set after data", input: "data: y\nid: 9\n\n", want: []Message{msg("message", "y", "9")}},
		{name: "dispatch without data resets type", input: "event: x\n\ndata: y\n\n", want: []Message{msg("message", "y", "")}},
		{name: "eof without blank line", input: "data: a\n\nevent: e\ndata: b\n", want: []Message{msg("message", "a", "")}},
		{name: "eof mid line", input: "data: a"},
		{name: "eof mid retry line", input: "retry: 5", retry: 0},
		{name: "no colon", input: "data\n\n", want: []Message{msg("message", "", "")}},
		{name: "no colon repeated", input: "data\ndata\ndata\n\n", want: []Message{msg("message", "\n\n", "")}},
		{name: "no space", input: "data:a\n\n", want: []Message{msg("message", "a", "")}},
		{name: "two spaces", input: "data:  a\n\n", want: []Message{msg("message", " a", "")}},
		{name: "tab kept", input: "data:\ta\n\n", want: []Message{msg("message", "\ta", "")}},
		{name: "empty value", input: "data:\n\n", want: []Message{msg("message", "", "")}},
		{name: "one trailing lf stripped", input: "data: a\ndata:\n\n", want: []Message{msg("message", "a\n", "")}},
		{name: "colon in value", input: "data: a: b\n\n", want: []Message{msg("message", "a: b", "")}},
		{name: "unknown field", input: "foo: bar\nData: no\ndata: x\n\n", want: []Message{msg("message", "x", "")}},
		{name: "empty event value", input: "event: e\nevent\ndata: x\n\n", want: []Message{msg("message", "x", "")}},
		{name: "event type repeated", input: "event: e\ndata: 1\n\nevent: e\ndata: 2\n\n", want: []Message{msg("e", "1", ""), msg("e", "2", "")}},
		{name: "nul in data kept", input: "data: a\x00b\n\n", want: []Message{msg("message", "a\x00b", "")}},
		{name: "invalid byte", input: "data: a\xffb\n\n", want: []Message{msg("message", "a\uFFFDb", "")}},
		{name: "truncated sequence", input: "data: \xe2\x82A\n\n", want: []Message{msg("message", "\uFFFDA", "")}},
		{name: "truncated at line end", input: "data: \xf0\x9f\x98\ndata: x\n\n", want: []Message{msg("message", "\uFFFD\nx", "")}},
		{name: "surrogate", input: "data: \xed\xa0\x80\n\n", want: []Message{msg("message", "\uFFFD\uFFFD\uFFFD", "")}},
		{name: "overlong", input: "data: \xc0\xaf\n\n", want: []Message{msg("message", "\uFFFD\uFFFD", "")}},
		{name: "above max code point", input: "data: \xf4\x90\x80\x80\n\n", want: []Message{msg("message", "\uFFFD\uFFFD\uFFFD\uFFFD", "")}},
		{name: "literal replacement char", input: "data: \uFFFD\n\n", want: []Message{msg("message", "\uFFFD", "")}},
		{name: "invalid utf-8 in type and id", input: "event: \xffe\nid: \xfe\ndata: x\n\n", want: []Message{msg("\uFFFDe", "x", "\uFFFD")}},
		{name: "invalid field name", input: "d\xffata: x\n\n"},
	}
	for _, tt := range tests {
		for rname, newReader := range readers(tt.input) {
			t.Run(tt.name+"/"+rname, func(t *testing.T) {
				t.Parallel()
				got, err := decodeAll(newReader())
				if err != nil {
					t.Fatalf("decode: %v", err)
				}
				want := decodeResult{Messages: tt.want, Retry: tt.retry, Comments: tt.comments}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("decode %q:\n got %+v\nwant %+v", tt.input, got, want)
				}
			})
		}
	}
}

func TestDecoderChunkBoundaries(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		chunks []string
		want   []Message
	}{
		{"cr | lf is one line end", []string{"data: a\r", "\ndata: b\r\n\r\n"}, []Message{msg("message", "a\nb", "")}},
		{"cr | lf before blank line", []string{"data: a\r", "\n\r", "\n"}, []Message{msg("message", "a", "")}},
		{"cr | cr", []string{"data: a\r", "\r"}, []Message{msg("message", "a", "")}},
		{"cr | empty reads | lf", []string{"data: a\r", "", "", "\ndata: b\n\n"}, []Message{msg("message", "a\nb", "")}},
		{"bom split", []string{"\xEF", "\xBB", "\xBFdata: a\n\n"}, []Message{msg("message", "a", "")}},
		{"utf-8 split", []string{"data: \xE2", "\x98", "\x83\n\n"}, []Message{msg("message", "☃", "")}},
		{"field name split", []string{"da", "ta", ":", " ", "x\n", "\n"}, []Message{msg("message", "x", "")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := decodeAll(&splitReader{chunks: append([]string(nil), tt.chunks...)})
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !reflect.DeepEqual(got.Messages, tt.want) {
				t.Fatalf("got %+v, want %+v", got.Messages, tt.want)
			}
		})
	}
}

func TestDecoderDispatchesOnCRWithoutWaiting(t *testing.T) {
	t.Parallel()
	pr, pw := io.Pipe()
	defer pr.Close()
	go func() { _, _ = pw.Write([]byte("data: x\r\r")) }()
	done := make(chan Message, 1)
	go func() {
		m, _ := NewDecoder(pr).Next()
		done <- m
	}()
	select {
	case m := <-done:
		if m != msg("message", "x", "") {
			t.Fatalf("got %+v", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("decoder waited for more input after a CR-terminated blank line")
	}
}

func TestDecoderLongLine(t *testing.T) {
	t.Parallel()
	const size = 10 << 20
	data := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	input := make([]byte, 0, size+64)
	input = append(input, "data: "...)
	input = append(input, data...)
	input = append(input, "\r\ndata: end\r"...)
	input = append(input, "\n\r\n"...)
	got, err := decodeAll(newChunkReader(input, 7, 100<<10))
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Messages) != 1 {
		t.Fatalf("got %d messages, want 1", len(got.Messages))
	}
	if want := string(data) + "\nend"; got.Messages[0].Data != want {
		t.Fatalf("data of length %d differs from the expected %d bytes", len(got.Messages[0].Data), len(want))
	}
}

var errBroken = errors.New("broken pipe")

type errReader struct {
	data string
	err  error
}

func (r *errReader) Read(p []byte) (int, error) {
	if r.data == "" {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func TestDecoderReadError(t *testing.T) {
	t.Parallel()
	d := NewDecoder(&errReader{data: "data: a\n\ndata: b\n", err: errBroken})
	m, err := d.Next()
	if err != nil || m != msg("message", "a", "") {
		t.Fatalf("first Next = %+v, %v", m, err)
	}
	for i := range 2 {
		_, err = d.Next()
		if !errors.Is(err, errBroken) || err == errBroken {
			t.Fatalf("Next #%d error = %v, want wrapped errBroken", i+2, err)
		}
	}
}

func TestDecoderEOFSticky(t *testing.T) {
	t.Parallel()
	d := NewDecoder(strings.NewReader("data: a\n"))
	for i := range 3 {
		if _, err := d.Next(); err != io.EOF {
			t.Fatalf("Next #%d error = %v, want io.EOF", i+1, err)
		}
	}
}

func TestAppendUTF8(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"valid", "aé☃😀", "aé☃😀"},
		{"lone continuation", "\x80", "\uFFFD"},
		{"two continuations", "\x80\xbf", "\uFFFD\uFFFD"},
		{"invalid lead", "\xc1\xbf", "\uFFFD\uFFFD"},
		{"f5", "\xf5\x80", "\uFFFD\uFFFD"},
		{"e0 overlong", "\xe0\x80\x80", "\uFFFD\uFFFD\uFFFD"},
		{"e0 truncated", "\xe0\xa0", "\uFFFD"},
		{"f0 truncated twice", "\xf0\x9f\x98a", "\uFFFDa"},
		{"f0 overlong", "\xf0\x8f\xbf\xbf", "\uFFFD\uFFFD\uFFFD\uFFFD"},
		{"f4 in range truncated", "\xf4\x8f\xbf", "\uFFFD"},
		{"broken then valid", "\xe2\x82\xe2\x82\xac", "\uFFFD€"},
		{"lead then ascii", "\xc3a", "\uFFFDa"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := string(appendUTF8([]byte("x"), []byte(tt.in))); got != "x"+tt.want {
				t.Fatalf("appendUTF8(%q) = %q, want x + %q", tt.in, got, tt.want)
			}
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	e, err := NewEvent(MustName("doc"), MustID("v1"), benchJSON(1<<10))
	if err != nil {
		b.Fatal(err)
	}
	stream := bytes.Repeat(e.Encode(), 100)
	b.ReportAllocs()
	b.SetBytes(int64(len(stream)))
	for b.Loop() {
		d := NewDecoder(bytes.NewReader(stream))
		for {
			if _, err := d.Next(); err != nil {
				break
			}
		}
	}
}
