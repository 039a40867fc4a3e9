// Package diff turns successive upstream bodies into versions and changes: it detects an
// unchanged body without parsing it, parses a changed one once while keeping every
// unchanged subtree of the previous parse, derives a content-based version id, and
// computes the change as an RFC 6902 JSON Patch and an RFC 7386 JSON Merge Patch. Options
// select part of the document, leave members out, and match array elements by key.
package diff

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
)

// ErrNotJSON reports an upstream body that is not exactly one JSON value.
var ErrNotJSON = errors.New("body is not JSON")

// idBytes is how many bytes of the SHA-256 digest make a version id: 128 bits keep
// collisions out of reach for any history, and encode to 22 characters.
const idBytes = 16

// Version is one document as streamed. It is immutable once made.
type Version struct {
	// ID is derived from the document's content only: the same document gives the same id
	// on every node and after every restart. It is 22 characters of [A-Za-z0-9_-].
	ID string
	// JSON is the canonical compact encoding (object members sorted, no HTML escaping,
	// numbers as received).
	JSON []byte
	// doc is the parsed document.
	doc *node
}

// Parse decodes one JSON document and returns its Version.
func Parse(body []byte) (*Version, error) {
	var p parser
	doc, err := p.parse(body, nil, prior{})
	if err != nil {
		return nil, err
	}
	return newVersion(doc, 0), nil
}

// newVersion encodes doc, whose unchanged parts may be copied from the last version.
func newVersion(doc *node, size int) *Version {
	js := encodeDoc(make([]byte, 0, size), doc)
	doc.coff, doc.cn = 0, len(js)
	sum := sha256.Sum256(js)
	return &Version{ID: base64.RawURLEncoding.EncodeToString(sum[:idBytes]), JSON: js, doc: doc}
}
