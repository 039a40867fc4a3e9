package diff_test

import (
	"encoding/json"
	"errors"
	"testing"
	"unicode/utf8"

	"github.com/pollsse/caddy-poll-sse/diff"
	"github.com/pollsse/caddy-poll-sse/diff/difftest"
)

// FuzzDiff streams two bodies. Bodies that are JSON never make Update fail or panic,
// and the change's patch, and its merge patch when there is one, take the first
// version to the second; bodies that are not JSON are errors wrapping ErrNotJSON that
// keep the current version.
func FuzzDiff(f *testing.F) {
	for _, p := range difftest.SuitePairs() {
		f.Add(p.A, p.B)
	}
	for _, p := range difftest.RandomPairs(1, 20) {
		f.Add(p.A, p.B)
	}
	f.Add([]byte(`{"a":1}`), []byte(`{"a":1} x`))
	f.Add([]byte(`<html>`), []byte(`{"a":[1,{"b":null}]}`))
	f.Add([]byte(`{"a":"\xff"}`), []byte(`{"a":"\ufffd"}`))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		var tr diff.Tracker
		first, changed, err := tr.Update(a)
		if taken(t, &tr, a, nil, err) {
			if err := checkFirst(first, changed); err != nil {
				t.Fatal(err)
			}
		}
		prev := tr.Current()
		ch, changed, err := tr.Update(b)
		switch {
		case !taken(t, &tr, b, prev, err):
		case prev == nil:
			if err := checkFirst(ch, changed); err != nil {
				t.Fatal(err)
			}
		default:
			if err := checkStep(prev, tr.Current(), b, ch, changed); err != nil {
				t.Fatalf("from %q to %q: %v", a, b, err)
			}
		}
	})
}

// taken checks the error of an update with body: none for JSON, one wrapping
// ErrNotJSON that keeps the current version prev for anything else. JSON with invalid
// UTF-8 in a string may go either way: RFC 8259 requires UTF-8, and encoding/json
// replaces bad bytes. It reports whether the body was taken.
func taken(t *testing.T, tr *diff.Tracker, body []byte, prev *diff.Version, err error) bool {
	t.Helper()
	valid := json.Valid(body)
	switch {
	case err == nil && valid:
		return true
	case err == nil:
		t.Fatalf("Update(%q) took a body that is not JSON", body)
	case !errors.Is(err, diff.ErrNotJSON):
		t.Fatalf("Update(%q): %v, want an error wrapping ErrNotJSON", body, err)
	case valid && utf8.Valid(body):
		t.Fatalf("Update(%q): %v, but the body is JSON", body, err)
	case tr.Current() != prev:
		t.Fatalf("Update(%q) failed but moved the current version", body)
	}
	return false
}
