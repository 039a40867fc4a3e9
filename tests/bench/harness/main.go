// Command harness drives the poll_sse benchmark: it runs a mock upstream, starts poll_sse
// (Caddy), Nchan (nginx) and a plain Go broadcaster one after another, connects raw-TCP
// SSE subscribers to each, publishes changes, and prints one report comparing them.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Config is the harness's settings.
type Config struct {
	Caddy, Nginx, NchanModule, Baseline string

	Servers      []string
	Counts       []int
	Runs         int
	Out          string
	Pprof        string
	PprofSeconds int
	Heap         string // heap profile of Caddy's idle subscribers, taken in the profiled fan-out run
	NchanWorkers string
	Command      string
	Label        string
	PidFile      string

	Changes       int // paced changes per subscriber count
	TrialChanges  int // paced changes of each Nchan worker trial
	MaxChanges    int // bound on paced changes while a profile is taken
	ContSubs      int
	ContChanges   int
	SlowSubs      int
	SlowBefore    int // large changes before the stalled subscriber joins
	SlowChanges   int // large changes while it reads nothing
	SlowPad       int // bytes of pad in each large change
	SlowRcvBuf    int // the stalled subscriber's SO_RCVBUF
	InFlight      int // subscribers connecting at once
	Scenarios     []string
	StormSubs     int // subscribers that drop and reconnect at once
	StormChanges  int // changes they are spread over
	StormDoc      int // poll_sse's document size in the storm, bytes
	StormInFlight int // storm reconnects at once; 0 for all

	Interval       time.Duration
	Settle         time.Duration
	IdleWindow     time.Duration
	ConnectTimeout time.Duration
	ChangeTimeout  time.Duration
	DrainTimeout   time.Duration
}

func parseFlags() (Config, error) {
	var c Config
	var servers, counts, scenarios string
	flag.StringVar(&c.Caddy, "caddy", "", "path of the Caddy binary built with poll_sse")
	flag.StringVar(&c.Nginx, "nginx", "/usr/sbin/nginx", "path of nginx")
	flag.StringVar(&c.NchanModule, "nchan-module", "/usr/lib/nginx/modules/ngx_nchan_module.so", "path of the Nchan module")
	flag.StringVar(&c.Baseline, "baseline", "", "path of the Go broadcaster binary")
	flag.StringVar(&servers, "servers", "poll_sse,nchan,go-baseline", "servers to measure")
	flag.StringVar(&counts, "counts", "1000,5000,10000", "subscriber counts")
	flag.IntVar(&c.Runs, "runs", 3, "runs; tables show medians")
	flag.StringVar(&c.Out, "out", "", "also write the report to this file")
	flag.StringVar(&c.Pprof, "pprof", "", "save a CPU profile of Caddy during the largest time-to-last run here, or, without fanout, during the storm")
	flag.IntVar(&c.PprofSeconds, "pprof-seconds", 5, "length of the CPU profile")
	flag.StringVar(&c.Heap, "heap", "", "save a heap profile of Caddy holding the largest count of idle subscribers here (and its text form with the memory statistics in FILE.txt)")
	flag.StringVar(&c.NchanWorkers, "nchan-workers", "", "Nchan worker_processes; empty tries 1 and auto and keeps the faster")
	flag.StringVar(&c.Command, "command", "", "the command line to print in the report")
	flag.StringVar(&c.Label, "label", "", "what was measured, e.g. the commit")
	flag.StringVar(&c.PidFile, "pidfile", "", "keep the running servers' pids in this file")
	flag.IntVar(&c.Changes, "changes", 20, "paced changes per subscriber count")
	flag.IntVar(&c.TrialChanges, "trial-changes", 5, "paced changes per Nchan worker trial")
	flag.IntVar(&c.MaxChanges, "max-changes", 2000, "bound on changes while profiling")
	flag.IntVar(&c.ContSubs, "cont-subs", 1000, "subscribers under continuous load")
	flag.IntVar(&c.ContChanges, "cont-changes", 300, "back-to-back changes under continuous load")
	flag.IntVar(&c.SlowSubs, "slow-subs", 1000, "subscribers in the slow-subscriber test, the stalled one included")
	flag.IntVar(&c.SlowBefore, "slow-before", 50, "large changes before the stalled subscriber joins")
	flag.IntVar(&c.SlowChanges, "slow-changes", 250, "large changes while it reads nothing")
	flag.IntVar(&c.SlowPad, "slow-pad", 32<<10, "pad bytes of each large change")
	flag.IntVar(&c.SlowRcvBuf, "slow-rcvbuf", 4096, "SO_RCVBUF of the stalled subscriber")
	flag.IntVar(&c.InFlight, "in-flight", 500, "subscribers connecting at once")
	flag.StringVar(&scenarios, "scenarios", "fanout,continuous,slow", "scenarios to run: fanout, continuous, slow, storm")
	flag.IntVar(&c.StormSubs, "storm-subs", 10000, "subscribers reconnecting at once in the storm")
	flag.IntVar(&c.StormChanges, "storm-changes", 10, "versions the storm's subscribers resume from (Nchan keeps 10 messages by default)")
	flag.IntVar(&c.StormDoc, "storm-doc", 1024, "poll_sse's document size in the storm, bytes")
	flag.IntVar(&c.StormInFlight, "storm-in-flight", 0, "storm reconnects in flight at once; 0 for all")
	flag.DurationVar(&c.Interval, "interval", time.Second, "poll_sse poll interval")
	flag.DurationVar(&c.Settle, "settle", 2*time.Second, "wait after connecting before measuring memory")
	flag.DurationVar(&c.IdleWindow, "idle-window", 5*time.Second, "window over which upstream requests are counted")
	flag.DurationVar(&c.ConnectTimeout, "connect-timeout", 90*time.Second, "bound on connecting one pool")
	flag.DurationVar(&c.ChangeTimeout, "change-timeout", 10*time.Second, "bound on one change reaching every subscriber")
	flag.DurationVar(&c.DrainTimeout, "drain-timeout", 10*time.Second, "bound on the stalled subscriber catching up")
	flag.Parse()
	c.Servers = strings.Split(servers, ",")
	c.Scenarios = strings.Split(scenarios, ",")
	for _, s := range strings.Split(counts, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return c, fmt.Errorf("bad count %q", s)
		}
		c.Counts = append(c.Counts, n)
	}
	return c, c.check()
}

// check verifies the settings that would make a run fail late.
func (c *Config) check() error {
	for _, s := range c.Servers {
		if !slices.Contains([]string{PollSSE, Nchan, Baseline}, s) {
			return fmt.Errorf("unknown server %q", s)
		}
	}
	need := map[string]string{PollSSE: c.Caddy, Nchan: c.Nginx, Baseline: c.Baseline}
	for _, s := range c.Servers {
		if _, err := os.Stat(need[s]); err != nil {
			return fmt.Errorf("%s: binary %q: %v", s, need[s], err)
		}
	}
	if slices.Contains(c.Servers, Nchan) {
		if _, err := os.Stat(c.NchanModule); err != nil {
			return fmt.Errorf("nchan module: %v", err)
		}
	}
	for _, s := range c.Scenarios {
		if !slices.Contains([]string{"fanout", "continuous", "slow", "storm"}, s) {
			return fmt.Errorf("unknown scenario %q", s)
		}
	}
	if c.StormChanges < 1 || c.StormSubs < 1 {
		return fmt.Errorf("storm-subs and storm-changes must be positive")
	}
	if c.Runs < 1 || c.Changes < 1 || c.SlowSubs < 2 || c.ContSubs < 1 || c.ContChanges < 1 {
		return fmt.Errorf("runs, changes and subscriber counts must be positive (slow-subs at least 2)")
	}
	if c.Command == "" {
		c.Command = strings.Join(os.Args, " ")
	}
	return nil
}

// raiseNoFile lifts the open-file limit to its hard limit.
func raiseNoFile() {
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) == nil && rl.Cur < rl.Max {
		rl.Cur = rl.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
	}
}

// readClockTicks asks getconf for USER_HZ.
func readClockTicks() {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err != nil {
		return
	}
	if v, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64); err == nil && v > 0 {
		clockTicks = v
	}
}

func main() {
	cfg, err := parseFlags()
	if err != nil {
		fmt.Fprintln(os.Stderr, "harness:", err)
		os.Exit(2)
	}
	raiseNoFile()
	readClockTicks()
	debug.SetGCPercent(400) // fewer collections competing with the servers for the cores
	children.pidFile = cfg.PidFile
	tmp, err := os.MkdirTemp("", "pollsse-bench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "harness:", err)
		os.Exit(1)
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s := <-sigs
		fmt.Fprintf(os.Stderr, "harness: %v: stopping the servers\n", s)
		StopAll()
		_ = os.RemoveAll(tmp)
		os.Exit(130)
	}()
	err = run(cfg, tmp)
	StopAll()
	_ = os.RemoveAll(tmp)
	if err != nil {
		fmt.Fprintln(os.Stderr, "harness: FAILED:", err)
		os.Exit(1)
	}
}

// run measures every run and prints the report; tmp holds the servers' configurations and
// logs.
func run(cfg Config, tmp string) error {
	up, err := StartUpstream()
	if err != nil {
		return err
	}
	defer up.Close()
	h := &Harness{cfg: cfg, up: up, tmp: tmp, log: os.Stderr, nchan: NchanChoice{Workers: cfg.NchanWorkers}}
	started := time.Now()
	if slices.Contains(cfg.Servers, Nchan) && cfg.NchanWorkers == "" {
		if err := h.TrialNchan(slices.Max(cfg.Counts)); err != nil {
			return err
		}
	}
	var runs []RunResult
	for i := range cfg.Runs {
		res, err := h.Run(i)
		if err != nil {
			return fmt.Errorf("run %d: %w", i+1, err)
		}
		runs = append(runs, res)
	}
	return h.report(runs, started)
}

// Run measures every server once.
func (h *Harness) Run(i int) (RunResult, error) {
	var res RunResult
	largest := slices.Max(h.cfg.Counts)
	for _, name := range h.cfg.Servers {
		if err := h.runServer(i, name, largest, &res); err != nil {
			return res, err
		}
	}
	return res, nil
}

// has reports whether the scenario is to run.
func (h *Harness) has(scenario string) bool { return slices.Contains(h.cfg.Scenarios, scenario) }

// runServer runs the chosen scenarios against the named server.
func (h *Harness) runServer(i int, name string, largest int, res *RunResult) error {
	if h.has("fanout") {
		if err := h.runFanout(i, name, largest, res); err != nil {
			return err
		}
	}
	if h.has("continuous") {
		h.logf("run %d: %s continuous load", i+1, name)
		c, err := h.Continuous(name)
		if err != nil {
			return err
		}
		h.logf("  %.0f deliveries/s, lost %.2f/sub, p50 %.1f ms, p99 %.1f ms", c.DeliveriesSec, c.LostPerSub, c.P50, c.P99)
		res.Cont = append(res.Cont, c)
	}
	if h.has("slow") {
		h.logf("run %d: %s slow subscriber", i+1, name)
		s, err := h.Slow(name)
		if err != nil {
			return err
		}
		h.logf("  p50/p99 without %.1f/%.1f, with %.1f/%.1f ms; converged %v: %s", s.Without[0], s.Without[1], s.With[0], s.With[1], s.Converged, s.How)
		res.Slow = append(res.Slow, s)
	}
	if h.has("storm") {
		h.logf("run %d: %s reconnect storm of %d", i+1, name, h.cfg.StormSubs)
		s, err := h.Storm(name)
		if err != nil {
			return err
		}
		h.logf("  %d of %d caught up, last %.1f ms, p50 %.1f ms, %.0f µs CPU/resume (client %.0f), %d turned away, %v computed for %d (format, id)",
			s.Converged, s.N, s.LastMS, s.P50MS, s.CPUPerRes, s.ClientCPU, s.Overflows, s.Computed, s.Distinct)
		res.Storm = append(res.Storm, s)
	}
	return nil
}

// runFanout measures fan-out at every count.
func (h *Harness) runFanout(i int, name string, largest int, res *RunResult) error {
	for _, n := range h.cfg.Counts {
		h.logf("run %d: %s fan-out at %d", i+1, name, n)
		profile := (h.cfg.Pprof != "" || h.cfg.Heap != "") && i == 0 && name == PollSSE && n == largest
		r, err := h.Fanout(name, n, h.cfg.Changes, profile)
		if err != nil {
			return err
		}
		h.logf("  connected %d, %.2f KiB/sub, ttf %.1f ms, ttl %.1f ms, cpu %.1f ms/change", r.Connected, r.RSSPerSubKiB, r.TTF50, r.TTL50, r.CPUPerChange)
		res.Fanout = append(res.Fanout, r)
	}
	return nil
}

// report prints the tables and writes them to cfg.Out.
func (h *Harness) report(runs []RunResult, started time.Time) error {
	var b strings.Builder
	writeReport(&b, h, runs, started)
	fmt.Print(b.String())
	if h.cfg.Out == "" {
		return nil
	}
	return os.WriteFile(h.cfg.Out, []byte(b.String()), 0o644)
}
