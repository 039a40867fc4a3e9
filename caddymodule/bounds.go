package caddymodule

import (
	"fmt"
	"strings"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/caddyserver/caddy/v2"

	"github.com/pollsse/caddy-poll-sse/hub"
)

// durationBound is the range a duration setting may take. Below the minimum a loop would
// spin, a ticker would panic or Redis would be told PEXPIRE 0; above the maximum a typo
// (1000h for 1000ms) would silently freeze a route.
type durationBound struct{ min, max time.Duration }

// durationBounds holds the range of every duration setting, by its Caddyfile name. In
// JSON a zero value means the default, which lies in range.
var durationBounds = map[string]durationBound{
	"interval":                {50 * time.Millisecond, 24 * time.Hour},
	"timeout":                 {50 * time.Millisecond, 10 * time.Minute},
	"heartbeat":               {time.Second, time.Hour},
	"retry":                   {100 * time.Millisecond, time.Hour},
	"linger":                  {100 * time.Millisecond, 24 * time.Hour},
	"max_connection_lifetime": {time.Second, 30 * 24 * time.Hour},
	// A drain holds the old config's servers, and a retired hub's streams, until it
	// ends: past a few minutes a deploy would pile them up.
	"drain":     {100 * time.Millisecond, 10 * time.Minute},
	"lease_ttl": {time.Second, 10 * time.Minute},
}

// countBound is the range a count or size setting may take.
type countBound struct{ min, max int64 }

// countBounds holds the range of every count and size setting, by its Caddyfile name.
var countBounds = map[string]countBound{
	"history":              {1, 100_000},
	"max_subscribers":      {1, 1_000_000},
	"max_upstreams":        {1, hub.MaxLoops},
	"max_body":             {1 << 10, 1 << 30},
	"history_size":         {64 << 10, 16 << 30},
	"max_loops_per_client": {1, hub.MaxLoops},
	"db":                   {0, 1 << 16},
}

// checkDuration reports a duration named name that lies outside its range; zero, the
// default, passes.
func checkDuration(name string, d caddy.Duration) error {
	b := durationBounds[name]
	if d == 0 {
		return nil
	}
	if time.Duration(d) < b.min || time.Duration(d) > b.max {
		return fmt.Errorf("%s: %s is out of range: want %s to %s", name, shortDuration(time.Duration(d)), shortDuration(b.min), shortDuration(b.max))
	}
	return nil
}

// checkCount reports a count or size named name that lies outside its range; zero, the
// default, passes unless the range excludes it anyway.
func checkCount(name string, n int64) error {
	b := countBounds[name]
	if n == 0 && b.min > 0 {
		return nil
	}
	if n < b.min || n > b.max {
		return fmt.Errorf("%s: %s is out of range: want %s to %s", name, formatCount(name, n), formatCount(name, b.min), formatCount(name, b.max))
	}
	return nil
}

// formatCount writes sizes in IEC units and counts as they are.
func formatCount(name string, n int64) string {
	if (name == "max_body" || name == "history_size") && n > 0 {
		return humanize.IBytes(uint64(n))
	}
	return fmt.Sprint(n)
}

// shortDuration writes d as a Caddyfile would: 1h, not 1h0m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// checkBounds checks every duration, count and size of the handler against its range.
func (h *Handler) checkBounds() error {
	for _, c := range []struct {
		name string
		d    caddy.Duration
	}{
		{"interval", h.Interval}, {"timeout", h.Timeout}, {"heartbeat", h.Heartbeat},
		{"retry", h.Retry}, {"linger", h.Linger}, {"max_connection_lifetime", h.MaxConnectionLifetime},
		{"drain", h.Drain},
	} {
		if err := checkDuration(c.name, c.d); err != nil {
			return err
		}
	}
	for _, c := range []struct {
		name string
		n    int64
	}{
		{"history", int64(h.History)}, {"max_subscribers", int64(h.MaxSubscribers)},
		{"max_upstreams", int64(h.MaxUpstreams)}, {"max_body", h.MaxBody},
		{"history_size", h.HistorySize}, {"max_loops_per_client", int64(h.MaxLoopsPerClient)},
	} {
		if err := checkCount(c.name, c.n); err != nil {
			return err
		}
	}
	return nil
}
