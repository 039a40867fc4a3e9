package main

import (
	"bufio"
	"errors"
	"fmt"
	"maps"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// maxSeq bounds the change sequence numbers a pool counts deliveries of.
const maxSeq = 1 << 17

// readBufSize is each subscriber's read buffer.
const readBufSize = 4096

// Rec is one event that carried a marker, as one subscriber received it.
type Rec struct {
	Seq  int64
	T0   int64 // publish time, Unix nanoseconds
	Recv int64 // receive time, Unix nanoseconds
	Kind Kind
}

// SubOptions shape how a subscriber connects and reads.
type SubOptions struct {
	LastID string        // sent as Last-Event-ID when not empty
	RcvBuf int           // SO_RCVBUF before connecting, when positive
	Stall  chan struct{} // when not nil, reading stops once ready until it is closed
	Query  string        // appended to the path, e.g. "?format=merge_patch"
	IDs    bool          // keep the event id each seq arrived with (see Sub.IDs)
}

// Pool is a set of raw-TCP SSE subscribers of one server.
type Pool struct {
	addr     string
	path     string
	snapshot bool // a subscriber is ready only after its first event

	subs   []*Sub
	counts []atomic.Int32 // counts[seq]: subscribers whose newest seq reached seq there
	live   atomic.Int32
	failed atomic.Int32
	other  atomic.Int64    // events without a marker, e.g. upstream
	framed [3]atomic.Int32 // responses by body framing: chunked, length, until close
	wg     sync.WaitGroup
	done   chan struct{} // closed by Close
	once   sync.Once
}

// Sub is one subscriber connection.
type Sub struct {
	pool *Pool
	opt  SubOptions
	conn net.Conn
	p    Parser

	mu      sync.Mutex
	recs    []Rec
	lastSeq int64
	ready   bool
	dead    bool
	endErr  error
	lastID  string
	ids     map[int64]string // with SubOptions.IDs: the id of the event that brought each seq
}

// NewPool prepares subscribers of http://addr<path>.
func NewPool(addr, path string, snapshot bool) *Pool {
	return &Pool{addr: addr, path: path, snapshot: snapshot, counts: make([]atomic.Int32, maxSeq), done: make(chan struct{})}
}

// Connect opens n subscribers with at most inFlight connecting at once, and waits until
// each is ready (headers read, and the snapshot when the server sends one) or failed.
func (p *Pool) Connect(n, inFlight int, opt SubOptions, timeout time.Duration) error {
	return p.ConnectEach(n, inFlight, func(int) SubOptions { return opt }, timeout)
}

// ConnectEach is Connect with subscriber i connecting with options opt(i).
func (p *Pool) ConnectEach(n, inFlight int, opt func(i int) SubOptions, timeout time.Duration) error {
	sem := make(chan struct{}, inFlight)
	results := make(chan error, n)
	deadline := time.After(timeout)
	for i := range n {
		select {
		case sem <- struct{}{}:
		case <-deadline:
			return fmt.Errorf("connecting %d subscribers to %s: timed out after %v", n, p.addr, timeout)
		}
		s := &Sub{pool: p, opt: opt(i), lastSeq: -1}
		p.subs = append(p.subs, s)
		p.wg.Add(1)
		go s.run(func(err error) { <-sem; results <- err })
	}
	for range n {
		select {
		case err := <-results:
			if err != nil {
				p.failed.Add(1)
			}
		case <-deadline:
			return fmt.Errorf("connecting %d subscribers to %s: timed out after %v", n, p.addr, timeout)
		}
	}
	return nil
}

// Live is the number of subscribers ready and still connected.
func (p *Pool) Live() int { return int(p.live.Load()) }

// Failed is the number of subscribers that could not connect.
func (p *Pool) Failed() int { return int(p.failed.Load()) }

// Subs returns the subscribers.
func (p *Pool) Subs() []*Sub { return p.subs }

// WaitSeq waits until every live subscriber has received seq (or a later one).
func (p *Pool) WaitSeq(seq int64, timeout time.Duration) error {
	if seq < 0 || seq >= maxSeq {
		return fmt.Errorf("seq %d out of range", seq)
	}
	deadline := time.Now().Add(timeout)
	for {
		got, live := p.counts[seq].Load(), p.live.Load()
		if got >= live {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("change %d reached %d of %d subscribers of %s within %v", seq, got, live, p.addr, timeout)
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// framing classifies a response's body framing as an index into Pool.framed.
func framing(r Response) int {
	switch {
	case r.Chunked:
		return 0
	case r.Length >= 0:
		return 1
	}
	return 2
}

// Framing names the body framings the pool's responses used.
func (p *Pool) Framing() string {
	var names []string
	for i, name := range []string{"chunked", "content-length", "close-delimited"} {
		if n := p.framed[i].Load(); n > 0 {
			names = append(names, fmt.Sprintf("%s %d", name, n))
		}
	}
	return strings.Join(names, ", ")
}

// Close disconnects every subscriber and waits (at most 15 s) for their readers to end.
func (p *Pool) Close() {
	p.once.Do(func() { close(p.done) })
	for _, s := range p.subs {
		s.close()
	}
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
	}
}

// close ends s's connection.
func (s *Sub) close() {
	s.mu.Lock()
	c := s.conn
	s.mu.Unlock()
	if c != nil {
		_ = c.Close()
	}
}

// Recs returns a copy of the events s received.
func (s *Sub) Recs() []Rec {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Rec(nil), s.recs...)
}

// IDs returns the event id each seq arrived with, for a subscriber with SubOptions.IDs.
func (s *Sub) IDs() map[int64]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.ids)
}

// State returns s's newest seq, whether its connection ended, why, and its last event id.
func (s *Sub) State() (lastSeq int64, dead bool, err error, lastID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastSeq, s.dead, s.endErr, s.lastID
}

// run connects, reports readiness once, then reads until the connection ends.
func (s *Sub) run(ready func(error)) {
	defer s.pool.wg.Done()
	body, err := s.open()
	if err != nil {
		s.end(err)
		ready(err)
		return
	}
	s.mu.Lock()
	s.ready = true
	s.mu.Unlock()
	s.pool.live.Add(1)
	ready(nil)
	if s.opt.Stall != nil {
		select {
		case <-s.opt.Stall:
		case <-s.pool.done:
			s.end(errors.New("closed while stalled"))
			return
		}
	}
	for {
		piece, err := body.Next()
		if err != nil {
			s.end(err)
			return
		}
		s.p.Feed(piece)
	}
}

// open dials, sends the request, reads the response head and, when the server sends one,
// the first event.
func (s *Sub) open() (*Body, error) {
	d := net.Dialer{Timeout: 10 * time.Second, Control: s.control}
	conn, err := d.Dial("tcp", s.pool.addr)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.conn = conn
	s.mu.Unlock()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	req := "GET " + s.pool.path + s.opt.Query + " HTTP/1.1\r\nHost: " + s.pool.addr + "\r\nAccept: text/event-stream\r\n"
	if s.opt.LastID != "" {
		req += "Last-Event-ID: " + s.opt.LastID + "\r\n"
	}
	if _, err := conn.Write([]byte(req + "\r\n")); err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(conn, readBufSize)
	head, err := readHead(br)
	if err != nil {
		return nil, err
	}
	if head.Status != 200 {
		return nil, fmt.Errorf("status %d", head.Status)
	}
	s.pool.framed[framing(head)].Add(1)
	s.p.OnEvent = s.onEvent
	body := NewBody(br, head)
	if s.pool.snapshot && s.opt.LastID == "" {
		if err := s.firstEvent(body); err != nil {
			return nil, err
		}
	}
	_ = conn.SetDeadline(time.Time{})
	return body, nil
}

// control sets the receive buffer before the connection is made.
func (s *Sub) control(_, _ string, rc syscall.RawConn) error {
	if s.opt.RcvBuf <= 0 {
		return nil
	}
	var serr error
	err := rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, s.opt.RcvBuf)
	})
	return errors.Join(err, serr)
}

// firstEvent reads until the first event with a marker arrives.
func (s *Sub) firstEvent(body *Body) error {
	for range 10000 {
		s.mu.Lock()
		got := s.lastSeq >= 0
		s.mu.Unlock()
		if got {
			return nil
		}
		piece, err := body.Next()
		if err != nil {
			return fmt.Errorf("before the first event: %w", err)
		}
		s.p.Feed(piece)
	}
	return errors.New("no event with a marker")
}

// onEvent records one received event.
func (s *Sub) onEvent(e Event) {
	now := time.Now().UnixNano()
	if !e.HasMark {
		s.pool.other.Add(1)
		return
	}
	s.mu.Lock()
	s.recs = append(s.recs, Rec{Seq: e.Seq, T0: e.Nanos, Recv: now, Kind: e.Kind})
	newer := e.Seq > s.lastSeq
	if newer {
		s.lastSeq = e.Seq
	}
	if s.opt.Stall != nil || s.opt.LastID != "" {
		s.lastID = s.p.LastID()
	}
	if s.opt.IDs {
		if s.ids == nil {
			s.ids = map[int64]string{}
		}
		s.ids[e.Seq] = s.p.LastID()
	}
	s.mu.Unlock()
	if newer && e.Seq < maxSeq {
		s.pool.counts[e.Seq].Add(1)
	}
}

// end records why s's connection ended.
func (s *Sub) end(err error) {
	s.mu.Lock()
	wasLive := s.ready && !s.dead
	s.dead, s.endErr = true, err
	if s.conn != nil {
		_ = s.conn.Close()
	}
	s.mu.Unlock()
	if wasLive {
		s.pool.live.Add(-1)
	}
}
