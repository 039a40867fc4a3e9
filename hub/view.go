package hub

import (
	"context"
	"errors"
	"net/http"
	"sync"

	"github.com/pollsse/caddy-poll-sse/diff"
)

// A view is one audience's part of a loop's document, such as a subtree a client chose or
// the rows of one user: a topic of its own, in a hub of views, with its own versions,
// history and resume, fed by the topic of its loop. The loop polls and parses once for
// all its views; each view's change is computed from the loop's new version, in the loop's
// goroutine, and only views whose part changed publish.

// viewSet is the views a topic feeds.
type viewSet struct {
	mu     sync.Mutex
	views  map[*Topic]*ViewSource
	rows   diff.RowIndex // the filtered rows of the topic's version, grouped once for all views
	done   chan struct{} // closed when the feeding topic stops
	closed bool
}

// ViewSource feeds a view topic from the topic of its loop.
type ViewSource struct {
	loop *Topic
	view *diff.View
	bad  string // why the view's part could not be read from the last version; "" when it could
}

// LoopHold keeps a loop topic joined while a request subscribes to one of its views:
// the loop starts, or is refused, before the view does, and the view's source takes the
// hold over when the view starts.
type LoopHold struct {
	loops   *Hub
	key     string
	newLoop func() Source

	mu      sync.Mutex
	t       *Topic
	taken   bool
	release bool
}

// HoldLoop joins the loop topic key of loops, starting it with newLoop if it is not
// running. Its errors are those of Subscribe. The caller calls Release when the request
// has subscribed.
func HoldLoop(loops *Hub, key string, newLoop func() Source) (*LoopHold, error) {
	t, err := loops.join(key, newLoop, JSONPatch, false, Limits{})
	if err != nil {
		return nil, err
	}
	return &LoopHold{loops: loops, key: key, newLoop: newLoop, t: t}, nil
}

// Source returns the source of a view topic fed from the held loop with view. The loop
// stays joined until the view topic stops, and then lingers as after any subscriber. It
// returns nil, refusing the view, when the loop can no longer be joined.
func (l *LoopHold) Source(view *diff.View) Source {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.taken && !l.release {
		l.taken = true
		return &ViewSource{loop: l.t, view: view}
	}
	t, err := l.loops.join(l.key, l.newLoop, JSONPatch, false, Limits{})
	if err != nil {
		return nil
	}
	return &ViewSource{loop: t, view: view}
}

// Release lets go of the loop unless a view's source took it over.
func (l *LoopHold) Release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.taken || l.release {
		return
	}
	l.release = true
	l.t.leave(JSONPatch)
}

// Run implements Source: it follows the loop until ctx ends, or stops the view topic when
// the loop stops, so that its subscribers reconnect to a new loop.
func (s *ViewSource) Run(ctx context.Context, t *Topic) {
	defer s.loop.leave(JSONPatch)
	s.loop.waitReady()
	done := s.loop.views.add(t, s, s.loop)
	defer s.loop.views.remove(t)
	select {
	case <-ctx.Done():
	case <-done:
		t.hub.remove(t)
	}
}

// Loop returns the source of the view's loop, such as a *PollSource.
func (s *ViewSource) Loop() Source { return s.loop.source }

// add starts feeding view topic t from loop, with loop's current version and status, and
// returns a channel closed when loop stops.
func (vs *viewSet) add(t *Topic, s *ViewSource, loop *Topic) <-chan struct{} {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	if vs.closed {
		return vs.doneLocked()
	}
	if vs.views == nil {
		vs.views = make(map[*Topic]*ViewSource)
	}
	vs.views[t] = s
	cur, st := loop.snapshotState()
	if cur != nil {
		s.publish(t, cur, &vs.rows)
	}
	if !st.OK {
		t.Fail(st.Code, st.Reason)
	}
	return vs.doneLocked()
}

// doneLocked returns the channel closed when the loop stops, made on first use. vs.mu is
// held.
func (vs *viewSet) doneLocked() chan struct{} {
	if vs.done == nil {
		vs.done = make(chan struct{})
	}
	return vs.done
}

func (vs *viewSet) remove(t *Topic) {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	delete(vs.views, t)
}

// close tells the views that their loop stopped.
func (vs *viewSet) close() {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	if vs.closed {
		return
	}
	vs.closed = true
	close(vs.doneLocked())
}

// publish feeds the loop's new version v to every view.
func (vs *viewSet) publish(v *diff.Version) {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	for t, s := range vs.views {
		s.publish(t, v, &vs.rows)
	}
}

// fail tells every view of the loop's failure.
func (vs *viewSet) fail(code int, reason string) {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	for t := range vs.views {
		t.Fail(code, reason)
	}
}

// recover tells every view that the loop recovered; a view whose part could not be read
// from the last version says so again. Fail and Recover call them only when the loop's
// status changed.
func (vs *viewSet) recover() {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	for t, s := range vs.views {
		s.health(t)
	}
}

// publish computes the view's change from the loop's version v and publishes it.
func (s *ViewSource) publish(t *Topic, v *diff.Version, rows *diff.RowIndex) {
	ch, changed, err := s.view.Update(v, rows)
	was := s.bad
	s.bad = ""
	switch {
	case errors.Is(err, diff.ErrSelect):
		s.bad = failReason(err)
	case err != nil:
		s.bad = err.Error()
	}
	if s.bad != was || changed {
		s.health(t) // a view that is fine and unchanged costs no lock of its topic
	}
	if changed {
		t.Publish(ch)
	}
}

// health tells t whether its part could be read from the loop's last version.
func (s *ViewSource) health(t *Topic) {
	if s.bad != "" {
		t.Fail(http.StatusOK, s.bad)
		return
	}
	t.Recover()
}

// snapshotState returns the topic's current version and status.
func (t *Topic) snapshotState() (*diff.Version, Status) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.cur, t.status
}
