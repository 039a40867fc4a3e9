package diff

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
)

// viewDoc builds a document of prices and orders from the state of a random walk.
func viewDoc(prices []int, owners []int, qty []int) []byte {
	doc := map[string]any{"meta": map[string]any{"n": len(owners)}}
	p := map[string]any{}
	for i, v := range prices {
		p[fmt.Sprintf("S%d", i)] = map[string]any{"v": v, "hist": []int{v, v + 1}}
	}
	doc["prices"] = p
	var orders []any
	for i, o := range owners {
		orders = append(orders, map[string]any{"id": i, "owner": fmt.Sprintf("u%d", o), "qty": qty[i]})
	}
	doc["orders"] = orders
	b, err := json.Marshal(doc)
	if err != nil {
		panic(err)
	}
	return b
}

// oracleView decodes body with encoding/json, takes the subtree at sel and keeps the rows
// of orders owned by owner ("" keeps all).
func oracleView(t *testing.T, body []byte, sel pointer, owner string) any {
	t.Helper()
	var doc any
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	if owner != "" {
		m := doc.(map[string]any)
		var mine []any
		for _, o := range m["orders"].([]any) {
			if o.(map[string]any)["owner"] == owner {
				mine = append(mine, o)
			}
		}
		if mine == nil {
			mine = []any{}
		}
		m["orders"] = mine
	}
	for _, tok := range sel {
		doc = doc.(map[string]any)[tok]
	}
	return doc
}

func decodeAny(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	return v
}

// TestViewsFollowOracle feeds 300 random changes to views of one tracked document and
// checks, after each, that every view's version is its part as an independent decoder
// sees it, that a client applying the view's patches holds exactly that, that a view's id
// is that of its part tracked alone, and that a filtered view never holds another
// owner's row.
func TestViewsFollowOracle(t *testing.T) {
	route := Options{ArrayKeys: []ArrayKey{{Pointer: "/orders", Member: "id"}}}
	tr, err := NewTracker(route)
	if err != nil {
		t.Fatal(err)
	}
	type vc struct {
		sel    string
		owner  string
		view   *View
		client []byte
	}
	var views []*vc
	for _, s := range []string{"/prices/S0", "/prices/S3", "/prices", "/meta"} {
		views = append(views, &vc{sel: s})
	}
	for _, o := range []string{"u0", "u1", "u2", "u9"} {
		views = append(views, &vc{sel: "", owner: o}, &vc{sel: "/orders", owner: o})
	}
	for _, v := range views {
		var f *RowFilter
		if v.owner != "" {
			f = &RowFilter{Array: "/orders", Member: "owner", Value: v.owner}
		}
		if v.view, err = NewView(route, v.sel, f); err != nil {
			t.Fatal(err)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	prices, owners, qty := make([]int, 8), make([]int, 40), make([]int, 40)
	for i := range owners {
		owners[i] = rng.IntN(5)
	}
	var rows RowIndex
	published := 0
	for step := range 300 {
		switch rng.IntN(4) {
		case 0:
			prices[rng.IntN(len(prices))]++
		case 1:
			qty[rng.IntN(len(qty))]++
		case 2:
			owners[rng.IntN(len(owners))] = rng.IntN(5)
		default:
			owners, qty = append(owners, rng.IntN(5)), append(qty, 0)
		}
		body := viewDoc(prices, owners, qty)
		if _, _, err := tr.Update(body); err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		ch := Change{Version: tr.Current()}
		for _, v := range views {
			vch, vchanged, err := v.view.Update(ch.Version, &rows)
			if err != nil {
				t.Fatalf("step %d view %q/%s: %v", step, v.sel, v.owner, err)
			}
			if vchanged {
				published++
				v.client = applyView(t, v.client, vch)
			}
			want := oracleView(t, body, mustPointer(t, v.sel), v.owner)
			cur := v.view.Current()
			if got := decodeAny(t, cur.JSON); !reflect.DeepEqual(got, want) {
				t.Fatalf("step %d view %q/%s: got %s", step, v.sel, v.owner, cur.JSON)
			}
			if got := decodeAny(t, v.client); !reflect.DeepEqual(got, want) {
				t.Fatalf("step %d view %q/%s: client holds %s", step, v.sel, v.owner, v.client)
			}
			alone, err := Parse(cur.JSON)
			if err != nil || alone.ID != cur.ID {
				t.Fatalf("step %d view %q/%s: id %s, %s alone", step, v.sel, v.owner, cur.ID, alone.ID)
			}
		}
	}
	if published >= 300*len(views) {
		t.Fatalf("every view published at every step (%d): unchanged views are not skipped", published)
	}
}

func applyView(t *testing.T, client []byte, ch Change) []byte {
	t.Helper()
	if client == nil || ch.Patch == nil {
		return append([]byte(nil), ch.Version.JSON...)
	}
	p, err := jsonpatch.DecodePatch(ch.Patch)
	if err != nil {
		t.Fatal(err)
	}
	out, err := p.Apply(client)
	if err != nil {
		t.Fatalf("%v applying %s to %s", err, ch.Patch, client)
	}
	return out
}

func mustPointer(t *testing.T, s string) pointer {
	t.Helper()
	p, err := parsePointer(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestViewUnchangedPartSkipped checks that a view whose part did not change publishes
// nothing and is not re-encoded.
func TestViewUnchangedPartSkipped(t *testing.T) {
	tr, _ := NewTracker(Options{})
	v, err := NewView(Options{}, "/a", nil)
	if err != nil {
		t.Fatal(err)
	}
	var rows RowIndex
	for i, body := range []string{`{"a":{"x":1},"b":1}`, `{"a":{"x":1},"b":2}`, `{"a":{"x":2},"b":2}`} {
		ch, _, err := tr.Update([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		_, changed, err := v.Update(ch.Version, &rows)
		if err != nil || changed != (i != 1) {
			t.Fatalf("body %d: changed %v, %v", i, changed, err)
		}
	}
}

// TestViewPointersRefused checks the views that cannot be served safely.
func TestViewPointersRefused(t *testing.T) {
	f := &RowFilter{Array: "/orders", Member: "owner", Value: "u1"}
	if _, err := NewView(Options{}, "/orders/0", f); err == nil {
		t.Error("a view into the rows of a filtered array was allowed")
	}
	if err := CheckViewPattern(Options{}, "/*/*", f); err == nil {
		t.Error("a pattern that may reach into filtered rows was allowed")
	}
	if err := CheckViewPattern(Options{}, "/*", f); err != nil {
		t.Errorf("/*: %v", err)
	}
	if err := CheckViewPattern(Options{Select: "/a"}, "/b", nil); err == nil {
		t.Error("a pattern outside select was allowed")
	}
	if err := CheckFilter(Options{}, RowFilter{Array: "/*", Member: "m"}); err == nil {
		t.Error("a filter pointer with * was allowed")
	}
	if !MatchPattern("/prices/*", "/prices/ACME") || MatchPattern("/prices/*", "/prices/ACME/x") || MatchPattern("/prices/*", "/orders/1") {
		t.Error("MatchPattern")
	}
}

// TestViewComposesWithShape checks a view under the route's select, with ignored members
// left out and array keys rebased: the view's version is that of a route selecting the
// same part directly, and an insert into a keyed array inside the view is one operation.
func TestViewComposesWithShape(t *testing.T) {
	route := Options{
		Select:    "/data",
		Ignore:    []string{"/data/prices/*/ts"},
		ArrayKeys: []ArrayKey{{Pointer: "/data/prices/*/trades", Member: "id"}},
	}
	tr, err := NewTracker(route)
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewView(route, "/data/prices/ACME", nil)
	if err != nil {
		t.Fatal(err)
	}
	direct, err := NewTracker(Options{Select: "/data/prices/ACME", Ignore: route.Ignore[:1], ArrayKeys: route.ArrayKeys})
	if err != nil {
		t.Fatal(err)
	}
	var rows RowIndex
	bodies := []string{
		`{"data":{"prices":{"ACME":{"ts":1,"trades":[{"id":"a","q":1},{"id":"b","q":2}]},"OTHER":{"ts":1}}},"meta":1}`,
		`{"data":{"prices":{"ACME":{"ts":2,"trades":[{"id":"c","q":3},{"id":"a","q":1},{"id":"b","q":2}]},"OTHER":{"ts":2}}},"meta":2}`,
	}
	for i, body := range bodies {
		if _, _, err := tr.Update([]byte(body)); err != nil {
			t.Fatal(err)
		}
		ch, changed, err := v.Update(tr.Current(), &rows)
		if err != nil || !changed {
			t.Fatalf("body %d: changed %v, %v", i, changed, err)
		}
		want, _, err := direct.Update([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		if ch.Version.ID != want.Version.ID || string(ch.Version.JSON) != string(want.Version.JSON) {
			t.Fatalf("body %d: view %s %s, direct select %s %s", i, ch.Version.ID, ch.Version.JSON, want.Version.ID, want.Version.JSON)
		}
		if i == 1 && string(ch.Patch) != `[{"op":"add","path":"/trades/0","value":{"id":"c","q":3}}]` {
			t.Errorf("insert into a keyed array: %s", ch.Patch)
		}
	}
	if _, err := NewView(route, "/meta", nil); err == nil {
		t.Error("a view outside select was allowed")
	}
}
