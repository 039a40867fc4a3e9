// Package caddymodule is the Caddy glue of poll_sse: the http.handlers.poll_sse handler,
// its Caddyfile directive, provisioning and teardown. The work itself is done by the
// Caddy-free packages poller, diff, sse and hub.
package caddymodule

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/pollsse/caddy-poll-sse/diff"
	"github.com/pollsse/caddy-poll-sse/hub"
	"github.com/pollsse/caddy-poll-sse/poller"
	"github.com/pollsse/caddy-poll-sse/redisstore"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler polls a legacy JSON endpoint once per interval, however many clients listen,
// and streams the changes to them as Server-Sent Events with resumable event ids.
type Handler struct {
	// Upstream is the absolute http or https URL polled.
	Upstream string `json:"upstream,omitempty"`
	// Interval is the time between polls. Default: 2s; from 50ms to 24h.
	Interval caddy.Duration `json:"interval,omitempty"`
	// Timeout is one poll's deadline, body included. Default: 10s; from 50ms to 10m.
	Timeout caddy.Duration `json:"timeout,omitempty"`
	// HeaderUp holds header fields sent on every poll. Values may use {env.*} and
	// {file.*} placeholders, resolved at each config load: after a secret is rotated, a
	// reload sends the new one. A placeholder that resolves to nothing is an error.
	HeaderUp http.Header `json:"header_up,omitempty"`
	// History is how many versions are kept for resume. Default: 1000; from 1 to 100000.
	History int `json:"history,omitempty"`
	// HistorySize bounds the bytes of the changes kept for resume, per poll loop; past it
	// the oldest versions go first, and a client holding one gets a snapshot. Default:
	// 64 MiB.
	HistorySize int64 `json:"history_size,omitempty"`
	// Heartbeat is the idle time after which a comment line is sent. Default: 15s;
	// from 1s to 1h.
	Heartbeat caddy.Duration `json:"heartbeat,omitempty"`
	// Retry is the reconnection delay sent to clients in the `retry:` field. Default: 3s;
	// from 100ms to 1h.
	Retry caddy.Duration `json:"retry,omitempty"`
	// Linger is how long polling goes on after the last subscriber leaves. Default: 30s;
	// from 100ms to 24h.
	Linger caddy.Duration `json:"linger,omitempty"`
	// Method is the poll's HTTP method, GET or POST. Default: GET.
	Method string `json:"method,omitempty"`
	// Body is the request body of a POST poll.
	Body string `json:"body,omitempty"`
	// Forward names client request headers sent upstream. Clients whose values differ
	// never share a poll loop, its history or its ids.
	Forward []string `json:"forward,omitempty"`
	// MaxBody bounds the upstream body, counted after decompression. Default: 8 MiB;
	// from 1 KiB to 1 GiB.
	MaxBody int64 `json:"max_body,omitempty"`
	// MaxUpstreams caps the distinct poll loops live on this route; beyond it new
	// clients get 503. Default: 1000; from 1 to 10000.
	MaxUpstreams int `json:"max_upstreams,omitempty"`
	// MaxLoopsPerClient caps the running poll loops one client address may have started
	// on this route, counted by the client IP Caddy determines (see the server's
	// trusted_proxies), an IPv6 address by its /64; beyond it the client gets 429 with
	// Retry-After. Joining a running loop is always allowed. Default: 32.
	MaxLoopsPerClient int `json:"max_loops_per_client,omitempty"`
	// Poke is a secret: a POST to the stream URL with header `Poll-SSE-Poke: <secret>`
	// makes its loop poll soon. It may hold {env.*} and {file.*} placeholders, resolved
	// when the config loads; one that does not resolve is an error.
	Poke string `json:"poke,omitempty"`
	// Format is the change format of clients that do not choose one with `?format=`:
	// json_patch (RFC 6902 patch arrays), merge_patch (RFC 7386 merge patch objects, or a
	// snapshot when a merge patch cannot express a change, as when the document's root is
	// or becomes an array or a scalar) or snapshot (the whole document on every change).
	// Default: json_patch.
	Format string `json:"format,omitempty"`
	// Select is an RFC 6901 JSON pointer to the part of the upstream document that is
	// streamed and served. While it does not resolve, clients get an `upstream` event and
	// keep the last document. Default: the whole document.
	Select string `json:"select,omitempty"`
	// Ignore lists JSON pointers to members left out of the document and of change
	// detection, such as timestamps. They address the upstream document as received, lie
	// inside Select, and may use a `*` token for every array element or object member.
	Ignore []string `json:"ignore,omitempty"`
	// ArrayKeys name arrays whose elements are matched by a member, such as "id", rather
	// than by position, so that an insert, a removal or a move is one patch operation.
	ArrayKeys []ArrayKey `json:"array_key,omitempty"`
	// MaxSubscribers caps the streams open on this route; beyond it new clients get 503
	// with Retry-After. Default: no cap; from 1 to 1000000.
	MaxSubscribers int `json:"max_subscribers,omitempty"`
	// MaxConnectionLifetime closes each stream after a random time in the last tenth of
	// it, or in its last Drain when that is longer (never in its first half); clients
	// reconnect and resume, so load spreads again after scaling out. Default: streams
	// live until the client leaves; from 1s to 720h.
	MaxConnectionLifetime caddy.Duration `json:"max_connection_lifetime,omitempty"`
	// Drain is the window over which streams that must end are closed, each at a
	// moment of its own, so that their clients do not all reconnect at once: the
	// streams of a route that a reload changed or removed, and those of a server that a
	// reload retired (HTTP/2, HTTP/3, and HTTP/1.1 written through middleware). A
	// reload that keeps the route's settings keeps its HTTP/1.1 streams open. Stopping
	// Caddy ends every stream at once. Default: 5s; from 100ms to 10m.
	Drain caddy.Duration `json:"drain,omitempty"`
	// Name labels the route in metrics, logs and the admin API. Default: the upstream's
	// scheme and host.
	Name string `json:"name,omitempty"`
	// ClientSelect lists the JSON pointers a client may choose with `?select=`, in the
	// upstream document as received and inside Select; a `*` token matches any one token.
	// Each distinct choice is a view with its own versions and history, fed from the
	// route's one poll loop. A client must choose one; one outside the list gets 400.
	ClientSelect []string `json:"client_select,omitempty"`
	// Filter keeps, for each client, the rows of an array whose member equals a request
	// placeholder's value; a request for which it is empty gets 403. Each distinct value
	// is a view, fed from the route's one poll loop.
	Filter *Filter `json:"filter,omitempty"`
	// Expires is a request placeholder holding a Unix time or an RFC 3339 time, such as a
	// token's expiry set by an authentication module: the stream is closed then.
	Expires string `json:"expires,omitempty"`
	// Store says where versions and history live: in this process (the default), or in
	// Redis, shared by a cluster that then polls each upstream once.
	Store *Store `json:"store,omitempty"`
	// Transport configures how polls reach the upstream, with the options of
	// reverse_proxy's HTTP transport (`"protocol": "http"`): TLS trust, client
	// certificates, server name, dial timeout, buffers, HTTP versions (1.1, 2, h2c) and a
	// forward proxy. All the loops of a route share it and its connections. Default: a
	// transport with the system's roots and the proxy of the environment.
	TransportRaw json.RawMessage `json:"transport,omitempty" caddy:"namespace=http.reverse_proxy.transport inline_key=protocol"`
	// Dial sends polls to a Unix socket, `unix//<path>`, instead of the upstream URL's
	// host, which still gives the Host header and the TLS server name. Default: the
	// upstream URL's host.
	Dial string `json:"dial,omitempty"`
	// OAuth2 has polls carry a token got with the OAuth2 client credentials grant.
	OAuth2 *OAuth2 `json:"oauth2,omitempty"`

	upstream upstreamTemplate
	poll     poller.Config // each poll loop gets its own poller.Poller from it
	fixed    *loop         // the route's one loop when no request changes it (see fixedLoop)
	format   hub.Format    // the default change format
	shape    diff.Options  // each poll loop gets its own diff.Tracker from it
	hub      *routeHub     // the pooled hub, with this route's limits: its views' hub with views
	loops    *hub.Hub      // the pooled hub of the route's poll loops
	hubKey   string
	slotsKey string // the route's stream count in routeSlots
	metrics  *routeMetrics
	redis    *redisstore.Store // nil for the memory store
	logger   *zap.Logger

	// streams ends the streams written through the ResponseWriter at once when
	// canceled, as the process exits; live holds them, for a drain (see drain.go).
	streams    context.Context
	endStreams context.CancelFunc
	live       *liveStreams
	servers    *sync.Map // *http.Server → struct{}: shutdown hooks registered
	named      routeName // its key in named, when it has a name
	pooled     pooledHub

	pokeDigest [sha256.Size]byte // of the resolved poke secret
	clients    *clientLoops      // the running loops each client started, kept with the hub

	transport *http.Transport // this config's, attached to the hub's client
	oauth2    *oauth2Settings // nil without oauth2
	client    *routeClient    // the hub's, shared by its loops
	// transportID tells apart routes whose polls travel differently (see transportKey).
	transportID string
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
	// Out-of-range settings are refused before anything is built from them: Validate
	// runs only after Provision, which already starts or joins the route's hub.
	if err := h.checkBounds(); err != nil {
		return err
	}
	if err := h.Store.validate(); err != nil {
		return err
	}
	if err := h.Store.provision(); err != nil {
		return err
	}
	if h.Interval == 0 {
		h.Interval = caddy.Duration(poller.DefaultInterval)
	}
	if h.Timeout == 0 {
		h.Timeout = caddy.Duration(poller.DefaultTimeout)
	}
	if h.MaxUpstreams == 0 {
		h.MaxUpstreams = defaultMaxUpstreams
	}
	if h.MaxLoopsPerClient == 0 {
		h.MaxLoopsPerClient = defaultMaxLoopsPerClient
	}
	if err := h.provisionPoll(); err != nil {
		return err
	}
	if err := h.provisionUpstreamClient(ctx); err != nil {
		return err
	}
	if err := h.provisionPoke(); err != nil {
		return err
	}
	if err := h.provisionShape(); err != nil {
		return err
	}
	if err := h.checkViews(); err != nil {
		return err
	}
	if err := h.provisionHub(ctx); err != nil {
		return err
	}
	h.fixed = h.fixedLoop()
	h.streams, h.endStreams = context.WithCancel(context.Background())
	h.live = newLiveStreams()
	h.servers = new(sync.Map)
	h.watchServer(ctx)
	return h.register(ctx)
}

// defaultMaxUpstreams is the default cap on live poll loops per route.
const defaultMaxUpstreams = 1000

// provisionPoll checks the upstream template and builds the poll settings shared by the
// route's loops. header_up values may use {env.*} and {file.*}, resolved here, at each
// config load: a secret rotated in its file or variable is sent from the next reload on.
func (h *Handler) provisionPoll() error {
	tmpl, err := parseUpstream(h.Upstream)
	if err != nil {
		return err
	}
	h.upstream = tmpl
	header, err := resolveHeader(h.HeaderUp)
	if err != nil {
		return err
	}
	h.poll = poller.Config{
		URL:      strings.NewReplacer("{", "", "}", "").Replace(h.Upstream),
		Method:   h.Method,
		Header:   header,
		Body:     []byte(h.Body),
		Interval: time.Duration(h.Interval),
		Timeout:  time.Duration(h.Timeout),
		MaxBody:  h.MaxBody,
	}
	_, err = poller.New(h.poll)
	return err
}

// Validate checks the configuration.
func (h *Handler) Validate() error {
	if _, err := parseUpstream(h.Upstream); err != nil {
		return err
	}
	if err := h.checkBounds(); err != nil {
		return err
	}
	if err := h.Store.validate(); err != nil {
		return err
	}
	if _, _, err := h.checkShape(); err != nil {
		return err
	}
	return h.checkViews()
}

// Cleanup lets go of the route's hub, which retires when no config uses it any more.
// Streams the hub keeps serving stay open; those written through the ResponseWriter are
// drained, unless the process exits, which ends them at once.
func (h *Handler) Cleanup() error {
	h.unregister()
	if h.endStreams != nil {
		if caddy.Exiting() {
			h.endStreams()
		} else {
			h.drainLive()
		}
	}
	if h.pooled.Hub != nil {
		h.pooled.drain.Store(int64(h.drainWindow()))
	}
	if h.slotsKey != "" {
		if _, err := routeSlots.Delete(h.slotsKey); err != nil {
			return err
		}
	}
	if h.hubKey != "" {
		if _, err := hubs.Delete(h.hubKey); err != nil {
			return err
		}
	}
	h.detachTransport()
	return nil
}

// ServeHTTP opens an event stream, answers a JSON-only GET with the latest document, and
// takes pokes. Other methods get 405.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	switch {
	case r.Method == http.MethodPost && h.Poke != "":
		return h.servePoke(w, r)
	case r.Method != http.MethodGet && r.Method != http.MethodHead:
		allow := "GET, HEAD"
		if h.Poke != "" {
			allow += ", POST"
		}
		w.Header().Set("Allow", allow)
		return caddyhttp.Error(http.StatusMethodNotAllowed, fmt.Errorf("method %s not allowed", r.Method))
	}
	r, lp, release, err := h.admit(w, r)
	if err != nil {
		return err
	}
	defer release()
	if wantsJSON(r.Header.Values("Accept")) {
		return h.serveDocument(w, r, lp)
	}
	return h.serveStream(w, r, lp)
}

// admit runs a request for the route's document or events through the route's checks:
// its loop, its expiry, the upstream's refusal of its forwarded credentials, and its view.
// It returns the request with its expiry, the loop or view to serve it from, and what to
// release once it is served. Every way to the route's data goes through it: a mux too.
func (h *Handler) admit(w http.ResponseWriter, r *http.Request) (*http.Request, loop, func(), error) {
	lp, err := h.loopFor(r)
	if err != nil {
		return nil, loop{}, nil, caddyhttp.Error(http.StatusBadRequest, err)
	}
	r, release, err := h.withExpiry(r)
	if err != nil {
		return nil, loop{}, nil, err
	}
	if status, denied := h.loops.Denied(lp.key); denied {
		release()
		return nil, loop{}, nil, caddyhttp.Error(status, errDenied)
	}
	if !h.viewsOn() {
		return r, lp, release, nil
	}
	lp, releaseLoop, err := h.viewFor(w, r, lp)
	if err != nil {
		release()
		return nil, loop{}, nil, err
	}
	return r, lp, func() { releaseLoop(); release() }, nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)

// resolveHeader returns hdr with its {env.*}, {file.*} and other global placeholders
// resolved. A placeholder that resolves to nothing, such as an unset variable or a file
// that cannot be read, is an error: polling with an empty credential would only earn 401s.
func resolveHeader(hdr http.Header) (http.Header, error) {
	repl := caddy.NewReplacer()
	out := make(http.Header, len(hdr))
	for k, vs := range hdr {
		for _, v := range vs {
			r, err := repl.ReplaceOrErr(v, true, false)
			if err != nil {
				return nil, fmt.Errorf("header_up %s: %w", k, err)
			}
			out.Add(k, r)
		}
	}
	return out, nil
}
