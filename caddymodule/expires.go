package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/pollsse/caddy-poll-sse/hub"
)

// expiryKey holds, in a request's context, when its stream must be closed.
type expiryKey struct{}

// errExpired answers a request whose expires value is missing, unreadable or past: the
// client must authenticate again.
var errExpired = errors.New("expires: the request's access has expired or carries no expiry")

// withExpiry returns r with the moment its stream must end, from the route's expires
// placeholder, in its context: the request context ends then, and so does a stream handed
// over to the hub (see expiryOf). A value that is missing, unreadable or not in the
// future is a 401 error, and release is nil.
func (h *Handler) withExpiry(r *http.Request) (*http.Request, context.CancelFunc, error) {
	if h.Expires == "" {
		return r, func() {}, nil
	}
	repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if repl == nil {
		return nil, nil, caddyhttp.Error(http.StatusUnauthorized, errExpired)
	}
	at, err := parseExpiry(repl.ReplaceAll(h.Expires, ""))
	if err != nil || !at.After(time.Now()) {
		return nil, nil, caddyhttp.Error(http.StatusUnauthorized, errExpired)
	}
	ctx, cancel := context.WithDeadline(context.WithValue(r.Context(), expiryKey{}, at), at)
	return r.WithContext(ctx), cancel, nil
}

// parseExpiry reads a Unix time in seconds (a fraction allowed) or an RFC 3339 time.
func parseExpiry(v string) (time.Time, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return time.Time{}, errors.New("empty")
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	secs, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(secs) || math.IsInf(secs, 0) || secs <= 0 || secs > 1<<40 {
		return time.Time{}, fmt.Errorf("%q is neither Unix seconds nor RFC 3339", v)
	}
	whole, frac := math.Modf(secs)
	return time.Unix(int64(whole), int64(frac*1e9)), nil
}

// expiryOf returns when r's access expires: zero when the route has no expires.
func expiryOf(r *http.Request) time.Time {
	at, _ := r.Context().Value(expiryKey{}).(time.Time)
	return at
}

// writeExpired ends a stream written through w with hub.ExpiredFrame when r's access has
// expired, so that the client knows not to come back with the same credentials.
func (h *Handler) writeExpired(w http.ResponseWriter, rc *http.ResponseController, r *http.Request) {
	if at := expiryOf(r); !at.IsZero() && !time.Now().Before(at) {
		_ = h.write(w, rc, [][]byte{hub.ExpiredFrame(at)})
	}
}
