package hub

import (
	"context"
	"errors"
	"sync"
	"time"

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
	// stopOnDenied ends the loop on a 401 or 403; see StopOnDenied.
	stopOnDenied bool

	mu   sync.Mutex
	last PollStatus
}

// PollStatus describes a poll loop for operators.
type PollStatus struct {
	// LastPoll is when the last poll ended; zero before the first.
	LastPoll time.Time
	// LastResult is PollChanged, PollUnchanged, PollNotModified or PollError.
	LastResult string
	// LastError is why the last poll failed, as clients are told; "" when it did not.
	LastError string
	// Failures counts the polls failed in a row.
	Failures int
	// NextPoll is when the next poll is due; zero when not known.
	NextPoll time.Time
}

// NewPollSource returns a source polling with p and following the documents with tr.
// Each topic needs its own source and tracker.
func NewPollSource(p *poller.Poller, tr *diff.Tracker) *PollSource {
	return &PollSource{poller: p, tracker: tr}
}

// Poke makes the poll loop poll now; see poller.Poller.Poke.
func (s *PollSource) Poke() { s.poller.Poke() }

// Status returns the state of the poll loop.
func (s *PollSource) Status() PollStatus {
	s.mu.Lock()
	st := s.last
	s.mu.Unlock()
	if s.poller != nil {
		st.Failures, st.NextPoll = s.poller.Backoff()
	}
	return st
}

// Run implements Source.
func (s *PollSource) Run(ctx context.Context, t *Topic) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.poller.Run(ctx, func(r poller.Result) {
		result, reason := s.handle(t, r)
		t.hub.cfg.Observer.Poll(result, r.Duration)
		s.record(result, reason)
		if r.Err != nil && s.denied(r.Status) {
			cancel() // no further poll with this credential
			t.hub.deny(t, r.Status)
		}
	})
}

// record keeps the outcome of the last document received, for Status.
func (s *PollSource) record(result, reason string) {
	s.mu.Lock()
	s.last = PollStatus{LastPoll: time.Now(), LastResult: result, LastError: reason}
	s.mu.Unlock()
}

// handle passes one poll's result to t, and returns what it was and, for a failure, why.
func (s *PollSource) handle(t *Topic, r poller.Result) (result, reason string) {
	switch {
	case r.Err != nil:
		t.Fail(r.Status, r.Err.Error())
		return PollError, r.Err.Error()
	case r.NotModified && s.bad:
		return PollNotModified, "" // still the body that was not JSON: the failure stands
	case r.NotModified:
		t.Recover()
		return PollNotModified, ""
	}
	defer t.preparing()()
	start := time.Now()
	ch, changed, err := s.tracker.Update(r.Body)
	if s.bad = err != nil; s.bad {
		t.Fail(r.Status, failReason(err))
		return PollError, failReason(err)
	}
	t.Recover()
	if !changed {
		return PollUnchanged, ""
	}
	t.hub.cfg.Observer.Diff(time.Since(start))
	t.Publish(ch)
	return PollChanged, ""
}

// failReason is what clients are told of a body the tracker refused. A select pointer
// that does not resolve is named as the error says; it holds only configured pointers.
func failReason(err error) string {
	if errors.Is(err, diff.ErrSelect) {
		return err.Error()
	}
	return reasonNotJSON
}
