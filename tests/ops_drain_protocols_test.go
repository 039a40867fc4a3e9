package tests

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/quic-go/quic-go/http3"

	"github.com/pollsse/caddy-poll-sse/sse"
)

const (
	tlsDrain   = 2 * time.Second // the drain of the TLS test's route
	tlsStreams = 10              // per protocol
)

// tlsProtocol is a way a client reaches a TLS site.
type tlsProtocol struct {
	name  string
	major int // the HTTP version its streams must use
	rt    func(*tls.Config) (http.RoundTripper, func())
}

var tlsProtocols = []tlsProtocol{
	{"http1.1 over tls", 1, func(c *tls.Config) (http.RoundTripper, func()) {
		tr := &http.Transport{TLSClientConfig: c, TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}
		return tr, tr.CloseIdleConnections
	}},
	{"http2", 2, func(c *tls.Config) (http.RoundTripper, func()) {
		tr := &http.Transport{TLSClientConfig: c, ForceAttemptHTTP2: true}
		return tr, tr.CloseIdleConnections
	}},
	{"http3", 3, func(c *tls.Config) (http.RoundTripper, func()) {
		tr := &http3.Transport{TLSClientConfig: c}
		return tr, func() { _ = tr.Close() }
	}},
}

// TestOpsReloadDrainsHTTP2AndHTTP3 opens 10 streams over each of HTTP/1.1 with TLS,
// HTTP/2 and HTTP/3 on a site with `tls internal`, then reloads the same config. Caddy
// retires the server that accepted the HTTP/2 and HTTP/3 connections, so their streams
// are drained: each ends cleanly within the route's drain 2s (and slack), their ends
// spread over at least half the window, and each client, resuming with its Last-Event-ID
// on a new connection, holds the upstream document after a change. The HTTP/1.1 streams,
// which the hub serves, stay open and get the change. The route keeps one loop, not
// retired, with every client.
func TestOpsReloadDrainsHTTP2AndHTTP3(t *testing.T) {
	t.Parallel()
	u := newUpstream(t, keepDoc(0))
	caddy := startCaddyTLS(t, pollSSE(u.url(), "name tls", "interval 100ms", "drain 2s"))
	tlsConf := &tls.Config{RootCAs: caddy.rootCAs(t)}
	caddy.waitCertificate(t, tlsConf)
	url := "https://" + caddy.siteAddr + "/"
	streams := make([][]*protoStream, len(tlsProtocols))
	for p, proto := range tlsProtocols {
		rt, closeRT := proto.rt(tlsConf)
		defer closeRT()
		for range tlsStreams {
			s := openProtoStream(t, rt, url, proto.major, "", "")
			s.waitDoc(t, u.document(), rawTimeout)
			streams[p] = append(streams[p], s)
		}
	}

	start := time.Now()
	load(t, caddy, caddy.config, forceReload)
	for p, proto := range tlsProtocols[1:] {
		checkDrained(t, proto.name, streams[p+1], start)
	}
	want := u.set(t, keepDoc(1))
	for _, s := range streams[0] {
		s.waitDoc(t, want, rawTimeout) // fails if the stream ended
	}
	for p, proto := range tlsProtocols[1:] {
		// A connection that got a GOAWAY takes no new request: a new transport dials anew.
		rt, closeRT := proto.rt(tlsConf)
		defer closeRT()
		for _, s := range streams[p+1] {
			again := openProtoStream(t, rt, url, proto.major, s.lastID, s.doc)
			again.waitDoc(t, want, rawTimeout)
		}
	}
	waitLoops(t, caddy, "tls", "one live loop with every client", func(ls []loopInfo) bool {
		return len(ls) == 1 && !ls[0].Retired && ls[0].Subscribers == len(tlsProtocols)*tlsStreams
	})
}

// checkDrained checks that every stream ended cleanly within the drain and slack of
// start, and that their ends spread over at least half the drain window.
func checkDrained(t *testing.T, name string, streams []*protoStream, start time.Time) {
	t.Helper()
	var first, last time.Duration
	for i, s := range streams {
		select {
		case <-s.ended:
		case <-time.After(time.Until(start.Add(tlsDrain + drainSlack))):
			t.Fatalf("%s stream %d still open %v after the reload; drain %v", name, i, time.Since(start), tlsDrain)
		}
		if !errors.Is(s.err, io.EOF) {
			t.Errorf("%s stream %d ended with %v, want a clean end", name, i, s.err)
		}
		at := s.endedAt.Sub(start)
		if i == 0 || at < first {
			first = at
		}
		last = max(last, at)
	}
	t.Logf("%s: %d streams ended from %v to %v after the reload began", name, len(streams), first.Round(time.Millisecond), last.Round(time.Millisecond))
	if last-first < tlsDrain/2 {
		t.Errorf("%s streams ended from %v to %v: not spread over the drain %v", name, first, last, tlsDrain)
	}
}

// protoStream is an event stream over any HTTP version, read by a goroutine of its own
// that keeps the client's document.
type protoStream struct {
	ended   chan struct{} // closed when the stream has ended
	endedAt time.Time     // valid once ended is closed
	err     error         // why it ended, io.EOF for a clean end; valid once ended is closed

	mu     sync.Mutex
	doc    string
	lastID string
	more   chan struct{} // closed and replaced on each version event
}

// openProtoStream opens a stream at url through rt, over HTTP/major, for a client that
// holds doc at version lastID ("" for none).
func openProtoStream(t *testing.T, rt http.RoundTripper, url string, major int, lastID, doc string) *protoStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != major {
		resp.Body.Close()
		cancel()
		t.Fatalf("stream: %s %s, want 200 over HTTP/%d", resp.Proto, resp.Status, major)
	}
	s := &protoStream{ended: make(chan struct{}), doc: doc, lastID: lastID, more: make(chan struct{})}
	go s.read(resp.Body)
	t.Cleanup(func() {
		cancel()
		resp.Body.Close()
		<-s.ended
	})
	return s
}

func (s *protoStream) read(body io.Reader) {
	dec := sse.NewDecoder(body)
	var err error
	for err == nil {
		var m sse.Message
		if m, err = dec.Next(); err == nil {
			err = s.apply(m)
		}
	}
	s.endedAt, s.err = time.Now(), err
	close(s.ended)
}

func (s *protoStream) apply(m sse.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch m.Type {
	case "snapshot":
		s.doc = m.Data
	case "patch":
		p, err := jsonpatch.DecodePatch([]byte(m.Data))
		if err != nil {
			return err
		}
		doc, err := p.Apply([]byte(s.doc))
		if err != nil {
			return err
		}
		s.doc = string(doc)
	default:
		return nil
	}
	s.lastID = m.LastEventID
	close(s.more)
	s.more = make(chan struct{})
	return nil
}

// waitDoc waits until the client holds want, failing the test if the stream ends or d
// passes first.
func (s *protoStream) waitDoc(t *testing.T, want []byte, d time.Duration) {
	t.Helper()
	deadline := time.After(d)
	for {
		s.mu.Lock()
		done, more := jsonEqual([]byte(s.doc), want), s.more
		s.mu.Unlock()
		if done {
			return
		}
		select {
		case <-more:
		case <-s.ended:
			t.Fatalf("stream ended (%v) before it held %s", s.err, want)
		case <-deadline:
			t.Fatalf("stream did not hold %s within %v", want, d)
		}
	}
}

// TestOpsStopCutsDrains opens 4 streams over each of HTTP/1.1 with TLS, HTTP/2 and
// HTTP/3, reloads a config that changes the route's interval, or one without the route
// at all, with drain 1m, so that every stream is draining (the HTTP/1.1 ones as their
// hub retires, the others as their server does), then sends POST /stop: Caddy exits
// within a second, without waiting for the drains, and every stream ends. Without the
// route, no poll_sse handler of the current config hears of the exit from its server.
func TestOpsStopCutsDrains(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		next  func(u *upstream) string // the site body of the config reloaded
		gauge bool                     // whether the new config has poll_sse metrics
	}{
		{"route changed", func(u *upstream) string { return stopDrainBody(u, "200ms") }, true},
		{"route removed", func(*upstream) string { return `respond "gone"` }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			u := newUpstream(t, keepDoc(0))
			caddy := startCaddyTLS(t, stopDrainBody(u, "100ms"))
			streams := openEveryProtocol(t, caddy, u, 4)
			caddy.config = []byte(tlsCaddyfile(caddy, tc.next(u)))
			load(t, caddy, caddy.config, nil)
			checkDrainShown(t, caddy, "tls", tc.gauge)
			checkStopEnds(t, caddy, streams)
		})
	}
}

// stopDrainBody is the site body of TestOpsStopCutsDrains.
func stopDrainBody(u *upstream, interval string) string {
	return pollSSE(u.url(), "name tls", "interval "+interval, "drain 1m")
}

// openEveryProtocol opens n streams over each of tlsProtocols, each holding u's document.
func openEveryProtocol(t *testing.T, caddy *caddyProc, u *upstream, n int) []*protoStream {
	t.Helper()
	tlsConf := &tls.Config{RootCAs: caddy.rootCAs(t)}
	caddy.waitCertificate(t, tlsConf)
	var streams []*protoStream
	for _, proto := range tlsProtocols {
		rt, closeRT := proto.rt(tlsConf)
		t.Cleanup(closeRT)
		for range n {
			s := openProtoStream(t, rt, "https://"+caddy.siteAddr+"/", proto.major, "", "")
			s.waitDoc(t, u.document(), rawTimeout)
			streams = append(streams, s)
		}
	}
	return streams
}

// checkStopEnds sends POST /stop and checks that Caddy exits within stopWithin and that
// every stream has ended.
func checkStopEnds(t *testing.T, caddy *caddyProc, streams []*protoStream) {
	t.Helper()
	start := time.Now()
	if status, body, err := caddy.admin(http.MethodPost, "/stop", "", nil, nil); err != nil || status != http.StatusOK {
		t.Logf("POST /stop: status %d, %v: %s", status, err, body)
	}
	if !caddy.waitExit(caddyStopTimeout) {
		t.Fatalf("caddy did not exit within %v of POST /stop while streams were draining", caddyStopTimeout)
	}
	took := time.Since(start)
	t.Logf("stop with %d streams draining: caddy exited after %v", len(streams), took.Round(time.Millisecond))
	if took > stopWithin {
		t.Errorf("caddy took %v to exit while streams were draining, want under %v", took, stopWithin)
	}
	for i, s := range streams {
		select {
		case <-s.ended:
		case <-time.After(caddyStopTimeout):
			t.Fatalf("stream %d still open after caddy exited", i)
		}
	}
}
