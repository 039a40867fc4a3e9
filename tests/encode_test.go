package tests

import (
	"compress/gzip"
	"io"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

// TestEncodeInFront checks poll_sse behind Caddy's `encode` in the same route: a client
// that accepts the encoding gets an encoded stream whose events are flushed as they
// happen: the snapshot, then a patch promptly after an upstream change, while the
// response is still open.
func TestEncodeInFront(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		encoding string
		decode   func(io.Reader) (io.Reader, error)
	}{
		{"gzip", func(r io.Reader) (io.Reader, error) { return gzip.NewReader(r) }},
		{"zstd", func(r io.Reader) (io.Reader, error) {
			d, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
			if err != nil {
				return nil, err
			}
			return d.IOReadCloser(), nil
		}},
	} {
		t.Run(tc.encoding, func(t *testing.T) {
			t.Parallel()
			checkEncodedStream(t, tc.encoding, tc.decode)
		})
	}
}

func checkEncodedStream(t *testing.T, encoding string, decode func(io.Reader) (io.Reader, error)) {
	const prompt = time.Second // interval 50ms: a change is streamed well within this
	u := newUpstream(t, map[string]any{"rev": 0, "pad": "some text to compress"})
	route := "route {\n\tencode " + encoding + "\n\t" + indent(pollSSE(u.url(), "interval 50ms")) + "\n}"
	caddy := startCaddy(t, route)

	c := dialSSE(t, caddy.url(""), withHeader("Accept-Encoding", encoding), withBodyDecoder(decode))
	checkStreamHeaders(t, c.resp)
	if got := c.resp.Header.Get("Content-Encoding"); got != encoding {
		t.Fatalf("Content-Encoding %q, want %q: the stream was not encoded", got, encoding)
	}
	if r := c.mustNext(5 * time.Second); r.Type != "snapshot" {
		t.Fatalf("first event %q, want snapshot", r.Type)
	}

	changed := time.Now()
	got := c.waitFor(u.set(t, map[string]any{"rev": 1, "pad": "some text to compress"}), 5*time.Second)
	delay := time.Since(changed)
	t.Logf("%s: patch arrived %v after the upstream change", encoding, delay.Round(time.Millisecond))
	if len(got) != 1 || got[0].Type != "patch" {
		t.Errorf("want one patch, got %s", summarize(got))
	}
	if delay > prompt {
		t.Errorf("patch arrived %v after the change, want within %v: events are buffered", delay, prompt)
	}
}
