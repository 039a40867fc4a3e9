package hub

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// BenchmarkDeliveryWhileResumingOverSockets is BenchmarkDeliveryWhileResuming with its
// 1,000 live subscribers served as a server serves them: each a loopback connection
// handed to the hub with Serve, written by the hub's shared writers. Latency runs from
// Publish to the client reading the end of that change's patch event. The clients read
// with as little processor time as they can: their sockets are read by one goroutine
// per processor, each waiting in epoll on its share of them and looking in what it reads
// only for the ends of events.
//
// The variant resumers=50-from-a-bare-server is the floor the machine sets: the same 50
// clients, in the same closed loop, get the same bytes from a server that does nothing
// but write them, with no hub, no catch-up and no wait. What it costs the live
// subscribers is the cost of the connections alone, on processors the clients share
// with the server.
//
//	go test -run '^$' -bench DeliveryWhileResuming -benchtime 100x ./hub
func BenchmarkDeliveryWhileResumingOverSockets(b *testing.B) {
	b.Run("resumers=0", func(b *testing.B) { benchDeliveryTo(b, 1000, liveOverSockets, 0, nil) })
	b.Run("resumers=50", func(b *testing.B) {
		benchDeliveryTo(b, 1000, liveOverSockets, 50, (*benchPublisher).resumeOverLoopback)
	})
	b.Run("resumers=50-every-100ms", func(b *testing.B) {
		benchDeliveryTo(b, 1000, liveOverSockets, 50, func(p *benchPublisher, ctx context.Context, id string) {
			p.resumeOverLoopbackEvery(ctx, id, 100*time.Millisecond)
		})
	})
	b.Run("resumers=50-from-a-bare-server", func(b *testing.B) {
		benchDeliveryTo(b, 1000, liveOverSockets, 50, (*benchPublisher).resumeFromBareServer)
	})
}

// liveOverSockets connects live clients over loopback, hands each server side to the
// hub with Serve, and reads the client sides from one goroutine per processor, each
// with an epoll instance of its own.
func liveOverSockets(p *benchPublisher, ctx context.Context, wg *sync.WaitGroup, rec *latencies, live int) {
	raiseOpenFiles(p.b, uint64(2*live+1024)) // both ends of each connection, the resumers' and spare
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		p.b.Fatal(err)
	}
	defer ln.Close()
	readers := make([]*epollReader, runtime.GOMAXPROCS(0))
	for i := range readers {
		readers[i] = newEpollReader(p.b, rec)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	for i := range live {
		fd := dialRaw(p.b, port)
		server, err := ln.Accept()
		if err != nil {
			p.b.Fatal(err)
		}
		p.subscribe(p.ids[len(p.ids)-1], JSONPatch).Serve(ctx, server)
		readers[i%len(readers)].add(p.b, fd, i)
	}
	for _, r := range readers {
		context.AfterFunc(ctx, r.wake)
		wg.Go(r.run)
	}
}

// raiseOpenFiles raises the soft limit of open files to at least n, within the hard
// limit.
func raiseOpenFiles(b *testing.B, n uint64) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		b.Fatal(err)
	}
	if lim.Cur >= n {
		return
	}
	if lim.Max < n {
		b.Skipf("needs %d open files, the hard limit is %d", n, lim.Max)
	}
	lim.Cur = n
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		b.Fatal(err)
	}
}

// A fataler ends the run it is given to, as testing.B does.
type fataler interface{ Fatal(args ...any) }

// dialRaw connects a socket to 127.0.0.1:port, outside the runtime's poller, and returns
// it non-blocking.
func dialRaw(b fataler, port int) int {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	if err := unix.Connect(fd, &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		unix.Close(fd)
		b.Fatal(err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		b.Fatal(err)
	}
	return fd
}

// epollReader reads a share of the live clients' sockets, waiting for them in epoll.
type epollReader struct {
	rec     *latencies
	ep      int
	stop    int // an eventfd, written when the run ends
	clients map[int]*eventScanner
	fds     map[int]int
}

const stopToken = -1 // the epoll data of the stop eventfd

func newEpollReader(b fataler, rec *latencies) *epollReader {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		b.Fatal(err)
	}
	stop, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		b.Fatal(err)
	}
	r := &epollReader{rec: rec, ep: ep, stop: stop, clients: map[int]*eventScanner{}, fds: map[int]int{}}
	r.watch(b, stop, stopToken)
	return r
}

func (r *epollReader) watch(b fataler, fd, token int) {
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(token)}
	if err := unix.EpollCtl(r.ep, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		b.Fatal(err)
	}
}

// add has r read client i from fd.
func (r *epollReader) add(b fataler, fd, i int) {
	r.clients[i] = new(eventScanner)
	r.fds[i] = fd
	r.watch(b, fd, i)
}

func (r *epollReader) wake() {
	unix.Write(r.stop, []byte{1, 0, 0, 0, 0, 0, 0, 0})
}

// run reads until woken by wake, then closes every socket it read.
func (r *epollReader) run() {
	defer r.close()
	events := make([]unix.EpollEvent, 128)
	buf := make([]byte, 64<<10)
	for {
		n, err := unix.EpollWait(r.ep, events, -1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return
		}
		for _, ev := range events[:n] {
			i := int(ev.Fd)
			if i == stopToken {
				return
			}
			r.read(i, buf)
		}
	}
}

// read reads what client i has, once: epoll reports a socket with more to read again.
func (r *epollReader) read(i int, buf []byte) {
	fd := r.fds[i]
	n, err := unix.Read(fd, buf)
	if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
		return
	}
	if err != nil || n == 0 { // the stream ended
		unix.EpollCtl(r.ep, unix.EPOLL_CTL_DEL, fd, nil)
		return
	}
	r.clients[i].scan(buf[:n], func() { r.rec.arrived(i) })
}

func (r *epollReader) close() {
	for _, fd := range r.fds {
		unix.Close(fd)
	}
	unix.Close(r.stop)
	unix.Close(r.ep)
}

// eventScanner finds, in a stream read in pieces of any size, the ends of its events,
// and tells the patch events: those whose first line is `event: patch`.
type eventScanner struct {
	head     [len("event: patch\n")]byte // the start of the current event
	headLen  int
	headDone bool
	nl       bool // the last byte scanned was a line feed
}

// scan scans the next piece p of the stream, calling patch at the end of each patch
// event.
func (s *eventScanner) scan(p []byte, patch func()) {
	for len(p) > 0 {
		if !s.headDone {
			n := min(len(p), len(s.head)-s.headLen)
			if k := bytes.IndexByte(p[:n], '\n'); k >= 0 {
				n = k + 1
			}
			s.headLen += copy(s.head[s.headLen:], p[:n])
			s.headDone = s.headLen == len(s.head) || s.head[s.headLen-1] == '\n'
			if s.head[s.headLen-1] == '\n' && s.headLen == 1 {
				s.headLen, s.headDone = 0, false // a blank line outside an event
				s.nl = true
				p = p[n:]
				continue
			}
			s.nl = s.head[s.headLen-1] == '\n'
			p = p[n:]
			continue
		}
		k := bytes.IndexByte(p, '\n')
		if k < 0 {
			s.nl = false
			return
		}
		if k == 0 && s.nl { // a blank line: the event ends
			if string(s.head[:s.headLen]) == "event: patch\n" {
				patch()
			}
			s.headLen, s.headDone, s.nl = 0, false, false
			p = p[1:]
			continue
		}
		s.nl = true
		p = p[k+1:]
	}
}

// TestEventScannerFindsPatchEvents feeds the scanner a stream of events of every kind
// the hub writes, cut in pieces of random sizes, and checks it finds the patch events:
// as many as it holds.
func TestEventScannerFindsPatchEvents(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	kinds := []string{
		"retry: 2000\n\n",
		":\n\n",
		"event: patch\nid: a\ndata: [{\"op\":\"add\"}]\n\n",
		"event: snapshot\nid: b\ndata: {}\n\n",
		"event: patch\n\n",
		"event: patches\ndata: x\n\n",
		"id: c\ndata: " + strings.Repeat("d", 300) + "\n\n",
		"event: patch\ndata: " + strings.Repeat("\nevent: patch", 3) + "\n\n",
	}
	for range 200 {
		var stream bytes.Buffer
		var want []int
		for e := range 50 {
			k := rng.IntN(len(kinds))
			stream.WriteString(kinds[k])
			if strings.HasPrefix(kinds[k], "event: patch\n") {
				want = append(want, e)
			}
		}
		var got int
		var s eventScanner
		for p := stream.Bytes(); len(p) > 0; {
			n := min(len(p), 1+rng.IntN(40))
			s.scan(p[:n], func() { got++ })
			p = p[n:]
		}
		if got != len(want) {
			t.Fatalf("found %d patch events, want %d in %q", got, len(want), stream.String())
		}
	}
}
