package poller

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// contentTypeServer answers {"a":1} and 1 MiB of padding with the Content-Type of the query's ct.
func contentTypeServer(t *testing.T) *httptest.Server {
	t.Helper()
	padding := strings.Repeat(" ", 1<<20)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ct := r.URL.Query().Get("ct"); ct != "" {
			w.Header().Set("Content-Type", ct)
		} else {
			w.Header()["Content-Type"] = nil // no sniffing: no Content-Type at all
		}
		_, _ = w.Write([]byte(`{"a":1}` + padding))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestContentTypeCheck(t *testing.T) {
	t.Parallel()
	srv := contentTypeServer(t)
	long := "application/" + strings.Repeat("x", 100)
	tests := []struct {
		name, ct, reason string
	}{
		{"html refused", "text/html", "not JSON (Content-Type text/html)"},
		{"parameters left out", "text/html; charset=utf-8", "not JSON (Content-Type text/html)"},
		{"xml refused, lowercased", "Application/XML", "not JSON (Content-Type application/xml)"},
		{"long type truncated", long, "not JSON (Content-Type " + long[:64] + ")"},
		{"json", "application/json", ""},
		{"json with charset", "application/json; charset=utf-8", ""},
		{"problem+json", "application/problem+json", ""},
		{"vendor +json", "application/vnd.api+json", ""},
		{"text/json", "text/json", ""},
		{"text/plain", "text/plain; charset=utf-8", ""},
		{"octet-stream", "application/octet-stream", ""},
		{"missing", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var read atomic.Int64
			p := newPoller(t, Config{URL: srv.URL + "?ct=" + url.QueryEscape(tc.ct), Client: countingClient(&read)})
			res := p.Poll(context.Background())
			if tc.reason == "" {
				if res.Err != nil || string(bytes.TrimSpace(res.Body)) != `{"a":1}` {
					t.Fatalf("result %v %q; want the body", res.Err, res.Body)
				}
				return
			}
			var perr *Error
			if !errors.As(res.Err, &perr) || perr.Reason != tc.reason || perr.Status != 200 || res.Body != nil {
				t.Fatalf("error %v; want reason %q", res.Err, tc.reason)
			}
			if got := read.Load(); got > refusedDiscard {
				t.Fatalf("read %d bytes of a refused body; want at most %d", got, refusedDiscard)
			}
		})
	}
}

// gzipped compresses b.
func gzipped(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

var (
	bombOnce sync.Once
	bomb     []byte
)

// gzipBomb returns 10 MiB of zeros, gzipped.
func gzipBomb(t *testing.T) []byte {
	bombOnce.Do(func() { bomb = gzipped(t, make([]byte, 10<<20)) })
	return bomb
}

func TestGzipBodyLimit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		header   http.Header
		encoding string
		body     []byte
		reason   string
		want     string
	}{
		{"bomb, default Accept-Encoding", nil, "gzip", gzipBomb(t), "body too large: over 1048576 bytes", ""},
		{"bomb, configured gzip", http.Header{"Accept-Encoding": {"gzip"}}, "gzip", gzipBomb(t), "body too large: over 1048576 bytes", ""},
		{"bomb, configured identity ignored", http.Header{"Accept-Encoding": {"identity"}}, "gzip", gzipBomb(t), "body too large: over 1048576 bytes", ""},
		{"bomb as x-gzip", nil, "x-gzip", gzipBomb(t), "body too large: over 1048576 bytes", ""},
		{"small gzip decoded", nil, "gzip", gzipped(t, []byte(`{"a":1}`)), "", `{"a":1}`},
		{"corrupt gzip", nil, "gzip", []byte("not gzip at all"), "bad gzip body", ""},
		{"empty gzip", nil, "gzip", nil, "bad gzip body", ""},
		{"unsupported coding", nil, "br", []byte("xx"), "unsupported Content-Encoding br", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv, gotAE := encodedServer(t, tc.encoding, tc.body)
			var read atomic.Int64
			p := newPoller(t, Config{URL: srv.URL, Header: tc.header, MaxBody: 1 << 20, Client: countingClient(&read)})
			res := p.Poll(context.Background())
			wantAE := "gzip"
			if tc.header != nil {
				wantAE = tc.header.Get("Accept-Encoding")
			}
			if got := gotAE.Load(); got != wantAE {
				t.Fatalf("Accept-Encoding %q; want %q", got, wantAE)
			}
			checkGzipResult(t, res, tc.reason, tc.want)
			if tc.reason == "body too large: over 1048576 bytes" && read.Load() > int64(len(tc.body))/2 {
				t.Fatalf("read %d of %d compressed bytes: inflated past the limit", read.Load(), len(tc.body))
			}
		})
	}
}

// encodedServer answers body with Content-Encoding encoding, and keeps the Accept-Encoding
// of the last request.
func encodedServer(t *testing.T, encoding string, body []byte) (*httptest.Server, *atomic.Value) {
	t.Helper()
	var gotAE atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAE.Store(r.Header.Get("Accept-Encoding"))
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Encoding", encoding)
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv, &gotAE
}

func checkGzipResult(t *testing.T, res Result, reason, body string) {
	t.Helper()
	var perr *Error
	switch {
	case reason == "" && (res.Err != nil || string(res.Body) != body):
		t.Fatalf("result %v %q; want %q", res.Err, res.Body, body)
	case reason != "" && (!errors.As(res.Err, &perr) || perr.Reason != reason || res.Body != nil):
		t.Fatalf("error %v; want reason %q", res.Err, reason)
	case res.Duration > time.Second:
		t.Fatalf("poll took %v", res.Duration)
	}
}
