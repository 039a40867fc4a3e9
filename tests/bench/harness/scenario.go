package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"time"
)

// Harness runs the scenarios against the servers.
type Harness struct {
	cfg   Config
	up    *Upstream
	tmp   string
	seq   int64
	log   io.Writer
	nchan NchanChoice
}

// NchanChoice is the worker_processes Nchan runs with, and what the trial measured.
type NchanChoice struct {
	Workers string
	Trial   map[string]float64 // worker_processes → time-to-last p50, ms
	TrialN  int
}

// FanoutResult is one server at one subscriber count: idle memory and change delivery.
type FanoutResult struct {
	Server       string
	N            int
	Connected    int
	Failed       int
	Dropped      int // ready subscribers whose stream ended during the section
	RSSPerSubKiB float64
	TTF50        float64
	TTL50        float64
	TTL90        float64
	CPUPerChange float64 // ms
	Changes      int
	ReqPerIntvl  float64 // poll_sse: upstream requests per interval over an idle window
	Framing      string  // how the responses' bodies were framed
}

// ContResult is one server under back-to-back changes.
type ContResult struct {
	Server        string
	Subs          int
	Changes       int
	DeliveriesSec float64
	LostPerSub    float64
	LostMax       int
	Reordered     int
	P50, P99      float64
	CPU           float64 // ms, over the whole load
	Dropped       int
}

// SlowResult is one server with a subscriber that reads nothing.
type SlowResult struct {
	Server               string
	Subs                 int
	Without, With        [2]float64 // the others' latency p50, p99, ms
	TTLWithout, TTLWith  float64    // time-to-last p50, ms
	Changes              int
	Converged            bool
	How                  string
	StalledEvents        int // events the stalled subscriber received after it began reading
	ConvergeMS           float64
	OthersLost, Disconns int
}

// RunResult is everything measured in one run.
type RunResult struct {
	Fanout []FanoutResult
	Cont   []ContResult
	Slow   []SlowResult
	Storm  []StormResult
}

// logf reports progress.
func (h *Harness) logf(format string, args ...any) {
	fmt.Fprintf(h.log, "%s  "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// nextSeq allocates the next change's sequence number.
func (h *Harness) nextSeq() int64 {
	h.seq++
	if h.seq >= maxSeq {
		panic("too many changes")
	}
	return h.seq
}

// start runs a fresh instance of the named server.
func (h *Harness) start(name string) (*Server, error) {
	dir, err := os.MkdirTemp(h.tmp, name+"-")
	if err != nil {
		return nil, err
	}
	switch name {
	case PollSSE:
		h.up.Set(h.nextSeq(), time.Now().UnixNano(), basePad(0))
		return StartPollSSE(h.cfg.Caddy, dir, h.up, h.cfg.Interval)
	case Nchan:
		return StartNchan(h.cfg.Nginx, h.cfg.NchanModule, dir, h.nchan.Workers)
	case Baseline:
		return StartBaseline(h.cfg.Baseline, dir)
	}
	return nil, fmt.Errorf("unknown server %q", name)
}

// connect opens n subscribers of srv.
func (h *Harness) connect(srv *Server, n int, opt SubOptions) (*Pool, error) {
	pool := NewPool(srv.Addr, srv.Path, srv.Snapshot)
	if err := pool.Connect(n, h.cfg.InFlight, opt, h.cfg.ConnectTimeout); err != nil {
		pool.Close()
		return nil, err
	}
	if pool.Live() == 0 {
		pool.Close()
		return nil, fmt.Errorf("%s: none of %d subscribers connected", srv.Name, n)
	}
	return pool, nil
}

// paced publishes k changes, each once every live subscriber of pool received the last,
// and returns the first and last seq. pad gives each change's pad ("" for the usual).
func (h *Harness) paced(srv *Server, pool *Pool, k int, pad func(int64) string, more func() bool) (lo, hi int64, err error) {
	for i := 0; i < k || (more != nil && more() && i < h.cfg.MaxChanges); i++ {
		seq := h.nextSeq()
		if i == 0 {
			lo = seq
		}
		if _, err := srv.Publish(seq, pad(seq)); err != nil {
			return lo, hi, fmt.Errorf("%s: publish %d: %w", srv.Name, seq, err)
		}
		if err := pool.WaitSeq(seq, h.cfg.ChangeTimeout); err != nil {
			return lo, hi, fmt.Errorf("%s: %w", srv.Name, err)
		}
		hi = seq
	}
	return lo, hi, nil
}

func noPad(int64) string { return "" }

// Fanout measures idle memory per subscriber and the time for changes to reach the first
// and the last of n subscribers, on a fresh server.
func (h *Harness) Fanout(name string, n, changes int, profile bool) (FanoutResult, error) {
	r := FanoutResult{Server: name, N: n, ReqPerIntvl: math.NaN()}
	srv, err := h.start(name)
	if err != nil {
		return r, err
	}
	defer srv.Stop()
	u0, err := srv.Usage()
	if err != nil {
		return r, err
	}
	pool, err := h.connect(srv, n, SubOptions{})
	if err != nil {
		return r, err
	}
	defer pool.Close()
	r.Connected, r.Failed, r.Framing = pool.Live(), pool.Failed(), pool.Framing()
	time.Sleep(h.cfg.Settle)
	u1, err := srv.Usage()
	if err != nil {
		return r, err
	}
	r.RSSPerSubKiB = float64(u1.RSS-u0.RSS) / float64(r.Connected) / 1024
	if profile && h.cfg.Heap != "" {
		if err := h.saveHeap(srv); err != nil {
			return r, err
		}
	}
	if srv.up != nil {
		r.ReqPerIntvl = h.idleRequests()
	}
	var prof *profileFetch
	if profile && h.cfg.Pprof != "" {
		prof = h.startProfile(srv)
	}
	c0, _ := srv.Usage()
	lo, hi, err := h.paced(srv, pool, changes, noPad, prof.running)
	if err != nil {
		return r, err
	}
	c1, _ := srv.Usage()
	if err := prof.wait(); err != nil {
		return r, err
	}
	ph := Analyze(pool.Subs(), lo, hi)
	r.Changes = ph.Changes
	r.TTF50, r.TTL50, r.TTL90 = Pct(ph.TTF, 50), Pct(ph.TTL, 50), Pct(ph.TTL, 90)
	r.CPUPerChange = float64(c1.CPU-c0.CPU) / float64(time.Millisecond) / float64(ph.Changes)
	r.Dropped = r.Connected - pool.Live()
	return r, nil
}

// idleRequests counts the upstream requests over the idle window, per interval.
func (h *Harness) idleRequests() float64 {
	r0 := h.up.Requests()
	time.Sleep(h.cfg.IdleWindow)
	return float64(h.up.Requests()-r0) / (float64(h.cfg.IdleWindow) / float64(h.cfg.Interval))
}

// saveHeap saves Caddy's heap profile into cfg.Heap, and its text form, which ends with
// the runtime's memory statistics, into cfg.Heap + ".txt". Taken after RSS was measured.
func (h *Harness) saveHeap(srv *Server) error {
	url := fmt.Sprintf("http://%s/debug/pprof/heap", srv.AdminAddr)
	h.logf("heap profile of %s into %s", srv.Name, h.cfg.Heap)
	if err := fetchTo(url+"?debug=1", h.cfg.Heap+".txt", 30*time.Second); err != nil {
		return err
	}
	return fetchTo(url, h.cfg.Heap, 30*time.Second)
}

// profileFetch is a CPU profile being fetched from Caddy's admin endpoint.
type profileFetch struct {
	done chan struct{}
	err  error
}

// startProfile fetches a CPU profile of cfg.PprofSeconds into cfg.Pprof.
func (h *Harness) startProfile(srv *Server) *profileFetch {
	p := &profileFetch{done: make(chan struct{})}
	url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", srv.AdminAddr, h.cfg.PprofSeconds)
	h.logf("profiling %s for %ds into %s", srv.Name, h.cfg.PprofSeconds, h.cfg.Pprof)
	go func() {
		defer close(p.done)
		p.err = fetchTo(url, h.cfg.Pprof, time.Duration(h.cfg.PprofSeconds+30)*time.Second)
	}()
	return p
}

// running reports whether the profile is still being taken; a nil fetch is not.
func (p *profileFetch) running() bool {
	if p == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// wait waits for the fetch to end and returns its error.
func (p *profileFetch) wait() error {
	if p == nil {
		return nil
	}
	<-p.done
	return p.err
}

// fetchTo saves the body of a GET of url to path.
func fetchTo(url, path string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("pprof: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("pprof: %s", resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Continuous publishes changes back to back to subscribers of a fresh server: each as soon
// as the last was committed (for poll_sse, served by the upstream, so none coalesce).
func (h *Harness) Continuous(name string) (ContResult, error) {
	r := ContResult{Server: name, Subs: h.cfg.ContSubs, Changes: h.cfg.ContChanges}
	srv, err := h.start(name)
	if err != nil {
		return r, err
	}
	defer srv.Stop()
	pool, err := h.connect(srv, h.cfg.ContSubs, SubOptions{})
	if err != nil {
		return r, err
	}
	defer pool.Close()
	connected := pool.Live()
	time.Sleep(time.Second)
	c0, _ := srv.Usage()
	var lo, hi int64
	for i := range h.cfg.ContChanges {
		seq := h.nextSeq()
		if i == 0 {
			lo = seq
		}
		hi = seq
		if _, err := srv.Publish(seq, ""); err != nil {
			return r, fmt.Errorf("%s: publish %d: %w", name, seq, err)
		}
		if err := srv.AwaitPublished(seq, h.cfg.ChangeTimeout); err != nil {
			return r, fmt.Errorf("%s: %w", name, err)
		}
	}
	if err := pool.WaitSeq(hi, 3*h.cfg.ChangeTimeout); err != nil {
		return r, fmt.Errorf("%s: continuous: %w", name, err)
	}
	c1, _ := srv.Usage()
	ph := Analyze(pool.Subs(), lo, hi)
	r.DeliveriesSec = float64(ph.Deliveries) / (float64(ph.LastRecv-ph.FirstT0) / 1e9)
	r.LostPerSub = float64(ph.Lost) / float64(ph.Subs)
	r.LostMax, r.Reordered = ph.LostMax, ph.Reordered
	r.P50, r.P99 = Pct(ph.Latency, 50), Pct(ph.Latency, 99)
	r.CPU = float64(c1.CPU-c0.CPU) / float64(time.Millisecond)
	r.Dropped = connected - pool.Live()
	return r, nil
}

// Slow measures the others' latency without and with a subscriber that reads nothing
// while large changes are published, then lets it read and checks that it converges.
func (h *Harness) Slow(name string) (SlowResult, error) {
	r := SlowResult{Server: name, Subs: h.cfg.SlowSubs, Changes: h.cfg.SlowChanges}
	srv, err := h.start(name)
	if err != nil {
		return r, err
	}
	defer srv.Stop()
	others, err := h.connect(srv, h.cfg.SlowSubs-1, SubOptions{})
	if err != nil {
		return r, err
	}
	defer others.Close()
	connected := others.Live()
	time.Sleep(time.Second)
	pad := func(seq int64) string { return bigPad(seq, h.cfg.SlowPad) }
	lo, hi, err := h.paced(srv, others, h.cfg.SlowBefore, pad, nil)
	if err != nil {
		return r, err
	}
	before := Analyze(others.Subs(), lo, hi)
	r.Without = [2]float64{Pct(before.Latency, 50), Pct(before.Latency, 99)}
	r.TTLWithout = Pct(before.TTL, 50)

	stall := make(chan struct{})
	stalled, err := h.connect(srv, 1, SubOptions{RcvBuf: h.cfg.SlowRcvBuf, Stall: stall})
	if err != nil {
		return r, err
	}
	defer stalled.Close()
	lo, hi, err = h.paced(srv, others, h.cfg.SlowChanges, pad, nil)
	if err != nil {
		return r, err
	}
	during := Analyze(others.Subs(), lo, hi)
	r.With = [2]float64{Pct(during.Latency, 50), Pct(during.Latency, 99)}
	r.TTLWith = Pct(during.TTL, 50)
	r.OthersLost = before.Lost + during.Lost
	r.Disconns = connected - others.Live()
	h.drain(&r, srv, stalled, stall, lo, hi)
	return r, nil
}

// drain lets the stalled subscriber read, reconnects it with its last event id if its
// stream ended, and records whether and how it reached the final change hi.
func (h *Harness) drain(r *SlowResult, srv *Server, stalled *Pool, stall chan struct{}, lo, hi int64) {
	sub := stalled.Subs()[0]
	released := time.Now()
	close(stall)
	ended := waitFor(h.cfg.DrainTimeout, func() bool {
		seq, dead, _, _ := sub.State()
		return seq >= hi || dead
	})
	recs := sub.Recs()
	seq, dead, endErr, lastID := sub.State()
	r.StalledEvents = countFrom(recs, lo)
	if seq >= hi {
		r.Converged, r.ConvergeMS = true, ms(lastRecv(recs)-released.UnixNano())
		r.How = howCaughtUp(recs, lo, hi)
		return
	}
	if !ended || !dead {
		r.How = fmt.Sprintf("not converged: last seq %d of %d after %v", seq-lo+1, hi-lo+1, h.cfg.DrainTimeout)
		return
	}
	r.How = fmt.Sprintf("disconnected (%v) after %d events", shortErr(endErr), r.StalledEvents)
	h.resume(r, srv, lastID, released, lo, hi)
}

// resume reconnects a disconnected subscriber with Last-Event-ID and records the result.
func (h *Harness) resume(r *SlowResult, srv *Server, lastID string, released time.Time, lo, hi int64) {
	again := NewPool(srv.Addr, srv.Path, srv.Snapshot)
	defer again.Close()
	if err := again.Connect(1, 1, SubOptions{LastID: lastID}, h.cfg.ConnectTimeout); err != nil || again.Live() == 0 {
		r.How += "; reconnect failed"
		return
	}
	sub := again.Subs()[0]
	waitFor(h.cfg.DrainTimeout, func() bool { seq, dead, _, _ := sub.State(); return seq >= hi || dead })
	recs := sub.Recs()
	if seq, _, _, _ := sub.State(); seq >= hi {
		r.Converged, r.ConvergeMS = true, ms(lastRecv(recs)-released.UnixNano())
		r.How += fmt.Sprintf("; resumed with Last-Event-ID %q: %s", lastID, recs[0].Kind)
		return
	}
	r.How += fmt.Sprintf("; resumed with Last-Event-ID %q: nothing (dropped)", lastID)
}

// howCaughtUp tells how a subscriber that reached hi got there from lo.
func howCaughtUp(recs []Rec, lo, hi int64) string {
	n, snapshot, prev, skipped := 0, false, lo-1, 0
	for _, rec := range recs {
		if rec.Seq < lo {
			continue
		}
		n++
		if rec.Kind == KindSnapshot {
			snapshot = true
		}
		if rec.Seq > prev {
			skipped += int(rec.Seq - prev - 1)
			prev = rec.Seq
		}
	}
	switch {
	case snapshot:
		return fmt.Sprintf("snapshot (%d events, %d changes skipped)", n, skipped)
	case skipped > 0:
		return fmt.Sprintf("catch-up patch (%d events, %d changes skipped)", n, skipped)
	}
	return fmt.Sprintf("every event delivered late (%d, server buffered them)", n)
}

// countFrom counts the events of seq lo or later.
func countFrom(recs []Rec, lo int64) int {
	n := 0
	for _, r := range recs {
		if r.Seq >= lo {
			n++
		}
	}
	return n
}

// lastRecv is the latest receive time in recs.
func lastRecv(recs []Rec) int64 {
	var t int64
	for _, r := range recs {
		t = max(t, r.Recv)
	}
	return t
}

// shortErr names why a stream ended.
func shortErr(err error) string {
	switch {
	case err == nil:
		return "ended"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "closed by server"
	}
	return err.Error()
}

// waitFor polls cond every 5 ms until it holds or timeout; it reports whether it held.
func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(5 * time.Millisecond)
	}
	return cond()
}

// TrialNchan runs Nchan with worker_processes 1 and auto at n subscribers, and keeps the
// one with the lower time-to-last.
func (h *Harness) TrialNchan(n int) error {
	h.nchan.Trial = map[string]float64{}
	h.nchan.TrialN = n
	for _, w := range []string{"1", "auto"} {
		h.nchan.Workers = w
		res, err := h.Fanout(Nchan, n, h.cfg.TrialChanges, false)
		if err != nil {
			return fmt.Errorf("nchan trial, worker_processes %s: %w", w, err)
		}
		h.nchan.Trial[w] = res.TTL50
		h.logf("nchan worker_processes %s: time-to-last p50 %.1f ms at %d", w, res.TTL50, n)
	}
	h.nchan.Workers = "1"
	if h.nchan.Trial["auto"] < h.nchan.Trial["1"] {
		h.nchan.Workers = "auto"
	}
	return nil
}
