package hub

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/pollsse/caddy-poll-sse/diff"
	"github.com/pollsse/caddy-poll-sse/sse"
)

// Answer is what a long-poller gets: the version it is brought to and, when it asked for
// changes and the version it held is in history, the one change that brings it there.
type Answer struct {
	// Version is the current version; nil when the upstream has failed since the topic
	// started and there is no document yet.
	Version *diff.Version
	// Patch takes the holder of the version it named to Version, in the format asked
	// for: an RFC 6902 array or an RFC 7386 object. nil: send the whole document, as
	// when the version held is unknown, or the patch would be no smaller.
	Patch []byte
	// Status is the upstream status clients were last told.
	Status Status
}

// Await is Document for a long-poller that holds version held: it waits until the
// topic's version is another one, for wait at most, and returns the version then current.
// The wait for the topic's first document, if it has none, ends with ctx, as Document's.
// With format JSONPatch or MergePatch, and held in history, the answer also carries the
// change from held, computed once for all who ask for it at once, as a resume's catch-up
// is; with Snapshot it carries none.
//
// A long-poller is not a stream: it is not counted in Subscribers, and the topic's loop
// is all it shares. While it waits it takes one of lim's slots, as a stream does, so a
// route's max_subscribers bounds the requests held open of both kinds; when none is free
// Await returns ErrTooManySubscribers.
func (h *Hub) Await(ctx context.Context, key string, newSource func() Source, held string, f Format, wait time.Duration, lim Limits) (Answer, error) {
	if f < 0 || f >= numFormats {
		return Answer{}, fmt.Errorf("long-polling: %v is not a format", f)
	}
	if !lim.take() {
		return Answer{}, ErrTooManySubscribers
	}
	defer lim.give()
	t, err := h.join(key, newSource, f, false, Limits{})
	if err != nil {
		return Answer{}, err
	}
	defer t.leave(f)
	t.waitReady()
	deadline := time.NewTimer(max(wait, 0))
	defer deadline.Stop()
	fr, c, a, err := t.await(ctx, deadline.C, held, f)
	if err != nil || c == nil && fr == nil {
		return a, err
	}
	if fr == nil {
		if fr, err = t.frameOf(ctx, c); err != nil {
			// The client left or the server is stopping: the document is a correct
			// answer all the same.
			return a, nil
		}
	}
	a.Patch = patchData(fr)
	return a, nil
}

// await waits until the topic has a version other than held, or the deadline passes
// while it has a document, or ctx ends, or it has no document and its upstream fails. With the version it returns the catch-up from
// held in f, as a kept frame or as the catch-up to compute, when held is not current.
func (t *Topic) await(ctx context.Context, deadline <-chan time.Time, held string, f Format) ([]byte, *catchUp, Answer, error) {
	var expired bool
	for {
		t.mu.RLock()
		stopped, cur, st, wake := t.stopped, t.cur, t.status, t.wake
		var fr []byte
		var c *catchUp
		if !stopped && cur != nil && cur.ID != held && held != "" && f != Snapshot {
			fr, c = t.plan(held, f)
		}
		t.mu.RUnlock()
		a := Answer{Version: cur, Status: st}
		switch {
		case stopped:
			return nil, nil, Answer{}, ErrClosed
		case cur == nil && !st.OK, cur != nil && (cur.ID != held || expired):
			return fr, c, a, nil
		}
		select {
		case <-wake:
		case <-deadline:
			expired = true
		case <-ctx.Done():
			return nil, nil, a, nil
		}
	}
}

// patchData returns the data of catch-up frame fr when it is a patch, and nil when it is
// a snapshot: the document then goes as it is.
func patchData(fr []byte) []byte {
	if bytes.HasPrefix(fr, snapshotPrefix) {
		return nil
	}
	msg, err := sse.NewDecoder(bytes.NewReader(fr)).Next()
	if err != nil || msg.Type != namePatch.String() {
		return nil
	}
	return []byte(msg.Data)
}
