package caddymodule

import (
	"bufio"
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// netHTTPHead returns the response head net/http itself writes for a handler that sets
// hdr and Transfer-Encoding identity, writes the header and flushes, as a stream written
// through the ResponseWriter does.
func netHTTPHead(t *testing.T, hdr http.Header) []byte {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		for k, vs := range hdr {
			w.Header()[k] = vs
		}
		w.Header().Set("Transfer-Encoding", "identity")
		w.WriteHeader(http.StatusOK)
		_ = http.NewResponseController(w).Flush()
	}))
	defer srv.Close()
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	var head []byte
	for !bytes.HasSuffix(head, []byte("\r\n\r\n")) {
		line, err := br.ReadSlice('\n')
		if err != nil {
			t.Fatalf("reading net/http's head %q: %v", head, err)
		}
		head = append(head, line...)
	}
	return head
}

var dateValue = regexp.MustCompile(`(?m)^Date: .*\r$`)

// TestResponseHeadAsNetHTTPWritesIt compares the head a stream writes itself with the
// one net/http writes for the same header, byte for byte but for the time in Date:
// field order, repeated fields, a value with a line break, one with padding, an invalid
// field name, and a Date the handler set.
func TestResponseHeadAsNetHTTPWritesIt(t *testing.T) {
	t.Parallel()
	base := func() http.Header {
		h := http.Header{}
		setStreamHeaders(h)
		h.Set("Server", "Caddy")
		return h
	}
	cases := map[string]func(http.Header){
		"stream headers":   func(http.Header) {},
		"repeated field":   func(h http.Header) { h["X-Multi"] = []string{"a", "b"} },
		"line break":       func(h http.Header) { h.Set("X-Break", "a\r\nInjected: yes") },
		"padding":          func(h http.Header) { h.Set("X-Pad", "  padded \t") },
		"invalid name":     func(h http.Header) { h["Bad Name"] = []string{"v"} },
		"handler's Date":   func(h http.Header) { h.Set("Date", "Thu, 01 Jan 2026 00:00:00 GMT") },
		"alt-svc and more": func(h http.Header) { h.Set("Alt-Svc", `h3=":443"`); h.Set("Vary", "Accept") },
	}
	for name, edit := range cases {
		hdr := base()
		edit(hdr)
		want := dateValue.ReplaceAll(netHTTPHead(t, hdr), []byte("Date: -\r"))
		hdr.Set("Transfer-Encoding", "identity") // as the stream sets it
		got := dateValue.ReplaceAll(appendResponseHead(nil, hdr), []byte("Date: -\r"))
		if _, handlerDate := hdr["Date"]; handlerDate {
			want, got = netHTTPHead(t, hdr), appendResponseHead(nil, hdr)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: the head written is\n%q\nnet/http writes\n%q", name, got, want)
		}
	}
}

// TestWritesOwnHeadOnlyBehindInertWrappers: a stream writes its own head only over
// HTTP/1.1 and behind wrappers that do nothing when the header is written; behind the
// access log's recorder, which records the status, it goes through net/http.
func TestWritesOwnHeadOnlyBehindInertWrappers(t *testing.T) {
	t.Parallel()
	r11 := httptest.NewRequest(http.MethodGet, "/", nil)
	r10 := httptest.NewRequest(http.MethodGet, "/", nil)
	r10.ProtoMajor, r10.ProtoMinor, r10.Proto = 1, 0, "HTTP/1.0"
	rec := httptest.NewRecorder()
	plain := &caddyhttp.ResponseWriterWrapper{ResponseWriter: rec}
	logged := caddyhttp.NewResponseRecorder(rec, nil, nil)
	for _, tc := range []struct {
		name string
		w    http.ResponseWriter
		r    *http.Request
		want bool
	}{
		{"net/http's own", rec, r11, true},
		{"caddyhttp wrapper", plain, r11, true},
		{"access log recorder", logged, r11, false},
		{"caddyhttp wrapper over the recorder", &caddyhttp.ResponseWriterWrapper{ResponseWriter: logged}, r11, false},
		{"HTTP/1.0", rec, r10, false},
	} {
		if got := writesOwnHead(tc.w, tc.r); got != tc.want {
			t.Errorf("%s: writesOwnHead %v, want %v", tc.name, got, tc.want)
		}
	}
}
