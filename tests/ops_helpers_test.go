package tests

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const (
	rawTimeout   = 10 * time.Second // for a raw stream's header and first event
	rawBufSize   = 1 << 10          // read buffer of a raw stream
	dialWorkers  = 32               // goroutines opening or checking raw streams at once
	pollEvery    = 50 * time.Millisecond
	adminTimeout = 10 * time.Second // for an admin API condition to come true
)

// rawSSE is a lean event-stream client over a plain TCP connection, for tests that hold
// thousands of streams: no goroutine of its own and one small read buffer. Over HTTP/1.1
// the stream body is close-delimited, so events are read straight off the connection.
type rawSSE struct {
	conn   net.Conn
	br     *bufio.Reader
	status int
	header textproto.MIMEHeader
	lastID string        // the last event id received, or the one sent when none was
	retry  time.Duration // the last `retry:` received
}

// rawEvent is one dispatched event of a raw stream.
type rawEvent struct {
	typ, id, data string
}

// dialRaw opens a stream to path on addr with the given extra request header fields and
// reads the response header.
func dialRaw(addr, path string, header map[string]string) (*rawSSE, error) {
	conn, err := net.DialTimeout("tcp", addr, rawTimeout)
	if err != nil {
		return nil, err
	}
	s := &rawSSE{conn: conn, br: bufio.NewReaderSize(conn, rawBufSize), lastID: header["Last-Event-ID"]}
	if err := s.handshake(addr, path, header); err != nil {
		conn.Close()
		return nil, err
	}
	return s, nil
}

func (s *rawSSE) handshake(addr, path string, header map[string]string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n", path, addr)
	for k, v := range header {
		fmt.Fprintf(&b, "%s: %s\r\n", k, v)
	}
	b.WriteString("\r\n")
	_ = s.conn.SetDeadline(time.Now().Add(rawTimeout))
	if _, err := io.WriteString(s.conn, b.String()); err != nil {
		return err
	}
	tp := textproto.NewReader(s.br)
	line, err := tp.ReadLine()
	if err != nil {
		return fmt.Errorf("reading status line: %w", err)
	}
	proto, rest, _ := strings.Cut(line, " ")
	code, _, _ := strings.Cut(rest, " ")
	if s.status, err = strconv.Atoi(code); err != nil || !strings.HasPrefix(proto, "HTTP/1.") {
		return fmt.Errorf("bad status line %q", line)
	}
	if s.header, err = tp.ReadMIMEHeader(); err != nil {
		return fmt.Errorf("reading header: %w", err)
	}
	if te := s.header.Get("Transfer-Encoding"); te != "" && te != "identity" {
		return fmt.Errorf("Transfer-Encoding %q; want a close-delimited stream body", te)
	}
	return nil
}

// next returns the next event, whatever its type, that arrives before deadline.
func (s *rawSSE) next(deadline time.Time) (rawEvent, error) {
	_ = s.conn.SetReadDeadline(deadline)
	ev := rawEvent{}
	var data []string
	for {
		line, err := s.br.ReadString('\n')
		if err != nil {
			return rawEvent{}, err
		}
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		if line == "" {
			if data == nil {
				ev.typ = ""
				continue
			}
			if ev.typ == "" {
				ev.typ = "message"
			}
			ev.id, ev.data = s.lastID, strings.Join(data, "\n")
			return ev, nil
		}
		name, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch name {
		case "event":
			ev.typ = value
		case "data":
			data = append(data, value)
		case "id":
			s.lastID = value
		case "retry":
			if ms, err := strconv.Atoi(value); err == nil {
				s.retry = time.Duration(ms) * time.Millisecond
			}
		}
	}
}

// nextVersion returns the next snapshot or patch, skipping upstream events.
func (s *rawSSE) nextVersion(deadline time.Time) (rawEvent, error) {
	for {
		ev, err := s.next(deadline)
		if err != nil || ev.typ == "snapshot" || ev.typ == "patch" {
			return ev, err
		}
	}
}

// waitEnd reads and discards until the server ends the connection, and reports whether
// that happened before deadline.
func (s *rawSSE) waitEnd(deadline time.Time) error {
	_ = s.conn.SetReadDeadline(deadline)
	_, err := io.Copy(io.Discard, s.br)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("still open at the deadline")
	}
	return nil
}

func (s *rawSSE) close() { s.conn.Close() }

// eachParallel runs f(i) for every i in [0, n) on at most workers goroutines and returns
// the errors, one per failed i, in no particular order.
func eachParallel(n, workers int, f func(i int) error) []error {
	var (
		next atomic.Int64
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	for range min(n, workers) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				if err := f(i); err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("stream %d: %w", i, err))
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	return errs
}

// failErrs fails the test with the count and the first few of errs, if there are any.
func failErrs(t testing.TB, what string, errs []error) {
	t.Helper()
	if len(errs) == 0 {
		return
	}
	t.Fatalf("%s: %d failure(s), e.g. %v", what, len(errs), errors.Join(errs[:min(len(errs), 3)]...))
}

// openRawStreams opens n streams to path on addr, header(i) giving stream i's extra
// header fields (nil for none), and checks that each was answered 200. They are closed
// when the test ends.
func openRawStreams(t testing.TB, addr, path string, n int, header func(i int) map[string]string) []*rawSSE {
	t.Helper()
	streams := make([]*rawSSE, n)
	t.Cleanup(func() { closeRaw(streams) })
	errs := eachParallel(n, dialWorkers, func(i int) error {
		var h map[string]string
		if header != nil {
			h = header(i)
		}
		s, err := dialRaw(addr, path, h)
		if err != nil {
			return err
		}
		streams[i] = s
		if s.status != http.StatusOK {
			return fmt.Errorf("status %d", s.status)
		}
		return nil
	})
	failErrs(t, "opening streams", errs)
	return streams
}

// firstEvents reads the first snapshot or patch of every stream and returns them.
func firstEvents(t testing.TB, streams []*rawSSE, d time.Duration) []rawEvent {
	t.Helper()
	deadline := time.Now().Add(d)
	evs := make([]rawEvent, len(streams))
	errs := eachParallel(len(streams), dialWorkers, func(i int) error {
		var err error
		evs[i], err = streams[i].nextVersion(deadline)
		return err
	})
	failErrs(t, "first event", errs)
	return evs
}

func closeRaw(streams []*rawSSE) {
	for _, s := range streams {
		if s != nil {
			s.close()
		}
	}
}

// allEnd waits until every stream has been ended by the server, at most until deadline,
// and returns how long after start the last one was seen to end.
func allEnd(t testing.TB, what string, streams []*rawSSE, start, deadline time.Time) time.Duration {
	t.Helper()
	var mu sync.Mutex
	var last time.Duration
	errs := eachParallel(len(streams), dialWorkers, func(i int) error {
		if err := streams[i].waitEnd(deadline); err != nil {
			return err
		}
		mu.Lock()
		last = max(last, time.Since(start))
		mu.Unlock()
		return nil
	})
	failErrs(t, what+": streams ending", errs)
	return last
}

// eventually checks cond every pollEvery until it holds or d has passed, and reports
// whether it held.
func eventually(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(pollEvery)
	}
}

// load posts config to the admin API's /load and returns how long the call took.
func load(t testing.TB, c *caddyProc, config []byte, header http.Header) time.Duration {
	t.Helper()
	start := time.Now()
	status, body, err := c.admin(http.MethodPost, "/load", "text/caddyfile", config, header)
	took := time.Since(start)
	if err != nil || status != http.StatusOK {
		t.Fatalf("POST /load: status %d, %v: %s", status, err, body)
	}
	return took
}

// loopInfo is one entry of the admin API's GET /poll_sse/loops.
type loopInfo struct {
	Route       string   `json:"route"`
	Upstream    string   `json:"upstream"`
	Forward     []string `json:"forward"`
	Subscribers int      `json:"subscribers"`
	LastPoll    *string  `json:"last_poll"`
	LastResult  string   `json:"last_result"`
	LastError   *string  `json:"last_error"`
	Version     *string  `json:"version"`
	History     int      `json:"history"`
	Failures    int      `json:"failures"`
	NextPoll    *string  `json:"next_poll"`
	UpstreamOK  bool     `json:"upstream_ok"`
	Draining    int      `json:"draining"`
	Retired     bool     `json:"retired"`
}

func (l loopInfo) String() string {
	b, _ := json.Marshal(l)
	return string(b)
}

// loops gets GET /poll_sse/loops, checks its form and order, and returns its loops and
// its body.
func loops(t testing.TB, c *caddyProc) ([]loopInfo, string) {
	t.Helper()
	ls, body, err := fetchLoops(c)
	if err != nil {
		t.Fatalf("GET /poll_sse/loops: %v", err)
	}
	return ls, body
}

func fetchLoops(c *caddyProc) ([]loopInfo, string, error) {
	status, body, err := c.admin(http.MethodGet, "/poll_sse/loops", "", nil, nil)
	if err != nil {
		return nil, body, err
	}
	if status != http.StatusOK {
		return nil, body, fmt.Errorf("status %d, want 200: %.300s", status, body)
	}
	var out struct {
		Loops *[]loopInfo `json:"loops"`
	}
	if err := json.Unmarshal([]byte(body), &out); err != nil || out.Loops == nil {
		return nil, body, fmt.Errorf("body is not {\"loops\":[…]} (%v): %.300s", err, body)
	}
	if !slices.IsSortedFunc(*out.Loops, compareLoops) {
		return nil, body, fmt.Errorf("loops not sorted by route then upstream: %.500s", body)
	}
	return *out.Loops, body, nil
}

func compareLoops(a, b loopInfo) int {
	if c := strings.Compare(a.Route, b.Route); c != 0 {
		return c
	}
	return strings.Compare(a.Upstream, b.Upstream)
}

// loopsContentType returns the Content-Type of GET /poll_sse/loops.
func loopsContentType(t testing.TB, c *caddyProc) string {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get("http://" + c.adminAddr + "/poll_sse/loops")
	if err != nil {
		t.Fatalf("GET /poll_sse/loops: %v", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<20))
	return resp.Header.Get("Content-Type")
}

// routeLoops returns the loops of route.
func routeLoops(ls []loopInfo, route string) []loopInfo {
	var out []loopInfo
	for _, l := range ls {
		if l.Route == route {
			out = append(out, l)
		}
	}
	return out
}

// waitLoops polls GET /poll_sse/loops until cond holds for the loops of route, and
// returns them; it fails the test with what when adminTimeout passes first.
func waitLoops(t testing.TB, c *caddyProc, route, what string, cond func([]loopInfo) bool) []loopInfo {
	t.Helper()
	var last []loopInfo
	var lastErr error
	ok := eventually(adminTimeout, func() bool {
		ls, _, err := fetchLoops(c)
		if lastErr = err; err != nil {
			return false
		}
		last = routeLoops(ls, route)
		return cond(last)
	})
	if !ok {
		t.Fatalf("GET /poll_sse/loops: %s did not happen within %v (last error: %v); loops of route %q: %v",
			what, adminTimeout, lastErr, route, last)
	}
	return last
}

// oneLoopWith reports whether there is exactly one loop and it has n subscribers.
func oneLoopWith(n int) func([]loopInfo) bool {
	return func(ls []loopInfo) bool { return len(ls) == 1 && ls[0].Subscribers == n }
}

// goroutines returns Caddy's goroutine count from the admin API's pprof endpoint.
func goroutines(t testing.TB, c *caddyProc) int {
	t.Helper()
	status, body, err := c.admin(http.MethodGet, "/debug/pprof/goroutine?debug=1", "", nil, nil)
	if err != nil || status != http.StatusOK {
		t.Fatalf("GET /debug/pprof/goroutine: status %d, %v", status, err)
	}
	first, _, _ := strings.Cut(body, "\n")
	n, err := strconv.Atoi(strings.TrimPrefix(first, "goroutine profile: total "))
	if err != nil {
		t.Fatalf("goroutine profile starts with %q", first)
	}
	return n
}

// sample is one line of the Prometheus text format.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// metricSet is a scrape of /metrics.
type metricSet []sample

// value sums the samples of name that carry every given label (name, value, name,
// value…); ok is false when none does.
func (m metricSet) value(name string, labels ...string) (v float64, ok bool) {
	for _, s := range m {
		if s.name == name && s.has(labels) {
			v, ok = v+s.value, true
		}
	}
	return v, ok
}

func (s sample) has(labels []string) bool {
	for i := 0; i+1 < len(labels); i += 2 {
		if v, ok := s.labels[labels[i]]; !ok || v != labels[i+1] {
			return false
		}
	}
	return true
}

// scrape gets the admin API's /metrics and parses it.
func scrape(t testing.TB, c *caddyProc) (metricSet, string) {
	t.Helper()
	status, body, err := c.admin(http.MethodGet, "/metrics", "", nil, nil)
	if err != nil || status != http.StatusOK {
		t.Fatalf("GET /metrics: status %d, %v: %.300s", status, err, body)
	}
	m, err := parseMetrics(body)
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	return m, body
}

// metricTypes returns the type of each family declared by a # TYPE line.
func metricTypes(text string) map[string]string {
	types := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			types[f[2]] = f[3]
		}
	}
	return types
}

// parseMetrics parses the Prometheus text exposition format, comments left out.
func parseMetrics(text string) (metricSet, error) {
	var out metricSet
	for n, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		s, err := parseSample(line)
		if err != nil {
			return nil, fmt.Errorf("line %d %q: %w", n+1, line, err)
		}
		out = append(out, s)
	}
	return out, nil
}

func parseSample(line string) (sample, error) {
	s := sample{labels: map[string]string{}}
	i := strings.IndexAny(line, "{ ")
	if i <= 0 {
		return s, errors.New("no value")
	}
	s.name, line = line[:i], line[i:]
	if line[0] == '{' {
		var err error
		if line, err = parseLabels(line[1:], s.labels); err != nil {
			return s, err
		}
	}
	fields := strings.Fields(line)
	if len(fields) == 0 {
		return s, errors.New("no value")
	}
	var err error
	s.value, err = strconv.ParseFloat(fields[0], 64)
	return s, err
}

// parseLabels reads name="value" pairs up to the closing brace into labels and returns
// what follows the brace.
func parseLabels(s string, labels map[string]string) (string, error) {
	for {
		s = strings.TrimLeft(s, " ,")
		if strings.HasPrefix(s, "}") {
			return s[1:], nil
		}
		eq := strings.Index(s, `="`)
		if eq <= 0 {
			return "", fmt.Errorf("bad label at %q", s)
		}
		name := s[:eq]
		value, rest, err := labelValue(s[eq+2:])
		if err != nil {
			return "", err
		}
		labels[name], s = value, rest
	}
}

// labelValue reads an escaped label value up to its closing quote.
func labelValue(s string) (string, string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			return b.String(), s[i+1:], nil
		case c == '\\' && i+1 < len(s):
			i++
			if s[i] == 'n' {
				b.WriteByte('\n')
			} else {
				b.WriteByte(s[i])
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", "", errors.New("unterminated label value")
}

// moduleLogs returns the lines of Caddy's output that are JSON log entries of the
// poll_sse module.
func moduleLogs(out string) []string {
	var mine []string
	for _, line := range strings.Split(out, "\n") {
		var e struct {
			Logger string `json:"logger"`
		}
		if json.Unmarshal([]byte(line), &e) == nil && strings.Contains(e.Logger, "poll_sse") {
			mine = append(mine, line)
		}
	}
	return mine
}
