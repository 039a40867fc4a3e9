package hub

import (
	"context"

	"github.com/pollsse/caddy-poll-sse/diff"
)

// Document returns the current version of the topic for key, starting the topic with
// newSource if it is not running and waiting, until ctx ends, for its first poll. When the
// upstream is failing and there is no document yet, it returns nil and the failing
// status. The topic then lingers as after any subscriber, so clients that poll this way
// are answered from the kept document without an upstream request of their own. Callers
// are not subscribers: they keep the topic running while they wait, but do not count
// against SetMaxSubscribers.
func (h *Hub) Document(ctx context.Context, key string, newSource func() Source) (*diff.Version, Status, error) {
	t, err := h.join(key, newSource, JSONPatch, false, Limits{})
	if err != nil {
		return nil, Status{}, err
	}
	defer t.leave(JSONPatch)
	t.waitReady()
	for {
		v, st, wake, err := t.document()
		if err != nil || v != nil || !st.OK {
			return v, st, err
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return nil, st, ctx.Err()
		}
	}
}

func (t *Topic) document() (*diff.Version, Status, <-chan struct{}, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.stopped {
		return nil, Status{}, nil, ErrClosed
	}
	return t.cur, t.status, t.wake, nil
}
