package caddymodule

import (
	"crypto/subtle"
	"errors"
	"net/http"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// pokeHeader carries the poke secret.
const pokeHeader = "Poll-SSE-Poke"

// servePoke makes the request's loop poll now: 204, or 403 without the right secret.
// Pokes faster than a poll completes coalesce into one extra poll.
func (h *Handler) servePoke(w http.ResponseWriter, r *http.Request) error {
	got := r.Header.Get(pokeHeader)
	if subtle.ConstantTimeCompare([]byte(got), []byte(h.Poke)) != 1 {
		return caddyhttp.Error(http.StatusForbidden, errors.New("wrong or missing poke secret"))
	}
	lp, err := h.loopFor(r)
	if err != nil {
		return caddyhttp.Error(http.StatusBadRequest, err)
	}
	h.hub.Poke(lp.key)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
