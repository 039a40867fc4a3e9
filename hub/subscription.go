package hub

import (
	"bytes"
	"context"
	"time"
)

// Subscription is one client's cursor into a topic. It is used by one goroutine.
type Subscription struct {
	t       *Topic
	format  Format
	next    uint64   // sequence number of the next frame to read
	version string   // the version the client holds, or claims to while the topic has none
	ok      bool     // the upstream health the client was last told; streams start healthy
	pending [][]byte // the first frames
	buf     [][]byte // reused for the frames of each wake-up
	limits  Limits   // the route's, which counts the subscription until it is closed
	closed  bool
}

// join counts a new subscriber in format f, so that the topic does not linger. The hub's
// lock is held: a topic that is joined is not expired.
func (t *Topic) join(f Format) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.subs++
	t.subsOf[f]++
	if t.linger != nil {
		t.linger.Stop()
		t.linger = nil
	}
}

// subscribe opens the subscription of a subscriber counted by join, in format f, for a
// client holding version lastID ("" for none).
func (t *Topic) subscribe(lastID string, f Format) *Subscription {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := &Subscription{t: t, format: f, next: t.head, version: lastID, ok: true}
	s.pending = append(s.pending, t.hub.retry)
	fr := t.resume(lastID, f)
	if fr != nil {
		s.pending = append(s.pending, fr)
	}
	if lastID != "" {
		t.hub.cfg.Observer.Resume(t.resumeKind(lastID, fr))
	}
	if t.cur != nil {
		s.version = t.cur.ID
	}
	if !t.status.OK {
		s.pending = append(s.pending, t.stFrame)
		s.ok = false
	}
	return s
}

// Next blocks until there are frames for the client, and returns them in order; they are
// shared and must not be modified, and the slice is only valid until the next call. The
// frames it returns count as sent. It returns ErrClosed when the topic stops, or ctx's
// error when ctx ends first.
func (s *Subscription) Next(ctx context.Context) ([][]byte, error) {
	frames, err := s.wait(ctx)
	if len(frames) > 0 {
		s.t.hub.cfg.Observer.Sent(len(frames), size(frames))
	}
	return frames, err
}

// wait returns the pending frames, or waits for new ones.
func (s *Subscription) wait(ctx context.Context) ([][]byte, error) {
	if p := s.pending; p != nil {
		s.pending = nil
		return p, nil
	}
	for {
		frames, wake, err := s.t.since(s)
		if err != nil || len(frames) > 0 {
			return frames, err
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// since returns the frames s has not read, and the channel that is closed when there are
// more. A subscriber that fell out of the log gets one catch-up instead.
func (t *Topic) since(s *Subscription) ([][]byte, <-chan struct{}, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.stopped {
		return nil, nil, ErrClosed
	}
	if s.next == t.head {
		return nil, t.wake, nil
	}
	if s.next < t.tail {
		return t.catchUpFrames(s), nil, nil
	}
	frames := s.buf[:0]
	for s.next < t.head {
		frames = s.take(frames, &t.log[s.next%logWindow])
	}
	s.buf = frames
	return frames, t.wake, nil
}

// take moves s past frame f, appending it to frames when the client needs it. Every
// frame added since s subscribed holds s's format: Publish encodes the formats with
// subscribers under the lock that subscribe takes.
func (s *Subscription) take(frames [][]byte, f *frame) [][]byte {
	s.next++
	if f.full[s.format] && f.version == s.version {
		return frames // the client already holds this document
	}
	if f.version != "" {
		s.version = f.version
	}
	if f.health != healthSame {
		s.ok = f.health == healthOK
	}
	return append(frames, f.data[s.format])
}

// framesIn returns the frames of v that s has not read. A subscription that is behind
// v, having joined or fallen behind before it, reads from the log itself.
func (s *Subscription) framesIn(v *view) ([][]byte, error) {
	switch {
	case v.stopped:
		return nil, ErrClosed
	case s.next > v.head:
		return nil, nil // joined after v was read: the next pass has its frames
	case s.next < v.base:
		frames, _, err := s.t.since(s)
		return frames, err
	}
	frames := s.buf[:0]
	for s.next < v.head {
		frames = s.take(frames, &v.frames[s.next-v.base])
	}
	s.buf = frames
	return frames, nil
}

// resumeKind names what a client holding version id got on subscribing: fr, the frame
// resume returned. t.mu is held.
func (t *Topic) resumeKind(id string, fr []byte) string {
	switch {
	case t.cur != nil && id == t.cur.ID:
		return ResumeNone
	case fr == nil || bytes.HasPrefix(fr, snapshotPrefix):
		return ResumeSnapshot // with no version yet, the first one comes as a snapshot
	default:
		return ResumePatch
	}
}

// catchUpFrames moves s to the head of the log. t.mu is held.
func (t *Topic) catchUpFrames(s *Subscription) [][]byte {
	t.hub.cfg.Observer.Slow(SlowCatchUp)
	var frames [][]byte
	if f := t.resume(s.version, s.format); f != nil {
		frames = append(frames, f)
	}
	if s.ok != t.status.OK {
		frames = append(frames, t.stFrame)
		s.ok = t.status.OK
	}
	if t.cur != nil {
		s.version = t.cur.ID
	}
	s.next = t.head
	if frames == nil {
		frames = [][]byte{heartbeat}
	}
	return frames
}

// Close ends the subscription. The topic lingers after its last subscriber.
func (s *Subscription) Close() {
	t := s.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	s.limits.give()
	t.hub.subs.Add(-1)
	t.hub.cfg.Observer.Subscribers(-1)
	t.subs--
	t.subsOf[s.format]--
	if t.subs == 0 && !t.stopped {
		t.linger = time.AfterFunc(t.hub.cfg.Linger, func() { t.hub.expire(t) })
	}
}
