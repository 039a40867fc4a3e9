package diff

import (
	"errors"
	"fmt"
)

// ErrSelect reports a document in which the select pointer does not resolve.
var ErrSelect = errors.New("select does not resolve")

// Options shape the document a Tracker streams. Every pointer addresses the upstream
// document as received.
type Options struct {
	// Select is an RFC 6901 pointer to the part of the document to stream; "" streams
	// all of it.
	Select string
	// Ignore lists pointers to members left out of the document before it is versioned
	// and compared. A "*" token matches every element of an array and every member of
	// an object.
	Ignore []string
	// ArrayKeys name arrays whose elements are matched by a member rather than by
	// position.
	ArrayKeys []ArrayKey
}

// ArrayKey matches the elements of the arrays at Pointer (which may hold "*" tokens) by
// their member Member, so that inserts, removals and moves make one operation each.
type ArrayKey struct {
	Pointer string
	Member  string
}

// rules are Options compiled; their pointers are relative to the selected part.
type rules struct {
	sel    pointer
	ignore ruleSet
	keys   ruleSet
}

func (o Options) compile() (rules, error) {
	var r rules
	var err error
	if r.sel, err = parsePointer(o.Select); err != nil {
		return rules{}, fmt.Errorf("select: %w", err)
	}
	for _, s := range o.Ignore {
		p, err := r.under(s, "ignore")
		if err != nil {
			return rules{}, err
		}
		if len(p) == 0 {
			return rules{}, fmt.Errorf("ignore %q: would leave out the whole document", s)
		}
		r.ignore = append(r.ignore, rule{at: p})
	}
	for _, k := range o.ArrayKeys {
		p, err := r.under(k.Pointer, "array_key")
		if err != nil {
			return rules{}, err
		}
		if k.Member == "" {
			return rules{}, fmt.Errorf("array_key %q: the key member must not be empty", k.Pointer)
		}
		r.keys = append(r.keys, rule{at: p, member: k.Member})
	}
	return r, nil
}

// under parses s and returns it relative to the selected part.
func (r rules) under(s, what string) (pointer, error) {
	p, err := parsePointer(s)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if !p.hasPrefix(r.sel) {
		return nil, fmt.Errorf("%s %q lies outside select %q", what, s, r.sel.String())
	}
	return p[len(r.sel):], nil
}
