package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jsonpatch "github.com/evanphx/json-patch/v5"

	"github.com/pollsse/caddy-poll-sse/sse"
)

const (
	headerTimeout = 10 * time.Second // for the response header of a stream
	closeTimeout  = 5 * time.Second  // for a client's reader to end after close
	inboxSize     = 1024             // messages decoded ahead of the test
)

// errTimeout is returned by next when no message arrived in time.
var errTimeout = errors.New("no message in time")

// versionID is the shape of every event id: short and safe in any header or URL.
var versionID = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// received is one decoded message with what the decoder knew when it was dispatched.
type received struct {
	sse.Message
	retry time.Duration // the decoder's reconnection time when it was dispatched
}

// sseClient is one event-stream connection. A goroutine decodes the stream with
// sse.Decoder and delivers messages on a channel; the test goroutine consumes them with
// next and the wait methods, which keep the client's document as an EventSource user
// would: a snapshot replaces it, a patch is applied with an independent RFC 6902 applier.
type sseClient struct {
	t      testing.TB
	resp   *http.Response
	cancel context.CancelFunc
	tr     *http.Transport
	dials  *atomic.Int32

	in      chan received
	readEnd chan struct{} // closed when the reader goroutine returns
	readErr error         // why the stream ended; valid once in is closed
	endedAt time.Time     // when it ended; valid once in is closed

	// Consumer state, used by the test goroutine only.
	format    string // how patch events are applied: "json_patch" (or "") or "merge_patch"
	doc       []byte
	lastID    string     // id of the latest snapshot or patch
	decoderID string     // the decoder's last event id buffer at the latest message
	events    []received // every message consumed, in order
	ended     bool
}

type dialConfig struct {
	path   string
	query  string // raw query, without '?'
	header http.Header
	decode func(io.Reader) (io.Reader, error)
	doc    []byte // document the client holds before connecting
	docID  string
	format string // the change format the client applies
}

type dialOption func(*dialConfig)

// withLastEventID sends id in the Last-Event-ID header.
func withLastEventID(id string) dialOption {
	return func(c *dialConfig) { c.header.Set("Last-Event-ID", id) }
}

// withRawQuery sets the request's query string as given (already escaped).
func withRawQuery(q string) dialOption { return func(c *dialConfig) { c.query = q } }

func withHeader(k, v string) dialOption { return func(c *dialConfig) { c.header.Set(k, v) } }

// withBodyDecoder wraps the response body, e.g. in a gzip reader, before SSE decoding.
func withBodyDecoder(f func(io.Reader) (io.Reader, error)) dialOption {
	return func(c *dialConfig) { c.decode = f }
}

// withFormat asks for a change format with ?format= (added to the query set so far) and
// makes the client apply patch events in it.
func withFormat(f string) dialOption {
	return func(c *dialConfig) {
		c.format = f
		if c.query != "" {
			c.query += "&"
		}
		c.query += "format=" + f
	}
}

// inFormat makes the client apply patch events in format f, the route's, without asking.
func inFormat(f string) dialOption { return func(c *dialConfig) { c.format = f } }

// withDocument makes the client start out holding doc at version id, as after a drop.
func withDocument(doc []byte, id string) dialOption {
	return func(c *dialConfig) { c.doc, c.docID = doc, id }
}

// dialSSE opens a stream to base and returns once the response header has arrived.
// It does not check the response: tests do.
func dialSSE(t testing.TB, base string, opts ...dialOption) *sseClient {
	t.Helper()
	cfg := dialConfig{path: "/", header: http.Header{"Accept": {"text/event-stream"}}}
	for _, o := range opts {
		o(&cfg)
	}
	c := newClient(t, cfg)
	req := c.request(base, cfg)
	resp, err := (&http.Client{Transport: c.tr}).Do(req)
	if err != nil {
		c.cancel()
		t.Fatalf("GET %s: %v", req.URL, err)
	}
	c.resp = resp
	t.Cleanup(c.close)
	go c.read(resp.Body, cfg.decode)
	return c
}

func newClient(t testing.TB, cfg dialConfig) *sseClient {
	dials := new(atomic.Int32)
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	tr := &http.Transport{
		DisableCompression:    true,
		ResponseHeaderTimeout: headerTimeout,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			return dialer.DialContext(ctx, network, addr)
		},
	}
	return &sseClient{
		t: t, tr: tr, dials: dials,
		in: make(chan received, inboxSize), readEnd: make(chan struct{}),
		doc: cfg.doc, lastID: cfg.docID, format: cfg.format,
	}
}

func (c *sseClient) request(base string, cfg dialConfig) *http.Request {
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	u := base + cfg.path
	if cfg.query != "" {
		u += "?" + cfg.query
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		c.t.Fatalf("request %q: %v", u, err)
	}
	req.Header = cfg.header
	return req
}

// read decodes the stream until it ends or the client is closed.
func (c *sseClient) read(body io.Reader, decode func(io.Reader) (io.Reader, error)) {
	defer close(c.readEnd)
	defer close(c.in)
	defer func() { c.endedAt = time.Now() }()
	r := body
	if decode != nil {
		var err error
		if r, err = decode(body); err != nil {
			c.readErr = fmt.Errorf("decoding body: %w", err)
			return
		}
	}
	dec := sse.NewDecoder(r)
	for {
		m, err := dec.Next()
		if err != nil {
			c.readErr = err
			return
		}
		c.in <- received{Message: m, retry: dec.Retry()}
	}
}

// close ends the connection and waits, within a bound, for the reader to return.
func (c *sseClient) close() {
	c.cancel()
	if c.resp != nil {
		c.resp.Body.Close()
	}
	go func() { // unblock a reader waiting on a full inbox
		for range c.in {
		}
	}()
	select {
	case <-c.readEnd:
	case <-time.After(closeTimeout):
		c.t.Errorf("SSE reader did not end within %v of close", closeTimeout)
	}
	c.tr.CloseIdleConnections()
}

// next consumes one message, applying it to the client's document. It returns errTimeout
// when none arrives within d, and the read error (io.EOF at a clean end) when the stream
// has ended.
func (c *sseClient) next(d time.Duration) (received, error) {
	c.t.Helper()
	if c.ended {
		return received{}, c.readErr
	}
	select { // what has arrived wins over an expired wait
	case r, ok := <-c.in:
		return c.take(r, ok)
	default:
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case r, ok := <-c.in:
		return c.take(r, ok)
	case <-timer.C:
		return received{}, errTimeout
	}
}

func (c *sseClient) take(r received, ok bool) (received, error) {
	c.t.Helper()
	if !ok {
		c.ended = true
		return received{}, c.readErr
	}
	c.consume(r)
	return r, nil
}

// consume applies r to the client's state; a message the client cannot apply fails the test.
func (c *sseClient) consume(r received) {
	c.t.Helper()
	prevDecoderID := c.decoderID
	c.events = append(c.events, r)
	c.decoderID = r.LastEventID
	switch r.Type {
	case "snapshot":
		if !json.Valid([]byte(r.Data)) {
			c.t.Fatalf("snapshot data is not JSON: %.200q", r.Data)
		}
		c.doc, c.lastID = []byte(r.Data), r.LastEventID
	case "patch":
		c.applyPatch(r)
	case "upstream":
		if r.LastEventID != prevDecoderID {
			c.t.Errorf("upstream event moved the last event id from %q to %q", prevDecoderID, r.LastEventID)
		}
	default:
		c.t.Errorf("unexpected event type %q (data %.200q)", r.Type, r.Data)
	}
}

func (c *sseClient) applyPatch(r received) {
	c.t.Helper()
	if c.doc == nil {
		c.t.Fatalf("patch %q arrived before any document: %.200q", r.LastEventID, r.Data)
	}
	switch c.format {
	case "merge_patch":
		c.applyMergePatch(r)
		return
	case "snapshot":
		c.t.Fatalf("patch %q in snapshot format: %.200q", r.LastEventID, r.Data)
	}
	p, err := jsonpatch.DecodePatch([]byte(r.Data))
	if err != nil {
		c.t.Fatalf("patch %q is not an RFC 6902 patch: %v: %.500q", r.LastEventID, err, r.Data)
	}
	doc, err := p.Apply(c.doc)
	if err != nil {
		c.t.Fatalf("patch %q does not apply to the client's document: %v\npatch: %.500s\ndoc: %.500s",
			r.LastEventID, err, r.Data, c.doc)
	}
	c.doc, c.lastID = doc, r.LastEventID
}

// applyMergePatch applies an RFC 7386 merge patch, which must be a JSON object.
func (c *sseClient) applyMergePatch(r received) {
	c.t.Helper()
	if !strings.HasPrefix(r.Data, "{") {
		c.t.Fatalf("patch %q is not an RFC 7386 merge patch object: %.500q", r.LastEventID, r.Data)
	}
	doc, err := jsonpatch.MergePatch(c.doc, []byte(r.Data))
	if err != nil {
		c.t.Fatalf("merge patch %q does not apply: %v\npatch: %.500s\ndoc: %.500s", r.LastEventID, err, r.Data, c.doc)
	}
	c.doc, c.lastID = doc, r.LastEventID
}

// mustNext returns the next message, failing the test if none arrives within d.
func (c *sseClient) mustNext(d time.Duration) received {
	c.t.Helper()
	r, err := c.next(d)
	if err != nil {
		c.t.Fatalf("waiting %v for a message: %v (received so far: %s)", d, err, c.summary())
	}
	return r
}

// waitFor consumes messages until the client's document equals want, and returns them.
func (c *sseClient) waitFor(want []byte, d time.Duration) []received {
	c.t.Helper()
	deadline := time.Now().Add(d)
	var got []received
	for c.doc == nil || !jsonEqual(c.doc, want) {
		r, err := c.next(time.Until(deadline))
		if err != nil {
			c.t.Fatalf("document not reached within %v: %v\nwant: %.1000s\nhave: %.1000s\nreceived: %s",
				d, err, want, c.doc, summarize(got))
		}
		got = append(got, r)
	}
	return got
}

// waitEvent consumes messages until one satisfies match, and returns it with the
// messages consumed before it.
func (c *sseClient) waitEvent(what string, d time.Duration, match func(received) bool) (received, []received) {
	c.t.Helper()
	deadline := time.Now().Add(d)
	var before []received
	for {
		r, err := c.next(time.Until(deadline))
		if err != nil {
			c.t.Fatalf("no %s within %v: %v (received: %s)", what, d, err, summarize(before))
		}
		if match(r) {
			return r, before
		}
		before = append(before, r)
	}
}

// quiet consumes messages for d and returns them; the stream must stay open.
func (c *sseClient) quiet(d time.Duration) []received {
	c.t.Helper()
	deadline := time.Now().Add(d)
	var got []received
	for {
		r, err := c.next(time.Until(deadline))
		if errors.Is(err, errTimeout) {
			return got
		}
		if err != nil {
			c.t.Fatalf("stream ended: %v", err)
		}
		got = append(got, r)
	}
}

// waitEnd consumes messages until the stream ends, and returns the time it ended.
func (c *sseClient) waitEnd(d time.Duration) (time.Time, error) {
	deadline := time.Now().Add(d)
	for {
		_, err := c.next(time.Until(deadline))
		switch {
		case errors.Is(err, errTimeout):
			return time.Time{}, err
		case err != nil || c.ended:
			return c.endedAt, nil
		}
	}
}

func (c *sseClient) summary() string { return summarize(c.events) }

// summarize lists messages as type(id) for failure output.
func summarize(rs []received) string {
	s := fmt.Sprintf("%d message(s)", len(rs))
	for i, r := range rs {
		if i == 20 {
			return s + " …"
		}
		s += fmt.Sprintf(" %s(%s)", r.Type, r.LastEventID)
		if r.Type == "upstream" {
			s += r.Data
		}
	}
	return s
}

// ofType returns the messages of type typ.
func ofType(rs []received, typ string) []received {
	var out []received
	for _, r := range rs {
		if r.Type == typ {
			out = append(out, r)
		}
	}
	return out
}

// typeSequence returns the types of the messages, in order, keeping only the given types.
func typeSequence(rs []received, keep ...string) []string {
	var out []string
	for _, r := range rs {
		if slices.Contains(keep, r.Type) {
			out = append(out, r.Type)
		}
	}
	return out
}

// versionEvents returns the snapshot and patch messages.
func versionEvents(rs []received) []received {
	return append(ofType(rs, "snapshot"), ofType(rs, "patch")...)
}

// upstreamStatus decodes the data of an upstream event.
type upstreamStatus struct {
	OK     bool   `json:"ok"`
	Status int    `json:"status"`
	Error  string `json:"error"`
	Since  string `json:"since"`
}

func decodeStatus(t testing.TB, r received) upstreamStatus {
	t.Helper()
	var s upstreamStatus
	if err := json.Unmarshal([]byte(r.Data), &s); err != nil {
		t.Fatalf("upstream event data %q: %v", r.Data, err)
	}
	return s
}

// isUpstream matches upstream events whose status satisfies ok.
func isUpstream(t testing.TB, ok func(upstreamStatus) bool) func(received) bool {
	return func(r received) bool { return r.Type == "upstream" && ok(decodeStatus(t, r)) }
}

// checkStreamHeaders checks the response of an opened stream.
func checkStreamHeaders(t testing.TB, resp *http.Response) {
	t.Helper()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200", resp.StatusCode)
	}
	for k, want := range map[string]string{
		"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
}

// jsonEqual reports whether a and b are the same JSON value: member order and number
// spelling do not matter, number values compare exactly. (jsonpatch.Equal is not used:
// it panics on arrays holding null.)
func jsonEqual(a, b []byte) bool {
	va, errA := decodeJSON(a)
	vb, errB := decodeJSON(b)
	return errA == nil && errB == nil && reflect.DeepEqual(va, vb)
}

func decodeJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return normalizeNumbers(v), nil
}

// normalizeNumbers replaces each json.Number by the exact rational it spells.
func normalizeNumbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		if r, ok := new(big.Rat).SetString(string(x)); ok {
			return r.RatString()
		}
		return string(x)
	case []any:
		for i := range x {
			x[i] = normalizeNumbers(x[i])
		}
	case map[string]any:
		for k := range x {
			x[k] = normalizeNumbers(x[k])
		}
	}
	return v
}
