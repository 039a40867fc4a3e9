package difftest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSuitePairs(t *testing.T) {
	t.Parallel()
	pairs := SuitePairs()
	if len(pairs) != 62 {
		t.Fatalf("%d suite pairs, want 62 (50 from tests.json, 12 from spec_tests.json)", len(pairs))
	}
	for _, p := range pairs {
		if !json.Valid(p.A) || !json.Valid(p.B) || p.Name == "" {
			t.Errorf("%s: invalid pair %s -> %s", p.Name, p.A, p.B)
		}
	}
}

func TestRandomPairsAreDeterministic(t *testing.T) {
	t.Parallel()
	a, b, c := RandomPairs(7, 200), RandomPairs(7, 200), RandomPairs(8, 200)
	same := 0
	for i := range a {
		if a[i].Name != b[i].Name || !bytes.Equal(a[i].A, b[i].A) || !bytes.Equal(a[i].B, b[i].B) {
			t.Fatalf("pair %d differs between two runs of seed 7", i)
		}
		if bytes.Equal(a[i].A, c[i].A) {
			same++
		}
	}
	if same > 20 {
		t.Fatalf("seeds 7 and 8 share %d of 200 first documents", same)
	}
	v1, v2 := RandomVersions(3, 20), RandomVersions(3, 20)
	for i := range v1 {
		if !bytes.Equal(v1[i], v2[i]) {
			t.Fatalf("version %d differs between two runs of seed 3", i)
		}
	}
}

// coverage counts the features the contract of RandomPairs promises.
type coverage map[string]int

func (c coverage) add(p Pair) {
	a, _ := Decode(p.A)
	b, _ := Decode(p.B)
	if _, ok, _ := NullMember(p.B); ok {
		c["null member in b"]++
	}
	if kindOf(a) != kindOf(b) {
		c["root type change"]++
	}
	if eq, _ := Equal(p.A, p.B); eq {
		c["same document"]++
	}
	if !bytes.Equal(p.A, p.B) {
		c["bytes differ"]++
	}
	for _, s := range []string{"1e400", "-0", "1.0", "18446744073709551617", `"~1"`, `"a/b"`, `""`, "😀", "e\u0301", "{}", "[]", " : "} {
		if bytes.Contains(p.B, []byte(s)) {
			c[s]++
		}
	}
	for _, m := range []string{"insert-front", "insert-middle", "insert-end", "remove-front", "remove-middle", "remove-end", "move", "retype", "respell", "reorder"} {
		if strings.Contains(p.Name, m+" ") {
			c[m]++
		}
	}
	if strings.Contains(p.Name, `retype ""`) {
		c[`retype ""`]++
	}
}

func kindOf(v any) string {
	switch v.(type) {
	case map[string]any:
		return "object"
	case []any:
		return "array"
	default:
		return "scalar"
	}
}

func TestRandomPairsCoverTheContract(t *testing.T) {
	t.Parallel()
	c := coverage{}
	for _, p := range RandomPairs(1, 10000) {
		if !json.Valid(p.A) || !json.Valid(p.B) {
			t.Fatalf("%s: invalid JSON %s -> %s", p.Name, p.A, p.B)
		}
		c.add(p)
	}
	for _, want := range []string{"null member in b", "root type change", "same document", "1e400", "-0", "1.0",
		"18446744073709551617", `"~1"`, `"a/b"`, `""`, "😀", "e\u0301", "{}", "[]", " : ", "insert-front",
		"insert-middle", "insert-end", "remove-front", "remove-middle", "remove-end", "move", "retype",
		`retype ""`, "respell", "reorder"} {
		if c[want] < 20 {
			t.Errorf("only %d of 10000 pairs have %s", c[want], want)
		}
	}
	if c["same document"] > 2000 || c["null member in b"] > 5000 {
		t.Errorf("unbalanced pairs: %v", c)
	}
	t.Logf("coverage: %v", c)
}

func TestKeyedPairs(t *testing.T) {
	t.Parallel()
	messy := 0
	for _, p := range KeyedPairs(1, 2000) {
		var a, b struct{ Items []json.RawMessage }
		if json.Unmarshal(p.A, &a) != nil || json.Unmarshal(p.B, &b) != nil {
			t.Fatalf("%s: not keyed documents: %s -> %s", p.Name, p.A, p.B)
		}
		if strings.HasSuffix(p.Name, "messy") {
			messy++
			continue
		}
		if !uniqueIDs(p.B) {
			t.Fatalf("%s: repeated id in %s", p.Name, p.B)
		}
	}
	if messy == 0 || messy > 100 {
		t.Fatalf("%d messy pairs of 2000", messy)
	}
}

func uniqueIDs(doc []byte) bool {
	var d struct{ Items []Item }
	if json.Unmarshal(doc, &d) != nil {
		return false
	}
	seen := map[int]bool{}
	for _, it := range d.Items {
		if seen[it.ID] {
			return false
		}
		seen[it.ID] = true
	}
	return true
}

func TestItemEdits(t *testing.T) {
	t.Parallel()
	items := Items(4)
	ids := func(items []Item) (out []int) {
		for _, it := range items {
			out = append(out, it.ID)
		}
		return out
	}
	tests := []struct {
		name string
		got  []Item
		want []int
	}{
		{"insert front", Insert(items, 0, NewItem(9)), []int{9, 1, 2, 3, 4}},
		{"insert end", Insert(items, 4, NewItem(9)), []int{1, 2, 3, 4, 9}},
		{"remove middle", Remove(items, 2), []int{1, 2, 4}},
		{"move front to end", Move(items, 0, 3), []int{2, 3, 4, 1}},
		{"move end to front", Move(items, 3, 0), []int{4, 1, 2, 3}},
	}
	for _, tc := range tests {
		if g := ids(tc.got); !slicesEqual(g, tc.want) {
			t.Errorf("%s: ids %v, want %v", tc.name, g, tc.want)
		}
	}
	if g := ids(items); !slicesEqual(g, []int{1, 2, 3, 4}) {
		t.Errorf("edits changed their input: %v", g)
	}
}

func slicesEqual(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestEqualAndIdentical(t *testing.T) {
	t.Parallel()
	tests := []struct {
		a, b             string
		equal, identical bool
	}{
		{`{"a":1,"b":[1,2]}`, `{"b":[1, 2], "a":1}`, true, true},
		{`1`, `1.0`, true, false},
		{`1`, `1e0`, true, false},
		{`150`, `1.50E2`, true, false},
		{`0`, `-0`, true, false},
		{`0.000`, `0e10`, true, false},
		{`18446744073709551617`, `18446744073709551616`, false, false},
		{`1e400`, `1e401`, false, false},
		{`1e400`, `10e399`, true, false},
		{`"\u00e9"`, `"é"`, true, true},
		{`"é"`, `"e\u0301"`, false, false},
		{`[1,2]`, `[2,1]`, false, false},
		{`{"a":null}`, `{}`, false, false},
		{`null`, `false`, false, false},
	}
	for _, tc := range tests {
		eq, err := Equal([]byte(tc.a), []byte(tc.b))
		if err != nil || eq != tc.equal {
			t.Errorf("Equal(%s, %s) = %v, %v; want %v", tc.a, tc.b, eq, err, tc.equal)
		}
		id, err := Identical([]byte(tc.a), []byte(tc.b))
		if err != nil || id != tc.identical {
			t.Errorf("Identical(%s, %s) = %v, %v; want %v", tc.a, tc.b, id, err, tc.identical)
		}
	}
}

func TestNullMember(t *testing.T) {
	t.Parallel()
	tests := []struct {
		doc  string
		want string
		ok   bool
	}{
		{`{"a":null}`, "/a", true},
		{`{"a":{"b~/":null}}`, "/a/b~0~1", true},
		{`{"a":[null,{"b":null}]}`, "/a/1/b", true},
		{`[{"a":null}]`, "/0/a", true},
		{`{"a":[null,[null]]}`, "", false},
		{`null`, "", false},
		{`{"a":1}`, "", false},
	}
	for _, tc := range tests {
		got, ok, err := NullMember([]byte(tc.doc))
		if err != nil || ok != tc.ok || got != tc.want {
			t.Errorf("NullMember(%s) = %q, %v, %v; want %q, %v", tc.doc, got, ok, err, tc.want, tc.ok)
		}
	}
}

// TestApplyMergePatch runs the examples of RFC 7386 appendix A, and arrays holding
// nulls, which a merge patch sets whole.
func TestApplyMergePatch(t *testing.T) {
	t.Parallel()
	tests := [][3]string{
		{`{"a":"b"}`, `{"a":"c"}`, `{"a":"c"}`},
		{`{"a":"b"}`, `{"b":"c"}`, `{"a":"b","b":"c"}`},
		{`{"a":"b"}`, `{"a":null}`, `{}`},
		{`{"a":"b","b":"c"}`, `{"a":null}`, `{"b":"c"}`},
		{`{"a":["b"]}`, `{"a":"c"}`, `{"a":"c"}`},
		{`{"a":"c"}`, `{"a":["b"]}`, `{"a":["b"]}`},
		{`{"a":{"b":"c"}}`, `{"a":{"b":"d","c":null}}`, `{"a":{"b":"d"}}`},
		{`{"a":[{"b":"c"}]}`, `{"a":[1]}`, `{"a":[1]}`},
		{`["a","b"]`, `["c","d"]`, `["c","d"]`},
		{`{"a":"b"}`, `["c"]`, `["c"]`},
		{`{"a":"foo"}`, `null`, `null`},
		{`{"a":"foo"}`, `"bar"`, `"bar"`},
		{`{"e":null}`, `{"a":1}`, `{"e":null,"a":1}`},
		{`[1,2]`, `{"a":"b","c":null}`, `{"a":"b"}`},
		{`{}`, `{"a":{"bb":{"ccc":null}}}`, `{"a":{"bb":{}}}`},
		{`{"a":1}`, `{"x":[{"y":null}]}`, `{"a":1,"x":[{"y":null}]}`},
		{`null`, `{"a":1e400}`, `{"a":1e400}`},
	}
	for _, tc := range tests {
		got, err := ApplyMergePatch([]byte(tc[0]), []byte(tc[1]))
		if err != nil {
			t.Errorf("ApplyMergePatch(%s, %s): %v", tc[0], tc[1], err)
			continue
		}
		if ok, _ := Identical(got, []byte(tc[2])); !ok {
			t.Errorf("ApplyMergePatch(%s, %s) = %s, want %s", tc[0], tc[1], got, tc[2])
		}
	}
}

// suiteTest is one test of the json-patch-tests suite.
type suiteTest struct {
	Comment  string
	Doc      json.RawMessage
	Patch    json.RawMessage
	Expected json.RawMessage
	Error    *string
	Disabled bool
}

// TestApplyPatchPassesTheSuite runs the whole json-patch-tests suite, error cases
// included, on the reference applier.
func TestApplyPatchPassesTheSuite(t *testing.T) {
	t.Parallel()
	for _, file := range []string{"tests.json", "spec_tests.json"} {
		data, err := os.ReadFile(filepath.Join("testdata", file))
		if err != nil {
			t.Fatal(err)
		}
		var tests []suiteTest
		if err := json.Unmarshal(data, &tests); err != nil {
			t.Fatal(err)
		}
		for i, tc := range tests {
			if tc.Doc == nil || tc.Disabled {
				continue
			}
			checkSuiteTest(t, fmt.Sprintf("%s#%d %s", file, i, tc.Comment), tc)
		}
	}
}

func checkSuiteTest(t *testing.T, name string, tc suiteTest) {
	got, err := ApplyPatch(tc.Doc, tc.Patch)
	switch {
	case tc.Error != nil && err == nil:
		t.Errorf("%s: applied to %s, want error %q", name, got, *tc.Error)
	case tc.Error == nil && err != nil:
		t.Errorf("%s: %v", name, err)
	case tc.Expected != nil && err == nil:
		if ok, _ := Equal(got, tc.Expected); !ok {
			t.Errorf("%s: got %s, want %s", name, got, tc.Expected)
		}
	}
}

func TestApplyPatchEdges(t *testing.T) {
	t.Parallel()
	tests := []struct{ doc, patch, want string }{
		{`"x"`, `[{"op":"replace","path":"","value":2}]`, `2`},
		{`1`, `[{"op":"add","path":"","value":{"a":1e400}}]`, `{"a":1e400}`},
		{`{"":{"":1}}`, `[{"op":"replace","path":"//","value":2}]`, `{"":{"":2}}`},
		{`{"a":{"":[1]}}`, `[{"op":"add","path":"/a//0","value":0}]`, `{"a":{"":[0,1]}}`},
		{`{"~/":1}`, `[{"op":"move","from":"/~0~1","path":"/~1~0"}]`, `{"/~":1}`},
		{`[1,2,3]`, `[{"op":"move","from":"/0","path":"/2"}]`, `[2,3,1]`},
		{`{"a":[1]}`, `[{"op":"copy","from":"/a","path":"/b"},{"op":"add","path":"/b/-","value":2}]`, `{"a":[1],"b":[1,2]}`},
		{`{"a":18446744073709551617}`, `[{"op":"test","path":"/a","value":18446744073709551617.0}]`, `{"a":18446744073709551617}`},
	}
	for _, tc := range tests {
		got, err := ApplyPatch([]byte(tc.doc), []byte(tc.patch))
		if ok, _ := Identical(got, []byte(tc.want)); err != nil || !ok {
			t.Errorf("ApplyPatch(%s, %s) = %s, %v; want %s", tc.doc, tc.patch, got, err, tc.want)
		}
	}
	bad := []struct{ doc, patch string }{
		{`[1]`, `[{"op":"add","path":"/01","value":0}]`},
		{`[1]`, `[{"op":"replace","path":"/-","value":0}]`},
		{`[1]`, `[{"op":"add","path":"/-1","value":0}]`},
		{`{"a":{}}`, `[{"op":"move","from":"/a","path":"/a/b"}]`},
		{`{"a":1}`, `[{"op":"test","path":"/a","value":18446744073709551617}]`},
		{`{}`, `[{"op":"remove","path":"/a"}]`},
		{`{}`, `[{"op":"add","path":"/a~2","value":1}]`},
	}
	for _, tc := range bad {
		if got, err := ApplyPatch([]byte(tc.doc), []byte(tc.patch)); err == nil {
			t.Errorf("ApplyPatch(%s, %s) = %s, want an error", tc.doc, tc.patch, got)
		}
	}
}

// TestSuitePairsMatchTheSuite checks that suite_pairs.json is what gensuite.go makes of
// the suite files beside it.
func TestSuitePairsMatchTheSuite(t *testing.T) {
	t.Parallel()
	var want []Pair
	for _, file := range []string{"tests.json", "spec_tests.json"} {
		data, err := os.ReadFile(filepath.Join("testdata", file))
		if err != nil {
			t.Fatal(err)
		}
		var tests []suiteTest
		if err := json.Unmarshal(data, &tests); err != nil {
			t.Fatal(err)
		}
		for i, tc := range tests {
			if tc.Doc != nil && tc.Expected != nil && tc.Error == nil && !tc.Disabled {
				want = append(want, Pair{A: tc.Doc, B: tc.Expected, Name: fmt.Sprintf("%s#%d", file, i)})
			}
		}
	}
	got := SuitePairs()
	if len(got) != len(want) {
		t.Fatalf("%d pairs, the suite has %d", len(got), len(want))
	}
	for i := range got {
		same, _ := Identical(got[i].A, want[i].A)
		same2, _ := Identical(got[i].B, want[i].B)
		if !same || !same2 || got[i].Name != want[i].Name && !strings.HasPrefix(got[i].Name, want[i].Name+": ") {
			t.Errorf("pair %d is %s, the suite's is %s; run go generate", i, got[i].Name, want[i].Name)
		}
	}
}
