package main

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"
)

// writeReport writes the header and every table.
func writeReport(b *strings.Builder, h *Harness, runs []RunResult, started time.Time) {
	cfg := h.cfg
	fmt.Fprintf(b, "# poll_sse benchmark\n\n")
	fmt.Fprintf(b, "date:     %s (took %s)\n", started.Format(time.RFC3339), time.Since(started).Round(time.Second))
	fmt.Fprintf(b, "command:  %s\n", cfg.Command)
	if cfg.Label != "" {
		fmt.Fprintf(b, "measured: %s\n", cfg.Label)
	}
	fmt.Fprintf(b, "machine:  %d cores, %s, Linux %s, %s\n", runtime.NumCPU(), cpuModel(), kernel(), runtime.Version())
	fmt.Fprintf(b, "peers:    %s, nchan %s; Nchan worker_processes %s%s\n", nginxVersion(cfg.Nginx), nchanVersion(), h.nchan.Workers, trialNote(h.nchan))
	fmt.Fprintf(b, "settings: %d run(s), medians shown; poll_sse interval %v, poke; %d paced changes per N; settle %v\n\n",
		len(runs), cfg.Interval, cfg.Changes, cfg.Settle)
	if h.has("fanout") {
		writeFanout(b, runs)
		writeFraming(b, runs)
		writeUpstream(b, runs, cfg)
	}
	if h.has("continuous") {
		writeContinuous(b, runs, cfg)
	}
	if h.has("slow") {
		writeSlow(b, runs, cfg)
	}
	if h.has("storm") {
		writeStorm(b, runs, cfg)
	}
	if h.has("fanout") {
		writePerRun(b, runs)
	}
}

// trialNote says what the Nchan worker trial measured.
func trialNote(c NchanChoice) string {
	if len(c.Trial) == 0 {
		return " (set by -nchan-workers)"
	}
	return fmt.Sprintf(" (faster in a trial at N=%d: time-to-last p50 %s ms with 1, %s ms with auto)",
		c.TrialN, f1(c.Trial["1"]), f1(c.Trial["auto"]))
}

// writeFanout writes the fan-out table: medians over runs, ratios per run.
func writeFanout(b *strings.Builder, runs []RunResult) {
	fmt.Fprintf(b, "## Fan-out: one change to N subscribers (paced changes; medians over runs)\n\n")
	fmt.Fprintf(b, "| server | N | connected | failed | RSS/sub KiB | TTF p50 ms | TTL p50 ms | TTL p90 ms | TTL vs Nchan (per run) | CPU ms/change |\n")
	fmt.Fprintf(b, "|---|---|---|---|---|---|---|---|---|---|\n")
	for _, key := range fanoutKeys(runs) {
		rs := fanoutOf(runs, key.server, key.n)
		ratios := make([]float64, len(runs))
		for i := range runs {
			ratios[i] = fanoutRatio(runs[i], key.server, key.n)
		}
		fmt.Fprintf(b, "| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s |\n", key.server, key.n,
			f0(med(rs, func(r FanoutResult) float64 { return float64(r.Connected) })),
			f0(sum(rs, func(r FanoutResult) float64 { return float64(r.Failed + r.Dropped) })),
			f2(med(rs, func(r FanoutResult) float64 { return r.RSSPerSubKiB })),
			f1(med(rs, func(r FanoutResult) float64 { return r.TTF50 })),
			f1(med(rs, func(r FanoutResult) float64 { return r.TTL50 })),
			f1(med(rs, func(r FanoutResult) float64 { return r.TTL90 })),
			ratioCell(ratios),
			f2(med(rs, func(r FanoutResult) float64 { return r.CPUPerChange })))
	}
	fmt.Fprintf(b, "\n")
}

// writeFraming says how each server framed its response bodies in the first run.
func writeFraming(b *strings.Builder, runs []RunResult) {
	seen := map[string]bool{}
	var parts []string
	for _, r := range runs[0].Fanout {
		if !seen[r.Server] {
			seen[r.Server] = true
			parts = append(parts, fmt.Sprintf("%s %s", r.Server, r.Framing))
		}
	}
	fmt.Fprintf(b, "Response framing (first N of run 1): %s.\n\n", strings.Join(parts, "; "))
}

// ratioCell is the median ratio followed by each run's.
func ratioCell(ratios []float64) string {
	m := Median(ratios)
	if math.IsNaN(m) {
		return "—"
	}
	var each []string
	for _, r := range ratios {
		each = append(each, f2(r))
	}
	return fmt.Sprintf("%s× (%s)", f2(m), strings.Join(each, " "))
}

// fanoutRatio is server's time-to-last over Nchan's at n in one run.
func fanoutRatio(run RunResult, server string, n int) float64 {
	var mine, theirs float64 = math.NaN(), math.NaN()
	for _, r := range run.Fanout {
		if r.N != n {
			continue
		}
		if r.Server == server {
			mine = r.TTL50
		}
		if r.Server == Nchan {
			theirs = r.TTL50
		}
	}
	return mine / theirs
}

type fanoutKey struct {
	server string
	n      int
}

// fanoutKeys lists (server, N) in the order measured.
func fanoutKeys(runs []RunResult) []fanoutKey {
	var keys []fanoutKey
	for _, r := range runs[0].Fanout {
		keys = append(keys, fanoutKey{r.Server, r.N})
	}
	return keys
}

// fanoutOf gathers one (server, N) over runs.
func fanoutOf(runs []RunResult, server string, n int) []FanoutResult {
	var out []FanoutResult
	for _, run := range runs {
		for _, r := range run.Fanout {
			if r.Server == server && r.N == n {
				out = append(out, r)
			}
		}
	}
	return out
}

// writeUpstream writes poll_sse's upstream requests per interval next to direct polling's.
func writeUpstream(b *strings.Builder, runs []RunResult, cfg Config) {
	fmt.Fprintf(b, "## Upstream requests per interval (idle %v window, interval %v)\n\n", cfg.IdleWindow, cfg.Interval)
	fmt.Fprintf(b, "| N | poll_sse, measured (per run) | direct polling |\n|---|---|---|\n")
	for _, n := range cfg.Counts {
		rs := fanoutOf(runs, PollSSE, n)
		if len(rs) == 0 {
			continue
		}
		var each []string
		for _, r := range rs {
			each = append(each, f1(r.ReqPerIntvl))
		}
		fmt.Fprintf(b, "| %d | %s (%s) | %d |\n", n, f1(med(rs, func(r FanoutResult) float64 { return r.ReqPerIntvl })), strings.Join(each, " "), n)
	}
	fmt.Fprintf(b, "\n")
}

// writeContinuous writes the continuous-load table.
func writeContinuous(b *strings.Builder, runs []RunResult, cfg Config) {
	fmt.Fprintf(b, "## Continuous load: %d subscribers, %d back-to-back changes (medians over runs)\n\n", cfg.ContSubs, cfg.ContChanges)
	fmt.Fprintf(b, "| server | deliveries/s | vs baseline (per run) | lost/sub | lost max | reordered | p50 ms | p99 ms | CPU ms | dropped |\n")
	fmt.Fprintf(b, "|---|---|---|---|---|---|---|---|---|---|\n")
	for _, first := range runs[0].Cont {
		var rs []ContResult
		ratios := make([]float64, len(runs))
		for i, run := range runs {
			ratios[i] = math.NaN()
			var base float64 = math.NaN()
			for _, c := range run.Cont {
				if c.Server == Baseline {
					base = c.DeliveriesSec
				}
			}
			for _, c := range run.Cont {
				if c.Server == first.Server {
					rs = append(rs, c)
					ratios[i] = c.DeliveriesSec / base
				}
			}
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", first.Server,
			f0(med(rs, func(c ContResult) float64 { return c.DeliveriesSec })),
			ratioCell(ratios),
			f2(med(rs, func(c ContResult) float64 { return c.LostPerSub })),
			f0(med(rs, func(c ContResult) float64 { return float64(c.LostMax) })),
			f0(med(rs, func(c ContResult) float64 { return float64(c.Reordered) })),
			f1(med(rs, func(c ContResult) float64 { return c.P50 })),
			f1(med(rs, func(c ContResult) float64 { return c.P99 })),
			f0(med(rs, func(c ContResult) float64 { return c.CPU })),
			f0(sum(rs, func(c ContResult) float64 { return float64(c.Dropped) })))
	}
	fmt.Fprintf(b, "\n")
}

// writeSlow writes the slow-subscriber table and, per run, how the stalled one converged.
func writeSlow(b *strings.Builder, runs []RunResult, cfg Config) {
	fmt.Fprintf(b, "## Slow subscriber: %d subscribers, one reads nothing (SO_RCVBUF %d) during %d changes of %d KiB (medians over runs)\n\n",
		cfg.SlowSubs, cfg.SlowRcvBuf, cfg.SlowChanges, cfg.SlowPad>>10)
	fmt.Fprintf(b, "| server | others p50 / p99 ms without | with stalled | TTL p50 ms without / with | others lost | converged | how (run 1) |\n")
	fmt.Fprintf(b, "|---|---|---|---|---|---|---|\n")
	for _, first := range runs[0].Slow {
		var rs []SlowResult
		conv := 0
		for _, run := range runs {
			for _, s := range run.Slow {
				if s.Server == first.Server {
					rs = append(rs, s)
					if s.Converged {
						conv++
					}
				}
			}
		}
		how := first.How
		if first.Converged {
			how += fmt.Sprintf(", %s ms after it began reading", f0(first.ConvergeMS))
		}
		fmt.Fprintf(b, "| %s | %s / %s | %s / %s | %s / %s | %s | %d/%d | %s |\n", first.Server,
			f1(med(rs, func(s SlowResult) float64 { return s.Without[0] })),
			f1(med(rs, func(s SlowResult) float64 { return s.Without[1] })),
			f1(med(rs, func(s SlowResult) float64 { return s.With[0] })),
			f1(med(rs, func(s SlowResult) float64 { return s.With[1] })),
			f1(med(rs, func(s SlowResult) float64 { return s.TTLWithout })),
			f1(med(rs, func(s SlowResult) float64 { return s.TTLWith })),
			f0(sum(rs, func(s SlowResult) float64 { return float64(s.OthersLost) })),
			conv, len(rs), how)
	}
	fmt.Fprintf(b, "\n")
}

// writePerRun lists every run's fan-out numbers.
func writePerRun(b *strings.Builder, runs []RunResult) {
	fmt.Fprintf(b, "## Per run: fan-out (RSS/sub KiB, TTF p50, TTL p50 ms, CPU ms/change)\n\n")
	fmt.Fprintf(b, "| run | server | N | connected | RSS/sub | TTF | TTL | CPU |\n|---|---|---|---|---|---|---|---|\n")
	for i, run := range runs {
		for _, r := range run.Fanout {
			fmt.Fprintf(b, "| %d | %s | %d | %d | %s | %s | %s | %s |\n", i+1, r.Server, r.N, r.Connected,
				f2(r.RSSPerSubKiB), f1(r.TTF50), f1(r.TTL50), f2(r.CPUPerChange))
		}
	}
	fmt.Fprintf(b, "\n")
}

// med is the median of f over rs.
func med[T any](rs []T, f func(T) float64) float64 {
	xs := make([]float64, len(rs))
	for i, r := range rs {
		xs[i] = f(r)
	}
	return Median(xs)
}

// sum is the sum of f over rs.
func sum[T any](rs []T, f func(T) float64) float64 {
	var s float64
	for _, r := range rs {
		s += f(r)
	}
	return s
}

func f0(x float64) string { return format(x, 0) }
func f1(x float64) string { return format(x, 1) }
func f2(x float64) string { return format(x, 2) }

// format prints x with prec decimals, or a dash when it is not a number.
func format(x float64, prec int) string {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return "—"
	}
	return fmt.Sprintf("%.*f", prec, x)
}

// cpuModel is the first model name in /proc/cpuinfo.
func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for line := range strings.SplitSeq(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

// kernel is the running kernel's release.
func kernel() string {
	b, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return strings.TrimSpace(string(b))
}

// nginxVersion asks nginx for its version.
func nginxVersion(nginx string) string {
	out, err := exec.Command(nginx, "-v").CombinedOutput()
	if err != nil {
		return "nginx (version unknown)"
	}
	v := strings.TrimSpace(string(out))
	if _, after, ok := strings.Cut(v, "version: "); ok {
		return after
	}
	return v
}

// nchanVersion asks dpkg for the Nchan module's package version.
func nchanVersion() string {
	out, err := exec.Command("dpkg-query", "-W", "-f", "${Version}", "libnginx-mod-nchan").Output()
	if err != nil {
		return "(version unknown)"
	}
	return strings.TrimSpace(string(out))
}
