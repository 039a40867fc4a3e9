package caddymodule

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"

	"github.com/caddyserver/caddy/v2"

	"github.com/pollsse/caddy-poll-sse/diff"
	"github.com/pollsse/caddy-poll-sse/hub"
	"github.com/pollsse/caddy-poll-sse/poller"
	"github.com/pollsse/caddy-poll-sse/redisstore"
)

// loop is the poll loop a request belongs to.
type loop struct {
	// key is the expanded upstream URL and a digest of the forwarded header values, so
	// clients with different credentials never share a loop, and no credential appears in
	// a key.
	key       string
	newSource func() hub.Source
	// poll is what the loop polls with: its URL, method, body and headers.
	poll poller.Config
}

func (h *Handler) loopFor(r *http.Request) (loop, error) {
	if h.fixed != nil {
		lp := *h.fixed
		lp.newSource = h.limited(r, lp.newSource)
		return lp, nil
	}
	url := h.poll.URL
	if h.upstream.dynamic() {
		repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
		if repl == nil {
			repl = caddy.NewReplacer()
		}
		var err error
		if url, err = h.upstream.expand(repl); err != nil {
			return loop{}, err
		}
	}
	fwd, digest := h.forwarded(r)
	lp := h.loopOf(url, fwd, digest)
	lp.newSource = h.limited(r, lp.newSource)
	return lp, nil
}

// fixedLoop returns the one loop of a route whose upstream has no placeholder and that
// forwards no client header, built once instead of for every request; nil for another
// route. It is called at the end of Provision.
func (h *Handler) fixedLoop() *loop {
	if h.upstream.dynamic() || len(h.Forward) > 0 {
		return nil
	}
	lp := h.loopOf(h.poll.URL, nil, "")
	return &lp
}

// loopOf returns the loop polling url with the forwarded headers fwd, whose digest is
// digest, before the client's cap on the loops it starts applies.
func (h *Handler) loopOf(url string, fwd http.Header, digest string) loop {
	cfg := h.poll
	cfg.URL = url
	if len(fwd) > 0 {
		cfg.Header = cfg.Header.Clone()
		for k, vs := range fwd {
			cfg.Header[k] = vs
		}
	}
	shape := h.shape
	key := url + " " + digest
	if h.transportID != "" {
		key += " " + h.transportID // loops of routes reaching the upstream differently never meet in a store
	}
	perIdentity := len(h.Forward) > 0
	newSource := func() hub.Source { return newPollSource(cfg, shape, perIdentity) }
	if rs := h.redis; rs != nil {
		newSource = func() hub.Source { return newRedisSource(rs, cfg, shape) }
	}
	return loop{key: key, newSource: newSource, poll: cfg}
}

// limited wraps newSource in the cap on the loops r's client starts. The client's address
// is worked out only when a loop is started, which a client joining a running one never
// does.
func (h *Handler) limited(r *http.Request, newSource func() hub.Source) func() hub.Source {
	if h.clients == nil {
		return newSource
	}
	return func() hub.Source {
		return h.clients.limit(clientAddress(r), h.MaxLoopsPerClient, newSource)()
	}
}

// forwarded returns the client headers named by forward, and a digest of them.
func (h *Handler) forwarded(r *http.Request) (http.Header, string) {
	if len(h.Forward) == 0 {
		return nil, ""
	}
	out := make(http.Header, len(h.Forward))
	sum := sha256.New()
	for _, name := range h.Forward {
		vs := r.Header.Values(name)
		if len(vs) > 0 {
			out[http.CanonicalHeaderKey(name)] = vs
		}
		fmt.Fprintf(sum, "%s\x00%d\x00", http.CanonicalHeaderKey(name), len(vs))
		for _, v := range vs {
			fmt.Fprintf(sum, "%d\x00%s", len(v), v)
		}
	}
	return out, hex.EncodeToString(sum.Sum(nil)[:16])
}

// newRedisSource starts the source of a loop shared through Redis, with a tracker of its
// own. Its Redis keys follow from cfg, which holds everything the loop sends upstream:
// the URL after placeholders, the method and body, the header_up values as resolved and
// the forwarded values.
func newRedisSource(rs *redisstore.Store, cfg poller.Config, shape diff.Options) hub.Source {
	tr, err := diff.NewTracker(shape)
	if err != nil {
		panic(fmt.Sprintf("select, ignore and array_key checked at provision: %v", err))
	}
	return rs.Source(cfg, tr)
}

// newPollSource starts the source of a new poll loop, with its own poller and tracker.
// Both configs were checked in Provision; the poller's differs only in URL and headers,
// which cannot make it invalid. A loop that polls with a client's forwarded credentials
// stops at once when the upstream refuses them.
func newPollSource(cfg poller.Config, shape diff.Options, perIdentity bool) hub.Source {
	p, err := poller.New(cfg)
	if err != nil {
		panic(fmt.Sprintf("poller config checked at provision: %v", err))
	}
	tr, err := diff.NewTracker(shape)
	if err != nil {
		panic(fmt.Sprintf("select, ignore and array_key checked at provision: %v", err))
	}
	src := hub.NewPollSource(p, tr)
	if perIdentity {
		src.StopOnDenied()
	}
	return src
}
