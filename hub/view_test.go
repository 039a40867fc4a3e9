package hub

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/pollsse/caddy-poll-sse/diff"
)

// subscribeView subscribes to the view at sel of the loop "loop" of loops, in views.
func subscribeView(t *testing.T, loops, views *Hub, src Source, sel string) *client {
	t.Helper()
	v, err := diff.NewView(diff.Options{}, sel, nil)
	if err != nil {
		t.Fatal(err)
	}
	hold, err := HoldLoop(loops, "loop", func() Source { return src })
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Release()
	sub, err := views.Subscribe("loop view "+sel, func() Source { return hold.Source(v) }, "", JSONPatch)
	if err != nil {
		t.Fatal(err)
	}
	return &client{sub: sub, format: JSONPatch}
}

// TestViewTopicFollowsLoop checks that a view topic gets its part of the loop's
// documents, publishes nothing when only other parts change, hears of the loop's
// failures, stops as soon as its last subscriber leaves while its loop lingers, and that
// the loop then stops after its linger.
func TestViewTopicFollowsLoop(t *testing.T) {
	loops := newHub(t, Config{Linger: 300 * time.Millisecond})
	views := newHub(t, Config{Linger: time.Nanosecond})
	src := newDocSource()
	c := subscribeView(t, loops, views, src, "/a")
	src.send(t, `{"a":{"x":1},"b":1}`)
	c.waitDoc(t, `{"x":1}`)
	src.send(t, `{"a":{"x":1},"b":2}`)
	if err := c.read(200 * time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a change outside the view reached it: %v, %s", err, c.types(0))
	}
	src.send(t, `{"a":{"x":2},"b":2}`)
	c.waitDoc(t, `{"x":2}`)
	src.send(t, `not json`)
	for !c.sawFailure() {
		if err := c.read(5 * time.Second); err != nil {
			t.Fatalf("the loop's failure did not reach the view: %v", err)
		}
	}
	c.sub.Close()
	deadline := time.Now().Add(time.Second)
	for views.Topics() > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the view topic outlived its last subscriber")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if loops.Topics() != 1 {
		t.Fatal("the loop did not linger after its last view")
	}
	deadline = time.Now().Add(2 * time.Second)
	for loops.Topics() > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the loop did not stop after its linger")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// sawFailure reports whether c received an upstream event saying the upstream fails.
func (c *client) sawFailure() bool {
	for _, m := range c.events {
		if m.Type == "upstream" && len(m.Data) > 0 && m.Data[:10] == `{"ok":fals` {
			return true
		}
	}
	return false
}

// TestViewStopsWithLoop checks that a view topic whose loop stops is stopped too, so that
// its subscribers reconnect to a new loop.
func TestViewStopsWithLoop(t *testing.T) {
	loops := newHub(t, Config{})
	views := newHub(t, Config{Linger: time.Nanosecond})
	src := newDocSource()
	c := subscribeView(t, loops, views, src, "/a")
	src.send(t, `{"a":1}`)
	c.waitDoc(t, `1`)
	loops.Close()
	for {
		if err := c.read(2 * time.Second); errors.Is(err, ErrClosed) {
			return
		} else if err != nil {
			t.Fatalf("the view's subscription did not end with its loop: %v", err)
		}
	}
}

// TestViewPointerNotResolving checks that a view whose pointer does not resolve in the
// loop's document behaves like select: its clients are told, keep the last document, and
// get the change when the part is back.
func TestViewPointerNotResolving(t *testing.T) {
	loops := newHub(t, Config{})
	views := newHub(t, Config{Linger: time.Nanosecond})
	src := newDocSource()
	c := subscribeView(t, loops, views, src, "/a")
	src.send(t, `{"a":{"x":1}}`)
	c.waitDoc(t, `{"x":1}`)
	src.send(t, `{"b":1}`)
	for !c.sawFailure() {
		if err := c.read(5 * time.Second); err != nil {
			t.Fatalf("the view was not told its part is gone: %v", err)
		}
	}
	if !c.holds(`{"x":1}`) {
		t.Fatalf("the view's last document was not kept: %s", c.doc)
	}
	src.send(t, `{"a":{"x":2}}`)
	c.waitDoc(t, `{"x":2}`)
	if last := c.events[len(c.events)-1]; last.Type != "patch" {
		t.Errorf("the part's return came as %s, want a patch from the kept version", last.Type)
	}
}
