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
	ctx, cancel := h.streamContext(r)
	defer cancel()
	defer context.AfterFunc(h.streams, cancel)()

	setStreamHeaders(w.Header())
	var hj http.Hijacker
	if r.ProtoMajor == 1 {
		hj = hijacker(w, false)
	}
	if hj != nil {
		// The body then ends when the connection closes, as the SSE specification
		// recommends, rather than being chunked: the hub writes frames as they are.
		w.Header().Set("Transfer-Encoding", "identity")
	}
	w.WriteHeader(http.StatusOK)
	handedOver = h.pump(ctx, w, r, sub, hj)
	return nil
}

// pump writes the subscription's frames through w until the client leaves or ctx ends.
// With hj, after the first frames it hands the connection to the hub instead, if every
// wrapper of w still passes bytes through unchanged (see handover.go), and reports that
// it did.
func (h *Handler) pump(ctx context.Context, w http.ResponseWriter, r *http.Request, sub *hub.Subscription, hj http.Hijacker) bool {
	rc := http.NewResponseController(w)
	for {
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
		if hj != nil && hijacker(w, true) != nil {
			if conn, _, err := hj.Hijack(); err == nil {
				// From here on the stream belongs to the hub, which outlives this
				// config when a reload keeps the route (see drain.go).
				h.live.remove(sub)
				sub.ServeUntil(context.Background(), conn, expiryOf(r))
				return true
			}
		}
		hj = nil
	}
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
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		return v
	}
	return queryValue(r.URL.RawQuery, "last_event_id")
}
