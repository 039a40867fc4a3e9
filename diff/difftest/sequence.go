package difftest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
)

// A sequence is what one upstream serves poll after poll: mostly a document changed by
// a few mutations each time, sometimes the same document in other bytes, a body served
// before, a body that is not JSON (broken part way through, so that a parser fails
// after it has begun to reuse the last document), or a new document altogether.

// maxSites bounds how many values a document of a sequence grows to before a new one
// replaces it, so that long sequences stay cheap.
const maxSites = 40

// Sequence is a run of bodies, each served after the one before it.
type Sequence struct {
	// Name is "sequence/<seed>/<index>"; the sequence is made again from it alone.
	Name string
	// Bodies are the bodies in order; Steps says how each was made from the one before.
	Bodies [][]byte
	Steps  []string
}

// RandomSequences returns count sequences of n bodies each, the same for the same seed.
// The documents are those of RandomPairs, often holding an "items" array keyed by "id"
// and "a" and "b" members, for options that select, ignore and key them.
func RandomSequences(seed int64, count, n int) []Sequence {
	out := make([]Sequence, count)
	for i := range out {
		out[i] = RandomSequence(seed, i, n)
	}
	return out
}

// RandomSequence returns sequence i of seed, of n bodies.
func RandomSequence(seed int64, i, n int) Sequence {
	s := newSeq(newGen(seed, uint64(i)|1<<61), nil)
	out := Sequence{Name: fmt.Sprintf("sequence/%d/%d", seed, i)}
	for range n {
		body, what := s.next()
		out.Bodies, out.Steps = append(out.Bodies, body), append(out.Steps, what)
	}
	return out
}

// seq makes the bodies of one sequence.
type seq struct {
	g       *gen
	doc     *value
	history [][]byte
}

func newSeq(g *gen, doc *value) *seq {
	if doc == nil {
		doc = g.seqDocument()
	}
	return &seq{g: g, doc: doc}
}

// seqDocument returns a new document: mostly an object with an "items" array keyed by
// "id" and other members, otherwise any document.
func (g *gen) seqDocument() *value {
	if g.chance(0.2) {
		return g.document()
	}
	v := &value{kind: kindObject, members: []member{{key: "items", val: g.keyedArray(1)}}}
	for _, k := range []string{"a", "b", "id"} {
		if g.chance(0.6) {
			v.members = append(v.members, member{key: k, val: g.value(1)})
		}
	}
	g.rng.Shuffle(len(v.members), func(i, j int) { v.members[i], v.members[j] = v.members[j], v.members[i] })
	return v
}

// next returns the next body and how it was made.
func (s *seq) next() ([]byte, string) {
	g := s.g
	var body []byte
	var what string
	switch r := g.intn(40); {
	case r < 32 || len(s.history) == 0:
		var ws []string
		for range g.mutationCount() {
			ws = append(ws, g.mutateWith(s.doc, sequenceMutations))
		}
		body, what = s.doc.encode(g.chance(0.1)), strings.Join(ws, "; ")
	case r < 34:
		body, what = s.doc.encode(g.chance(0.5)), "same document"
	case r < 36:
		j := g.intn(len(s.history))
		body, what = s.history[j], fmt.Sprintf("body %d again", j)
	case r < 38:
		body, what = s.broken()
	default:
		s.doc = g.seqDocument()
		body, what = s.doc.encode(g.chance(0.1)), "new document"
	}
	if size(s.doc) > maxSites || !s.doc.has("items") && g.chance(0.2) {
		s.doc = g.seqDocument() // keep documents small, and mostly of the shape options name
	}
	s.history = append(s.history, body)
	return body, what
}

// broken returns the document with something that is not JSON in it: cut short, with
// bytes after it, or with a value inside it that no parser accepts, such as arrays
// nested deeper than a parser allows.
func (s *seq) broken() ([]byte, string) {
	g := s.g
	doc := s.doc.encode(false)
	switch g.intn(4) {
	case 0:
		return doc[:g.intn(len(doc))], "cut short"
	case 1:
		return append(doc, " x"...), "bytes after the document"
	}
	c := s.doc.clone()
	all := sites(c)
	i := g.intn(len(all))
	at := all[i]
	bad := pick(g, []string{"tru", `"open`, "[1,]", "{]", "01", "+1", "NaN"})
	if g.chance(0.01) { // a parser takes long over these: keep them few
		bad = strings.Repeat("[", 1001) + strings.Repeat("]", 1001)
	}
	at.v.lit = bad
	return c.encode(false), fmt.Sprintf("not JSON at %q", path(all, i))
}

// Script makes a sequence whose every choice is read from bytes, one byte a choice, so
// that a fuzzer mutating the bytes mutates the documents by their structure. It ends
// when the bytes are used up.
type Script struct {
	s   *seq
	src *byteSource
}

// NewScript returns a script that starts from the document start, or from one its
// choices make when start is not JSON.
func NewScript(start, choices []byte) *Script {
	src := &byteSource{b: choices}
	g := &gen{rng: rand.New(src)}
	doc, err := decodeValue(start)
	if err != nil {
		doc = nil
	}
	return &Script{s: newSeq(g, doc), src: src}
}

// Next returns the next body and how it was made, or false when the choices are used
// up.
func (sc *Script) Next() ([]byte, string, bool) {
	if sc.src.done() {
		return nil, "", false
	}
	body, what := sc.s.next()
	return body, what, true
}

// byteSource is a rand.Source that reads one byte a draw, spread over the 64 bits so
// that IntN and Float64 map the byte evenly onto their range. Once the bytes are used
// up it goes on with a seeded generator: IntN may draw again and again until a draw
// suits it, so a source must not repeat one value forever.
type byteSource struct {
	b    []byte
	i    int
	rest *rand.PCG
}

func (s *byteSource) Uint64() uint64 {
	if s.i >= len(s.b) {
		if s.rest == nil {
			s.rest = rand.NewPCG(uint64(len(s.b)), 0)
		}
		s.i++
		return s.rest.Uint64()
	}
	v := uint64(s.b[s.i]) * 0x0101010101010101
	s.i++
	return v
}

func (s *byteSource) done() bool { return s.i >= len(s.b) }

// decodeValue decodes a JSON document into a value that keeps its members in order,
// repeated ones too, and its numbers as spelt.
func decodeValue(doc []byte) (*value, error) {
	d := json.NewDecoder(bytes.NewReader(doc))
	d.UseNumber()
	v, err := decodeNext(d, 0)
	if err != nil {
		return nil, err
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, errors.New("data after the document")
	}
	return v, nil
}

func decodeNext(d *json.Decoder, depth int) (*value, error) {
	if depth > 100 {
		return nil, errors.New("too deep")
	}
	tok, err := d.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case nil:
		return &value{kind: kindNull}, nil
	case bool:
		return &value{kind: kindBool, b: t}, nil
	case json.Number:
		return &value{kind: kindNumber, text: string(t)}, nil
	case string:
		return &value{kind: kindString, text: t}, nil
	case json.Delim:
		if t == '[' {
			return decodeArray(d, depth)
		}
		return decodeObject(d, depth)
	}
	return nil, fmt.Errorf("unexpected token %v", tok)
}

func decodeArray(d *json.Decoder, depth int) (*value, error) {
	v := &value{kind: kindArray, elems: []*value{}}
	for d.More() {
		e, err := decodeNext(d, depth+1)
		if err != nil {
			return nil, err
		}
		v.elems = append(v.elems, e)
	}
	_, err := d.Token()
	return v, err
}

func decodeObject(d *json.Decoder, depth int) (*value, error) {
	v := &value{kind: kindObject, members: []member{}}
	for d.More() {
		k, err := d.Token()
		if err != nil {
			return nil, err
		}
		e, err := decodeNext(d, depth+1)
		if err != nil {
			return nil, err
		}
		v.members = append(v.members, member{key: k.(string), val: e})
	}
	_, err := d.Token()
	return v, err
}
