package caddymodule

import (
	"net"
	"net/http"
	"net/netip"
	"sync"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/pollsse/caddy-poll-sse/hub"
)

// defaultMaxLoopsPerClient is the default cap on the running loops one client started.
const defaultMaxLoopsPerClient = 32

// clientLoops counts, for each client address, the poll loops of a route that it started
// and that still run, so that one client cannot take up the route's max_upstreams, nor
// the loops of the process, with distinct forwarded values or placeholder values. It
// lives with the route's hub, across reloads, as the loops do.
type clientLoops struct {
	mu    sync.Mutex
	live  map[string]int        // client → running loops it started
	owner map[hub.Source]string // a running loop's source → the client that started it
}

func newClientLoops() *clientLoops {
	return &clientLoops{live: make(map[string]int), owner: make(map[hub.Source]string)}
}

// limit wraps newSource so that it declines, returning nil, when client already runs
// limit loops; the hub then answers hub.ErrNoSource. It is called only for a loop that
// is not running: joining a running loop costs a client nothing.
func (c *clientLoops) limit(client string, limit int, newSource func() hub.Source) func() hub.Source {
	return func() hub.Source {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.live[client] >= limit {
			return nil
		}
		src := newSource()
		c.live[client]++
		c.owner[src] = client
		return src
	}
}

// stopped uncounts the loop of src from its client's; it is the hub's Config.Stopped.
func (c *clientLoops) stopped(_ string, src hub.Source) {
	c.mu.Lock()
	defer c.mu.Unlock()
	client, ok := c.owner[src]
	if !ok {
		return
	}
	delete(c.owner, src)
	if c.live[client]--; c.live[client] <= 0 {
		delete(c.live, client)
	}
}

// running returns how many running loops client started.
func (c *clientLoops) running(client string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.live[client]
}

// clientAddress returns the address under which r's new loops are counted: the client IP
// Caddy determined, which honours the server's trusted_proxies, or else the connection's
// remote address. An IPv6 address counts as its /64, which one host or site typically
// holds whole and could otherwise spread its requests over.
func clientAddress(r *http.Request) string {
	ip, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	if ip == "" {
		ip = r.RemoteAddr
		if host, _, err := net.SplitHostPort(ip); err == nil {
			ip = host
		}
	}
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	addr = addr.Unmap().WithZone("")
	if addr.Is6() {
		p, _ := addr.Prefix(64)
		return p.String()
	}
	return addr.String()
}
