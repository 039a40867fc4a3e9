package hub

import (
	"context"
	"errors"

	"github.com/pollsse/caddy-poll-sse/diff"
	"github.com/pollsse/caddy-poll-sse/poller"
)

// reasonNotJSON is what clients are told of a successful response that is not JSON.
const reasonNotJSON = "response is not JSON"

// PollSource feeds a topic from an upstream poll loop: each successful body goes through
// a diff.Tracker, each failure becomes an upstream status.
type PollSource struct {
	poller  *poller.Poller
	tracker *diff.Tracker
	bad     bool // the last body received was not JSON, or select did not resolve in it
}

// NewPollSource returns a source polling with p and following the documents with tr.
// Each topic needs its own source and tracker.
func NewPollSource(p *poller.Poller, tr *diff.Tracker) *PollSource {
	return &PollSource{poller: p, tracker: tr}
}

// Poke makes the poll loop poll now; see poller.Poller.Poke.
func (s *PollSource) Poke() { s.poller.Poke() }

// Run implements Source.
func (s *PollSource) Run(ctx context.Context, t *Topic) {
	s.poller.Run(ctx, func(r poller.Result) { s.handle(t, r) })
}

func (s *PollSource) handle(t *Topic, r poller.Result) {
	switch {
	case r.Err != nil:
		t.Fail(r.Status, r.Err.Error())
		return
	case r.NotModified && s.bad:
		return // still the body that was not JSON: the failure stands
	case r.NotModified:
		t.Recover()
		return
	}
	ch, changed, err := s.tracker.Update(r.Body)
	if s.bad = err != nil; s.bad {
		t.Fail(r.Status, failReason(err))
		return
	}
	t.Recover()
	if changed {
		t.Publish(ch)
	}
}

// failReason is what clients are told of a body the tracker refused. A select pointer
// that does not resolve is named as the error says; it holds only configured pointers.
func failReason(err error) string {
	if errors.Is(err, diff.ErrSelect) {
		return err.Error()
	}
	return reasonNotJSON
}
