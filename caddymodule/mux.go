package caddymodule

import (
	"fmt"
	"net/http"
	"regexp"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
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

// Provision indexes the streams allowed.
func (m *Mux) Provision(caddy.Context) error {
	m.allowed = make(map[string]bool, len(m.Streams))
	for _, s := range m.Streams {
		m.allowed[s] = true
	}
	return nil
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

// named holds the provisioned poll_sse handlers by name, for the muxes: the last one
// provisioned under a name is the one a mux serves, so a reload hands muxes the new
// config's routes.
var named sync.Map // string → *Handler

// register makes h the handler a mux serves under its name.
func (h *Handler) register() {
	if h.Name != "" {
		named.Store(h.Name, h)
	}
}

// unregister forgets h, unless another handler took its name since.
func (h *Handler) unregister() {
	if h.Name != "" {
		named.CompareAndDelete(h.Name, h)
	}
}

// namedHandler returns the handler a mux serves under name.
func namedHandler(name string) *Handler {
	v, _ := named.Load(name)
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
