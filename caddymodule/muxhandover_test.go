package caddymodule

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	jsonpatch "github.com/evanphx/json-patch/v5"

	"github.com/pollsse/caddy-poll-sse/hub"
	"github.com/pollsse/caddy-poll-sse/sse"
)

// docUpstream serves a JSON document that a test changes, or 500 while failing.
type docUpstream struct {
	srv     *httptest.Server
	mu      sync.Mutex
	doc     []byte
	failing bool
}

func newDocUpstream(t testing.TB, doc string) *docUpstream {
	t.Helper()
	u := &docUpstream{doc: []byte(doc)}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		u.mu.Lock()
		defer u.mu.Unlock()
		if u.failing {
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(u.doc)
	}))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *docUpstream) set(doc string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.doc = []byte(doc)
}

func (u *docUpstream) get() []byte {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.doc
}

func (u *docUpstream) fail() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.failing = true
}

// muxRig is a mux of n poll_sse routes, each polling an upstream of its own every
// 50ms, served over HTTP/1.1 by net/http.
type muxRig struct {
	names     []string
	handlers  []*Handler
	upstreams []*docUpstream
	mux       *Mux
	srv       *httptest.Server
	ctx       caddy.Context
	query     string // added to the query of every mux request
}

// slow returns how many times the rig's routes took action on a slow client.
func (rig *muxRig) slow(t testing.TB, action string) float64 {
	t.Helper()
	families, err := rig.ctx.GetMetricsRegistry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0.0
	for _, f := range families {
		if !strings.HasSuffix(f.GetName(), "slow_subscribers_total") {
			continue
		}
		for _, m := range f.GetMetric() {
			route, act := "", ""
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "route":
					route = l.GetValue()
				case "action":
					act = l.GetValue()
				}
			}
			if act == action && slices.Contains(rig.names, route) {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return n
}

// newMuxRig loads the routes, named prefix0…, and the mux into a config of their own;
// prepare, unless nil, is called for each connection the server accepts.
func newMuxRig(t testing.TB, prefix string, n int, doc func(route int) string, prepare func(net.Conn)) *muxRig {
	t.Helper()
	return newMuxRigStarted(t, prefix, n, doc, prepare, (*httptest.Server).Start)
}

// muxRouteConfig, unless nil, gives the JSON fields of a route of newMuxRigStarted
// beyond its upstream, interval and name, with a leading comma.
type muxRouteConfig func(route int) string

// newMuxRigStarted is newMuxRig with a server started by start.
func newMuxRigStarted(t testing.TB, prefix string, n int, doc func(route int) string, prepare func(net.Conn), start func(*httptest.Server), extra ...muxRouteConfig) *muxRig {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	rig := &muxRig{ctx: ctx}
	for i := range n {
		name := fmt.Sprintf("%s%d", prefix, i)
		u := newDocUpstream(t, doc(i))
		more := ""
		for _, e := range extra {
			more += e(i)
		}
		h, err := loadHandlerIn(ctx, `{"upstream": "`+u.srv.URL+`/doc", "interval": "50ms", "name": "`+name+`"`+more+`}`)
		if err != nil {
			t.Fatal(err)
		}
		rig.names, rig.handlers, rig.upstreams = append(rig.names, name), append(rig.handlers, h), append(rig.upstreams, u)
	}
	raw, _ := json.Marshal(map[string]any{"streams": rig.names})
	m, err := ctx.LoadModuleByID("http.handlers.poll_sse_mux", raw)
	if err != nil {
		t.Fatal(err)
	}
	rig.mux = m.(*Mux)
	rig.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("opaque") {
			w = &countingWriter{ResponseWriter: w} // a wrapper the connection is not handed over through
		}
		r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, caddyhttp.NewTestReplacer(r)))
		var err error
		if r.URL.Path == "/single" {
			err = rig.handlers[0].ServeHTTP(w, r, nil)
		} else {
			err = rig.mux.ServeHTTP(w, r, nil)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
		}
	}))
	if prepare != nil {
		rig.srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
			if s == http.StateNew {
				prepare(c)
			}
		}
	}
	start(rig.srv)
	t.Cleanup(rig.srv.Close)
	return rig
}

func (rig *muxRig) subscribers() int {
	n := 0
	for _, h := range rig.handlers {
		n += h.loops.Subscribers()
	}
	return n
}

// rawMux is a mux client on a plain connection that keeps each stream's document by
// applying its events with an independent JSON Patch implementation.
type rawMux struct {
	conn    net.Conn
	br      *bufio.Reader
	dec     *sse.Decoder // reads the body from br
	chunked bool         // the response body is chunked: written through the ResponseWriter

	mu     sync.Mutex
	docs   map[string][]byte
	events map[string][]string // event types by stream
	lastID string
	err    error
	done   bool
	// lastUpstream holds the data of each stream's last upstream event.
	lastUpstream map[string]string
}

// dialRawMux asks rig's mux for every stream, holding lastID, and reads the response
// header; prepare, unless nil, is called on the connection first.
func dialRawMux(t testing.TB, rig *muxRig, lastID string, prepare func(*net.TCPConn)) *rawMux {
	t.Helper()
	conn, err := net.Dial("tcp", rig.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	if prepare != nil {
		prepare(conn.(*net.TCPConn))
	}
	req := "GET /?stream=" + strings.Join(rig.names, "&stream=") + rig.query + " HTTP/1.1\r\nHost: mux\r\nAccept: text/event-stream\r\n"
	if lastID != "" {
		req += "Last-Event-ID: " + lastID + "\r\n"
	}
	if _, err := conn.Write([]byte(req + "\r\n")); err != nil {
		t.Fatal(err)
	}
	c := &rawMux{conn: conn, br: bufio.NewReader(conn), docs: map[string][]byte{}, events: map[string][]string{}}
	status, err := c.br.ReadString('\n')
	if err != nil || !strings.Contains(status, " 200 ") {
		t.Fatalf("mux response %q, %v", status, err)
	}
	for {
		line, err := c.br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line == "\r\n" {
			break
		}
		if strings.EqualFold(strings.TrimSpace(line), "Transfer-Encoding: chunked") {
			c.chunked = true
		}
	}
	c.dec = sse.NewDecoder(c.br)
	return c
}

// run applies events until the connection ends.
func (c *rawMux) run() {
	var err error
	for err == nil {
		var m sse.Message
		if m, err = c.dec.Next(); err == nil {
			err = c.take(m)
		}
	}
	c.mu.Lock()
	c.err, c.done = err, true
	c.mu.Unlock()
}

func (c *rawMux) take(m sse.Message) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	stream, typ, ok := strings.Cut(m.Type, ".")
	if !ok {
		return nil
	}
	c.events[stream] = append(c.events[stream], typ)
	switch typ {
	case "upstream":
		if c.lastUpstream == nil {
			c.lastUpstream = map[string]string{}
		}
		c.lastUpstream[stream] = m.Data
	case "snapshot":
		c.docs[stream] = []byte(m.Data)
	case "patch":
		p, err := jsonpatch.DecodePatch([]byte(m.Data))
		if err == nil {
			c.docs[stream], err = p.Apply(c.docs[stream])
		}
		if err != nil {
			return fmt.Errorf("%s: applying %s: %w", stream, m.Data, err)
		}
	}
	if typ != "upstream" {
		c.lastID = m.LastEventID
	}
	return nil
}

// converged reports whether every stream of rig holds its upstream's document.
func (c *rawMux) converged(rig *muxRig, streams []int) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, i := range streams {
		d := c.docs[rig.names[i]]
		if d == nil || !jsonpatch.Equal(d, rig.upstreams[i].get()) {
			return false, c.err
		}
	}
	return true, nil
}

// waitConverged waits until the streams hold their upstreams' documents.
func (c *rawMux) waitConverged(t testing.TB, rig *muxRig, streams []int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ok, err := c.converged(rig, streams)
		if ok {
			return
		}
		c.mu.Lock()
		done := c.done
		c.mu.Unlock()
		if done || time.Now().After(deadline) {
			t.Fatalf("the mux client did not converge: ended %v, %v; events %v", done, err, c.snapshot())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (c *rawMux) snapshot() map[string][]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string][]string, len(c.events))
	for k, v := range c.events {
		out[k] = append([]string(nil), v...)
	}
	return out
}

// waitEnd waits until the connection has ended, failing after d.
func (c *rawMux) waitEnd(t testing.TB, d time.Duration) {
	t.Helper()
	ended := func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.done
	}
	if !waitWithin(d, ended) {
		t.Fatalf("the mux connection is still open %v later", d)
	}
}

// readFirst reads events until each stream of rig has sent its snapshot.
func (c *rawMux) readFirst(t testing.TB, rig *muxRig) {
	t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer func() { _ = c.conn.SetReadDeadline(time.Time{}) }()
	for seen := 0; seen < len(rig.names); {
		m, err := c.dec.Next()
		if err != nil {
			t.Fatalf("reading the first events: %v", err)
		}
		if err := c.take(m); err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(m.Type, ".snapshot") {
			seen++
		}
	}
}

// rowsDoc is revision rev of a route's document: a change to it is a patch much smaller
// than the document, so that a resume gets a patch rather than a snapshot.
func rowsDoc(route, rev int) string {
	return fmt.Sprintf(`{"route":%d,"rev":%d,"rows":[{"id":1,"v":%d},{"id":2,"v":"x%d"}],"fixed":%q}`,
		route, rev, rev, rev, strings.Repeat("steady ", 40))
}

// waitFor waits up to 10 s for cond, failing with what it waited for.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	if !waitWithin(10*time.Second, cond) {
		t.Fatalf("timed out waiting for %s", what)
	}
}

// waitWithin checks cond every 5 ms until it holds or d has passed, and reports whether
// it held.
func waitWithin(d time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(d); ; time.Sleep(5 * time.Millisecond) {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// TestIdleMuxConnectionsHoldNoGoroutine: 100 idle mux connections of three streams each
// over HTTP/1.1 add a handful of goroutines, not one or two each, as idle single streams
// do; when their clients leave, every subscription ends.
func TestIdleMuxConnectionsHoldNoGoroutine(t *testing.T) {
	const n = 100
	rig := newMuxRig(t, "idle", 3, func(i int) string { return rowsDoc(i, 0) }, nil)
	dialRawMux(t, rig, "", nil).readFirst(t, rig) // the loops and the writers
	before := runtime.NumGoroutine()
	clients := make([]*rawMux, n)
	for i := range clients {
		clients[i] = dialRawMux(t, rig, "", nil)
		clients[i].readFirst(t, rig)
		if clients[i].chunked {
			t.Fatal("the mux response is chunked: it was not handed over")
		}
	}
	var grown int
	deadline := time.Now().Add(5 * time.Second)
	for grown = runtime.NumGoroutine() - before; grown > n/20 && time.Now().Before(deadline); grown = runtime.NumGoroutine() - before {
		time.Sleep(10 * time.Millisecond)
	}
	if grown > n/20 {
		t.Fatalf("%d idle mux connections hold %d goroutines", n, grown)
	}
	for _, c := range clients {
		_ = c.conn.Close()
	}
	waitFor(t, "the subscriptions of the closed connections to end", func() bool { return rig.subscribers() == 3 })
	if live := len(rig.mux.live.retire()); live != 3 {
		t.Errorf("the mux holds %d streams for a drain; want the 3 of the open connection", live)
	}
}

// TestHandedOverMuxConvergesAndResumes: a mux connection of ten routes, handed over,
// follows 20 changes of each; cut, it resumes each route that changed meanwhile with one
// patch and the others with nothing.
func TestHandedOverMuxConvergesAndResumes(t *testing.T) {
	t.Parallel()
	const routes, changes = 10, 20
	rig := newMuxRig(t, "conv", routes, func(i int) string { return rowsDoc(i, 0) }, nil)
	all := make([]int, routes)
	for i := range all {
		all[i] = i
	}
	c := dialRawMux(t, rig, "", nil)
	if c.chunked {
		t.Fatal("the mux response is chunked: it was not handed over")
	}
	go c.run()
	c.waitConverged(t, rig, all)
	for rev := 1; rev <= changes; rev++ {
		for i, u := range rig.upstreams {
			u.set(rowsDoc(i, rev))
		}
		time.Sleep(60 * time.Millisecond)
	}
	c.waitConverged(t, rig, all)
	events := c.snapshot()
	for _, name := range rig.names {
		if n := strings.Count(strings.Join(events[name], " "), "snapshot"); n != 1 {
			t.Errorf("%s: %d snapshots, want the first only: %v", name, n, events[name])
		}
	}
	_ = c.conn.Close()
	c.waitEnd(t, 5*time.Second)
	waitFor(t, "the cut connection's subscriptions to end", func() bool { return rig.subscribers() == 0 })

	for i, u := range rig.upstreams[:routes/2] {
		u.set(rowsDoc(i, 1000))
	}
	time.Sleep(500 * time.Millisecond) // ten polls
	again := dialRawMux(t, rig, c.lastID, nil)
	again.docs = c.docs
	go again.run()
	again.waitConverged(t, rig, all)
	time.Sleep(300 * time.Millisecond)
	resumed := again.snapshot()
	for i, name := range rig.names {
		want := "patch"
		if i >= routes/2 {
			want = ""
		}
		if got := strings.Join(resumed[name], " "); got != want {
			t.Errorf("%s resumed with %q, want %q", name, got, want)
		}
	}
}

// TestHandedOverMuxOneUpstreamFailing: one route's upstream failing is told on its
// stream alone; the other streams of the handed-over connection go on converging.
func TestHandedOverMuxOneUpstreamFailing(t *testing.T) {
	t.Parallel()
	rig := newMuxRig(t, "fail", 4, func(i int) string { return rowsDoc(i, 0) }, nil)
	c := dialRawMux(t, rig, "", nil)
	if c.chunked {
		t.Fatal("the mux response is chunked: it was not handed over")
	}
	go c.run()
	c.waitConverged(t, rig, []int{0, 1, 2, 3})
	rig.upstreams[1].fail()
	for rev := 1; rev <= 10; rev++ {
		for i, u := range rig.upstreams {
			u.set(rowsDoc(i, rev))
		}
		time.Sleep(60 * time.Millisecond)
	}
	c.waitConverged(t, rig, []int{0, 2, 3})
	waitFor(t, "the failing stream to be told", func() bool {
		return strings.Contains(strings.Join(c.snapshot()[rig.names[1]], " "), "upstream")
	})
	events := c.snapshot()
	for _, i := range []int{0, 2, 3} {
		if strings.Contains(strings.Join(events[rig.names[i]], " "), "upstream") {
			t.Errorf("%s was told of an upstream failure: %v", rig.names[i], events[rig.names[i]])
		}
	}
}

// TestSlowMuxClientCatchesUp: a handed-over mux client that reads nothing, with small
// socket buffers, while two routes of 32 KiB documents change 30 times, then reads
// again, converges on both from what its stream drained and caught up meanwhile, and
// then follows the next change live.
func TestSlowMuxClientCatchesUp(t *testing.T) {
	t.Parallel()
	const changes = 30
	big := func(route, rev int) string {
		return fmt.Sprintf(`{"route":%d,"rev":%d,"pad":%q}`, route, rev, strings.Repeat(fmt.Sprint(rev%10), 32<<10))
	}
	rig := newMuxRig(t, "slow", 2, func(i int) string { return big(i, 0) }, func(c net.Conn) {
		_ = c.(*net.TCPConn).SetWriteBuffer(4 << 10)
	})
	c := dialRawMux(t, rig, "", func(c *net.TCPConn) { _ = c.SetReadBuffer(256 << 10) })
	if c.chunked {
		t.Fatal("the mux response is chunked: it was not handed over")
	}
	c.readFirst(t, rig)
	seen := make([]string, len(rig.handlers))
	for rev := 1; rev <= changes; rev++ {
		for i, u := range rig.upstreams {
			u.set(big(i, rev))
		}
		for i, h := range rig.handlers {
			waitFor(t, "the change to be polled", func() bool {
				v := loopVersion(h)
				if v == "" || v == seen[i] {
					return false
				}
				seen[i] = v
				return true
			})
		}
	}
	go c.run()
	c.waitConverged(t, rig, []int{0, 1})
	if rig.slow(t, hub.SlowDrain) == 0 {
		t.Error("the stalled connection never drained: its socket never filled")
	}
	for i, u := range rig.upstreams {
		u.set(big(i, changes+1))
	}
	c.waitConverged(t, rig, []int{0, 1})
}

// loopVersion returns the current version of h's only loop.
func loopVersion(h *Handler) string {
	for _, ls := range h.loops.Loops() {
		return ls.Version
	}
	return ""
}

// TestHandedOverMuxDrainsAndEnds: a handed-over mux connection ends within the drain
// window when its server is retired by a reload, and at once when the process exits;
// every subscription of its routes then ends.
func TestHandedOverMuxDrainsAndEnds(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		end    func(*Mux)
		within time.Duration
	}{
		{"reload", (*Mux).serverRetiring, defaultDrain + 2*time.Second},
		{"exit", (*Mux).endAll, time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rig := newMuxRig(t, "end"+tc.name, 3, func(i int) string { return rowsDoc(i, 0) }, nil)
			c := dialRawMux(t, rig, "", nil)
			if c.chunked {
				t.Fatal("the mux response is chunked: it was not handed over")
			}
			go c.run()
			c.waitConverged(t, rig, []int{0, 1, 2})
			tc.end(rig.mux)
			c.waitEnd(t, tc.within)
			waitFor(t, "the subscriptions to end", func() bool { return rig.subscribers() == 0 })
		})
	}
}

// TestMuxOverTLSAndHTTP2: over TLS, a mux connection over HTTP/1.1 is handed to the hub
// as a connection that is not a plain socket, and served by a goroutine of its own; over
// HTTP/2 it stays on the ResponseWriter path. Both follow every change of every route.
func TestMuxOverTLSAndHTTP2(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		http2 bool
	}{{"http1", false}, {"http2", true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rig := newMuxRigStarted(t, "tls"+tc.name, 3, func(i int) string { return rowsDoc(i, 0) }, nil, func(s *httptest.Server) {
				s.EnableHTTP2 = tc.http2
				s.StartTLS()
			})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, rig.srv.URL+"/?stream="+strings.Join(rig.names, "&stream="), nil)
			req.Header.Set("Accept", "text/event-stream")
			resp, err := rig.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if want := map[bool]int{false: 1, true: 2}[tc.http2]; resp.ProtoMajor != want || resp.StatusCode != http.StatusOK {
				t.Fatalf("%s %s; want HTTP/%d 200", resp.Proto, resp.Status, want)
			}
			if handedOver := len(resp.TransferEncoding) == 0 && resp.Close; handedOver != !tc.http2 {
				t.Fatalf("Transfer-Encoding %v, Close %v: handed over %v; want %v", resp.TransferEncoding, resp.Close, handedOver, !tc.http2)
			}
			c := &rawMux{dec: sse.NewDecoder(resp.Body), docs: map[string][]byte{}, events: map[string][]string{}}
			go c.run()
			all := []int{0, 1, 2}
			c.waitConverged(t, rig, all)
			for rev := 1; rev <= 5; rev++ {
				for i, u := range rig.upstreams {
					u.set(rowsDoc(i, rev))
				}
				time.Sleep(60 * time.Millisecond)
			}
			c.waitConverged(t, rig, all)
		})
	}
}

// TestHandedOverMuxStreamExpires: a handed-over mux connection whose first stream's
// route has `expires` ends at that time with that stream's `upstream` 401 event, and no
// such event for the other stream; every subscription then ends.
func TestHandedOverMuxStreamExpires(t *testing.T) {
	t.Parallel()
	rig := newMuxRigStarted(t, "expiry", 2, func(i int) string { return rowsDoc(i, 0) }, nil, (*httptest.Server).Start,
		func(i int) string {
			if i == 0 {
				return `, "expires": "{http.request.uri.query.exp}"`
			}
			return ""
		})
	exp := time.Now().Add(time.Second)
	rig.query = fmt.Sprintf("&exp=%.3f", float64(exp.UnixMilli())/1000)
	c := dialRawMux(t, rig, "", nil)
	if c.chunked {
		t.Fatal("the mux response is chunked: it was not handed over")
	}
	go c.run()
	c.waitConverged(t, rig, []int{0, 1})
	c.waitEnd(t, 5*time.Second)
	if time.Now().Before(exp) {
		t.Fatalf("the connection ended before the stream's expiry")
	}
	events := c.snapshot()
	if got := events["expiry0"]; len(got) == 0 || got[len(got)-1] != "upstream" {
		t.Errorf("the expired stream's events %v; want the last an upstream event", got)
	}
	c.mu.Lock()
	last := c.lastUpstream["expiry0"]
	c.mu.Unlock()
	if !strings.Contains(last, `"status":401`) {
		t.Errorf("the expired stream was told %q; want status 401", last)
	}
	if strings.Contains(strings.Join(events["expiry1"], " "), "upstream") {
		t.Errorf("the stream without expiry was told %v", events["expiry1"])
	}
	waitFor(t, "the subscriptions to end", func() bool { return rig.subscribers() == 0 })
}
