package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	jsonpatch "github.com/evanphx/json-patch/v5"

	"github.com/pollsse/caddy-poll-sse/sse"
)

// chaosDuration is how long TestChaos stirs things up: 12 s by default, longer with
// POLL_SSE_CHAOS set to a Go duration, such as 10m.
func chaosDuration(t *testing.T) time.Duration {
	if v := os.Getenv("POLL_SSE_CHAOS"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("POLL_SSE_CHAOS=%q: %v", v, err)
		}
		return d
	}
	return 12 * time.Second
}

// chaosOracle knows every document the upstream served, canonically encoded, and the
// document each version id stood for when a client first saw it: an id never stands for
// two documents, and no client ever holds a document the upstream did not serve.
type chaosOracle struct {
	mu     sync.Mutex
	served map[string]bool // canonical documents, and "list " + their lists
	ids    map[string]string
	errs   []string
}

func canonical(b []byte) (string, error) {
	v, err := decodeJSON(b)
	if err != nil {
		return "", err
	}
	out, err := json.Marshal(v)
	return string(out), err
}

func (o *chaosOracle) serve(t *testing.T, u *upstream, doc any) {
	b := u.set(t, doc)
	c, err := canonical(b)
	if err != nil {
		t.Fatal(err)
	}
	var whole struct {
		List json.RawMessage `json:"list"`
	}
	_ = json.Unmarshal(b, &whole)
	list, _ := canonical(whole.List)
	o.mu.Lock()
	o.served[c] = true
	if whole.List != nil {
		o.served["list "+list] = true
	}
	o.mu.Unlock()
}

// check records a failure if doc, which a client holds at id after event what, was not
// served (as a whole, or as its list when kind is "list "), or id stood for another
// document before.
func (o *chaosOracle) check(who, what, kind, id string, doc []byte) {
	c, err := canonical(doc)
	c, id = kind+c, kind+id
	o.mu.Lock()
	defer o.mu.Unlock()
	switch prev, seen := o.ids[id]; {
	case err != nil:
		o.errs = append(o.errs, fmt.Sprintf("%s after %s %s holds no JSON: %v", who, what, id, err))
	case !o.served[c]:
		o.errs = append(o.errs, fmt.Sprintf("%s after %s %s holds a document never served: %.300s", who, what, id, c))
	case seen && prev != c:
		o.errs = append(o.errs, fmt.Sprintf("%s: id %s stands for %.200s, and before for %.200s", who, id, c, prev))
	default:
		o.ids[id] = c
	}
}

func (o *chaosOracle) fail(format string, args ...any) {
	o.mu.Lock()
	o.errs = append(o.errs, fmt.Sprintf(format, args...))
	o.mu.Unlock()
}

// chaosClient follows one route in one format as an EventSource does: it applies each
// event, and when the stream ends or is refused it comes back with the id it holds. Now
// and then it drops the connection itself.
type chaosClient struct {
	name, url, format string
	oracle            *chaosOracle

	mu      sync.Mutex
	doc     []byte
	id      string
	streams int
}

func (c *chaosClient) holds() ([]byte, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.doc, c.id
}

// run follows the stream until ctx ends, dropping it after a random while.
func (c *chaosClient) run(ctx context.Context, rng *rand.Rand, drops bool) {
	for ctx.Err() == nil {
		life := time.Hour
		if drops {
			life = time.Duration(200+rng.IntN(1300)) * time.Millisecond
		}
		sctx, cancel := context.WithTimeout(ctx, life)
		c.stream(sctx)
		cancel()
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(20+rng.IntN(200)) * time.Millisecond):
		}
	}
}

func (c *chaosClient) stream(ctx context.Context) {
	_, id := c.holds()
	if status := followStream(ctx, c.url+"?format="+c.format, id, c.opened, c.apply); status != 0 && status != http.StatusServiceUnavailable {
		c.oracle.fail("%s: status %d", c.name, status)
	}
}

func (c *chaosClient) opened() {
	c.mu.Lock()
	c.streams++
	c.mu.Unlock()
}

// followStream opens the event stream at url as an EventSource does, holding the version
// lastID, and hands each message to apply until the stream ends. It returns the status
// of a response other than 200, and 0 otherwise: a stream that was opened, or a request
// that failed while a reload replaced the handler (the client comes back).
func followStream(ctx context.Context, url, lastID string, opened func(), apply func(sse.Message)) int {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	req.Header.Set("Accept", "text/event-stream")
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode
	}
	opened()
	dec := sse.NewDecoder(resp.Body)
	for {
		msg, err := dec.Next()
		if err != nil {
			return 0
		}
		apply(msg)
	}
}

func (c *chaosClient) apply(msg sse.Message) {
	if msg.Type != "snapshot" && msg.Type != "patch" {
		return // upstream events change nothing
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	doc, err := applyInFormat(c.format, c.doc, msg.Type, msg.Data)
	if err != nil {
		c.oracle.fail("%s: %s %s on %s: %v", c.name, msg.Type, msg.LastEventID, c.id, err)
		c.doc, c.id = nil, "" // start clean, as the browser client does
		return
	}
	c.doc, c.id = doc, msg.LastEventID
	c.oracle.check(c.name, msg.Type, "", msg.LastEventID, doc)
}

// applyInFormat returns doc after a snapshot or patch event in format, applied with
// evanphx/json-patch.
func applyInFormat(format string, doc []byte, typ, data string) ([]byte, error) {
	switch {
	case typ == "snapshot":
		return []byte(data), nil
	case doc == nil:
		return nil, fmt.Errorf("a patch before any document")
	case format == "merge_patch":
		return jsonpatch.MergePatch(doc, []byte(data))
	case format == "json_patch":
		p, err := jsonpatch.DecodePatch([]byte(data))
		if err != nil {
			return nil, err
		}
		return p.Apply(doc)
	}
	return nil, fmt.Errorf("a patch in format %s", format)
}

// chaosMux follows a mux of stream `a` (the whole document) and stream `b` (its list),
// applying each stream's events, and comes back with the composite id it holds. Each
// part of that id is checked against the oracle as a single stream's id: the same
// version ids, derived from content, whichever way a client comes.
type chaosMux struct {
	chaosClient
	docs map[string][]byte
}

func (c *chaosMux) holds() ([]byte, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.docs["a"], c.id
}

// apply takes one mux event: `<stream>.<event>`, with the composite id.
func (c *chaosMux) apply(msg sse.Message) {
	stream, typ, _ := strings.Cut(msg.Type, ".")
	if typ != "snapshot" && typ != "patch" {
		// A mux request that reaches the config a reload is replacing may find its
		// routes gone (404); nothing else is refused here.
		if msg.Type == "refused" && !strings.Contains(msg.Data, `"status":404`) {
			c.oracle.fail("%s: refused %s", c.name, msg.Data)
		}
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	doc, err := applyInFormat(c.format, c.docs[stream], typ, msg.Data)
	if err != nil {
		c.oracle.fail("%s: %s %s on %s: %v", c.name, msg.Type, msg.LastEventID, c.id, err)
		c.docs, c.id = map[string][]byte{}, "" // start clean
		return
	}
	c.docs[stream], c.id = doc, msg.LastEventID
	parts := strings.Split(msg.LastEventID, ".")
	if len(parts) != 2 {
		c.oracle.fail("%s: composite id %q", c.name, msg.LastEventID)
		return
	}
	if stream == "a" {
		c.oracle.check(c.name, msg.Type, "", parts[0], doc)
	} else {
		c.oracle.check(c.name, msg.Type, "list ", parts[1], doc)
	}
}

// run follows the mux until ctx ends, dropping it after a random while.
func (c *chaosMux) run(ctx context.Context, rng *rand.Rand) {
	for ctx.Err() == nil {
		sctx, cancel := context.WithTimeout(ctx, time.Duration(200+rng.IntN(1300))*time.Millisecond)
		c.stream(sctx)
		cancel()
		time.Sleep(time.Duration(20+rng.IntN(200)) * time.Millisecond)
	}
}

func (c *chaosMux) stream(ctx context.Context) {
	_, id := c.holds()
	status := followStream(ctx, c.url+"?stream=a&stream=b&format="+c.format, id, c.opened, c.apply)
	if status != 0 && status != http.StatusServiceUnavailable && status != http.StatusNotFound {
		c.oracle.fail("%s: status %d", c.name, status)
	}
}

// chaosDoc is revision rev of a document whose shape changes: members come and go,
// an array grows and shrinks, values change type.
func chaosDoc(rng *rand.Rand, rev int) map[string]any {
	rows := map[string]any{}
	for r := range 12 {
		switch rng.IntN(6) {
		case 0:
			continue // absent this time
		case 1:
			rows[fmt.Sprintf("r%d", r)] = fmt.Sprintf("text %d", rng.IntN(5))
		case 2:
			rows[fmt.Sprintf("r%d", r)] = nil
		default:
			rows[fmt.Sprintf("r%d", r)] = map[string]any{"v": rng.IntN(4), "tags": make([]any, rng.IntN(3))}
		}
	}
	list := make([]any, rng.IntN(6))
	for i := range list {
		list[i] = map[string]any{"id": i, "n": rng.IntN(3)}
	}
	return map[string]any{"rev": rev, "rows": rows, "list": list}
}

// TestChaos runs clients in every format, on a route handed over to the shared writers
// and on one written through the ResponseWriter (behind `intercept`), that drop and
// resume with Last-Event-ID at random, while the upstream changes its document every
// 50–250 ms, fails and hangs now and then, and Caddy reloads, with the same config and
// with one that changes the routes' settings. After every event each client must hold a
// document the upstream served, an id must always stand for the same document, and
// when the upstream settles every client holds its last document.
func TestChaos(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(2026, 11))
	u := newUpstream(t, map[string]any{})
	oracle := &chaosOracle{served: map[string]bool{}, ids: map[string]string{}}
	oracle.serve(t, u, chaosDoc(rng, 0))
	site := func(interval string) string {
		route := pollSSE(u.url(), "interval "+interval, "timeout 300ms", "retry 100ms")
		named := func(name string, more ...string) string {
			return indent(pollSSE(u.url(), append([]string{"interval " + interval, "timeout 300ms", "retry 100ms", "name " + name}, more...)...))
		}
		return fmt.Sprintf("handle /a {\n%s\n}\nroute /w {\n\tintercept {\n\t\t@err status 5xx\n\t\treplace_status @err 502\n\t}\n%s\n}\n", named("a"), indent(route)) +
			fmt.Sprintf("handle /b {\n%s\n}\nhandle /mux {\n\tpoll_sse_mux {\n\t\tstreams a b\n\t}\n}", named("b", "select /list"))
	}
	caddy := startCaddy(t, site("50ms"))

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var clients []*chaosClient
	for i := range 24 {
		path := []string{"/a", "/w"}[i%2]
		format := []string{"json_patch", "merge_patch", "snapshot"}[i%3]
		c := &chaosClient{name: fmt.Sprintf("client %d (%s %s)", i, path, format), url: caddy.url(path), format: format, oracle: oracle}
		clients = append(clients, c)
		crng := rand.New(rand.NewPCG(uint64(i), 7))
		wg.Go(func() { c.run(ctx, crng, i%4 != 0) })
	}
	var muxes []*chaosMux
	for i, format := range []string{"json_patch", "merge_patch", "snapshot", "json_patch"} {
		m := &chaosMux{chaosClient: chaosClient{name: fmt.Sprintf("mux %d (%s)", i, format), url: caddy.url("/mux"), format: format, oracle: oracle}, docs: map[string][]byte{}}
		muxes = append(muxes, m)
		mrng := rand.New(rand.NewPCG(uint64(i), 9))
		wg.Go(func() { m.run(ctx, mrng) })
	}

	reloads, end := 0, time.Now().Add(chaosDuration(t))
	nextReload := time.Now().Add(time.Second)
	for rev := 1; time.Now().Before(end); rev++ {
		switch r := rng.IntN(20); {
		case r == 0:
			u.setMode(serve500)
		case r == 1:
			u.setMode(serveHang)
		case r < 4:
			u.setMode(serveJSON)
		}
		oracle.serve(t, u, chaosDoc(rng, rev))
		time.Sleep(time.Duration(50+rng.IntN(200)) * time.Millisecond)
		if time.Now().After(nextReload) {
			interval := []string{"50ms", "50ms", "60ms"}[rng.IntN(3)] // mostly the same config
			caddy.config = []byte(caddyfileWith(caddy.adminAddr, caddy.siteAddr, "", site(interval)))
			load(t, caddy, caddy.config, nil)
			reloads++
			nextReload = time.Now().Add(time.Duration(800+rng.IntN(1500)) * time.Millisecond)
		}
	}
	u.setMode(serveJSON)
	oracle.serve(t, u, map[string]any{"rev": "final"})
	final, _ := canonical(u.document())
	deadline := time.Now().Add(20 * time.Second)
	for _, c := range clients {
		waitFinal(t, c.name, c.holds, final, deadline)
	}
	for _, m := range muxes {
		waitFinal(t, m.name, m.holds, final, deadline)
	}
	cancel()
	wg.Wait()
	streams := 0
	for _, m := range muxes {
		streams += m.streams
	}
	for _, c := range clients {
		streams += c.streams
	}
	t.Logf("%d reloads, %d streams opened, %d ids seen", reloads, streams, len(oracle.ids))
	if len(oracle.errs) > 0 {
		t.Fatalf("%d failures, the first:\n%s", len(oracle.errs), strings.Join(oracle.errs[:min(len(oracle.errs), 10)], "\n"))
	}
}

// waitFinal waits until holds returns the document final, and fails the test after
// deadline.
func waitFinal(t *testing.T, name string, holds func() ([]byte, string), final string, deadline time.Time) {
	t.Helper()
	for {
		doc, _ := holds()
		if got, _ := canonical(doc); got == final {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%s holds %.300s, want the final document", name, doc)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}
