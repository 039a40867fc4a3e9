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
}

// NewPollSource returns a source polling with p. Each topic needs its own source.
func NewPollSource(p *poller.Poller) *PollSource { return &PollSource{poller: p} }

// Run implements Source.
func (s *PollSource) Run(ctx context.Context, t *Topic) {
	s.poller.Run(ctx, func(r poller.Result) { s.handle(t, r) })
}

func (s *PollSource) handle(t *Topic, r poller.Result) {
	if r.Err != nil {
		t.Fail(r.Status, r.Err.Error())
		return
	}
	ch, changed, err := s.tracker.Update(r.Body)
	if err != nil {
		t.Fail(r.Status, reasonNotJSON)
		return
	}
	t.Recover()
	if changed {
		t.Publish(ch)
	}
}
