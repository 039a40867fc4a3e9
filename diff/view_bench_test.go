package diff

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// pricesBody returns a document of about 128 KB: 100 instruments of about 1.3 KB each;
// instrument 42's price is v.
func pricesBody(v int) []byte {
	var b strings.Builder
	b.WriteString(`{"prices":{`)
	for i := range 100 {
		if i > 0 {
			b.WriteByte(',')
		}
		p := i
		if i == 42 {
			p = v
		}
		fmt.Fprintf(&b, `"S%d":{"v":%d,"hist":[`, i, p)
		for j := range 100 {
			if j > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `%d.%02d`, 1000+j, i)
		}
		b.WriteString(`],"name":"instrument number `)
		fmt.Fprint(&b, i)
		b.WriteString(`"}`)
	}
	b.WriteString(`}}`)
	return []byte(b.String())
}

// BenchmarkViewsPlainDecode is the reference: one plain decode of the 128 KB document.
func BenchmarkViewsPlainDecode(b *testing.B) {
	body := pricesBody(0)
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		var v any
		if err := json.Unmarshal(body, &v); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkViewsParse is a from-scratch parse of the 128 KB document by this package.
func BenchmarkViewsParse(b *testing.B) {
	body := pricesBody(0)
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := Parse(body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkViews100 is all the work of one change to one member of the 128 KB document
// served as 100 views: the tracker's update, and every view's.
func BenchmarkViews100(b *testing.B) {
	tr, _ := NewTracker(Options{})
	views := make([]*View, 100)
	for i := range views {
		var err error
		if views[i], err = NewView(Options{}, fmt.Sprintf("/prices/S%d", i), nil); err != nil {
			b.Fatal(err)
		}
	}
	bodies := [][]byte{pricesBody(1), pricesBody(2)}
	b.SetBytes(int64(len(bodies[0])))
	benchViewUpdates(b, tr, views, bodies)
}

// benchViewUpdates times, for each iteration, the tracker's update to the next of bodies
// (in turn) and every view's, after one untimed first step, and reports how many views
// changed per step.
func benchViewUpdates(b *testing.B, tr *Tracker, views []*View, bodies [][]byte) {
	var rows RowIndex
	published := 0
	step := func(i int) {
		if _, _, err := tr.Update(bodies[i%2]); err != nil {
			b.Fatal(err)
		}
		for _, v := range views {
			if _, changed, err := v.Update(tr.Current(), &rows); err != nil {
				b.Fatal(err)
			} else if changed {
				published++
			}
		}
	}
	step(0)
	b.ResetTimer()
	published = 0
	i := 1
	for b.Loop() {
		step(i)
		i++
	}
	b.ReportMetric(float64(published)/float64(i-1), "views-changed/op")
}

// ordersBody returns 10,000 rows owned by users users; row 77's quantity is q.
func ordersBody(users, q int) []byte {
	var b strings.Builder
	b.WriteString(`{"total":10000,"orders":[`)
	for i := range 10000 {
		if i > 0 {
			b.WriteByte(',')
		}
		qty := i % 7
		if i == 77 {
			qty = q
		}
		fmt.Fprintf(&b, `{"id":%d,"owner":"u%d","qty":%d,"item":"article %d"}`, i, i%users, qty, i)
	}
	b.WriteString(`]}`)
	return []byte(b.String())
}

// BenchmarkFilterRows is all the work of one change to one row of 10,000, filtered for
// 10, 100 and 1,000 users: the tracker's update and every user's view's. Only the view of
// the row's owner changes.
func BenchmarkFilterRows(b *testing.B) {
	for _, users := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("users=%d", users), func(b *testing.B) {
			route := Options{ArrayKeys: []ArrayKey{{Pointer: "/orders", Member: "id"}}}
			tr, _ := NewTracker(route)
			views := make([]*View, users)
			for u := range views {
				var err error
				f := &RowFilter{Array: "/orders", Member: "owner", Value: fmt.Sprintf("u%d", u)}
				if views[u], err = NewView(route, "", f); err != nil {
					b.Fatal(err)
				}
			}
			benchViewUpdates(b, tr, views, [][]byte{ordersBody(users, 100), ordersBody(users, 200)})
		})
	}
}

// BenchmarkFilterRowsViewsOnly is the views' share of BenchmarkFilterRows: the tracker's
// update is done outside the timer.
func BenchmarkFilterRowsViewsOnly(b *testing.B) {
	for _, users := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("users=%d", users), func(b *testing.B) {
			tr, _ := NewTracker(Options{})
			views := make([]*View, users)
			for u := range views {
				f := &RowFilter{Array: "/orders", Member: "owner", Value: fmt.Sprintf("u%d", u)}
				views[u], _ = NewView(Options{}, "", f)
			}
			bodies := [][]byte{ordersBody(users, 100), ordersBody(users, 200)}
			var rows RowIndex
			i := 0
			for b.Loop() {
				b.StopTimer()
				if _, _, err := tr.Update(bodies[i%2]); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				for _, v := range views {
					if _, _, err := v.Update(tr.Current(), &rows); err != nil {
						b.Fatal(err)
					}
				}
				i++
			}
		})
	}
}
