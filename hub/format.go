package hub

import (
	"fmt"

	"github.com/pollsse/caddy-poll-sse/diff"
)

// Format is how a subscriber receives changes.
type Format int8

// The change formats. The zero Format is JSONPatch.
const (
	// JSONPatch sends each change as a `patch` event holding an RFC 6902 JSON Patch.
	JSONPatch Format = iota
	// MergePatch sends each change as a `patch` event holding an RFC 7386 JSON Merge
	// Patch, always an object, or as a `snapshot` when a merge patch cannot express it:
	// the root is or becomes an array or a scalar, or a member becomes null.
	MergePatch
	// Snapshot sends the whole document as a `snapshot` event on each change.
	Snapshot

	numFormats = iota
)

var formatNames = [numFormats]string{"json_patch", "merge_patch", "snapshot"}

// String returns the format's wire name.
func (f Format) String() string {
	if f < 0 || f >= numFormats {
		return fmt.Sprintf("Format(%d)", int(f))
	}
	return formatNames[f]
}

// ParseFormat returns the format with wire name s: json_patch, merge_patch or snapshot.
func ParseFormat(s string) (Format, error) {
	for f, name := range formatNames {
		if s == name {
			return Format(f), nil
		}
	}
	return 0, fmt.Errorf("unknown format %q: want json_patch, merge_patch or snapshot", s)
}

// encodings builds the frames of one change, each at most once, so that every subscriber
// of a format gets the same bytes. Formats that send a snapshot share one frame. The
// merge patch itself is computed only when merge_patch has subscribers.
type encodings struct {
	ch      diff.Change
	touches diff.Touches // where ch touched the document
	noMerge bool         // unknown touches: no catch-up merge patch spans ch
	first   bool         // the topic's first version: a snapshot in every format
	snap    []byte
	patch   []byte
	merge   []byte
}

// isSnapshot reports whether the change reaches subscribers of format f as a snapshot.
func (e *encodings) isSnapshot(f Format) bool {
	return e.first || f == Snapshot || f == MergePatch && e.ch.MergePatch() == nil
}

// frame returns the change's frame in format f, encoding it on first use.
func (e *encodings) frame(f Format) []byte {
	v := e.ch.Version
	switch {
	case e.isSnapshot(f):
		if e.snap == nil {
			e.snap = snapshotFrame(v)
		}
		return e.snap
	case f == JSONPatch:
		if e.patch == nil {
			e.patch = patchFrame(v.ID, e.ch.Patch)
		}
		return e.patch
	default:
		if e.merge == nil {
			e.merge = patchFrame(v.ID, e.ch.MergePatch())
		}
		return e.merge
	}
}
