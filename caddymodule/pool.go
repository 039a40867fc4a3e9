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
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/pollsse/caddy-poll-sse/hub"
)

// hubs holds the hubs of all routes across config loads, keyed by the settings that
// define them. A reload that keeps a route's settings hands the new handler the same hub,
// with its poll loops, versions and history; the hub stops when no config uses it.
var hubs = caddy.NewUsagePool()

// pooledHub is a route's hub in the pool, with what the admin API tells of it.
type pooledHub struct {
	*hub.Hub
	route   string
	forward []string
	metrics *routeMetrics
	redis   *hub.RedisStore // nil for the memory store
}

func (p pooledHub) Destruct() error {
	p.Close()
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
	val, _, err := hubs.LoadOrNew(key, func() (caddy.Destructor, error) {
		m := newRouteMetrics(route)
		history := h.History
		if history <= 0 {
			history = hub.DefaultHistory
		}
		return pooledHub{Hub: hub.New(hub.Config{
			History:   h.History,
			Heartbeat: time.Duration(h.Heartbeat),
			Retry:     time.Duration(h.Retry),
			Linger:    time.Duration(h.Linger),
			MaxTopics: h.MaxUpstreams,
			Logger:    h.logger,
			Describe:  func(key string) []zap.Field { return describeLoop(route, key) },
			Observer:  m,
		}), route: route, forward: h.Forward, metrics: m, redis: h.Store.redisStore(history)}, nil
	})
	if err != nil {
		return err
	}
	p := val.(pooledHub)
	h.hubKey, h.metrics, h.redis = key, p.metrics, p.redis
	return h.provisionLimits(ctx.Context, p.Hub, key)
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

// describeLoop returns the log fields of the loop with key: the route and the upstream
// with its credentials redacted. The digest of forwarded values is left out.
func describeLoop(route, key string) []zap.Field {
	return []zap.Field{zap.String("route", route), zap.String("upstream", redactURL(loopURL(key)))}
}

// loopURL returns the upstream URL of a loop key (see loop.key).
func loopURL(key string) string {
	u, _, _ := strings.Cut(key, " ")
	return u
}

// redactURL hides the credentials a URL may carry: the userinfo password and every query
// value.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		u, err = url.Parse(strings.NewReplacer("{", "", "}", "").Replace(raw))
	}
	if err != nil {
		return "(unparsable upstream URL)"
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
	}
	q := u.Query()
	for k := range q {
		q[k] = []string{"REDACTED"}
	}
	u.RawQuery = q.Encode()
	return u.String()
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
// credentials never appear in it. Format is left out: a hub serves every format, and each
// client's is chosen per request; so are max_subscribers and max_connection_lifetime,
// which belong to the route (see routeHub).
func (h *Handler) settingsKey() (string, error) {
	b, err := json.Marshal(struct {
		Upstream                 string
		Interval, Timeout        caddy.Duration
		HeaderUp                 map[string][]string
		History                  int
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
	}{h.Upstream, h.Interval, h.Timeout, h.poll.Header, h.History, h.Heartbeat, h.Retry, h.Linger,
		h.Method, h.Body, h.Forward, h.MaxBody, h.MaxUpstreams, h.Select, h.Ignore, h.ArrayKeys, h.Name, h.Store.keyed()})
	if err != nil {
		return "", fmt.Errorf("hashing settings: %w", err)
	}
	mac := hmac.New(sha256.New, keySalt)
	mac.Write(b)
	return hex.EncodeToString(mac.Sum(nil)), nil
}
