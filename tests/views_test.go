package tests

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// viewMark tags every value of the view it belongs to, so that an event carrying bytes of
// another view is caught.
var viewMark = regexp.MustCompile(`mark(\d+)z`)

// pricesDoc is the upstream document of the client_select test: 100 instruments, each
// marked with its number, and a member no view may show.
func pricesDoc(values []int) map[string]any {
	prices := map[string]any{}
	for i, v := range values {
		prices[fmt.Sprintf("S%d", i)] = map[string]any{"v": v, "tag": fmt.Sprintf("mark%dz", i), "hist": []int{v, v / 2}}
	}
	return map[string]any{"prices": prices, "internal": map[string]any{"token": "mark999z"}}
}

// subtree returns the part of doc at /prices/S<i>, as an independent encoder writes it.
func subtree(t testing.TB, doc map[string]any, i int) []byte {
	t.Helper()
	b, err := json.Marshal(doc["prices"].(map[string]any)[fmt.Sprintf("S%d", i)])
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// getJSON answers a JSON-only GET of path with header h.
func getJSON(t testing.TB, c *caddyProc, path string, h http.Header) (int, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, c.url(path), nil)
	if err != nil {
		t.Fatal(err)
	}
	if h != nil {
		req.Header = h.Clone()
	}
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body, resp.Header
}

// TestClientSelectViewsShareOneLoop opens 1,000 streams on 100 distinct ?select= views of
// one route and checks that they cost one upstream request per interval; that after 50
// random changes every client holds exactly its view's subtree of the upstream document
// (compared with an independent encoder's, patches applied with an independent applier);
// that no event carries a byte of another view or of the rest of the document; that the
// JSON GET serves the view with its version as ETag; and that a pointer outside the
// allow-list gets 400 before any stream starts.
func TestClientSelectViewsShareOneLoop(t *testing.T) {
	if testing.Short() {
		t.Skip("load test")
	}
	const (
		views    = 100
		clients  = 1000
		changes  = 50
		interval = 100 * time.Millisecond
	)
	values := make([]int, views)
	u := newUpstream(t, pricesDoc(values))
	// Every client here comes from 127.0.0.1, and each view of a part a `*` pattern allows
	// counts toward that address's max_loops_per_client: the test's one address may start
	// all 100 views.
	caddy := startCaddy(t, pollSSE(u.url(), "interval 100ms", "client_select /prices/*", "array_key /prices/*/hist v",
		"max_loops_per_client 200"))

	for _, q := range []string{"", "select=/internal", "select=/prices", "select=/prices/S1/v", "select=/prices/S1&select=/prices/S2"} {
		c := dialSSE(t, caddy.url(""), withRawQuery(q))
		if c.resp.StatusCode != http.StatusBadRequest || strings.HasPrefix(c.resp.Header.Get("Content-Type"), "text/event-stream") {
			t.Fatalf("?%s: status %d, Content-Type %q; want 400 and no stream", q, c.resp.StatusCode, c.resp.Header.Get("Content-Type"))
		}
		c.close()
	}

	start := time.Now()
	cs := make([]*sseClient, clients)
	for i := range cs {
		cs[i] = dialSSE(t, caddy.url(""), withRawQuery("select="+url.QueryEscape(fmt.Sprintf("/prices/S%d", i%views))))
		if cs[i].resp.StatusCode != http.StatusOK {
			t.Fatalf("client %d: status %d", i, cs[i].resp.StatusCode)
		}
	}
	doc := pricesDoc(values)
	for i, c := range cs {
		c.waitFor(subtree(t, doc, i%views), 20*time.Second)
	}
	rng := rand.New(rand.NewPCG(17, 17))
	for range changes {
		for range 1 + rng.IntN(3) {
			values[rng.IntN(views)] += 1 + rng.IntN(5)
		}
		doc = pricesDoc(values)
		doc["internal"].(map[string]any)["n"] = rng.Int() // changes outside every view
		u.set(t, doc)
		time.Sleep(2 * interval)
	}
	for i, c := range cs {
		c.waitFor(subtree(t, doc, i%views), 20*time.Second)
	}
	elapsed := time.Since(start)
	n := u.countBetween(start, start.Add(elapsed))
	perInterval := float64(elapsed) / float64(interval)
	t.Logf("%d clients in %d views, %v: %d upstream requests (%.1f intervals)", clients, views, elapsed.Round(time.Millisecond), n, perInterval)
	if float64(n) > perInterval+3 {
		t.Errorf("%d upstream requests in %.1f intervals: want one per interval", n, perInterval)
	}
	for i, c := range cs {
		checkOnlyView(t, c, i%views)
	}
	for i := range 5 {
		status, body, hdr := getJSON(t, caddy, "/?select="+url.QueryEscape(fmt.Sprintf("/prices/S%d", i)), nil)
		if status != http.StatusOK || !jsonEqual(body, subtree(t, doc, i)) {
			t.Fatalf("JSON GET of view %d: status %d, %s", i, status, body)
		}
		if want := `"` + cs[i].lastID + `"`; hdr.Get("ETag") != want {
			t.Errorf("JSON GET of view %d: ETag %s, the stream's version %s", i, hdr.Get("ETag"), want)
		}
	}
}

// checkOnlyView fails the test if an event of c carries a mark of another view than i.
func checkOnlyView(t testing.TB, c *sseClient, i int) {
	t.Helper()
	for _, r := range c.events {
		for _, m := range viewMark.FindAllStringSubmatch(r.Data, -1) {
			if m[1] != fmt.Sprint(i) {
				t.Fatalf("client of view %d received %s in %s event %.300q", i, m[0], r.Type, r.Data)
			}
		}
		if strings.Contains(r.Data, "prices") || strings.Contains(r.Data, "internal") {
			t.Fatalf("client of view %d received bytes from outside its view: %.300q", i, r.Data)
		}
	}
}

// ordersDoc is the upstream document of the filter test: rows owned by users, each row
// marked with its owner, and a total every user sees.
func ordersDoc(owners []int, qty []int) map[string]any {
	orders := []any{}
	for id, o := range owners {
		orders = append(orders, map[string]any{"id": id, "owner": fmt.Sprintf("u%d", o), "qty": qty[id], "note": fmt.Sprintf("mark%dz", o)})
	}
	return map[string]any{"orders": orders, "total": len(owners)}
}

// userView is what user u may see of doc: its rows only, as an independent encoder
// writes them.
func userView(t testing.TB, doc map[string]any, u int) []byte {
	t.Helper()
	mine := []any{}
	for _, row := range doc["orders"].([]any) {
		if row.(map[string]any)["owner"] == fmt.Sprintf("u%d", u) {
			mine = append(mine, row)
		}
	}
	b, err := json.Marshal(map[string]any{"orders": mine, "total": doc["total"]})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func userHeader(u int) http.Header { return http.Header{"X-User": {fmt.Sprintf("u%d", u)}} }

// TestFilterIsolatesUsers streams one document of orders to 50 users under `filter`, the
// identity taken from a request header (in production it comes from an authentication
// module, or from a header that a trusted proxy sets and clients cannot), through 40
// random changes that move rows between users. User A never receives a row of user B: not
// on the stream, not in the catch-up on resume, not from the JSON GET, not when resuming
// with an id of B's view (A gets a snapshot of A's view), not in the admin API, the
// metrics or the logs; a request without identity gets 403.
func TestFilterIsolatesUsers(t *testing.T) {
	const users, rows = 50, 200
	owners, qty := make([]int, rows), make([]int, rows)
	for i := range owners {
		owners[i] = i % users
	}
	u := newUpstream(t, ordersDoc(owners, qty))
	caddy := startCaddyWith(t, "debug", pollSSE(u.url(), "interval 100ms", "name orders",
		"filter /orders owner {http.request.header.X-User}", "array_key /orders id"))

	for _, h := range []http.Header{nil, {"X-User": {""}}} {
		var opts []dialOption
		for k, v := range h {
			opts = append(opts, withHeader(k, v[0]))
		}
		c := dialSSE(t, caddy.url(""), opts...)
		if c.resp.StatusCode != http.StatusForbidden {
			t.Fatalf("stream without identity %v: status %d, want 403", h, c.resp.StatusCode)
		}
		c.close()
		if status, body, _ := getJSON(t, caddy, "/", h); status != http.StatusForbidden || viewMark.Match(body) {
			t.Fatalf("JSON GET without identity %v: status %d, %.200s", h, status, body)
		}
	}

	cs := make([]*sseClient, users)
	doc := ordersDoc(owners, qty)
	for i := range cs {
		cs[i] = dialSSE(t, caddy.url(""), withHeader("X-User", fmt.Sprintf("u%d", i)))
		cs[i].waitFor(userView(t, doc, i), 10*time.Second)
	}
	early, earlyDoc := make([]string, users), make([][]byte, users) // each user's version before the changes
	for i, c := range cs {
		early[i], earlyDoc[i] = c.lastID, c.doc
	}
	rng := rand.New(rand.NewPCG(5, 50))
	for range 40 {
		r := rng.IntN(rows)
		if rng.IntN(2) == 0 {
			owners[r] = rng.IntN(users)
		} else {
			qty[r]++
		}
		doc = ordersDoc(owners, qty)
		u.set(t, doc)
		time.Sleep(150 * time.Millisecond)
	}
	for i, c := range cs {
		c.waitFor(userView(t, doc, i), 10*time.Second)
		checkOnlyView(t, c, i)
	}

	checked := 0
	for a := range users {
		if early[a] == cs[a].lastID || checked == 5 {
			continue // its rows did not change: it would get nothing until they do
		}
		checked++
		b := users - 1 - a
		// Catch-up on resume from A's own earlier version.
		c := dialSSE(t, caddy.url(""), withHeader("X-User", fmt.Sprintf("u%d", a)), withDocument(earlyDoc[a], early[a]), withLastEventID(early[a]))
		r := c.mustNext(10 * time.Second)
		if !jsonEqual(c.doc, userView(t, doc, a)) {
			t.Fatalf("user %d resuming: %s %.300q leaves %.300s", a, r.Type, r.Data, c.doc)
		}
		checkNoForeignMark(t, r.Data, a)
		c.close()
		// Resume with the version of B's view: a snapshot of A's.
		c = dialSSE(t, caddy.url(""), withHeader("X-User", fmt.Sprintf("u%d", a)), withLastEventID(cs[b].lastID))
		r = c.mustNext(10 * time.Second)
		if r.Type != "snapshot" || !jsonEqual([]byte(r.Data), userView(t, doc, a)) {
			t.Fatalf("user %d resuming from user %d's version: %s %.300q, want a snapshot of its own view", a, b, r.Type, r.Data)
		}
		c.close()
		// The JSON GET, also with B's version as If-None-Match.
		h := userHeader(a)
		h.Set("If-None-Match", `"`+cs[b].lastID+`"`)
		status, body, _ := getJSON(t, caddy, "/", h)
		if status != http.StatusOK || !jsonEqual(body, userView(t, doc, a)) {
			t.Fatalf("JSON GET of user %d: status %d, %.300s", a, status, body)
		}
	}

	if checked < 5 {
		t.Fatalf("only %d users saw their rows change", checked)
	}
	_, loops, err := caddy.admin(http.MethodGet, "/poll_sse/loops", "", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var admin struct {
		Loops []struct {
			Views int `json:"views"`
		} `json:"loops"`
	}
	if err := json.Unmarshal([]byte(loops), &admin); err != nil || len(admin.Loops) != 1 || admin.Loops[0].Views < users {
		t.Errorf("admin API: %v, %.300s; want one loop with %d views", err, loops, users)
	}
	_, metrics := scrape(t, caddy)
	for what, text := range map[string]string{"admin API": loops, "metrics": metrics, "logs": caddy.stderr.String()} {
		if m := viewMark.FindString(text); m != "" {
			t.Errorf("%s show a row (%s)", what, m)
		}
		if strings.Contains(text, `"u17"`) || strings.Contains(text, "=u17") {
			t.Errorf("%s show an identity", what)
		}
	}
}

// checkNoForeignMark fails the test if data carries a row of another user than u.
func checkNoForeignMark(t testing.TB, data string, u int) {
	t.Helper()
	for _, m := range viewMark.FindAllStringSubmatch(data, -1) {
		if m[1] != fmt.Sprint(u) {
			t.Fatalf("user %d received a row of user %s: %.300q", u, m[1], data)
		}
	}
}
