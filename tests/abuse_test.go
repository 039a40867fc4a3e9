package tests

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// trustLoopback makes Caddy take the client address from X-Forwarded-For when the
// connection comes from loopback, as behind a proxy, so that a test can speak as many
// clients.
const trustLoopback = "servers {\n\ttrusted_proxies static 127.0.0.1/32\n\tclient_ip_headers X-Forwarded-For\n}"

// TestMaxLoopsPerClient has one client address ask for 5,000 distinct loops (distinct
// query placeholder values), as fast as 8 connections allow: it gets exactly its 32 and
// 429 with Retry-After beyond them, on JSON GETs and on streams, while another address
// is served normally, and the client may still join a running loop. The upstream sees
// one request per loop started, no more.
func TestMaxLoopsPerClient(t *testing.T) {
	t.Parallel()
	var hits sync.Map // id → request count
	var total atomic.Int64
	up := newRecorder(t, func(r *http.Request) any {
		id := r.URL.Query().Get("id")
		n, _ := hits.LoadOrStore(id, new(atomic.Int64))
		n.(*atomic.Int64).Add(1)
		total.Add(1)
		return map[string]any{"id": id}
	})
	c := startCaddyWith(t, trustLoopback, "poll_sse /u* "+up.srv.URL+"/api?id={http.request.uri.query.id} {\n\tinterval 1h\n\tlinger 5m\n}")
	const attacker, other, attempts, limit = "203.0.113.7", "198.51.100.9", 5000, 32

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	statuses := make([]int, attempts)
	var missingRetry atomic.Int64
	var next atomic.Int64
	client := boundedClient()
	defer client.CloseIdleConnections()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < attempts && ctx.Err() == nil; i = int(next.Add(1)) - 1 {
				resp, err := getAs(ctx, client, c.url("/u?id=a"+fmt.Sprint(i)), attacker, "application/json")
				if err != nil {
					continue
				}
				statuses[i] = resp.StatusCode
				if resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("Retry-After") == "" {
					missingRetry.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		t.Fatal("5,000 requests did not finish within 2 minutes")
	}
	counts := map[int]int{}
	var served []int
	for i, s := range statuses {
		counts[s]++
		if s == http.StatusOK {
			served = append(served, i)
		}
	}
	if counts[http.StatusOK] != limit || counts[http.StatusTooManyRequests] != attempts-limit {
		t.Fatalf("statuses of %d requests for distinct loops from one address: %v; want %d × 200, the rest 429", attempts, counts, limit)
	}
	if n := missingRetry.Load(); n > 0 {
		t.Errorf("%d answers 429 without Retry-After", n)
	}
	if n := total.Load(); n != limit {
		t.Errorf("upstream saw %d requests for %d loops", n, limit)
	}

	// A stream for one more loop is refused too; one for a running loop is not.
	resp, err := getAs(ctx, client, c.url("/u?id=stream"), attacker, "text/event-stream")
	if err != nil || resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Errorf("stream for a 33rd loop: %v, %v; want 429 with Retry-After", statusOf(resp), err)
	}
	joined := dialSSE(t, c.url("/u"), withRawQuery(fmt.Sprintf("id=a%d", served[0])), withHeader("X-Forwarded-For", attacker))
	checkStreamHeaders(t, joined.resp)
	joined.waitFor([]byte(fmt.Sprintf(`{"id":"a%d"}`, served[0])), 5*time.Second)

	// Another address starts loops of its own, as a stream and as a JSON GET.
	own := dialSSE(t, c.url("/u"), withRawQuery("id=b1"), withHeader("X-Forwarded-For", other))
	checkStreamHeaders(t, own.resp)
	own.waitFor([]byte(`{"id":"b1"}`), 5*time.Second)
	resp, err = getAs(ctx, client, c.url("/u?id=b2"), other, "application/json")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("JSON GET from another address: %v, %v; want 200", statusOf(resp), err)
	}
	if n := total.Load(); n != limit+2 {
		t.Errorf("upstream saw %d requests for %d loops", n, limit+2)
	}
}

// getAs sends a GET for u from client address addr (X-Forwarded-For, trusted from
// loopback) accepting accept, and returns the response with its body read and closed.
func getAs(ctx context.Context, client *http.Client, u, addr, accept string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("X-Forwarded-For", addr)
	req.Header.Set("Accept", accept)
	if accept == "text/event-stream" {
		// A stream that opens would not end: read its header only.
		sctx, cancel := context.WithCancel(ctx)
		defer cancel()
		req = req.WithContext(sctx)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	if accept != "text/event-stream" {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	}
	resp.Body.Close()
	return resp, nil
}

func statusOf(resp *http.Response) any {
	if resp == nil {
		return "no response"
	}
	return resp.StatusCode
}

// TestJSONGetsAreNotSubscribers fills a route's max_subscribers with one stream: JSON
// GETs, served from the cache, are still answered, while a second stream gets 503 with
// Retry-After.
func TestJSONGetsAreNotSubscribers(t *testing.T) {
	t.Parallel()
	u := newUpstream(t, map[string]any{"n": 1})
	c := startCaddy(t, pollSSE(u.url(), "interval 1h", "max_subscribers 1"))
	cl := dialSSE(t, c.url(""))
	checkStreamHeaders(t, cl.resp)
	cl.waitFor(u.document(), 5*time.Second)
	client := boundedClient()
	defer client.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := range 20 {
		resp, err := getAs(ctx, client, c.url("/"), "127.0.0.1", "application/json")
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("JSON GET %d beside a full route: %v, %v; want 200", i, statusOf(resp), err)
		}
	}
	resp, err := getAs(ctx, client, c.url("/"), "127.0.0.1", "text/event-stream")
	if err != nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("second stream: %v, %v; want 503 with Retry-After", statusOf(resp), err)
	}
}

// TestExpandedURLsNotShown opens loops whose upstream URLs hold a user id in the path and
// a token in the query, both from the request, one of them failing upstream: neither
// value appears in GET /poll_sse/loops nor in the module's logs, which show the template
// with the placeholder's name.
func TestExpandedURLsNotShown(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t, nil)
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "down", http.StatusInternalServerError)
	}))
	defer failing.Close()
	site := "poll_sse /ok/* " + rec.srv.URL + "/api/users/{http.request.uri.path.1}?token={http.request.uri.query.token} {\n\tname ok\n\tinterval 100ms\n}\n" +
		"poll_sse /down/* " + failing.URL + "/api/users/{http.request.uri.path.1} {\n\tname down\n\tinterval 100ms\n}"
	c := startCaddy(t, site)
	secrets := []string{"alice-4711", "t0k3n-0815", "bob-2342"}
	ok := dialSSE(t, c.url("/ok/alice-4711"), withRawQuery("token=t0k3n-0815"))
	checkStreamHeaders(t, ok.resp)
	ok.waitFor([]byte(`{"ok":true}`), 5*time.Second)
	down := dialSSE(t, c.url("/down/bob-2342"))
	checkStreamHeaders(t, down.resp)
	down.waitEvent("upstream", 5*time.Second, isUpstream(t, func(s upstreamStatus) bool { return !s.OK }))

	ls, body := loops(t, c)
	want := map[string]string{
		"ok":   rec.srv.URL + "/api/users/{http.request.uri.path.1}?token=REDACTED",
		"down": failing.URL + "/api/users/{http.request.uri.path.1}",
	}
	for route, upstream := range want {
		got := routeLoops(ls, route)
		if len(got) != 1 || got[0].Upstream != upstream {
			t.Errorf("loops of route %s: %v; want one with upstream %s", route, got, upstream)
		}
	}
	logs := strings.Join(moduleLogs(c.stderr.String()), "\n")
	for _, secret := range secrets {
		if strings.Contains(body, secret) {
			t.Errorf("GET /poll_sse/loops shows %q: %s", secret, body)
		}
		if strings.Contains(logs, secret) {
			t.Errorf("the module's logs show %q:\n%s", secret, logs)
		}
	}
	for _, msg := range []string{"starting poll loop", "upstream failing"} {
		if !strings.Contains(logs, msg) || !strings.Contains(logs, "{http.request.uri.path.1}") {
			t.Errorf("no %q log line naming the placeholder:\n%s", msg, logs)
		}
	}
}

// TestWildViewsPerClient has one client address open streams on 20 distinct parts that
// a `client_select /prices/*` pattern allows, once another address has started the
// route's loop: each part is a view of its own, so it gets its max_loops_per_client of 3
// and 429 with Retry-After beyond them, while the other address opens another; the
// route's one loop polls for all of them.
func TestWildViewsPerClient(t *testing.T) {
	t.Parallel()
	u := newUpstream(t, map[string]any{"prices": map[string]any{"ACME": 1}})
	c := startCaddyWith(t, trustLoopback, pollSSE(u.url(), "client_select /prices/*", "max_loops_per_client 3", "interval 1h"))
	const attacker, other, attempts, limit = "203.0.113.7", "198.51.100.9", 20, 3
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	client := boundedClient()
	defer client.CloseIdleConnections()
	var streams []*http.Response
	defer func() {
		for _, s := range streams {
			s.Body.Close()
		}
	}()
	open := func(addr, part string) int {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.url("/?select=/prices/"+part), nil)
		req.Header.Set("X-Forwarded-For", addr)
		req.Header.Set("Accept", "text/event-stream")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode == http.StatusOK {
			streams = append(streams, resp) // kept open: its view stays live
			return resp.StatusCode
		}
		if resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("Retry-After") == "" {
			t.Errorf("429 without Retry-After")
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := open(other, "ACME"); s != http.StatusOK {
		t.Fatalf("the first view: %d, want 200", s)
	}
	counts := map[int]int{}
	for i := range attempts {
		counts[open(attacker, fmt.Sprint("P", i))]++
	}
	if counts[http.StatusOK] != limit || counts[http.StatusTooManyRequests] != attempts-limit {
		t.Fatalf("statuses of %d streams on distinct wildcard views from one address: %v; want %d × 200, the rest 429", attempts, counts, limit)
	}
	if s := open(other, "OTHER"); s != http.StatusOK {
		t.Errorf("another address's second view: %d, want 200", s)
	}
	if s := open(attacker, "P0"); s != http.StatusOK {
		t.Errorf("joining a live view the client started: %d, want 200", s)
	}
}
