package hub

import (
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
)

// A writer is one of the hub's shared goroutines that write frames to the connections
// handed to the hub with Serve. There is one per CPU; writer i serves shard i of every
// topic, so a change reaches a topic's streams from all CPUs at once. Its close watch
// notices their clients leave, so an idle stream costs no goroutine of its own.
type writer struct {
	mu     sync.Mutex
	queue  []*shard
	spare  []*shard
	wake   chan struct{}
	closes *closeWatch // nil where streams watch for themselves
}

// startWriters starts the hub's writers, once, unless the hub is closed, and reports
// whether they run. Under h.mu they start before Close waits for them or not at all.
func (h *Hub) startWriters() bool {
	h.writersOnce.Do(func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.closed {
			return
		}
		n := max(runtime.GOMAXPROCS(0), 1)
		h.writers = make([]*writer, n)
		for i := range h.writers {
			w := &writer{wake: make(chan struct{}, 1), closes: newCloseWatch()}
			h.writers[i] = w
			h.bg.Go(func() { w.run(h.quit) })
			if w.closes != nil {
				h.bg.Go(w.closes.run)
			}
		}
	})
	return h.writers != nil
}

// push queues sh for a pass.
func (w *writer) push(sh *shard) {
	w.mu.Lock()
	w.queue = append(w.queue, sh)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// take returns the queued shards and empties the queue.
func (w *writer) take() []*shard {
	w.mu.Lock()
	defer w.mu.Unlock()
	q := w.queue
	w.queue = w.spare[:0]
	w.spare = q
	return q
}

func (w *writer) run(quit <-chan struct{}) {
	for {
		select {
		case <-w.wake:
		case <-quit:
			w.closes.stop()
			return
		}
		for q := w.take(); len(q) > 0; q = w.take() {
			for i, sh := range q {
				sh.pass()
				q[i] = nil
			}
		}
	}
}

// A shard is the part of one topic's streams that one writer serves.
type shard struct {
	t      *Topic
	w      *writer
	queued atomic.Bool
	fresh  atomic.Bool  // the queued pass carries a new frame: counted in the topic's fan
	dirty  atomic.Bool  // a stream ended since the last compaction
	n      atomic.Int32 // legs registered

	mu   sync.Mutex
	legs []*leg // of the streams it writes

	// Owned by the writer's passes.
	seen      uint64   // the log head at the last pass; streams in the fast state had read up to it
	frames    []frame  // the log frames of the current pass
	iov       []iovec  // scratch for writev
	rewritten []byte   // scratch for the frames of a stream that rewrites them
	one       [][]byte // scratch holding rewritten
}

// maxScratch bounds the rewrite scratch space a shard keeps between writes: a rewritten
// snapshot larger than that is not kept past its write.
const maxScratch = 64 << 10

// dropScratch lets go of the rewrite scratch space once it has grown past maxScratch.
func (sh *shard) dropScratch() {
	clear(sh.one)
	if cap(sh.rewritten) > maxScratch {
		sh.rewritten = nil
	}
}

// kick queues the shard for a pass unless one is already queued.
func (sh *shard) kick() {
	if sh.queued.CompareAndSwap(false, true) {
		sh.w.push(sh)
	}
}

// add registers leg l of a stream with the shard and queues a pass if frames were added
// since it subscribed, or its stream ended: a stream that has read the whole log waits
// for the next frame, whose pass it is in, so that a crowd of clients joining at once
// does not make a pass over all the shard's streams each. A leg added to a stopped topic
// closes its stream: Hub.Close may have closed the topic's streams before it was added.
func (sh *shard) add(l *leg) {
	sh.mu.Lock()
	sh.legs = append(sh.legs, l)
	sh.mu.Unlock()
	sh.n.Add(1)
	if sh.t.isStopped() {
		l.st.close()
	}
	if l.st.state.Load() == stateClosed {
		sh.dirty.Store(true) // it ended before it was added
		sh.kick()
		return
	}
	if l.behind() {
		sh.kick()
	}
}

// behind reports whether frames were added to the log that l has not read. A frame
// added after l is counted in its shard's n kicks the shard itself: the check is made
// after, under t.mu, which frames are added under, and under st.mu, which a pass that
// already writes to l's stream holds.
func (l *leg) behind() bool {
	l.st.mu.Lock()
	defer l.st.mu.Unlock()
	t := l.sub.t
	t.mu.RLock()
	defer t.mu.RUnlock()
	return l.sub.next != t.head
}

// pass writes to each stream of the shard the frames added to the log since it last
// read, then drops the streams that have ended.
func (sh *shard) pass() {
	sh.queued.Store(false)
	if sh.fresh.Swap(false) {
		defer sh.t.fan.end()
	}
	v := sh.t.view(sh.seen, sh.frames[:0])
	sh.seen = v.head
	sh.mu.Lock()
	list := sh.legs
	sh.mu.Unlock()
	var events, bytes int
	for _, l := range list {
		e, b := l.deliver(&v)
		events, bytes = events+e, bytes+b
	}
	if events > 0 {
		sh.t.hub.cfg.Observer.Sent(events, bytes)
	}
	clear(v.frames) // the frames' data may be large: keep no reference past the pass
	sh.frames = v.frames
	sh.compact()
}

// compact drops the ended streams, if any ended.
func (sh *shard) compact() {
	if !sh.dirty.Swap(false) {
		return
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	before := len(sh.legs)
	sh.legs = slices.DeleteFunc(sh.legs, func(l *leg) bool { return l.st.state.Load() == stateClosed })
	sh.n.Add(int32(len(sh.legs) - before))
}

// all returns the streams of the shard's legs.
func (sh *shard) all() []*stream {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	out := make([]*stream, len(sh.legs))
	for i, l := range sh.legs {
		out[i] = l.st
	}
	return out
}

// A view is a copy of the frames of a topic's log from base to head, read under one lock
// by a writer's pass.
type view struct {
	base, head uint64
	frames     []frame
	stopped    bool
}

// view copies into buf the frames of the log from sequence number from, or from the
// oldest kept if that is later.
func (t *Topic) view(from uint64, buf []frame) view {
	t.mu.RLock()
	defer t.mu.RUnlock()
	from = max(from, t.tail)
	for i := from; i < t.head; i++ {
		buf = append(buf, t.log[i%logWindow])
	}
	return view{base: from, head: t.head, frames: buf, stopped: t.stopped}
}

// shardFor returns the shard a new stream joins: the topic's shards are created with
// its first stream, and streams are dealt to them in turn. It returns nil when the hub
// closed before it had writers.
func (t *Topic) shardFor() *shard {
	h := t.hub
	if !h.startWriters() {
		return nil
	}
	t.shardsOnce.Do(func() {
		shards := make([]*shard, len(h.writers))
		for i, w := range h.writers {
			shards[i] = &shard{t: t, w: w}
		}
		t.mu.Lock()
		t.shards = shards
		t.mu.Unlock()
	})
	i := t.dealt.Add(1)
	return t.shards[int(i)%len(t.shards)]
}

// kickShards queues a pass of every shard that has streams. t.mu is held.
func (t *Topic) kickShards() {
	for _, sh := range t.shards {
		if sh.n.Load() > 0 {
			if sh.fresh.CompareAndSwap(false, true) {
				t.fan.begin()
			}
			sh.kick()
		}
	}
}

// streams returns every stream of the topic.
func (t *Topic) streams() []*stream {
	t.mu.RLock()
	shards := t.shards
	t.mu.RUnlock()
	var all []*stream
	for _, sh := range shards {
		all = append(all, sh.all()...)
	}
	return all
}

// closeStreams ends every stream of the topic. It is called after the topic stopped.
func (t *Topic) closeStreams() {
	for _, st := range t.streams() {
		st.close()
	}
}
