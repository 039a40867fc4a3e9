package hub

import (
	"time"

	"github.com/pollsse/caddy-poll-sse/diff"
	"github.com/pollsse/caddy-poll-sse/poller"
)

// Feed passes bodies polled elsewhere into a topic, as a PollSource does with its own
// polls: each successful body goes through a diff.Tracker, each failure becomes an
// upstream status. A source that shares its loop with other nodes, reading the bodies
// from a store, publishes through one.
type Feed struct {
	src PollSource // with no poller of its own
}

// NewFeed returns a feed following the documents with tr. Each topic needs its own feed
// and tracker.
func NewFeed(tr *diff.Tracker) *Feed {
	return &Feed{src: PollSource{tracker: tr}}
}

// Handle publishes r to t: a new version, a recovery or a failure. It returns the
// result, PollChanged, PollUnchanged, PollNotModified or PollError, as Status reports it.
func (f *Feed) Handle(t *Topic, r poller.Result) string {
	result, reason := f.src.handle(t, r)
	f.src.record(result, reason)
	return result
}

// Status returns the outcome of the last result handled; Failures and NextPoll are left
// to the caller, who knows the poller.
func (f *Feed) Status() PollStatus { return f.src.Status() }

// Polled tells the hub's Observer of one poll made for t by a source that publishes
// through a Feed, such as the node polling for a loop shared with other nodes.
func (t *Topic) Polled(result string, took time.Duration) {
	t.hub.cfg.Observer.Poll(result, took)
}
