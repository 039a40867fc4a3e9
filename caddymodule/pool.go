package caddymodule

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/pollsse/caddy-poll-sse/hub"
	"github.com/pollsse/caddy-poll-sse/redisstore"
)

// hubs holds the hubs of all routes across config loads, keyed by the settings that
// define them. A reload that keeps a route's settings hands the new handler the same hub,
// with its poll loops, versions, history and the streams it serves; when no config uses
// the hub any more it retires, draining its streams (see drain.go).
var hubs = caddy.NewUsagePool()

// pooledHub is a route's hub in the pool, with what the admin API tells of it.
type pooledHub struct {
	*hub.Hub
	views   *hub.Hub // the route's views, fed by the loops of Hub
	route   string
	forward []string
	metrics *routeMetrics
	redis   *redisstore.Store // nil for the memory store
	clients *clientLoops
	client  *routeClient // shared by the loops, across reloads
	// upstream is the route's upstream URL as logs and the admin API show it.
	upstream string
	// drain is the window the hub's streams are drained over when it retires: that of
	// the last config that let go of it.
	drain *atomic.Int64
}

// Destruct retires the hub, or closes it at once when the process exits.
func (p pooledHub) Destruct() error {
	if caddy.Exiting() {
		p.closeAll()
		return p.closeStore()
	}
	draining.addHub(p)
	window := time.Duration(p.drain.Load())
	p.views.Retire(window, nil)
	p.Retire(window, func() {
		draining.removeHub(p)
		_ = p.closeStore() // closing a client that is done with: nothing to do about an error
	})
	return nil
}

// closeAll closes the hub and its views' hub at once.
func (p pooledHub) closeAll() {
	p.views.Close()
	p.Close()
}

// closeStore closes the hub's Redis client, if it has one.
func (p pooledHub) closeStore() error {
	if p.redis != nil {
		return p.redis.Client.Close()
	}
	return nil
}

func (h *Handler) provisionHub(ctx caddy.Context) error {
	if err := registerMetrics(ctx.GetMetricsRegistry()); err != nil {
		return fmt.Errorf("registering metrics: %w", err)
	}
	key, err := h.settingsKey()
	if err != nil {
		return err
	}
	route := h.routeName()
	upstream := redactURL(h.Upstream)
	val, _, err := hubs.LoadOrNew(key, func() (caddy.Destructor, error) {
		m := newRouteMetrics(route)
		clients := newClientLoops()
		history := h.History
		if history <= 0 {
			history = hub.DefaultHistory
		}
		drain := new(atomic.Int64)
		drain.Store(int64(h.drainWindow()))
		cfg := hub.Config{
			History:      h.History,
			HistoryBytes: h.HistorySize,
			Heartbeat:    time.Duration(h.Heartbeat),
			Retry:        time.Duration(h.Retry),
			Linger:       time.Duration(h.Linger),
			MaxTopics:    h.MaxUpstreams,
			Logger:       h.logger,
			Describe:     func(string) []zap.Field { return describeLoop(route, upstream) },
			Observer:     m,
			Stopped:      clients.stopped,
		}
		return pooledHub{Hub: hub.New(cfg), views: newViewHub(cfg), route: route, forward: h.Forward, metrics: m,
			redis: h.Store.redisStore(history, h.HistorySize, h.transportID), clients: clients, upstream: upstream, drain: drain,
			client: newRouteClient(h.oauth2)}, nil
	})
	if err != nil {
		return err
	}
	p := val.(pooledHub)
	h.hubKey, h.pooled, h.metrics, h.redis, h.clients, h.loops = key, p, p.metrics, p.redis, p.clients, p.Hub
	h.attachTransport(p.client)
	served := p.Hub
	if h.viewsOn() {
		served = p.views
	}
	return h.provisionLimits(ctx.Context, served, key)
}

// routeName returns the route's label: its name, or the upstream's scheme and host.
func (h *Handler) routeName() string {
	if h.Name != "" {
		return h.Name
	}
	u, err := url.Parse(h.Upstream)
	if err != nil {
		return "poll_sse"
	}
	return u.Scheme + "://" + u.Host
}

// describeLoop returns the log fields of a loop: the route and its upstream, upstream
// being the redacted URL template (see redactURL). Nothing that a request put into the
// loop's URL or headers is logged: not a placeholder's value, not the digest of forwarded
// values.
func describeLoop(route, upstream string) []zap.Field {
	return []zap.Field{zap.String("route", route), zap.String("upstream", upstream)}
}

// redactURL returns the configured upstream URL as logs and the admin API show it: its
// path as written, with any placeholder by its name and never a value, the userinfo
// password hidden, and every query value REDACTED, since configured values may be
// credentials and placeholder values come from requests. The fragment is left out.
func redactURL(raw string) string {
	rest, _, _ := strings.Cut(raw, "#")
	rest, query, hasQuery := strings.Cut(rest, "?")
	scheme, after, ok := strings.Cut(rest, "://")
	if !ok {
		return "(unparsable upstream URL)"
	}
	authority, path, hasPath := strings.Cut(after, "/")
	if at := strings.LastIndexByte(authority, '@'); at >= 0 {
		if user, _, hasPassword := strings.Cut(authority[:at], ":"); hasPassword {
			authority = user + ":xxxxx" + authority[at:]
		}
	}
	out := scheme + "://" + authority
	if hasPath {
		out += "/" + path
	}
	if hasQuery {
		out += "?" + redactQuery(query)
	}
	return out
}

// redactQuery keeps the names of a raw query and replaces every value with REDACTED.
func redactQuery(query string) string {
	var pairs []string
	for pair := range strings.SplitSeq(query, "&") {
		if name, _, _ := strings.Cut(pair, "="); name != "" {
			pairs = append(pairs, name+"=REDACTED")
		}
	}
	return strings.Join(pairs, "&")
}

// keySalt makes settings keys digests that mean nothing outside this process.
var keySalt = func() []byte {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return b
}()

// settingsKey identifies a hub by everything that shapes its loops and streams, with
// placeholders resolved: a credential rotated in its file or variable gives a new key at
// the next reload, so the route gets new loops that send it. It is a keyed digest, so
// credentials never appear in it. A change to client_select, filter or expires gives a
// new key too, so that no stream goes on under the views it was opened with. Format is
// left out: a hub serves every format, and each client's is chosen per request; so are
// max_subscribers and max_connection_lifetime, which belong to the route (see routeHub).
func (h *Handler) settingsKey() (string, error) {
	b, err := json.Marshal(struct {
		Upstream                 string
		Interval, Timeout        caddy.Duration
		HeaderUp                 map[string][]string
		History                  int
		HistorySize              int64
		Heartbeat, Retry, Linger caddy.Duration
		Method, Body             string
		Forward                  []string
		MaxBody                  int64
		MaxUpstreams             int
		Select                   string
		Ignore                   []string
		ArrayKeys                []ArrayKey
		Name                     string
		Store                    any
		Transport                string
		ClientSelect             []string
		Filter                   *Filter
		Expires                  string
	}{h.Upstream, h.Interval, h.Timeout, h.poll.Header, h.History, h.HistorySize, h.Heartbeat, h.Retry, h.Linger,
		h.Method, h.Body, h.Forward, h.MaxBody, h.MaxUpstreams, h.Select, h.Ignore, h.ArrayKeys, h.Name, h.Store.keyed(),
		h.transportID, h.ClientSelect, h.Filter, h.Expires})
	if err != nil {
		return "", fmt.Errorf("hashing settings: %w", err)
	}
	mac := hmac.New(sha256.New, keySalt)
	mac.Write(b)
	return hex.EncodeToString(mac.Sum(nil)), nil
}
