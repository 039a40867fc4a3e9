package caddymodule

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/pollsse/caddy-poll-sse/hub"
)

func init() {
	caddy.RegisterModule(Mux{})
	httpcaddyfile.RegisterHandlerDirective("poll_sse_mux", parseMuxCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("poll_sse_mux", httpcaddyfile.Before, "reverse_proxy")
}

// Mux carries several poll_sse routes, chosen by their name, on one event stream:
// clients ask for `?stream=<name>&stream=<name>…`. Each event is named
// `<name>.snapshot`, `<name>.patch` or `<name>.upstream`, with the data the route's own
// stream would send; its id holds the version of every stream asked for (see
// compositeID), so a client that reconnects with it gets, for each stream, one patch, a
// snapshot or nothing. A stream that cannot be served is named in a `refused` event, and
// the others go on.
type Mux struct {
	// Streams names the poll_sse routes, by their `name`, that clients may ask for. A
	// name is made of letters, digits, `_` and `-`, and names one route of the config.
	Streams []string `json:"streams,omitempty"`

	allowed map[string]bool
	live    *liveStreams      // the streams of the mux's connections, drained with its server
	server  *caddyhttp.Server // whose routes it serves
	stop    context.Context   // canceled when the process exits: every connection ends
	end     context.CancelFunc
}

// CaddyModule returns the Caddy module information.
func (Mux) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.poll_sse_mux",
		New: func() caddy.Module { return new(Mux) },
	}
}

// muxName is what a stream name of a mux may hold: it becomes part of event names.
var muxName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// Provision indexes the streams allowed, and makes the mux's connections end with the
// server that carries them (see serverRetiring).
func (m *Mux) Provision(ctx caddy.Context) error {
	m.allowed = make(map[string]bool, len(m.Streams))
	for _, s := range m.Streams {
		m.allowed[s] = true
	}
	m.live = newLiveStreams()
	m.stop, m.end = context.WithCancel(context.Background())
	if srv, ok := ctx.Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server); ok {
		m.server = srv
		srv.RegisterOnShutdown(m.serverRetiring)
	}
	return nil
}

// serverRetiring is run as the mux's server begins to shut down. A mux connection is
// written through the ResponseWriter, so it cannot outlive its server (see drain.go): on a
// reload its streams are drained over the default drain window, each connection ending
// when its first stream does, and its client resumes every stream on the new server. An
// exit, then or during the drain, ends every connection at once.
func (m *Mux) serverRetiring() {
	if caddy.Exiting() {
		m.endAll()
		return
	}
	drainFor(m, m.live.retire(), defaultDrain)
}

// endAll ends every connection of the mux at once.
func (m *Mux) endAll() { m.end() }

// track records the streams of a connection for a drain, and drains them at once when
// the server is retired already; the returned function forgets them.
func (m *Mux) track(subs []*muxSub) func() {
	var all []*hub.Subscription
	for _, s := range subs {
		if s != nil {
			all = append(all, s.sub)
		}
	}
	retired := false
	for _, s := range all {
		retired = m.live.add(s) || retired
	}
	if retired {
		drainFor(m, all, defaultDrain)
	}
	return func() {
		for _, s := range all {
			m.live.remove(s)
		}
	}
}

// Validate checks the stream names.
func (m *Mux) Validate() error {
	if len(m.Streams) == 0 {
		return fmt.Errorf("poll_sse_mux: no streams")
	}
	if len(m.Streams) > maxMuxStreams {
		return fmt.Errorf("poll_sse_mux: %d streams, over %d", len(m.Streams), maxMuxStreams)
	}
	for _, s := range m.Streams {
		if !muxName.MatchString(s) {
			return fmt.Errorf("poll_sse_mux: stream name %q: want 1 to 64 letters, digits, '_' or '-'", s)
		}
	}
	return nil
}

// maxMuxStreams bounds the streams of one mux, and so the work and the id length of one
// connection.
const maxMuxStreams = 64

// ServeHTTP opens the multiplexed stream. Other methods than GET and HEAD get 405.
func (m *Mux) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		return caddyhttp.Error(http.StatusMethodNotAllowed, fmt.Errorf("method %s not allowed", r.Method))
	}
	return m.serve(w, r)
}

// UnmarshalCaddyfile sets up the mux from Caddyfile tokens. Syntax:
//
//	poll_sse_mux [<matcher>] {
//		streams <name...>
//	}
func (m *Mux) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the directive
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "streams":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			m.Streams = append(m.Streams, args...)
		default:
			return d.Errf("unknown subdirective %q", d.Val())
		}
	}
	return nil
}

func parseMuxCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(Mux)
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return m, err
}

// named holds the provisioned poll_sse handlers by server and name, for the muxes: a
// mux serves the routes of its own server, whose every config load is a new one, so a
// reload hands muxes the new config's routes, and a mux never serves another server's
// route that happens to share a name.
var named sync.Map // routeName → *Handler

// routeName is a route's name on its server; server is nil for a handler provisioned
// outside one.
type routeName struct {
	server *caddyhttp.Server
	name   string
}

// register makes h the handler that muxes of its server serve under its name. Routes of
// one server may share a name only when they share their poll settings, and so their
// loops, views and documents; two that differ are a config error: a mux could not tell
// which one to serve.
func (h *Handler) register(ctx caddy.Context) error {
	if h.Name == "" {
		return nil
	}
	srv, _ := ctx.Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	h.named = routeName{srv, h.Name}
	if srv == nil {
		named.Store(h.named, h)
		return nil
	}
	if prev, loaded := named.LoadOrStore(h.named, h); loaded && prev.(*Handler).hubKey != h.hubKey {
		return fmt.Errorf("name %q: another poll_sse route of this server has it with other settings; give each route its own name", h.Name)
	}
	return nil
}

// unregister forgets h, unless another handler took its name since.
func (h *Handler) unregister() {
	if h.Name != "" {
		named.CompareAndDelete(h.named, h)
	}
}

// namedHandler returns the handler that m serves under name.
func (m *Mux) namedHandler(name string) *Handler {
	v, _ := named.Load(routeName{m.server, name})
	h, _ := v.(*Handler)
	return h
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Mux)(nil)
	_ caddy.Validator             = (*Mux)(nil)
	_ caddyfile.Unmarshaler       = (*Mux)(nil)
	_ caddyhttp.MiddlewareHandler = (*Mux)(nil)
)
