// Package difftest provides JSON documents for testing code that diffs them, as
// net/http/httptest provides servers: the document pairs of the json-patch-tests suite,
// seeded random documents with mutated copies, keyed arrays with keyed mutations, a
// reference RFC 7386 merge-patch applier and comparisons of JSON values.
//
// Everything it generates is deterministic for a seed, so a failing pair is found
// again by its name.
package difftest

// Pair is a document A and the document B that follows it, both JSON text.
type Pair struct {
	// Name says where the pair comes from: a suite test, or a seed, an index and the
	// mutations that made B from A.
	Name string
	A, B []byte
}
