package hub

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pollsse/caddy-poll-sse/diff"
	"github.com/pollsse/caddy-poll-sse/poller"
)

// TestNotModifiedCostsNoParse: the upstream answers 304 with a body that would not parse;
// the subscriber sees nothing new and the document stays. After a 200 that is not JSON,
// a 304 keeps the failure.
func TestNotModifiedCostsNoParse(t *testing.T) {
	up, srv := newUpstream(t)
	var etag atomic.Value
	etag.Store(`"v1"`)
	body := doc(1)
	up.set(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("If-None-Match") == etag.Load().(string) {
			w.WriteHeader(http.StatusNotModified)
			_, _ = w.Write([]byte("{not json")) // net/http drops it; nothing may read it anyway
			return
		}
		w.Header().Set("ETag", etag.Load().(string))
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(body))
	})
	p, err := poller.New(poller.Config{URL: srv.URL, Interval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	h := New(Config{})
	defer h.Close()
	sub, err := h.Subscribe("k", func() Source { return NewPollSource(p, newTracker(t, diff.Options{})) }, "", JSONPatch)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	c := &client{sub: sub}
	c.waitDoc(t, doc(1))
	n := len(c.events)
	if err := c.read(200 * time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("304s produced events: %v %v", err, c.events[n:])
	}
	body = "<html>"
	etag.Store(`"v2"`)
	c.waitEvent(t, "upstream", reasonNotJSON)
	n = len(c.events)
	if err := c.read(200 * time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a 304 after a bad body changed the status: %v", c.events[n:])
	}
}

func TestMaxTopics(t *testing.T) {
	t.Parallel()
	h := newHub(t, Config{MaxTopics: 2})
	for i, key := range []string{"a", "b", "a"} {
		sub, err := h.Subscribe(key, func() Source { return newDocSource() }, "", JSONPatch)
		if err != nil {
			t.Fatalf("subscription %d: %v", i, err)
		}
		t.Cleanup(sub.Close)
	}
	if _, err := h.Subscribe("c", func() Source { return newDocSource() }, "", JSONPatch); !errors.Is(err, ErrTooManyTopics) {
		t.Fatalf("third topic: %v; want ErrTooManyTopics", err)
	}
}

type pokeSource struct {
	docSource
	pokes atomic.Int64
}

func (s *pokeSource) Poke() { s.pokes.Add(1) }

func TestPoke(t *testing.T) {
	t.Parallel()
	h := newHub(t, Config{})
	src := &pokeSource{docSource: *newDocSource()}
	if h.Poke("k") {
		t.Fatal("poked a topic that is not running")
	}
	subscribe(t, h, src, "")
	if !h.Poke("k") || src.pokes.Load() != 1 {
		t.Fatalf("poke not delivered (%d)", src.pokes.Load())
	}
}

func TestDocument(t *testing.T) {
	t.Parallel()
	h := newHub(t, Config{Linger: time.Hour})
	src := newDocSource()
	started := 0
	newSrc := func() Source { started++; return src }
	go func() { src.docs <- doc(1) }()
	v, st, err := h.Document(contextWithTimeout(t, 5*time.Second), "k", newSrc)
	if err != nil || v == nil || !st.OK {
		t.Fatalf("Document = %v, %+v, %v", v, st, err)
	}
	again, _, err := h.Document(contextWithTimeout(t, time.Second), "k", newSrc)
	if err != nil || again != v || started != 1 {
		t.Fatalf("second Document: %v %v, sources started %d", again, err, started)
	}

	down := newDocSource()
	go func() { down.docs <- "<html>" }()
	v, st, err = h.Document(contextWithTimeout(t, 5*time.Second), "down", func() Source { return down })
	if err != nil || v != nil || st.OK || st.Reason != reasonNotJSON {
		t.Fatalf("failing upstream: %v, %+v, %v", v, st, err)
	}
}
