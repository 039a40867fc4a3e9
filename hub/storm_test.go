package hub

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// stormDoc is a document of about 4 KiB of which only "n" changes, so that the patches
// of a few versions together are smaller than it.
func stormDoc(i int) string {
	return fmt.Sprintf(`{"n":%d,"fixed":%q}`, i, strings.Repeat("x", 4<<10))
}

// TestStormComputesEachCatchUpOnce: 300 clients resume at once from the last five
// versions in both patch formats. Each catch-up (format, version) is computed once,
// which the Observer is told of, and every client ends with the current document.
func TestStormComputesEachCatchUpOnce(t *testing.T) {
	t.Parallel()
	const clients, behind = 300, 5
	rec := newRecorder()
	h := newHub(t, Config{Observer: rec})
	src := newDocSource()
	live := subscribeIn(t, h, src, "", JSONPatch)
	ids := make([]string, behind+1)
	for i := range ids {
		src.send(t, stormDoc(i))
		live.waitDoc(t, stormDoc(i))
		ids[i] = live.id
	}
	formats := []Format{JSONPatch, MergePatch}
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			from, f := i%behind, formats[i%len(formats)]
			c := subscribeIn(t, h, src, ids[from], f)
			c.doc = []byte(stormDoc(from))
			for !c.holds(stormDoc(behind)) {
				if err := c.read(10 * time.Second); err != nil {
					t.Errorf("client %d, %s from version %d: %v", i, f, from, err)
					return
				}
			}
		})
	}
	wg.Wait()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, f := range formats {
		if n := rec.computed[f.String()]; n != behind {
			t.Errorf("%d %s catch-ups computed for %d versions", n, f, behind)
		}
	}
}

// TestJoinWhilePublishing hands 200 connections to the hub while 100 changes are
// published back to back: whether a stream joins before, during or after a change, it
// gets a snapshot and then every later change, none missing or repeated, up to the last.
func TestJoinWhilePublishing(t *testing.T) {
	t.Parallel()
	const joiners, changes = 200, 100
	docs := make([]string, changes+1)
	for i := range docs {
		docs[i] = stormDoc(i)
	}
	ids := versions(t, docs)
	h := newHub(t, Config{})
	src := newDocSource()
	clients := serveClients(t, h, src, 1, nil) // the topic runs
	src.send(t, docs[0])
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, d := range docs[1:] {
			src.docs <- d
		}
	}()
	clients = append(clients, serveClients(t, h, src, joiners-1, nil)...)
	<-done
	for _, c := range clients {
		go c.run()
	}
	for i, c := range clients {
		c.waitID(t, ids[changes], 30*time.Second)
		c.mu.Lock()
		got, kinds, first := strings.Join(c.ids, ","), c.kind, c.ids[0]
		c.mu.Unlock()
		from := slices.Index(ids, first)
		if kinds[0] != "snapshot" || from < 0 || got != strings.Join(ids[from:], ",") {
			t.Fatalf("client %d received %v %s; want a snapshot and every later version of %v", i, kinds, got, ids)
		}
	}
}
