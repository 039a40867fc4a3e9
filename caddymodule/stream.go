package caddymodule

import (
	"context"
	"errors"
	"net/http"
	"os"
	"time"

	"go.uber.org/zap"

	"github.com/pollsse/caddy-poll-sse/hub"
	"github.com/pollsse/caddy-poll-sse/sse"
)

// serveStream subscribes the client to its loop and writes frames until the client
// leaves, a drain ends the stream, or the process exits.
func (h *Handler) serveStream(w http.ResponseWriter, r *http.Request, lp loop) error {
	format, err := h.requestFormat(r)
	if err != nil {
		return h.badFormat(w, r, err)
	}
	if r.Method == http.MethodHead {
		setStreamHeaders(w.Header())
		w.WriteHeader(http.StatusOK)
		return nil
	}
	lastID, _ := sse.ParseLastEventID(lastEventID(r))
	sub, err := h.hub.Subscribe(lp.key, lp.newSource, lastID, format)
	if errors.Is(err, hub.ErrTooManyTopics) || errors.Is(err, hub.ErrTooManySubscribers) {
		return h.unavailable(w, err)
	}
	if errors.Is(err, hub.ErrNoSource) {
		return h.tooManyClientLoops(w, err)
	}
	if errors.Is(err, hub.ErrClosed) {
		// This handler is being replaced by a reload, or stopped. An EventSource gives up
		// for good on an error status but retries a dropped connection, after which the
		// new handler serves it.
		panic(http.ErrAbortHandler)
	}
	if err != nil {
		return h.unavailable(w, err)
	}
	h.watchShutdown(r)
	h.track(sub)
	handedOver := false
	defer func() {
		if !handedOver {
			h.live.remove(sub)
			sub.Close()
		}
	}()
	setStreamHeaders(w.Header())
	rc := http.NewResponseController(w)
	var done bool
	if handedOver, done = h.startStream(w, rc, r, sub); done {
		return nil
	}
	ctx, cancel := h.streamContext(r)
	defer cancel()
	defer context.AfterFunc(h.streams, cancel)()
	h.pump(ctx, w, rc, r, sub)
	return nil
}

// startStream writes the response header and, over HTTP/1.x when w allows it, hands the
// connection to the hub: with a header it writes itself when no wrapper acts on the
// header, or else after the header and the first frames went out through w. It reports
// whether it handed the stream over, and whether the stream is done here, handed over or
// ended; a stream not done goes on through w.
func (h *Handler) startStream(w http.ResponseWriter, rc *http.ResponseController, r *http.Request, sub *hub.Subscription) (handedOver, done bool) {
	var hj http.Hijacker
	if r.ProtoMajor == 1 {
		hj = hijacker(w, false)
	}
	if hj == nil {
		w.WriteHeader(http.StatusOK)
		return false, false
	}
	// The body then ends when the connection closes, as the SSE specification
	// recommends, rather than being chunked: the hub writes frames as they are.
	w.Header().Set("Transfer-Encoding", "identity")
	if writesOwnHead(w, r) && h.handOverWithHead(w.Header(), r, sub, hj) {
		return true, true
	}
	w.WriteHeader(http.StatusOK)
	handedOver, ok := h.handOver(w, rc, r, sub, hj)
	return handedOver, handedOver || !ok
}

// handOver writes the first frames through w and then hands the connection to the hub,
// if every wrapper of w still passes bytes through unchanged (see handover.go). It
// reports whether it did, and whether the stream goes on through w when it did not.
// Those frames are ready when the subscription opens (the retry field at the least, and
// a catch-up computed once for all the clients resuming from the same version), so the
// request's context serves them: a stream handed over needs no context of its own.
func (h *Handler) handOver(w http.ResponseWriter, rc *http.ResponseController, r *http.Request, sub *hub.Subscription, hj http.Hijacker) (handedOver, ok bool) {
	if !h.next(r.Context(), w, rc, r, sub) {
		return false, false
	}
	if hijacker(w, true) == nil {
		return false, true
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return false, true
	}
	// From here on the stream belongs to the hub, which outlives this config when a
	// reload keeps the route (see drain.go).
	h.live.remove(sub)
	sub.ServeUntil(context.Background(), conn, expiryOf(r))
	return true, true
}

// handOverWithHead hands the connection to the hub before anything was written through
// net/http, with the response header for the hub's first write (see responsehead.go). It
// reports whether it did; when it did not, nothing was written.
func (h *Handler) handOverWithHead(hdr http.Header, r *http.Request, sub *hub.Subscription, hj http.Hijacker) bool {
	conn, _, err := hj.Hijack()
	if err != nil {
		return false
	}
	h.live.remove(sub)
	hub.ServeMulti(context.Background(), conn, hub.Multi{
		Subs:    []*hub.Subscription{sub},
		Expires: []time.Time{expiryOf(r)},
		Head:    appendResponseHead(make([]byte, 0, 512), hdr),
	})
	return true
}

// pump writes the subscription's frames through w until the client leaves or ctx ends.
func (h *Handler) pump(ctx context.Context, w http.ResponseWriter, rc *http.ResponseController, r *http.Request, sub *hub.Subscription) {
	for h.next(ctx, w, rc, r, sub) {
	}
}

// next writes the subscription's next frames through w, and reports whether the stream
// goes on.
func (h *Handler) next(ctx context.Context, w http.ResponseWriter, rc *http.ResponseController, r *http.Request, sub *hub.Subscription) bool {
	frames, err := sub.Next(ctx)
	if err != nil {
		h.writeExpired(w, rc, r)
		return false
	}
	if err := h.write(w, rc, frames); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			h.metrics.Slow(hub.SlowDisconnect)
		}
		h.logger.Debug("writing to client", zap.String("remote", r.RemoteAddr), zap.Error(err))
		return false
	}
	return true
}

// streamContext returns the context of a stream written through the ResponseWriter: it
// ends with the request, or when the route's max_connection_lifetime is up.
func (h *Handler) streamContext(r *http.Request) (context.Context, context.CancelFunc) {
	if d := h.hub.Lifetime(); d > 0 {
		return context.WithTimeout(r.Context(), d)
	}
	return context.WithCancel(r.Context())
}

func setStreamHeaders(hdr http.Header) {
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("X-Accel-Buffering", "no")
}

// write sends frames and flushes them. A client that cannot take them within the write
// timeout is disconnected; it resumes from its last event id.
func (h *Handler) write(w http.ResponseWriter, rc *http.ResponseController, frames [][]byte) error {
	if err := rc.SetWriteDeadline(time.Now().Add(h.writeTimeout())); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	for _, f := range frames {
		if _, err := w.Write(f); err != nil {
			return err
		}
	}
	return rc.Flush()
}

// writeTimeout is two heartbeats: a client that cannot take one in that time is gone.
func (h *Handler) writeTimeout() time.Duration {
	hb := time.Duration(h.Heartbeat)
	if hb <= 0 {
		hb = hub.DefaultHeartbeat
	}
	return 2 * hb
}

// lastEventID returns the version the client says it holds: the Last-Event-ID header, or
// the last_event_id query parameter for clients that cannot set headers.
func lastEventID(r *http.Request) string {
	if vs := r.Header[lastEventIDHeader]; len(vs) > 0 && vs[0] != "" {
		return vs[0]
	}
	return queryValue(r.URL.RawQuery, "last_event_id")
}

// lastEventIDHeader is Last-Event-ID as net/http keys it: looked up directly, the name is
// not canonicalized again, into a new string, on every request.
const lastEventIDHeader = "Last-Event-Id"
