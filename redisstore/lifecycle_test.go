package redisstore

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/pollsse/caddy-poll-sse/diff"
	"github.com/pollsse/caddy-poll-sse/hub"
	"github.com/pollsse/caddy-poll-sse/poller"
	"github.com/pollsse/caddy-poll-sse/redisstore/redistest"
)

func observedHub(linger time.Duration) (*hub.Hub, *observer.ObservedLogs) {
	core, logs := observer.New(zap.WarnLevel)
	return hub.New(hub.Config{Linger: linger, Heartbeat: time.Millisecond, Logger: zap.New(core)}), logs
}

// checkNoPanic fails the test if a poll loop panicked.
func checkNoPanic(t *testing.T, logs *observer.ObservedLogs) {
	t.Helper()
	if n := logs.FilterMessage("poll loop panicked").Len(); n > 0 {
		t.Fatalf("%d poll loops panicked, the first: %v", n, logs.FilterMessage("poll loop panicked").All()[0].ContextMap())
	}
}

// TestStopWhilePollsLand stops topics fed through Redis while their polls land: nothing
// panics, and once Close returns every lease has been let go, so another node takes the
// loop over at once.
func TestStopWhilePollsLand(t *testing.T) {
	r := redistest.New(t)
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	var n atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if i := n.Add(1); i%7 == 0 {
			http.Error(w, "down", http.StatusBadGateway)
		} else {
			fmt.Fprint(w, counted(int(i)))
		}
	}))
	defer up.Close()
	client := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer client.Close()
	store := &Store{Client: client, LeaseTTL: time.Hour}
	const rounds, keys = 8, 10
	for round := range rounds {
		h, logs := observedHub(time.Millisecond)
		for i := range keys {
			key := fmt.Sprint("k", i)
			cfg := poller.Config{URL: up.URL + "/" + key, Interval: time.Millisecond, Client: up.Client()}
			sub, err := h.Subscribe(key, func() hub.Source { return store.Source(cfg, new(diff.Tracker)) }, "", hub.JSONPatch)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := sub.Next(context.Background()); err != nil {
				t.Fatal(err)
			}
			if i%2 == 0 {
				sub.Close() // lingers a millisecond; the others stop with Close
			}
		}
		time.Sleep(time.Duration(round%5) * time.Millisecond)
		h.Close()
		checkNoPanic(t, logs)
		leases, err := client.Keys(context.Background(), DefaultPrefix+"*:lease").Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(leases) > 0 {
			t.Fatalf("round %d: %d leases still held after Close returned", round, len(leases))
		}
	}
}

// TestLeaderPanicIsRecovered: a loop whose poller cannot be made once this node holds
// the lease panics, is logged and removed like any loop that panics, the process goes
// on, and the lease is let go.
func TestLeaderPanicIsRecovered(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	client := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer client.Close()
	store := &Store{Client: client, LeaseTTL: time.Hour, Prefix: "panic:"}
	h, logs := observedHub(time.Hour)
	defer h.Close()
	bad := poller.Config{URL: "ftp://127.0.0.1/x"} // poller.New refuses it
	sub, err := h.Subscribe("k", func() hub.Source { return store.Source(bad, new(diff.Tracker)) }, "", hub.JSONPatch)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	ctx := contextWithTimeout(t, 10*time.Second)
	for err == nil {
		_, err = sub.Next(ctx)
	}
	if !errors.Is(err, hub.ErrClosed) {
		t.Fatalf("Next: %v; want ErrClosed", err)
	}
	if n := logs.FilterMessage("poll loop panicked").Len(); n != 1 {
		t.Fatalf("%d panics logged, want 1", n)
	}
	leases, err := client.Keys(context.Background(), "panic:*:lease").Result()
	if err != nil || len(leases) > 0 {
		t.Fatalf("leases held after the loop ended: %v, %v", leases, err)
	}
}
