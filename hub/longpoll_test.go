package hub

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	jsonpatch "github.com/evanphx/json-patch/v5"

	"github.com/pollsse/caddy-poll-sse/diff/difftest"
)

// TestAwaitPatchesConverge long-polls through 40 changes in each patch format, applying
// each answer with an independent implementation: the document held always equals the
// upstream's, and long-pollers are no stream subscribers.
func TestAwaitPatchesConverge(t *testing.T) {
	for _, f := range []Format{JSONPatch, MergePatch} {
		t.Run(f.String(), func(t *testing.T) {
			t.Parallel()
			h := New(Config{})
			defer h.Close()
			src := newDocSource()
			newSrc := func() Source { return src }
			go offer(src, rowsDoc(0))
			a := await(t, h, newSrc, "", f, time.Second)
			held, doc0 := a.Version.ID, a.Version.JSON
			for i := 1; i <= 40; i++ {
				want := rowsDoc(i)
				go offer(src, want)
				a := await(t, h, newSrc, held, f, 5*time.Second)
				if a.Patch == nil {
					t.Fatalf("change %d came as a document", i)
				}
				doc0 = apply(t, f, doc0, a.Patch)
				if eq, err := difftest.Equal(doc0, []byte(want)); err != nil || !eq {
					t.Fatalf("change %d: got %s, want %s (%v)", i, doc0, want, err)
				}
				held = a.Version.ID
			}
			if n := h.Subscribers(); n != 0 {
				t.Fatalf("long-pollers counted as %d subscribers", n)
			}
		})
	}
}

// rowsDoc is the i-th document of a sequence where each change touches one row of many.
func rowsDoc(i int) string {
	rows := ""
	for r := range 30 {
		v := r
		if r == i%30 {
			v = 1000 + i
		}
		rows += fmt.Sprintf(`"r%d":{"v":%d,"name":"row %d"},`, r, v, r)
	}
	return fmt.Sprintf(`{"n":%d,"rows":{%s}}`, i, rows[:len(rows)-1])
}

// offer hands doc to the source from another goroutine, giving up after a while: the
// await that follows fails the test if it is not taken.
func offer(src *docSource, doc string) {
	select {
	case src.docs <- doc:
	case <-time.After(5 * time.Second):
	}
}

func await(t *testing.T, h *Hub, newSrc func() Source, held string, f Format, wait time.Duration) Answer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, err := h.Await(ctx, "k", newSrc, held, f, wait, Limits{})
	if err != nil || a.Version == nil {
		t.Fatalf("awaiting: %v %+v", err, a)
	}
	return a
}

func apply(t *testing.T, f Format, doc, patch []byte) []byte {
	t.Helper()
	var out []byte
	var err error
	if f == MergePatch {
		out, err = jsonpatch.MergePatch(doc, patch)
	} else {
		var p jsonpatch.Patch
		if p, err = jsonpatch.DecodePatch(patch); err == nil {
			out, err = p.Apply(doc)
		}
	}
	if err != nil {
		t.Fatalf("applying %s to %s: %v", patch, doc, err)
	}
	return out
}

// TestAwaitHoldsUntilDeadline: with no change, the answer is the version held, after the
// wait; an unknown version gets the document at once; a full route refuses.
func TestAwaitHoldsUntilDeadline(t *testing.T) {
	t.Parallel()
	h := New(Config{})
	defer h.Close()
	src := newDocSource()
	newSrc := func() Source { return src }
	go offer(src, rowsDoc(0))
	cur := await(t, h, newSrc, "", JSONPatch, 0).Version.ID
	start := time.Now()
	a := await(t, h, newSrc, cur, JSONPatch, 300*time.Millisecond)
	if a.Version.ID != cur || a.Patch != nil || time.Since(start) < 300*time.Millisecond {
		t.Fatalf("got %+v after %v, want %s held for the wait", a, time.Since(start), cur)
	}
	if a := await(t, h, newSrc, "unknown", JSONPatch, time.Minute); a.Version.ID != cur || a.Patch != nil {
		t.Fatalf("unknown version: got %+v, want the document", a)
	}
	lim := Limits{Slots: new(Slots), MaxSubscribers: 1}
	lim.take()
	if _, err := h.Await(context.Background(), "k", newSrc, cur, JSONPatch, time.Minute, lim); !errors.Is(err, ErrTooManySubscribers) {
		t.Fatalf("full route: got %v, want ErrTooManySubscribers", err)
	}
}
