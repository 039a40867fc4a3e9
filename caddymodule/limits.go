package caddymodule

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/pollsse/caddy-poll-sse/hub"
)

// routeHub is a route's view of its pooled hub: the loops and history it shares with
// every route of the same settings, and the limits of this route alone. Provision builds
// it without changing the hub, so a config that fails to load changes no live route, and
// two routes sharing a hub each keep their max_subscribers and max_connection_lifetime.
type routeHub struct {
	*hub.Hub
	limits hub.Limits
}

// Subscribe joins the topic for key, counting the subscription against the route's cap.
func (r *routeHub) Subscribe(key string, newSource func() hub.Source, lastEventID string, format hub.Format) (*hub.Subscription, error) {
	return r.SubscribeLimited(key, newSource, lastEventID, format, r.limits)
}

// Lifetime returns how long a stream of the route opened now may live; 0 for ever.
func (r *routeHub) Lifetime() time.Duration { return r.limits.Lifetime() }

// routeSlots holds the count of open streams of every route across config loads, so that
// the streams a route holds when it is reloaded still count against its cap. A route is
// known by its hub's key and its place among the routes of its config that share that
// hub: the second of two identical routes keeps its own count.
var routeSlots = caddy.NewUsagePool()

// pooledSlots is a route's stream count in routeSlots.
type pooledSlots struct{ *hub.Slots }

func (pooledSlots) Destruct() error { return nil }

// provisionLimits gives the handler its route's limits over the pooled hub p.
func (h *Handler) provisionLimits(ctx context.Context, p *hub.Hub, hubKey string) error {
	key := hubKey + "#" + strconv.Itoa(loads.place(ctx, hubKey))
	val, _, err := routeSlots.LoadOrNew(key, func() (caddy.Destructor, error) {
		return pooledSlots{new(hub.Slots)}, nil
	})
	if err != nil {
		return err
	}
	h.slotsKey = key
	h.hub = &routeHub{Hub: p, limits: hub.Limits{
		Slots:          val.(pooledSlots).Slots,
		MaxSubscribers: h.MaxSubscribers,
		MaxLifetime:    time.Duration(h.MaxConnectionLifetime),
		Drain:          h.drainWindow(),
	}}
	return nil
}

// loads numbers the routes of each config load that share a hub, in the order Caddy
// provisions them, which is the config's order. Each load's numbers are forgotten when
// its context ends, as the config is unloaded.
var loads = &loadPlaces{seen: make(map[context.Context]map[string]int)}

type loadPlaces struct {
	mu   sync.Mutex
	seen map[context.Context]map[string]int // config context → hub key → routes so far
}

// place returns how many routes of the config of ctx were given hubKey before this one.
func (l *loadPlaces) place(ctx context.Context, hubKey string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	m, ok := l.seen[ctx]
	if !ok {
		m = make(map[string]int)
		l.seen[ctx] = m
		context.AfterFunc(ctx, func() { l.forget(ctx) })
	}
	n := m[hubKey]
	m[hubKey] = n + 1
	return n
}

func (l *loadPlaces) forget(ctx context.Context) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.seen, ctx)
}
