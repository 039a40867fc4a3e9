package tests

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// upstreamMode is how the fake upstream answers.
type upstreamMode int

const (
	serveJSON  upstreamMode = iota // 200 application/json with the current document
	serve500                       // 500 with a text body
	serveHTML                      // 200 text/html that is not JSON
	serveHang                      // no answer until the request is abandoned
	serveStall                     // 200 and half a JSON body, then nothing until abandoned
)

// maxHang bounds how long a hanging upstream request is held.
const maxHang = 10 * time.Second

// upstream is the legacy JSON endpoint Caddy polls. Its document and behaviour are set by
// the test; it records the arrival time of every request.
type upstream struct {
	srv     *httptest.Server
	release chan struct{} // closed at cleanup to free hanging requests

	mu   sync.Mutex
	doc  []byte
	mode upstreamMode
	hits []time.Time
}

// newUpstream starts an upstream serving doc.
func newUpstream(t testing.TB, doc any) *upstream {
	t.Helper()
	u := &upstream{release: make(chan struct{})}
	u.set(t, doc)
	u.srv = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(func() {
		close(u.release)
		u.srv.Close()
	})
	return u
}

// url returns the URL Caddy polls.
func (u *upstream) url() string { return u.srv.URL + "/state.json" }

func (u *upstream) serve(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	u.hits = append(u.hits, time.Now())
	mode, doc := u.mode, u.doc
	u.mu.Unlock()
	switch mode {
	case serve500:
		http.Error(w, "internal trouble", http.StatusInternalServerError)
	case serveHTML:
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte("<!doctype html><html><body><h1>Maintenance</h1>{not json</body></html>"))
	case serveHang:
		u.hang(r)
	case serveStall:
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(doc[:len(doc)/2])
		http.NewResponseController(w).Flush()
		u.hang(r)
	default:
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(doc)
	}
}

// hang holds a request until the client abandons it, the test ends, or maxHang passes.
func (u *upstream) hang(r *http.Request) {
	select {
	case <-r.Context().Done():
	case <-u.release:
	case <-time.After(maxHang):
	}
}

// set makes doc, encoded as JSON, the document served, and returns the encoding.
func (u *upstream) set(t testing.TB, doc any) []byte {
	t.Helper()
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatalf("encoding upstream document: %v", err)
	}
	u.mu.Lock()
	u.doc = b
	u.mu.Unlock()
	return b
}

// document returns the JSON served in serveJSON mode.
func (u *upstream) document() []byte {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.doc
}

func (u *upstream) setMode(m upstreamMode) {
	u.mu.Lock()
	u.mode = m
	u.mu.Unlock()
}

// count returns how many requests arrived so far.
func (u *upstream) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.hits)
}

// countBetween returns how many requests arrived in [from, to).
func (u *upstream) countBetween(from, to time.Time) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	n := 0
	for _, h := range u.hits {
		if !h.Before(from) && h.Before(to) {
			n++
		}
	}
	return n
}

// lastHit returns the arrival time of the latest request, zero when none arrived.
func (u *upstream) lastHit() time.Time {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.hits) == 0 {
		return time.Time{}
	}
	return u.hits[len(u.hits)-1]
}
