package caddymodule

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/redis/go-redis/v9"
)

// TestStoreCaddyfileErrors feeds hostile and mistaken store lines to the Caddyfile
// adapter: each is refused with an error naming the problem and its line.
func TestStoreCaddyfileErrors(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, store, want string }{
		{"no address", "store redis", "an address is required"},
		{"sentinel without address", "store redis {\n\t\tsentinel mymaster\n\t}", "an address is required"},
		{"sentinel without master", "store redis 127.0.0.1:26379 {\n\t\tsentinel\n\t}", "sentinel: want <master> [<address...>]"},
		{"sentinel twice", "store redis 127.0.0.1:26379 {\n\t\tsentinel a\n\t\tsentinel b\n\t}", "sentinel given twice"},
		{"sentinel and cluster", "store redis 127.0.0.1:26379 {\n\t\tsentinel m\n\t\tcluster\n\t}", "sentinel and cluster exclude each other"},
		{"db on a cluster", "store redis 127.0.0.1:7000 127.0.0.1:7001 {\n\t\tdb 1\n\t}", "db 1: a Redis Cluster has only database 0"},
		{"db on a cluster endpoint", "store redis 127.0.0.1:7000 {\n\t\tcluster\n\t\tdb 3\n\t}", "a Redis Cluster has only database 0"},
		{"address without port", "store redis 127.0.0.1", `address "127.0.0.1": want host:port`},
		{"address without host", "store redis :6379", `address ":6379": want host:port`},
		{"port out of range", "store redis 127.0.0.1:70000", `"70000" is not a port`},
		{"port zero", "store redis 127.0.0.1:0", `"0" is not a port`},
		{"url instead of address", "store redis redis://127.0.0.1:6379", "want host:port"},
		{"address twice", "store redis 127.0.0.1:7000 127.0.0.1:7000", `address "127.0.0.1:7000" given twice`},
		{"sentinel repeats an address", "store redis 127.0.0.1:26379 {\n\t\tsentinel m 127.0.0.1:26379\n\t}", "given twice"},
		{"brace in prefix", "store redis 127.0.0.1:6379 {\n\t\tprefix app{1}:\n\t}", "braces would put every loop in one cluster slot"},
		{"cluster with argument", "store redis 127.0.0.1:6379 {\n\t\tcluster yes\n\t}", "wrong argument count"},
		{"unknown option", "store redis 127.0.0.1:6379 {\n\t\tmaster x\n\t}", `unknown option "master"`},
		{"memory with address", "store memory 127.0.0.1:6379", "store memory takes no arguments"},
	}
	adapter := caddyconfig.GetAdapter("caddyfile")
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			body := ":8080\npoll_sse http://127.0.0.1/x {\n\t" + tc.store + "\n}\n"
			_, _, err := adapter.Adapt([]byte(body), map[string]any{"filename": "Caddyfile"})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "Caddyfile:") {
				t.Fatalf("error %v; want %q with a file and line", err, tc.want)
			}
		})
	}
}

// TestStoreManyAddressesRefused checks that a store line cannot make a node open a
// connection pool for each of thousands of addresses.
func TestStoreManyAddressesRefused(t *testing.T) {
	t.Parallel()
	var addrs []string
	for i := range maxStoreAddresses + 1 {
		addrs = append(addrs, "127.0.0.1:"+strconv.Itoa(7000+i))
	}
	err := (&Store{Type: "redis", Addresses: addrs}).validate()
	if err == nil || !strings.Contains(err.Error(), "at most") {
		t.Fatalf("validate: %v; want a bound on addresses", err)
	}
}

// TestStoreJSON loads stores from JSON, the older single address included, and checks
// which kind of Redis client each builds, or the error it gets.
func TestStoreJSON(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, store string
		addrs       []string
		kind        string // single, cluster or sentinel; "" when the load fails
		want        string // part of the error
	}{
		{"older address", `"address": "127.0.0.1:6379"`, []string{"127.0.0.1:6379"}, "single", ""},
		{"one address", `"addresses": ["127.0.0.1:6379"], "db": 3`, []string{"127.0.0.1:6379"}, "single", ""},
		{"cluster", `"addresses": ["127.0.0.1:7000", "127.0.0.1:7001", "127.0.0.1:7002"]`, []string{"127.0.0.1:7000", "127.0.0.1:7001", "127.0.0.1:7002"}, "cluster", ""},
		{"cluster endpoint", `"addresses": ["127.0.0.1:7000"], "cluster": true`, []string{"127.0.0.1:7000"}, "cluster", ""},
		{"older and newer address", `"address": "127.0.0.1:7000", "addresses": ["127.0.0.1:7001"]`, []string{"127.0.0.1:7000", "127.0.0.1:7001"}, "cluster", ""},
		{"sentinel", `"addresses": ["127.0.0.1:26379", "127.0.0.1:26380"], "sentinel_master": "mymaster", "db": 2`, []string{"127.0.0.1:26379", "127.0.0.1:26380"}, "sentinel", ""},
		{"db on cluster", `"addresses": ["127.0.0.1:7000", "127.0.0.1:7001"], "db": 1`, nil, "", "a Redis Cluster has only database 0"},
		{"no address", `"sentinel_master": "m"`, nil, "", "an address is required"},
		{"master name with space", `"addresses": ["127.0.0.1:26379"], "sentinel_master": "a b"`, nil, "", "is not a master name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h, err := loadHandler(t, `{"upstream": "http://127.0.0.1:9/x", "store": {"type": "redis", `+tc.store+`}}`)
			if tc.kind == "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("load: %v; want an error with %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = h.Cleanup() })
			opts := h.Store.redisOptions()
			if !slices.Equal(opts.Addrs, tc.addrs) {
				t.Errorf("addresses %v; want %v", opts.Addrs, tc.addrs)
			}
			if got := clientKind(opts); got != tc.kind {
				t.Errorf("client %s; want %s", got, tc.kind)
			}
		})
	}
}

// clientKind names the kind of client go-redis builds from opts.
func clientKind(opts *redis.UniversalOptions) string {
	c := redis.NewUniversalClient(opts)
	defer c.Close()
	switch c.(type) {
	case *redis.ClusterClient:
		return "cluster"
	case *redis.Client:
		if f := opts.Failover(); f.MasterName != "" && slices.Equal(f.SentinelAddrs, opts.Addrs) {
			return "sentinel"
		}
		return "single"
	}
	return "other"
}

// TestStoreMemoryRefusesRedisSettings checks that a memory store given an address, a
// cluster or a Sentinel master says so rather than ignoring it.
func TestStoreMemoryRefusesRedisSettings(t *testing.T) {
	t.Parallel()
	for _, s := range []Store{{Addresses: []string{"127.0.0.1:6379"}}, {Type: "memory", Cluster: true}, {SentinelMaster: "m"}} {
		if err := s.validate(); err == nil {
			t.Errorf("memory store %+v accepted", s)
		}
	}
}
