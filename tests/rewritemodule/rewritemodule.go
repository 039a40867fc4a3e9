// Package rewritemodule is a Caddy handler that the integration tests put in front of
// poll_sse: it wraps the ResponseWriter, as third-party modules do, and rewrites what is
// written through it, so a test sees whether each event went through the route's
// writers. It is linked only into the Caddy the tests build, with `-tags pollssetest`,
// and used inside `route` blocks.
package rewritemodule

import (
	"bytes"
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	caddy.RegisterModule(Rewrite{})
	httpcaddyfile.RegisterHandlerDirective("rewrite_body_test", func(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
		r := new(Rewrite)
		err := r.UnmarshalCaddyfile(h.Dispenser)
		return r, err
	})
}

// Rewrite replaces From with To, of the same length, in every write of the response.
type Rewrite struct {
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (Rewrite) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.rewrite_body_test",
		New: func() caddy.Module { return new(Rewrite) },
	}
}

// UnmarshalCaddyfile reads `rewrite_body_test <from> <to>`.
func (r *Rewrite) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if !d.Args(&r.From, &r.To) || d.NextArg() {
		return d.ArgErr()
	}
	if len(r.From) != len(r.To) {
		return d.Errf("from and to must be of the same length")
	}
	return nil
}

// ServeHTTP wraps w and calls next.
func (r Rewrite) ServeHTTP(w http.ResponseWriter, req *http.Request, next caddyhttp.Handler) error {
	return next.ServeHTTP(&writer{ResponseWriter: w, from: []byte(r.From), to: []byte(r.To)}, req)
}

type writer struct {
	http.ResponseWriter
	from, to []byte
}

func (w *writer) Write(p []byte) (int, error) {
	return w.ResponseWriter.Write(bytes.ReplaceAll(p, w.from, w.to))
}

// Unwrap lets http.ResponseController reach Flush and the write deadline beneath.
func (w *writer) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Interface guards
var (
	_ caddyhttp.MiddlewareHandler = (*Rewrite)(nil)
	_ caddyfile.Unmarshaler       = (*Rewrite)(nil)
)
