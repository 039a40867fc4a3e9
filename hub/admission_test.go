package hub

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestDocumentIsNotASubscriber checks that callers of Document, clients that poll for
// the JSON document, neither count as subscribers nor are refused by the subscriber cap,
// while streams still are.
func TestDocumentIsNotASubscriber(t *testing.T) {
	t.Parallel()
	h := newHub(t, Config{Linger: time.Hour})
	lim := Limits{Slots: new(Slots), MaxSubscribers: 1}
	src := newDocSource()
	sub, err := h.SubscribeLimited("k", func() Source { return src }, "", JSONPatch, lim)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Close)
	go func() { src.docs <- doc(1) }()
	for i := range 20 {
		v, _, err := h.Document(contextWithTimeout(t, 5*time.Second), "k", func() Source { return src })
		if err != nil || v == nil {
			t.Fatalf("Document %d beside a full route: %v, %v", i, v, err)
		}
		if n, used := h.Subscribers(), lim.Slots.InUse(); n != 1 || used != 1 {
			t.Fatalf("after Document %d: %d subscribers, %d of the route's slots; want 1 and 1", i, n, used)
		}
	}
	if _, err := h.SubscribeLimited("k", func() Source { return src }, "", JSONPatch, lim); !errors.Is(err, ErrTooManySubscribers) {
		t.Fatalf("second stream: %v; want ErrTooManySubscribers", err)
	}
}

// TestNewSourceMayRefuse checks that a newSource returning nil starts no topic, and that
// Subscribe and Document then say so with ErrNoSource, while running topics are joined
// without asking it.
func TestNewSourceMayRefuse(t *testing.T) {
	t.Parallel()
	h := newHub(t, Config{Linger: time.Hour})
	refuse := func() Source { return nil }
	if _, err := h.Subscribe("k", refuse, "", JSONPatch); !errors.Is(err, ErrNoSource) {
		t.Fatalf("Subscribe: %v; want ErrNoSource", err)
	}
	if _, _, err := h.Document(contextWithTimeout(t, time.Second), "k", refuse); !errors.Is(err, ErrNoSource) {
		t.Fatalf("Document: %v; want ErrNoSource", err)
	}
	if h.Topics() != 0 || h.Subscribers() != 0 {
		t.Fatalf("%d topics, %d subscribers after refusals; want 0, 0", h.Topics(), h.Subscribers())
	}
	subscribe(t, h, newDocSource(), "")
	sub, err := h.Subscribe("k", refuse, "", JSONPatch)
	if err != nil {
		t.Fatalf("joining a running topic asked newSource: %v", err)
	}
	sub.Close()
}

// TestStoppedCalledOncePerTopic checks that Config.Stopped hears of every topic that
// stops, once, with its own source: on linger, and on Close.
func TestStoppedCalledOncePerTopic(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	stopped := map[Source][]string{}
	h := New(Config{Linger: 10 * time.Millisecond, Stopped: func(key string, src Source) {
		mu.Lock()
		stopped[src] = append(stopped[src], key)
		mu.Unlock()
	}})
	count := func(src Source) int {
		mu.Lock()
		defer mu.Unlock()
		return len(stopped[src])
	}
	a, b := newDocSource(), newDocSource()
	sub, err := h.Subscribe("a", func() Source { return a }, "", JSONPatch)
	if err != nil {
		t.Fatal(err)
	}
	sub.Close()
	deadline := time.Now().Add(5 * time.Second)
	for count(a) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := h.Subscribe("b", func() Source { return b }, "", JSONPatch); err != nil {
		t.Fatal(err)
	}
	h.Close()
	mu.Lock()
	defer mu.Unlock()
	if len(stopped) != 2 || len(stopped[a]) != 1 || stopped[a][0] != "a" || len(stopped[b]) != 1 || stopped[b][0] != "b" {
		t.Fatalf("Stopped calls: %v; want a once, then b once", stopped)
	}
}

// TestBriefLingerBeforeFirstDocument checks that a topic whose last subscriber left
// before its first poll answered stops after BriefLinger, not the hub's Linger, while a
// topic that had a document, or whose upstream failed (its backoff goes on), lingers the
// whole Linger.
func TestBriefLingerBeforeFirstDocument(t *testing.T) {
	t.Parallel()
	h := newHub(t, Config{Linger: time.Hour})
	empty := newDocSource()
	sub, err := h.Subscribe("empty", func() Source { return empty }, "", JSONPatch)
	if err != nil {
		t.Fatal(err)
	}
	full := newDocSource()
	c := subscribeKey(t, h, "full", full)
	full.send(t, doc(1))
	c.waitDoc(t, doc(1))
	failing := newDocSource()
	f := subscribeKey(t, h, "failing", failing)
	failing.send(t, "<html>")
	f.waitEvent(t, "upstream", reasonNotJSON)
	left := time.Now()
	sub.Close()
	c.sub.Close()
	f.sub.Close()
	deadline := left.Add(BriefLinger + 5*time.Second)
	for ks := keys(h); len(ks) != 2 || slices.Contains(ks, "empty"); ks = keys(h) {
		if time.Now().After(deadline) {
			t.Fatalf("topics %v after BriefLinger; want the one with a document and the failing one", ks)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if since := time.Since(left); since < BriefLinger {
		t.Fatalf("topic without a document stopped %v after its last subscriber; want BriefLinger, %v", since, BriefLinger)
	}
}

// subscribeKey subscribes to the topic for key, started with src.
func subscribeKey(t *testing.T, h *Hub, key string, src Source) *client {
	t.Helper()
	sub, err := h.Subscribe(key, func() Source { return src }, "", JSONPatch)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Close)
	return &client{sub: sub, format: JSONPatch}
}

func keys(h *Hub) []string {
	var out []string
	for _, t := range h.running() {
		out = append(out, t.key)
	}
	return out
}
