package hub

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestFanOutConverges(t *testing.T) {
	t.Parallel()
	h := newHub(t, Config{})
	src := newDocSource()
	clients := make([]*client, 50)
	for i := range clients {
		clients[i] = subscribe(t, h, src, "")
	}
	for i := range 20 {
		src.send(t, doc(i))
		for _, c := range clients {
			c.waitDoc(t, doc(i))
		}
	}
	for _, c := range clients {
		if got := c.types(0); got[0] != "snapshot" || slices.Contains(got[1:], "snapshot") {
			t.Fatalf("events %v: want one snapshot then patches", got)
		}
		if c.retry < DefaultRetry*3/4 || c.retry > DefaultRetry*5/4 {
			t.Fatalf("retry %v, want within 25 %% of %v", c.retry, DefaultRetry)
		}
	}
	if h.Topics() != 1 {
		t.Fatalf("%d topics for one key", h.Topics())
	}
}

func TestEachFrameEncodedOnce(t *testing.T) {
	t.Parallel()
	h := newHub(t, Config{})
	src := newDocSource()
	a, b := subscribe(t, h, src, ""), subscribe(t, h, src, "")
	src.send(t, doc(1))
	src.send(t, doc(2))
	fa, _ := a.sub.Next(context.Background())
	fb, _ := b.sub.Next(context.Background())
	fa, _ = a.sub.Next(context.Background())
	fb, _ = b.sub.Next(context.Background())
	if len(fa) == 0 || len(fa) != len(fb) || &fa[0][0] != &fb[0][0] {
		t.Fatal("subscribers did not get the same frame bytes")
	}
}

func TestSlowSubscriberCatchesUp(t *testing.T) {
	t.Parallel()
	h := newHub(t, Config{})
	src := newDocSource()
	slow, fast := subscribe(t, h, src, ""), subscribe(t, h, src, "")
	src.send(t, doc(0))
	slow.waitDoc(t, doc(0))
	before := len(slow.events)
	const changes = 3 * logWindow
	for i := 1; i <= changes; i++ {
		src.send(t, doc(i))
		fast.waitDoc(t, doc(i)) // never held up by the subscriber that reads nothing
	}
	slow.waitDoc(t, doc(changes))
	if got := slow.types(before); len(got) != 1 {
		t.Fatalf("slow subscriber got %v; want one catch-up event", got)
	}
}

func TestResume(t *testing.T) {
	t.Parallel()
	big := func(i int) string {
		var b strings.Builder
		b.WriteString(`{"n":` + fmt.Sprint(i))
		for k := range 100 {
			fmt.Fprintf(&b, `,"member%d":"value %d"`, k, k)
		}
		return b.String() + "}"
	}
	h := newHub(t, Config{})
	src := newDocSource()
	first := subscribe(t, h, src, "")
	src.send(t, big(0))
	first.waitDoc(t, big(0))
	held := first.id
	for i := 1; i <= 3; i++ {
		src.send(t, big(i))
		first.waitDoc(t, big(i))
	}
	tests := []struct {
		name, id, want string
	}{
		{"in history", held, "patch"},
		{"current", first.id, ""},
		{"unknown", "AAAAAAAAAAAAAAAAAAAAAA", "snapshot"},
		{"none", "", "snapshot"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := subscribe(t, h, src, tc.id)
			c.doc = []byte(big(0)) // held's document; only a patch applies to it
			if err := c.read(time.Second); err != nil {
				t.Fatal(err)
			}
			switch got := c.types(0); {
			case tc.want == "" && len(got) != 0:
				t.Fatalf("got %v; want nothing until the next change", got)
			case tc.want != "" && !slices.Equal(got, []string{tc.want}):
				t.Fatalf("got %v; want one %s", got, tc.want)
			}
			if tc.want != "" {
				c.waitDoc(t, big(3))
			}
		})
	}
}

func TestResumeSendsSnapshotWhenSmaller(t *testing.T) {
	t.Parallel()
	h := newHub(t, Config{})
	src := newDocSource()
	c := subscribe(t, h, src, "")
	src.send(t, `{"a":"`+strings.Repeat("x", 500)+`"}`)
	c.waitDoc(t, `{"a":"`+strings.Repeat("x", 500)+`"}`)
	held := c.id
	src.send(t, `{"a":"`+strings.Repeat("y", 500)+`"}`)
	src.send(t, `{"b":1}`)
	c.waitDoc(t, `{"b":1}`)
	r := subscribe(t, h, src, held)
	r.waitDoc(t, `{"b":1}`)
	if got := r.types(0); !slices.Equal(got, []string{"snapshot"}) {
		t.Fatalf("got %v; want a snapshot, smaller than the catch-up patch", got)
	}
}

func TestUpstreamStatus(t *testing.T) {
	t.Parallel()
	h := newHub(t, Config{})
	src := newDocSource()
	c := subscribe(t, h, src, "")
	src.send(t, "<html>") // down before the first document
	if err := c.read(time.Second); err != nil {
		t.Fatal(err)
	}
	if err := c.read(time.Second); err != nil {
		t.Fatal(err)
	}
	if got := c.types(0); !slices.Equal(got, []string{"upstream"}) || !strings.Contains(c.events[0].Data, `"ok":false`) {
		t.Fatalf("got %v %v; want one upstream ok:false", got, c.events)
	}
	src.send(t, "<html>") // the same failure again says nothing new
	late := subscribe(t, h, src, "")
	if err := late.read(time.Second); err != nil {
		t.Fatal(err)
	}
	if got := late.types(0); !slices.Equal(got, []string{"upstream"}) {
		t.Fatalf("a subscriber joining during a failure got %v", got)
	}
	src.send(t, doc(1))
	c.waitDoc(t, doc(1))
	late.waitDoc(t, doc(1))
	if got := c.types(0); !slices.Equal(got, []string{"upstream", "upstream", "snapshot"}) {
		t.Fatalf("got %v; want upstream down, upstream ok, snapshot", got)
	}
	if c.events[1].Data != `{"ok":true}` || c.events[1].LastEventID != "" {
		t.Fatalf("recovery event %+v", c.events[1])
	}
}

func TestHeartbeat(t *testing.T) {
	t.Parallel()
	h := newHub(t, Config{Heartbeat: 20 * time.Millisecond})
	c := subscribe(t, h, newDocSource(), "")
	_ = c.read(time.Second) // retry
	for range 3 {
		frames, err := c.sub.Next(contextWithTimeout(t, time.Second))
		if err != nil || len(frames) != 1 || string(frames[0]) != ":\n\n" {
			t.Fatalf("got %q, %v; want a heartbeat comment", frames, err)
		}
	}
}

func TestLinger(t *testing.T) {
	t.Parallel()
	h := newHub(t, Config{Linger: 50 * time.Millisecond})
	src := newDocSource()
	sub, err := h.Subscribe("k", func() Source { return src }, "", JSONPatch)
	if err != nil {
		t.Fatal(err)
	}
	sub.Close()
	again, err := h.Subscribe("k", func() Source { t.Error("a lingering topic was restarted"); return src }, "", JSONPatch)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if h.Topics() != 1 {
		t.Fatal("topic stopped while subscribed")
	}
	again.Close()
	deadline := time.Now().Add(5 * time.Second)
	for h.Topics() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if h.Topics() != 0 {
		t.Fatal("topic still running after linger")
	}
}

func TestCloseEndsSubscriptions(t *testing.T) {
	t.Parallel()
	h := New(Config{})
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for range 10 {
		sub, err := h.Subscribe("k", func() Source { return newDocSource() }, "", JSONPatch)
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			defer sub.Close()
			for {
				if _, err := sub.Next(context.Background()); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	h.Close()
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("Next returned %v; want ErrClosed", err)
		}
	}
	if _, err := h.Subscribe("k", nil, "", JSONPatch); !errors.Is(err, ErrClosed) {
		t.Fatalf("Subscribe after Close: %v", err)
	}
}

func contextWithTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// A client that reconnects to a new topic (after a restart, say) holding the very document
// the first poll returns is not sent it again: ids are derived from content.
func TestResumeOnNewTopicWithSameDocument(t *testing.T) {
	t.Parallel()
	h := newHub(t, Config{})
	src := newDocSource()
	first := subscribe(t, h, src, "")
	src.send(t, doc(7))
	first.waitDoc(t, doc(7))

	h2 := newHub(t, Config{})
	src2 := newDocSource()
	c := subscribe(t, h2, src2, first.id)
	c.doc = first.doc
	src2.send(t, doc(7))
	src2.send(t, doc(8))
	c.waitDoc(t, doc(8))
	if got := c.types(0); !slices.Equal(got, []string{"patch"}) {
		t.Fatalf("got %v; want only the patch to the next version", got)
	}
}
