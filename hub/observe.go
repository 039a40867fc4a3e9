package hub

import "time"

// Observer is told what a hub does, for metrics. Its methods are called on hot paths and
// from many goroutines: they must be cheap and safe for concurrent use.
type Observer interface {
	// Subscribers reports subscribers joining (+1) or leaving (-1).
	Subscribers(delta int)
	// Loops reports poll loops starting (+1) or stopping (-1).
	Loops(delta int)
	// Poll reports one poll: PollChanged, PollUnchanged, PollNotModified or PollError,
	// and how long the upstream took.
	Poll(result string, took time.Duration)
	// Diff reports the time taken to parse and diff a changed body.
	Diff(took time.Duration)
	// Sent reports events and bytes written to clients.
	Sent(events, bytes int)
	// Slow reports what was done about a client that could not keep up: SlowDrain,
	// SlowCatchUp or SlowDisconnect.
	Slow(action string)
	// Resume reports what a client that sent a last event id got: ResumeNone,
	// ResumePatch or ResumeSnapshot.
	Resume(kind string)
	// Draining reports streams that a drain is to end (+1), and such streams ending (-1).
	Draining(delta int)
	// Computed reports one catch-up frame computed in format f (its wire name): a
	// snapshot, or the changes since a client's version joined. Clients asking for the
	// same catch-up at once share one computation, and a kept frame is not computed.
	Computed(format string)
}

// Poll results.
const (
	PollChanged     = "changed"
	PollUnchanged   = "unchanged"
	PollNotModified = "not_modified"
	PollError       = "error"
)

// Slow-subscriber actions.
const (
	// SlowDrain: the client's socket was full and a goroutine of its own drains it.
	SlowDrain = "drain"
	// SlowCatchUp: the client fell out of the log and got one catch-up event.
	SlowCatchUp = "catch_up"
	// SlowDisconnect: the client took no bytes for the write timeout and was cut off.
	SlowDisconnect = "disconnect"
)

// Resume kinds.
const (
	ResumeNone     = "none"
	ResumePatch    = "patch"
	ResumeSnapshot = "snapshot"
)

// nopObserver is the Observer of a hub configured without one.
type nopObserver struct{}

func (nopObserver) Subscribers(int)            {}
func (nopObserver) Loops(int)                  {}
func (nopObserver) Poll(string, time.Duration) {}
func (nopObserver) Diff(time.Duration)         {}
func (nopObserver) Sent(int, int)              {}
func (nopObserver) Slow(string)                {}
func (nopObserver) Resume(string)              {}
func (nopObserver) Draining(int)               {}
func (nopObserver) Computed(string)            {}
