package main

import (
	"math"
	"slices"
)

// Phase is what the subscribers of a pool received of the changes lo..hi.
type Phase struct {
	Subs       int
	Changes    int
	Deliveries int       // events of these changes received, over all subscribers
	Lost       int       // changes a subscriber never received on its own, summed
	LostMax    int       // the most any one subscriber lost
	Reordered  int       // events older than one the subscriber had already received
	TTF, TTL   []float64 // per change: first and last receive after T0, ms
	Latency    []float64 // every delivery: receive after T0, ms
	FirstT0    int64
	LastRecv   int64
}

// Analyze gathers the deliveries of changes lo..hi to subs.
func Analyze(subs []*Sub, lo, hi int64) Phase {
	n := int(hi - lo + 1)
	ph := Phase{Subs: len(subs), Changes: n, FirstT0: math.MaxInt64}
	first := make([]int64, n)
	last := make([]int64, n)
	for _, s := range subs {
		ph.addSub(s.Recs(), lo, hi, first, last)
	}
	for i := range n {
		if last[i] == 0 {
			continue
		}
		ph.TTF = append(ph.TTF, ms(first[i]))
		ph.TTL = append(ph.TTL, ms(last[i]))
	}
	if ph.FirstT0 == math.MaxInt64 {
		ph.FirstT0 = 0
	}
	return ph
}

// addSub adds one subscriber's events; first and last hold, per change, the earliest and
// latest receive delay so far.
func (ph *Phase) addSub(recs []Rec, lo, hi int64, first, last []int64) {
	prev, inOrder := lo-1, 0
	for _, r := range recs {
		if r.Seq < lo || r.Seq > hi {
			continue
		}
		ph.Deliveries++
		d := r.Recv - r.T0
		ph.Latency = append(ph.Latency, ms(d))
		i := r.Seq - lo
		if first[i] == 0 || d < first[i] {
			first[i] = d
		}
		last[i] = max(last[i], d)
		ph.FirstT0 = min(ph.FirstT0, r.T0)
		ph.LastRecv = max(ph.LastRecv, r.Recv)
		switch {
		case r.Seq > prev:
			prev = r.Seq
			inOrder++
		case r.Seq < prev:
			ph.Reordered++
		}
	}
	lost := ph.Changes - inOrder
	ph.Lost += lost
	ph.LostMax = max(ph.LostMax, lost)
}

// ms converts nanoseconds to milliseconds.
func ms(ns int64) float64 { return float64(ns) / 1e6 }

// Pct is the q-th percentile (0–100) of xs by nearest rank, or NaN when xs is empty.
func Pct(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(math.Ceil(q/100*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

// Median is the median of the values that are not NaN, or NaN when there are none.
func Median(xs []float64) float64 {
	var s []float64
	for _, x := range xs {
		if !math.IsNaN(x) {
			s = append(s, x)
		}
	}
	if len(s) == 0 {
		return math.NaN()
	}
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
