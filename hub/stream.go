package hub

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// A stream is a client connection handed to the hub with Serve. While it keeps up, the
// shared writers write to it without blocking and it holds no goroutine: its writer's
// close watch notices the client leave. When the client's socket is full, the stream drains the rest
// in a goroutine of its own, catching up from the log (several frames in one write, or one
// catch-up once it fell out of the log), and returns to the shared writers when it has
// caught up.
type stream struct {
	sub     *Subscription
	shard   *shard // nil for a stream with a goroutine of its own
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

// ServeUntil is Serve that also ends the stream at the time end, unless end is zero: when
// the client's access expires. The stream's own timer goes with the stream.
func (s *Subscription) ServeUntil(ctx context.Context, conn net.Conn, end time.Time) {
	h := s.t.hub
	st := &stream{sub: s, conn: conn, fd: socketFD(conn), timeout: h.cfg.WriteTimeout}
	if d := s.limits.Lifetime(); d > 0 && (end.IsZero() || time.Now().Add(d).Before(end)) {
		end = time.Now().Add(d)
	}
	if end.IsZero() {
		st.ctx, st.cancel = context.WithCancel(ctx)
	} else {
		st.ctx, st.cancel = context.WithDeadline(ctx, end)
	}
	st.afterEnd(ctx, end, st.close)
	if !s.onDrain(st.close) {
		st.fail(ErrDrained)
		return
	}
	owed, err := s.settle(st.ctx)
	if err != nil {
		st.fail(err)
		return
	}
	st.out = append(st.out, owed...)
	h.cfg.Observer.Sent(len(owed), size(owed))
	if st.fd >= 0 {
		st.shard = s.t.shardFor()
	}
	if err := st.flush(); err != nil {
		st.fail(err)
		return
	}
	st.watchClose()
	if st.shard != nil {
		st.shard.add(st)
	} else if st.state.CompareAndSwap(stateFast, stateDraining) {
		go st.serveBlocking()
	}
}

// deliver writes the frames of v that st has not read, without blocking, and returns how
// many it sent and their bytes. Run by a shared writer.
func (st *stream) deliver(v *view) (events, bytes int) {
	st.mu.Lock()
	if st.state.Load() != stateFast {
		st.mu.Unlock()
		return 0, 0
	}
	frames, err := st.sub.framesIn(v)
	if err == nil && len(frames) > 0 {
		err = st.writeNow(frames)
		events, bytes = len(frames), size(frames)
	}
	if err == nil && st.sub.owes() && st.state.CompareAndSwap(stateFast, stateDraining) {
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

// writeNow writes frames as far as the socket takes them. What it does not take is kept,
// and the stream starts draining. st.mu is held.
func (st *stream) writeNow(frames [][]byte) error {
	n, iov, err := writeNonBlocking(st.fd, frames, st.shard.iov)
	st.shard.iov = iov
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
	st.out = append(st.out[:0], frames[0][n:])
	st.out = append(st.out, frames[1:]...)
	if st.state.CompareAndSwap(stateFast, stateDraining) {
		st.sub.t.hub.cfg.Observer.Slow(SlowDrain)
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
			st.sub.t.hub.cfg.Observer.Slow(SlowDisconnect)
		}
		return err
	}
	clear(st.out)
	st.out = st.out[:0]
	return st.conn.SetWriteDeadline(time.Time{})
}

// catchUp takes into st.out the frames owed or added to the log since the last write,
// or, when there are none, hands the stream back to the shared writers and reports done.
// A catch-up owed is computed without st.mu: the shared writers pass over a stream that
// is draining, and must not wait for it.
func (st *stream) catchUp() (done bool, err error) {
	if st.sub.owes() {
		frames, err := st.sub.settle(st.ctx)
		st.out = append(st.out, frames...)
		st.sub.t.hub.cfg.Observer.Sent(len(frames), size(frames))
		return false, err
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	t := st.sub.t
	t.mu.RLock()
	if !t.stopped && st.sub.next == t.head {
		// Under t.mu no frame can be added before the state changes: the pass that
		// the next frame queues sees the stream in the fast state. A stream closed
		// meanwhile stays closed.
		st.state.CompareAndSwap(stateDraining, stateFast)
		t.mu.RUnlock()
		return true, nil
	}
	t.mu.RUnlock()
	frames, _, err := t.since(st.sub)
	st.out = append(st.out, frames...)
	t.hub.cfg.Observer.Sent(len(frames), size(frames))
	return false, err
}

// serveBlocking writes the subscription's frames to a connection that cannot be written
// without blocking, such as TLS, from a goroutine of the stream's own.
func (st *stream) serveBlocking() {
	for {
		frames, err := st.sub.Next(st.ctx)
		if err == nil {
			st.out = append(st.out, frames...)
			err = st.flush()
		}
		if err != nil {
			st.fail(err)
			return
		}
	}
}

// watchClose has the stream's writer notice the client leave, or, where it cannot, a
// goroutine of the stream's own.
func (st *stream) watchClose() {
	if st.shard != nil && st.shard.w.closes.add(st) {
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
		t := st.sub.t
		fields := append(t.hub.cfg.Describe(t.key), zap.String("remote", st.conn.RemoteAddr().String()), zap.Error(err))
		t.hub.cfg.Logger.Debug("stream to client failed", fields...)
	}
	st.close()
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
		st.shard.w.closes.remove(token, st.fd)
	}
	_ = st.conn.Close()
	st.sub.Close()
	if st.shard != nil {
		st.shard.dirty.Store(true)
		st.shard.kick() // the pass drops the stream
	}
}
