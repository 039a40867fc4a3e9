package redisstore

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pollsse/caddy-poll-sse/poller"
	"github.com/pollsse/caddy-poll-sse/redisstore/redistest"
)

// TestLoopIDCoversWhatIsPolled checks that every setting that changes what a loop sends
// upstream, or what it keeps, gives another id, and that settings sent alike give the
// same id in any store, whatever their spelling.
func TestLoopIDCoversWhatIsPolled(t *testing.T) {
	t.Parallel()
	base := func() poller.Config {
		return poller.Config{
			URL:     "https://api.example/v1/state?region=eu",
			Method:  "POST",
			Body:    []byte(`{"q":"tenant-a"}`),
			Header:  http.Header{"X-Api-Key": {"key-of-tenant-a"}, "Accept": {"application/json"}},
			MaxBody: 1 << 20,
		}
	}
	differ := map[string]func(*poller.Config){
		"header_up value":        func(c *poller.Config) { c.Header.Set("X-Api-Key", "key-of-tenant-b") },
		"forwarded header added": func(c *poller.Config) { c.Header.Set("Authorization", "Bearer u1") },
		"second header value":    func(c *poller.Config) { c.Header.Add("X-Api-Key", "more") },
		"header moved to name":   func(c *poller.Config) { c.Header = http.Header{"X-Api-Key": {"key-of-tenant-a", "application/json"}} },
		"body":                   func(c *poller.Config) { c.Body = []byte(`{"q":"tenant-b"}`) },
		"method":                 func(c *poller.Config) { c.Method = "GET" },
		"url path":               func(c *poller.Config) { c.URL = "https://api.example/v1/state2?region=eu" },
		"url query":              func(c *poller.Config) { c.URL = "https://api.example/v1/state?region=us" },
		"max_body":               func(c *poller.Config) { c.MaxBody = 2 << 20 },
		"field boundary":         func(c *poller.Config) { c.URL += `{"q":"tenant-a"}`; c.Body = nil },
	}
	same := map[string]func(*poller.Config){
		"header name case": func(c *poller.Config) {
			c.Header = http.Header{"x-api-key": {"key-of-tenant-a"}, "accept": {"application/json"}}
		},
		"method case":          func(c *poller.Config) { c.Method = "post" },
		"interval and timeout": func(c *poller.Config) { c.Interval, c.Timeout = 7, 9 },
	}
	id := LoopID(base())
	if len(id) != 32 || strings.Trim(id, "0123456789abcdef") != "" {
		t.Fatalf("id %q is not 32 hex digits", id)
	}
	seen := map[string]string{id: "base"}
	for name, change := range differ {
		cfg := base()
		change(&cfg)
		got := LoopID(cfg)
		if other, ok := seen[got]; ok {
			t.Errorf("%s: same id as %s", name, other)
		}
		seen[got] = name
	}
	for name, change := range same {
		cfg := base()
		change(&cfg)
		if LoopID(cfg) != id {
			t.Errorf("%s: another id for the same requests", name)
		}
	}
	if LoopID(poller.Config{URL: "http://x/"}) != LoopID(poller.Config{URL: "http://x/", Method: "GET", MaxBody: poller.DefaultMaxBody}) {
		t.Error("defaults spelled out give another id")
	}
}

// TestKeysSharedAcrossStores checks that two stores, as two nodes have, give the same
// keys for the same settings, that both keys of a loop carry its hash tag, and that no
// header value appears in them.
func TestKeysSharedAcrossStores(t *testing.T) {
	t.Parallel()
	cfg := poller.Config{URL: "http://127.0.0.1:9/x", Header: http.Header{"X-Api-Key": {"secret-of-tenant-a"}}}
	a, b := &Store{}, &Store{}
	leaseA, streamA := a.Keys(cfg)
	leaseB, streamB := b.Keys(cfg)
	if leaseA != leaseB || streamA != streamB {
		t.Fatalf("two stores: %s %s and %s %s", leaseA, streamA, leaseB, streamB)
	}
	if a.Node == b.Node {
		t.Fatal("two stores share a node id")
	}
	tag := "{" + LoopID(cfg) + "}"
	if leaseA != DefaultPrefix+tag+":lease" || streamA != DefaultPrefix+tag+":stream" {
		t.Errorf("keys %s and %s; want the hash tag %s", leaseA, streamA, tag)
	}
	if strings.Contains(leaseA+streamA, "secret") {
		t.Error("a key holds a header value")
	}
	p := &Store{Prefix: "app2:"}
	if lease, _ := p.Keys(cfg); lease != "app2:"+tag+":lease" {
		t.Errorf("prefixed lease %s", lease)
	}
}

// TestTenantsOnOneURLStaySeparate runs two nodes on one Redis polling the same URL with
// different API keys, the upstream answering each key with its tenant's data: each
// node's clients get only their own tenant's document.
func TestTenantsOnOneURLStaySeparate(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"secret":"data of %s"}`, req.Header.Get("X-Api-Key"))
	}))
	t.Cleanup(up.Close)
	var clients []*client
	for _, tenant := range []string{"tenant-a", "tenant-b"} {
		cfg := poller.Config{URL: up.URL, Interval: 20 * time.Millisecond, Client: up.Client(), Header: http.Header{"X-Api-Key": {tenant}}}
		n := newNode(t, r, cfg)
		clients = append(clients, n.subscribe(t, ""))
	}
	for i, tenant := range []string{"tenant-a", "tenant-b"} {
		clients[i].waitDoc(t, `{"secret":"data of `+tenant+`"}`)
	}
	time.Sleep(100 * time.Millisecond)
	for i, tenant := range []string{"tenant-a", "tenant-b"} {
		for clients[i].read(50*time.Millisecond) == nil { // take whatever else arrived
		}
		if !clients[i].holds(`{"secret":"data of ` + tenant + `"}`) {
			t.Errorf("%s's client holds %s", tenant, clients[i].doc)
		}
		for _, m := range clients[i].events {
			if strings.Contains(m.Data, "data of") && !strings.Contains(m.Data, tenant) {
				t.Errorf("%s's client was sent %s", tenant, m.Data)
			}
		}
	}
}
