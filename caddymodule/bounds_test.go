package caddymodule

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// boundCases are settings just outside their range, as Caddyfile lines and as JSON
// members, with the error each must give.
var boundCases = []struct {
	name, line, json, want string
}{
	{"heartbeat 3ns", "heartbeat 3ns", `"heartbeat": 3`, "heartbeat: 3ns is out of range: want 1s to 1h"},
	{"heartbeat too long", "heartbeat 2h", `"heartbeat": "2h"`, "heartbeat: 2h is out of range"},
	{"interval too short", "interval 1ms", `"interval": "1ms"`, "interval: 1ms is out of range: want 50ms to 24h"},
	{"interval too long", "interval 25h", `"interval": "25h"`, "interval: 25h is out of range"},
	{"timeout too short", "timeout 10ms", `"timeout": "10ms"`, "timeout: 10ms is out of range: want 50ms to 10m"},
	{"timeout too long", "timeout 11m", `"timeout": "11m"`, "timeout: 11m is out of range"},
	{"retry too short", "retry 1ms", `"retry": "1ms"`, "retry: 1ms is out of range: want 100ms to 1h"},
	{"retry too long", "retry 61m", `"retry": "61m"`, "retry: 1h1m is out of range"},
	{"linger too short", "linger 1ns", `"linger": 1`, "linger: 1ns is out of range: want 100ms to 24h"},
	{"linger too long", "linger 48h", `"linger": "48h"`, "linger: 48h is out of range"},
	{"lifetime too short", "max_connection_lifetime 10ms", `"max_connection_lifetime": "10ms"`, "max_connection_lifetime: 10ms is out of range: want 1s to 720h"},
	{"lifetime too long", "max_connection_lifetime 721h", `"max_connection_lifetime": "721h"`, "max_connection_lifetime: 721h is out of range"},
	{"drain too short", "drain 10ms", `"drain": "10ms"`, "drain: 10ms is out of range: want 100ms to 10m"},
	{"drain too long", "drain 11m", `"drain": "11m"`, "drain: 11m is out of range"},
	{"history too long", "history 100001", `"history": 100001`, "history: 100001 is out of range: want 1 to 100000"},
	{"max_subscribers too many", "max_subscribers 1000001", `"max_subscribers": 1000001`, "max_subscribers: 1000001 is out of range"},
	{"max_upstreams too many", "max_upstreams 10001", `"max_upstreams": 10001`, "max_upstreams: 10001 is out of range: want 1 to 10000"},
	{"history size too small", "history 10 1KiB", `"history_size": 1024`, "history_size: 1.0 KiB is out of range: want 64 KiB to 16 GiB"},
	{"history size too large", "history 10 17GiB", `"history_size": 18253611008`, "history_size: 17 GiB is out of range"},
	{"max_loops_per_client too many", "max_loops_per_client 10001", `"max_loops_per_client": 10001`, "max_loops_per_client: 10001 is out of range: want 1 to 10000"},
	{"max_loops_per_client negative", "max_loops_per_client -1", `"max_loops_per_client": -1`, "max_loops_per_client"},
	{"max_body too small", "max_body 1000B", `"max_body": 1000`, "max_body: 1000 B is out of range: want 1.0 KiB to 1.0 GiB"},
	{"max_body too large", "max_body 2GiB", `"max_body": 2147483648`, "max_body: 2.0 GiB is out of range"},
	{"lease_ttl too short", "store redis 127.0.0.1:1 {\n\t\tlease_ttl 500us\n\t}", `"store": {"type": "redis", "address": "127.0.0.1:1", "lease_ttl": 500000}`, "lease_ttl: 500µs is out of range: want 1s to 10m"},
	{"lease_ttl too long", "store redis 127.0.0.1:1 {\n\t\tlease_ttl 1h\n\t}", `"store": {"type": "redis", "address": "127.0.0.1:1", "lease_ttl": "1h"}`, "lease_ttl: 1h is out of range"},
	{"db too large", "store redis 127.0.0.1:1 {\n\t\tdb 70000\n\t}", `"store": {"type": "redis", "address": "127.0.0.1:1", "db": 70000}`, "db: 70000 is out of range"},
}

// TestBoundsCaddyfile checks that each setting outside its range is refused by the
// Caddyfile adapter, with the file and line of the setting.
func TestBoundsCaddyfile(t *testing.T) {
	t.Parallel()
	adapter := caddyconfig.GetAdapter("caddyfile")
	for _, tc := range boundCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			body := ":8080\n\npoll_sse http://127.0.0.1:9/x {\n\t" + tc.line + "\n}\n"
			line := "Caddyfile:4"
			if strings.Contains(tc.line, "\n") {
				line = "Caddyfile:5"
			}
			_, _, err := adapter.Adapt([]byte(body), map[string]any{"filename": "Caddyfile"})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasSuffix(err.Error(), "at "+line) {
				t.Fatalf("error %v; want %q at %s", err, tc.want, line)
			}
		})
	}
}

// TestBoundsJSON checks that each setting outside its range is refused when a JSON
// config is loaded, as `caddy run` and the admin API load it, before the handler builds
// anything from it.
func TestBoundsJSON(t *testing.T) {
	t.Parallel()
	for _, tc := range boundCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			raw := `{"upstream": "http://127.0.0.1:9/x", ` + tc.json + `}`
			_, err := loadHandler(t, raw)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("loading %s: error %v; want %q", raw, err, tc.want)
			}
		})
	}
}

// TestBoundsAcceptLimits checks that the bounds themselves and the defaults load.
func TestBoundsAcceptLimits(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{
		`{"upstream": "http://127.0.0.1:9/x"}`,
		`{"upstream": "http://127.0.0.1:9/x", "interval": "50ms", "timeout": "50ms", "heartbeat": "1s", "retry": "100ms",
		  "linger": "100ms", "max_connection_lifetime": "1s", "drain": "100ms", "history": 1, "max_subscribers": 1, "max_upstreams": 1,
		  "max_body": 1024, "store": {"type": "redis", "address": "127.0.0.1:1", "lease_ttl": "1s"}}`,
		`{"upstream": "http://127.0.0.1:9/x", "interval": "24h", "timeout": "10m", "heartbeat": "1h", "retry": "1h",
		  "linger": "24h", "max_connection_lifetime": "720h", "drain": "10m", "history": 100000, "max_subscribers": 1000000,
		  "max_upstreams": 10000, "max_body": 1073741824, "store": {"type": "redis", "address": "127.0.0.1:1", "lease_ttl": "10m", "db": 65536}}`,
	} {
		if _, err := loadHandler(t, raw); err != nil {
			t.Errorf("loading %s: %v", raw, err)
		}
	}
}

// loadHandler loads a poll_sse handler from its JSON as Caddy does: Provision, then
// Validate, and Cleanup when either fails. The config is unloaded when the test ends.
func loadHandler(t testing.TB, raw string) (*Handler, error) {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	return loadHandlerIn(ctx, raw)
}

// loadHandlerIn loads a poll_sse handler from its JSON into the config of ctx.
func loadHandlerIn(ctx caddy.Context, raw string) (*Handler, error) {
	m, err := ctx.LoadModuleByID("http.handlers.poll_sse", json.RawMessage(raw))
	if err != nil {
		return nil, err
	}
	return m.(*Handler), nil
}
