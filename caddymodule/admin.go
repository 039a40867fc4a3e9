package caddymodule

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/pollsse/caddy-poll-sse/hub"
)

func init() {
	caddy.RegisterModule(AdminLoops{})
}

// AdminLoops is the admin API route GET /poll_sse/loops, which describes every live poll
// loop: its route, upstream (credentials redacted), subscribers, last poll, version,
// history and backoff; and the drains in progress: the streams of each loop being
// drained, the loops of routes that a reload changed or removed, which poll no more and
// go once their streams have closed, and the streams being drained in all.
type AdminLoops struct{}

// CaddyModule returns the Caddy module information.
func (AdminLoops) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.poll_sse",
		New: func() caddy.Module { return new(AdminLoops) },
	}
}

// Routes returns the admin routes.
func (AdminLoops) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{Pattern: "/poll_sse/loops", Handler: caddy.AdminHandlerFunc(serveLoops)}}
}

// loopInfo is one loop as the admin route shows it.
type loopInfo struct {
	Route       string     `json:"route"`
	Upstream    string     `json:"upstream"`
	Forward     []string   `json:"forward"`
	Subscribers int        `json:"subscribers"`
	LastPoll    *time.Time `json:"last_poll,omitempty"`
	LastResult  string     `json:"last_result,omitempty"`
	LastError   string     `json:"last_error,omitempty"`
	Version     string     `json:"version,omitempty"`
	History     int        `json:"history"`
	Failures    int        `json:"failures"`
	NextPoll    *time.Time `json:"next_poll,omitempty"`
	UpstreamOK  bool       `json:"upstream_ok"`
	Leader      *bool      `json:"leader,omitempty"`
	// Draining counts the subscribers that a drain is to close.
	Draining int `json:"draining"`
	// Retired is set on a loop whose route a reload changed or removed: it polls no
	// more, and goes once its streams have been drained.
	Retired bool `json:"retired,omitempty"`
	// Views counts the loop's live views (client_select, filter), which Subscribers counts
	// as one subscriber each, whatever their streams; no view's identity is shown.
	Views int `json:"views,omitempty"`
}

func serveLoops(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("method %s not allowed", r.Method)}
	}
	loops := liveLoops()
	drainingNow := 0
	for _, l := range loops {
		drainingNow += l.Draining
	}
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(struct {
		Loops    []loopInfo `json:"loops"`
		Draining int        `json:"draining"`
	}{loops, drainingNow})
}

// liveLoops describes the loops of every hub in the pool, and of the hubs retiring,
// sorted by route and upstream, the live loop of each first.
func liveLoops() []loopInfo {
	loops := []loopInfo{}
	hubs.Range(func(_, v any) bool {
		if p, ok := v.(pooledHub); ok {
			loops = p.appendLoops(loops)
		}
		return true
	})
	for _, p := range draining.retiredHubs() {
		loops = p.appendLoops(loops)
	}
	slices.SortStableFunc(loops, func(a, b loopInfo) int {
		return cmp.Or(cmp.Compare(a.Route, b.Route), cmp.Compare(a.Upstream, b.Upstream))
	})
	return loops
}

// appendLoops appends the loops of the hub to loops.
func (p pooledHub) appendLoops(loops []loopInfo) []loopInfo {
	views := viewsByLoop(p.views)
	for _, ls := range p.Loops() {
		li := p.describe(ls)
		li.Views = views[ls.Key]
		loops = append(loops, li)
	}
	return loops
}

func (p pooledHub) describe(ls hub.LoopStatus) loopInfo {
	li := loopInfo{
		Route:       p.route,
		Upstream:    p.upstream,
		Forward:     append([]string{}, p.forward...),
		Subscribers: ls.Subscribers,
		Version:     ls.Version,
		History:     ls.History,
		UpstreamOK:  ls.Upstream.OK,
		Draining:    ls.Draining,
		Retired:     p.Retired(),
	}
	if src, ok := ls.Source.(interface{ Status() hub.PollStatus }); ok {
		st := src.Status()
		li.LastResult, li.LastError, li.Failures = st.LastResult, st.LastError, st.Failures
		li.LastPoll, li.NextPoll = timeOrNil(st.LastPoll), timeOrNil(st.NextPoll)
	}
	if src, ok := ls.Source.(interface{ Leader() bool }); ok {
		leader := src.Leader()
		li.Leader = &leader
	}
	return li
}

func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// Interface guard
var _ caddy.AdminRouter = AdminLoops{}
