package tests

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// recordedRequest is what a recording upstream saw of one request.
type recordedRequest struct {
	method      string
	host        string
	requestURI  string
	escapedPath string
	rawQuery    string
	header      http.Header
	body        string
}

// recorder is an upstream that records every request and answers a JSON document
// chosen by answer (or the fixed doc when answer is nil).
type recorder struct {
	srv    *httptest.Server
	answer func(r *http.Request) any

	mu   sync.Mutex
	doc  []byte
	reqs []recordedRequest
}

func newRecorder(t testing.TB, answer func(r *http.Request) any) *recorder {
	t.Helper()
	rec := &recorder{answer: answer, doc: []byte(`{"ok":true}`)}
	rec.srv = httptest.NewServer(http.HandlerFunc(rec.serve))
	t.Cleanup(rec.srv.Close)
	return rec
}

func (rec *recorder) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	rr := recordedRequest{
		method: r.Method, host: r.Host, requestURI: r.RequestURI, escapedPath: r.URL.EscapedPath(),
		rawQuery: r.URL.RawQuery, header: r.Header.Clone(), body: string(body),
	}
	rec.mu.Lock()
	rec.reqs = append(rec.reqs, rr)
	doc := rec.doc
	rec.mu.Unlock()
	if rec.answer != nil {
		doc, _ = json.Marshal(rec.answer(r))
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(doc)
}

func (rec *recorder) requests() []recordedRequest {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return slices.Clone(rec.reqs)
}

func (rec *recorder) host() string { return strings.TrimPrefix(rec.srv.URL, "http://") }

// jsonGet sends a GET with Accept: application/json and returns status, header and body.
func jsonGet(client *http.Client, u string, header http.Header) (int, http.Header, []byte, error) {
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		return 0, nil, nil, err
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, resp.Header, b, err
}

// rawGet writes a request line with target exactly as given and reads the response.
func rawGet(addr, target string, header map[string]string) (*http.Response, []byte, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, nil, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n", target, addr)
	for k, v := range header {
		fmt.Fprintf(&b, "%s: %s\r\n", k, v)
	}
	b.WriteString("\r\n")
	if _, err := io.WriteString(conn, b.String()); err != nil {
		return nil, nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp, body, nil
}

// post sends a POST to u with the given headers and returns the status and header.
func post(client *http.Client, u string, header map[string]string) (int, http.Header, error) {
	req, err := http.NewRequest(http.MethodPost, u, nil)
	if err != nil {
		return 0, nil, err
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header, nil
}

func boundedClient() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
}

// TestForwardAuthorizationIsolatesClients checks that clients with different forwarded
// Authorization values each see only their own document, that resuming with another
// identity's event id yields a snapshot of one's own document, and that a client without
// Authorization never makes the upstream see one.
func TestForwardAuthorizationIsolatesClients(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t, func(r *http.Request) any {
		return map[string]any{"user": strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")}
	})
	c := startCaddy(t, pollSSE(rec.srv.URL+"/me", "interval 100ms", "forward Authorization"))
	docs := map[string][]byte{"alice": []byte(`{"user":"alice"}`), "bob": []byte(`{"user":"bob"}`)}

	clients := map[string]*sseClient{}
	for _, name := range []string{"alice", "bob"} {
		cl := dialSSE(t, c.url(""), withHeader("Authorization", "Bearer "+name))
		checkStreamHeaders(t, cl.resp)
		clients[name] = cl
	}
	for name, cl := range clients {
		cl.waitFor(docs[name], 5*time.Second)
		cl.quiet(500 * time.Millisecond)
		for _, e := range ofType(cl.events, "snapshot") {
			if !jsonEqual([]byte(e.Data), docs[name]) {
				t.Errorf("%s received a foreign snapshot %s", name, e.Data)
			}
		}
		if !jsonEqual(cl.doc, docs[name]) {
			t.Errorf("%s holds %s, want %s", name, cl.doc, docs[name])
		}
	}
	aliceID := clients["alice"].lastID
	clients["bob"].close()

	bob2 := dialSSE(t, c.url(""), withHeader("Authorization", "Bearer bob"), withLastEventID(aliceID))
	checkStreamHeaders(t, bob2.resp)
	first, _ := bob2.waitEvent("version event", 5*time.Second, func(r received) bool {
		return r.Type == "snapshot" || r.Type == "patch"
	})
	if first.Type != "snapshot" || !jsonEqual([]byte(first.Data), docs["bob"]) {
		t.Fatalf("bob resuming with alice's id %q got %s %s, want snapshot %s", aliceID, first.Type, first.Data, docs["bob"])
	}
	for _, e := range bob2.quiet(500 * time.Millisecond) {
		if strings.Contains(e.Data, "alice") {
			t.Errorf("bob received alice's data: %s %s", e.Type, e.Data)
		}
	}

	before := len(rec.requests())
	anon := dialSSE(t, c.url(""))
	checkStreamHeaders(t, anon.resp)
	anon.waitFor([]byte(`{"user":""}`), 5*time.Second)
	anon.quiet(300 * time.Millisecond)
	reqs := rec.requests()
	anonymous := 0
	for _, r := range reqs[before:] {
		if len(r.header.Values("Authorization")) == 0 {
			anonymous++
		}
	}
	if anonymous == 0 {
		t.Errorf("no upstream request without Authorization after the anonymous client connected")
	}
	for _, r := range reqs {
		vs := r.header.Values("Authorization")
		if len(vs) > 1 || (len(vs) == 1 && vs[0] != "Bearer alice" && vs[0] != "Bearer bob") {
			t.Errorf("upstream saw unexpected Authorization %q", vs)
		}
	}
}

// TestPlaceholderInjection checks that hostile path values in an upstream URL placeholder
// are refused with 400 or stay exactly one escaped path segment at the configured upstream.
func TestPlaceholderInjection(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t, nil)
	c := startCaddy(t, "poll_sse /u/* "+rec.srv.URL+"/api/users/{http.request.uri.path.1} {\n\tinterval 10s\n}")
	caddyHome := filepath.Dir(c.file)
	homes := []string{caddyHome}
	if h := os.Getenv("HOME"); h != "" && h != "/" {
		homes = append(homes, h)
	}

	values := []string{"..%2F..%2Fadmin", "%2e%2e", "..", "@evil.com", "%7Benv.HOME%7D",
		"%0d%0aX-Injected:%201", "%3Fa=b", "%23frag"}
	reached := 0
	for _, v := range values {
		before := len(rec.requests())
		resp, body, err := rawGet(c.siteAddr, "/u/"+v, map[string]string{"Accept": "application/json"})
		if err != nil {
			t.Errorf("%q: %v", v, err)
			continue
		}
		for _, h := range homes {
			if strings.Contains(string(body), h) {
				t.Errorf("%q: response body holds a $HOME value: %.200q", v, body)
			}
		}
		if resp.StatusCode == http.StatusBadRequest {
			t.Logf("%q: 400", v)
			continue
		}
		after := rec.requests()[before:]
		t.Logf("%q: status %d, upstream requests %d, body %.100q", v, resp.StatusCode, len(after), body)
		if resp.StatusCode == http.StatusOK && len(after) > 0 {
			reached++
		}
	}
	if reached == 0 {
		t.Errorf("no value reached the upstream; the route does not work at all")
	}
	for _, r := range rec.requests() {
		t.Logf("upstream saw %s", r.requestURI)
		if r.host != rec.host() {
			t.Errorf("upstream request %q with Host %q, want %q", r.requestURI, r.host, rec.host())
		}
		rest, ok := strings.CutPrefix(r.requestURI, "/api/users/")
		if !ok {
			t.Errorf("upstream request URI %q does not start with /api/users/", r.requestURI)
			continue
		}
		if rest == "" || strings.ContainsAny(rest, "/?#") {
			t.Errorf("upstream request URI %q is not exactly one more segment", r.requestURI)
		}
		if r.escapedPath != r.requestURI || r.rawQuery != "" {
			t.Errorf("upstream request URI %q has a query (%q) or differs from its path %q", r.requestURI, r.rawQuery, r.escapedPath)
		}
		seg, err := url.PathUnescape(rest)
		if err == nil && (seg == "." || seg == ".." || seg == "") {
			t.Errorf("upstream request URI %q has a dot segment", r.requestURI)
		}
		for _, h := range homes {
			if strings.Contains(r.requestURI, h) || strings.Contains(seg, h) || strings.Contains(r.requestURI, url.PathEscape(h)) {
				t.Errorf("upstream request URI %q holds a $HOME value %q", r.requestURI, h)
			}
		}
		if vs := r.header.Values("X-Injected"); len(vs) > 0 {
			t.Errorf("upstream received X-Injected %q (URI %q)", vs, r.requestURI)
		}
	}
}

// TestJSONGetFromCache checks that many JSON GETs are served from the cache: the upstream
// is polled at most once per interval, every answer carries the ETag, and If-None-Match
// with it gets 304.
func TestJSONGetFromCache(t *testing.T) {
	t.Parallel()
	u := newUpstream(t, map[string]any{"items": []int{1, 2, 3}})
	c := startCaddy(t, pollSSE(u.url(), "interval 200ms"))
	client := boundedClient()
	defer client.CloseIdleConnections()

	const workers, perWorker = 50, 20
	var (
		mu    sync.Mutex
		etags = map[string]int{}
		errs  []string
	)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(w) * 2 * time.Millisecond)
			for range perWorker {
				status, h, body, err := jsonGet(client, c.url("/"), nil)
				mu.Lock()
				switch {
				case err != nil:
					errs = append(errs, err.Error())
				case status != http.StatusOK || h.Get("ETag") == "":
					errs = append(errs, fmt.Sprintf("status %d ETag %q", status, h.Get("ETag")))
				case !jsonEqual(body, u.document()):
					errs = append(errs, fmt.Sprintf("body %.200q", body))
				default:
					etags[h.Get("ETag")]++
				}
				mu.Unlock()
				if err != nil {
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	hits := u.count() // counted before the elapsed time is taken, so the bound is never loose
	elapsed := time.Since(start)
	if len(errs) > 0 {
		t.Errorf("%d bad answers, first: %s", len(errs), errs[0])
	}
	limit := int(elapsed/(200*time.Millisecond)) + 2
	t.Logf("%d JSON GETs in %v, %d upstream requests (limit %d)", workers*perWorker, elapsed, hits, limit)
	if hits > limit {
		t.Errorf("upstream polled %d times in %v, want ≤ %d", hits, elapsed, limit)
	}
	if len(etags) != 1 {
		t.Fatalf("ETags of an unchanged document: %v, want exactly one", etags)
	}
	var etag string
	for e := range etags {
		etag = e
	}
	if !strings.HasPrefix(etag, `"`) || !strings.HasSuffix(etag, `"`) || !versionID.MatchString(strings.Trim(etag, `"`)) {
		t.Errorf("ETag %q is not a quoted version id", etag)
	}
	status, _, body, err := jsonGet(client, c.url("/"), http.Header{"If-None-Match": {etag}})
	if err != nil || status != http.StatusNotModified || len(body) != 0 {
		t.Errorf("If-None-Match %s: status %d, body %.100q, err %v; want 304 and no body", etag, status, body, err)
	}
	status, _, _, err = jsonGet(client, c.url("/"), http.Header{"If-None-Match": {`"other"`}})
	if err != nil || status != http.StatusOK {
		t.Errorf("If-None-Match with another tag: status %d, err %v; want 200", status, err)
	}
}

// TestPostPolls checks that `method POST` and `body` shape the upstream request.
func TestPostPolls(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t, nil)
	c := startCaddy(t, pollSSE(rec.srv.URL+"/search", "interval 100ms", "method POST", `body {"q":1}`))
	cl := dialSSE(t, c.url(""))
	checkStreamHeaders(t, cl.resp)
	cl.waitFor([]byte(`{"ok":true}`), 5*time.Second)
	reqs := rec.requests()
	if len(reqs) == 0 {
		t.Fatal("no upstream request")
	}
	for _, r := range reqs {
		if r.method != http.MethodPost || r.body != `{"q":1}` {
			t.Errorf("upstream saw %s with body %q, want POST with {\"q\":1}", r.method, r.body)
		}
	}
}

// TestPokeLatency checks that a poke makes the loop poll at once: each change reaches a
// streaming client within 2 s although the interval is 10 s; wrong or missing secret → 403.
func TestPokeLatency(t *testing.T) {
	t.Parallel()
	u := newUpstream(t, map[string]any{"n": 0})
	c := startCaddy(t, pollSSE(u.url(), "interval 10s", "poke s3cret"))
	client := boundedClient()
	defer client.CloseIdleConnections()
	cl := dialSSE(t, c.url(""))
	checkStreamHeaders(t, cl.resp)
	cl.waitFor(u.document(), 5*time.Second)

	for name, h := range map[string]map[string]string{
		"wrong secret": {"Poll-SSE-Poke": "wrong"}, "no header": nil, "empty secret": {"Poll-SSE-Poke": ""},
	} {
		before := u.count()
		status, _, err := post(client, c.url("/"), h)
		if err != nil || status != http.StatusForbidden {
			t.Errorf("poke with %s: status %d, err %v; want 403", name, status, err)
		}
		if n := u.count(); n != before {
			t.Errorf("poke with %s made %d upstream request(s)", name, n-before)
		}
	}

	const rounds = 100
	var lat []time.Duration
	deadline := time.Now().Add(30 * time.Second)
	for i := 1; i <= rounds && time.Now().Before(deadline); i++ {
		want := u.set(t, map[string]any{"n": i})
		start := time.Now()
		status, _, err := post(client, c.url("/"), map[string]string{"Poll-SSE-Poke": "s3cret"})
		if err != nil || status != http.StatusNoContent {
			t.Fatalf("poke %d: status %d, err %v; want 204", i, status, err)
		}
		cl.waitFor(want, 2*time.Second)
		lat = append(lat, time.Since(start))
	}
	if len(lat) < rounds {
		t.Errorf("only %d of %d pokes within the 30 s bound", len(lat), rounds)
	}
	slices.Sort(lat)
	if len(lat) > 0 {
		t.Logf("poke → client latency over %d rounds: median %v, p90 %v, max %v",
			len(lat), lat[len(lat)/2], lat[len(lat)*9/10], lat[len(lat)-1])
	}
}

// TestMaxUpstreamsLimit checks that a route with max_upstreams 2 refuses a third distinct
// upstream loop with 503 and Retry-After.
func TestMaxUpstreamsLimit(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t, func(r *http.Request) any { return map[string]any{"path": r.URL.Path} })
	c := startCaddy(t, "poll_sse /m/* "+rec.srv.URL+"/api/{http.request.uri.path.1} {\n\tinterval 200ms\n\tmax_upstreams 2\n}")
	for _, name := range []string{"a", "b"} {
		cl := dialSSE(t, c.url("/m/"+name))
		checkStreamHeaders(t, cl.resp)
		cl.waitFor([]byte(`{"path":"/api/`+name+`"}`), 5*time.Second)
	}
	client := boundedClient()
	defer client.CloseIdleConnections()
	for _, accept := range []string{"text/event-stream", "application/json"} {
		req, _ := http.NewRequest(http.MethodGet, c.url("/m/c"), nil)
		req.Header.Set("Accept", accept)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("third upstream (%s): %v", accept, err)
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Errorf("third upstream (%s): status %d, Retry-After %q; want 503 with Retry-After",
				accept, resp.StatusCode, resp.Header.Get("Retry-After"))
		}
	}
	for _, r := range rec.requests() {
		if r.escapedPath == "/api/c" {
			t.Errorf("the refused upstream was polled")
		}
	}
	// An existing upstream is still served.
	again := dialSSE(t, c.url("/m/a"))
	checkStreamHeaders(t, again.resp)
	again.waitFor([]byte(`{"path":"/api/a"}`), 5*time.Second)
}

// TestPlaceholderCatchAllRoute runs hostile values through a route without a path matcher,
// so that the module itself sees them: dot and empty path values must get 400 with no
// upstream request; other path values stay one segment; query values stay one q value.
func TestPlaceholderCatchAllRoute(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t, nil)
	c := startCaddy(t, "poll_sse "+rec.srv.URL+"/api/users/{http.request.uri.path.1}?q={http.request.uri.query.q} {\n\tinterval 10s\n}")

	for _, v := range []string{"..", "%2e%2e", ".", "%2E", ""} {
		before := len(rec.requests())
		resp, body, err := rawGet(c.siteAddr, "/u/"+v, map[string]string{"Accept": "application/json"})
		if err != nil {
			t.Errorf("%q: %v", v, err)
			continue
		}
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("path value %q: status %d (body %.100q), want 400", v, resp.StatusCode, body)
		}
		if n := len(rec.requests()) - before; n != 0 {
			t.Errorf("path value %q made %d upstream request(s)", v, n)
		}
	}

	total, refused := 0, 0
	for _, tc := range []struct{ path, q string }{
		{"..%2F..%2Fadmin", "a%26admin%3D1"},
		{"@evil.com", "%23frag"},
		{"%0d%0aX-Injected:%201", "%0d%0aX-Injected:%201"},
		{"%7Benv.HOME%7D", "%7Benv.HOME%7D"},
		{"ok", "%7Bhttp.request.uri.path.0%7D"},
	} {
		before := len(rec.requests())
		total++
		target := "/u/" + tc.path + "?q=" + tc.q
		resp, body, err := rawGet(c.siteAddr, target, map[string]string{"Accept": "application/json"})
		if err != nil {
			t.Errorf("%q: %v", target, err)
			continue
		}
		if resp.StatusCode == http.StatusBadRequest {
			refused++
			continue
		}
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%q: status %d (body %.100q), want 200 or 400", target, resp.StatusCode, body)
			continue
		}
		after := rec.requests()[before:]
		if len(after) == 0 {
			t.Errorf("%q: 200 without an upstream request", target)
			continue
		}
		wantPath, _ := url.PathUnescape(tc.path)
		wantQ, _ := url.QueryUnescape(tc.q)
		for _, r := range after {
			if r.host != rec.host() {
				t.Errorf("%q: upstream Host %q", target, r.host)
			}
			rest, ok := strings.CutPrefix(r.escapedPath, "/api/users/")
			seg, err := url.PathUnescape(rest)
			if !ok || strings.Contains(rest, "/") || err != nil || seg != wantPath {
				t.Errorf("%q: upstream path %q, want /api/users/ + one segment %q", target, r.escapedPath, wantPath)
			}
			qv, err := url.ParseQuery(r.rawQuery)
			if err != nil || len(qv) != 1 || len(qv["q"]) != 1 || qv.Get("q") != wantQ {
				t.Errorf("%q: upstream query %q, want only q=%q", target, r.rawQuery, wantQ)
			}
			if strings.Contains(r.requestURI, filepath.Dir(c.file)) {
				t.Errorf("%q: upstream URI %q holds $HOME", target, r.requestURI)
			}
			if len(r.header.Values("X-Injected")) > 0 {
				t.Errorf("%q: upstream received X-Injected", target)
			}
		}
	}
	if refused == total {
		t.Errorf("every non-dot value was refused; the route does not work at all")
	}
}
