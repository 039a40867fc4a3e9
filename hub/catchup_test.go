package hub

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jsonpatch "github.com/evanphx/json-patch/v5"

	"github.com/pollsse/caddy-poll-sse/diff"
)

// blockComputations makes every catch-up computation of h wait until the returned
// release is called, and reports on started each one that begins. h gets computing
// slots of its own, so that tests running in parallel do not wait for them.
func blockComputations(t *testing.T, h *Hub) (started <-chan *catchUp, release func()) {
	t.Helper()
	h.slots = make(chan struct{}, 1)
	gate := make(chan struct{})
	ch := make(chan *catchUp, 100)
	h.onCompute = func(c *catchUp) {
		ch <- c
		<-gate
	}
	var once sync.Once
	release = func() { once.Do(func() { close(gate) }) }
	t.Cleanup(release)
	return ch, release
}

// liveAtFifth subscribes a live client in format f and publishes doc(0) to doc(5); it
// returns the client and the id of doc(0).
func liveAtFifth(t *testing.T, h *Hub, src *docSource, f Format) (*client, string) {
	t.Helper()
	live := subscribeIn(t, h, src, "", f)
	src.send(t, doc(0))
	live.waitDoc(t, doc(0))
	old := live.id
	for i := 1; i <= 5; i++ {
		src.send(t, doc(i))
		live.waitDoc(t, doc(i))
	}
	return live, old
}

// TestCatchUpDoesNotBlockPublish resumes a client from an old id while its catch-up is
// being computed, held for as long as the test likes: meanwhile a new version is
// published and reaches a live subscriber, and the resumed client ends with every
// change, once.
func TestCatchUpDoesNotBlockPublish(t *testing.T) {
	t.Parallel()
	for _, f := range []Format{JSONPatch, MergePatch} {
		t.Run(f.String(), func(t *testing.T) {
			t.Parallel()
			h := newHub(t, Config{})
			src := newDocSource()
			live, old := liveAtFifth(t, h, src, f)
			started, release := blockComputations(t, h)

			resumed := make(chan *client, 1)
			go func() {
				sub, err := h.Subscribe("k", func() Source { return src }, old, f)
				if err != nil {
					t.Error(err)
					resumed <- nil
					return
				}
				c := &client{sub: sub, format: f}
				_ = c.read(10 * time.Second) // the retry frame and the catch-up
				resumed <- c
			}()
			select {
			case <-started:
			case <-time.After(5 * time.Second):
				t.Fatal("no catch-up was computed")
			}
			src.send(t, doc(6))
			live.waitDoc(t, doc(6)) // fails while the topic's lock is held by the catch-up
			release()

			c := <-resumed
			if c == nil {
				return
			}
			defer c.sub.Close()
			c.waitDoc(t, doc(6))
			if got := c.types(0); len(got) != 2 {
				t.Fatalf("resumed client got %v; want the catch-up to version 5, then version 6", got)
			}
		})
	}
}

// TestConcurrentResumesComputeOnce resumes 50 clients from the same old id at once: the
// catch-up is computed once, and every client gets the same bytes.
func TestConcurrentResumesComputeOnce(t *testing.T) {
	t.Parallel()
	for _, f := range []Format{JSONPatch, MergePatch} {
		t.Run(f.String(), func(t *testing.T) {
			t.Parallel()
			h := newHub(t, Config{})
			src := newDocSource()
			_, old := liveAtFifth(t, h, src, f)
			var computed atomic.Int32
			started, release := blockComputations(t, h)

			const clients = 50
			subs := make([]*Subscription, clients)
			for i := range subs {
				sub, err := h.Subscribe("k", func() Source { return src }, old, f)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(sub.Close)
				subs[i] = sub
			}
			frames := make([][][]byte, clients)
			var wg sync.WaitGroup
			for i, sub := range subs {
				wg.Go(func() {
					fr, err := sub.Next(contextWithTimeout(t, 10*time.Second))
					if err != nil {
						t.Error(err)
					}
					frames[i] = fr
				})
			}
			<-started
			computed.Add(1)
			time.Sleep(50 * time.Millisecond) // let the others ask for the same catch-up
			release()
			wg.Wait()
			for len(started) > 0 {
				<-started
				computed.Add(1)
			}
			if n := computed.Load(); n != 1 {
				t.Fatalf("the catch-up was computed %d times for %d clients; want once", n, clients)
			}
			for i, fr := range frames {
				if len(fr) != 2 || &fr[1][0] != &frames[0][1][0] {
					t.Fatalf("client %d got %d frames, not the shared catch-up", i, len(fr))
				}
			}
		})
	}
}

// TestResumesWhilePublishing subscribes many clients, resuming at random ids of the
// history (and some unknown ones), while versions are published, in every format. Each
// ends with exactly the upstream document, checked against a fresh parse, and its event
// ids follow the versions published, each at most once, in order.
func TestResumesWhilePublishing(t *testing.T) {
	t.Parallel()
	for _, f := range []Format{JSONPatch, MergePatch, Snapshot} {
		t.Run(f.String(), func(t *testing.T) {
			t.Parallel()
			checkResumesWhilePublishing(t, f)
		})
	}
}

func checkResumesWhilePublishing(t *testing.T, f Format) {
	h := newHub(t, Config{History: 40})
	h.logBytes = 4_000 // some clients fall out of the log, too
	src := newDocSource()
	first := subscribeIn(t, h, src, "", f)
	const versions = 80
	docs := make([]string, versions)
	order := map[string]int{}
	for i := range docs {
		docs[i] = richDoc(i)
		v, err := diff.Parse([]byte(docs[i]))
		if err != nil {
			t.Fatal(err)
		}
		order[v.ID] = i
	}
	var (
		mu  sync.Mutex
		ids []string // the ids published so far
		wg  sync.WaitGroup
	)
	rng := rand.New(rand.NewPCG(1, uint64(f)))
	for i, d := range docs {
		src.send(t, d)
		first.waitDoc(t, d)
		mu.Lock()
		ids = append(ids, first.id)
		from := ids[rng.IntN(len(ids))]
		if rng.IntN(8) == 0 {
			from = "unknown"
		}
		mu.Unlock()
		wg.Go(func() { checkClient(t, h, src, f, from, i, order, docs[versions-1]) })
	}
	wg.Wait()
}

// checkClient resumes from id, at version at or later, and reads until it holds final,
// checking that ids only move forward.
func checkClient(t *testing.T, h *Hub, src Source, f Format, id string, at int, order map[string]int, final string) {
	sub, err := h.Subscribe("k", func() Source { return src }, id, f)
	if err != nil {
		t.Error(err)
		return
	}
	defer sub.Close()
	c := &client{sub: sub, format: f}
	if id != "unknown" {
		c.doc, c.id = []byte(mustDocOf(order, id)), id
	}
	seen := -1
	if id != "unknown" {
		seen = order[id]
	}
	deadline := time.Now().Add(90 * time.Second) // generous: -race on a loaded machine
	for !(c.doc != nil && jsonpatch.Equal(c.doc, []byte(final))) {
		before := len(c.events)
		if err := c.read(time.Until(deadline)); err != nil {
			t.Errorf("client resuming from version %d at %d: %v (holds %.80s)", seen, at, err, c.doc)
			return
		}
		for _, m := range c.events[before:] {
			if m.Type == "upstream" {
				continue
			}
			n, ok := order[m.LastEventID]
			if !ok || n <= seen {
				t.Errorf("client resuming at %d got %s %q after version %d", at, m.Type, m.LastEventID, seen)
				return
			}
			seen = n
		}
		if seen >= 0 && !jsonpatch.Equal(c.doc, []byte(richDocs[seen])) {
			t.Errorf("client at version %d holds %.80s, want %.80s", seen, c.doc, richDocs[seen])
			return
		}
	}
}

// richDocs holds the documents of richDoc, by index.
var richDocs = func() []string {
	out := make([]string, 200)
	for i := range out {
		out[i] = richDoc(i)
	}
	return out
}()

func mustDocOf(order map[string]int, id string) string { return richDocs[order[id]] }

// richDoc is version i of a document whose changes add, change and remove members and
// array elements, of a size that makes old catch-ups large.
func richDoc(i int) string {
	items := ""
	for j := range i%7 + 1 {
		if j > 0 {
			items += ","
		}
		items += fmt.Sprintf(`{"id":%d,"v":%d}`, j, i*j)
	}
	extra := ""
	if i%3 == 0 {
		extra = fmt.Sprintf(`,"extra%d":{"x":%d}`, i%5, i)
	}
	return fmt.Sprintf(`{"n":%d,"items":[%s],"pad":"%0*d"%s}`, i, items, 40+i%9, i, extra)
}

// TestCatchUpLargerThanSnapshotIsSnapshot resumes from an id whose patches together are
// larger than the document: the client gets a snapshot, and the patches are not joined.
// From the version before the last, it gets the patch.
func TestCatchUpLargerThanSnapshotIsSnapshot(t *testing.T) {
	t.Parallel()
	h := newHub(t, Config{})
	src := newDocSource()
	live := subscribe(t, h, src, "")
	var ids []string
	for i := range 6 {
		src.send(t, repainted(i)) // each patch replaces the whole padding
		live.waitDoc(t, repainted(i))
		ids = append(ids, live.id)
	}
	var joined atomic.Int32
	h.onCompute = func(c *catchUp) {
		if c.from != "" {
			joined.Add(1)
		}
	}
	old := subscribe(t, h, src, ids[0])
	old.doc = []byte(repainted(0))
	old.waitDoc(t, repainted(5))
	if got := old.types(0); len(got) != 1 || got[0] != "snapshot" {
		t.Fatalf("got %v; want a snapshot", got)
	}
	if joined.Load() != 0 {
		t.Fatal("patches larger than the document were joined")
	}
	recent := subscribe(t, h, src, ids[4])
	recent.doc = []byte(repainted(4))
	recent.waitDoc(t, repainted(5))
	if got := recent.types(0); len(got) != 1 || got[0] != "patch" || joined.Load() != 1 {
		t.Fatalf("got %v after %d joins; want one patch", got, joined.Load())
	}
}

// repainted is version i of a document whose every change rewrites 40 % of it.
func repainted(i int) string {
	return fmt.Sprintf(`{"keep":"%s","n":%d,"pad":"%s"}`, strings.Repeat("k", 1500), i, strings.Repeat(string(rune('a'+i)), 1000))
}

// TestResumeWaitEndsWithContext leaves while the catch-up waits: Next returns the
// context's error, and another client asking for the same catch-up still gets it.
func TestResumeWaitEndsWithContext(t *testing.T) {
	t.Parallel()
	h := newHub(t, Config{})
	src := newDocSource()
	live := subscribe(t, h, src, "")
	src.send(t, padded(0, 1000))
	live.waitDoc(t, padded(0, 1000))
	old := live.id
	src.send(t, padded(1, 1000))
	live.waitDoc(t, padded(1, 1000))
	started, release := blockComputations(t, h)

	gone := subscribe(t, h, src, old)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := gone.sub.Next(ctx); done <- err }()
	<-started
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Next returned no error for a context that ended")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Next did not return when its context ended")
	}
	release()
	other := subscribe(t, h, src, old)
	other.doc = []byte(padded(0, 1000))
	other.waitDoc(t, padded(1, 1000))
	if got := other.types(0); len(got) != 1 || got[0] != "patch" {
		t.Fatalf("got %v; want one patch", got)
	}
}

// TestComputingSlotRests computes one catch-up that takes 500 ms, while a second waits
// for the only computing slot: the first one's client gets its frame at once, and the
// second computation starts no sooner than the first took again, so that catch-ups
// take at most half of each slot's time, and live delivery keeps the rest.
func TestComputingSlotRests(t *testing.T) {
	t.Parallel()
	const busy = 500 * time.Millisecond
	h := newHub(t, Config{})
	src := newDocSource()
	live := subscribeIn(t, h, src, "", JSONPatch)
	padded := func(i int) string { return fmt.Sprintf(`{"n":%d,"pad":%q}`, i, strings.Repeat("p", 1000)) }
	var ids []string
	for i := range 4 {
		src.send(t, padded(i))
		live.waitDoc(t, padded(i))
		ids = append(ids, live.id)
	}
	h.slots = make(chan struct{}, 1)
	starts := make(chan time.Time, 2)
	h.onCompute = func(*catchUp) {
		starts <- time.Now()
		if len(starts) == 1 {
			time.Sleep(busy)
		}
	}
	firstFrame := make(chan time.Time, 1)
	for i, from := range ids[:2] {
		sub, err := h.Subscribe("k", func() Source { return src }, from, JSONPatch)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(sub.Close)
		if i == 0 {
			// The second client asks while the first computation holds the slot.
			go func() {
				if _, err := sub.Next(contextWithTimeout(t, 10*time.Second)); err != nil {
					t.Error(err)
				}
				firstFrame <- time.Now()
			}()
			for len(starts) == 0 {
				time.Sleep(time.Millisecond)
			}
			continue
		}
		if _, err := sub.Next(contextWithTimeout(t, 10*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	first, second := <-starts, <-starts
	if gap := second.Sub(first); gap < 2*busy-50*time.Millisecond {
		t.Errorf("the second computation started %v after the first, which took %v: the slot did not rest", gap, busy)
	}
	if got := <-firstFrame; !got.Before(second) {
		t.Errorf("the first client got its frame at %v, after the slot rested (%v)", got, second)
	}
}
