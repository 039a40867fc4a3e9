package difftest

import (
	"bytes"
	_ "embed"
	"encoding/json"
)

//go:generate go run gensuite.go

// suiteJSON holds the document pairs of the json-patch-tests suite; see
// testdata/SOURCE.md for where they come from and testdata/json-patch-tests.LICENSE for
// their licence.
//
//go:embed testdata/suite_pairs.json
var suiteJSON []byte

// SuitePairs returns the document pairs of the json-patch-tests suite: for each test of
// tests.json and spec_tests.json with an expected result, no error and not disabled,
// its doc as A and its expected document as B, compact. The suite's own patches are
// left out: a differ computes its own. Pairs are named "<file>#<index>: <comment>".
func SuitePairs() []Pair {
	var raw []struct {
		Name string
		A, B json.RawMessage
	}
	if err := json.Unmarshal(suiteJSON, &raw); err != nil {
		panic("difftest: decoding the embedded suite: " + err.Error())
	}
	pairs := make([]Pair, len(raw))
	for i, r := range raw {
		pairs[i] = Pair{Name: r.Name, A: compact(r.A), B: compact(r.B)}
	}
	return pairs
}

func compact(b []byte) []byte {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		panic("difftest: compacting the embedded suite: " + err.Error())
	}
	return buf.Bytes()
}
