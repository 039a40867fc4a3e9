package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// FuzzConfig runs a poll_sse directive through everything a config goes through: the
// Caddyfile adapter, Provision and Validate as Caddy loads a module, one request, and
// Cleanup as the config is unloaded. No input may panic. Upstreams outside the test's
// loopback server are left unprovisioned, a Redis store is pointed at a closed loopback
// port and gets no request, and a request waits at most a second, so that an exec
// touches no network and never waits long.
func FuzzConfig(f *testing.F) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"items":[{"id":1,"v":"a"},{"id":2,"v":"b"}],"meta":{"ts":1}}`))
	}))
	f.Cleanup(up.Close)
	var quiet sync.Once
	silence := quietLogs(f)
	for _, s := range fuzzSeeds {
		f.Add(s.path, s.block, s.target, s.accept)
	}
	f.Fuzz(func(t *testing.T, path, block, target, accept string) {
		quiet.Do(silence)
		body := ":8080\n\npoll_sse " + up.URL + path + " {\n" + block + "\n}\n"
		adapted, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(body), nil)
		if err != nil {
			return
		}
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		defer cancel()
		for _, raw := range pollSSEConfigs(adapted) {
			raw, serve := confine(raw, up.URL)
			if raw == nil {
				continue
			}
			m, err := ctx.LoadModuleByID("http.handlers.poll_sse", raw)
			if err != nil || !serve {
				continue
			}
			serveOnce(t, m.(*Handler), target, accept)
		}
	})
}

// fuzzSeeds start the corpus: every subdirective, with values in range and out of it.
var fuzzSeeds = []struct{ path, block, target, accept string }{
	{"/state.json", "", "/", "text/event-stream"},
	{"/state.json", "interval 50ms\n timeout 1s\n heartbeat 3ns", "/", "text/event-stream"},
	{"/state.json", "heartbeat 1s\n retry 100ms\n linger 100ms\n max_connection_lifetime 1s", "/?format=merge_patch", "text/event-stream"},
	{"/state.json", "history 1\n max_subscribers 1\n max_upstreams 1\n max_body 1KiB", "/", "application/json"},
	{"/u/{http.request.uri.path.1}?q={http.request.uri.query.q}", "forward Authorization", "/a/b?q=1", "application/json"},
	{"/state.json", "method POST\n body {\"a\":1}\n header_up X-A {env.HOME}", "/", ""},
	{"/state.json", "header_up Authorization \"Bearer {file./nonexistent}\"", "/", ""},
	{"/state.json", "select /items\n array_key /items id\n ignore /items/*/v", "/", "text/event-stream"},
	{"/state.json", "select /meta\n ignore /items", "/", "application/json"},
	{"/state.json", "format merge_patch\n name x\n poke s3cret", "/?format=snapshot", "text/event-stream"},
	{"/state.json", "store redis 10.0.0.1:6379 {\n username u\n password {env.PW}\n db 1\n tls\n prefix p:\n lease_ttl 500us\n }", "/", ""},
	{"/state.json", "store memory", "/?last_event_id=abc", "text/event-stream"},
	{"/state.json", "timeout 10m\n interval 24h\n max_body 1GiB", "/", "application/json;q=0, text/event-stream"},
	{"/state.json", "drain 50ms\n max_loops_per_client 0", "/", "text/event-stream"},
	{"/state.json", "store redis 127.0.0.1:1 127.0.0.1:2 127.0.0.1:2 {\n db 1\n }", "/", ""},
	{"/state.json", "store redis 127.0.0.1:1 {\n sentinel m 127.0.0.1:2\n cluster\n prefix {x}\n }", "/", ""},
	{"/state.json", "transport http {\n versions h2c 3\n tls_server_name {http.request.host}\n dial_timeout 1s\n }", "/", ""},
	{"/state.json", "dial unix//tmp/none.sock\n transport http {\n forward_proxy_url http://127.0.0.1:1\n }", "/", "application/json"},
	{"/state.json", "oauth2 {\n token_url http://127.0.0.1:1/token\n client_id {env.NONE}\n client_secret s\n scopes a b\n }", "/", "application/json"},
	{"/state.json", "client_select /items/* /meta\n filter /items id {http.request.header.X-User}\n expires {http.request.header.X-Exp}", "/?select=/items/0", "text/event-stream"},
	{"/state.json", "filter /items/* id user-{http.request.host}\n client_select /items/*/v", "/?select=/meta&select=/x", "application/json"},
}

// quietLogs sends what the development loggers of test configs write to os.Stderr
// nowhere, from the first input on: in fuzzing, only the workers run inputs, and the
// coordinator still reports progress on os.Stderr. A panic is still reported: the runtime
// writes it to file descriptor 2 itself.
func quietLogs(f *testing.F) func() {
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		f.Fatal(err)
	}
	stderr := os.Stderr
	f.Cleanup(func() {
		os.Stderr = stderr
		null.Close()
	})
	return func() { os.Stderr = null }
}

// pollSSEConfigs returns the JSON of every poll_sse handler in an adapted config.
func pollSSEConfigs(adapted []byte) []json.RawMessage {
	var out []json.RawMessage
	var walk func(json.RawMessage)
	walk = func(raw json.RawMessage) {
		var obj map[string]json.RawMessage
		if json.Unmarshal(raw, &obj) == nil {
			if string(obj["handler"]) == `"poll_sse"` {
				out = append(out, raw)
				return
			}
			for _, v := range obj {
				walk(v)
			}
			return
		}
		var arr []json.RawMessage
		if json.Unmarshal(raw, &arr) == nil {
			for _, v := range arr {
				walk(v)
			}
		}
	}
	walk(adapted)
	return out
}

// confine returns the handler's JSON without its "handler" member (LoadModuleByID wants
// the module's own fields), or nil when its upstream is not the test server. A Redis
// store is pointed at a closed loopback port, and the handler is then not served.
func confine(raw json.RawMessage, upstream string) (json.RawMessage, bool) {
	var cfg map[string]any
	if json.Unmarshal(raw, &cfg) != nil {
		return nil, false
	}
	delete(cfg, "handler")
	want, _ := url.Parse(upstream)
	u, _ := cfg["upstream"].(string)
	if got, err := url.Parse(strings.NewReplacer("{", "", "}", "").Replace(u)); err != nil || got.Host != want.Host {
		return nil, false
	}
	serve := true
	if store, ok := cfg["store"].(map[string]any); ok && store["type"] == "redis" {
		store["address"] = "127.0.0.1:1"
		delete(store, "addresses")
		delete(store, "cluster")
		delete(store, "sentinel_master")
		serve = false
	}
	out, err := json.Marshal(cfg)
	if err != nil {
		return nil, false
	}
	return out, serve
}

// serveOnce sends h one GET for target with accept, with a replacer in its context as
// Caddy's server sets one, and a second to answer in: a stream is cut then.
func serveOnce(t *testing.T, h *Handler, target, accept string) {
	req, err := http.NewRequest(http.MethodGet, "http://127.0.0.1:8080"+target, nil)
	if err != nil || !strings.HasPrefix(req.URL.Path, "/") {
		return
	}
	req.Header.Set("Accept", accept)
	ctx, cancel := context.WithTimeout(req.Context(), time.Second)
	defer cancel()
	req = req.WithContext(ctx)
	caddyhttp.NewTestReplacer(req)
	if ws := accept == "" || !wantsJSON([]string{accept}); ws {
		// A stream lasts until its client leaves: this client leaves once the stream
		// has started.
		streamCtx, leave := context.WithCancel(req.Context())
		leave()
		req = req.WithContext(streamCtx)
	}
	rec := httptest.NewRecorder()
	if err := h.ServeHTTP(rec, req, nil); err != nil {
		var he caddyhttp.HandlerError
		if !errors.As(err, &he) {
			t.Fatalf("ServeHTTP returned %v, not a caddyhttp.HandlerError", err)
		}
	}
}
