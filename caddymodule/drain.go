package caddymodule

import (
	"net/http"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/pollsse/caddy-poll-sse/hub"
)

// What a reload keeps, and what it drains.
//
// A stream over HTTP/1.x that was handed to the hub's shared writers (see handover.go)
// belongs to the route's pooled hub, not to the config that opened it: net/http forgets
// a hijacked connection, so retiring the old server neither waits for it nor closes it.
// A reload that keeps the route's settings keeps the hub, and the stream goes on,
// missing nothing. When the route's settings change or the route goes, the old hub
// retires (pool.go): it stops polling at once, and its streams close spread over the
// route's drain window.
//
// Every other stream is written through the ResponseWriter of the server that accepted
// it: HTTP/2, HTTP/3, and HTTP/1.x behind middleware that does not pass bytes through.
// Caddy retires that server on every reload (the listening socket carries over, the
// connections do not), and keeps it, with the whole old config, until its last request
// ends; Caddy's exit waits for the old servers as well. So such streams are drained over
// the drain window once their server begins to shut down.
//
// An exit (caddy stop, a signal) drains nothing: every stream ends at once, and stopping
// never waits on one.

// defaultDrain is the default drain window.
const defaultDrain = 5 * time.Second

// drainWindow returns the route's drain window.
func (h *Handler) drainWindow() time.Duration {
	if h.Drain > 0 {
		return time.Duration(h.Drain)
	}
	return defaultDrain
}

// liveStreams holds the streams a handler writes through the ResponseWriter, which end
// with the server that carries them.
type liveStreams struct {
	mu      sync.Mutex
	subs    map[*hub.Subscription]struct{}
	retired bool // the handler's server began to shut down: streams added now are drained
}

func newLiveStreams() *liveStreams {
	return &liveStreams{subs: make(map[*hub.Subscription]struct{})}
}

// add records s, and reports whether the handler's server is retired already, as when a
// request was still on its way to its stream as the server began to shut down.
func (l *liveStreams) add(s *hub.Subscription) (retired bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.subs[s] = struct{}{}
	return l.retired
}

func (l *liveStreams) remove(s *hub.Subscription) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.subs, s)
}

// retire marks the handler's server retired, and returns the streams.
func (l *liveStreams) retire() []*hub.Subscription {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.retired = true
	out := make([]*hub.Subscription, 0, len(l.subs))
	for s := range l.subs {
		out = append(out, s)
	}
	return out
}

// watchServer makes the Caddy server this handler is provisioned in drain its streams
// written through the ResponseWriter as soon as it begins to shut down, over every
// protocol, or end them at once when the process exits. Caddy stops a server's net/http
// side (HTTP/1.1, HTTP/2) and its HTTP/3 side together, and calls the net/http side's
// shutdown hooks even when it serves HTTP/3 alone; the HTTP/3 side has no hook of its
// own, and its Shutdown, like net/http's, would wait for open streams forever.
func (h *Handler) watchServer(ctx caddy.Context) {
	if srv, ok := ctx.Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server); ok {
		srv.RegisterOnShutdown(h.serverRetiring)
	}
}

// watchShutdown does what watchServer does for the net/http server that carries r, for
// a handler provisioned outside a Caddy server.
func (h *Handler) watchShutdown(r *http.Request) {
	srv, ok := r.Context().Value(http.ServerContextKey).(*http.Server)
	if !ok {
		return
	}
	if _, seen := h.servers.LoadOrStore(srv, struct{}{}); !seen {
		srv.RegisterOnShutdown(h.serverRetiring)
	}
}

// track records sub among the streams written through the ResponseWriter; one opened
// after its server began to shut down is drained at once, over the drain window.
func (h *Handler) track(sub *hub.Subscription) {
	if h.live.add(sub) {
		h.drain([]*hub.Subscription{sub})
	}
}

// serverRetiring is run as a server of the handler begins to shut down.
func (h *Handler) serverRetiring() {
	if caddy.Exiting() {
		h.endStreams()
		draining.endAll()
		return
	}
	h.drainLive()
}

// drainLive drains the streams the handler writes through the ResponseWriter over its
// drain window, and any that a request opens later. Until the window has passed, an exit
// ends them at once.
func (h *Handler) drainLive() {
	if n := h.drain(h.live.retire()); n > 0 {
		h.logger.Info("draining streams of a retired server", zap.String("route", h.routeName()),
			zap.Int("streams", n), zap.Duration("window", h.drainWindow()))
	}
}

// drain drains subs over the handler's drain window, and returns how many it scheduled.
// Until the window has passed, an exit ends them at once.
func (h *Handler) drain(subs []*hub.Subscription) int {
	return drainFor(h, subs, h.drainWindow())
}

// streamEnder ends at once every stream it writes through the ResponseWriter: a poll_sse
// handler, or a poll_sse_mux.
type streamEnder interface{ endAll() }

// endAll ends the handler's streams at once.
func (h *Handler) endAll() { h.endStreams() }

// drainFor drains subs, written by e, over window, and returns how many it scheduled.
// Until the window has passed, an exit ends them at once.
func drainFor(e streamEnder, subs []*hub.Subscription, window time.Duration) int {
	n := hub.Drain(subs, window)
	if n > 0 {
		draining.addHandler(e)
		time.AfterFunc(window, func() { draining.removeHandler(e) })
	}
	return n
}

// draining holds what is being drained in the process, so that an exit ends it at once:
// handlers and muxes whose retired server still has streams, and hubs of routes that a
// reload changed or removed.
var draining = &drainSet{handlers: make(map[streamEnder]int), hubs: make(map[*hub.Hub]pooledHub)}

type drainSet struct {
	mu       sync.Mutex
	handlers map[streamEnder]int // the drains of each handler or mux in progress
	hubs     map[*hub.Hub]pooledHub
	watching bool // watchExit runs
}

// exitPoll is how often a drain in progress checks whether the process is exiting. Caddy
// tells a module of an exit through the shutdown hooks of the current config's servers
// only, and that config may hold no poll_sse route; meanwhile it waits for the old
// servers, whose streams are draining, to finish.
const exitPoll = 50 * time.Millisecond

// watchExit ends every drain at once when the process exits, and returns when there is
// none left.
func (d *drainSet) watchExit() {
	tick := time.NewTicker(exitPoll)
	defer tick.Stop()
	for range tick.C {
		if caddy.Exiting() {
			d.endAll()
		}
		d.mu.Lock()
		done := len(d.handlers) == 0 && len(d.hubs) == 0
		if done {
			d.watching = false
		}
		d.mu.Unlock()
		if done {
			return
		}
	}
}

// watchLocked starts watchExit unless it runs. d.mu is held.
func (d *drainSet) watchLocked() {
	if !d.watching {
		d.watching = true
		go d.watchExit()
	}
}

func (d *drainSet) addHandler(h streamEnder) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.handlers[h]++
	d.watchLocked()
}

// holds reports whether h has a drain in progress.
func (d *drainSet) holds(h streamEnder) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.handlers[h] > 0
}

func (d *drainSet) removeHandler(h streamEnder) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.handlers[h]--; d.handlers[h] <= 0 {
		delete(d.handlers, h)
	}
}

func (d *drainSet) addHub(p pooledHub) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.hubs[p.Hub] = p
	d.watchLocked()
}

func (d *drainSet) removeHub(p pooledHub) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.hubs, p.Hub)
}

// retiredHubs returns the hubs being retired.
func (d *drainSet) retiredHubs() []pooledHub {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]pooledHub, 0, len(d.hubs))
	for _, p := range d.hubs {
		out = append(out, p)
	}
	return out
}

// endAll ends every drain at once.
func (d *drainSet) endAll() {
	d.mu.Lock()
	handlers := make([]streamEnder, 0, len(d.handlers))
	for h := range d.handlers {
		handlers = append(handlers, h)
	}
	d.mu.Unlock()
	for _, h := range handlers {
		h.endAll()
	}
	for _, p := range d.retiredHubs() {
		p.closeAll()
	}
}
