package caddymodule

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/pollsse/caddy-poll-sse/hub"
	"github.com/pollsse/caddy-poll-sse/sse"
)

// serveStream subscribes the client to its loop and writes frames until the client
// leaves, the handler is cleaned up, or the server shuts down.
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
	if errors.Is(err, hub.ErrTooManyTopics) {
		return tooManyLoops(w, err)
	}
	if err != nil {
		return caddyhttp.Error(http.StatusServiceUnavailable, err)
	}
	defer sub.Close()
	h.watchShutdown(r)
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	defer context.AfterFunc(h.streams, cancel)()

	setStreamHeaders(w.Header())
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	for {
		frames, err := sub.Next(ctx)
		if err != nil {
			return nil
		}
		if err := h.write(w, rc, frames); err != nil {
			h.logger.Debug("writing to client", zap.String("remote", r.RemoteAddr), zap.Error(err))
			return nil
		}
	}
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
	return r.URL.Query().Get("last_event_id")
}

// watchShutdown makes the server that carries r end this handler's streams as soon as it
// begins to shut down: net/http's Shutdown would otherwise wait for them forever.
func (h *Handler) watchShutdown(r *http.Request) {
	srv, ok := r.Context().Value(http.ServerContextKey).(*http.Server)
	if !ok {
		return
	}
	if _, seen := h.servers.LoadOrStore(srv, struct{}{}); !seen {
		srv.RegisterOnShutdown(h.endStreams)
	}
}
