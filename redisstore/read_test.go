package redisstore

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pollsse/caddy-poll-sse/diff"
	"github.com/pollsse/caddy-poll-sse/hub"
	"github.com/pollsse/caddy-poll-sse/poller"
	"github.com/pollsse/caddy-poll-sse/redisstore/redistest"
)

// addBodies appends docs to the stream as a lease holder does, and returns the stored
// size of each.
func addBodies(t *testing.T, c redis.UniversalClient, stream string, docs [][]byte) []int {
	t.Helper()
	sizes := make([]int, len(docs))
	for i, doc := range docs {
		data := compress(doc)
		sizes[i] = len(data)
		err := c.XAdd(context.Background(), &redis.XAddArgs{Stream: stream, Values: []any{
			"sum", digest(doc), "size", strconv.Itoa(len(doc)), "body", data,
		}}).Err()
		if err != nil {
			t.Fatal(err)
		}
	}
	return sizes
}

// pager is a hub.Source that reads a Source's stream page by page, without blocking,
// and reports the entries of each page.
type pager struct {
	s     *Source
	pages chan int
}

func (p pager) Run(ctx context.Context, t *hub.Topic) {
	defer close(p.pages)
	for ctx.Err() == nil {
		n, err := p.s.read(ctx, t, 0)
		if err != nil || n == 0 {
			return
		}
		p.pages <- n
	}
}

// readPages reads the whole stream of the loop polling cfg and returns the entries of
// each page.
func readPages(t *testing.T, st *Store, cfg poller.Config) []int {
	t.Helper()
	h := hub.New(hub.Config{History: 2, HistoryBytes: 1 << 20})
	t.Cleanup(h.Close)
	p := pager{s: st.Source(cfg, new(diff.Tracker)), pages: make(chan int, 1)}
	sub, err := h.Subscribe("k", func() hub.Source { return p }, "", hub.JSONPatch)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Close)
	var pages []int
	timeout := time.After(30 * time.Second)
	for {
		select {
		case n, ok := <-p.pages:
			if !ok {
				return pages
			}
			pages = append(pages, n)
		case <-timeout:
			t.Fatal("reading the stream took over 30 s")
		}
	}
}

// TestReadPagedByBytes fills streams with large and with small documents: each read
// takes about readBudget bytes of entries, one at a time when they are large, many when
// they are small, never more than maxReadCount.
func TestReadPagedByBytes(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	st := &Store{Client: redis.NewClient(&redis.Options{Addr: r.Addr})}
	t.Cleanup(func() { _ = st.Client.Close() })
	for _, tc := range []struct {
		name string
		docs func(i int) []byte
		n    int
	}{
		{"large", func(int) []byte { return randomDoc(600 << 10) }, 12},
		{"small", func(i int) []byte { return boardDoc(16, i) }, 300},
	} {
		cfg := poller.Config{URL: "http://127.0.0.1:9/" + tc.name}
		_, stream := st.Keys(cfg)
		var docs [][]byte
		for i := range tc.n {
			docs = append(docs, tc.docs(i))
		}
		sizes := addBodies(t, st.Client, stream, docs)
		pages := readPages(t, st, cfg)
		at := 0
		for i, n := range pages {
			bytes := 0
			for _, size := range sizes[at : at+n] {
				bytes += size
			}
			at += n
			if n > maxReadCount || n > 1 && bytes > readBudget {
				t.Errorf("%s: page %d took %d entries, %d bytes; want at most %d entries and %d bytes, or one entry", tc.name, i, n, bytes, maxReadCount, readBudget)
			}
		}
		if at != tc.n {
			t.Errorf("%s: read %d entries of %d", tc.name, at, tc.n)
		}
		t.Logf("%s: %d entries of about %d stored bytes read in %d pages", tc.name, tc.n, sizes[0], len(pages))
	}
}

// TestHostileEntryRefused appends to a followed stream an entry whose body decompresses
// far past max_body while saying it is small, then a good one: the node's clients are
// told the stored document is over max_body, keep their document meanwhile, and follow
// the good one.
func TestHostileEntryRefused(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	up := newUpstream(t, counted(0))
	cfg := up.config(time.Hour) // one poll: the stream then moves only by the test's hand
	cfg.MaxBody = 1 << 20
	n := newNode(t, r, cfg)
	c := n.subscribe(t, "")
	c.waitDoc(t, counted(0))
	_, stream := n.store.Keys(cfg)
	bomb := compress(make([]byte, 256<<20))
	err := n.store.Client.XAdd(context.Background(), &redis.XAddArgs{Stream: stream, Values: []any{
		"sum", "x", "size", "100", "body", bomb,
	}}).Err()
	if err != nil {
		t.Fatal(err)
	}
	if data := waitStatus(t, c, false); !strings.Contains(data, ErrStoredTooLarge.Error()) {
		t.Fatalf("upstream event %s; want it to name the oversized document", data)
	}
	if !c.holds(counted(0)) {
		t.Fatalf("client holds %s after a refused entry", c.doc)
	}
	addBodies(t, n.store.Client, stream, [][]byte{[]byte(counted(1))})
	c.waitDoc(t, counted(1))
}

// TestFollowsStreamThatWentBack replaces a followed stream with one whose entries lie
// before the last entry read, as a failover that lost the newest entries, to a master
// whose clock is behind, leaves it: the node goes back to the stream's last entry and
// follows it.
func TestFollowsStreamThatWentBack(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	up := newUpstream(t, counted(0))
	n := newNode(t, r, up.config(time.Hour)) // one poll: the stream then moves only by the test's hand
	c := n.subscribe(t, "")
	c.waitDoc(t, counted(0))
	_, stream := n.store.Keys(n.cfg)
	ctx := context.Background()
	ahead := counted(1)
	err := n.store.Client.XAdd(ctx, &redis.XAddArgs{Stream: stream, ID: "99999999999999-0", Values: []any{
		"sum", digest([]byte(ahead)), "size", strconv.Itoa(len(ahead)), "body", compress([]byte(ahead)),
	}}).Err()
	if err != nil {
		t.Fatal(err)
	}
	c.waitDoc(t, ahead)
	n.store.Client.Del(ctx, stream)
	addBodies(t, n.store.Client, stream, [][]byte{[]byte(counted(2))})
	// The node looks for a stream gone back after 5 idle seconds: allow four times that
	// on a busy machine.
	c.waitDocWithin(t, counted(2), 20*time.Second)
}

// TestIDBefore checks the order of stream entry IDs, which is numeric, not textual.
func TestIDBefore(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"1-0", "2-0", true},
		{"9-0", "10-0", true},
		{"10-0", "9-0", false},
		{"5-1", "5-2", true},
		{"5-2", "5-2", false},
		{"0", "1-0", true},
		{"1-0", "0", false},
		{"x", "1-0", false},
	} {
		if got := idBefore(tc.a, tc.b); got != tc.want {
			t.Errorf("idBefore(%q, %q) = %v", tc.a, tc.b, got)
		}
	}
}
