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
	served map[string]bool
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
	o.mu.Lock()
	o.served[c] = true
	o.mu.Unlock()
}

// check records a failure if doc, which a client holds at id after event what, was not
// served, or id stood for another document before.
func (o *chaosOracle) check(who, what, id string, doc []byte) {
	c, err := canonical(doc)
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
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.url+"?format="+c.format, nil)
	req.Header.Set("Accept", "text/event-stream")
	if _, id := c.holds(); id != "" {
		req.Header.Set("Last-Event-ID", id)
	}
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return // refused while a reload replaces the handler: come back
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		if resp.StatusCode != http.StatusServiceUnavailable {
			c.oracle.fail("%s: status %s", c.name, resp.Status)
		}
		return
	}
	c.mu.Lock()
	c.streams++
	c.mu.Unlock()
	dec := sse.NewDecoder(resp.Body)
	for {
		msg, err := dec.Next()
		if err != nil {
			return
		}
		c.apply(msg)
	}
}

func (c *chaosClient) apply(msg sse.Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var doc []byte
	var err error
	switch msg.Type {
	case "snapshot":
		doc = []byte(msg.Data)
	case "patch":
		switch {
		case c.doc == nil:
			err = fmt.Errorf("a patch before any document")
		case c.format == "merge_patch":
			doc, err = jsonpatch.MergePatch(c.doc, []byte(msg.Data))
		case c.format == "json_patch":
			var p jsonpatch.Patch
			if p, err = jsonpatch.DecodePatch([]byte(msg.Data)); err == nil {
				doc, err = p.Apply(c.doc)
			}
		default:
			err = fmt.Errorf("a patch in format %s", c.format)
		}
	default:
		return // upstream events and comments change nothing
	}
	if err != nil {
		c.oracle.fail("%s: %s %s on %s: %v", c.name, msg.Type, msg.LastEventID, c.id, err)
		c.doc, c.id = nil, "" // start clean, as the browser client does
		return
	}
	c.doc, c.id = doc, msg.LastEventID
	c.oracle.check(c.name, msg.Type, msg.LastEventID, doc)
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
		return fmt.Sprintf("handle /a {\n%s\n}\nroute /w {\n\tintercept {\n\t\t@err status 5xx\n\t\treplace_status @err 502\n\t}\n%s\n}",
			indent(route), indent(route))
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
		for {
			doc, _ := c.holds()
			if got, _ := canonical(doc); got == final {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("%s holds %.300s, want the final document", c.name, doc)
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	cancel()
	wg.Wait()
	streams := 0
	for _, c := range clients {
		streams += c.streams
	}
	t.Logf("%d reloads, %d streams opened, %d ids seen", reloads, streams, len(oracle.ids))
	if len(oracle.errs) > 0 {
		t.Fatalf("%d failures, the first:\n%s", len(oracle.errs), strings.Join(oracle.errs[:min(len(oracle.errs), 10)], "\n"))
	}
}
