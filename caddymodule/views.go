package caddymodule

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/pollsse/caddy-poll-sse/diff"
	"github.com/pollsse/caddy-poll-sse/hub"
)

// Filter keeps the rows of an array whose member equals a request placeholder's value.
type Filter struct {
	// Array is an RFC 6901 JSON pointer, without `*` tokens, to the array in the upstream
	// document as received; it lies inside select.
	Array string `json:"array"`
	// Member names the member compared, e.g. "owner": a string by its value, a number by
	// its text.
	Member string `json:"member"`
	// Value is a request placeholder, such as {http.auth.user.id}, set by an
	// authentication module or from a header that a trusted proxy sets. A request for
	// which it is empty or unknown gets 403.
	Value string `json:"value"`
}

// Bounds of the views a route offers.
const (
	maxClientSelects   = 1000 // client_select patterns of a route
	maxViewPointer     = 1024 // bytes of a ?select= pointer or a pattern
	maxIdentityLength  = 1024 // bytes of a filter value
	viewLinger         = time.Nanosecond
	selectParam        = "select"
	viewKeySeparator   = " view "
	viewDigestBytes    = 16
	viewLoggerMinLevel = zapcore.ErrorLevel
)

func init() {
	subdirectives["client_select"] = func(h *Handler, d *caddyfile.Dispenser) error {
		return h.checkedAt(d, parseFields(d, &h.ClientSelect))
	}
	subdirectives["filter"] = (*Handler).parseFilter
	subdirectives["expires"] = func(h *Handler, d *caddyfile.Dispenser) error {
		return h.checkedAt(d, parseString(d, &h.Expires))
	}
}

// checkedAt returns err, or the error of checkViews at the current line.
func (h *Handler) checkedAt(d *caddyfile.Dispenser, err error) error {
	if err != nil {
		return err
	}
	if err := h.checkViews(); err != nil {
		return d.Errf("%v", err)
	}
	return nil
}

// parseFilter parses `filter <array-pointer> <member> <placeholder>`.
func (h *Handler) parseFilter(d *caddyfile.Dispenser) error {
	args := d.RemainingArgs()
	if len(args) != 3 {
		return d.Errf("filter: want <array-pointer> <member> <placeholder>, got %d argument(s)", len(args))
	}
	if h.Filter != nil {
		return d.Err("filter: given twice")
	}
	h.Filter = &Filter{Array: args[0], Member: args[1], Value: args[2]}
	return h.checkedAt(d, nil)
}

// viewsOn reports whether the route serves views: clients then never get the loop's
// document itself, only their view of it.
func (h *Handler) viewsOn() bool { return len(h.ClientSelect) > 0 || h.Filter != nil }

// rowFilter returns the filter with value, or nil without filter.
func (h *Handler) rowFilter(value string) *diff.RowFilter {
	if h.Filter == nil {
		return nil
	}
	return &diff.RowFilter{Array: h.Filter.Array, Member: h.Filter.Member, Value: value}
}

// checkViews checks client_select and filter against select, ignore and array_key.
func (h *Handler) checkViews() error {
	shape := h.diffOptions()
	if len(h.ClientSelect) > maxClientSelects {
		return fmt.Errorf("client_select: %d patterns, at most %d", len(h.ClientSelect), maxClientSelects)
	}
	if f := h.Filter; f != nil {
		if err := diff.CheckFilter(shape, *h.rowFilter("")); err != nil {
			return err
		}
		if !onePlaceholder(f.Value) {
			return fmt.Errorf("filter: %q must be a request placeholder, such as {http.auth.user.id}", f.Value)
		}
	}
	for _, p := range h.ClientSelect {
		if len(p) > maxViewPointer {
			return fmt.Errorf("client_select: a pattern is longer than %d bytes", maxViewPointer)
		}
		if err := diff.CheckViewPattern(shape, p, h.rowFilter("")); err != nil {
			return err
		}
	}
	if h.Expires != "" && !onePlaceholder(h.Expires) {
		return fmt.Errorf("expires: %q must be a request placeholder, such as {http.auth.user.exp}", h.Expires)
	}
	return nil
}

// newViewHub returns the hub of a route's views, configured like its loops' hub: a view
// stops as soon as its last client leaves (its loop lingers), it logs errors only (its
// loop logs the upstream's state), and it reports subscribers and events but neither
// loops nor polls to the route's metrics.
func newViewHub(cfg hub.Config) *hub.Hub {
	cfg.Linger = viewLinger
	cfg.MaxTopics = 0
	if cfg.Logger != nil {
		cfg.Logger = cfg.Logger.WithOptions(zap.IncreaseLevel(viewLoggerMinLevel))
	}
	if describe := cfg.Describe; describe != nil {
		cfg.Describe = func(key string) []zap.Field { return append(describe(key), zap.Bool("view", true)) }
	}
	if cfg.Observer != nil {
		cfg.Observer = viewObserver{cfg.Observer}
	}
	return hub.New(cfg)
}

// viewObserver passes what a hub of views does to the route's observer, leaving out loops
// and polls: a view is neither.
type viewObserver struct{ hub.Observer }

func (viewObserver) Loops(int)                  {}
func (viewObserver) Poll(string, time.Duration) {}
func (viewObserver) Diff(time.Duration)         {}

// errDenied answers a request whose forwarded credentials the upstream refused.
var errDenied = errors.New("the upstream refused these credentials")

// errNoIdentity answers a request without the filter's value.
var errNoIdentity = errors.New("filter: the request carries no identity")

// viewFor returns the view of loop lp that r asks for and may see, with a hold on lp's
// loop that keeps it from stopping until release is called. Its error is the response.
func (h *Handler) viewFor(w http.ResponseWriter, r *http.Request, lp loop) (view loop, release func(), err error) {
	sel, err := h.requestSelect(r)
	if err != nil {
		return loop{}, nil, caddyhttp.Error(http.StatusBadRequest, err)
	}
	value := ""
	if h.Filter != nil {
		if value = h.identity(r); value == "" {
			return loop{}, nil, caddyhttp.Error(http.StatusForbidden, errNoIdentity)
		}
	}
	v, err := diff.NewView(h.shape, sel, h.rowFilter(value))
	if err != nil {
		return loop{}, nil, caddyhttp.Error(http.StatusBadRequest, err)
	}
	hold, err := hub.HoldLoop(h.loops, lp.key, lp.newSource)
	if err != nil {
		return loop{}, nil, h.loopRefused(w, err)
	}
	key := lp.key + viewKeySeparator + h.viewDigest(sel, value)
	newSource := func() hub.Source { return hold.Source(v) }
	if h.clients != nil && h.wildSelect(sel) {
		newSource = h.clients.limit(clientAddress(r), h.MaxLoopsPerClient, newSource)
	}
	return loop{key: key, newSource: newSource}, hold.Release, nil
}

// wildSelect reports whether the part sel of a view was allowed by a client_select
// pattern with a `*` only, not listed as it is. Clients choose what such a pattern
// matches without bound, so each such view a client starts counts toward
// max_loops_per_client as a loop does; listed parts and filter identities are bounded
// by the list and by who can authenticate.
func (h *Handler) wildSelect(sel string) bool {
	return len(h.ClientSelect) > 0 && !slices.Contains(h.ClientSelect, sel)
}

// loopRefused answers a request whose loop could not start.
func (h *Handler) loopRefused(w http.ResponseWriter, err error) error {
	switch {
	case errors.Is(err, hub.ErrNoSource):
		return h.tooManyClientLoops(w, err)
	case errors.Is(err, hub.ErrClosed):
		panic(http.ErrAbortHandler) // the handler is being replaced: the client retries
	default:
		return h.unavailable(w, err)
	}
}

// viewDigest identifies a view within its loop without holding the client's identity.
func (h *Handler) viewDigest(sel, value string) string {
	sum := sha256.New()
	for _, s := range []string{sel, value, fmt.Sprint(h.Filter != nil)} {
		fmt.Fprintf(sum, "%d\x00%s", len(s), s)
	}
	if f := h.Filter; f != nil {
		fmt.Fprintf(sum, "%d\x00%s%d\x00%s", len(f.Array), f.Array, len(f.Member), f.Member)
	}
	return hex.EncodeToString(sum.Sum(nil)[:viewDigestBytes])
}

// requestSelect returns the pointer r chose with ?select=, which client_select must
// allow, or the route's select when the route offers no choice.
func (h *Handler) requestSelect(r *http.Request) (string, error) {
	if len(h.ClientSelect) == 0 {
		return h.Select, nil
	}
	vals := r.URL.Query()[selectParam]
	switch {
	case len(vals) == 0:
		return "", errors.New("choose the part to stream with ?select=<json-pointer>")
	case len(vals) > 1:
		return "", errors.New("?select= given more than once")
	case len(vals[0]) > maxViewPointer:
		return "", fmt.Errorf("?select= is longer than %d bytes", maxViewPointer)
	}
	for _, p := range h.ClientSelect {
		if diff.MatchPattern(p, vals[0]) {
			return vals[0], nil
		}
	}
	return "", fmt.Errorf("?select=%q is not allowed on this route", vals[0])
}

// identity returns the filter's value for r: "" when it is unknown, empty or too long.
func (h *Handler) identity(r *http.Request) string {
	repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if repl == nil {
		return ""
	}
	v := repl.ReplaceAll(h.Filter.Value, "")
	if len(v) > maxIdentityLength {
		return ""
	}
	return v
}

// onePlaceholder reports whether s is one placeholder and nothing else: a value with
// literal text around the placeholder would not be empty when the placeholder is.
func onePlaceholder(s string) bool {
	return len(s) > 2 && s[0] == '{' && s[len(s)-1] == '}' && strings.Count(s, "{") == 1 && strings.Count(s, "}") == 1
}

// viewsByLoop counts the live views of a hub of views by the key of their loop.
func viewsByLoop(views *hub.Hub) map[string]int {
	n := make(map[string]int)
	if views == nil {
		return n
	}
	for _, ls := range views.Loops() {
		if loopKey, _, ok := strings.Cut(ls.Key, viewKeySeparator); ok {
			n[loopKey]++
		}
	}
	return n
}
