package hub

import (
	"bytes"
	"context"
	"sync"
	"time"
)

// Subscription is one client's cursor into a topic. It is used by one goroutine.
//
// A client that is behind, on subscribing or after falling out of the log, is owed a
// catch-up to the version that was current then, and reads the log on from the position
// of that version. The catch-up is computed by the goroutine that reads, outside every
// lock, before it reads the log.
type Subscription struct {
	t       *Topic
	format  Format
	next    uint64   // sequence number of the next frame to read
	version string   // the version the client holds, or claims to while the topic has none
	ok      bool     // the upstream health the client was last told; streams start healthy
	down    []byte   // the failure the client was last told of, while !ok
	pending [][]byte // frames owed before the catch-up
	owed    *catchUp // the catch-up owed, not computed yet
	after   [][]byte // frames owed after the catch-up
	buf     [][]byte // reused for the frames of each wake-up
	limits  Limits   // the route's, which counts the subscription until it is closed
	closed  bool     // guarded by t.subsMu
	started bool     // its first frames were settled: it waited for the fan-out then

	end   chan struct{} // closed when a drain ends the subscription; made by drained, under endMu
	endMu sync.Mutex    // guards what follows
	timer *time.Timer   // the drain's, once one ends the subscription
	ended bool          // the drain's time came
	gone  bool          // the subscription was closed
	onEnd func()        // closes the stream served with Serve
}

// join counts a new subscriber in format f, so that the topic does not linger. The hub's
// lock is held: a topic that is joined is not expired.
func (t *Topic) join(f Format) {
	t.subsMu.Lock()
	defer t.subsMu.Unlock()
	t.subs++
	t.joins++
	t.subsOf[f]++
	if t.linger != nil {
		t.linger.Stop()
		t.linger = nil
	}
}

// subscribe opens the subscription of a subscriber counted by join, in format f, for a
// client holding version lastID ("" for none).
func (t *Topic) subscribe(lastID string, f Format) *Subscription {
	t.mu.RLock() // it only reads the topic: join counted the subscriber
	defer t.mu.RUnlock()
	s := &Subscription{t: t, format: f, next: t.head, version: lastID, ok: true}
	s.pending = append(s.pending, t.hub.retryFrame())
	fr, c := t.plan(lastID, f)
	if fr != nil {
		s.pending = append(s.pending, fr)
	}
	switch {
	case c != nil:
		c.resume = lastID != ""
		s.owed = c
	case lastID != "":
		t.hub.cfg.Observer.Resume(t.resumeKind(lastID, fr))
	}
	if t.cur != nil {
		s.version = t.cur.ID
	}
	if !t.status.OK {
		s.after = append(s.after, t.stFrame)
		s.ok, s.down = false, t.stFrame
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

// wait returns the frames owed, or waits for new ones.
func (s *Subscription) wait(ctx context.Context) ([][]byte, error) {
	for {
		if s.wasDrained() {
			return nil, ErrDrained
		}
		if s.owes() {
			frames, err := s.settle(ctx)
			if err != nil || len(frames) > 0 {
				return frames, err
			}
		}
		frames, wake, err := s.t.since(s)
		if err != nil || len(frames) > 0 {
			return frames, err
		}
		if wake == nil {
			continue // fell out of the log: owes a catch-up
		}
		select {
		case <-wake:
		case <-s.drained():
			return nil, ErrDrained
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// owes reports whether s has frames to send before it reads the log on.
func (s *Subscription) owes() bool {
	return s.pending != nil || s.owed != nil || s.after != nil
}

// settle returns the frames s owes, computing the catch-up among them now, and waiting
// for it until ctx ends. The first time, it first waits for a fan-out in flight on the
// topic (see fanout). The caller holds no lock: this may take long.
func (s *Subscription) settle(ctx context.Context) ([][]byte, error) {
	if !s.started {
		s.started = true
		s.t.fan.wait(ctx, admitWait)
	}
	if c := s.owed; c != nil {
		fr, err := s.t.frameOf(ctx, c)
		if err != nil {
			return nil, err
		}
		s.owed = nil
		if c.resume {
			s.t.hub.cfg.Observer.Resume(kindOf(fr))
		}
		s.pending = append(s.pending, fr)
	}
	frames := append(s.pending, s.after...)
	s.pending, s.after = nil, nil
	return frames, nil
}

// since returns the frames s has not read, and the channel that is closed when there are
// more. A subscriber that fell out of the log is owed one catch-up instead, and gets
// neither frames nor a channel.
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
		t.catchUpFrames(s)
		return nil, nil, nil
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
		s.down = f.data[s.format]
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
		frames, _, err := s.t.since(s) // may leave a catch-up owed
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
	case fr == nil:
		return ResumeSnapshot // with no version yet, the first one comes as a snapshot
	default:
		return kindOf(fr)
	}
}

// kindOf names the resume that catch-up frame fr makes.
func kindOf(fr []byte) string {
	if bytes.HasPrefix(fr, snapshotPrefix) {
		return ResumeSnapshot
	}
	return ResumePatch
}

// catchUpFrames moves s to the head of the log, leaving it owing the catch-up to the
// current version, and the upstream status when that changed. t.mu is held.
func (t *Topic) catchUpFrames(s *Subscription) {
	t.hub.cfg.Observer.Slow(SlowCatchUp)
	fr, c := t.plan(s.version, s.format)
	if fr != nil {
		s.pending = append(s.pending, fr)
	}
	s.owed = c
	if s.ok != t.status.OK || !s.ok && !bytes.Equal(s.down, t.stFrame) {
		// The health changed while the client was behind, or the failure did: its
		// status, reason or start.
		s.after = append(s.after, t.stFrame)
		s.ok, s.down = t.status.OK, t.stFrame
	}
	if t.cur != nil {
		s.version = t.cur.ID
	}
	s.next = t.head
}

// Close ends the subscription. The topic lingers after its last subscriber.
func (s *Subscription) Close() {
	t := s.t
	t.mu.RLock()
	defer t.mu.RUnlock()
	t.subsMu.Lock()
	defer t.subsMu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	delete(t.subsOpen, s)
	s.forgetDrain()
	s.limits.give()
	if t.hub.subs.Add(-1) == 0 && t.hub.retired.Load() {
		t.hub.emptied()
	}
	t.hub.cfg.Observer.Subscribers(-1)
	t.leaveLocked(s.format)
}

// leave uncounts a subscriber in format f that join counted.
func (t *Topic) leave(f Format) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	t.subsMu.Lock()
	defer t.subsMu.Unlock()
	t.leaveLocked(f)
}

// leaveLocked is leave with t.mu held for reading and t.subsMu held. After the last
// subscriber the topic lingers: for the hub's Linger, or BriefLinger at most while no
// poll has answered yet. A topic whose
// upstream failed keeps the whole Linger although it has no document: its source's backoff,
// and any Retry-After the upstream asked for, go on protecting the upstream from the
// clients that come back, which a new topic would poll at once.
func (t *Topic) leaveLocked(f Format) {
	t.subs--
	t.subsOf[f]--
	if t.subs > 0 || t.stopped {
		return
	}
	linger := t.hub.cfg.Linger
	if t.cur == nil && t.status.OK {
		linger = min(linger, BriefLinger)
	}
	joins := t.joins
	t.linger = time.AfterFunc(linger, func() { t.hub.expire(t, joins) })
}
