//go:build ignore

// gensuite writes testdata/suite_pairs.json from the json-patch-tests suite files
// testdata/tests.json and testdata/spec_tests.json: every test with an expected
// document, no error and not disabled, as {name, a: doc, b: expected}. Run it with
// go generate; testdata/SOURCE.md says where the suite files come from.
package main

import (
	"encoding/json"
	"fmt"
	"log"
	"os"
	"path/filepath"
)

type test struct {
	Comment  string          `json:"comment"`
	Doc      json.RawMessage `json:"doc"`
	Expected json.RawMessage `json:"expected"`
	Error    *string         `json:"error"`
	Disabled bool            `json:"disabled"`
}

type pair struct {
	Name string          `json:"name"`
	A    json.RawMessage `json:"a"`
	B    json.RawMessage `json:"b"`
}

func main() {
	var pairs []pair
	for _, file := range []string{"tests.json", "spec_tests.json"} {
		ps, err := readPairs(filepath.Join("testdata", file), file)
		if err != nil {
			log.Fatal(err)
		}
		pairs = append(pairs, ps...)
	}
	out, err := json.MarshalIndent(pairs, "", "\t")
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile("testdata/suite_pairs.json", append(out, '\n'), 0o644); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("wrote %d pairs\n", len(pairs))
}

func readPairs(path, file string) ([]pair, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var tests []test
	if err := json.Unmarshal(data, &tests); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var pairs []pair
	for i, tc := range tests {
		if tc.Expected == nil || tc.Doc == nil || tc.Error != nil || tc.Disabled {
			continue
		}
		name := fmt.Sprintf("%s#%d", file, i)
		if tc.Comment != "" {
			name += ": " + tc.Comment
		}
		pairs = append(pairs, pair{Name: name, A: tc.Doc, B: tc.Expected})
	}
	return pairs, nil
}
