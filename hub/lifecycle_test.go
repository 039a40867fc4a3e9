package hub

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/pollsse/caddy-poll-sse/diff"
)

// landingSource polls as fast as it can, at most maxPolls times, and when its context
// ends lands one more poll of every kind, as a poll in flight when its topic stops does:
// a change, a recovery and a failure with a reason of its own.
type landingSource struct {
	tr    *diff.Tracker
	ended *atomic.Int64 // Run calls that returned
}

const maxPolls = 20

func (s landingSource) Run(ctx context.Context, t *Topic) {
	for i := 0; i < maxPolls && ctx.Err() == nil; i++ {
		s.land(t, i)
	}
	<-ctx.Done()
	s.land(t, maxPolls)
	s.ended.Add(1)
}

func (s landingSource) land(t *Topic, i int) {
	ch, changed, err := s.tr.Update([]byte(doc(i)))
	if err != nil {
		panic(err)
	}
	t.Recover()
	if changed {
		t.Publish(ch)
	}
	t.Fail(http.StatusServiceUnavailable, fmt.Sprintf("down %d", i))
}

// observedHub returns a hub that lingers for linger and beats every millisecond, and the
// logs it writes.
func observedHub(t *testing.T, linger time.Duration) (*Hub, *observer.ObservedLogs) {
	core, logs := observer.New(zap.WarnLevel)
	h := New(Config{Linger: linger, Heartbeat: time.Millisecond, Logger: zap.New(core)})
	return h, logs
}

// checkNoPanic fails the test if a poll loop panicked.
func checkNoPanic(t *testing.T, logs *observer.ObservedLogs) {
	t.Helper()
	if n := logs.FilterMessage("poll loop panicked").Len(); n > 0 {
		t.Fatalf("%d poll loops panicked, the first: %v", n, logs.FilterMessage("poll loop panicked").All()[0].ContextMap())
	}
}

// TestStopWhilePollsLand stops thousands of topics, by linger and by Close, while their
// sources publish, fail, recover and are beaten, each landing one more poll of every
// kind after it was told to stop: nothing panics, every source's Run has returned when
// Close returns, and no goroutine is left.
func TestStopWhilePollsLand(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	const topics = 2000
	h, logs := observedHub(t, time.Microsecond)
	var started, ended atomic.Int64
	newSource := func() Source {
		started.Add(1)
		return landingSource{tr: new(diff.Tracker), ended: &ended}
	}
	for i := range topics {
		sub, err := h.Subscribe(fmt.Sprint("k", i%50), newSource, "", JSONPatch)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sub.Next(context.Background()); err != nil {
			t.Fatal(err)
		}
		sub.Close() // the topic expires a microsecond later, as its source polls
	}
	h.Close()
	if s, e := started.Load(), ended.Load(); s != e {
		t.Fatalf("%d sources started, %d returned from Run when Close returned", s, e)
	}
	checkNoPanic(t, logs)
}

// TestLateLingerStopsNothing: a linger timer that fired as a subscriber joined, and
// whose expiry runs only after that subscriber left again, leaves the topic lingering
// for the timer set when the subscriber left.
func TestLateLingerStopsNothing(t *testing.T) {
	t.Parallel()
	h := newHub(t, Config{Linger: time.Hour})
	src := newDocSource()
	first := subscribe(t, h, src, "")
	top := first.sub.t
	joins := func() uint64 {
		top.mu.RLock()
		defer top.mu.RUnlock()
		return top.joins
	}
	late := joins()
	first.sub.Close() // sets a linger timer for late
	subscribe(t, h, src, "").sub.Close()
	h.expire(top, late) // that timer fires now
	if top.isStopped() || h.Topics() != 1 {
		t.Fatal("a linger timer set before the last subscriber joined stopped the topic")
	}
	h.expire(top, joins()) // the timer set when the last subscriber left
	if !top.isStopped() || h.Topics() != 0 {
		t.Fatal("the topic outlived its linger")
	}
}

// TestServeAfterClose hands a connection to a hub that closed before it had writers:
// the connection is closed, and no goroutine starts for it after Close.
func TestServeAfterClose(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	h := New(Config{})
	sub, err := h.Subscribe("k", func() Source { return newDocSource() }, "", JSONPatch)
	if err != nil {
		t.Fatal(err)
	}
	h.Close()
	server, client := tcpPair(t)
	sub.Serve(context.Background(), server)
	_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(client); err != nil {
		t.Fatalf("the connection was not closed: %v", err)
	}
	if h.writers != nil {
		t.Fatal("the hub started writers after it closed")
	}
}

// TestServeWhileClosing serves connections as their hub closes, hundreds of times: every
// connection is closed, nothing races, and nothing is left running.
func TestServeWhileClosing(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	for range 300 {
		h := New(Config{Heartbeat: time.Millisecond})
		sub, err := h.Subscribe("k", func() Source { return newDocSource() }, "", JSONPatch)
		if err != nil {
			t.Fatal(err)
		}
		server, client := tcpPair(t)
		closed := make(chan struct{})
		go func() { h.Close(); close(closed) }()
		sub.Serve(context.Background(), server)
		_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadAll(client); err != nil {
			t.Fatalf("the connection was not closed: %v", err)
		}
		<-closed
	}
}

// tcpPair returns both ends of a loopback TCP connection, closed when the test ends.
func tcpPair(t *testing.T) (server, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	server, client = acceptPair(t, ln)
	t.Cleanup(func() { _ = server.Close() })
	return server, client
}

// TestSubscribeWhileClosing subscribes, reads, asks for the document and leaves, from
// several goroutines, on topics that linger a microsecond, while the hub closes, hundreds
// of times: every call either works or says ErrClosed, nothing panics or races, and
// nothing is left running.
func TestSubscribeWhileClosing(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	for round := range 200 {
		h, logs := observedHub(t, time.Microsecond)
		var ended atomic.Int64
		newSource := func() Source { return landingSource{tr: new(diff.Tracker), ended: &ended} }
		errs := make(chan error, 8)
		for g := range cap(errs) {
			go func() { errs <- churn(h, fmt.Sprint("k", g%3), newSource) }()
		}
		time.Sleep(time.Duration(round%10) * 100 * time.Microsecond)
		h.Close()
		for range cap(errs) {
			select {
			case err := <-errs:
				if !errors.Is(err, ErrClosed) {
					t.Fatalf("round %d: %v; want ErrClosed", round, err)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("round %d: a client still running 10 s after Close", round)
			}
		}
		checkNoPanic(t, logs)
	}
}

// churn subscribes to key, reads, asks for the document and leaves, until the hub says
// ErrClosed or a call fails otherwise, at most 10,000 times.
func churn(h *Hub, key string, newSource func() Source) error {
	for range 10_000 {
		sub, err := h.Subscribe(key, newSource, "", JSONPatch)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		for err == nil {
			_, err = sub.Next(ctx)
		}
		cancel()
		sub.Close()
		if !errors.Is(err, ErrClosed) && !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		ctx, cancel = context.WithTimeout(context.Background(), time.Second)
		_, _, err = h.Document(ctx, key, newSource)
		cancel()
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
	}
	return errors.New("still running after 10,000 subscriptions")
}

// panickyRestorer panics while restoring its topic.
type panickyRestorer struct{ *docSource }

func (panickyRestorer) Restore(context.Context, *Topic) { panic("restoring") }

// TestRestorePanicLetsSubscribersIn: a source that panics while restoring is logged and
// its topic removed at once: its subscriber is let in without waiting out restoreWait,
// and is told the topic closed.
func TestRestorePanicLetsSubscribersIn(t *testing.T) {
	t.Parallel()
	h, logs := observedHub(t, time.Hour)
	defer h.Close()
	start := time.Now()
	sub, err := h.Subscribe("k", func() Source { return panickyRestorer{newDocSource()} }, "", JSONPatch)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if waited := time.Since(start); waited >= restoreWait/2 {
		t.Fatalf("Subscribe waited %v for a source that panicked", waited)
	}
	ctx := contextWithTimeout(t, 5*time.Second)
	for err == nil {
		_, err = sub.Next(ctx)
	}
	if !errors.Is(err, ErrClosed) {
		t.Fatalf("Next: %v; want ErrClosed", err)
	}
	if logs.FilterMessage("poll loop panicked").Len() != 1 {
		t.Fatal("the panic was not logged")
	}
}

// blockingRestorer restores until its context ends.
type blockingRestorer struct {
	*docSource
	restoring chan struct{} // closed when Restore has begun
}

func (s blockingRestorer) Restore(ctx context.Context, _ *Topic) {
	close(s.restoring)
	<-ctx.Done()
}

// TestCloseWhileRestoring closes the hub while a topic's source restores it and a
// subscriber waits for that: the subscriber is let in at once, told the topic closed,
// and Close returns once the source has returned.
func TestCloseWhileRestoring(t *testing.T) {
	t.Parallel()
	h := New(Config{})
	src := blockingRestorer{newDocSource(), make(chan struct{})}
	subscribed := make(chan error, 1)
	go func() {
		sub, err := h.Subscribe("k", func() Source { return src }, "", JSONPatch)
		if err == nil {
			defer sub.Close()
			for err == nil {
				_, err = sub.Next(context.Background())
			}
		}
		subscribed <- err
	}()
	<-src.restoring
	h.Close()
	select {
	case err := <-subscribed:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("subscriber: %v; want ErrClosed", err)
		}
	case <-time.After(restoreWait / 2):
		t.Fatal("the subscriber still waits for a restore its hub's Close ended")
	}
}
