package hub

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"time"

	"github.com/pollsse/caddy-poll-sse/diff"
)

// A catchUp brings a client from the version it holds to a later one with one frame: the
// patches between them joined, or a snapshot. Version ids are public, so anyone can ask
// for the catch-up from any old version as often as they like, and a merge patch over
// many versions of a large document takes a long time. So a catch-up is planned under
// the topic's lock, which only takes references out of the history, and computed outside
// every lock, once for all the clients that ask for it at the same time, and only a few
// at a time in the whole process: live delivery and publishing never wait for one.
//
// The client is then attached at the log position where the catch-up's version was the
// current one: the frames added while it was computed follow it from the log, so none is
// missed and none is sent twice.
type catchUp struct {
	format  Format
	from    string         // the version the client holds; "" when it gets a snapshot
	to      *diff.Version  // the version the client is brought to
	patches [][]byte       // from the history, oldest first, in JSONPatch
	touches []diff.Touches // from the history, oldest first, in MergePatch
	first   uint64         // in MergePatch, the sequence number of touches[0]
	resume  bool           // asked for on subscribing: counted in the resume metrics
}

// catchUpCacheMax bounds the catch-up frames a topic keeps for its current version. The
// ids that many clients hold at once are few, the last versions; those who ask for the
// same one at the same time share one computation even when it is not kept.
const catchUpCacheMax = 64

// plan returns the frame that brings a client holding version id to the current version
// in format f, when it is at hand, or the catch-up that computes it. Both are nil when
// there is nothing to send. t.mu is held, for reading at least.
func (t *Topic) plan(id string, f Format) ([]byte, *catchUp) {
	if t.cur == nil || id == t.cur.ID {
		return nil, nil
	}
	c := &catchUp{format: f, from: id, to: t.cur}
	if f != Snapshot {
		// The frame is kept only when it was computed as a patch from id: a client
		// who holds an id many others hold costs no walk of the history.
		if fr := t.cachedLocked(c); fr != nil {
			return fr, nil
		}
		if t.joinable(c) {
			return nil, c
		}
	}
	// Patches that together outweigh the document would be no smaller than a snapshot,
	// and are not joined. Unknown ids are the client's to choose: they all share the
	// snapshot.
	c.format, c.from = Snapshot, ""
	if fr := t.cachedLocked(c); fr != nil {
		return fr, nil
	}
	return nil, c
}

// joinable takes from the history what c joins, and reports whether it can be joined.
// t.mu is held.
func (t *Topic) joinable(c *catchUp) bool {
	limit, ok := len(t.cur.JSON), false
	if c.format == MergePatch {
		c.touches, c.first, ok = t.hist.touchesSince(c.from, limit)
	} else {
		c.patches, ok = t.hist.patchesSince(c.from, limit)
	}
	return ok
}

// key identifies the computation of c among the topic's.
func (c *catchUp) key() string {
	return c.format.String() + " " + c.to.ID + " " + c.from
}

// frameOf returns c's frame, waiting for its computation until ctx ends. Clients that ask
// for the same catch-up at once share one computation.
func (t *Topic) frameOf(ctx context.Context, c *catchUp) ([]byte, error) {
	for {
		res := t.flights.DoChan(c.key(), func() (any, error) { return t.compute(ctx, c) })
		select {
		case r := <-res:
			if r.Err == nil {
				return r.Val.([]byte), nil
			}
			if ctx.Err() == nil && isContextErr(r.Err) {
				continue // the client whose call computed it left before it started
			}
			return nil, r.Err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func isContextErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// compute builds c's frame, when no other computation kept it meanwhile, in one of the
// process's computing slots.
func (t *Topic) compute(ctx context.Context, c *catchUp) ([]byte, error) {
	if fr := t.cachedLocked(c); fr != nil {
		return fr, nil
	}
	release, err := t.hub.acquireSlot(ctx)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	defer func() { restAndRelease(time.Since(start), release) }()
	if t.hub.onCompute != nil {
		t.hub.onCompute(c)
	}
	t.hub.cfg.Observer.Computed(c.format.String())
	var fr []byte
	if c.from == "" {
		fr = t.snapshotOf(c.to)
	} else {
		fr = t.catchUpFrame(c)
	}
	t.remember(c, fr)
	return fr, nil
}

// computeSlots bounds the catch-ups computed at once in the process to half its CPUs,
// and restAndRelease keeps each slot resting after a computation for as long as it
// took: catch-ups then take at most a quarter of the process's CPU time, and a crowd of
// clients resuming from old ids slows resumes down, not live delivery. Their frames go
// to their clients as soon as they are computed; only the next computation waits. A
// storm of clients resuming from the last few versions is not slowed: they ask for few
// distinct catch-ups, each computed once. It is made on first use, after the process
// has set GOMAXPROCS.
var computeSlots = sync.OnceValue(func() chan struct{} {
	return make(chan struct{}, max(runtime.GOMAXPROCS(0)/2, 1))
})

// restAndRelease gives a computing slot back once it has rested for busy, the time its
// computation took.
func restAndRelease(busy time.Duration, release func()) {
	if busy <= 0 {
		release()
		return
	}
	time.AfterFunc(busy, release)
}

// acquireSlot waits for a computing slot until ctx ends or the hub closes, and returns
// the function that gives it back.
func (h *Hub) acquireSlot(ctx context.Context) (func(), error) {
	slots := h.slots
	select {
	case slots <- struct{}{}:
		return func() { <-slots }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-h.quit:
		return nil, ErrClosed
	}
}

// cachedLocked returns c's frame if it is kept.
func (t *Topic) cachedLocked(c *catchUp) []byte {
	t.cacheMu.Lock()
	defer t.cacheMu.Unlock()
	return t.cached(c)
}

// cached returns c's frame if it is kept. t.cacheMu is held.
func (t *Topic) cached(c *catchUp) []byte {
	if t.cacheVer != c.to {
		return nil
	}
	if c.from == "" {
		return t.snap
	}
	return t.catchUp[catchUpKey{format: c.format, id: c.from}]
}

// remember keeps c's frame fr while c's version is the current one.
func (t *Topic) remember(c *catchUp, fr []byte) {
	t.cacheMu.Lock()
	defer t.cacheMu.Unlock()
	if t.cacheVer != c.to {
		return
	}
	if c.from == "" {
		t.snap = fr
		return
	}
	if t.catchUp == nil {
		t.catchUp = make(map[catchUpKey][]byte)
	}
	if len(t.catchUp) < catchUpCacheMax {
		t.catchUp[catchUpKey{format: c.format, id: c.from}] = fr
	}
}

// snapshotOf returns the snapshot frame of v, kept or built.
func (t *Topic) snapshotOf(v *diff.Version) []byte {
	t.cacheMu.Lock()
	snap := t.snap
	if t.cacheVer != v {
		snap = nil
	}
	t.cacheMu.Unlock()
	if snap != nil {
		return snap
	}
	return snapshotFrame(v)
}
