package main

import (
	"bufio"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// StormResult is one server's reconnect storm: N subscribers that drop at once and come
// back at once, each with the id of one of the K versions before the newest.
type StormResult struct {
	Server    string
	N, K      int
	DocBytes  int // poll_sse: the document's pad; 0 for the others, which send patches
	Resumed   int // subscribers reconnected (headers read)
	Converged int // of them, those that received the newest change
	Failed    int // reconnects that failed
	LastMS    float64
	P50MS     float64 // first reconnect → a subscriber's catch-up: the median
	CPUPerRes float64 // µs of server CPU per resume
	ClientCPU float64 // µs of the load generator's CPU per resume: it shares the processors
	Overflows int64   // connections the kernel turned away with a full accept queue (-1: unknown)
	Distinct  int     // distinct catch-ups asked for: per (format, id), snapshots counted once
	Computed  float64 // poll_sse: catch-ups computed during the storm; NaN for the others
	Kinds     string  // what brought the subscribers up to date
}

// stormFormats are the formats poll_sse subscribers resume in, in turn.
var stormFormats = []string{"json_patch", "merge_patch", "snapshot"}

// Storm connects N subscribers, publishes K changes, drops them all and reconnects them
// all at once with Last-Event-ID spread over the K versions before the newest (poll_sse:
// in the three formats too), and measures how long until the last has caught up.
func (h *Harness) Storm(name string) (StormResult, error) {
	n, k := h.cfg.StormSubs, h.cfg.StormChanges
	r := StormResult{Server: name, N: n, K: k, Computed: math.NaN()}
	srv, err := h.start(name)
	if err != nil {
		return r, err
	}
	defer srv.Stop()
	pad := h.stormPad(srv)
	r.DocBytes = len(pad)
	recorder, ids, hi, err := h.stormPrepare(srv, n, k, pad)
	if err != nil {
		return r, err
	}
	defer recorder.Close()   // kept, so that the topic keeps running while the others are away
	time.Sleep(h.cfg.Settle) // the server notices the drop
	computed0, _ := scrapeComputed(srv)
	c0, err := srv.Usage()
	if err != nil {
		return r, err
	}
	var prof *profileFetch
	if h.cfg.Pprof != "" && name == PollSSE && !h.has("fanout") {
		prof = h.startProfile(srv)
		time.Sleep(100 * time.Millisecond) // the profile has begun
	}
	k0, kerr := readKernelTCP()
	self0 := selfCPU()
	started := time.Now()
	pool, distinct := h.stormReconnect(srv, n, ids)
	defer pool.Close()
	waitErr := pool.WaitSeq(hi, h.cfg.ChangeTimeout)
	c1, _ := srv.Usage()
	self1 := selfCPU()
	r.Overflows = -1
	if k1, err := readKernelTCP(); err == nil && kerr == nil {
		r.Overflows = k1.ListenOverflows - k0.ListenOverflows
	}
	if err := prof.wait(); err != nil {
		return r, err
	}
	if computed1, err := scrapeComputed(srv); err == nil {
		r.Computed = computed1 - computed0
	}
	r.Distinct, r.Resumed, r.Failed = distinct, pool.Live(), pool.Failed()
	r.CPUPerRes = float64(c1.CPU-c0.CPU) / float64(time.Microsecond) / float64(max(r.Resumed, 1))
	r.ClientCPU = float64(self1-self0) / float64(time.Microsecond) / float64(max(r.Resumed, 1))
	stormTimes(&r, pool.Subs(), started, hi)
	if waitErr != nil {
		h.logf("  %s: %v", name, waitErr)
	}
	return r, nil
}

// stormPad is the pad of every change of the storm: the document's size for poll_sse;
// the others publish the patch alone, as poll_sse sends it.
func (h *Harness) stormPad(srv *Server) string {
	if srv.up == nil {
		return ""
	}
	return strings.Repeat("x", h.cfg.StormDoc)
}

// stormPrepare connects n subscribers at one version, publishes k changes and drops
// them. It returns the one more subscriber that recorded the ids, which stays, the ids of
// the k versions before the newest, and hi, the newest's seq.
func (h *Harness) stormPrepare(srv *Server, n, k int, pad string) (*Pool, []string, int64, error) {
	recorder, err := h.connect(srv, 1, SubOptions{IDs: true})
	if err != nil {
		return nil, nil, 0, err
	}
	ids, hi, err := h.stormVersions(srv, recorder, n, k, func(int64) string { return pad })
	if err != nil {
		recorder.Close()
		return nil, nil, 0, err
	}
	return recorder, ids, hi, nil
}

// stormVersions publishes the version every subscriber holds, connects them, publishes
// k more changes and drops them; it returns the ids recorder saw and the newest seq.
func (h *Harness) stormVersions(srv *Server, recorder *Pool, n, k int, fixed func(int64) string) ([]string, int64, error) {
	first, _, err := h.paced(srv, recorder, 1, fixed, nil)
	if err != nil {
		return nil, 0, err
	}
	pool := NewPool(srv.Addr, srv.Path, srv.Snapshot)
	defer pool.Close()
	if err := pool.Connect(n, h.cfg.InFlight, SubOptions{}, h.cfg.ConnectTimeout); err != nil {
		return nil, 0, err
	}
	h.logf("  %d of %d connected", pool.Live(), n)
	lo, hi, err := h.paced(srv, pool, k, fixed, nil)
	if err != nil {
		return nil, 0, err
	}
	if err := recorder.WaitSeq(hi, h.cfg.ChangeTimeout); err != nil {
		return nil, 0, err
	}
	seen := recorder.Subs()[0].IDs()
	ids := []string{seen[first]}
	for seq := lo; seq < hi; seq++ {
		ids = append(ids, seen[seq])
	}
	if slices.Contains(ids, "") {
		return nil, 0, fmt.Errorf("%s: no event id for some of the versions %d..%d", srv.Name, first, hi-1)
	}
	return ids, hi, nil
}

// stormReconnect reconnects n subscribers at once, subscriber i with id i mod K and, for
// poll_sse, the format (i div K) mod 3, so that every (format, id) is asked for. It
// returns the pool and the number of distinct catch-ups asked for: one per (format, id),
// but one for all the snapshots, which do not depend on the id.
func (h *Harness) stormReconnect(srv *Server, n int, ids []string) (*Pool, int) {
	asked := map[string]bool{}
	opts := make([]SubOptions, n)
	for i := range opts {
		opts[i].LastID = ids[i%len(ids)]
		if srv.up != nil {
			opts[i].Query = "?format=" + stormFormats[(i/len(ids))%len(stormFormats)]
		}
		key := opts[i].Query + " " + opts[i].LastID
		if strings.HasSuffix(opts[i].Query, "=snapshot") {
			key = opts[i].Query
		}
		asked[key] = true
	}
	pool := NewPool(srv.Addr, srv.Path, true)
	inFlight := h.cfg.StormInFlight
	if inFlight <= 0 {
		inFlight = n
	}
	if err := pool.ConnectEach(n, inFlight, func(i int) SubOptions { return opts[i] }, h.cfg.ConnectTimeout); err != nil {
		h.logf("  %s: %v", srv.Name, err)
	}
	return pool, len(asked)
}

// stormTimes records, per subscriber, the time from started until the event that
// brought it to hi, and what that event was.
func stormTimes(r *StormResult, subs []*Sub, started time.Time, hi int64) {
	var times []float64
	kinds := map[Kind]int{}
	for _, s := range subs {
		for _, rec := range s.Recs() {
			if rec.Seq >= hi {
				times = append(times, ms(rec.Recv-started.UnixNano()))
				kinds[rec.Kind]++
				break
			}
		}
	}
	r.Converged = len(times)
	if len(times) > 0 {
		r.LastMS, r.P50MS = slices.Max(times), Pct(times, 50)
	}
	var parts []string
	for _, k := range []Kind{KindPatch, KindSnapshot, KindMessage, KindOther} {
		if kinds[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, kinds[k]))
		}
	}
	r.Kinds = strings.Join(parts, ", ")
}

// scrapeComputed reads caddy_poll_sse_catchups_computed_total, summed over its series,
// from Caddy's admin endpoint.
func scrapeComputed(srv *Server) (float64, error) {
	if srv.AdminAddr == "" {
		return math.NaN(), fmt.Errorf("%s has no metrics", srv.Name)
	}
	resp, err := http.Get("http://" + srv.AdminAddr + "/metrics")
	if err != nil {
		return math.NaN(), err
	}
	defer resp.Body.Close()
	total, found := 0.0, false
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "caddy_poll_sse_catchups_computed_total{") {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err == nil {
			total, found = total+v, true
		}
	}
	if !found {
		return math.NaN(), fmt.Errorf("no caddy_poll_sse_catchups_computed_total at %s", srv.AdminAddr)
	}
	return total, sc.Err()
}

// writeStorm writes the reconnect-storm table: one row per server and run, with the
// time-to-last-catch-up ratio to Nchan's in the same run.
func writeStorm(b *strings.Builder, runs []RunResult, cfg Config) {
	fmt.Fprintf(b, "## Reconnect storm: %d subscribers drop and reconnect at once with Last-Event-ID spread over the %d versions before the newest\n\n", cfg.StormSubs, cfg.StormChanges)
	fmt.Fprintf(b, "poll_sse subscribers resume in json_patch, merge_patch and snapshot in turn (?format=); its document is %d bytes. ", cfg.StormDoc)
	fmt.Fprintf(b, "Nchan and the Go baseline send the missed messages one by one from their buffers. ")
	fmt.Fprintf(b, "Time runs from the first reconnect to each subscriber's catch-up event; CPU is the server's over the storm, per subscriber resumed; ")
	fmt.Fprintf(b, "client CPU is the load generator's own over the same time, on the same processors. ")
	fmt.Fprintf(b, "Turned away counts the connections the kernel refused while the accept queue was full (machine-wide ListenOverflows): each waits a second or more for its SYN to be sent again.\n\n")
	fmt.Fprintf(b, "| run | server | resumed | caught up | failed | last ms | p50 ms | last vs Nchan | CPU µs/resume | client CPU µs/resume | turned away | computed / distinct (format, id) | caught up by |\n")
	fmt.Fprintf(b, "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for i, run := range runs {
		var nchan float64
		for _, r := range run.Storm {
			if r.Server == Nchan {
				nchan = r.LastMS
			}
		}
		for _, r := range run.Storm {
			ratio := "–"
			if nchan > 0 && r.Server != Nchan {
				ratio = f2(r.LastMS / nchan)
			}
			computed := "– / " + strconv.Itoa(r.Distinct)
			if !math.IsNaN(r.Computed) {
				computed = f0(r.Computed) + " / " + strconv.Itoa(r.Distinct)
			}
			turned := "–"
			if r.Overflows >= 0 {
				turned = strconv.FormatInt(r.Overflows, 10)
			}
			fmt.Fprintf(b, "| %d | %s | %d | %d | %d | %s | %s | %s | %s | %s | %s | %s | %s |\n", i+1, r.Server, r.Resumed, r.Converged, r.Failed,
				f1(r.LastMS), f1(r.P50MS), ratio, f0(r.CPUPerRes), f0(r.ClientCPU), turned, computed, r.Kinds)
		}
	}
	fmt.Fprintf(b, "\n")
}
