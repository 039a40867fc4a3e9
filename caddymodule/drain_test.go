package caddymodule

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// streamWriter is a ResponseWriter that cannot be hijacked, as HTTP/2's: a stream
// written to it stays on the ResponseWriter path.
type streamWriter struct {
	header http.Header
	first  chan struct{} // closed at the first write

	mu  sync.Mutex
	buf bytes.Buffer
}

func newStreamWriter() *streamWriter {
	return &streamWriter{header: http.Header{}, first: make(chan struct{})}
}

func (w *streamWriter) Header() http.Header { return w.header }
func (w *streamWriter) WriteHeader(int)     {}
func (w *streamWriter) Flush()              {}

func (w *streamWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.buf.Len() == 0 {
		close(w.first)
	}
	return w.buf.Write(p)
}

// openStreams serves n streams with h, each until it ends or ctx does, and waits until
// each has been written to. The returned channel gets the end time of each.
func openStreams(ctx context.Context, t *testing.T, h *Handler, n int) <-chan time.Time {
	t.Helper()
	ended := make(chan time.Time, n)
	for range n {
		w := newStreamWriter()
		r := httptest.NewRequestWithContext(ctx, http.MethodGet, "/", nil)
		r.Header.Set("Accept", "text/event-stream")
		go func() {
			_ = h.ServeHTTP(w, r, nil)
			ended <- time.Now()
		}()
		select {
		case <-w.first:
		case <-time.After(5 * time.Second):
			t.Fatal("no frame written to a stream within 5s")
		}
	}
	return ended
}

// newDrainHandler loads a handler with drain 500ms polling a steady upstream.
func newDrainHandler(t *testing.T) *Handler {
	t.Helper()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"rev":1}`))
	}))
	t.Cleanup(up.Close)
	h, err := loadHandler(t, `{"upstream": "`+up.URL+`/x", "interval": "50ms", "drain": "500ms"}`)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestRetiredServerDrainsStreams checks that when the server of a handler begins to
// shut down (not on exit), its streams written through the ResponseWriter end spread
// over the drain window, not at once and not after it (with slack), and that a stream
// whose request reaches the handler after that is drained too, rather than held open by
// a server that is going away.
func TestRetiredServerDrainsStreams(t *testing.T) {
	t.Parallel()
	const n, window, slack = 20, 500 * time.Millisecond, 2 * time.Second
	h := newDrainHandler(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ended := openStreams(ctx, t, h, n)
	start := time.Now()
	h.serverRetiring()
	var first, last time.Duration
	for i := range n {
		at := (<-ended).Sub(start)
		if i == 0 {
			first = at
		}
		last = at
	}
	t.Logf("%d streams ended from %v to %v after their server began to shut down", n, first, last)
	if last > window+slack || last-first < window/2 {
		t.Errorf("streams ended from %v to %v after the retirement; want them spread over drain %v", first, last, window)
	}
	late := openStreams(ctx, t, h, 1)
	select {
	case <-late:
	case <-time.After(window + slack):
		t.Errorf("a stream opened after its server began to shut down is still open %v later", window+slack)
	}
}

// TestLateStreamEndsOnExit checks that a stream opened after its server began to shut
// down, on a handler that had no stream then, is among the drains an exit ends at once.
func TestLateStreamEndsOnExit(t *testing.T) {
	t.Parallel()
	h := newDrainHandler(t)
	h.serverRetiring()
	if draining.holds(h) {
		t.Fatal("a handler without streams is listed as draining")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ended := openStreams(ctx, t, h, 1)
	if !draining.holds(h) {
		t.Error("the late stream's handler is not listed for an exit to end")
	}
	<-ended
}
