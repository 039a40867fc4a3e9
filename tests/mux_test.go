package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	jsonpatch "github.com/evanphx/json-patch/v5"

	"github.com/pollsse/caddy-poll-sse/sse"
)

const muxRoutes = 10

// muxSite is a Caddy with ten poll_sse routes, s0 to s9, each polling an upstream of its
// own, and a poll_sse_mux at /mux carrying them all.
type muxSite struct {
	caddy     *caddyProc
	upstreams []*upstream
}

func startMuxSite(t *testing.T) *muxSite {
	t.Helper()
	s := &muxSite{}
	var routes []string
	var names []string
	for i := range muxRoutes {
		u := newUpstream(t, rowsDocument(0))
		s.upstreams = append(s.upstreams, u)
		name := fmt.Sprintf("s%d", i)
		names = append(names, name)
		routes = append(routes, fmt.Sprintf("handle /%s {\n%s\n}", name, indent(pollSSE(u.url(), "interval 100ms", "name "+name))))
	}
	routes = append(routes, fmt.Sprintf("handle /mux {\n\tpoll_sse_mux {\n\t\tstreams %s\n\t}\n}", strings.Join(names, " ")))
	s.caddy = startCaddy(t, strings.Join(routes, "\n"))
	return s
}

// muxClient reads a mux stream over one HTTP/1.1 connection, applying each stream's
// events with an independent JSON Patch implementation.
type muxClient struct {
	t      *testing.T
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	docs   map[string][]byte
	events map[string][]string // event types by stream
	all    []sse.Message
	lastID string
	err    error
}

func dialMux(t *testing.T, url, lastID string, hdr ...http.Header) *muxClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	for _, h := range hdr {
		for k, v := range h {
			req.Header[k] = v
		}
	}
	req.Header.Set("Accept", "text/event-stream")
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	tr := &http.Transport{ForceAttemptHTTP2: false}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 1 {
		cancel()
		t.Fatalf("mux: %s %s", resp.Proto, resp.Status)
	}
	if len(resp.TransferEncoding) != 0 || !resp.Close {
		// Handed to the hub's shared writers, the body ends with the connection.
		cancel()
		t.Fatalf("mux: Transfer-Encoding %v, Close %v; want a connection handed over to the shared writers", resp.TransferEncoding, resp.Close)
	}
	c := &muxClient{t: t, cancel: cancel, done: make(chan struct{}), docs: map[string][]byte{}, events: map[string][]string{}}
	go func() {
		defer close(c.done)
		defer resp.Body.Close()
		defer tr.CloseIdleConnections()
		dec := sse.NewDecoder(resp.Body)
		for {
			msg, err := dec.Next()
			if err != nil {
				return
			}
			c.take(msg)
		}
	}()
	t.Cleanup(c.close)
	return c
}

// take applies one event.
func (c *muxClient) take(msg sse.Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.all = append(c.all, msg)
	stream, typ, ok := strings.Cut(msg.Type, ".")
	if !ok {
		c.events[msg.Type] = append(c.events[msg.Type], msg.Data)
		return
	}
	c.events[stream] = append(c.events[stream], typ)
	switch typ {
	case "snapshot":
		c.docs[stream] = []byte(msg.Data)
	case "patch":
		patch, err := jsonpatch.DecodePatch([]byte(msg.Data))
		if err == nil {
			c.docs[stream], err = patch.Apply(c.docs[stream])
		}
		if err != nil && c.err == nil {
			c.err = fmt.Errorf("%s: applying %s: %w", stream, msg.Data, err)
		}
	}
	if typ != "upstream" {
		c.lastID = msg.LastEventID
	}
}

func (c *muxClient) close() {
	c.cancel()
	<-c.done
}

// waitDocs waits until every stream's document equals want's, and fails the test after
// d.
func (c *muxClient) waitDocs(want func(stream string) []byte, streams []string, d time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for {
		c.mu.Lock()
		err, behind := c.err, ""
		for _, s := range streams {
			if !jsonEqual(c.docs[s], want(s)) {
				behind = s
				break
			}
		}
		c.mu.Unlock()
		if err != nil {
			c.t.Fatal(err)
		}
		if behind == "" {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("stream %s holds %s, want %s", behind, c.doc(behind), want(behind))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (c *muxClient) doc(s string) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.docs[s]
}

func (c *muxClient) snapshot() (map[string][]string, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ev := make(map[string][]string, len(c.events))
	for k, v := range c.events {
		ev[k] = append([]string(nil), v...)
	}
	return ev, c.lastID
}

func (s *muxSite) streams() []string {
	var names []string
	for i := range muxRoutes {
		names = append(names, fmt.Sprintf("s%d", i))
	}
	return names
}

func (s *muxSite) url() string {
	return s.caddy.url("/mux?stream=" + strings.Join(s.streams(), "&stream="))
}

func (s *muxSite) want(stream string) []byte {
	var i int
	fmt.Sscanf(stream, "s%d", &i)
	return s.upstreams[i].document()
}

// TestMuxConverges: ten routes on one HTTP/1.1 connection follow 20 changes each, and a
// cut connection resumes each with one patch, or nothing for those that did not change.
func TestMuxConverges(t *testing.T) {
	t.Parallel()
	s := startMuxSite(t)
	c := dialMux(t, s.url(), "")
	c.waitDocs(s.want, s.streams(), 10*time.Second)
	for rev := 1; rev <= 20; rev++ {
		for i, u := range s.upstreams {
			u.set(t, rowsDocument(rev*muxRoutes+i))
		}
		time.Sleep(150 * time.Millisecond)
	}
	c.waitDocs(s.want, s.streams(), 10*time.Second)
	events, lastID := c.snapshot()
	for _, name := range s.streams() {
		if n := strings.Count(strings.Join(events[name], " "), "snapshot"); n != 1 {
			t.Errorf("%s: %d snapshots, want the first only: %v", name, n, events[name])
		}
	}
	c.close()

	for i, u := range s.upstreams[:muxRoutes/2] {
		u.set(t, rowsDocument(1000+i))
	}
	time.Sleep(500 * time.Millisecond)
	again := dialMux(t, s.url(), lastID)
	again.mu.Lock()
	for _, name := range s.streams() {
		again.docs[name] = c.docs[name] // the documents the client held
	}
	again.mu.Unlock()
	again.waitDocs(s.want, s.streams(), 10*time.Second)
	time.Sleep(500 * time.Millisecond)
	events, _ = again.snapshot()
	for i, name := range s.streams() {
		want := "patch"
		if i >= muxRoutes/2 {
			want = ""
		}
		if got := strings.Join(events[name], " "); got != want {
			t.Errorf("%s resumed with %q, want %q", name, got, want)
		}
	}
}

// TestMuxStreamFailing: one route's upstream failing is told on its stream alone; the
// other nine go on converging on the same connection, and an unknown stream is refused
// without ending the others. A client none of whose streams is served gets the status
// of the first refusal.
func TestMuxStreamFailing(t *testing.T) {
	t.Parallel()
	s := startMuxSite(t)
	c := dialMux(t, s.url()+"&stream=nope", "")
	c.waitDocs(s.want, s.streams(), 10*time.Second)
	s.upstreams[3].setMode(serve500)
	for rev := 1; rev <= 10; rev++ {
		for i, u := range s.upstreams {
			u.set(t, rowsDocument(rev*muxRoutes+i))
		}
		time.Sleep(150 * time.Millisecond)
	}
	healthy := append(s.streams()[:3:3], s.streams()[4:]...)
	c.waitDocs(s.want, healthy, 10*time.Second)
	events, _ := c.snapshot()
	for _, name := range healthy {
		if strings.Contains(strings.Join(events[name], " "), "upstream") {
			t.Errorf("%s was told of an upstream failure: %v", name, events[name])
		}
	}
	if got := strings.Join(events["s3"], " "); !strings.Contains(got, "upstream") {
		t.Errorf("s3 was not told its upstream fails: %v", got)
	}
	var refused struct {
		Stream string `json:"stream"`
		Status int    `json:"status"`
	}
	resp, err := http.Get(s.caddy.url("/mux?stream=nope&stream=s1&format=bogus"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("no stream served: status %d, want the first refusal's, 404", resp.StatusCode)
	}
	if len(events["refused"]) != 1 || json.Unmarshal([]byte(events["refused"][0]), &refused) != nil || refused.Stream != "nope" || refused.Status != http.StatusNotFound {
		t.Errorf("refused events %v, want one for nope with 404", events["refused"])
	}
}

// TestMuxReloadAndStop: a mux connection, though handed to the hub's shared writers,
// does not outlive the server a reload retires. Its streams are drained within the drain window,
// the client resumes every stream on the new server with a patch or nothing and follows
// the next change; a second connection, open while Caddy is stopped, ends at once, and
// the stop does not wait for it.
func TestMuxReloadAndStop(t *testing.T) {
	t.Parallel()
	s := startMuxSite(t)
	c := dialMux(t, s.url(), "")
	c.waitDocs(s.want, s.streams(), 10*time.Second)

	status, body, err := s.caddy.admin(http.MethodPost, "/load", "text/caddyfile", s.caddy.config, forceReload)
	if err != nil || status != http.StatusOK {
		t.Fatalf("POST /load: status %d, %v: %s", status, err, body)
	}
	select {
	case <-c.done:
	case <-time.After(5*time.Second + 2*time.Second):
		t.Fatal("the mux connection was not drained within the 5s drain window of a reload")
	}
	events, lastID := c.snapshot()
	again := dialMux(t, s.url(), lastID)
	again.mu.Lock()
	for _, name := range s.streams() {
		again.docs[name] = c.docs[name]
	}
	again.mu.Unlock()
	for i, u := range s.upstreams {
		u.set(t, rowsDocument(5000+i))
	}
	again.waitDocs(s.want, s.streams(), 10*time.Second)
	resumed, _ := again.snapshot()
	for _, name := range s.streams() {
		if strings.Contains(strings.Join(resumed[name], " "), "snapshot") {
			t.Errorf("%s resumed with a snapshot after the reload: %v (before: %v)", name, resumed[name], events[name])
		}
	}

	start := time.Now()
	if status, body, err := s.caddy.admin(http.MethodPost, "/stop", "", nil, nil); err != nil || status != http.StatusOK {
		t.Logf("POST /stop: status %d, %v: %s", status, err, body)
	}
	if !s.caddy.waitExit(caddyStopTimeout) {
		t.Fatalf("caddy did not exit within %v of POST /stop with a mux connection open", caddyStopTimeout)
	}
	if took := time.Since(start); took > stopWithin {
		t.Errorf("caddy took %v to exit with a mux connection open, want under %v", took, stopWithin)
	}
	select {
	case <-again.done:
	case <-time.After(time.Second):
		t.Error("the mux connection did not end with the stop")
	}
}
