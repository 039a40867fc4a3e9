package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// basePadLen is the size of the document's pad between changes that do not set their own.
const basePadLen = 512

// Upstream is the mock JSON endpoint poll_sse polls: {"t":"T<seq>_<nanos>","pad":"…"}. It
// counts the requests for the document and tells when a version has been served.
type Upstream struct {
	srv      *http.Server
	addr     string
	requests atomic.Int64

	mu     sync.Mutex
	seq    int64
	body   []byte
	served int64         // the highest seq served
	wake   chan struct{} // closed when served advances
}

// StartUpstream listens on a free loopback port and serves seq 0.
func StartUpstream() (*Upstream, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	u := &Upstream{addr: ln.Addr().String(), wake: make(chan struct{}), served: -1}
	u.Set(0, time.Now().UnixNano(), basePad(0))
	mux := http.NewServeMux()
	mux.HandleFunc("/doc", u.serveDoc)
	u.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = u.srv.Serve(ln) }()
	return u, nil
}

// URL is the document's address.
func (u *Upstream) URL() string { return "http://" + u.addr + "/doc" }

// Requests is how many times the document was requested.
func (u *Upstream) Requests() int64 { return u.requests.Load() }

// Close stops the server.
func (u *Upstream) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = u.srv.Shutdown(ctx)
}

// Set makes the document version seq, published at nanos, with the given pad.
func (u *Upstream) Set(seq, nanos int64, pad string) {
	body := []byte(`{"t":"` + marker(seq, nanos) + `","pad":"` + pad + `"}`)
	u.mu.Lock()
	u.seq, u.body = seq, body
	u.mu.Unlock()
}

// WaitServed blocks until the version seq (or a later one) has been served, or timeout.
func (u *Upstream) WaitServed(seq int64, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		u.mu.Lock()
		served, wake := u.served, u.wake
		u.mu.Unlock()
		if served >= seq {
			return nil
		}
		select {
		case <-wake:
		case <-deadline.C:
			return fmt.Errorf("upstream: version %d not requested within %v (last served %d)", seq, timeout, served)
		}
	}
}

func (u *Upstream) serveDoc(w http.ResponseWriter, r *http.Request) {
	u.requests.Add(1)
	u.mu.Lock()
	seq, body := u.seq, u.body
	u.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	if _, err := w.Write(body); err != nil {
		return
	}
	u.mu.Lock()
	if seq > u.served {
		u.served = seq
		close(u.wake)
		u.wake = make(chan struct{})
	}
	u.mu.Unlock()
}

// marker is the text every server carries for change seq published at nanos.
func marker(seq, nanos int64) string {
	return "T" + strconv.FormatInt(seq, 10) + "_" + strconv.FormatInt(nanos, 10)
}

// basePad is the pad of ordinary changes; it never changes, so a change is the marker only.
func basePad(int64) string { return strings.Repeat("x", basePadLen) }

// bigPad is a pad of n bytes that differs for every seq, for the slow-subscriber changes.
func bigPad(seq int64, n int) string {
	return strings.Repeat(string(rune('a'+seq%26)), n)
}

// patchBody is the JSON Patch poll_sse sends for a change of t (and of pad, when it
// changed), which the other servers publish as is.
func patchBody(seq, nanos int64, pad string) string {
	t := `{"op":"replace","path":"/t","value":"` + marker(seq, nanos) + `"}`
	if pad == "" {
		return "[" + t + "]"
	}
	return `[{"op":"replace","path":"/pad","value":"` + pad + `"},` + t + "]"
}
