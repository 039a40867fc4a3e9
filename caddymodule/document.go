package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/pollsse/caddy-poll-sse/hub"
)

// wantsJSON reports whether the Accept header asks for JSON only, and not for an event
// stream: every media range it accepts is a JSON type.
func wantsJSON(accept []string) bool {
	seen := false
	for _, field := range accept {
		for rest, more := field, true; more; {
			var rng string
			rng, rest, more = strings.Cut(rest, ",")
			mt, accepted, ok := mediaRange(rng)
			if !ok || !accepted {
				continue
			}
			if mt != "application/json" && !strings.HasSuffix(mt, "+json") {
				return false
			}
			seen = true
		}
	}
	return seen
}

// serveDocument answers a plain poller with the loop's latest document, from the cache,
// starting the loop if none runs; a long-poller goes to serveLongPoll. The ETag is the
// version id. A wait for the first poll ends at once when the process exits, as streams
// do.
func (h *Handler) serveDocument(w http.ResponseWriter, r *http.Request, lp loop) error {
	if req, ok := longPollOf(r); ok {
		return h.serveLongPoll(w, r, lp, req)
	}
	ctx, cancel := context.WithTimeout(r.Context(), time.Duration(h.Timeout)+time.Second)
	defer cancel()
	defer context.AfterFunc(h.streams, cancel)()
	v, st, err := h.hub.Document(ctx, lp.key, lp.newSource)
	switch {
	case errors.Is(err, hub.ErrTooManyTopics):
		return tooManyLoops(w, err)
	case errors.Is(err, hub.ErrNoSource):
		return h.tooManyClientLoops(w, err)
	case err != nil:
		return h.unavailable(w, err)
	case v == nil:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadGateway)
		return json.NewEncoder(w).Encode(st)
	}
	etag := `"` + v.ID + `"`
	hdr := w.Header()
	hdr.Set("ETag", etag)
	hdr.Set("Cache-Control", "no-cache")
	if inm := r.Header.Get("If-None-Match"); inm == etag || inm == "*" || strings.Contains(inm, etag) {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	hdr.Set("Content-Type", "application/json")
	hdr.Set("Content-Length", strconv.Itoa(len(v.JSON)))
	if r.Method == http.MethodHead {
		return nil
	}
	_, err = w.Write(v.JSON)
	return err
}

// tooManyLoops answers 503 with Retry-After when the route's loop cap is reached.
func tooManyLoops(w http.ResponseWriter, err error) error {
	w.Header().Set("Retry-After", "5")
	return caddyhttp.Error(http.StatusServiceUnavailable, err)
}
