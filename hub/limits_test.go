package hub

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// subscribeLimited subscribes to topic key with lim, closing the subscription when the
// test ends.
func subscribeLimited(t *testing.T, h *Hub, key string, src Source, lim Limits) (*Subscription, error) {
	t.Helper()
	sub, err := h.SubscribeLimited(key, func() Source { return src }, "", JSONPatch, lim)
	if err == nil {
		t.Cleanup(sub.Close)
	}
	return sub, err
}

// TestLimitsPerRoute checks that two routes on one hub keep their own caps over a long
// sequence of joins and leaves, checked against a count kept by the test: a route is
// refused exactly when it holds its cap, whatever the other holds, and a subscriber
// without limits is never refused.
func TestLimitsPerRoute(t *testing.T) {
	t.Parallel()
	h := newHub(t, Config{})
	src := newDocSource()
	routes := []Limits{{Slots: new(Slots), MaxSubscribers: 2}, {Slots: new(Slots), MaxSubscribers: 3}}
	open := [][]*Subscription{nil, nil}
	for step := range 200 {
		r := step * 7 % 5 % 2 // an irregular walk over both routes
		lim := routes[r]
		if step%3 == 2 && len(open[r]) > 0 {
			open[r][0].Close()
			open[r] = open[r][1:]
			continue
		}
		sub, err := subscribeLimited(t, h, "k", src, lim)
		full := len(open[r]) == lim.MaxSubscribers
		if full != errors.Is(err, ErrTooManySubscribers) || (!full && err != nil) {
			t.Fatalf("step %d, route %d holding %d of %d: %v", step, r, len(open[r]), lim.MaxSubscribers, err)
		}
		if err == nil {
			open[r] = append(open[r], sub)
		}
		if got := lim.Slots.InUse(); got != len(open[r]) {
			t.Fatalf("step %d: route %d counts %d subscribers; it holds %d", step, r, got, len(open[r]))
		}
	}
	if _, err := subscribeLimited(t, h, "k", src, Limits{}); err != nil {
		t.Fatalf("subscriber without limits: %v", err)
	}
}

// TestLimitsTooManyTopicsFreesSlot checks that a subscriber refused for the cap on
// topics does not keep the slot it took.
func TestLimitsTooManyTopicsFreesSlot(t *testing.T) {
	t.Parallel()
	h := newHub(t, Config{MaxTopics: 1})
	lim := Limits{Slots: new(Slots), MaxSubscribers: 5}
	if _, err := subscribeLimited(t, h, "a", newDocSource(), lim); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if _, err := subscribeLimited(t, h, "b", newDocSource(), lim); !errors.Is(err, ErrTooManyTopics) {
			t.Fatalf("second topic: %v; want ErrTooManyTopics", err)
		}
	}
	if n := lim.Slots.InUse(); n != 1 {
		t.Fatalf("%d slots in use; want 1", n)
	}
}

// TestLimitsLifetime checks a stream served with Serve ends within its route's lifetime,
// 90 to 100 % of MaxLifetime, and that another route on the same hub is not limited.
func TestLimitsLifetime(t *testing.T) {
	t.Parallel()
	lim := Limits{MaxLifetime: 200 * time.Millisecond}
	for range 20 {
		if d := lim.Lifetime(); d < 180*time.Millisecond || d > 200*time.Millisecond {
			t.Fatalf("lifetime %v; want within [180ms, 200ms]", d)
		}
	}
	if d := (Limits{}).Lifetime(); d != 0 {
		t.Fatalf("lifetime without a limit: %v", d)
	}
	h := newHub(t, Config{})
	src := newDocSource()
	limited := servePipe(t, h, src, lim)
	free := servePipe(t, h, src, Limits{})
	start := time.Now()
	select {
	case <-limited:
		if took := time.Since(start); took < 150*time.Millisecond {
			t.Fatalf("stream ended after %v, before its lifetime", took)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("stream outlived its lifetime")
	}
	select {
	case <-free:
		t.Fatal("a stream of a route without a lifetime ended")
	case <-time.After(300 * time.Millisecond):
	}
}

// servePipe serves a subscription with lim over a pipe, and returns a channel closed
// when the hub closes the connection.
func servePipe(t *testing.T, h *Hub, src Source, lim Limits) <-chan struct{} {
	t.Helper()
	sub, err := h.SubscribeLimited("k", func() Source { return src }, "", JSONPatch, lim)
	if err != nil {
		t.Fatal(err)
	}
	server, client := net.Pipe()
	t.Cleanup(func() { client.Close() })
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		_, _ = io.Copy(io.Discard, client)
	}()
	sub.Serve(context.Background(), server)
	return ended
}
