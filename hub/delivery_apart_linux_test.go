package hub

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkDeliveryToClientsApart is BenchmarkDeliveryWhileResumingOverSockets with
// every client in a process of its own, as a server's clients are: the 1,000 live
// subscribers and the 50 resuming clients run in a child process, the test binary run
// again, and connect over loopback. The benchmark's process is the server alone: it
// accepts the connections, subscribes them and hands them to the hub with Serve. The
// clients then share the processors with the server through the kernel's scheduler, not
// through the server's goroutine scheduler.
//
// Latency runs from Publish to the child reading the end of the change's patch event,
// each stamped with the machine's wall clock.
//
//	go test -run '^$' -bench DeliveryToClientsApart -benchtime 200x ./hub
func BenchmarkDeliveryToClientsApart(b *testing.B) {
	b.Run("resumers=0", func(b *testing.B) { benchApart(b, 1000, 0, 0) })
	b.Run("resumers=50", func(b *testing.B) { benchApart(b, 1000, 50, 0) })
	b.Run("resumers=50-every-100ms", func(b *testing.B) { benchApart(b, 1000, 50, 100*time.Millisecond) })
}

// What the child process is told, in its environment. With apartEnv set, the test
// binary is the clients and nothing else.
const (
	apartEnv       = "POLL_SSE_BENCH_CLIENTS" // the live clients' listener
	apartLiveEnv   = "POLL_SSE_BENCH_LIVE"    // how many live clients
	apartResumeEnv = "POLL_SSE_BENCH_RESUME"  // the resumers' listeners, comma-separated
	apartPaceEnv   = "POLL_SSE_BENCH_PACE"    // how often a resumer resumes; 0 for a closed loop
)

func init() {
	if os.Getenv(apartEnv) != "" {
		os.Exit(runApartClients())
	}
}

func benchApart(b *testing.B, live, resumers int, pace time.Duration) {
	raiseOpenFiles(b, uint64(2*live+1024)) // the child inherits the limit
	pub := publishedBench(b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := &apartServer{pub: pub, ctx: ctx}
	defer srv.close()
	liveLn := srv.listen()
	var addrs []string
	for r := range resumers {
		addrs = append(addrs, srv.serveResumes(pub.ids[r*5])) // 50 distinct ids, 300 to 55 versions old
	}
	child := startApartClients(b, liveLn.Addr().String(), live, addrs, pace)
	defer child.stop(b)
	srv.acceptLive(liveLn, live)
	child.next(b, "its clients connected")

	stamps := make([]int64, 0, b.N)
	var during int64
	b.ResetTimer()
	srv.served.Store(0)
	for range b.N {
		var r0 int64
		pub.publishPaced(func() {
			r0 = srv.served.Load()
			stamps = append(stamps, time.Now().UnixNano())
		})
		child.next(b, "every live client read the change")
		during += srv.served.Load() - r0
	}
	b.StopTimer()
	served := srv.served.Load()
	cancel()
	p50, p99 := apartPercentiles(b, stamps, child.stop(b))
	b.ReportMetric(float64(served)/b.Elapsed().Seconds(), "resumes/s")
	b.ReportMetric(float64(during)/float64(b.N), "resumes-during")
	b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
}

// apartServer is the server's side: it serves the live clients and, on a listener per
// old id, the resuming clients.
type apartServer struct {
	pub    *benchPublisher
	ctx    context.Context
	lns    []net.Listener
	wg     sync.WaitGroup
	served atomic.Int64 // the resumes handed to the hub
}

func (s *apartServer) listen() net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		s.pub.b.Fatal(err)
	}
	s.lns = append(s.lns, ln)
	return ln
}

// acceptLive accepts n live clients from ln and hands each to the hub from the latest
// version.
func (s *apartServer) acceptLive(ln net.Listener, n int) {
	for range n {
		conn, err := ln.Accept()
		if err != nil {
			s.pub.b.Fatal(err)
		}
		s.pub.subscribe(s.pub.ids[len(s.pub.ids)-1], JSONPatch).Serve(s.ctx, conn)
	}
}

// serveResumes hands each connection to a listener of its own to the hub, resuming
// from id, until the listener closes, and returns the listener's address.
func (s *apartServer) serveResumes(id string) string {
	ln := s.listen()
	s.wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			sub, err := s.pub.h.Subscribe("k", func() Source { return idleSource{} }, id, MergePatch)
			if err != nil {
				conn.Close()
				continue
			}
			sub.Serve(s.ctx, conn)
			s.served.Add(1)
		}
	})
	return ln.Addr().String()
}

func (s *apartServer) close() {
	for _, ln := range s.lns {
		ln.Close()
	}
	s.wg.Wait()
}

// apartClients is the child process, seen from the benchmark. It writes a byte to
// events once its clients are connected, then one each time every live client has read
// a change; when its standard input closes, it stops and writes the arrivals to out.
type apartClients struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	events *os.File
	out    chan []byte
}

func startApartClients(b *testing.B, liveAddr string, live int, resume []string, pace time.Duration) *apartClients {
	evR, evW, err := os.Pipe()
	if err != nil {
		b.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		b.Fatal(err)
	}
	c := &apartClients{cmd: exec.Command(os.Args[0], "-test.run=^$"), events: evR, out: make(chan []byte, 1)}
	c.cmd.Env = append(os.Environ(),
		apartEnv+"="+liveAddr,
		apartLiveEnv+"="+strconv.Itoa(live),
		apartResumeEnv+"="+strings.Join(resume, ","),
		apartPaceEnv+"="+pace.String(),
	)
	c.cmd.ExtraFiles = []*os.File{evW, outW} // its fds 3 and 4
	c.cmd.Stderr = os.Stderr
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		b.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	evW.Close()
	outW.Close()
	go func() {
		data, _ := io.ReadAll(outR)
		outR.Close()
		c.out <- data
	}()
	return c
}

// next waits for the child's next byte on events.
func (c *apartClients) next(b *testing.B, what string) {
	var one [1]byte
	if _, err := io.ReadFull(c.events, one[:]); err != nil {
		b.Fatalf("the clients' process ended before %s: %v", what, err)
	}
}

// stop ends the child, once, and returns its arrivals: for each live client, the wall
// clock time at which it read each change.
func (c *apartClients) stop(b *testing.B) [][]int64 {
	if c.stdin == nil {
		return nil
	}
	c.stdin.Close()
	c.stdin = nil
	data := <-c.out
	err := c.cmd.Wait()
	c.events.Close()
	if err != nil {
		b.Fatalf("the clients' process: %v", err)
	}
	arrivals, err := decodeArrivals(data)
	if err != nil {
		b.Fatal(err)
	}
	return arrivals
}

// apartPercentiles returns the percentiles of the latencies of arrivals, the stamps
// being the times at which each change was published.
func apartPercentiles(b *testing.B, stamps []int64, arrivals [][]int64) (p50, p99 time.Duration) {
	l := newLatencies(len(arrivals))
	for i, times := range arrivals {
		if len(times) != len(stamps) {
			b.Fatalf("live client %d read %d changes of %d", i, len(times), len(stamps))
		}
		for k, at := range times {
			l.each[i] = append(l.each[i], time.Duration(at-stamps[k]))
		}
	}
	return l.percentiles()
}

// runApartClients is the child process.
func runApartClients() int {
	live, err := strconv.Atoi(os.Getenv(apartLiveEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, "clients:", err)
		return 2
	}
	pace, _ := time.ParseDuration(os.Getenv(apartPaceEnv))
	events, out := os.NewFile(3, "events"), os.NewFile(4, "arrivals")
	rec := newLatencies(live) // its stamp stays 0: it records wall clock times
	readers := dialApartLive(os.Getenv(apartEnv), live, rec)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, r := range readers {
		context.AfterFunc(ctx, r.wake)
		wg.Go(r.run)
	}
	for addr := range strings.SplitSeq(os.Getenv(apartResumeEnv), ",") {
		if addr != "" {
			wg.Go(func() { resumeApart(ctx, addr, pace) })
		}
	}
	go signalChanges(events, rec)
	io.Copy(io.Discard, os.Stdin) // until the benchmark closes it
	cancel()
	wg.Wait()
	if err := writeArrivals(out, rec); err != nil {
		fmt.Fprintln(os.Stderr, "clients:", err)
		return 1
	}
	return 0
}

// childFatal ends the child process with what it is given.
type childFatal struct{}

func (childFatal) Fatal(args ...any) {
	fmt.Fprintln(os.Stderr, append([]any{"clients:"}, args...)...)
	os.Exit(1)
}

// dialApartLive connects live clients to addr, read by one epoll reader per processor.
func dialApartLive(addr string, live int, rec *latencies) []*epollReader {
	ap, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		childFatal{}.Fatal(err)
	}
	readers := make([]*epollReader, runtime.GOMAXPROCS(0))
	for i := range readers {
		readers[i] = newEpollReader(childFatal{}, rec)
	}
	for i := range live {
		readers[i%len(readers)].add(childFatal{}, dialRaw(childFatal{}, ap.Port), i)
	}
	return readers
}

// signalChanges writes a byte to events now, and then each time every live client has
// read a change. The benchmark publishes the next change only after it reads that byte.
func signalChanges(events *os.File, rec *latencies) {
	for {
		if _, err := events.Write([]byte{1}); err != nil {
			return
		}
		<-rec.done
		rec.got.Store(0)
	}
}

// resumeApart resumes from the listener at addr, reading each catch-up and hanging up,
// at most once every pace, until ctx ends.
func resumeApart(ctx context.Context, addr string, pace time.Duration) {
	r := bufio.NewReaderSize(nil, 64<<10)
	next := time.Now()
	for ctx.Err() == nil {
		if pace > 0 {
			time.Sleep(time.Until(next))
			next = next.Add(pace)
		}
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			return
		}
		r.Reset(conn)
		readEvent(r)
		conn.Close()
	}
}

// writeArrivals writes to out the number of live clients, then for each its number of
// arrivals and their times, each a little-endian int64.
func writeArrivals(out *os.File, rec *latencies) error {
	w := bufio.NewWriter(out)
	put := func(v int64) { binary.Write(w, binary.LittleEndian, v) }
	put(int64(len(rec.each)))
	for _, times := range rec.each {
		put(int64(len(times)))
		for _, t := range times {
			put(int64(t))
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return out.Close()
}

// decodeArrivals reads what writeArrivals wrote.
func decodeArrivals(data []byte) ([][]int64, error) {
	var err error
	read := func() int64 {
		if len(data) < 8 {
			err = fmt.Errorf("the clients' arrivals end early")
			return 0
		}
		v := int64(binary.LittleEndian.Uint64(data))
		data = data[8:]
		return v
	}
	out := make([][]int64, read())
	for i := range out {
		out[i] = make([]int64, read())
		for k := range out[i] {
			out[i][k] = read()
		}
		if err != nil {
			return nil, err
		}
	}
	return out, err
}
