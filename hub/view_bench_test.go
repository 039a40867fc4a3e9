package hub

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pollsse/caddy-poll-sse/diff"
)

// rowsBody returns 10,000 rows owned by users users; row 77's quantity is q.
func rowsBody(users, q int) []byte {
	var b strings.Builder
	b.WriteString(`{"orders":[`)
	for i := range 10000 {
		if i > 0 {
			b.WriteByte(',')
		}
		qty := i % 7
		if i == 77 {
			qty = q
		}
		fmt.Fprintf(&b, `{"id":%d,"owner":"u%d","qty":%d}`, i, i%users, qty)
	}
	b.WriteString(`]}`)
	return []byte(b.String())
}

// BenchmarkViewsPublishFilter is one change to one row of 10,000 published by a loop
// whose document is filtered for 10, 100 and 1,000 users, each with a stream: the loop's
// tracker update and publish, every view's update, and the publish of the one view that
// changed.
func BenchmarkViewsPublishFilter(b *testing.B) {
	for _, users := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("users=%d", users), func(b *testing.B) {
			loops := New(Config{})
			views := New(Config{Linger: time.Nanosecond})
			b.Cleanup(func() { views.Close(); loops.Close() })
			src := newDocSource()
			for u := range users {
				v, err := diff.NewView(diff.Options{}, "", &diff.RowFilter{Array: "/orders", Member: "owner", Value: fmt.Sprintf("u%d", u)})
				if err != nil {
					b.Fatal(err)
				}
				hold, err := HoldLoop(loops, "loop", func() Source { return src })
				if err != nil {
					b.Fatal(err)
				}
				sub, err := views.Subscribe(fmt.Sprint(u), func() Source { return hold.Source(v) }, "", JSONPatch)
				hold.Release()
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(sub.Close)
			}
			loops.mu.Lock()
			loop := loops.topics["loop"]
			loops.mu.Unlock()
			for loop.viewCount() < users {
				time.Sleep(time.Millisecond)
			}
			tr, _ := diff.NewTracker(diff.Options{})
			bodies := [][]byte{rowsBody(users, 100), rowsBody(users, 200)}
			for i := range 2 { // every view's first version, then one change
				ch, _, err := tr.Update(bodies[i])
				if err != nil {
					b.Fatal(err)
				}
				loop.Publish(ch)
			}
			i := 0
			for b.Loop() {
				ch, _, err := tr.Update(bodies[i%2])
				if err != nil {
					b.Fatal(err)
				}
				loop.Publish(ch)
				i++
			}
		})
	}
}

func (t *Topic) viewCount() int {
	t.views.mu.Lock()
	defer t.views.mu.Unlock()
	return len(t.views.views)
}
