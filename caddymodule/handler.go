// Package caddymodule is the Caddy glue of poll_sse: the http.handlers.poll_sse handler,
// its Caddyfile directive, provisioning and teardown. The work itself is done by the
// Caddy-free packages poller, diff, sse and hub.
package caddymodule

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/pollsse/caddy-poll-sse/hub"
	"github.com/pollsse/caddy-poll-sse/poller"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler polls a legacy JSON endpoint once per interval, however many clients listen,
// and streams the changes to them as Server-Sent Events with resumable event ids.
type Handler struct {
	// Upstream is the absolute http or https URL polled.
	Upstream string `json:"upstream,omitempty"`
	// Interval is the time between polls. Default: 2s.
	Interval caddy.Duration `json:"interval,omitempty"`
	// Timeout is one poll's deadline, body included. Default: 10s.
	Timeout caddy.Duration `json:"timeout,omitempty"`
	// HeaderUp holds header fields sent on every poll.
	HeaderUp http.Header `json:"header_up,omitempty"`
	// History is how many versions are kept for resume. Default: 1000.
	History int `json:"history,omitempty"`
	// Heartbeat is the idle time after which a comment line is sent. Default: 15s.
	Heartbeat caddy.Duration `json:"heartbeat,omitempty"`
	// Retry is the reconnection delay sent to clients in the `retry:` field. Default: 3s.
	Retry caddy.Duration `json:"retry,omitempty"`
	// Linger is how long polling goes on after the last subscriber leaves. Default: 30s.
	Linger caddy.Duration `json:"linger,omitempty"`

	poll   poller.Config // each poll loop gets its own poller.Poller from it
	hub    *hub.Hub
	hubKey string
	logger *zap.Logger

	// streams ends every open stream when canceled: on Cleanup, or when a server this
	// handler serves begins to shut down.
	streams    context.Context
	endStreams context.CancelFunc
	servers    *sync.Map // *http.Server → struct{}: shutdown hooks registered
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.poll_sse",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision sets defaults, checks the poll settings and joins the route's hub.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	if h.Interval == 0 {
		h.Interval = caddy.Duration(poller.DefaultInterval)
	}
	if h.Timeout == 0 {
		h.Timeout = caddy.Duration(poller.DefaultTimeout)
	}
	h.poll = poller.Config{
		URL:      h.Upstream,
		Header:   h.HeaderUp,
		Interval: time.Duration(h.Interval),
		Timeout:  time.Duration(h.Timeout),
		Client:   poller.NewClient(),
	}
	if _, err := poller.New(h.poll); err != nil {
		return err
	}
	if err := h.provisionHub(); err != nil {
		return err
	}
	h.streams, h.endStreams = context.WithCancel(context.Background())
	h.servers = new(sync.Map)
	return nil
}

// Validate checks the configuration.
func (h *Handler) Validate() error {
	u, err := url.Parse(h.Upstream)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("upstream %q: want an absolute http or https URL", h.Upstream)
	}
	for name, d := range map[string]caddy.Duration{
		"interval": h.Interval, "timeout": h.Timeout, "heartbeat": h.Heartbeat,
		"retry": h.Retry, "linger": h.Linger,
	} {
		if d < 0 {
			return fmt.Errorf("%s must not be negative", name)
		}
	}
	if h.History < 0 {
		return fmt.Errorf("history must not be negative")
	}
	return nil
}

// Cleanup ends open streams and stops the poll loops.
func (h *Handler) Cleanup() error {
	if h.endStreams != nil {
		h.endStreams()
	}
	if h.hubKey != "" {
		if _, err := hubs.Delete(h.hubKey); err != nil {
			return err
		}
	}
	return nil
}

// ServeHTTP opens an event stream. Methods other than GET and HEAD get 405.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		return caddyhttp.Error(http.StatusMethodNotAllowed, fmt.Errorf("method %s not allowed", r.Method))
	}
	return h.serveStream(w, r)
}

// newSource starts the source of a new poll loop. The config was checked in Provision.
func (h *Handler) newSource() hub.Source {
	p, err := poller.New(h.poll)
	if err != nil {
		panic(fmt.Sprintf("poller config checked at provision: %v", err))
	}
	return hub.NewPollSource(p)
}

// loopKey identifies the poll loop a request joins.
func (h *Handler) loopKey(*http.Request) string { return h.Upstream }

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
