// Package diff turns successive upstream bodies into versions and changes: it detects an
// unchanged body without parsing it, parses a changed one once, derives a content-based
// version id, and computes an RFC 6902 JSON Patch against the kept parsed previous document.
package diff

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// ErrNotJSON reports an upstream body that is not exactly one JSON value.
var ErrNotJSON = errors.New("body is not JSON")

// idBytes is how many bytes of the SHA-256 digest make a version id: 128 bits keep
// collisions out of reach for any history, and encode to 22 characters.
const idBytes = 16

// Version is one document as streamed.
type Version struct {
	// ID is derived from the document's content only: the same document gives the same id
	// on every node and after every restart. It is 22 characters of [A-Za-z0-9_-].
	ID string
	// JSON is the canonical compact encoding (object members sorted, no HTML escaping).
	JSON []byte
	// doc is the parsed document, kept for the next diff.
	doc any
}

// Parse decodes one JSON document and returns its Version. Numbers keep their exact text.
func Parse(body []byte) (*Version, error) {
	doc, err := decode(body)
	if err != nil {
		return nil, err
	}
	return newVersion(doc)
}

func decode(body []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotJSON, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: data after the document", ErrNotJSON)
	}
	return doc, nil
}

func newVersion(doc any) (*Version, error) {
	canon, err := marshal(doc)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(canon)
	return &Version{
		ID:   base64.RawURLEncoding.EncodeToString(sum[:idBytes]),
		JSON: canon,
		doc:  doc,
	}, nil
}

// marshal encodes v compactly with sorted object members and without HTML escaping.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encoding document: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
