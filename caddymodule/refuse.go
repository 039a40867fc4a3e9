package caddymodule

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/pollsse/caddy-poll-sse/hub"
)

// setRetryAfter sets Retry-After to the route's retry delay, in whole seconds, one at
// least.
func (h *Handler) setRetryAfter(w http.ResponseWriter) {
	retry := time.Duration(h.Retry)
	if retry <= 0 {
		retry = hub.DefaultRetry
	}
	w.Header().Set("Retry-After", strconv.Itoa(int(max(retry.Round(time.Second), time.Second)/time.Second)))
}

// unavailable answers 503 with Retry-After: every 503 of the route tells the client when
// to come back.
func (h *Handler) unavailable(w http.ResponseWriter, err error) error {
	h.setRetryAfter(w)
	return caddyhttp.Error(http.StatusServiceUnavailable, err)
}

// tooManyClientLoops answers 429 with Retry-After to a client that would start more
// loops than max_loops_per_client.
func (h *Handler) tooManyClientLoops(w http.ResponseWriter, err error) error {
	h.setRetryAfter(w)
	return caddyhttp.Error(http.StatusTooManyRequests, fmt.Errorf("client runs max_loops_per_client (%d) loops: %w", h.MaxLoopsPerClient, err))
}
