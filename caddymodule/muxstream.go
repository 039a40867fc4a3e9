package caddymodule

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
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

// muxBatch is what one stream of a connection has to send: its frames, or nil when the
// stream ended.
type muxBatch struct {
	i      int
	frames [][]byte
}

// muxConn is one client's multiplexed stream: the versions it holds, and the frames of
// its streams rewritten as mux events. The connection's writer owns it.
type muxConn struct {
	names    []string
	versions []string
	retried  bool // a retry field was sent
	buf      []byte
}

// serve subscribes the client to each stream it asks for, and writes their events until
// the client leaves, the server stops, or one of its streams ends: the client then
// resumes every stream, each with a patch or nothing.
func (m *Mux) serve(w http.ResponseWriter, r *http.Request) error {
	names := r.URL.Query()["stream"]
	if err := m.checkNames(names); err != nil {
		return caddyhttp.Error(http.StatusBadRequest, err)
	}
	setStreamHeaders(w.Header())
	if r.Method == http.MethodHead {
		w.WriteHeader(http.StatusOK)
		return nil
	}
	c := &muxConn{names: names, versions: splitComposite(lastEventID(r), len(names))}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	subs := make([]*hub.Subscription, len(names))
	var refused [][]byte
	for i, name := range names {
		sub, code, err := m.subscribe(r, name, c.versions[i])
		if err != nil {
			refused = append(refused, refusedFrame(name, code, err))
			continue
		}
		subs[i] = sub
		defer sub.Close()
	}
	w.WriteHeader(http.StatusOK)
	out := make(chan muxBatch, len(names)) // one batch of each stream in flight at most
	var wg sync.WaitGroup
	for i, sub := range subs {
		if sub != nil {
			h := namedHandler(names[i])
			wg.Go(func() { pumpMux(ctx, h, i, sub, out) })
		}
	}
	defer wg.Wait()
	defer cancel()
	return c.write(ctx, w, refused, out)
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
func (m *Mux) subscribe(r *http.Request, name, held string) (*hub.Subscription, int, error) {
	h := namedHandler(name)
	if !m.allowed[name] || h == nil {
		return nil, http.StatusNotFound, errors.New("no such stream")
	}
	lp, err := h.loopFor(r)
	if err != nil {
		return nil, http.StatusBadRequest, err
	}
	format, err := h.requestFormat(r)
	if err != nil {
		return nil, http.StatusBadRequest, err
	}
	sub, err := h.hub.Subscribe(lp.key, lp.newSource, held, format)
	switch {
	case err == nil:
		return sub, 0, nil
	case errors.Is(err, hub.ErrNoSource):
		return nil, http.StatusTooManyRequests, err
	default:
		return nil, http.StatusServiceUnavailable, err
	}
}

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

// pumpMux passes the frames of stream i to out until ctx ends, or the stream ends, as
// when its topic stops or its route is replaced, which it tells with an empty batch.
func pumpMux(ctx context.Context, h *Handler, i int, sub *hub.Subscription, out chan<- muxBatch) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(h.streams, cancel)()
	for {
		frames, err := sub.Next(sctx)
		b := muxBatch{i: i, frames: slices.Clone(frames)}
		if err != nil {
			b.frames = nil
		}
		select {
		case out <- b:
		case <-ctx.Done():
			return
		}
		if err != nil {
			return
		}
	}
}

// write writes the refused events, then the batches of the streams, until ctx ends, a
// write fails or a stream ends.
func (c *muxConn) write(ctx context.Context, w http.ResponseWriter, refused [][]byte, out <-chan muxBatch) error {
	rc := http.NewResponseController(w)
	if err := writeFlush(w, rc, bytes.Join(refused, nil)); err != nil {
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case b := <-out:
			if b.frames == nil {
				return nil // a stream ended: the client resumes them all
			}
			c.buf = c.buf[:0]
			for _, f := range b.frames {
				c.buf = c.rewrite(c.buf, b.i, f)
			}
			if err := writeFlush(w, rc, c.buf); err != nil {
				return nil
			}
		}
	}
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
			c.versions[i] = string(bytes.TrimSuffix(line[len("id: "):], []byte("\n")))
			dst = append(dst, "id: "...)
			dst = append(dst, strings.Join(c.versions, compositeSep)...)
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
