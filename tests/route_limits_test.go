package tests

import (
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"
)

const limitsWait = 5 * time.Second

// TestRejectedReloadKeepsLimits checks that a config that fails to load leaves the live
// route's limits as they were. A route with max_subscribers 2 holds two streams; each
// rejected load below is the running config with one change: the route's cap becomes -1,
// or it becomes 100 while a handler after it in the same route fails to provision. After
// each, a third stream still gets 503 with Retry-After, the two streams are still served,
// and once one leaves exactly one more stream is served.
func TestRejectedReloadKeepsLimits(t *testing.T) {
	t.Parallel()
	u := newUpstream(t, map[string]any{"rev": 0})
	caddy := startCaddy(t, pollSSE(u.url(), "interval 100ms", "max_subscribers 2"))
	held := []*sseClient{dialSSE(t, caddy.url("")), dialSSE(t, caddy.url(""))}
	for _, c := range held {
		c.waitFor(u.document(), limitsWait)
	}
	checkRefused(t, caddy.url("/"), "third stream before any reload")
	live := configJSON(t, caddy)
	for _, bad := range []struct {
		name   string
		change func(cfg map[string]any)
	}{
		{"max_subscribers -1", func(cfg map[string]any) {
			pollSSEHandlers(cfg)[0]["max_subscribers"] = -1
		}},
		{"max_subscribers 100 and a broken handler after it", func(cfg map[string]any) {
			h := pollSSEHandlers(cfg)[0]
			h["max_subscribers"] = 100
			addHandlerAfter(t, cfg, h, map[string]any{"handler": "poll_sse", "upstream": "ftp://127.0.0.1/x"})
		}},
	} {
		cfg := cloneJSON(t, live)
		bad.change(cfg)
		body, _ := json.Marshal(cfg)
		status, msg, err := caddy.admin(http.MethodPost, "/load", "application/json", body, forceReload)
		if err != nil || status == http.StatusOK {
			t.Fatalf("%s: POST /load: status %d, %v: %s; want it rejected", bad.name, status, err, msg)
		}
		checkRefused(t, caddy.url("/"), "third stream after a rejected load with "+bad.name)
	}
	want := u.set(t, map[string]any{"rev": 1})
	for _, c := range held {
		c.waitFor(want, limitsWait)
	}
	held[0].close()
	third := dialWhenFree(t, caddy.url(""))
	third.waitFor(want, limitsWait)
	checkRefused(t, caddy.url("/"), "a stream beyond the cap after one left and another came")
}

// TestSharedHubKeepsRouteCaps checks that routes with the same poll settings, which share
// one loop, each keep their own max_subscribers: /a (2), /b (3) and /c (2) are filled in
// turn, each refuses one more stream with 503 and Retry-After while the others take
// theirs, and the one loop serves all seven streams.
func TestSharedHubKeepsRouteCaps(t *testing.T) {
	t.Parallel()
	u := newUpstream(t, map[string]any{"rev": 0})
	caps := []struct {
		path string
		max  int
	}{{"/a/", 2}, {"/b/", 3}, {"/c/", 2}}
	site := ""
	for _, c := range caps {
		site += "handle " + c.path + "* {\n\t" +
			pollSSE(u.url(), "name shared", "interval 100ms", "max_subscribers "+strconv.Itoa(c.max)) + "\n}\n"
	}
	caddy := startCaddy(t, site)
	total := 0
	for _, c := range caps {
		for range c.max {
			s := dialSSE(t, caddy.url(""), withPath(c.path))
			if s.resp.StatusCode != http.StatusOK {
				t.Fatalf("stream %d of %s (cap %d): status %d", total+1, c.path, c.max, s.resp.StatusCode)
			}
			s.waitFor(u.document(), limitsWait)
			total++
		}
		checkRefused(t, caddy.url(c.path), "stream beyond the cap of "+c.path)
	}
	for _, c := range caps {
		checkRefused(t, caddy.url(c.path), "stream beyond the cap of "+c.path+" once every route is full")
	}
	waitLoops(t, caddy, "shared", "one loop with every stream", oneLoopWith(total))
}

// dialWhenFree opens a stream to base, again every pollEvery while it is refused (the
// server notices a client that left only a moment later), for limitsWait at most.
func dialWhenFree(t *testing.T, base string) *sseClient {
	t.Helper()
	var c *sseClient
	if !eventually(limitsWait, func() bool {
		c = dialSSE(t, base)
		if c.resp.StatusCode == http.StatusOK {
			return true
		}
		c.close()
		return false
	}) {
		t.Fatalf("no stream served within %v", limitsWait)
	}
	return c
}

// withPath requests path instead of "/".
func withPath(path string) dialOption { return func(c *dialConfig) { c.path = path } }

// checkRefused checks that a stream to url gets 503 with a Retry-After of whole seconds.
func checkRefused(t *testing.T, url, what string) {
	t.Helper()
	status, retry := tryStreamAt(t, url)
	if status != http.StatusServiceUnavailable {
		t.Fatalf("%s: status %d, want 503", what, status)
	}
	if n, err := strconv.Atoi(retry); err != nil || n < 1 {
		t.Fatalf("%s: Retry-After %q, want a whole number of seconds", what, retry)
	}
}

// tryStreamAt opens a stream to url with a plain HTTP client and returns its status and
// Retry-After; a stream that is served is closed at once.
func tryStreamAt(t *testing.T, url string) (int, string) {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Retry-After")
}

// configJSON returns the running config, from the admin API.
func configJSON(t *testing.T, c *caddyProc) map[string]any {
	t.Helper()
	status, body, err := c.admin(http.MethodGet, "/config/", "", nil, nil)
	if err != nil || status != http.StatusOK {
		t.Fatalf("GET /config/: status %d, %v: %s", status, err, body)
	}
	var cfg map[string]any
	if err := json.Unmarshal([]byte(body), &cfg); err != nil {
		t.Fatalf("GET /config/: %v", err)
	}
	return cfg
}

func cloneJSON(t *testing.T, v map[string]any) map[string]any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// pollSSEHandlers returns the poll_sse handlers of cfg, in config order.
func pollSSEHandlers(v any) []map[string]any {
	var out []map[string]any
	switch v := v.(type) {
	case map[string]any:
		if v["handler"] == "poll_sse" {
			return []map[string]any{v}
		}
		for _, k := range slices.Sorted(maps.Keys(v)) {
			out = append(out, pollSSEHandlers(v[k])...)
		}
	case []any:
		for _, e := range v {
			out = append(out, pollSSEHandlers(e)...)
		}
	}
	return out
}

// addHandlerAfter inserts extra right after handler h in the handle list that holds it.
func addHandlerAfter(t *testing.T, v any, h, extra map[string]any) {
	t.Helper()
	if !insertAfter(v, h, extra) {
		t.Fatal("handler not found in the config")
	}
}

func insertAfter(v any, h, extra map[string]any) bool {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if list, ok := e.([]any); ok && k == "handle" {
				for i, x := range list {
					if m, ok := x.(map[string]any); ok && sameMap(m, h) {
						v[k] = append(list[:i+1], append([]any{extra}, list[i+1:]...)...)
						return true
					}
				}
			}
			if insertAfter(e, h, extra) {
				return true
			}
		}
	case []any:
		for _, e := range v {
			if insertAfter(e, h, extra) {
				return true
			}
		}
	}
	return false
}

// sameMap reports whether a and b are the same map value (not merely equal).
func sameMap(a, b map[string]any) bool {
	if len(a) != len(b) {
		return false
	}
	a["\x00probe"] = true
	_, same := b["\x00probe"]
	delete(a, "\x00probe")
	return same
}
