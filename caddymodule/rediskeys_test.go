package caddymodule

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// redisKeysOf loads a route from its JSON and returns the Redis lease and stream keys of
// the loop a request with the given Authorization header joins.
func redisKeysOf(t *testing.T, raw, authorization string) (lease, stream string) {
	t.Helper()
	h, err := loadHandler(t, raw)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Cleanup() })
	if h.redis == nil {
		t.Fatal("no Redis store")
	}
	r := httptest.NewRequest(http.MethodGet, "http://127.0.0.1/events", nil)
	if authorization != "" {
		r.Header.Set("Authorization", authorization)
	}
	caddyhttp.NewTestReplacer(r)
	lp, err := h.loopFor(r)
	if err != nil {
		t.Fatal(err)
	}
	return h.redis.Keys(lp.poll)
}

// TestRedisKeysSeparateTenants checks that routes polling the same URL with different
// header_up values, POST bodies or methods, and clients with different forwarded values,
// never share a Redis lease or stream, while routes and nodes with the same settings do,
// whatever the route's other settings.
func TestRedisKeysSeparateTenants(t *testing.T) {
	t.Setenv("POLL_SSE_TEST_TENANT_KEY", "key-of-tenant-a")
	const store = `"store": {"type": "redis", "addresses": ["127.0.0.1:1"]}`
	route := func(settings string) string {
		return `{"upstream": "http://127.0.0.1:9/api/state", ` + settings + `, ` + store + `}`
	}
	base := route(`"header_up": {"X-Api-Key": ["key-of-tenant-a"]}, "method": "POST", "body": "{\"q\":\"a\"}"`)
	baseLease, baseStream := redisKeysOf(t, base, "")
	differ := map[string]string{
		"other header_up": route(`"header_up": {"X-Api-Key": ["key-of-tenant-b"]}, "method": "POST", "body": "{\"q\":\"a\"}"`),
		"other body":      route(`"header_up": {"X-Api-Key": ["key-of-tenant-a"]}, "method": "POST", "body": "{\"q\":\"b\"}"`),
		"other method":    route(`"header_up": {"X-Api-Key": ["key-of-tenant-a"]}, "method": "GET"`),
		"no header_up":    route(`"method": "POST", "body": "{\"q\":\"a\"}"`),
		"oauth2 client":   route(`"header_up": {"X-Api-Key": ["key-of-tenant-a"]}, "method": "POST", "body": "{\"q\":\"a\"}", "oauth2": {"token_url": "http://127.0.0.1:9/token", "client_id": "tenant-a", "client_secret": "s"}`),
		"transport":       route(`"header_up": {"X-Api-Key": ["key-of-tenant-a"]}, "method": "POST", "body": "{\"q\":\"a\"}", "transport": {"protocol": "http", "dial_timeout": "3s"}`),
	}
	for name, raw := range differ {
		if lease, stream := redisKeysOf(t, raw, ""); lease == baseLease || stream == baseStream {
			t.Errorf("%s: shares the Redis keys %s, %s", name, lease, stream)
		}
	}
	same := map[string]string{
		"same settings":             base,
		"header_up by placeholder":  route(`"header_up": {"X-Api-Key": ["{env.POLL_SSE_TEST_TENANT_KEY}"]}, "method": "POST", "body": "{\"q\":\"a\"}"`),
		"other name and history":    route(`"header_up": {"X-Api-Key": ["key-of-tenant-a"]}, "method": "POST", "body": "{\"q\":\"a\"}", "name": "b", "history": 5`),
		"other select and interval": route(`"header_up": {"X-Api-Key": ["key-of-tenant-a"]}, "method": "POST", "body": "{\"q\":\"a\"}", "select": "/x", "interval": "5s"`),
	}
	for name, raw := range same {
		if lease, stream := redisKeysOf(t, raw, ""); lease != baseLease || stream != baseStream {
			t.Errorf("%s: keys %s, %s; want %s, %s", name, lease, stream, baseLease, baseStream)
		}
	}
	oauth := func(client string) string {
		return route(`"oauth2": {"token_url": "http://127.0.0.1:9/token", "client_id": "` + client + `", "client_secret": "s"}`)
	}
	tenantA, _ := redisKeysOf(t, oauth("tenant-a"), "")
	tenantB, _ := redisKeysOf(t, oauth("tenant-b"), "")
	againA, _ := redisKeysOf(t, oauth("tenant-a"), "")
	if tenantA == tenantB || tenantA != againA {
		t.Errorf("oauth2 clients: tenant a %s, tenant b %s, tenant a again %s; want a's two alike and b's apart", tenantA, tenantB, againA)
	}
	fwd := route(`"forward": ["Authorization"]`)
	userA, _ := redisKeysOf(t, fwd, "Bearer user-a")
	userB, _ := redisKeysOf(t, fwd, "Bearer user-b")
	again, _ := redisKeysOf(t, fwd, "Bearer user-a")
	if userA == userB {
		t.Error("clients forwarding different credentials share a lease")
	}
	if userA != again {
		t.Error("clients forwarding the same credentials do not share a lease")
	}
}
