package hub

import (
	"errors"
	"io"
	"sync"

	"golang.org/x/sys/unix"
)

// A closeWatch notices the clients of a writer's streams leave: one goroutine waits in
// epoll on all their sockets, so an idle stream costs no goroutine of its own. Clients
// send nothing on an event stream; whatever they do send is read and discarded.
//
// A socket is registered under a token of its own, never under its descriptor: a
// descriptor is reused as soon as it is closed, and an event read for a stream that has
// just ended must not be taken for the stream that got its descriptor next. A stream is
// removed from the epoll set before its connection is closed (stream.close).
type closeWatch struct {
	epfd int // the epoll set
	wake int // an eventfd, registered under token 0, that ends the wait

	mu      sync.Mutex
	stopped bool
	next    uint64             // the last token given
	streams map[uint64]*stream // by token
	buf     []byte             // discarded client bytes; used under mu
}

// closeEvents are the events a stream is watched for: the client's bytes, which are
// discarded, and its half or full close. EPOLLHUP and EPOLLERR are always reported.
const closeEvents = unix.EPOLLIN | unix.EPOLLRDHUP

// maxDiscards bounds the reads one event makes of a client that keeps sending, so that it
// does not hold up the others: the rest is read on the next wait.
const maxDiscards = 4

// newCloseWatch returns a watch for a writer, or nil if the system refused its epoll set;
// the writer's streams then each have a goroutine of their own that watches them.
func newCloseWatch() *closeWatch {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		_ = unix.Close(epfd)
		return nil
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wake, &ev); err != nil {
		_ = unix.Close(wake)
		_ = unix.Close(epfd)
		return nil
	}
	return &closeWatch{epfd: epfd, wake: wake, streams: map[uint64]*stream{}, buf: make([]byte, 512)}
}

// add watches st's socket and reports whether it does; it does not once the watch has
// stopped. A stream that has already ended needs no watching. st.mu is not held.
func (cw *closeWatch) add(st *stream) bool {
	if cw == nil {
		return false
	}
	st.mu.Lock() // close takes the token under st.mu: it is set before or never
	defer st.mu.Unlock()
	if st.state.Load() == stateClosed {
		return true
	}
	cw.mu.Lock()
	defer cw.mu.Unlock()
	if cw.stopped {
		return false
	}
	cw.next++
	ev := unix.EpollEvent{Events: closeEvents}
	setToken(&ev, cw.next)
	if err := unix.EpollCtl(cw.epfd, unix.EPOLL_CTL_ADD, st.fd, &ev); err != nil {
		return false
	}
	cw.streams[cw.next] = st
	st.watchToken = cw.next
	return true
}

// remove stops watching the socket fd registered under token. It is called before the
// socket is closed, and waits for a read of the socket in progress.
func (cw *closeWatch) remove(token uint64, fd int) {
	cw.mu.Lock()
	defer cw.mu.Unlock()
	if _, ok := cw.streams[token]; !ok {
		return
	}
	delete(cw.streams, token)
	if !cw.stopped {
		_ = unix.EpollCtl(cw.epfd, unix.EPOLL_CTL_DEL, fd, nil)
	}
}

// setToken and token keep a registration's token in the event's data.
func setToken(ev *unix.EpollEvent, t uint64) {
	ev.Fd, ev.Pad = int32(uint32(t)), int32(uint32(t>>32))
}

func token(ev *unix.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}

// run waits for the watched sockets until stop, ending the streams whose clients left.
func (cw *closeWatch) run() {
	defer cw.close()
	events := make([]unix.EpollEvent, 256)
	for {
		n, err := unix.EpollWait(cw.epfd, events, -1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return
		}
		for i := range events[:n] {
			ev := &events[i]
			t := token(ev)
			if t == 0 {
				return
			}
			if st, err := cw.check(t, ev.Events); err != nil {
				st.fail(err)
			}
		}
	}
}

// check reads what the client of the stream registered under t sent, and returns the
// stream and an error when the client has left. It holds cw.mu, so that the socket is
// not closed while it is read.
func (cw *closeWatch) check(t uint64, events uint32) (*stream, error) {
	cw.mu.Lock()
	defer cw.mu.Unlock()
	st := cw.streams[t]
	if st == nil {
		return nil, nil // it ended after the wait returned
	}
	err := discard(st.fd, cw.buf)
	if err == nil && events&(unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		err = io.EOF
	}
	return st, err
}

// discard reads and drops what the non-blocking socket fd holds, a few reads at most. It
// returns io.EOF when the client closed its side, and the socket's error when it failed.
func discard(fd int, buf []byte) error {
	for range maxDiscards {
		n, err := unix.Read(fd, buf)
		switch {
		case errors.Is(err, unix.EINTR):
		case errors.Is(err, unix.EAGAIN):
			return nil
		case err != nil:
			return err
		case n == 0:
			return io.EOF
		}
	}
	return nil
}

// stop ends run.
func (cw *closeWatch) stop() {
	if cw == nil {
		return
	}
	cw.mu.Lock()
	defer cw.mu.Unlock()
	if cw.stopped {
		return
	}
	var one [8]byte
	one[0] = 1 // eventfd takes a native-endian counter; any non-zero value wakes it
	_, _ = unix.Write(cw.wake, one[:])
}

// close releases the epoll set once run has ended. Streams still registered are no
// longer watched: the hub has stopped, and ends them itself.
func (cw *closeWatch) close() {
	cw.mu.Lock()
	defer cw.mu.Unlock()
	cw.stopped = true
	clear(cw.streams)
	_ = unix.Close(cw.wake)
	_ = unix.Close(cw.epfd)
}

// watching returns how many sockets are watched.
func (cw *closeWatch) watching() int {
	if cw == nil {
		return 0
	}
	cw.mu.Lock()
	defer cw.mu.Unlock()
	return len(cw.streams)
}
