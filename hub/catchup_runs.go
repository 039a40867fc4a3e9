package hub

import (
	"math"

	"github.com/pollsse/caddy-poll-sse/diff"
)

// A touchRun is where the changes since a version held by merge_patch clients touched
// the document, merged: kept from one version to the next, so that the catch-up from
// that version to the next one takes the new change's paths alone, instead of walking
// every change since again. A catch-up frame is kept only until the version changes,
// and clients resuming from old ids in a loop ask for all of theirs again at each change.
type touchRun struct {
	id   string        // the version held
	from uint64        // its sequence number in the history
	to   uint64        // the sequence number of the last change set holds
	set  diff.TouchSet // where the changes from+1 to to touched the document
	size int           // set.Size() when kept
}

// touchRuns holds a topic's runs by the version held. Each is bounded already: a run is
// made only for a catch-up whose patches together weigh less than the document. t.cacheMu
// guards it.
type touchRuns struct {
	byID   map[string]*touchRun
	bytes  int // of the runs held
	budget int // the most bytes held: a quarter of the history's
}

// touchRunsMax bounds the runs a topic keeps: as many as the catch-up frames it keeps.
const touchRunsMax = catchUpCacheMax

func newTouchRuns(historyBytes int64) touchRuns {
	return touchRuns{budget: int(min(historyBytes/4, math.MaxInt))}
}

// runFor returns the run that holds the touches of c, a merge_patch catch-up from a
// version in the history: the run kept for c.from, grown by the changes since, or a new
// one. The caller owns it until it gives it to keepRun.
func (t *Topic) runFor(c *catchUp) *touchRun {
	from := c.first - 1
	last := from + uint64(len(c.touches))
	t.cacheMu.Lock()
	run := t.runs.take(c.from, from, last)
	t.cacheMu.Unlock()
	if run == nil {
		run = &touchRun{id: c.from, from: from, to: from}
	}
	for _, ts := range c.touches[run.to-from:] {
		run.set.Add(ts)
	}
	run.to = last
	return run
}

// keepRun keeps run for the next catch-up from its version.
func (t *Topic) keepRun(run *touchRun) {
	t.cacheMu.Lock()
	defer t.cacheMu.Unlock()
	t.runs.keep(run)
}

// take removes and returns the run kept for a holder of version id, at sequence number
// from, when it holds no change past last; nil when there is none. A run kept for an
// earlier place of id in the history (the document came back to it) is dropped.
func (rs *touchRuns) take(id string, from, last uint64) *touchRun {
	run := rs.byID[id]
	switch {
	case run == nil:
		return nil
	case run.from != from:
		rs.remove(run)
		return nil
	case run.to > last:
		return nil // grown for a later version by a catch-up that was quicker
	}
	rs.remove(run)
	return run
}

// keep adds run, unless the one held for its version is as far along already, and drops
// the runs grown longest ago past the bounds.
func (rs *touchRuns) keep(run *touchRun) {
	if held := rs.byID[run.id]; held != nil {
		if held.to >= run.to {
			return
		}
		rs.remove(held)
	}
	run.size = run.set.Size()
	if run.size > rs.budget {
		return
	}
	if rs.byID == nil {
		rs.byID = make(map[string]*touchRun)
	}
	rs.byID[run.id] = run
	rs.bytes += run.size
	for len(rs.byID) > touchRunsMax || rs.bytes > rs.budget {
		rs.remove(rs.stalest())
	}
}

// stalest returns the run that was grown longest ago.
func (rs *touchRuns) stalest() *touchRun {
	var out *touchRun
	for _, run := range rs.byID {
		if out == nil || run.to < out.to {
			out = run
		}
	}
	return out
}

func (rs *touchRuns) remove(run *touchRun) {
	delete(rs.byID, run.id)
	rs.bytes -= run.size
}

// dropBefore drops the runs from versions older than sequence number oldest, which
// the history no longer holds: their holders get a snapshot.
func (rs *touchRuns) dropBefore(oldest uint64) {
	for _, run := range rs.byID {
		if run.from < oldest {
			rs.remove(run)
		}
	}
}
