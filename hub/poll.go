package hub

import (
	"context"

	"github.com/pollsse/caddy-poll-sse/diff"
	"github.com/pollsse/caddy-poll-sse/poller"
)

// reasonNotJSON is what clients are told of a successful response that is not JSON.
const reasonNotJSON = "response is not JSON"

// PollSource feeds a topic from an upstream poll loop: each successful body goes through
// a diff.Tracker, each failure becomes an upstream status.
type PollSource struct {
	poller  *poller.Poller
	tracker diff.Tracker
	bad     bool // the last body received was not JSON
}

// NewPollSource returns a source polling with p. Each topic needs its own source.
func NewPollSource(p *poller.Poller) *PollSource { return &PollSource{poller: p} }

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
		t.Fail(r.Status, reasonNotJSON)
		return
	}
	t.Recover()
	if changed {
		t.Publish(ch)
	}
}
