package diff_test

import (
	"strings"
	"sync"
	"testing"

	"github.com/pollsse/caddy-poll-sse/diff"
	"github.com/pollsse/caddy-poll-sse/diff/difftest"
)

// TestReuseCases streams bodies built to make a new parse take nodes of the last one in
// the ways that can go wrong, and checks every step against a Tracker that starts from
// scratch and against both appliers.
func TestReuseCases(t *testing.T) {
	t.Parallel()
	deep := strings.Repeat("[", 1001) + strings.Repeat("]", 1001)
	plain := diff.Options{}
	tests := []struct {
		name   string
		opts   diff.Options
		bodies []string
	}{
		{"a repeated member whose first value is reused, then dropped", plain, []string{
			`{"a":{"k":[1,2]},"b":1}`,
			`{"a":{"k":[1,2]},"a":{"k":[1,2],"z":1},"b":2}`,
			`{"a":{"k":[1,2],"z":1},"c":{"k":[1,2]}}`,
			`{"c":{"k":[1,2]},"a":{"k":[1,2,3]},"a":{"k":[1,2],"z":1}}`,
			`{"a":{"k":[1,2],"z":2},"c":{"k":[1,2]}}`,
		}},
		{"a repeated member whose last value lends to the first", plain, []string{
			`{"a":{"k":[1,2],"m":{"n":1}}}`,
			`{"a":{"k":[1,2],"m":{"n":1},"z":1},"a":{"k":[1,2],"m":{"n":1}}}`,
			`{"a":{"k":[1,2],"m":{"n":2}}}`,
		}},
		{"an unchanged element that lent a child to a new one", diff.Options{ArrayKeys: []diff.ArrayKey{{Pointer: "/items", Member: "id"}}}, []string{
			`{"items":[{"id":72634,"price":1.5,"tags":[]},{"id":6,"price":106,"tags":["a","t8"]},{"id":15657,"price":1.5,"tags":[]}]}`,
			`{"items":[{"id":97103,"price":1.5,"tags":[]},{"id":46212,"price":1.5,"tags":[]},{"id":7525,"price":1.5,"tags":[]},{"id":6,"price":14.09,"tags":["a","t8"]},{"id":15657,"price":1.5,"tags":[]}]}`,
			`{"items":[{"id":97103,"price":1.5,"tags":[]},{"id":46212,"price":1.5,"tags":[]},{"id":7525,"price":1.5,"tags":[]},{"id":6,"price":14.09,"tags":["a","t8"]},{"id":15657,"price":98.88,"tags":[]}]}`,
			`{"items":[{"id":15657,"price":98.88,"tags":[]},{"id":97103,"price":1.5,"tags":[]}]}`,
		}},
		{"an element equal by bytes to several old ones", plain, []string{
			`[[1,2],[1,2],[1,2]]`,
			`[[0],[1,2],[1,2],[1,2],[1,2]]`,
			`[[1,2],[0],[1,2]]`,
			`[[1,2,3],[1,2],[1,2]]`,
			`[[1,2],[1,2],[1,2,3],[1,2]]`,
		}},
		{"elements equal in part, shifted", plain, []string{
			`[{"x":[1],"y":2},{"x":[1],"y":3}]`,
			`[{"x":[1],"y":9},{"x":[1],"y":2},{"x":[1],"y":3}]`,
			`[{"x":[1],"y":9},{"x":[1],"y":2},{"x":[1],"y":4}]`,
			`[{"x":[1],"y":2},{"x":[1],"y":4},{"x":[1],"y":9}]`,
		}},
		{"a container kept while an ignored member changes", diff.Options{Ignore: []string{"/a/t"}}, []string{
			`{"a":{"x":[1,2],"t":1}}`,
			`{"a":{"x":[1,2],"t":2}}`,
			`{"a":{"x":[1,3],"t":2}}`,
			`{"a":{"t":3,"x":[1,3]}}`,
			`{"a":{"t":3,"x":[1,3],"y":[1,3]}}`,
		}},
		{"ignore by index while the array grows and shrinks", diff.Options{Ignore: []string{"/items/0", "/items/2/x"}}, []string{
			`{"items":[{"x":1},{"x":1},{"x":1}]}`,
			`{"items":[{"x":1},{"x":1}]}`,
			`{"items":[{"x":2},{"x":1},{"x":1},{"x":1}]}`,
			`{"items":[{"x":1},{"x":1},{"x":1},{"x":1}]}`,
			`{"items":[{"x":1},{"x":1},{"x":2},{"x":1}]}`,
		}},
		{"the selected part moves within the body", diff.Options{Select: "/data"}, []string{
			`{"data":[1,[2]],"m":1}`,
			`{"m":12345,"data":[1,[2]]}`,
			`{"data":[1,[2],3],"m":1}`,
			`{"m":1,"data":[[2],1,3]}`,
			`{"data":[[2],1,3],"data":[[2],1,3,[2]]}`,
		}},
		{"empty containers", plain, []string{
			`[[],{},[[]],[{}]]`,
			`[{},[],[{}],[[]]]`,
			`[[],[],{},{}]`,
			`[[[]],[[]],[]]`,
		}},
		{"numbers spelt otherwise", plain, []string{
			`[1,1.0,-0,0,1e400]`,
			`[1.0,1,0,-0,1E400]`,
			`[1e400,1,1.0]`,
		}},
		{"keyed arrays losing and regaining valid keys", diff.Options{ArrayKeys: []diff.ArrayKey{{Pointer: "/items", Member: "id"}}}, []string{
			`{"items":[{"id":1},{"id":2}]}`,
			`{"items":[{"id":1},{"id":1},{"id":2}]}`,
			`{"items":[{"id":2},{"x":1},{"id":1}]}`,
			`{"items":[{"id":2},{"id":1}]}`,
			`{"items":[{"id":1,"v":[1]},{"id":2}]}`,
		}},
		{"the root changes type", plain, []string{
			`{"a":[1]}`, `1`, `"s"`, `{"a":[1]}`, `[{"a":[1]}]`, `null`, `[{"a":[1]}]`,
		}},
		{"refused bodies between good ones", plain, []string{
			`{"a":{"k":[1,2]},"b":[{"c":1}]}`,
			`{"a":{"k":[1,2]},"b":[{"c":1},` + deep + `]}`,
			`{"a":{"k":[1,2]},"b":[{"c":1}]}`,
			`{"a":{"k":[1,2]},"b":[{"c":2},` + deep + `]}`,
			`{"a":{"k":[1,2]},"b":[{"c":2}]}`,
			`{"a":{"k":[1,2]},"b":[{"c":2}]} x`,
			`{"a":{"k":[1,2]},"b":[{"c":2}]`,
			`{"b":[{"c":2}],"a":{"k":[1,2,3]}}`,
		}},
		{"select that stops resolving and resolves again", diff.Options{Select: "/b/0", Ignore: []string{"/b/0/c"}}, []string{
			`{"a":{"k":[1,2]},"b":[{"c":1,"d":[1]}]}`,
			`{"a":{"k":[1,2]},"b":[]}`,
			`{"a":{"k":[1,2]},"b":[{"c":1,"d":[1]}]}`,
			`{"a":{"k":[1,2]},"b":{"0":{"d":[1]}}}`,
			`{"b":[{"d":[1,` + deep + `]}]}`,
			`{"b":[{"c":2,"d":[1]}]}`,
			`{"b":[{"c":2,"d":[1,2]}]}`,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, err := newStream(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			s.thorough = true
			for i, body := range tc.bodies {
				if _, err := s.step([]byte(body)); err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
			}
		})
	}
}

// TestVersionsReadWhileUpdating reads the documents of published versions, as
// subscribers do through merge patches, while the Tracker goes on updating: the
// bookkeeping a new parse writes into shared nodes must not race with those reads.
func TestVersionsReadWhileUpdating(t *testing.T) {
	t.Parallel()
	var tr diff.Tracker
	changes := make(chan diff.Change, 16)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ch := range changes {
			ch.MergePatch()
			if _, _, err := diff.MergeFromPatch(ch.Patch, ch.Version); err != nil {
				t.Error(err)
			}
		}
	}()
	for i := range 20 {
		for _, body := range difftest.RandomSequence(7, i, 30).Bodies {
			if ch, changed, err := tr.Update(body); err == nil && changed && ch.Patch != nil {
				changes <- ch
			}
		}
	}
	close(changes)
	wg.Wait()
}
