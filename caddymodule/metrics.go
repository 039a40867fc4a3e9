package caddymodule

import (
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pollsse/caddy-poll-sse/hub"
)

// metrics are the poll_sse series. They are created once per process and registered in
// the registry of every config that uses poll_sse, so that they keep counting across
// reloads. Their only label is the route's name, which the config sets: never a client
// or an expanded URL.
var metrics = struct {
	once        sync.Once
	subscribers *prometheus.GaugeVec
	loops       *prometheus.GaugeVec
	polls       *prometheus.CounterVec
	upstream    *prometheus.HistogramVec
	diff        *prometheus.HistogramVec
	events      *prometheus.CounterVec
	bytes       *prometheus.CounterVec
	slow        *prometheus.CounterVec
	resumes     *prometheus.CounterVec
	computed    *prometheus.CounterVec
	draining    *prometheus.GaugeVec
}{}

func initMetrics() {
	const ns, sub = "caddy", "poll_sse"
	route := []string{"route"}
	gauge := func(name, help string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help}, route)
	}
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help}, append(route, labels...))
	}
	histogram := func(name, help string, buckets []float64) *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help, Buckets: buckets}, route)
	}
	m := &metrics
	m.subscribers = gauge("subscribers", "Streams open.")
	m.loops = gauge("loops", "Poll loops running.")
	m.polls = counter("polls_total", "Upstream polls by result: changed, unchanged, not_modified or error.", "result")
	m.upstream = histogram("upstream_duration_seconds", "Time an upstream poll took.", prometheus.DefBuckets)
	m.diff = histogram("diff_duration_seconds", "Time to parse and diff a changed document.", prometheus.ExponentialBuckets(0.00001, 4, 10))
	m.events = counter("events_total", "Events written to clients, heartbeats included.")
	m.bytes = counter("bytes_total", "Bytes written to clients.")
	m.slow = counter("slow_subscribers_total", "Actions on clients that could not keep up: drain, catch_up or disconnect.", "action")
	m.resumes = counter("resumes_total", "Clients that sent a last event id, by what they got: none, patch or snapshot.", "kind")
	m.computed = counter("catchups_computed_total", "Catch-up events computed, by format: json_patch, merge_patch or snapshot. Clients resuming from the same version in the same format at once share one.", "format")
	m.draining = gauge("draining_streams", "Streams being drained: each closes at its own moment of the drain window, after a reload changed or removed their route or retired their server.")
}

// registerMetrics registers the series in reg, once per registry.
func registerMetrics(reg *prometheus.Registry) error {
	metrics.once.Do(initMetrics)
	if reg == nil {
		return nil
	}
	m := &metrics
	for _, c := range []prometheus.Collector{m.subscribers, m.loops, m.polls, m.upstream, m.diff, m.events, m.bytes, m.slow, m.resumes, m.computed, m.draining} {
		var dup prometheus.AlreadyRegisteredError
		if err := reg.Register(c); err != nil && !errors.As(err, &dup) {
			return err
		}
	}
	return nil
}

// routeMetrics records what one route's hub does: a hub.Observer. The series of every
// label value are made at once, so that they show from the start, at 0.
type routeMetrics struct {
	subscribers, loops   prometheus.Gauge
	draining             prometheus.Gauge
	upstream, diff       prometheus.Observer
	events, bytes        prometheus.Counter
	polls, slow, resumes map[string]prometheus.Counter
	computed             map[string]prometheus.Counter
}

func newRouteMetrics(route string) *routeMetrics {
	metrics.once.Do(initMetrics)
	m := &metrics
	return &routeMetrics{
		subscribers: m.subscribers.WithLabelValues(route),
		loops:       m.loops.WithLabelValues(route),
		draining:    m.draining.WithLabelValues(route),
		upstream:    m.upstream.WithLabelValues(route),
		diff:        m.diff.WithLabelValues(route),
		events:      m.events.WithLabelValues(route),
		bytes:       m.bytes.WithLabelValues(route),
		polls:       counters(m.polls, route, hub.PollChanged, hub.PollUnchanged, hub.PollNotModified, hub.PollError),
		slow:        counters(m.slow, route, hub.SlowDrain, hub.SlowCatchUp, hub.SlowDisconnect),
		resumes:     counters(m.resumes, route, hub.ResumeNone, hub.ResumePatch, hub.ResumeSnapshot),
		computed:    counters(m.computed, route, hub.JSONPatch.String(), hub.MergePatch.String(), hub.Snapshot.String()),
	}
}

// counters returns the series of vec for route and each of values.
func counters(vec *prometheus.CounterVec, route string, values ...string) map[string]prometheus.Counter {
	out := make(map[string]prometheus.Counter, len(values))
	for _, v := range values {
		out[v] = vec.WithLabelValues(route, v)
	}
	return out
}

func (r *routeMetrics) Subscribers(delta int)   { r.subscribers.Add(float64(delta)) }
func (r *routeMetrics) Loops(delta int)         { r.loops.Add(float64(delta)) }
func (r *routeMetrics) Diff(took time.Duration) { r.diff.Observe(took.Seconds()) }
func (r *routeMetrics) Slow(action string)      { r.slow[action].Inc() }
func (r *routeMetrics) Resume(kind string)      { r.resumes[kind].Inc() }
func (r *routeMetrics) Draining(delta int)      { r.draining.Add(float64(delta)) }
func (r *routeMetrics) Computed(format string)  { r.computed[format].Inc() }

func (r *routeMetrics) Poll(result string, took time.Duration) {
	r.polls[result].Inc()
	r.upstream.Observe(took.Seconds())
}

func (r *routeMetrics) Sent(events, bytes int) {
	r.events.Add(float64(events))
	r.bytes.Add(float64(bytes))
}

var _ hub.Observer = (*routeMetrics)(nil)
