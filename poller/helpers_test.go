package poller

import (
	"context"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// waitBound bounds every wait of a test on something another goroutine does.
const waitBound = 5 * time.Second

// fakeClock moves on by step at each Now, or stands still; each After is a wait the test
// fires by hand.
type fakeClock struct {
	now   time.Time
	step  time.Duration
	ticks atomic.Int64
	waits chan fakeWait
}

// fakeWait is one wait Run asked for.
type fakeWait struct {
	d    time.Duration
	fire chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC), waits: make(chan fakeWait, 64)}
}

func (c *fakeClock) Now() time.Time {
	if c.step == 0 {
		return c.now
	}
	return c.now.Add(time.Duration(c.ticks.Add(1)) * c.step)
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	w := fakeWait{d: d, fire: make(chan time.Time, 1)}
	c.waits <- w
	return w.fire
}

// next returns the next wait Run asks for.
func (c *fakeClock) next(t *testing.T) fakeWait {
	t.Helper()
	select {
	case w := <-c.waits:
		return w
	case <-time.After(waitBound):
		t.Fatal("no wait asked for")
		return fakeWait{}
	}
}

// runLoop runs p.Run until the test ends and returns the channel of its results.
func runLoop(t *testing.T, p *Poller) <-chan Result {
	t.Helper()
	results := make(chan Result, 64)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.Run(ctx, func(r Result) {
			select {
			case results <- r:
			default:
			}
		})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return results
}

// nextResult returns the next result of a loop.
func nextResult(t *testing.T, results <-chan Result) Result {
	t.Helper()
	select {
	case r := <-results:
		return r
	case <-time.After(waitBound):
		t.Fatal("no result")
		return Result{}
	}
}

// recorded is what a test server saw of one request.
type recorded struct {
	method string
	header http.Header
	body   string
}

// recorder keeps every request a test server receives.
type recorder struct {
	mu   sync.Mutex
	reqs []recorded
}

func (rec *recorder) add(r *http.Request) int {
	b, _ := io.ReadAll(r.Body)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.reqs = append(rec.reqs, recorded{method: r.Method, header: r.Header.Clone(), body: string(b)})
	return len(rec.reqs)
}

func (rec *recorder) all() []recorded {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]recorded(nil), rec.reqs...)
}

// countingTransport counts the response body bytes its caller reads, before any decoding.
type countingTransport struct {
	base http.RoundTripper
	n    *atomic.Int64
}

func (c countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.base.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	resp.Body = countingBody{ReadCloser: resp.Body, n: c.n}
	return resp, nil
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

// countingClient returns a client whose reads of response bodies add to n.
func countingClient(n *atomic.Int64) *http.Client {
	c := NewClient()
	c.Transport = countingTransport{base: c.Transport, n: n}
	return c
}

func constRand(v float64) func() float64 { return func() float64 { return v } }
