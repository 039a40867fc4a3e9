package diff

import (
	"encoding/json"
	"fmt"
	"testing"
)

// document returns a JSON object of about size bytes: an array of records, like a legacy
// list endpoint, with rev as the value of one member of the middle record.
func document(size, rev int) []byte {
	const perItem = 100
	n := size / perItem
	items := make([]map[string]any, n)
	for i := range items {
		items[i] = map[string]any{"id": i, "name": fmt.Sprintf("item-%06d", i), "price": i * 3, "tags": []string{"a", "b"}, "ok": i%2 == 0}
	}
	items[n/2]["price"] = rev
	b, _ := json.Marshal(map[string]any{"items": items, "total": n})
	return b
}

func benchmarkChanged(b *testing.B, size int) {
	docs := [2][]byte{document(size, -1), document(size, -2)}
	var tr Tracker
	if _, _, err := tr.Update(docs[0]); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(docs[0])))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, changed, err := tr.Update(docs[(i+1)%2]); !changed || err != nil {
			b.Fatal("no change")
		}
	}
}

func benchmarkUnchanged(b *testing.B, size int) {
	doc := document(size, -1)
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
}

func benchmarkDecode(b *testing.B, size int) {
	doc := document(size, -1)
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	for b.Loop() {
		var v any
		if err := json.Unmarshal(doc, &v); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUpdateChanged128KB(b *testing.B)   { benchmarkChanged(b, 128<<10) }
func BenchmarkUpdateUnchanged128KB(b *testing.B) { benchmarkUnchanged(b, 128<<10) }
func BenchmarkDecode128KB(b *testing.B)          { benchmarkDecode(b, 128<<10) }
