package tests

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

const shapeWait = 5 * time.Second

// TestSelect checks `select`: the stream and the JSON GET carry only the selected part;
// a document in which the pointer does not resolve is an `upstream` event with ok:false
// on a stream that stays open and keeps its document; and when it resolves again the
// client is told so and gets the change.
func TestSelect(t *testing.T) {
	t.Parallel()
	u := newUpstream(t, map[string]any{"data": map[string]any{"items": []int{1, 2}}, "meta": map[string]any{"ts": 1}})
	caddy := startCaddy(t, pollSSE(u.url(), "interval 50ms", "select /data"))
	c := dialSSE(t, caddy.url(""))
	checkStreamHeaders(t, c.resp)
	part := []byte(`{"items":[1,2]}`)
	c.waitFor(part, shapeWait)
	checkJSONGet(t, caddy, part)

	u.set(t, map[string]any{"meta": map[string]any{"ts": 2}})
	r, _ := c.waitEvent("upstream failing", shapeWait, isUpstream(t, func(s upstreamStatus) bool { return !s.OK }))
	if s := decodeStatus(t, r); s.Status != http.StatusOK || !strings.Contains(s.Error, "select") || !strings.Contains(s.Error, "/data") {
		t.Errorf("upstream event %s: want status 200 and an error naming select /data", r.Data)
	}
	if got := c.quiet(300 * time.Millisecond); len(versionEvents(got)) != 0 || !jsonEqual(c.doc, part) {
		t.Errorf("while select did not resolve: received %s, document %s", summarize(got), c.doc)
	}
	checkJSONGet(t, caddy, part)

	want := []byte(`{"items":[1,2,3]}`)
	u.set(t, map[string]any{"data": json.RawMessage(want)})
	c.waitEvent("upstream recovery", shapeWait, isUpstream(t, func(s upstreamStatus) bool { return s.OK }))
	c.waitFor(want, shapeWait)
	if got := typeSequence(c.events, "snapshot", "patch"); strings.Join(got, " ") != "snapshot patch" {
		t.Errorf("version events %v, want a snapshot then one patch", got)
	}
	if n := c.dials.Load(); n != 1 {
		t.Errorf("client made %d connections, want one stream throughout", n)
	}
}

// checkJSONGet checks that a JSON GET of the route answers want.
func checkJSONGet(t *testing.T, caddy *caddyProc, want []byte) {
	t.Helper()
	status, _, body, err := jsonGet(boundedClient(), caddy.url(""), nil)
	if err != nil || status != http.StatusOK || !jsonEqual(body, want) {
		t.Errorf("JSON GET: %d %s, %v; want 200 %s", status, body, err, want)
	}
}

// TestIgnore checks `ignore`: a change to ignored members only (a timestamp, and a member
// of every element through `*`) sends no event, the ignored members appear in no event
// nor in the JSON GET, and a real change is one patch.
func TestIgnore(t *testing.T) {
	t.Parallel()
	doc := func(ts, rev int) map[string]any {
		return map[string]any{
			"generated_at": fmt.Sprintf("2026-01-01T00:00:%02dZ", ts),
			"items":        []map[string]any{{"id": 1, "seen": ts}, {"id": 2, "seen": ts, "rev": rev}},
		}
	}
	u := newUpstream(t, doc(0, 0))
	caddy := startCaddy(t, pollSSE(u.url(), "interval 50ms", "ignore /generated_at", "ignore /items/*/seen"))
	c := dialSSE(t, caddy.url(""))
	filtered := func(rev int) []byte {
		return []byte(fmt.Sprintf(`{"items":[{"id":1},{"id":2,"rev":%d}]}`, rev))
	}
	c.waitFor(filtered(0), shapeWait)
	for ts := 1; ts <= 5; ts++ {
		u.set(t, doc(ts, 0))
		time.Sleep(60 * time.Millisecond)
	}
	if got := c.quiet(300 * time.Millisecond); len(got) != 0 {
		t.Errorf("changes to ignored members only sent %s", summarize(got))
	}
	checkJSONGet(t, caddy, filtered(0))

	u.set(t, doc(6, 1))
	got := versionEvents(c.waitFor(filtered(1), shapeWait))
	if len(got) != 1 || got[0].Type != "patch" || strings.Contains(got[0].Data, "seen") || strings.Contains(got[0].Data, "generated_at") {
		t.Errorf("a real change: got %s %v, want one patch without ignored members", summarize(got), got)
	}
}

// TestArrayKey checks `array_key`: inserting an element at the front of an array whose
// elements are keyed by id is one add operation on the wire, not a replace of each
// element.
func TestArrayKey(t *testing.T) {
	t.Parallel()
	items := func(ids ...int) map[string]any {
		var list []map[string]any
		for _, id := range ids {
			list = append(list, map[string]any{"id": id, "name": fmt.Sprintf("item %d", id)})
		}
		return map[string]any{"items": list}
	}
	u := newUpstream(t, items(1, 2, 3, 4, 5, 6, 7, 8))
	caddy := startCaddy(t, pollSSE(u.url(), "interval 50ms", "array_key /items id"))
	c := dialSSE(t, caddy.url(""))
	c.waitFor(u.document(), shapeWait)

	got := versionEvents(c.waitFor(u.set(t, items(0, 1, 2, 3, 4, 5, 6, 7, 8)), shapeWait))
	if len(got) != 1 || got[0].Type != "patch" {
		t.Fatalf("front insert: got %s, want one patch", summarize(got))
	}
	var ops []struct {
		Op, Path string
	}
	if err := json.Unmarshal([]byte(got[0].Data), &ops); err != nil {
		t.Fatal(err)
	}
	if len(ops) != 1 || ops[0].Op != "add" || ops[0].Path != "/items/0" {
		t.Errorf("front insert: patch %s, want one add at /items/0", got[0].Data)
	}
}

// TestReloadWithNewSelect checks that a reload that changes select does not keep the poll
// loop of the old setting: clients after the reload get the newly selected part.
func TestReloadWithNewSelect(t *testing.T) {
	t.Parallel()
	u := newUpstream(t, map[string]any{"a": map[string]any{"v": "A"}, "b": map[string]any{"v": "B"}})
	caddy := startCaddy(t, pollSSE(u.url(), "interval 50ms", "select /a"))
	c := dialSSE(t, caddy.url(""))
	c.waitFor([]byte(`{"v":"A"}`), shapeWait)

	config := strings.Replace(string(caddy.config), "select /a", "select /b", 1)
	status, body, err := caddy.admin(http.MethodPost, "/load", "text/caddyfile", []byte(config), nil)
	if err != nil || status != http.StatusOK {
		t.Fatalf("POST /load: status %d, %v: %s", status, err, body)
	}
	waitAnswering(t, caddy)
	after := dialSSE(t, caddy.url(""), withDocument(c.doc, c.lastID), withLastEventID(c.lastID))
	after.waitFor([]byte(`{"v":"B"}`), shapeWait)
	checkJSONGet(t, caddy, []byte(`{"v":"B"}`))
}

// waitAnswering waits until the site answers a JSON GET on a new connection. A request
// that reaches the config a reload is replacing is dropped (a stream, so that the client
// retries, as a browser does) or answered 503 (a JSON GET); this retries until the new
// config answers.
func waitAnswering(t *testing.T, caddy *caddyProc) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		tr := &http.Transport{DisableKeepAlives: true}
		req, _ := http.NewRequest(http.MethodGet, caddy.url(""), nil)
		req.Header.Set("Accept", "application/json")
		resp, err := (&http.Client{Transport: tr, Timeout: 2 * time.Second}).Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusServiceUnavailable {
				return
			}
			err = errors.New(resp.Status)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the site did not answer after the reload: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
