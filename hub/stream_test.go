package hub

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"go.uber.org/goleak"

	"github.com/pollsse/caddy-poll-sse/diff"
	"github.com/pollsse/caddy-poll-sse/sse"
)

// testHead is the response header the tests hand to Serve.
const testHead = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n"

// connClient is an SSE client on a real loopback connection served with Serve.
type connClient struct {
	conn  net.Conn
	apply bool // keep the document by applying what arrives

	mu   sync.Mutex
	ids  []string // the id of each snapshot and patch, in order
	kind []string // and its event type
	doc  []byte
	err  error
	more chan struct{} // closed and replaced on each event
}

// serveClients connects n clients to the topic "k" of h, each through Serve.
func serveClients(t *testing.T, h *Hub, src Source, n int, prepare func(server, client *net.TCPConn)) []*connClient {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	clients := make([]*connClient, n)
	for i := range clients {
		sc, cc := acceptPair(t, ln)
		if prepare != nil {
			prepare(sc.(*net.TCPConn), cc.(*net.TCPConn))
		}
		sub, err := h.Subscribe("k", func() Source { return src }, "", JSONPatch)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sc.Write([]byte(testHead)); err != nil {
			t.Fatal(err)
		}
		sub.Serve(context.Background(), sc)
		clients[i] = &connClient{conn: cc, more: make(chan struct{})}
	}
	return clients
}

// run reads the response header and then events until the connection ends.
func (c *connClient) run() {
	err := readEvents(c.conn, c.take)
	c.mu.Lock()
	c.err = err
	close(c.more)
	c.more = nil
	c.mu.Unlock()
}

// readEvents reads the response header from conn, then hands each event to take until
// the connection ends or take fails, and returns why it stopped.
func readEvents(conn net.Conn, take func(sse.Message) error) error {
	br := bufio.NewReader(conn)
	err := skipHeader(br)
	dec := sse.NewDecoder(br)
	for err == nil {
		var m sse.Message
		if m, err = dec.Next(); err == nil {
			err = take(m)
		}
	}
	return err
}

// skipHeader reads the response header, up to its blank line.
func skipHeader(br *bufio.Reader) error {
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return err
		}
		if line == "\r\n" {
			return nil
		}
	}
}

func (c *connClient) take(m sse.Message) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if m.Type != "snapshot" && m.Type != "patch" {
		return nil
	}
	c.ids = append(c.ids, m.LastEventID)
	c.kind = append(c.kind, m.Type)
	if c.apply {
		if m.Type == "snapshot" {
			c.doc = []byte(m.Data)
		} else {
			doc, err := applyPatch(JSONPatch, c.doc, []byte(m.Data))
			if err != nil {
				return err
			}
			c.doc = doc
		}
	}
	close(c.more)
	c.more = make(chan struct{})
	return nil
}

// waitID waits until the client received the event with id, failing after d.
func (c *connClient) waitID(t *testing.T, id string, d time.Duration) {
	t.Helper()
	deadline := time.After(d)
	for {
		c.mu.Lock()
		done := len(c.ids) > 0 && c.ids[len(c.ids)-1] == id
		more, err := c.more, c.err
		c.mu.Unlock()
		switch {
		case done:
			return
		case more == nil:
			t.Fatalf("stream ended before %s: %v", id, err)
		}
		select {
		case <-more:
		case <-deadline:
			c.mu.Lock()
			n := len(c.ids)
			c.mu.Unlock()
			t.Fatalf("no event %s within %v; have %d events", id, d, n)
		}
	}
}

// versions returns the ids the documents get, in order.
func versions(t *testing.T, docs []string) []string {
	t.Helper()
	var tr diff.Tracker
	ids := make([]string, len(docs))
	for i, d := range docs {
		ch, _, err := tr.Update([]byte(d))
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = ch.Version.ID
	}
	return ids
}

// TestServeEveryEventInOrder hands 2,000 connections to the hub and publishes 100
// changes back to back: every client receives the snapshot and then each of the 100
// patches, in order, none missing, and a sample of them applies the patches to the
// upstream document. After every client leaves, no goroutine is left and the memory the
// streams held is returned.
func TestServeEveryEventInOrder(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	const subscribers, changes = 2000, 100
	base := memory()
	h := New(Config{})
	src := newDocSource()
	docs := make([]string, changes+1)
	for i := range docs {
		docs[i] = doc(i)
	}
	ids := versions(t, docs)
	clients := serveClients(t, h, src, subscribers, nil)
	var wg sync.WaitGroup
	for i, c := range clients {
		c.apply = i%100 == 0
		wg.Go(c.run)
	}
	src.send(t, docs[0])
	for _, c := range clients {
		c.waitID(t, ids[0], 10*time.Second)
	}
	for _, d := range docs[1:] {
		src.send(t, d)
	}
	for _, c := range clients {
		c.waitID(t, ids[changes], 30*time.Second)
	}
	peak := memory()
	for i, c := range clients {
		checkEvents(t, i, c, ids, docs[changes])
	}

	for _, c := range clients {
		_ = c.conn.Close()
	}
	wg.Wait()
	waitIdle(t, h)
	h.Close()
	clients = nil
	after := memory()
	t.Logf("heap in use: %s before, %s with %d streams, %s after; RSS %s, %s, %s",
		mib(base.heap), mib(peak.heap), subscribers, mib(after.heap), mib(base.rss), mib(peak.rss), mib(after.rss))
	if grown := peak.heap - base.heap; after.heap > base.heap+grown/4 {
		t.Errorf("heap in use %s after the streams ended; %s before and %s with them", mib(after.heap), mib(base.heap), mib(peak.heap))
	}
	if grown := peak.rss - base.rss; !raceEnabled && base.rss > 0 && after.rss > base.rss+grown/2 {
		t.Errorf("RSS %s after the streams ended; %s before and %s with them", mib(after.rss), mib(base.rss), mib(peak.rss))
	}
}

func checkEvents(t *testing.T, i int, c *connClient, ids []string, final string) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if strings.Join(c.ids, ",") != strings.Join(ids, ",") {
		t.Fatalf("client %d received %d events %v; want %d", i, len(c.ids), c.ids, len(ids))
	}
	if c.kind[0] != "snapshot" || strings.Count(strings.Join(c.kind[1:], ","), "patch") != len(ids)-1 {
		t.Fatalf("client %d received %v; want a snapshot and then patches", i, c.kind)
	}
	if c.apply && !jsonpatch.Equal(c.doc, []byte(final)) {
		t.Fatalf("client %d holds %s; want %s", i, c.doc, final)
	}
}

// waitIdle waits until topic "k" of h has no subscriber.
func waitIdle(t *testing.T, h *Hub) {
	t.Helper()
	h.mu.Lock()
	top := h.topics["k"]
	h.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for top != nil && !top.idle() {
		if time.Now().After(deadline) {
			t.Fatal("subscriptions still open after every client left")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type usage struct{ heap, rss uint64 }

// memory returns the heap in use and the resident set after a collection that returns
// free memory to the system. The RSS is 0 where /proc is missing.
func memory() usage {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return usage{heap: ms.HeapInuse, rss: residentSet()}
}

func residentSet() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err == nil {
				return kb << 10
			}
		}
	}
	return 0
}

func mib(n uint64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// bigDoc is a document of about 16 KiB that differs from bigDoc(j) for every j ≠ i.
func bigDoc(i int) string {
	return fmt.Sprintf(`{"n":%d,"pad":%q}`, i, strings.Repeat(strconv.Itoa(i%10), 16<<10))
}

// TestStalledSubscriberDoesNotBlockOthers stalls one client, which reads nothing and
// has small socket buffers, while 200 changes of 16 KiB go out: the other clients receive
// every one of them meanwhile. When the stalled client reads again it converges on the
// last document, with a catch-up instead of the frames it fell behind on.
func TestStalledSubscriberDoesNotBlockOthers(t *testing.T) {
	t.Parallel()
	const others, changes = 20, 200
	h := newHub(t, Config{WriteTimeout: time.Minute})
	src := newDocSource()
	docs := make([]string, changes+1)
	for i := range docs {
		docs[i] = bigDoc(i)
	}
	ids := versions(t, docs)
	stalled := serveClients(t, h, src, 1, func(server, client *net.TCPConn) {
		_ = server.SetWriteBuffer(4 << 10)
		_ = client.SetReadBuffer(4 << 10)
	})[0]
	stalled.apply = true
	clients := serveClients(t, h, src, others, nil)
	for _, c := range clients {
		go c.run()
	}
	for _, d := range docs {
		src.send(t, d)
	}
	for _, c := range clients {
		c.waitID(t, ids[changes], 30*time.Second)
		checkEvents(t, 0, c, ids, docs[changes])
	}

	go stalled.run()
	stalled.waitID(t, ids[changes], 30*time.Second)
	stalled.mu.Lock()
	defer stalled.mu.Unlock()
	if !jsonpatch.Equal(stalled.doc, []byte(docs[changes])) {
		t.Fatalf("the stalled client holds %.60s…; want %.60s…", stalled.doc, docs[changes])
	}
	if len(stalled.ids) >= len(ids) {
		t.Fatalf("the stalled client received all %d events: it never fell behind", len(stalled.ids))
	}
	t.Logf("the stalled client converged after %d events: %v", len(stalled.ids), stalled.kind)
}

// TestServeEndsWithTheTopic closes the streams of a hub that closes, and of a client
// whose context ends.
func TestServeEndsWithTheTopic(t *testing.T) {
	t.Parallel()
	h := New(Config{})
	src := newDocSource()
	clients := serveClients(t, h, src, 3, nil)
	for _, c := range clients {
		go c.run()
	}
	src.send(t, doc(1))
	h.Close()
	for _, c := range clients {
		select {
		case <-c.ended():
		case <-time.After(5 * time.Second):
			t.Fatal("a stream outlived its hub")
		}
	}
}

// ended returns a channel closed when the client's stream has ended.
func (c *connClient) ended() <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c.mu.Lock()
			more := c.more
			c.mu.Unlock()
			if more == nil {
				return
			}
			<-more
		}
	}()
	return done
}

// opaqueConn hides the socket beneath a connection, as TLS does: the hub cannot write it
// without blocking and serves it from a goroutine of its own.
type opaqueConn struct{ net.Conn }

// TestServeConnWithoutSocket serves connections that are not plain sockets: every client
// receives every change in order.
func TestServeConnWithoutSocket(t *testing.T) {
	t.Parallel()
	h := newHub(t, Config{})
	src := newDocSource()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	docs := make([]string, 21)
	for i := range docs {
		docs[i] = doc(i)
	}
	ids := versions(t, docs)
	clients := make([]*connClient, 20)
	for i := range clients {
		sc, cc := acceptPair(t, ln)
		sub, err := h.Subscribe("k", func() Source { return src }, "", JSONPatch)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sc.Write([]byte(testHead)); err != nil {
			t.Fatal(err)
		}
		conn := opaqueConn{sc}
		if socketFD(conn) != -1 {
			t.Fatal("the wrapped connection shows its socket")
		}
		sub.Serve(context.Background(), conn)
		clients[i] = &connClient{conn: cc, more: make(chan struct{}), apply: true}
		go clients[i].run()
	}
	for _, d := range docs {
		src.send(t, d)
	}
	for i, c := range clients {
		c.waitID(t, ids[len(ids)-1], 10*time.Second)
		checkEvents(t, i, c, ids, docs[len(docs)-1])
	}
}
