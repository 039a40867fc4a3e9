package tests

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/pollsse/caddy-poll-sse/redisstore/redistest"
)

// TestRedisViewsIsolate runs `filter` on two nodes sharing one Redis: one loop polls for
// both nodes, and each node builds the users' views from the documents it reads from the
// store. Through 15 changes that move rows between 8 users, every client, on either node,
// holds exactly its user's rows and never receives a row of another; a client that moves
// to the other node with its view's id resumes with patches, never a snapshot, since
// view ids are derived from content; the upstream sees about one request per interval for all.
func TestRedisViewsIsolate(t *testing.T) {
	t.Parallel()
	const users, rows = 8, 48
	owners, qty := make([]int, rows), make([]int, rows)
	for i := range owners {
		owners[i] = i % users
	}
	u := newUpstream(t, ordersDoc(owners, qty))
	r := redistest.New(t)
	site := pollSSE(u.url(), "interval "+deployInterval.String(), storeRedis([]string{r.Addr}),
		"filter /orders owner {http.request.header.X-User}", "array_key /orders id")
	nodes := startNodes(t, 2, func(int) string { return site })

	cs := make([]*sseClient, 2*users)
	doc := ordersDoc(owners, qty)
	for i := range cs {
		cs[i] = dialSSE(t, nodes[i%2].url(""), withHeader("X-User", fmt.Sprintf("u%d", i%users)))
		cs[i].waitFor(userView(t, doc, i%users), deployWait)
	}
	rng := rand.New(rand.NewPCG(9, 17))
	start := time.Now()
	for range 15 {
		r := rng.IntN(rows)
		owners[r] = rng.IntN(users)
		qty[r]++
		doc = ordersDoc(owners, qty)
		u.set(t, doc)
		for i, c := range cs {
			c.waitFor(userView(t, doc, i%users), deployWait)
		}
	}
	elapsed := time.Since(start)
	for i, c := range cs {
		checkOnlyView(t, c, i%users)
	}
	if polls, most := u.countBetween(start, time.Now()), int(elapsed/deployInterval)+3; polls > most {
		t.Errorf("the upstream saw %d requests in %v, want at most %d: one loop for both nodes", polls, elapsed.Round(time.Millisecond), most)
	}

	for i, c := range cs[:users] {
		moved := dialSSE(t, nodes[(i+1)%2].url(""), withHeader("X-User", fmt.Sprintf("u%d", i)), withDocument(c.doc, c.lastID), withLastEventID(c.lastID))
		row := slices.Index(owners, i)
		if row < 0 {
			continue // the user holds no row: the change below would not reach it
		}
		qty[row]++
		doc = ordersDoc(owners, qty)
		u.set(t, doc)
		got := moved.waitFor(userView(t, doc, i), deployWait)
		if len(got) == 0 || slices.ContainsFunc(got, func(r received) bool { return r.Type == "snapshot" }) {
			t.Fatalf("user %d moving to the other node with its view's id: %s, want patches only", i, summarize(got))
		}
		checkOnlyView(t, moved, i)
		moved.close()
	}
}
