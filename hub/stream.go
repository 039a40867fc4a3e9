package hub

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// A stream is a client connection handed to the hub with Serve, or with ServeMulti when
// it carries several subscriptions (see multistream.go). While it keeps up, the shared
// writers write to it without blocking and it holds no goroutine: its first writer's
// close watch notices the client leave. When the client's socket is full, the stream drains the rest
// in a goroutine of its own, catching up from the log (several frames in one write, or one
// catch-up once it fell out of the log), and returns to the shared writers when it has
// caught up.
type stream struct {
	legs    []*leg  // the subscriptions it carries, in the order the client asked for them
	rewrite Rewrite // nil: frames go as they are
	onClose func()  // called once the stream has ended; nil for none
	conn    net.Conn
	fd      int             // the socket, written without blocking; -1 when it cannot be
	timeout time.Duration   // a blocking write's deadline
	ctx     context.Context // ended when the stream ends
	cancel  context.CancelFunc

	mu         sync.Mutex // held while frames are chosen for and written to the stream
	state      atomic.Int32
	out        net.Buffers // frames accepted for the client and not yet written
	watchToken uint64      // the socket's registration with its writer's close watch; 0 if none
}

// A leg is one subscription of a stream, registered with a shard of its topic: the
// shard's passes write its frames, each frame of a topic to every leg in one pass.
type leg struct {
	st      *stream
	i       int // its index among the stream's legs, as Rewrite is told
	sub     *Subscription
	shard   *shard    // nil for a stream with a goroutine of its own
	expires time.Time // when the client's access to it ends; zero if it does not
}

// Stream states.
const (
	stateFast     int32 = iota // written by the shared writers
	stateDraining              // written by its own goroutine
	stateClosed
)

// Serve hands the client connection conn to the hub, which from then on writes the
// subscription's frames to it and closes it when the client leaves, a write fails or
// takes longer than the write timeout, the topic stops, a drain ends it, or ctx ends. The caller has
// written the response header, and may have read frames with Next; frames not read yet
// are written before Serve returns. The caller must not use conn or s again.
func (s *Subscription) Serve(ctx context.Context, conn net.Conn) {
	s.ServeUntil(ctx, conn, time.Time{})
}

// ServeUntil is Serve that also ends the stream at the time expires, unless it is zero:
// when the client's access expires. The stream's last event is then ExpiredFrame, so
// that the client knows not to come back with the same credentials. The stream's own
// timer goes with the stream.
func (s *Subscription) ServeUntil(ctx context.Context, conn net.Conn, expires time.Time) {
	serve(ctx, conn, Multi{Subs: []*Subscription{s}, Expires: []time.Time{expires}})
}

// serve hands conn to the hub for the subscriptions of m: see Serve and ServeMulti.
func serve(ctx context.Context, conn net.Conn, m Multi) {
	st := newStream(ctx, conn, m)
	if err := st.settleFirst(m.Head); err != nil {
		st.fail(err)
		return
	}
	shared := st.fd >= 0 && st.shardLegs()
	if err := st.flush(); err != nil {
		st.fail(err)
		return
	}
	st.watchClose()
	if !shared {
		if st.state.CompareAndSwap(stateFast, stateDraining) {
			go st.serveBlocking()
		}
		return
	}
	for _, l := range st.legs {
		l.shard.add(l)
	}
}

// newStream makes the stream of conn for the subscriptions of m, one leg each, with its
// context, which ends at the first expiry or lifetime of its legs, or with ctx.
func newStream(ctx context.Context, conn net.Conn, m Multi) *stream {
	st := &stream{conn: conn, fd: socketFD(conn), rewrite: m.Rewrite, onClose: m.OnClose}
	var end time.Time
	for i, s := range m.Subs {
		l := &leg{st: st, i: i, sub: s}
		if i < len(m.Expires) {
			l.expires = m.Expires[i]
		}
		st.legs = append(st.legs, l)
		st.timeout = max(st.timeout, s.t.hub.cfg.WriteTimeout)
		end = earlier(end, l.expires)
		if d := s.limits.Lifetime(); d > 0 {
			end = earlier(end, time.Now().Add(d))
		}
	}
	if end.IsZero() {
		st.ctx, st.cancel = context.WithCancel(ctx)
	} else {
		st.ctx, st.cancel = context.WithDeadline(ctx, end)
	}
	st.afterEnd(ctx, end, st.end)
	return st
}

// settleFirst puts in st.out what the client is sent first: head, unless empty, then
// each leg's first frames. A leg already drained fails it.
func (st *stream) settleFirst(head []byte) error {
	for _, l := range st.legs {
		if !l.sub.onDrain(st.close) {
			return ErrDrained
		}
	}
	if len(head) > 0 {
		st.out = append(st.out, head)
	}
	for _, l := range st.legs {
		owed, err := l.sub.settle(st.ctx)
		st.takeNow(l, owed)
		if err != nil {
			return err
		}
	}
	return nil
}

// shardLegs deals each leg to a shard of its topic, and reports whether every one has
// one: a hub closed before it had writers has none, and the stream is then served from
// a goroutine of its own, which ends it.
func (st *stream) shardLegs() bool {
	for _, l := range st.legs {
		if l.shard = l.sub.t.shardFor(); l.shard == nil {
			for _, l := range st.legs {
				l.shard = nil
			}
			return false
		}
	}
	return true
}

// take adds frames of leg l, read outside the shared writers' passes, to what the
// client is owed, and counts them as sent.
func (st *stream) take(l *leg, frames [][]byte) {
	if len(frames) == 0 {
		return
	}
	if st.rewrite == nil {
		st.out = append(st.out, frames...)
	} else {
		st.out = append(st.out, st.appendFrames(nil, l.i, frames))
	}
	l.sub.t.hub.cfg.Observer.Sent(len(frames), size(frames))
}

// takeNow is take for a caller that does not hold st.mu: Rewrite is never called for two
// frames at once.
func (st *stream) takeNow(l *leg, frames [][]byte) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.take(l, frames)
}

// earlier returns the earlier of a and b, a zero time counting as none.
func earlier(a, b time.Time) time.Time {
	if a.IsZero() || !b.IsZero() && b.Before(a) {
		return b
	}
	return a
}

// appendFrames appends frames of leg i to dst as the client is sent them: rewritten, if
// the stream rewrites them.
func (st *stream) appendFrames(dst []byte, i int, frames [][]byte) []byte {
	for _, f := range frames {
		if st.rewrite == nil {
			dst = append(dst, f...)
		} else {
			dst = st.rewrite(dst, i, f)
		}
	}
	return dst
}

// deliver writes the frames of v that leg l has not read, without blocking, and returns
// how many it sent and their bytes. Run by a shared writer.
func (l *leg) deliver(v *view) (events, bytes int) {
	st := l.st
	st.mu.Lock()
	if st.state.Load() != stateFast {
		st.mu.Unlock()
		return 0, 0
	}
	frames, err := l.sub.framesIn(v)
	if err == nil && len(frames) > 0 {
		err = st.writeNow(l, frames)
		events, bytes = len(frames), size(frames)
	}
	if err == nil && l.sub.owes() && st.state.CompareAndSwap(stateFast, stateDraining) {
		// It fell out of the log: its catch-up is computed by a goroutine of its own,
		// never by a shared writer.
		go st.drain()
	}
	st.mu.Unlock()
	if err != nil {
		st.fail(err)
	}
	return events, bytes
}

// size returns the bytes of frames.
func size(frames [][]byte) int {
	n := 0
	for _, f := range frames {
		n += len(f)
	}
	return n
}

// writeNow writes frames of leg l as far as the socket takes them, rewritten in l's
// shard's scratch space if the stream rewrites them. What it does not take is kept, and
// the stream starts draining. st.mu is held.
func (st *stream) writeNow(l *leg, frames [][]byte) error {
	sh := l.shard
	if st.rewrite != nil {
		sh.rewritten = st.appendFrames(sh.rewritten[:0], l.i, frames)
		sh.one = append(sh.one[:0], sh.rewritten)
		frames = sh.one
		defer sh.dropScratch()
	}
	n, iov, err := writeNonBlocking(st.fd, frames, sh.iov)
	sh.iov = iov
	if err != nil {
		return err
	}
	for len(frames) > 0 && n >= len(frames[0]) {
		n -= len(frames[0])
		frames = frames[1:]
	}
	if len(frames) == 0 {
		return nil
	}
	rest := frames[0][n:]
	if st.rewrite != nil {
		rest = bytes.Clone(rest) // the scratch space is the shard's
	}
	st.out = append(st.out[:0], rest)
	st.out = append(st.out, frames[1:]...)
	if st.state.CompareAndSwap(stateFast, stateDraining) {
		l.sub.t.hub.cfg.Observer.Slow(SlowDrain)
		go st.drain()
	}
	return nil
}

// drain writes what the socket did not take, blocking, and whatever the client missed
// meanwhile, until the stream has caught up with the log and returns to the shared
// writers.
func (st *stream) drain() {
	for {
		if err := st.flush(); err != nil {
			st.fail(err)
			return
		}
		done, err := st.catchUp()
		if err != nil {
			st.fail(err)
			return
		}
		if done {
			return
		}
	}
}

// flush writes st.out, blocking for at most the write timeout.
func (st *stream) flush() error {
	if len(st.out) == 0 {
		return nil
	}
	if err := st.conn.SetWriteDeadline(time.Now().Add(st.timeout)); err != nil {
		return err
	}
	out := st.out
	if _, err := out.WriteTo(st.conn); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			st.legs[0].sub.t.hub.cfg.Observer.Slow(SlowDisconnect)
		}
		return err
	}
	clear(st.out)
	st.out = st.out[:0]
	return st.conn.SetWriteDeadline(time.Time{})
}

// catchUp takes into st.out the frames owed or added to the logs since the last write,
// or, when there are none, hands the stream back to the shared writers and reports done.
// A catch-up owed is computed without st.mu: the shared writers pass over a stream that
// is draining, and must not wait for it.
func (st *stream) catchUp() (done bool, err error) {
	owed := false
	for _, l := range st.legs {
		if l.sub.owes() {
			frames, err := l.sub.settle(st.ctx)
			st.takeNow(l, frames)
			if err != nil {
				return false, err
			}
			owed = true
		}
	}
	if owed {
		return false, nil
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	more := false
	for _, l := range st.legs {
		frames, _, err := l.sub.t.since(l.sub)
		st.take(l, frames)
		if err != nil {
			return false, err
		}
		more = more || len(frames) > 0 || l.sub.owes()
	}
	if !more {
		// Under st.mu no pass writes to the stream before the state changes: a pass
		// that a frame added after a leg was read queues takes st.mu after this, and
		// sees the stream in the fast state. A stream closed meanwhile stays closed.
		st.state.CompareAndSwap(stateDraining, stateFast)
		return true, nil
	}
	return false, nil
}

// serveBlocking writes the subscriptions' frames to a connection that cannot be written
// without blocking, such as TLS, from a goroutine of the stream's own.
func (st *stream) serveBlocking() {
	wakes := make([]<-chan struct{}, len(st.legs))
	var cases []reflect.SelectCase // reused by every wait
	for {
		more := false
		for i, l := range st.legs {
			if wakes[i] != nil {
				continue
			}
			frames, wake, err := l.sub.Ready(st.ctx)
			if err == nil {
				st.takeNow(l, frames)
				err = st.flush()
			}
			if err != nil {
				st.fail(err)
				return
			}
			wakes[i] = wake
			more = more || wake == nil
		}
		if !more && !wakeAny(st.ctx, wakes, &cases) {
			st.fail(st.ctx.Err())
			return
		}
	}
}

// wakeAny waits until one of wakes is closed, and sets it to nil, or until ctx ends, and
// reports whether ctx is still on. It selects over several with *cases, which it reuses.
func wakeAny(ctx context.Context, wakes []<-chan struct{}, cases *[]reflect.SelectCase) bool {
	if len(wakes) == 1 {
		select {
		case <-wakes[0]:
			wakes[0] = nil
			return true
		case <-ctx.Done():
			return false
		}
	}
	cs := append((*cases)[:0], reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ctx.Done())})
	for _, w := range wakes {
		cs = append(cs, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(w)})
	}
	*cases = cs
	chosen, _, _ := reflect.Select(cs)
	if chosen == 0 {
		return false
	}
	wakes[chosen-1] = nil
	return true
}

// watchClose has the stream's writer notice the client leave, or, where it cannot, a
// goroutine of the stream's own.
func (st *stream) watchClose() {
	if sh := st.legs[0].shard; sh != nil && sh.w.closes.add(st) {
		return
	}
	go st.watch()
}

// watch reads from the connection until the client closes it, then ends the stream.
// Clients send nothing on an event stream; anything they do send is discarded.
func (st *stream) watch() {
	buf := make([]byte, 64)
	for {
		if _, err := st.conn.Read(buf); err != nil {
			st.fail(err)
			return
		}
	}
}

// fail ends the stream after err. A client error is logged at debug level; a client
// leaving, the stream's end and the topic's are not errors.
func (st *stream) fail(err error) {
	quiet := errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, ErrClosed) || errors.Is(err, ErrDrained)
	if !quiet && st.state.Load() != stateClosed {
		t := st.legs[0].sub.t
		fields := append(t.hub.cfg.Describe(t.key), zap.String("remote", st.conn.RemoteAddr().String()), zap.Error(err))
		t.hub.cfg.Logger.Debug("stream to client failed", fields...)
	}
	st.close()
}

// end closes the stream as its context ends. At the expiry of a subscription's access it
// first tells the client so, without waiting: a stream the shared writers write, or one
// of its own that blocks, gets ExpiredFrame for each subscription whose access expired;
// one draining a backlog is only closed, and its client learns of the expiry from the 401
// to its reconnection.
func (st *stream) end() {
	st.writeLast()
	st.close()
}

// writeLast writes the ExpiredFrame of each subscription whose access expired as the
// stream's last, if its state lets it be written now.
func (st *stream) writeLast() {
	st.mu.Lock()
	defer st.mu.Unlock()
	switch state := st.state.Load(); {
	case state == stateFast && st.fd >= 0:
		if last := st.expired(); len(last) > 0 {
			_, _, _ = writeNonBlocking(st.fd, [][]byte{last}, nil)
		}
	case state == stateDraining && st.legs[0].shard == nil:
		// serveBlocking writes it: net.Conn serializes this write with its writes,
		// each whole.
		if last := st.expired(); len(last) > 0 && st.conn.SetWriteDeadline(time.Now().Add(time.Second)) == nil {
			_, _ = st.conn.Write(last)
		}
	}
}

// expired returns the ExpiredFrame of each leg whose access has expired, rewritten.
// st.mu is held.
func (st *stream) expired() []byte {
	var out []byte
	now := time.Now()
	for _, l := range st.legs {
		if l.expires.IsZero() || now.Before(l.expires) {
			continue
		}
		out = st.appendFrames(out, l.i, [][]byte{ExpiredFrame(l.expires)})
	}
	return out
}

// close ends the stream: the connection is closed and the subscription ends. It may be
// called more than once, from any goroutine but one holding st.mu. It waits for a shared
// writer's write in progress, so that the socket is never written after it is closed, and
// leaves the close watch first, so that the watch never reads the socket, nor takes its
// events for those of the next socket given the same descriptor.
func (st *stream) close() {
	st.mu.Lock()
	was := st.state.Swap(stateClosed)
	token := st.watchToken
	st.mu.Unlock()
	if was == stateClosed {
		return
	}
	st.cancel()
	if token != 0 {
		st.legs[0].shard.w.closes.remove(token, st.fd)
	}
	_ = st.conn.Close()
	for _, l := range st.legs {
		l.sub.Close()
		if l.shard != nil {
			l.shard.dirty.Store(true)
			l.shard.kick() // the pass drops the leg
		}
	}
	if st.onClose != nil {
		st.onClose()
	}
}
