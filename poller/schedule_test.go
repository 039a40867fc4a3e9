package poller

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// scriptServer answers the n-th request with statuses[n] (200 past the end), and the
// header h on non-2xx answers.
func scriptServer(t *testing.T, h http.Header, statuses ...int) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		i := int(n.Add(1)) - 1
		if i < len(statuses) && statuses[i] != http.StatusOK {
			for k, vs := range h {
				w.Header()[k] = vs
			}
			w.WriteHeader(statuses[i])
			return
		}
		_, _ = w.Write([]byte(`{}`))
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func TestBackoffFormula(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name              string
		interval, maxBack time.Duration
		rand              float64
		failures          int
		want              time.Duration
	}{
		{"first failure, top of range", time.Second, time.Minute, 1, 1, 2 * time.Second},
		{"fifth failure, top of range", time.Second, time.Minute, 1, 5, 32 * time.Second},
		{"capped at MaxBackoff", time.Second, time.Minute, 1, 6, time.Minute},
		{"huge failure count stays capped", time.Second, time.Minute, 1, 1000, time.Minute},
		{"bottom of range never below interval", time.Second, time.Minute, 0, 1, time.Second},
		{"bottom of range is half", time.Second, time.Minute, 0, 3, 4 * time.Second},
		{"middle of range", time.Second, time.Minute, 0.5, 2, 3 * time.Second},
		{"interval above MaxBackoff", 2 * time.Minute, time.Minute, 0, 4, 2 * time.Minute},
		{"default MaxBackoff", time.Second, 0, 1, 10, DefaultMaxBackoff},
		{"rand above 1 is clamped", time.Second, time.Minute, 7, 1, 2 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := newPoller(t, Config{URL: "http://127.0.0.1/", Interval: tc.interval, MaxBackoff: tc.maxBack, Rand: constRand(tc.rand)})
			if got := p.backoff(tc.failures); got != tc.want {
				t.Fatalf("backoff(%d) = %v; want %v", tc.failures, got, tc.want)
			}
		})
	}
}

func TestStartJitter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		interval time.Duration
		rand     float64
		want     time.Duration
	}{
		{"zero", time.Second, 0, 0},
		{"half of a quarter interval", time.Second, 0.5, 125 * time.Millisecond},
		{"short interval", 100 * time.Millisecond, 0.5, 12500 * time.Microsecond},
		{"long interval spreads over 1s", time.Hour, 0.5, 125 * time.Millisecond},
		{"top stays below the bound", time.Second, 1, 250*time.Millisecond - 1},
		{"negative rand", time.Second, -3, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := newPoller(t, Config{URL: "http://127.0.0.1/", Interval: tc.interval, Rand: constRand(tc.rand)})
			if got := p.startJitter(); got != tc.want {
				t.Fatalf("startJitter() = %v; want %v", got, tc.want)
			}
		})
	}
}

func TestRunWaitsStartJitterFirst(t *testing.T) {
	t.Parallel()
	srv, n := scriptServer(t, nil)
	clk := newFakeClock()
	p := newPoller(t, Config{URL: srv.URL, Interval: time.Second, Clock: clk, Rand: constRand(0.7)})
	runLoop(t, p)
	w := clk.next(t)
	if w.d < 0 || w.d >= 250*time.Millisecond || w.d != 175*time.Millisecond {
		t.Fatalf("first wait %v; want 175ms, within [0, 250ms)", w.d)
	}
	if n.Load() != 0 {
		t.Fatal("polled before the start jitter passed")
	}
}

func TestRunBackoffTimeline(t *testing.T) {
	t.Parallel()
	srv, n := scriptServer(t, nil, 500, 500, 500, 500, 500, 200, 500, 200)
	clk := newFakeClock()
	p := newPoller(t, Config{URL: srv.URL, Interval: time.Second, MaxBackoff: 10 * time.Second, Clock: clk, Rand: constRand(1)})
	results := runLoop(t, p)
	steps := []struct {
		wait     time.Duration
		failures int
	}{
		{250*time.Millisecond - 1, 0}, // start jitter
		{2 * time.Second, 1},
		{4 * time.Second, 2},
		{8 * time.Second, 3},
		{10 * time.Second, 4},
		{10 * time.Second, 5},
		{time.Second, 0}, // success resets
		{2 * time.Second, 1},
		{time.Second, 0},
	}
	for i, s := range steps {
		w := clk.next(t)
		failures, next := p.Backoff()
		if w.d != s.wait || failures != s.failures || !next.Equal(clk.now.Add(s.wait)) {
			t.Fatalf("step %d: wait %v, Backoff() = %d, %v; want %v, %d, %v", i, w.d, failures, next, s.wait, s.failures, clk.now.Add(s.wait))
		}
		if got := n.Load(); got != int64(i) {
			t.Fatalf("step %d: %d requests; want %d", i, got, i)
		}
		w.fire <- clk.now
		if i < len(steps)-1 {
			nextResult(t, results)
		}
	}
}

func TestRunCountsIntervalFromPollStart(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		pollTook time.Duration
		requests int64         // made when Run first waits after the start jitter
		wait     time.Duration // that wait
	}{
		{"short poll", 300 * time.Millisecond, 1, 700 * time.Millisecond},
		{"poll longer than the interval", 1500 * time.Millisecond, 3, 2 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv, n := scriptServer(t, nil, 200, 200, 500)
			clk := newFakeClock()
			clk.step = tc.pollTook // Poll reads the clock twice: at its start and its end
			p := newPoller(t, Config{URL: srv.URL, Interval: time.Second, Clock: clk, Rand: constRand(1)})
			runLoop(t, p)
			clk.next(t).fire <- clk.now // start jitter
			w := clk.next(t)
			if got := n.Load(); got != tc.requests || w.d != tc.wait {
				t.Fatalf("%d requests, then a wait of %v; want %d, %v", got, w.d, tc.requests, tc.wait)
			}
		})
	}
}

func TestRunHonoursRetryAfter(t *testing.T) {
	t.Parallel()
	now := newFakeClock().now
	date := func(d time.Duration) string { return now.Add(d).Format(http.TimeFormat) }
	tests := []struct {
		name            string
		status          int
		retryAfter      string
		wait, resultHas time.Duration
	}{
		{"503 delta seconds", 503, "7", 7 * time.Second, 7 * time.Second},
		{"429 delta seconds", 429, "3", 3 * time.Second, 3 * time.Second},
		{"503 HTTP-date", 503, date(30 * time.Second), 30 * time.Second, 30 * time.Second},
		{"503 huge delta capped", 503, "99999999", MaxRetryAfter, MaxRetryAfter},
		{"503 overlong digits capped", 503, "999999999999999999999999", MaxRetryAfter, MaxRetryAfter},
		{"503 far date capped", 503, date(48 * time.Hour), MaxRetryAfter, MaxRetryAfter},
		{"503 shorter than backoff", 503, "1", 2 * time.Second, time.Second},
		{"503 past date", 503, date(-time.Hour), 2 * time.Second, 0},
		{"503 malformed", 503, "soon", 2 * time.Second, 0},
		{"500 ignores Retry-After", 500, "7", 2 * time.Second, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv, _ := scriptServer(t, http.Header{"Retry-After": {tc.retryAfter}}, tc.status)
			clk := newFakeClock()
			p := newPoller(t, Config{URL: srv.URL, Interval: time.Second, Clock: clk, Rand: constRand(1)})
			results := runLoop(t, p)
			clk.next(t).fire <- clk.now // start jitter
			res := nextResult(t, results)
			if w := clk.next(t); w.d != tc.wait {
				t.Fatalf("wait %v; want %v", w.d, tc.wait)
			}
			if res.Status != tc.status || res.RetryAfter != tc.resultHas {
				t.Fatalf("status %d, RetryAfter %v; want %d, %v", res.Status, res.RetryAfter, tc.status, tc.resultHas)
			}
		})
	}
}

// TestPokeWaitsOutFailures checks that pokes never shorten the wait after a failure: not
// the backoff after a 500, not the Retry-After of a 429 or 503. The poll at the end of
// the wait serves them, and adds no extra poll of its own.
func TestPokeWaitsOutFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		status int
		header http.Header
		wait   time.Duration
	}{
		{"backoff after 500", 500, nil, 2 * time.Second},
		{"429 Retry-After", 429, http.Header{"Retry-After": {"5"}}, 5 * time.Second},
		{"503 Retry-After", 503, http.Header{"Retry-After": {"30"}}, 30 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv, n := scriptServer(t, tc.header, tc.status)
			clk := newFakeClock()
			p := newPoller(t, Config{URL: srv.URL, Interval: time.Second, Clock: clk, Rand: constRand(1)})
			results := runLoop(t, p)
			clk.next(t).fire <- clk.now // start jitter
			nextResult(t, results)
			w := clk.next(t)
			if w.d != tc.wait {
				t.Fatalf("wait after %d: %v; want %v", tc.status, w.d, tc.wait)
			}
			for range 1000 {
				p.Poke()
			}
			select {
			case extra := <-clk.waits:
				t.Fatalf("a poke during the wait asked for another wait of %v", extra.d)
			case r := <-results:
				t.Fatalf("a poke during the wait made a poll: %+v", r)
			case <-time.After(200 * time.Millisecond):
			}
			if got := n.Load(); got != 1 {
				t.Fatalf("%d requests before the wait ended; want 1", got)
			}
			w.fire <- clk.now
			nextResult(t, results)
			if next := clk.next(t); next.d != time.Second {
				t.Fatalf("after the poll that ended the wait, a wait of %v; want the interval, 1s", next.d)
			}
			if got := n.Load(); got != 2 {
				t.Fatalf("%d requests; want 2", got)
			}
		})
	}
}

// TestPokeKeepsMinPokeGap checks, with a fake clock, that a poke after a success brings
// the next poll forward to MinPokeGap after the previous poll started, and no sooner.
func TestPokeKeepsMinPokeGap(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		step time.Duration // each reading of the clock moves it on by step
		wait time.Duration // the wait a poke leads to; 0: the poll starts at once
	}{
		// The clock stands still: the poke comes right after the poll.
		{"at once", 0, MinPokeGap},
		// Poll from +40ms to +80ms, the wait starts at +120ms and the poke is seen at
		// +160ms: MinPokeGap after the poll started is 20ms later.
		{"part of the gap passed", 40 * time.Millisecond, 20 * time.Millisecond},
		// The poll alone took MinPokeGap.
		{"gap passed", MinPokeGap, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv, n := scriptServer(t, nil)
			clk := newFakeClock()
			p := newPoller(t, Config{URL: srv.URL, Interval: time.Hour, Clock: clk, Rand: constRand(0)})
			clk.step = tc.step
			results := runLoop(t, p)
			nextResult(t, results) // start jitter 0: polled at once
			long := clk.next(t)
			if long.d != time.Hour-tc.step {
				t.Fatalf("wait after the poll %v; want %v", long.d, time.Hour-tc.step)
			}
			p.Poke()
			if tc.wait > 0 {
				w := clk.next(t)
				if w.d != tc.wait {
					t.Fatalf("poke led to a wait of %v; want %v", w.d, tc.wait)
				}
				for range 100 {
					p.Poke()
				}
				if got := n.Load(); got != 1 {
					t.Fatalf("%d requests before the gap passed; want 1", got)
				}
				w.fire <- clk.now
			}
			nextResult(t, results)
			if got := n.Load(); got != 2 {
				t.Fatalf("%d requests after the poke; want 2", got)
			}
		})
	}
}

// TestPokeFloodIsRateLimited pokes a healthy loop 1,000 times in about a second, from
// several goroutines, and counts the polls: at most one per MinPokeGap, plus the first.
func TestPokeFloodIsRateLimited(t *testing.T) {
	t.Parallel()
	srv, n := scriptServer(t, nil)
	p := newPoller(t, Config{URL: srv.URL, Interval: time.Hour, Rand: constRand(0)})
	results := runLoop(t, p)
	nextResult(t, results)
	start := time.Now()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 250 {
				p.Poke()
				time.Sleep(4 * time.Millisecond)
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	polls := n.Load() - 1
	bound := int64(took/MinPokeGap) + 1
	if polls > bound {
		t.Fatalf("1000 pokes over %v made %d polls; want at most %d", took, polls, bound)
	}
	if polls < 1 {
		t.Fatal("1000 pokes made no poll")
	}
	t.Logf("1000 pokes over %v: %d polls", took.Round(time.Millisecond), polls)
}

func TestPokePollsPromptly(t *testing.T) {
	t.Parallel()
	srv, n := scriptServer(t, nil)
	p := newPoller(t, Config{URL: srv.URL, Interval: time.Hour, Rand: constRand(0)})
	results := runLoop(t, p)
	nextResult(t, results)
	for i := range 3 {
		p.Poke()
		nextResult(t, results)
		if got := n.Load(); got != int64(i+2) {
			t.Fatalf("%d requests after %d pokes; want %d", got, i+1, i+2)
		}
	}
}

func TestPokesDuringPollCoalesce(t *testing.T) {
	t.Parallel()
	var n atomic.Int64
	entered, release := make(chan struct{}), make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if n.Add(1) == 1 {
			close(entered)
			<-release
		}
		_, _ = w.Write([]byte(`{}`))
	}))
	t.Cleanup(srv.Close)
	p := newPoller(t, Config{URL: srv.URL, Interval: time.Hour, Rand: constRand(0)})
	results := runLoop(t, p)
	select {
	case <-entered:
	case <-time.After(waitBound):
		t.Fatal("first poll never arrived")
	}
	var wg sync.WaitGroup
	for range 5 {
		wg.Go(func() {
			for range 10 {
				p.Poke()
			}
		})
	}
	wg.Wait()
	close(release)
	nextResult(t, results)
	nextResult(t, results)
	select {
	case <-results:
		t.Fatalf("more than one extra poll: %d requests", n.Load())
	case <-time.After(300 * time.Millisecond):
	}
	if got := n.Load(); got != 2 {
		t.Fatalf("%d requests; want 2", got)
	}
}
