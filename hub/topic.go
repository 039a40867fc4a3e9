package hub

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/pollsse/caddy-poll-sse/diff"
)

// logWindow is how many frames a topic keeps for subscribers that are behind. It bounds
// the memory of all of a topic's subscriber queues together: a subscriber is a cursor into
// this log, not a copy of it. One that falls further behind skips the frames it missed and
// receives one catch-up (a combined patch or a snapshot), so its document still converges.
const logWindow = 128

// frame is one encoded event, shared by every subscriber.
type frame struct {
	data    []byte
	version string // the version a client holds after this frame; "" when it does not move
	full    bool   // a snapshot, valid whatever the client held
	health  health
}

type health int8

const (
	healthSame health = iota
	healthOK
	healthDown
)

// Topic is one poll loop's stream: its current version, history, upstream status and
// the frame log its subscribers read.
type Topic struct {
	hub    *Hub
	key    string
	cancel context.CancelFunc
	source Source

	mu      sync.RWMutex
	subs    int
	linger  *time.Timer
	beat    *time.Timer
	stopped bool
	wake    chan struct{} // closed and replaced when a frame is added or the topic stops
	log     [logWindow]frame
	head    uint64 // sequence number of the next frame
	cur     *diff.Version
	status  Status
	stFrame []byte // the frame announcing status
	hist    history

	cacheMu sync.Mutex
	snap    []byte            // snapshot frame of cur, built on first use
	catchUp map[string][]byte // catch-up frame to cur, by the version a client holds
}

func newTopic(h *Hub, key string) *Topic {
	t := &Topic{
		hub:    h,
		key:    key,
		wake:   make(chan struct{}),
		status: Status{OK: true},
		hist:   newHistory(h.cfg.History),
	}
	t.beat = time.AfterFunc(h.cfg.Heartbeat, t.heartbeat)
	return t
}

// Publish adds a new version. Only the topic's source calls it.
func (t *Topic) Publish(ch diff.Change) {
	f := frame{version: ch.Version.ID}
	if t.current() == nil {
		f.data, f.full = snapshotFrame(ch.Version), true
	} else {
		f.data = patchFrame(ch.Version.ID, ch.Patch)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.hist.add(ch.Version.ID, ch.Patch)
	t.cur = ch.Version
	t.cacheMu.Lock()
	t.snap, t.catchUp = nil, nil
	if f.full {
		t.snap = f.data
	}
	t.cacheMu.Unlock()
	t.append(f)
}

// Fail records a failed poll. Clients hear of it when the failure is new or its status or
// reason changed; the current document stays.
func (t *Topic) Fail(code int, reason string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.status
	if !old.OK && old.Code == code && old.Reason == reason {
		return
	}
	since := t.hub.cfg.Now()
	if !old.OK {
		since = old.Since
	}
	t.status = Status{Code: code, Reason: reason, Since: since}
	t.stFrame = statusFrame(t.status)
	t.append(frame{data: t.stFrame, health: healthDown})
	t.hub.cfg.Logger.Warn("upstream failing", zap.String("key", t.key), zap.Int("status", code), zap.String("reason", reason))
}

// Recover records a successful poll; clients hear of it when the upstream was failing.
func (t *Topic) Recover() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.status.OK {
		return
	}
	t.status = Status{OK: true}
	t.stFrame = statusFrame(t.status)
	t.append(frame{data: t.stFrame, health: healthOK})
	t.hub.cfg.Logger.Info("upstream recovered", zap.String("key", t.key))
}

// current returns the current version, or nil before the first document.
func (t *Topic) current() *diff.Version {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.cur
}

// append adds f to the log and wakes the subscribers. t.mu is held.
func (t *Topic) append(f frame) {
	t.log[t.head%logWindow] = f
	t.head++
	close(t.wake)
	t.wake = make(chan struct{})
	t.beat.Reset(t.hub.cfg.Heartbeat)
}

func (t *Topic) heartbeat() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.stopped {
		t.append(frame{data: heartbeat})
	}
}

// oldest returns the sequence number of the oldest frame still in the log.
func (t *Topic) oldest() uint64 {
	if t.head < logWindow {
		return 0
	}
	return t.head - logWindow
}

// resume returns the frame that brings a client holding version id to the current
// version, or nil when there is nothing to send. t.mu is held, for reading at least.
func (t *Topic) resume(id string) []byte {
	if t.cur == nil || id == t.cur.ID {
		return nil
	}
	t.cacheMu.Lock()
	defer t.cacheMu.Unlock()
	if f, ok := t.catchUp[id]; ok {
		return f
	}
	patches, ok := t.hist.patchesSince(id)
	if !ok {
		return t.snapshot()
	}
	f := t.snapshot()
	if joined := diff.JoinPatches(patches); len(joined) < len(t.cur.JSON) {
		f = patchFrame(t.cur.ID, joined)
	}
	if t.catchUp == nil {
		t.catchUp = make(map[string][]byte)
	}
	t.catchUp[id] = f
	return f
}

// snapshot returns the snapshot frame of the current version. t.cacheMu is held.
func (t *Topic) snapshot() []byte {
	if t.snap == nil {
		t.snap = snapshotFrame(t.cur)
	}
	return t.snap
}

func (t *Topic) idle() bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.subs == 0
}

func (t *Topic) stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return
	}
	t.stopped = true
	t.cancel()
	t.beat.Stop()
	if t.linger != nil {
		t.linger.Stop()
	}
	close(t.wake)
}
