package hub

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"

	"github.com/pollsse/caddy-poll-sse/diff"
)

// logWindow is how many frames a topic keeps for subscribers that are behind. It bounds
// the memory of all of a topic's subscriber queues together: a subscriber is a cursor into
// this log, not a copy of it. One that falls further behind skips the frames it missed and
// receives one catch-up (a combined patch or a snapshot), so its document still converges.
const logWindow = 128

// logBytes bounds the bytes a topic's log holds, as logWindow bounds its frames: 128
// snapshot frames of a large document (snapshot format, or merge patches that cannot be
// expressed) would otherwise keep 128 whole documents. Past it the oldest frames go, and
// subscribers that had not read them get a catch-up. The newest frame always stays, so a
// single frame larger than this is still delivered.
const logBytes = 16 << 20

// frame is one event in every format, shared by every subscriber.
type frame struct {
	// data is the event in each format; nil in formats nobody subscribed to when the
	// frame was added. Upstream-status and heartbeat frames are the same in all formats.
	data    [numFormats][]byte
	version string           // the version a client holds after this frame; "" when it does not move
	full    [numFormats]bool // a snapshot in that format, valid whatever the client held
	health  health
	size    int // bytes of data, each distinct encoding counted once
}

// sharedFrame returns a frame that is the same in every format.
func sharedFrame(data []byte, h health) frame {
	return frame{data: [numFormats][]byte{data, data, data}, health: h, size: len(data)}
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

	// subsMu guards the subscriber counts, apart from mu: clients that come and go
	// never hold up the readers of the log. It is taken after mu when both are.
	subsMu sync.Mutex
	subs   int
	subsOf [numFormats]int // subscribers by format: a change is encoded in those in use
	linger *time.Timer
	joins  uint64 // subscribers that joined so far: a linger set before the last join stops nothing
	// subsOpen holds the open subscriptions, for a drain to end.
	subsOpen map[*Subscription]struct{}
	draining atomic.Int32 // subscriptions that a drain is to end

	mu      sync.RWMutex
	last    time.Time // when the last frame was added: heartbeats fill idle time
	halted  bool      // its source was stopped: see halt
	stopped bool
	wake    chan struct{} // closed and replaced when a frame is added or the topic stops
	ready   chan struct{} // closed when the source has restored the topic
	log     [logWindow]frame
	head    uint64 // sequence number of the next frame
	tail    uint64 // sequence number of the oldest frame kept
	logSize int    // bytes of the frames kept
	cur     *diff.Version
	status  Status
	stFrame []byte // the frame announcing status
	hist    history
	views   viewSet // the view topics this topic feeds
	fan     fanout  // the passes writing a new frame to the handed-over streams

	shardsOnce sync.Once
	shards     []*shard // the streams handed over with Serve, one shard per writer
	dealt      atomic.Uint32

	cacheMu  sync.Mutex
	cacheVer *diff.Version         // the version the frames kept lead to: cur
	snap     []byte                // snapshot frame of cacheVer, built on first use
	catchUp  map[catchUpKey][]byte // catch-up frame to cacheVer, by format and the version held
	runs     touchRuns             // merged touches of merge_patch catch-ups, kept across versions
	flights  singleflight.Group    // catch-ups being computed, by catchUp.key
}

// catchUpKey identifies a cached catch-up frame.
type catchUpKey struct {
	format Format
	id     string // the version the client holds
}

func newTopic(h *Hub, key string) *Topic {
	t := &Topic{
		hub:      h,
		key:      key,
		subsOpen: make(map[*Subscription]struct{}),
		wake:     make(chan struct{}),
		ready:    make(chan struct{}),
		status:   Status{OK: true},
		hist:     newHistory(h.cfg.History, h.cfg.HistoryBytes),
		runs:     newTouchRuns(h.cfg.HistoryBytes),
		last:     time.Now(),
	}
	return t
}

// Publish adds a new version. Only the topic's source calls it; once the topic has
// stopped it does nothing, as do Fail and Recover, so that a poll ending as the topic
// stops is dropped rather than sent to nobody.
func (t *Topic) Publish(ch diff.Change) {
	t.commit(t.encode(ch))
	t.views.publish(ch.Version)
}

// encode encodes ch, outside the lock, in the formats that have subscribers, and finds
// where it touched the document, for the merge patches of later catch-ups.
func (t *Topic) encode(ch diff.Change) *encodings {
	enc := &encodings{ch: ch}
	var err error
	if enc.touches, err = ch.Touches(); err != nil {
		enc.noMerge = true
		t.hub.cfg.Logger.Error("reading the paths of a patch", append(t.hub.cfg.Describe(t.key), zap.Error(err))...)
	}
	var wanted [numFormats]bool
	enc.first, wanted = t.formatsWanted()
	for f, ok := range wanted {
		if ok {
			enc.frame(Format(f))
		}
	}
	return enc
}

// commit adds the change encoded in enc to the log. A format that gained its first
// subscriber since encode is encoded now, under the lock, so no subscriber misses a change.
func (t *Topic) commit(enc *encodings) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return
	}
	v := enc.ch.Version
	f := frame{version: v.ID}
	for i, in := range t.formatsInUse() {
		if in {
			f.data[i], f.full[i] = enc.frame(Format(i)), enc.isSnapshot(Format(i))
		}
	}
	f.size = distinctSize(f.data[:])
	t.hist.add(v.ID, enc.ch.Patch, enc.touches, enc.noMerge)
	t.cur = v
	t.cacheMu.Lock()
	t.cacheVer, t.snap, t.catchUp = v, enc.snap, nil
	t.runs.dropBefore(t.hist.oldest())
	t.cacheMu.Unlock()
	t.append(f)
}

// formatsWanted reports whether the topic has no version yet, and which formats have
// subscribers.
func (t *Topic) formatsWanted() (first bool, wanted [numFormats]bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.cur == nil, t.formatsInUse()
}

// formatsInUse reports which formats have subscribers. A subscriber is counted before it
// reads the log's head under mu, so a frame added under mu after that holds its format.
func (t *Topic) formatsInUse() (in [numFormats]bool) {
	t.subsMu.Lock()
	defer t.subsMu.Unlock()
	for f, n := range t.subsOf {
		in[f] = n > 0
	}
	return in
}

// distinctSize returns the total length of data, counting shared slices once.
func distinctSize(data [][]byte) int {
	n := 0
	for i, e := range data {
		if len(e) > 0 && !slices.ContainsFunc(data[:i], func(o []byte) bool {
			return len(o) > 0 && &o[0] == &e[0]
		}) {
			n += len(e)
		}
	}
	return n
}

// Fail records a failed poll. Clients hear of it when the failure is new or its status or
// reason changed; the current document stays.
func (t *Topic) Fail(code int, reason string) {
	if t.fail(code, reason) {
		t.views.fail(code, reason)
	}
}

// fail records a failed poll and reports whether clients are told.
func (t *Topic) fail(code int, reason string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.status
	if t.stopped || !old.OK && old.Code == code && old.Reason == reason {
		return false
	}
	since := t.hub.cfg.Now()
	if !old.OK {
		since = old.Since
	}
	t.status = Status{Code: code, Reason: reason, Since: since}
	t.stFrame = statusFrame(t.status)
	t.append(sharedFrame(t.stFrame, healthDown))
	t.hub.cfg.Logger.Warn("upstream failing", append(t.hub.cfg.Describe(t.key), zap.Int("status", code), zap.String("reason", reason))...)
	return true
}

// Recover records a successful poll; clients hear of it when the upstream was failing.
func (t *Topic) Recover() {
	if t.recover() {
		t.views.recover()
	}
}

// recover records a successful poll and reports whether clients are told.
func (t *Topic) recover() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped || t.status.OK {
		return false
	}
	t.status = Status{OK: true}
	t.stFrame = statusFrame(t.status)
	t.append(sharedFrame(t.stFrame, healthOK))
	t.hub.cfg.Logger.Info("upstream recovered", t.hub.cfg.Describe(t.key)...)
	return true
}

// current returns the current version, or nil before the first document.
func (t *Topic) current() *diff.Version {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.cur
}

// append adds f to the log, drops the oldest frames past logWindow or the hub's byte
// budget, and wakes the subscribers. t.mu is held, and t has not stopped: stop closed
// the wake channel for good.
func (t *Topic) append(f frame) {
	if t.head-t.tail == logWindow {
		t.evict()
	}
	t.log[t.head%logWindow] = f
	t.head++
	t.logSize += f.size
	for t.logSize > t.hub.logBytes && t.head-t.tail > 1 {
		t.evict()
	}
	close(t.wake)
	t.wake = make(chan struct{})
	t.last = time.Now()
	t.kickShards()
}

// evict drops the oldest frame of the log. t.mu is held.
func (t *Topic) evict() {
	slot := &t.log[t.tail%logWindow]
	t.logSize -= slot.size
	*slot = frame{}
	t.tail++
}

// heartbeat adds a heartbeat frame if no frame was added for the hub's heartbeat
// interval before now.
func (t *Topic) heartbeat(now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.stopped && now.Sub(t.last) >= t.hub.cfg.Heartbeat {
		t.append(sharedFrame(heartbeat, healthSame))
	}
}

// catchUpFrame returns the patch event that brings a holder of c.from to c.to in c's
// format, or the snapshot when that is smaller or a merge patch cannot express the
// change. No lock is held: it may take long.
func (t *Topic) catchUpFrame(c *catchUp) []byte {
	if c.format != MergePatch {
		return t.patchOrSnapshot(c, diff.JoinPatches(c.patches))
	}
	buf := patchBufs.Get().(*[]byte)
	defer patchBufs.Put(buf)
	run := t.runFor(c)
	merge, ok := run.set.AppendMerge((*buf)[:0], c.to)
	t.keepRun(run)
	*buf = merge
	if !ok {
		return t.snapshotOf(c.to)
	}
	return t.patchOrSnapshot(c, merge)
}

// patchBufs holds the buffers that catch-ups' merge patches are built in. Each patch is
// copied into its frame at once, so a few buffers serve every catch-up, however large,
// and the pool lets go of those unused since the last garbage collection.
var patchBufs = sync.Pool{New: func() any { return new([]byte) }}

// patchOrSnapshot returns the frame of the catch-up patch, or the snapshot when the
// patch is no smaller.
func (t *Topic) patchOrSnapshot(c *catchUp, patch []byte) []byte {
	if len(patch) >= len(c.to.JSON) {
		return t.snapshotOf(c.to)
	}
	return patchFrame(c.to.ID, patch)
}

func (t *Topic) isStopped() bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.stopped
}

func (t *Topic) idle() bool {
	t.subsMu.Lock()
	defer t.subsMu.Unlock()
	return t.subs == 0
}

// idleSince reports whether t has no subscriber and none joined since it had joins.
func (t *Topic) idleSince(joins uint64) bool {
	t.subsMu.Lock()
	defer t.subsMu.Unlock()
	return t.subs == 0 && t.joins == joins
}

func (t *Topic) stop() {
	if t.markStopped() {
		t.views.close()
	}
}

// markStopped marks t stopped and reports whether it was running.
func (t *Topic) markStopped() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return false
	}
	t.stopped = true
	t.haltLocked()
	t.subsMu.Lock()
	if t.linger != nil {
		t.linger.Stop()
	}
	t.subsMu.Unlock()
	close(t.wake)
	return true
}

// halt stops the topic's source: it polls no more, and counts as a running loop no more.
// Its subscribers stay, served what the log holds, with heartbeats, until the topic stops.
func (t *Topic) halt() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.haltLocked()
}

func (t *Topic) haltLocked() {
	if t.halted {
		return
	}
	t.halted = true
	t.cancel()
	liveLoops.Add(-1)
	t.hub.cfg.Observer.Loops(-1)
	t.hub.cfg.Stopped(t.key, t.source)
}

// enlist records s among the open subscriptions.
func (t *Topic) enlist(s *Subscription) {
	t.subsMu.Lock()
	defer t.subsMu.Unlock()
	t.subsOpen[s] = struct{}{}
}

// members returns the open subscriptions.
func (t *Topic) members() []*Subscription {
	t.subsMu.Lock()
	defer t.subsMu.Unlock()
	out := make([]*Subscription, 0, len(t.subsOpen))
	for s := range t.subsOpen {
		out = append(out, s)
	}
	return out
}

func (t *Topic) subscribers() int {
	t.subsMu.Lock()
	defer t.subsMu.Unlock()
	return t.subs
}

// describe describes the topic for operators.
func (t *Topic) describe() LoopStatus {
	t.mu.RLock()
	defer t.mu.RUnlock()
	ls := LoopStatus{Key: t.key, Subscribers: t.subscribers(), Draining: t.drainingNow(), History: t.hist.n, Upstream: t.status, Source: t.source}
	if t.cur != nil {
		ls.Version = t.cur.ID
	}
	return ls
}

// waitReady waits until the source has restored the topic, for restoreWait at most.
func (t *Topic) waitReady() {
	select {
	case <-t.ready:
		return
	default:
	}
	tm := time.NewTimer(restoreWait)
	defer tm.Stop()
	select {
	case <-t.ready:
	case <-tm.C:
	}
}
