package diff

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// BenchmarkCatchUpMerge builds the merge patch of a catch-up over 300 versions of a
// 128 KB object of 1,000 members, five of which change in each version: from the
// changes' Touches, into a new buffer and into one reused as catch-ups reuse theirs;
// from a TouchSet built over the 300 changes, and from one kept over the first 299, as
// a catch-up kept from the last version is, which takes the last change; and, for
// comparison, from their joined JSON Patch.
func BenchmarkCatchUpMerge(b *testing.B) {
	var tr Tracker
	rng := rand.New(rand.NewPCG(1, 2))
	vals := make([]int, 1000)
	var changes []Change
	for i := range 301 {
		for range 5 {
			vals[rng.IntN(len(vals))]++
		}
		ch, _, err := tr.Update(memberDoc(vals))
		if err != nil {
			b.Fatal(err)
		}
		if i > 0 {
			changes = append(changes, ch)
		}
	}
	to := tr.Current()
	touches := make([]Touches, len(changes))
	patches := make([][]byte, len(changes))
	for i, ch := range changes {
		touches[i], _ = ch.Touches()
		patches[i] = ch.Patch
	}
	b.Run("touches", func(b *testing.B) {
		for b.Loop() {
			if _, ok := MergeFromTouches(touches, to); !ok {
				b.Fatal("refused")
			}
		}
	})
	b.Run("touches-reused-buffer", func(b *testing.B) {
		var buf []byte
		for b.Loop() {
			var ok bool
			if buf, ok = AppendMergeFromTouches(buf[:0], touches, to); !ok {
				b.Fatal("refused")
			}
		}
	})
	b.Run("touchset-built", func(b *testing.B) {
		var buf []byte
		for b.Loop() {
			var set TouchSet
			for _, t := range touches {
				set.Add(t)
			}
			var ok bool
			if buf, ok = set.AppendMerge(buf[:0], to); !ok {
				b.Fatal("refused")
			}
		}
	})
	b.Run("touchset-kept", func(b *testing.B) {
		// The set is built to the version before the last, and its merge patch with it;
		// each round then takes the last change, which touches the same paths each time
		// (and leaves the set as it was), and builds the merge patch.
		var set TouchSet
		last := touches[len(touches)-1]
		for _, t := range touches[:len(touches)-1] {
			set.Add(t)
		}
		buf, ok := set.AppendMerge(nil, to)
		if !ok {
			b.Fatal("refused")
		}
		for b.Loop() {
			set.Add(last)
			if buf, ok = set.AppendMerge(buf[:0], to); !ok {
				b.Fatal("refused")
			}
		}
	})
	b.Run("patch", func(b *testing.B) {
		joined := JoinPatches(patches)
		for b.Loop() {
			if _, ok, err := MergeFromPatch(joined, to); !ok || err != nil {
				b.Fatal("refused", err)
			}
		}
	})
}

// memberDoc returns an object of a member of about 130 bytes for each of vals.
func memberDoc(vals []int) []byte {
	var buf bytes.Buffer
	buf.WriteByte('{')
	pad := strings.Repeat("p", 100)
	for i, v := range vals {
		if i > 0 {
			buf.WriteByte(',')
		}
		fmt.Fprintf(&buf, `"m%04d":{"v":%d,"s":"%s"}`, i, v, pad)
	}
	buf.WriteByte('}')
	return buf.Bytes()
}
