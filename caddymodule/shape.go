package caddymodule

import (
	"fmt"
	"net/http"

	"go.uber.org/zap"

	"github.com/pollsse/caddy-poll-sse/diff"
	"github.com/pollsse/caddy-poll-sse/hub"
)

// ArrayKey matches the elements of the arrays at Pointer by their member Member.
type ArrayKey struct {
	// Pointer is an RFC 6901 JSON pointer to the array in the upstream document as
	// received; a `*` token matches every array element or object member.
	Pointer string `json:"pointer"`
	// Member names the member that identifies an element, e.g. "id".
	Member string `json:"member"`
}

// provisionShape sets the default format and the document shape each loop's tracker gets.
func (h *Handler) provisionShape() error {
	f, shape, err := h.checkShape()
	if err != nil {
		return err
	}
	h.format, h.shape = f, shape
	return nil
}

// checkShape parses format and checks select, ignore and array_key together.
func (h *Handler) checkShape() (hub.Format, diff.Options, error) {
	f := hub.JSONPatch
	if h.Format != "" {
		var err error
		if f, err = hub.ParseFormat(h.Format); err != nil {
			return 0, diff.Options{}, fmt.Errorf("format: %w", err)
		}
	}
	shape := h.diffOptions()
	if _, err := diff.NewTracker(shape); err != nil {
		return 0, diff.Options{}, err
	}
	return f, shape, nil
}

func (h *Handler) diffOptions() diff.Options {
	o := diff.Options{Select: h.Select, Ignore: h.Ignore}
	for _, k := range h.ArrayKeys {
		o.ArrayKeys = append(o.ArrayKeys, diff.ArrayKey{Pointer: k.Pointer, Member: k.Member})
	}
	return o
}

// requestFormat returns the format the client asks for with ?format=, or the route's.
func (h *Handler) requestFormat(r *http.Request) (hub.Format, error) {
	v := queryValue(r.URL.RawQuery, "format")
	if v == "" {
		return h.format, nil
	}
	return hub.ParseFormat(v)
}

// badFormat answers a request for an unknown format with 400 and a message saying which
// formats there are; the stream does not start.
func (h *Handler) badFormat(w http.ResponseWriter, r *http.Request, err error) error {
	h.logger.Debug("refusing stream", zap.String("remote", r.RemoteAddr), zap.Error(err))
	http.Error(w, err.Error(), http.StatusBadRequest)
	return nil
}
