package caddymodule

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// countingWriter stands for a third-party wrapper: it counts the bytes written.
type countingWriter struct {
	http.ResponseWriter
	n int
}

func (w *countingWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	w.n += n
	return n, err
}

func (w *countingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// opaqueWriter wraps without Unwrap.
type opaqueWriter struct{ http.ResponseWriter }

// TestHijackerOnlyThroughPassThroughWrappers checks which chains of ResponseWriters a
// stream may be handed over through, before the header is written (by type) and after
// (by state too): net/http's own, beneath Caddy's pass-through wrappers only.
func TestHijackerOnlyThroughPassThroughWrappers(t *testing.T) {
	t.Parallel()
	buffering := func(int, http.Header) bool { return true }
	tests := []struct {
		name          string
		wrap          func(http.ResponseWriter) http.ResponseWriter
		before, after bool
	}{
		{"net/http's own", func(w http.ResponseWriter) http.ResponseWriter { return w }, true, true},
		{"caddyhttp wrapper", func(w http.ResponseWriter) http.ResponseWriter {
			return &caddyhttp.ResponseWriterWrapper{ResponseWriter: w}
		}, true, true},
		{"access log recorder", func(w http.ResponseWriter) http.ResponseWriter {
			return caddyhttp.NewResponseRecorder(w, nil, nil)
		}, true, true},
		{"buffering recorder", func(w http.ResponseWriter) http.ResponseWriter {
			return caddyhttp.NewResponseRecorder(w, new(bytes.Buffer), buffering)
		}, true, false},
		{"counting wrapper", func(w http.ResponseWriter) http.ResponseWriter {
			return &countingWriter{ResponseWriter: w}
		}, false, false},
		{"counting wrapper beneath a known one", func(w http.ResponseWriter) http.ResponseWriter {
			return &caddyhttp.ResponseWriterWrapper{ResponseWriter: &countingWriter{ResponseWriter: w}}
		}, false, false},
		{"wrapper without Unwrap", func(w http.ResponseWriter) http.ResponseWriter {
			return opaqueWriter{w}
		}, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := make(chan [2]bool, 1)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				ww := tc.wrap(w)
				before := hijacker(ww, false) != nil
				ww.WriteHeader(http.StatusOK)
				_, _ = ww.Write([]byte("data: x\n\n"))
				got <- [2]bool{before, hijacker(ww, true) != nil}
			}))
			defer srv.Close()
			resp, err := http.Get(srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			_ = resp.Body.Close()
			r := <-got
			if before, after := r[0], r[1]; before != tc.before || after != tc.after {
				t.Fatalf("hand-over before the header %v, after %v; want %v, %v", before, after, tc.before, tc.after)
			}
		})
	}
}

// TestHijackerCheckAllocatesNothing: the check every stream request makes of the chain
// Caddy builds (its wrapper, the access log's recorder, the idle timeouts' writer)
// allocates nothing. It does not run in parallel: AllocsPerRun counts the process's.
func TestHijackerCheckAllocatesNothing(t *testing.T) {
	allocs := make(chan float64, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		var ww http.ResponseWriter = caddyhttp.NewResponseRecorder(&caddyhttp.ResponseWriterWrapper{ResponseWriter: w}, nil, nil)
		ww = &caddyhttp.IdleTimeoutWriter{ResponseWriterWrapper: &caddyhttp.ResponseWriterWrapper{ResponseWriter: ww}}
		if hijacker(ww, false) == nil {
			t.Error("no hand-over through Caddy's pass-through wrappers")
		}
		allocs <- testing.AllocsPerRun(100, func() { hijacker(ww, false) })
	}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if n := <-allocs; n != 0 {
		t.Fatalf("the hand-over check allocates %v times", n)
	}
}
