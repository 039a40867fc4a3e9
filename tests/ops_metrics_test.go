package tests

import (
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	metricsRoute = "demo"
	metricsWait  = 10 * time.Second
	pm           = "caddy_poll_sse_"
)

// metricsRun is a Caddy with one poll_sse route named demo, its upstream, and the last
// scrape of /metrics.
type metricsRun struct {
	t     *testing.T
	caddy *caddyProc
	up    *upstream
	last  metricSet
}

// get returns the demo route's value of name with the given extra labels, 0 when absent.
func (r *metricsRun) get(name string, labels ...string) float64 {
	v, _ := r.last.value(pm+name, append([]string{"route", metricsRoute}, labels...)...)
	return v
}

// scrape refreshes the last scrape.
func (r *metricsRun) scrape() { r.last, _ = scrape(r.t, r.caddy) }

// await scrapes until cond holds on the scrape, failing the test with what after
// metricsWait.
func (r *metricsRun) await(what string, cond func() bool) {
	r.t.Helper()
	if !eventually(metricsWait, func() bool { r.scrape(); return cond() }) {
		r.t.Fatalf("metrics: %s did not happen within %v; poll_sse series:\n%s", what, metricsWait, r.series())
	}
}

// series lists the poll_sse series of the last scrape, buckets left out, for failure
// output.
func (r *metricsRun) series() string {
	var b strings.Builder
	for _, s := range r.last {
		if strings.HasPrefix(s.name, pm) && !strings.HasSuffix(s.name, "_bucket") {
			b.WriteString(s.name + labelString(s.labels) + " " + strconv.FormatFloat(s.value, 'g', -1, 64) + "\n")
		}
	}
	return b.String()
}

func labelString(labels map[string]string) string {
	var parts []string
	for k, v := range labels {
		parts = append(parts, k+"="+strconv.Quote(v))
	}
	slices.Sort(parts)
	return "{" + strings.Join(parts, ",") + "}"
}

// counters returns the demo route's counters and histogram counts and sums, by series.
func (r *metricsRun) counters() map[string]float64 {
	out := map[string]float64{}
	for _, s := range r.last {
		if s.labels["route"] != metricsRoute {
			continue
		}
		if strings.HasSuffix(s.name, "_total") || strings.HasSuffix(s.name, "_count") || strings.HasSuffix(s.name, "_sum") {
			out[s.name+labelString(s.labels)] += s.value
		}
	}
	return out
}

// TestOpsMetrics runs a script on a route named demo and reads /metrics of the admin API
// after each step: 3 streams make subscribers 3 and loops 1; a change counts a changed
// poll, events, bytes and one more observation in the upstream and diff histograms;
// unchanged polls count unchanged; a 500 from the upstream counts error; resuming with
// the current id, an id in history and a bogus id count one resume of kind none, patch
// and snapshot; closing the streams brings subscribers to 0 and, after linger, loops to
// 0; a reload of the same config keeps every counter at least where it was, they keep
// counting, and the log shows no duplicate registration or panic.
func TestOpsMetrics(t *testing.T) {
	t.Parallel()
	u := newUpstream(t, bigDoc(0))
	r := &metricsRun{t: t, up: u}
	r.caddy = startCaddy(t, pollSSE(u.url(), "name "+metricsRoute, "interval 100ms", "linger 1s"))
	clients := r.openThree()
	older, olderID := clients[0].doc, clients[0].lastID
	r.checkChange(clients)
	r.checkUnchangedAndError(clients)
	r.checkResumes(clients[0], older, olderID)
	for _, c := range clients {
		c.close()
	}
	r.await("subscribers back to 0", func() bool { return r.get("subscribers") == 0 })
	r.await("loops back to 0 after linger", func() bool { return r.get("loops") == 0 })
	r.checkReload()
}

// openThree opens 3 streams and waits for subscribers 3 and loops 1.
func (r *metricsRun) openThree() []*sseClient {
	r.t.Helper()
	clients := make([]*sseClient, 3)
	for i := range clients {
		clients[i] = dialSSE(r.t, r.caddy.url(""))
		clients[i].waitFor(r.up.document(), metricsWait)
	}
	r.await("subscribers 3 and loops 1", func() bool { return r.get("subscribers") == 3 && r.get("loops") == 1 })
	r.checkFamilies()
	return clients
}

// families are the poll_sse metric families and their types.
var families = map[string]string{
	"subscribers": "gauge", "loops": "gauge", "polls_total": "counter",
	"upstream_duration_seconds": "histogram", "diff_duration_seconds": "histogram",
	"events_total": "counter", "bytes_total": "counter",
	"slow_subscribers_total": "counter", "resumes_total": "counter",
	"draining_streams": "gauge",
}

// labelDomains are the values the labels other than route may take.
var labelDomains = map[string][]string{
	"result": {"changed", "unchanged", "not_modified", "error"},
	"action": {"drain", "catch_up", "disconnect"},
	"kind":   {"none", "patch", "snapshot"},
}

// checkFamilies checks the declared type of every poll_sse family that is exposed, that
// the ones a running loop with subscribers must have are, and that every poll_sse series
// has a route label and only known label values.
func (r *metricsRun) checkFamilies() {
	r.t.Helper()
	_, text := scrape(r.t, r.caddy)
	types := metricTypes(text)
	for name, want := range families {
		got, ok := types[pm+name]
		if ok && got != want {
			r.t.Errorf("%s%s is a %s, want a %s", pm, name, got, want)
		}
		if !ok && name != "slow_subscribers_total" && name != "resumes_total" && name != "diff_duration_seconds" {
			r.t.Errorf("%s%s is not exposed", pm, name)
		}
	}
	for _, s := range r.last {
		if strings.HasPrefix(s.name, pm) {
			r.checkLabels(s)
		}
	}
}

func (r *metricsRun) checkLabels(s sample) {
	r.t.Helper()
	if s.labels["route"] == "" {
		r.t.Errorf("%s%s has no route label", s.name, labelString(s.labels))
	}
	for label, domain := range labelDomains {
		if v, ok := s.labels[label]; ok && !slices.Contains(domain, v) {
			r.t.Errorf("%s%s: %s %q is none of %q", s.name, labelString(s.labels), label, v, domain)
		}
	}
}

// figures are the demo route's values a change moves.
type figures struct {
	changed, events, bytes, upstream, diff float64
}

func (r *metricsRun) figures() figures {
	return figures{
		changed: r.get("polls_total", "result", "changed"), events: r.get("events_total"), bytes: r.get("bytes_total"),
		upstream: r.get("upstream_duration_seconds_count"), diff: r.get("diff_duration_seconds_count"),
	}
}

// checkChange changes the document and checks the counters a change moves.
func (r *metricsRun) checkChange(clients []*sseClient) {
	r.t.Helper()
	r.scrape()
	before := r.figures()
	want := r.up.set(r.t, bigDoc(1))
	for _, c := range clients {
		c.waitFor(want, metricsWait)
	}
	r.await("a changed poll counted", func() bool { return r.get("polls_total", "result", "changed") > before.changed })
	r.await("events, bytes and histogram counts moved", func() bool {
		now := r.figures()
		return now.events >= before.events+3 && now.bytes > before.bytes && now.upstream > before.upstream && now.diff > before.diff
	})
}

// checkUnchangedAndError lets unchanged polls happen, then makes the upstream answer 500
// until the clients are told, and back.
func (r *metricsRun) checkUnchangedAndError(clients []*sseClient) {
	r.t.Helper()
	r.scrape()
	unchanged, failed := r.get("polls_total", "result", "unchanged"), r.get("polls_total", "result", "error")
	r.await("unchanged polls counted", func() bool { return r.get("polls_total", "result", "unchanged") >= unchanged+2 })
	r.up.setMode(serve500)
	for _, c := range clients {
		c.waitEvent("upstream ok:false", metricsWait, isUpstream(r.t, func(s upstreamStatus) bool { return !s.OK }))
	}
	r.await("failed polls counted", func() bool { return r.get("polls_total", "result", "error") > failed })
	r.up.setMode(serveJSON)
	for _, c := range clients {
		c.waitEvent("upstream ok:true", metricsWait, isUpstream(r.t, func(s upstreamStatus) bool { return s.OK }))
	}
}

// checkResumes resumes with the current id, an older id in history and a bogus id, and
// checks that each counts one resume of its kind and none of the others.
func (r *metricsRun) checkResumes(current *sseClient, older []byte, olderID string) {
	r.t.Helper()
	for _, tc := range []struct {
		kind, id string
		doc      []byte
	}{
		{"none", current.lastID, current.doc}, {"patch", olderID, older}, {"snapshot", "bogus-id-0123", nil},
	} {
		r.scrape()
		before := r.resumeCounts()
		c := dialSSE(r.t, r.caddy.url(""), withDocument(tc.doc, tc.id), withLastEventID(tc.id))
		checkStreamHeaders(r.t, c.resp)
		if tc.kind != "none" {
			if ev := c.mustNext(metricsWait); ev.Type != tc.kind {
				r.t.Errorf("resume with %q: first event %q, want %q", tc.id, ev.Type, tc.kind)
			}
		}
		r.await("a resume of kind "+tc.kind+" counted", func() bool { return r.resumeCounts()[tc.kind] > before[tc.kind] })
		for kind, n := range r.resumeCounts() {
			want := before[kind]
			if kind == tc.kind {
				want++
			}
			if n != want {
				r.t.Errorf("after one resume of kind %s: resumes_total{kind=%q} went from %v to %v, want %v", tc.kind, kind, before[kind], n, want)
			}
		}
		c.close()
	}
}

func (r *metricsRun) resumeCounts() map[string]float64 {
	out := map[string]float64{}
	for _, kind := range []string{"none", "patch", "snapshot"} {
		out[kind] = r.get("resumes_total", "kind", kind)
	}
	return out
}

// checkReload reloads the same config and checks that no counter went back, that they
// keep counting, and that the log holds no registration error or panic.
func (r *metricsRun) checkReload() {
	r.t.Helper()
	r.scrape()
	before := r.counters()
	if len(before) == 0 {
		r.t.Fatalf("no counter of route %q before the reload:\n%s", metricsRoute, r.series())
	}
	load(r.t, r.caddy, r.caddy.config, forceReload)
	r.scrape()
	after := r.counters()
	for series, v := range before {
		if got, ok := after[series]; !ok || got < v {
			r.t.Errorf("after a reload %s is %v (present %v), was %v", series, got, ok, v)
		}
	}
	c := dialSSE(r.t, r.caddy.url(""))
	c.waitFor(r.up.document(), metricsWait)
	r.scrape()
	changed := r.get("polls_total", "result", "changed")
	c.waitFor(r.up.set(r.t, bigDoc(2)), metricsWait)
	r.await("counting after the reload", func() bool {
		return r.get("polls_total", "result", "changed") > changed && r.get("subscribers") == 1 && r.get("loops") == 1
	})
	out := strings.ToLower(r.caddy.stderr.String())
	for _, bad := range []string{"duplicate metrics collector", "already registered", "panic"} {
		if strings.Contains(out, bad) {
			r.t.Errorf("caddy's log holds %q", bad)
		}
	}
}

// TestOpsMaxSubscribers checks max_subscribers 3: with 3 streams open on the route a
// fourth gets 503 with a Retry-After in whole seconds and is not counted as a
// subscriber; once one stream has left, a new one is served.
func TestOpsMaxSubscribers(t *testing.T) {
	t.Parallel()
	u := newUpstream(t, map[string]any{"rev": 0})
	caddy := startCaddy(t, pollSSE(u.url(), "name capped", "interval 100ms", "max_subscribers 3"))
	clients := make([]*sseClient, 3)
	for i := range clients {
		clients[i] = dialSSE(t, caddy.url(""))
		checkStreamHeaders(t, clients[i].resp)
		clients[i].waitFor(u.document(), metricsWait)
	}
	status, retry := tryStream(t, caddy)
	if status != http.StatusServiceUnavailable {
		t.Fatalf("fourth stream with max_subscribers 3: status %d, want 503", status)
	}
	if n, err := strconv.Atoi(retry); err != nil || n < 0 {
		t.Errorf("Retry-After %q, want a whole number of seconds", retry)
	}
	waitLoops(t, caddy, "capped", "3 subscribers", oneLoopWith(3))
	clients[0].close()
	if !eventually(metricsWait, func() bool { s, _ := tryStream(t, caddy); return s == http.StatusOK }) {
		t.Fatalf("a stream is still refused after one of 3 left")
	}
}

// tryStream opens a stream with a plain HTTP client and returns its status and
// Retry-After; a stream that is served is closed at once.
func tryStream(t *testing.T, caddy *caddyProc) (int, string) {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	req, _ := http.NewRequest(http.MethodGet, caddy.url(""), nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET stream: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	}
	return resp.StatusCode, resp.Header.Get("Retry-After")
}
