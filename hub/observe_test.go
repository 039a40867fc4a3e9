package hub

import (
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder is an Observer that keeps what it is told.
type recorder struct {
	mu                           sync.Mutex
	subscribers, loops, draining int
	polls, slow, resume          map[string]int
	computed                     map[string]int
	events, bytes                int
}

func newRecorder() *recorder {
	return &recorder{polls: map[string]int{}, slow: map[string]int{}, resume: map[string]int{}, computed: map[string]int{}}
}

func (r *recorder) Subscribers(d int) { r.mu.Lock(); r.subscribers += d; r.mu.Unlock() }
func (r *recorder) Loops(d int)       { r.mu.Lock(); r.loops += d; r.mu.Unlock() }
func (r *recorder) Poll(res string, _ time.Duration) {
	r.mu.Lock()
	r.polls[res]++
	r.mu.Unlock()
}
func (r *recorder) Diff(time.Duration) {}
func (r *recorder) Sent(e, b int)      { r.mu.Lock(); r.events += e; r.bytes += b; r.mu.Unlock() }
func (r *recorder) Slow(a string)      { r.mu.Lock(); r.slow[a]++; r.mu.Unlock() }
func (r *recorder) Resume(k string)    { r.mu.Lock(); r.resume[k]++; r.mu.Unlock() }
func (r *recorder) Draining(d int)     { r.mu.Lock(); r.draining += d; r.mu.Unlock() }
func (r *recorder) Computed(f string)  { r.mu.Lock(); r.computed[f]++; r.mu.Unlock() }

func (r *recorder) counts() (subs, loops int, resume map[string]int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.subscribers, r.loops, maps.Clone(r.resume)
}

// TestObserverSeesSubscribersLoopsAndResumes checks what the Observer is told: each
// subscriber and loop coming and going, and how each resuming client was served.
func TestObserverSeesSubscribersLoopsAndResumes(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	h := New(Config{Observer: rec})
	src := newDocSource()
	first := subscribe(t, h, src, "")
	padded := func(i int) string { return fmt.Sprintf(`{"n":%d,"pad":%q}`, i, strings.Repeat("x", 1000)) }
	src.send(t, padded(1))
	first.waitDoc(t, padded(1))
	old := first.id
	src.send(t, padded(2))
	first.waitDoc(t, padded(2))

	held := map[string]string{first.id: padded(2), old: padded(1), "unknown": "{}"}
	for _, id := range []string{first.id, old, "unknown"} {
		c := subscribe(t, h, src, id)
		c.doc = []byte(held[id])                        // what a client resuming from id holds
		if err := c.read(5 * time.Second); err != nil { // a resume counts once its frame is made
			t.Fatal(err)
		}
		c.sub.Close()
	}
	subs, loops, resume := rec.counts()
	if subs != 1 || loops != 1 {
		t.Fatalf("observer counts %d subscribers, %d loops; want 1 and 1", subs, loops)
	}
	if resume[ResumeNone] != 1 || resume[ResumePatch] != 1 || resume[ResumeSnapshot] != 1 {
		t.Fatalf("resumes %v; want one none, one patch and one snapshot", resume)
	}
	first.sub.Close()
	h.Close()
	if subs, loops, _ := rec.counts(); subs != 0 || loops != 0 {
		t.Fatalf("after Close the observer counts %d subscribers, %d loops; want 0", subs, loops)
	}
}
