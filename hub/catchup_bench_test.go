package hub

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pollsse/caddy-poll-sse/diff"
)

// BenchmarkDeliveryWhileResuming reports the delivery latency of a change to 1,000 live
// subscribers (from Publish to each subscriber's Next), alone and while 50 clients
// resume in a loop from 50 distinct old ids, in merge_patch, over 300 versions of a
// 128 KB document. For comparison: a run where the 50 clients resume at a set rate, each
// once every 100 ms (500 resumes a second, whatever the server's speed), and a run where
// they reconnect in a loop without an id, each getting the snapshot: what any client can
// cost without a catch-up. Each run reports the resumes (or reconnections) served per
// second, and those served while a change was being delivered (resumes-during: from the
// change's commit to its arrival at the last subscriber). Each change is read and
// published as a PollSource does it, so new subscriptions wait while it is delivered to
// handed-over streams. Compare the p99-ms of the runs:
//
//	go test -run '^$' -bench DeliveryWhileResuming -benchtime 100x ./hub
//
// The resuming clients connect over loopback, as clients do: each resume is a new
// connection handed to the hub with Serve, which writes the catch-up to it, and the
// client reads it and hangs up. The in-process variant resumes with Subscribe and Next
// alone, a worst case no network client reaches: with nothing to wait for, its 50
// goroutines take all the processor time they are given.
//
// Here the live subscribers wait in Next, each in a goroutine of its own; see
// BenchmarkDeliveryWhileResumingOverSockets for live subscribers served over loopback
// connections by the hub's shared writers, as a server serves them.
func BenchmarkDeliveryWhileResuming(b *testing.B) {
	b.Run("resumers=0", func(b *testing.B) { benchDelivery(b, 1000, 0, nil) })
	b.Run("resumers=50", func(b *testing.B) { benchDelivery(b, 1000, 50, (*benchPublisher).resumeOverLoopback) })
	b.Run("resumers=50-in-process", func(b *testing.B) { benchDelivery(b, 1000, 50, (*benchPublisher).resumeLoop) })
	b.Run("resumers=50-every-100ms", func(b *testing.B) {
		benchDelivery(b, 1000, 50, func(p *benchPublisher, ctx context.Context, id string) {
			p.resumeOverLoopbackEvery(ctx, id, 100*time.Millisecond)
		})
	})
	b.Run("reconnecting=50-without-id", func(b *testing.B) {
		benchDelivery(b, 1000, 50, func(p *benchPublisher, ctx context.Context, _ string) { p.resumeOverLoopback(ctx, "") })
	})
}

// resumer resumes from id in a loop until ctx ends.
type resumer func(p *benchPublisher, ctx context.Context, id string)

// liveStarter starts live subscribers from the latest version, each recording in rec
// the arrival of every change's patch event, until ctx ends; its goroutines join wg.
type liveStarter func(p *benchPublisher, ctx context.Context, wg *sync.WaitGroup, rec *latencies, live int)

// inProcessLive subscribes live subscribers that each wait in Next in a goroutine of
// their own.
func inProcessLive(p *benchPublisher, ctx context.Context, wg *sync.WaitGroup, rec *latencies, live int) {
	for i := range live {
		sub := p.subscribe(p.ids[len(p.ids)-1], JSONPatch)
		wg.Go(func() { rec.read(ctx, sub, i) })
	}
}

func benchDelivery(b *testing.B, live, resumers int, resume resumer) {
	benchDeliveryTo(b, live, inProcessLive, resumers, resume)
}

func benchDeliveryTo(b *testing.B, live int, startLive liveStarter, resumers int, resume resumer) {
	pub := publishedBench(b)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	rec := newLatencies(live)
	startLive(pub, ctx, &wg, rec, live)
	for r := range resumers {
		id := pub.ids[r*5] // 50 distinct ids, 300 to 55 versions old
		wg.Go(func() { resume(pub, ctx, id) })
	}

	var during int64
	defer func() { b.ReportMetric(float64(during)/float64(b.N), "resumes-during") }()
	b.ResetTimer()
	pub.resumes.Store(0)
	for range b.N {
		var r0 int64
		pub.publishPaced(func() {
			r0 = pub.resumes.Load()
			rec.start()
		})
		if !rec.wait(30 * time.Second) {
			b.Fatal("a change did not reach every subscriber within 30s")
		}
		during += pub.resumes.Load() - r0
	}
	b.StopTimer()
	resumes := pub.resumes.Load()
	cancel()
	wg.Wait()
	b.ReportMetric(float64(resumes)/b.Elapsed().Seconds(), "resumes/s")
	p50, p99 := rec.percentiles()
	b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
}

// publishedBench starts a hub whose topic holds 300 versions of the benchmark's
// document, closed when the benchmark ends.
func publishedBench(b *testing.B) *benchPublisher {
	h := New(Config{Linger: time.Hour, Heartbeat: time.Hour})
	b.Cleanup(h.Close)
	pub := newBenchPublisher(b, h)
	for range 300 {
		pub.publish()
	}
	return pub
}

// benchPublisher publishes versions of a 128 KB document on a topic of its own.
type benchPublisher struct {
	b    *testing.B
	h    *Hub
	t    *Topic
	tr   *diff.Tracker
	rng  *rand.Rand
	vals []int
	ids  []string
	next diff.Change
	keep *Subscription // holds the topic open
	// resumes counts the resumes served: their catch-ups read whole
	resumes atomic.Int64
}

const benchMembers = 1000 // members of about 130 bytes: a 128 KB document

func newBenchPublisher(b *testing.B, h *Hub) *benchPublisher {
	p := &benchPublisher{b: b, h: h, tr: new(diff.Tracker), rng: rand.New(rand.NewPCG(1, 2)), vals: make([]int, benchMembers)}
	p.keep = p.subscribe("", JSONPatch)
	b.Cleanup(p.keep.Close)
	h.mu.Lock()
	p.t = h.topics["k"]
	h.mu.Unlock()
	return p
}

func (p *benchPublisher) subscribe(id string, f Format) *Subscription {
	sub, err := p.h.Subscribe("k", func() Source { return idleSource{} }, id, f)
	if err != nil {
		p.b.Fatal(err)
	}
	return sub
}

// change makes the next version: five members change.
func (p *benchPublisher) change() {
	for range 5 {
		p.vals[p.rng.IntN(benchMembers)]++
	}
	var buf bytes.Buffer
	buf.WriteByte('{')
	pad := strings.Repeat("p", 100)
	for i, v := range p.vals {
		if i > 0 {
			buf.WriteByte(',')
		}
		fmt.Fprintf(&buf, `"m%04d":{"v":%d,"s":"%s"}`, i, v, pad)
	}
	buf.WriteByte('}')
	ch, changed, err := p.tr.Update(buf.Bytes())
	if err != nil || !changed {
		p.b.Fatalf("updating: %v, changed %v", err, changed)
	}
	p.next = ch
}

func (p *benchPublisher) commit() {
	p.t.Publish(p.next)
	p.ids = append(p.ids, p.next.Version.ID)
}

func (p *benchPublisher) publish() { p.change(); p.commit() }

// publishPaced publishes the next change about 20 ms after the last, holding the topic's
// new subscriptions while it makes it, as a PollSource does while it reads a new body.
// It calls stamp just before it publishes.
func (p *benchPublisher) publishPaced(stamp func()) {
	time.Sleep(20 * time.Millisecond)
	done := p.t.preparing()
	p.change()
	stamp()
	p.commit()
	done()
}

// resumeLoop resumes from id, reads the catch-up and leaves, until ctx ends.
func (p *benchPublisher) resumeLoop(ctx context.Context, id string) {
	for ctx.Err() == nil {
		sub, err := p.h.Subscribe("k", func() Source { return idleSource{} }, id, MergePatch)
		if err != nil {
			return
		}
		if _, err := sub.Next(ctx); err == nil {
			p.resumes.Add(1)
		}
		sub.Close()
	}
}

// resumeOverLoopback resumes from id over a new loopback connection at a time, reads
// the catch-up and hangs up, until ctx ends.
func (p *benchPublisher) resumeOverLoopback(ctx context.Context, id string) {
	p.resumeOverLoopbackEvery(ctx, id, 0)
}

// resumeOverLoopbackEvery is resumeOverLoopback starting a resume at most once every
// pace: clients that come back at a set rate, whatever the server's speed.
func (p *benchPublisher) resumeOverLoopbackEvery(ctx context.Context, id string, pace time.Duration) {
	ln := p.clientListener(ctx)
	if ln == nil {
		return
	}
	defer ln.Close()
	// One read buffer for all of this client's resumes: a client's memory is not the
	// server's, and here both share one heap.
	r := bufio.NewReaderSize(nil, 64<<10)
	// The clients start at spread times, as clients do.
	next := time.Now().Add(time.Duration(rand.Int64N(int64(pace) + 1)))
	for ctx.Err() == nil {
		if pace > 0 {
			select {
			case <-time.After(time.Until(next)):
			case <-ctx.Done():
				return
			}
			next = next.Add(pace)
		}
		if !p.resumeOnce(ctx, ln, r, id) {
			return
		}
	}
}

// clientListener returns a loopback listener for a resuming client's connections,
// closed when ctx ends, or nil if it cannot listen.
func (p *benchPublisher) clientListener(ctx context.Context) net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		p.b.Error(err)
		return nil
	}
	context.AfterFunc(ctx, func() { ln.Close() })
	return ln
}

// resumeOnce resumes from id over a new connection to ln, reads the catch-up with r and
// hangs up. It returns false when ln is closed.
func (p *benchPublisher) resumeOnce(ctx context.Context, ln net.Listener, r *bufio.Reader, id string) bool {
	client, server, err := connectTo(ln)
	if err != nil {
		return false
	}
	defer client.Close()
	if sub, err := p.h.Subscribe("k", func() Source { return idleSource{} }, id, MergePatch); err == nil {
		sub.Serve(ctx, server)
	} else {
		server.Close()
	}
	r.Reset(client)
	if readEvent(r) {
		p.resumes.Add(1)
	}
	return true
}

// resumeFromBareServer is resumeOverLoopback against a server that only writes: each
// connection is written the catch-up for id, read from the hub once before the loop,
// and closed.
func (p *benchPublisher) resumeFromBareServer(ctx context.Context, id string) {
	sub := p.subscribe(id, MergePatch)
	frames, err := sub.Next(ctx)
	sub.Close()
	if err != nil {
		return
	}
	body := bytes.Join(frames, nil)
	ln := p.clientListener(ctx)
	if ln == nil {
		return
	}
	defer ln.Close()
	r := bufio.NewReaderSize(nil, 64<<10)
	for ctx.Err() == nil && p.bareOnce(ln, r, body) {
	}
}

// connectTo connects a client to ln and returns both ends.
func connectTo(ln net.Listener) (client, server net.Conn, err error) {
	if client, err = net.Dial("tcp", ln.Addr().String()); err != nil {
		return nil, nil, err
	}
	if server, err = ln.Accept(); err != nil {
		client.Close()
		return nil, nil, err
	}
	return client, server, nil
}

// bareOnce connects to ln, writes body to the connection from the server's end and
// closes it, and reads it from the client's. It returns false when ln is closed.
func (p *benchPublisher) bareOnce(ln net.Listener, r *bufio.Reader, body []byte) bool {
	client, server, err := connectTo(ln)
	if err != nil {
		return false
	}
	defer client.Close()
	_, err = server.Write(body)
	server.Close()
	r.Reset(client)
	if err == nil && readEvent(r) {
		p.resumes.Add(1)
	}
	return true
}

// readEvent reads from r up to the end of its first event with data, the catch-up (the
// retry field comes before it), and reports whether it came whole.
func readEvent(r *bufio.Reader) bool {
	data := false
	for {
		line, err := r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			data = true // only data lines are that long
			continue
		}
		if err != nil {
			return false
		}
		data = data || bytes.HasPrefix(line, []byte("data:"))
		if len(line) == 1 && data {
			return true
		}
	}
}

// latencies records, per subscriber, the time from the start of each change to its
// arrival.
type latencies struct {
	stamp atomic.Int64
	got   atomic.Int32
	n     int32
	done  chan struct{}
	each  [][]time.Duration
}

func newLatencies(n int) *latencies {
	return &latencies{n: int32(n), done: make(chan struct{}, 1), each: make([][]time.Duration, n)}
}

func (l *latencies) start() {
	l.got.Store(0)
	l.stamp.Store(time.Now().UnixNano())
}

func (l *latencies) wait(d time.Duration) bool {
	select {
	case <-l.done:
		return true
	case <-time.After(d):
		return false
	}
}

func (l *latencies) read(ctx context.Context, sub *Subscription, i int) {
	defer sub.Close()
	for {
		frames, err := sub.Next(ctx)
		if err != nil {
			return
		}
		for _, f := range frames {
			if bytes.HasPrefix(f, []byte("event: patch")) {
				l.arrived(i)
			}
		}
	}
}

// arrived records that the current change reached subscriber i. Each subscriber's
// arrivals are recorded by one goroutine at a time.
func (l *latencies) arrived(i int) {
	l.each[i] = append(l.each[i], time.Duration(time.Now().UnixNano()-l.stamp.Load()))
	if l.got.Add(1) == l.n {
		l.done <- struct{}{}
	}
}

func (l *latencies) percentiles() (p50, p99 time.Duration) {
	var all []time.Duration
	for _, e := range l.each {
		all = append(all, e...)
	}
	if len(all) == 0 {
		return 0, 0
	}
	slices.Sort(all)
	return all[len(all)/2], all[len(all)*99/100]
}
