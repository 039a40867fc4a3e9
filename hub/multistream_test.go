package hub

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jsonpatch "github.com/evanphx/json-patch/v5"

	"github.com/pollsse/caddy-poll-sse/sse"
)

// legTopic is a topic a multi-stream test subscribes to: a key of a hub, fed by src.
type legTopic struct {
	h   *Hub
	key string
	src *docSource
}

func (lt legTopic) subscribe(t *testing.T) *Subscription {
	t.Helper()
	sub, err := lt.h.Subscribe(lt.key, func() Source { return lt.src }, "", JSONPatch)
	if err != nil {
		t.Fatal(err)
	}
	return sub
}

// legName prefixes each event name with the index of its leg, as a multiplexer does.
func legName(dst []byte, i int, frame []byte) []byte {
	for line := range bytes.Lines(frame) {
		if name, ok := bytes.CutPrefix(line, []byte("event: ")); ok {
			dst = fmt.Appendf(dst, "event: %d.%s", i, name)
			continue
		}
		dst = append(dst, line...)
	}
	return dst
}

// multiClient reads a stream carrying several legs on a real loopback connection, and
// keeps each leg's document by applying its events with an independent JSON Patch
// implementation.
type multiClient struct {
	conn net.Conn

	mu    sync.Mutex
	ids   [][]string // of each leg's snapshots and patches, in order
	kinds [][]string
	docs  [][]byte
	ups   [][]string // the data of each leg's upstream events
	err   error
	done  bool
}

// serveMulti connects n clients, each served with ServeMulti for a subscription to each
// of topics, with legName as the rewrite.
func serveMulti(t *testing.T, topics []legTopic, n int, prepare func(server, client *net.TCPConn), m Multi) []*multiClient {
	t.Helper()
	return serveMultiOver(t, topics, n, prepare, nil, m)
}

// serveMultiOver is serveMulti handing over the server's side of each connection as
// wrap returns it, unless wrap is nil.
func serveMultiOver(t *testing.T, topics []legTopic, n int, prepare func(server, client *net.TCPConn), wrap func(net.Conn) net.Conn, m Multi) []*multiClient {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	clients := make([]*multiClient, n)
	for i := range clients {
		sc, cc := acceptPair(t, ln)
		if prepare != nil {
			prepare(sc.(*net.TCPConn), cc.(*net.TCPConn))
		}
		mi := m
		mi.Subs = nil
		for _, lt := range topics {
			mi.Subs = append(mi.Subs, lt.subscribe(t))
		}
		if mi.Rewrite == nil {
			mi.Rewrite = legName
		}
		if _, err := sc.Write([]byte(testHead)); err != nil {
			t.Fatal(err)
		}
		var conn net.Conn = sc
		if wrap != nil {
			conn = wrap(sc)
		}
		ServeMulti(context.Background(), conn, mi)
		clients[i] = &multiClient{conn: cc, ids: make([][]string, len(topics)), kinds: make([][]string, len(topics)), docs: make([][]byte, len(topics)), ups: make([][]string, len(topics))}
	}
	return clients
}

// run reads the response header, then events until the connection ends.
func (c *multiClient) run() {
	err := readEvents(c.conn, c.take)
	c.mu.Lock()
	c.err, c.done = err, true
	c.mu.Unlock()
}

func (c *multiClient) take(m sse.Message) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	leg, kind, ok := strings.Cut(m.Type, ".")
	i, err := strconv.Atoi(leg)
	if !ok || err != nil || i < 0 || i >= len(c.docs) {
		return fmt.Errorf("event %q names no leg", m.Type)
	}
	switch kind {
	case "snapshot":
		c.docs[i] = []byte(m.Data)
	case "patch":
		p, err := jsonpatch.DecodePatch([]byte(m.Data))
		if err == nil {
			c.docs[i], err = p.Apply(c.docs[i])
		}
		if err != nil {
			return fmt.Errorf("leg %d: applying %s: %w", i, m.Data, err)
		}
	case "upstream":
		c.ups[i] = append(c.ups[i], m.Data)
		return nil
	default:
		return nil
	}
	c.ids[i] = append(c.ids[i], m.LastEventID)
	c.kinds[i] = append(c.kinds[i], kind)
	return nil
}

// waitLast waits until leg i's last event has id, failing after d.
func (c *multiClient) waitLast(t *testing.T, i int, id string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		c.mu.Lock()
		ids, done, err := c.ids[i], c.done, c.err
		c.mu.Unlock()
		switch {
		case len(ids) > 0 && ids[len(ids)-1] == id:
			return
		case done:
			t.Fatalf("stream ended before leg %d got %s: %v", i, id, err)
		case time.Now().After(deadline):
			t.Fatalf("leg %d: no event %s within %v; have %d events", i, id, d, len(ids))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitEnd waits until the client's connection has ended, failing after d.
func (c *multiClient) waitEnd(t *testing.T, d time.Duration) {
	t.Helper()
	ended := func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.done
	}
	if !eventually(d, ended) {
		t.Fatalf("the stream did not end within %v", d)
	}
}

// threeLegs returns three topics, two of one hub and one of another with settings of
// its own, as a multiplexed stream of three routes has.
func threeLegs(t *testing.T, cfg Config) []legTopic {
	t.Helper()
	a, b := newHub(t, cfg), newHub(t, Config{Heartbeat: time.Hour, WriteTimeout: cfg.WriteTimeout})
	return []legTopic{{a, "x", newDocSource()}, {a, "y", newDocSource()}, {b, "z", newDocSource()}}
}

// legDoc is document r of leg i, large when big.
func legDoc(i, r int, big bool) string {
	if big {
		return fmt.Sprintf(`{"leg":%d,"n":%d,"pad":%q}`, i, r, strings.Repeat(strconv.Itoa(r%10), 16<<10))
	}
	return fmt.Sprintf(`{"leg":%d,"n":%d,"items":[%d,"x"]}`, i, r, r)
}

// TestServeMultiEveryEventInOrder hands 50 connections, each carrying three topics of
// two hubs, to the shared writers, and publishes 30 changes to each topic, interleaved:
// every client receives, on each leg, the snapshot and then every patch of that topic
// in order, none missing, and holds each topic's last document. So do clients whose
// connections are not plain sockets, as with TLS, each served by a goroutine of its own.
func TestServeMultiEveryEventInOrder(t *testing.T) {
	t.Parallel()
	t.Run("shared writers", func(t *testing.T) {
		t.Parallel()
		testMultiEveryEventInOrder(t, nil)
	})
	t.Run("without socket", func(t *testing.T) {
		t.Parallel()
		testMultiEveryEventInOrder(t, func(c net.Conn) net.Conn { return opaqueConn{c} })
	})
}

// testMultiEveryEventInOrder runs TestServeMultiEveryEventInOrder with connections
// handed over as wrap returns them.
func testMultiEveryEventInOrder(t *testing.T, wrap func(net.Conn) net.Conn) {
	const n, changes = 50, 30
	topics := threeLegs(t, Config{})
	clients := serveMultiOver(t, topics, n, nil, wrap, Multi{})
	for _, c := range clients {
		go c.run()
	}
	docs := make([][]string, len(topics))
	for i := range topics {
		for r := range changes + 1 {
			docs[i] = append(docs[i], legDoc(i, r, false))
		}
	}
	for r := range changes + 1 {
		for i, lt := range topics {
			lt.src.send(t, docs[i][r])
		}
	}
	for i := range topics {
		ids := versions(t, docs[i])
		for k, c := range clients {
			c.waitLast(t, i, ids[changes], 10*time.Second)
			c.mu.Lock()
			got, kinds, doc := strings.Join(c.ids[i], ","), c.kinds[i], c.docs[i]
			c.mu.Unlock()
			if got != strings.Join(ids, ",") {
				t.Fatalf("client %d leg %d received %v; want %v", k, i, got, ids)
			}
			if kinds[0] != "snapshot" || strings.Count(strings.Join(kinds, ","), "patch") != changes {
				t.Fatalf("client %d leg %d received %v; want a snapshot, then patches", k, i, kinds)
			}
			if !jsonpatch.Equal(doc, []byte(docs[i][changes])) {
				t.Fatalf("client %d leg %d holds %s; want %s", k, i, doc, docs[i][changes])
			}
		}
	}
}

// TestIdleMultiStreamsHoldNoGoroutine: 300 idle connections of three legs each, over
// two hubs, add a handful of goroutines, not one each; the first leg's writers watch each
// socket once, and when the clients leave every subscription of every hub ends.
func TestIdleMultiStreamsHoldNoGoroutine(t *testing.T) {
	const n = 300
	topics := threeLegs(t, Config{})
	serveMulti(t, topics, 1, nil, Multi{}) // the topics, their sources and the writers
	before := runtime.NumGoroutine()
	clients := serveMulti(t, topics, n, nil, Multi{})
	if grown := runtime.NumGoroutine() - before; grown > n/20 {
		t.Fatalf("%d idle connections of 3 legs added %d goroutines", n, grown)
	}
	if w := watched(topics[0].h) + watched(topics[2].h); w != n+1 {
		t.Fatalf("%d sockets watched for %d connections", w, n+1)
	}
	for _, c := range clients {
		_ = c.conn.Close()
	}
	waitHubSubscribers(t, topics[0].h, 2)
	waitHubSubscribers(t, topics[2].h, 1)
	if w := watched(topics[0].h); w != 1 {
		t.Fatalf("%d sockets watched for 1 connection", w)
	}
}

// waitHubSubscribers waits until h has n subscribers.
func waitHubSubscribers(t *testing.T, h *Hub, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for h.Subscribers() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d subscribers; want %d", h.Subscribers(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestStalledMultiStreamCatchesUp stalls one client of three legs, which reads nothing
// and has small socket buffers, while each topic publishes 150 changes, one of them of
// 16 KiB documents: other clients receive every change of every leg meanwhile. When the
// stalled client reads again, every leg converges on its topic's last document, the big
// one with a catch-up instead of the frames it fell behind on; and it is then written
// by the shared writers again.
func TestStalledMultiStreamCatchesUp(t *testing.T) {
	t.Parallel()
	const others, changes = 5, 150
	topics := threeLegs(t, Config{WriteTimeout: time.Minute})
	stalled := serveMulti(t, topics, 1, func(server, client *net.TCPConn) {
		_ = server.SetWriteBuffer(4 << 10)
		_ = client.SetReadBuffer(4 << 10)
	}, Multi{})[0]
	clients := serveMulti(t, topics, others, nil, Multi{})
	for _, c := range clients {
		go c.run()
	}
	docs := make([][]string, len(topics))
	for i := range topics {
		for r := range changes + 1 {
			docs[i] = append(docs[i], legDoc(i, r, i == 0))
		}
	}
	for r := range changes + 1 {
		for i, lt := range topics {
			lt.src.send(t, docs[i][r])
		}
	}
	ids := make([][]string, len(topics))
	for i := range topics {
		ids[i] = versions(t, docs[i])
		for _, c := range clients {
			c.waitLast(t, i, ids[i][changes], 30*time.Second)
			c.mu.Lock()
			got := len(c.ids[i])
			c.mu.Unlock()
			if got != changes+1 {
				t.Fatalf("a client that keeps up received %d events of leg %d; want %d", got, i, changes+1)
			}
		}
	}
	go stalled.run()
	for i := range topics {
		stalled.waitLast(t, i, ids[i][changes], 30*time.Second)
	}
	stalled.mu.Lock()
	for i := range topics {
		if !jsonpatch.Equal(stalled.docs[i], []byte(docs[i][changes])) {
			t.Errorf("leg %d of the stalled client holds %.60s…; want %.60s…", i, stalled.docs[i], docs[i][changes])
		}
	}
	if len(stalled.ids[0]) >= changes+1 {
		t.Errorf("the stalled client received all %d events of the big leg: it never fell behind", len(stalled.ids[0]))
	}
	stalled.mu.Unlock()

	next := []string{legDoc(0, changes+1, true), legDoc(1, changes+1, false), legDoc(2, changes+1, false)}
	for i, lt := range topics {
		lt.src.send(t, next[i])
	}
	for i := range topics {
		stalled.waitLast(t, i, versions(t, append(docs[i], next[i]))[changes+1], 10*time.Second)
	}
}

// TestMultiStreamEndsWithItsFirstLeg: a connection carrying several subscriptions ends
// as soon as one of them must: a drain of one, the stop of one hub, its end time, its
// context. Every subscription of every hub then ends, and OnClose is called once. At
// the expiry of one subscription, that one alone is told so, with an upstream 401.
func TestMultiStreamEndsWithItsFirstLeg(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		until time.Duration
		end   func(t *testing.T, topics []legTopic, cancel context.CancelFunc)
	}{
		{"drain of one leg", 0, func(t *testing.T, topics []legTopic, _ context.CancelFunc) {
			h := topics[1].h
			h.mu.Lock()
			subs := h.topics["y"].members()
			h.mu.Unlock()
			if n := Drain(subs, time.Millisecond); n != 1 {
				t.Fatalf("drained %d subscriptions; want 1", n)
			}
		}},
		{"one hub stops", 0, func(_ *testing.T, topics []legTopic, _ context.CancelFunc) { topics[2].h.Close() }},
		{"end time", 200 * time.Millisecond, func(*testing.T, []legTopic, context.CancelFunc) {}},
		{"context", 0, func(_ *testing.T, _ []legTopic, cancel context.CancelFunc) { cancel() }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			topics := threeLegs(t, Config{})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var closed atomic.Int32
			m := Multi{OnClose: func() { closed.Add(1) }}
			if tc.until > 0 {
				m.Expires = []time.Time{{}, time.Now().Add(tc.until)}
			}
			c := serveMultiCtx(t, ctx, topics, m)
			go c.run()
			for i, lt := range topics {
				lt.src.send(t, legDoc(i, 0, false))
			}
			for i := range topics {
				c.waitLast(t, i, versions(t, []string{legDoc(i, 0, false)})[0], 5*time.Second)
			}
			tc.end(t, topics, cancel)
			c.waitEnd(t, 5*time.Second)
			waitHubSubscribers(t, topics[0].h, 0)
			waitHubSubscribers(t, topics[2].h, 0)
			if n := closed.Load(); n != 1 {
				t.Fatalf("OnClose called %d times; want once", n)
			}
			c.mu.Lock()
			defer c.mu.Unlock()
			for i, ups := range c.ups {
				expired := tc.until > 0 && i == 1
				if told := len(ups) == 1 && strings.Contains(ups[0], `"status":401`); told != expired || len(ups) > 1 {
					t.Errorf("leg %d was told %q; want the expiry told %v", i, ups, expired)
				}
			}
		})
	}
}

// serveMultiCtx serves one client as serveMulti does, with ctx.
func serveMultiCtx(t *testing.T, ctx context.Context, topics []legTopic, m Multi) *multiClient {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	sc, cc := acceptPair(t, ln)
	for _, lt := range topics {
		m.Subs = append(m.Subs, lt.subscribe(t))
	}
	m.Rewrite = legName
	if _, err := sc.Write([]byte(testHead)); err != nil {
		t.Fatal(err)
	}
	ServeMulti(ctx, sc, m)
	return &multiClient{conn: cc, ids: make([][]string, len(topics)), kinds: make([][]string, len(topics)), docs: make([][]byte, len(topics)), ups: make([][]string, len(topics))}
}
