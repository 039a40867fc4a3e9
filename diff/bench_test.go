package diff

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

// document returns a JSON object of about size bytes: an array of records, like a legacy
// list endpoint, with rev as the value of one member of the middle record.
func document(size, rev int) []byte {
	const perItem = 100
	n := max(size/perItem, 1)
	items := make([]map[string]any, n)
	for i := range items {
		items[i] = map[string]any{"id": i, "name": fmt.Sprintf("item-%06d", i), "price": i * 3, "tags": []string{"a", "b"}, "ok": i%2 == 0}
	}
	items[n/2]["price"] = rev
	b, _ := json.Marshal(map[string]any{"items": items, "total": n})
	return b
}

var benchSizes = []struct {
	name string
	size int
}{{"1KB", 1 << 10}, {"128KB", 128 << 10}, {"1MB", 1 << 20}}

// formatWork is what producing one change's event costs beyond Update in each format.
var formatWork = []struct {
	name string
	work func(Change)
}{
	{"json_patch", func(Change) {}}, // Update builds the JSON Patch
	{"merge_patch", func(c Change) { c.MergePatch() }},
	{"snapshot", func(Change) {}}, // the snapshot is Version.JSON
}

// decodeTime is how long one plain encoding/json decode of doc into an any takes: the
// yardstick the diff is measured against.
func decodeTime(doc []byte) time.Duration {
	n, start := 0, time.Now()
	for time.Since(start) < 300*time.Millisecond {
		var v any
		if err := json.Unmarshal(doc, &v); err != nil {
			panic(err)
		}
		n++
	}
	return time.Since(start) / time.Duration(n)
}

// BenchmarkChange measures Update and each format's event for a document with one member
// changed on every poll and for one unchanged, and reports the time as a multiple of one
// plain decode (x-decode).
func BenchmarkChange(b *testing.B) {
	for _, s := range benchSizes {
		docs := [2][]byte{document(s.size, -1), document(s.size, -2)}
		dec := decodeTime(docs[0])
		for _, f := range formatWork {
			b.Run(s.name+"/"+f.name+"/changed", func(b *testing.B) { benchChanged(b, docs, f.work, dec) })
			b.Run(s.name+"/"+f.name+"/unchanged", func(b *testing.B) { benchUnchanged(b, docs[0], dec) })
		}
	}
}

func benchChanged(b *testing.B, docs [2][]byte, work func(Change), dec time.Duration) {
	var tr Tracker
	if _, _, err := tr.Update(docs[0]); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(docs[0])))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		ch, changed, err := tr.Update(docs[(i+1)%2])
		if !changed || err != nil {
			b.Fatal("no change")
		}
		work(ch)
	}
	b.ReportMetric(float64(b.Elapsed())/float64(b.N)/float64(dec), "x-decode")
}

func benchUnchanged(b *testing.B, doc []byte, dec time.Duration) {
	same := append([]byte(nil), doc...)
	var tr Tracker
	if _, _, err := tr.Update(doc); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, changed, _ := tr.Update(same); changed {
			b.Fatal("change")
		}
	}
	b.ReportMetric(float64(b.Elapsed())/float64(b.N)/float64(dec), "x-decode")
}

// BenchmarkDecode is the yardstick: one plain encoding/json decode into an any.
func BenchmarkDecode(b *testing.B) {
	for _, s := range benchSizes {
		doc := document(s.size, -1)
		b.Run(s.name, func(b *testing.B) {
			b.SetBytes(int64(len(doc)))
			b.ReportAllocs()
			for b.Loop() {
				var v any
				if err := json.Unmarshal(doc, &v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkKeyedInsert measures a front insert into a 1,000-element array matched by id.
func BenchmarkKeyedInsert(b *testing.B) {
	base := document(100_000, -1)
	var m map[string]any
	if err := json.Unmarshal(base, &m); err != nil {
		b.Fatal(err)
	}
	items := m["items"].([]any)
	m["items"] = append([]any{map[string]any{"id": -1, "name": "new"}}, items...)
	inserted, _ := json.Marshal(m)
	docs := [2][]byte{base, inserted}
	tr, err := NewTracker(Options{ArrayKeys: []ArrayKey{{Pointer: "/items", Member: "id"}}})
	if err != nil {
		b.Fatal(err)
	}
	if _, _, err := tr.Update(docs[0]); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, changed, err := tr.Update(docs[(i+1)%2]); !changed || err != nil {
			b.Fatal("no change")
		}
	}
}
