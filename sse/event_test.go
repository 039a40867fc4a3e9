package sse

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestEventEncode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		event string
		id    string
		data  string
		want  string
	}{
		{"plain", "doc", "v1", `{"a":1}`, "event: doc\nid: v1\ndata: {\"a\":1}\n\n"},
		{"data only", "", "", "x", "data: x\n\n"},
		{"empty data", "", "", "", "data: \n\n"},
		{"empty data with name", "doc", "", "", "event: doc\ndata: \n\n"},
		{"id only", "", "7", "x", "id: 7\ndata: x\n\n"},
		{"name only", "doc", "", "x", "event: doc\ndata: x\n\n"},
		{"lf", "", "", "a\nb", "data: a\ndata: b\n\n"},
		{"cr", "", "", "a\rb", "data: a\ndata: b\n\n"},
		{"crlf", "", "", "a\r\nb", "data: a\ndata: b\n\n"},
		{"lfcr is two breaks", "", "", "a\n\rb", "data: a\ndata: \ndata: b\n\n"},
		{"mixed", "", "", "a\r\nb\rc\nd", "data: a\ndata: b\ndata: c\ndata: d\n\n"},
		{"trailing lf", "", "", "a\n", "data: a\ndata: \n\n"},
		{"trailing cr", "", "", "a\r", "data: a\ndata: \n\n"},
		{"leading crlf", "", "", "\r\na", "data: \ndata: a\n\n"},
		{"only breaks", "", "", "\r\n\r\n", "data: \ndata: \ndata: \n\n"},
		{"leading space", " n", " i", " d", "event:  n\nid:  i\ndata:  d\n\n"},
		{"space after break", "", "", "a\n b", "data: a\ndata:  b\n\n"},
		{"colons", "a:b", "c:d", "e: f", "event: a:b\nid: c:d\ndata: e: f\n\n"},
		{"unicode", "ünï", "☃", "\uFEFFé", "event: ünï\nid: ☃\ndata: \uFEFFé\n\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e, err := NewEvent(MustName(tt.event), MustID(tt.id), []byte(tt.data))
			if err != nil {
				t.Fatalf("NewEvent: %v", err)
			}
			got := e.Encode()
			if string(got) != tt.want {
				t.Fatalf("Encode = %q, want %q", got, tt.want)
			}
			if cap(got) != len(got) || e.Len() != len(got) {
				t.Errorf("len %d cap %d Len() %d: not exact", len(got), cap(got), e.Len())
			}
			prefix := []byte("prefix")
			if app := e.AppendTo(prefix); string(app) != "prefix"+tt.want {
				t.Errorf("AppendTo = %q, want prefix + %q", app, tt.want)
			}
			var buf bytes.Buffer
			n, err := e.WriteTo(&buf)
			if err != nil || n != int64(len(tt.want)) || buf.String() != tt.want {
				t.Errorf("WriteTo = %d, %v, %q; want %d, nil, %q", n, err, buf.String(), len(tt.want), tt.want)
			}
		})
	}
}

func TestZeroEvent(t *testing.T) {
	t.Parallel()
	var e Event
	if got := string(e.Encode()); got != "data: \n\n" {
		t.Fatalf("zero Event encodes as %q", got)
	}
}

func TestNewEventCopiesData(t *testing.T) {
	t.Parallel()
	data := []byte("abc")
	e, err := NewEvent(Name{}, ID{}, data)
	if err != nil {
		t.Fatal(err)
	}
	data[0] = 'X'
	if got := string(e.Encode()); got != "data: abc\n\n" {
		t.Fatalf("event changed with caller's slice: %q", got)
	}
}

func TestNewIDAndName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		value string
		ok    bool
	}{
		{"empty", "", true},
		{"plain", "abc-1.2_3", true},
		{"spaces", " a b ", true},
		{"unicode", "é☃", true},
		{"bom", "\uFEFF", true},
		{"replacement char", "\uFFFD", true},
		{"lf", "a\nb", false},
		{"cr", "a\rb", false},
		{"crlf", "a\r\n", false},
		{"nul", "a\x00b", false},
		{"invalid utf-8", "a\xffb", false},
		{"truncated utf-8", "\xe2\x82", false},
		{"surrogate", "\xed\xa0\x80", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			id, err := NewID(tt.value)
			checkFieldResult(t, "NewID", err, tt.ok)
			if tt.ok && (id.String() != tt.value || id.IsZero() != (tt.value == "")) {
				t.Errorf("NewID(%q) = %q, IsZero %v", tt.value, id.String(), id.IsZero())
			}
			n, err := NewName(tt.value)
			checkFieldResult(t, "NewName", err, tt.ok)
			if tt.ok && (n.String() != tt.value || n.IsZero() != (tt.value == "")) {
				t.Errorf("NewName(%q) = %q, IsZero %v", tt.value, n.String(), n.IsZero())
			}
			if !tt.ok && (!id.IsZero() || !n.IsZero()) {
				t.Errorf("rejected value produced non-zero ID %q or Name %q", id, n)
			}
		})
	}
}

func checkFieldResult(t *testing.T, fn string, err error, ok bool) {
	t.Helper()
	switch {
	case ok && err != nil:
		t.Errorf("%s: unexpected error %v", fn, err)
	case !ok && !errors.Is(err, ErrInvalidField):
		t.Errorf("%s: error %v, want ErrInvalidField", fn, err)
	}
}

func TestMustPanics(t *testing.T) {
	t.Parallel()
	for name, fn := range map[string]func(){
		"MustID":   func() { MustID("a\nb") },
		"MustName": func() { MustName("a\x00") },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			defer func() {
				if recover() == nil {
					t.Errorf("%s did not panic", name)
				}
			}()
			fn()
		})
	}
}

func TestNewEventRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		data string
	}{
		{"nul", "a\x00b"},
		{"nul only", "\x00"},
		{"invalid byte", "\xff"},
		{"truncated sequence", "a\xe2\x82"},
		{"overlong", "\xc0\xaf"},
		{"surrogate", "\xed\xb0\x80"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := NewEvent(Name{}, ID{}, []byte(tt.data))
			if !errors.Is(err, ErrInvalidData) {
				t.Fatalf("NewEvent(%q) error = %v, want ErrInvalidData", tt.data, err)
			}
		})
	}
}

func TestAppendRetry(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		d    time.Duration
		want string
	}{
		{"zero", 0, "retry: 0\n\n"},
		{"seconds", 3 * time.Second, "retry: 3000\n\n"},
		{"rounds down", 1999 * time.Microsecond, "retry: 1\n\n"},
		{"below a millisecond", time.Microsecond, "retry: 0\n\n"},
		{"negative", -5 * time.Second, "retry: 0\n\n"},
		{"minus one millisecond", -time.Millisecond, "retry: 0\n\n"},
		{"max", time.Duration(1<<63 - 1), "retry: 9223372036854\n\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := string(AppendRetry([]byte("x"), tt.d)); got != "x"+tt.want {
				t.Fatalf("AppendRetry(%v) = %q, want x + %q", tt.d, got, tt.want)
			}
		})
	}
}

func TestAppendComment(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		text string
		want string
		ok   bool
	}{
		{"empty", "", ":\n\n", true},
		{"text", "ping", ": ping\n\n", true},
		{"leading colon", ":x", ": :x\n\n", true},
		{"unicode", "♥", ": ♥\n\n", true},
		{"lf", "a\nb", "", false},
		{"cr", "a\r", "", false},
		{"nul", "\x00", "", false},
		{"invalid utf-8", "\xfe", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := AppendComment([]byte("x"), tt.text)
			if !tt.ok {
				if !errors.Is(err, ErrInvalidField) || string(got) != "x" {
					t.Fatalf("AppendComment(%q) = %q, %v; want x, ErrInvalidField", tt.text, got, err)
				}
				return
			}
			if err != nil || string(got) != "x"+tt.want {
				t.Fatalf("AppendComment(%q) = %q, %v; want x + %q", tt.text, got, err, tt.want)
			}
		})
	}
}

func TestErrorMessages(t *testing.T) {
	t.Parallel()
	_, err := NewID("ab\ncd")
	if err == nil || !strings.Contains(err.Error(), "offset 2") {
		t.Errorf("NewID error %v lacks the offset", err)
	}
	_, err = NewEvent(Name{}, ID{}, []byte("x\x00"))
	if err == nil || !strings.Contains(err.Error(), "offset 1") {
		t.Errorf("NewEvent error %v lacks the offset", err)
	}
}

type shortWriter struct{ n int }

func (w shortWriter) Write(p []byte) (int, error) { return min(w.n, len(p)), nil }

func TestWriteToShortWrite(t *testing.T) {
	t.Parallel()
	e, err := NewEvent(Name{}, ID{}, []byte("abc"))
	if err != nil {
		t.Fatal(err)
	}
	n, err := e.WriteTo(shortWriter{n: 3})
	if n != 3 || err == nil {
		t.Fatalf("WriteTo = %d, %v; want 3 and an error", n, err)
	}
}

func TestParseLastEventID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		v    string
		ok   bool
	}{
		{"simple", "v1", true},
		{"all classes", "AZaz09_.-", true},
		{"single", "0", true},
		{"64 bytes", strings.Repeat("a", 64), true},
		{"65 bytes", strings.Repeat("a", 65), false},
		{"empty", "", false},
		{"nul", "\x00", false},
		{"nul inside", "ab\x00cd", false},
		{"10 KB", strings.Repeat("x", 10<<10), false},
		{"non-utf-8", "ab\xff", false},
		{"utf-8 letter", "é", false},
		{"space", "a b", false},
		{"leading space", " a", false},
		{"trailing space", "a ", false},
		{"slash", "a/b", false},
		{"colon", "a:b", false},
		{"newline", "a\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			id, ok := ParseLastEventID(tt.v)
			if ok != tt.ok {
				t.Fatalf("ParseLastEventID(%q) ok = %v, want %v", tt.v, ok, tt.ok)
			}
			if want := map[bool]string{true: tt.v, false: ""}[tt.ok]; id != want {
				t.Fatalf("ParseLastEventID(%q) id = %q, want %q", tt.v, id, want)
			}
		})
	}
}

func BenchmarkEncode(b *testing.B) {
	data := benchJSON(1 << 10)
	e, err := NewEvent(MustName("doc"), MustID("v123456"), data)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("Encode", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(e.Len()))
		for b.Loop() {
			_ = e.Encode()
		}
	})
	b.Run("AppendTo", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(e.Len()))
		buf := make([]byte, 0, e.Len())
		for b.Loop() {
			buf = e.AppendTo(buf[:0])
		}
	})
}

// benchJSON returns a JSON document of about n bytes.
func benchJSON(n int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"items":[`)
	for i := 0; b.Len() < n-40; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"id":12345,"name":"widget"}`)
	}
	b.WriteString(`]}`)
	return b.Bytes()
}
