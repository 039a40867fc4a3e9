package caddymodule

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// pokeHeader carries the poke secret.
const pokeHeader = "Poll-SSE-Poke"

// provisionPoke resolves the placeholders of the poke secret ({env.*}, {file.*}) and keeps
// its digest. A placeholder that is unknown, or resolves to nothing, is an error: the
// secret is never empty, and never the placeholder's own text.
func (h *Handler) provisionPoke() error {
	if h.Poke == "" {
		return nil
	}
	secret, err := caddy.NewReplacer().ReplaceOrErr(h.Poke, true, true)
	if err != nil {
		return fmt.Errorf("poke: %w", err)
	}
	if secret == "" {
		return errors.New("poke: the secret is empty")
	}
	h.pokeDigest = sha256.Sum256([]byte(secret))
	return nil
}

// pokeAllowed reports whether r carries the poke secret. Digests of equal length are
// compared in constant time, so the comparison tells neither the secret nor its length.
func (h *Handler) pokeAllowed(r *http.Request) bool {
	got := sha256.Sum256([]byte(r.Header.Get(pokeHeader)))
	return subtle.ConstantTimeCompare(got[:], h.pokeDigest[:]) == 1
}

// servePoke makes the request's loop poll soon: 204, or 403 without the right secret.
// The poller decides when: never before the end of a backoff or a Retry-After, and at
// most once per poller.MinPokeGap; pokes in between coalesce into one poll.
func (h *Handler) servePoke(w http.ResponseWriter, r *http.Request) error {
	if !h.pokeAllowed(r) {
		return caddyhttp.Error(http.StatusForbidden, errors.New("wrong or missing poke secret"))
	}
	lp, err := h.loopFor(r)
	if err != nil {
		return caddyhttp.Error(http.StatusBadRequest, err)
	}
	h.loops.Poke(lp.key)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
