package diff_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
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

// Bounds on one input of FuzzSequence, so that each stays quick.
const (
	maxFuzzBodies  = 16
	maxScriptSteps = 24
)

// bodySeparator separates the bodies of FuzzSequence's input: RFC 7464's record
// separator, which no JSON text holds unescaped.
const bodySeparator = 0x1e

// FuzzSequence streams a run of bodies under one of sequenceOptions (chosen by opt) and
// checks every step as the sequence oracle does, with both appliers for each patch. The
// run is the bodies in bodies, separated by 0x1E, then those that a difftest.Script
// makes from the last of them with choices: structure-aware mutations such as inserts,
// removals and moves in arrays, elements and members repeated, numbers and strings
// spelt otherwise, keyed arrays, and bodies that are not JSON part way through.
func FuzzSequence(f *testing.F) {
	for _, in := range sequenceSeeds() {
		f.Add(in.opt, in.bodies, in.choices)
	}
	f.Fuzz(func(t *testing.T, opt uint8, bodies, choices []byte) {
		o := sequenceOptions[int(opt)%len(sequenceOptions)]
		s, err := newStream(o.opts)
		if err != nil {
			t.Fatal(err)
		}
		s.thorough = true
		var seen [][]byte
		step := func(body []byte, what string) {
			seen = append(seen, body)
			if _, err := s.step(body); err != nil {
				t.Fatalf("options %q, step %d (%s): %v\nbodies:\n%s", o.name, len(seen)-1, what, err, quoteAll(seen))
			}
		}
		given := bytes.Split(bodies, []byte{bodySeparator})
		for _, body := range given[:min(len(given), maxFuzzBodies)] {
			step(body, "given")
		}
		sc := difftest.NewScript(given[len(given)-1], choices)
		for range maxScriptSteps {
			body, what, ok := sc.Next()
			if !ok {
				break
			}
			step(body, what)
		}
	})
}

func quoteAll(bodies [][]byte) string {
	var b strings.Builder
	for i, body := range bodies {
		fmt.Fprintf(&b, "  %d: %q\n", i, body)
	}
	return b.String()
}

type sequenceSeed struct {
	opt             uint8
	bodies, choices []byte
}

// sequenceSeeds are FuzzSequence's seeds besides testdata/fuzz: seeded random
// sequences under every option set, with choices for the script to go on with.
func sequenceSeeds() []sequenceSeed {
	var out []sequenceSeed
	for i := range sequenceOptions {
		sq := difftest.RandomSequence(99, i, 6)
		choices := make([]byte, 64)
		for j := range choices {
			choices[j] = byte(j*37 + i*11)
		}
		out = append(out, sequenceSeed{uint8(i), bytes.Join(sq.Bodies, []byte{bodySeparator}), choices})
	}
	return out
}
