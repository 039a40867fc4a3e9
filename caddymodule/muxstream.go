package caddymodule

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/pollsse/caddy-poll-sse/hub"
	"github.com/pollsse/caddy-poll-sse/sse"
)

// A composite id is the version of each stream asked for, in the order of the stream
// parameters, joined by '.': version ids never hold one. A stream with no version yet
// has an empty part. It is made of the characters of a version id, so it is as safe in
// Last-Event-ID, but it is as long as the versions it holds: 23 bytes a stream.
const compositeSep = "."

// splitComposite returns the version each of n streams holds according to id; "" for a
// stream whose part is not a version, and for every stream when id does not have n parts.
func splitComposite(id string, n int) []string {
	held := make([]string, n)
	parts := strings.Split(id, compositeSep)
	if len(parts) != n {
		return held
	}
	for i, p := range parts {
		held[i], _ = sse.ParseLastEventID(p)
	}
	return held
}

// muxConn is one client's multiplexed stream: the versions it holds, and the frames of
// its streams rewritten as mux events. The connection's writer owns it.
type muxConn struct {
	names    []string
	versions [][]byte // each stream's, kept in place: a frame's rewrite allocates nothing
	retried  bool     // a retry field was sent
	buf      []byte
	handover // how the connection goes to the hub's shared writers
}

// newMuxConn returns the connection of streams names, holding the versions held.
func newMuxConn(names, held []string) *muxConn {
	c := &muxConn{names: names, versions: make([][]byte, len(held))}
	for i, v := range held {
		c.versions[i] = []byte(v)
	}
	return c
}

// serve subscribes the client to each stream it asks for, and writes their events until
// the client leaves, the server stops, or one of its streams ends: the client then
// resumes every stream, each with a patch or nothing.
func (m *Mux) serve(w http.ResponseWriter, r *http.Request) error {
	names := r.URL.Query()["stream"]
	if err := m.checkNames(names); err != nil {
		return caddyhttp.Error(http.StatusBadRequest, err)
	}
	if r.Method == http.MethodHead {
		setStreamHeaders(w.Header())
		w.WriteHeader(http.StatusOK)
		return nil
	}
	held := splitComposite(lastEventID(r), len(names))
	c := newMuxConn(names, held)
	subs := make([]*muxSub, len(names))
	var refused [][]byte
	served, code, why := false, 0, error(nil)
	for i, name := range names {
		sub, status, err := m.subscribe(r, name, held[i])
		if err != nil {
			refused = append(refused, refusedFrame(name, status, err))
			if code == 0 {
				code, why = status, fmt.Errorf("stream %s: %w", name, err)
			}
			continue
		}
		defer c.closeSub(sub)
		subs[i] = sub
		served = true
	}
	if !served {
		return refuseMux(w, code, why)
	}
	c.forget = m.track(subs)
	defer c.untrack()
	ctx, cancel := context.WithCancel(r.Context())
	if at := earliestExpiry(subs); !at.IsZero() {
		ctx, cancel = context.WithDeadline(r.Context(), at)
	}
	defer cancel()
	defer context.AfterFunc(m.stop, cancel)()
	setStreamHeaders(w.Header())
	c.prepareHandover(w, r, m.stop)
	w.WriteHeader(http.StatusOK)
	return c.run(ctx, w, subs, bytes.Join(refused, nil))
}

// refuseMux answers a client none of whose streams is served with the status of the
// first refusal, so that its EventSource gives up or backs off rather than reconnecting
// at once to an idle stream; a 503 or 429 says when to come back.
func refuseMux(w http.ResponseWriter, code int, err error) error {
	if code == http.StatusServiceUnavailable || code == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", strconv.Itoa(int(hub.DefaultRetry/time.Second)))
	}
	return caddyhttp.Error(code, err)
}

// muxSub is one stream of a mux connection.
type muxSub struct {
	sub     *hub.Subscription
	wake    <-chan struct{} // closed when the stream may have frames; nil: read it now
	ended   <-chan struct{} // closed when its route's handler is cleaned up
	release func()          // gives back what its route's checks hold for it
	expires time.Time       // when the client's access to it ends; zero if it does not
}

func (s *muxSub) close() {
	s.sub.Close()
	s.release()
}

// checkNames checks the streams a client asks for: at least one, none twice, and no
// more than a mux may carry; those it does not carry are refused one by one.
func (m *Mux) checkNames(names []string) error {
	switch {
	case len(names) == 0:
		return errors.New("no stream asked for: add ?stream=<name>")
	case len(names) > maxMuxStreams:
		return fmt.Errorf("%d streams asked for, over %d", len(names), maxMuxStreams)
	}
	for i, n := range names {
		if slices.Contains(names[:i], n) {
			return fmt.Errorf("stream %q asked for twice", n)
		}
	}
	return nil
}

// subscribe subscribes the client to the stream name, holding version held, as the
// route's own stream would. A stream it cannot serve gets the status the route would
// answer.
// Each stream goes through its route's own checks (see Handler.admit): its view or
// filter, its expiry, and the upstream's refusal of forwarded credentials. Its
// `select.<name>` parameter is its `select`. The stream's release, when it is served,
// is to be called once it ends.
func (m *Mux) subscribe(r *http.Request, name, held string) (*muxSub, int, error) {
	h := m.namedHandler(name)
	if !m.allowed[name] || h == nil {
		return nil, http.StatusNotFound, errors.New("no such stream")
	}
	format, err := h.requestFormat(r)
	if err != nil {
		return nil, http.StatusBadRequest, err
	}
	r, lp, release, err := h.admit(discardHeaders{}, routeRequest(r, name))
	if err != nil {
		return nil, statusOf(err), err
	}
	sub, err := h.hub.Subscribe(lp.key, lp.newSource, held, format)
	switch {
	case err == nil:
		return &muxSub{sub: sub, ended: h.streams.Done(), release: release, expires: expiryOf(r)}, 0, nil
	case errors.Is(err, hub.ErrNoSource):
		release()
		return nil, http.StatusTooManyRequests, err
	default:
		release()
		return nil, http.StatusServiceUnavailable, err
	}
}

// routeRequest returns r as the route of the stream name sees it: its `select` is the
// value of `select.<name>`, and absent without one.
func routeRequest(r *http.Request, name string) *http.Request {
	q := r.URL.Query()
	sel, ok := q[selectParam+"."+name]
	if _, had := q[selectParam]; !ok && !had {
		return r
	}
	delete(q, selectParam)
	if ok {
		q[selectParam] = sel
	}
	u := *r.URL
	u.RawQuery = q.Encode()
	r2 := *r
	r2.URL = &u
	return &r2
}

// statusOf returns the status of a route's refusal.
func statusOf(err error) int {
	var he caddyhttp.HandlerError
	if errors.As(err, &he) && he.StatusCode != 0 {
		return he.StatusCode
	}
	return http.StatusInternalServerError
}

// discardHeaders takes the headers a route would set on a refusal of its own, such as
// Retry-After: a mux refuses a stream with an event, on a response that goes on.
type discardHeaders struct{}

func (discardHeaders) Header() http.Header         { return http.Header{} }
func (discardHeaders) Write(p []byte) (int, error) { return len(p), nil }
func (discardHeaders) WriteHeader(int)             {}

// refusedFrame is the `refused` event naming a stream that is not served.
func refusedFrame(name string, code int, err error) []byte {
	data, _ := json.Marshal(struct {
		Stream string `json:"stream"`
		Status int    `json:"status"`
		Error  string `json:"error"`
	}{name, code, err.Error()})
	ev, _ := sse.NewEvent(sse.MustName("refused"), sse.ID{}, data)
	return ev.Encode()
}

// run writes the refused events, then the frames of the streams as they come, from
// this one goroutine, until ctx ends, a write fails or a stream ends: the client then
// resumes them all. A connection costs one goroutine however many streams it carries.
// Over HTTP/1.x, once the first frames went out, the connection is handed to the hub's
// shared writers instead, when it can be (see muxhandover.go), and costs no goroutine.
func (c *muxConn) run(ctx context.Context, w http.ResponseWriter, subs []*muxSub, refused []byte) error {
	rc := http.NewResponseController(w)
	if err := writeFlush(w, rc, refused); err != nil {
		return nil
	}
	defer func() {
		if !c.handedOver {
			_ = writeFlush(w, rc, c.expired(subs))
		}
	}()
	var cases []reflect.SelectCase
	var of []int // the stream of each triple of cases after the first
	for {
		more, err := c.collect(ctx, subs)
		if err != nil {
			return nil
		}
		if err := writeFlush(w, rc, c.buf); err != nil {
			return nil
		}
		if c.handOver(w, subs) {
			return nil
		}
		if more {
			continue
		}
		cases, of = cases[:0], of[:0]
		cases = append(cases, recvCase(ctx.Done()))
		for i, s := range subs {
			if s != nil {
				cases = append(cases, recvCase(s.wake), recvCase(s.ended), recvCase(s.sub.Drained()))
				of = append(of, i)
			}
		}
		chosen, _, _ := reflect.Select(cases)
		if chosen == 0 || (chosen-1)%3 != 0 {
			return nil // the client left, a stream's route was replaced, or it was drained
		}
		subs[of[(chosen-1)/3]].wake = nil
	}
}

// collect reads the streams that may have frames into c.buf, rewritten, and reports
// whether one had frames, and may have more at once.
func (c *muxConn) collect(ctx context.Context, subs []*muxSub) (bool, error) {
	c.buf = c.buf[:0]
	more := false
	for i, s := range subs {
		if s == nil || s.wake != nil {
			continue
		}
		frames, wake, err := s.sub.Ready(ctx)
		if err != nil {
			return false, err
		}
		for _, f := range frames {
			c.buf = c.rewrite(c.buf, i, f)
		}
		s.wake = wake
		more = more || wake == nil
	}
	return more, nil
}

func recvCase(ch <-chan struct{}) reflect.SelectCase {
	return reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ch)}
}

// muxWriteTimeout bounds a write to a mux client: one that takes no bytes for that long,
// two default heartbeats, is disconnected, and resumes.
const muxWriteTimeout = 2 * hub.DefaultHeartbeat

// writeFlush writes p, if any, and flushes it, within muxWriteTimeout.
func writeFlush(w http.ResponseWriter, rc *http.ResponseController, p []byte) error {
	if len(p) == 0 {
		return nil
	}
	if err := rc.SetWriteDeadline(time.Now().Add(muxWriteTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	if _, err := w.Write(p); err != nil {
		return err
	}
	return rc.Flush()
}

// rewrite appends frame f of stream i as the mux sends it: its event named
// `<stream>.<event>`, its id the composite of the versions held once it is applied. A
// retry field goes once a connection; comments go as they are.
func (c *muxConn) rewrite(dst []byte, i int, f []byte) []byte {
	start := len(dst)
	for line := range bytes.Lines(f) {
		switch {
		case bytes.HasPrefix(line, []byte("event: ")):
			dst = append(dst, "event: "...)
			dst = append(dst, c.names[i]...)
			dst = append(dst, '.')
			dst = append(dst, line[len("event: "):]...)
		case bytes.HasPrefix(line, []byte("id: ")):
			c.versions[i] = append(c.versions[i][:0], bytes.TrimSuffix(line[len("id: "):], []byte("\n"))...)
			dst = append(dst, "id: "...)
			for j, v := range c.versions {
				if j > 0 {
					dst = append(dst, compositeSep...)
				}
				dst = append(dst, v...)
			}
			dst = append(dst, '\n')
		case bytes.HasPrefix(line, []byte("retry: ")):
			if c.retried {
				return dst[:start]
			}
			c.retried = true
			dst = append(dst, line...)
		default:
			dst = append(dst, line...)
		}
	}
	return dst
}

// earliestExpiry returns when the first of subs expires: zero if none does.
func earliestExpiry(subs []*muxSub) time.Time {
	var at time.Time
	for _, s := range subs {
		if s != nil && !s.expires.IsZero() && (at.IsZero() || s.expires.Before(at)) {
			at = s.expires
		}
	}
	return at
}

// expired returns the last events of the streams whose access has expired, as their
// routes' own streams end: `<name>.upstream` with status 401. The connection then ends,
// and its client's reconnection gets each of those streams refused with 401 and the
// others resumed.
func (c *muxConn) expired(subs []*muxSub) []byte {
	c.buf = c.buf[:0]
	now := time.Now()
	for i, s := range subs {
		if s != nil && !s.expires.IsZero() && !now.Before(s.expires) {
			c.buf = c.rewrite(c.buf, i, hub.ExpiredFrame(s.expires))
		}
	}
	return c.buf
}
