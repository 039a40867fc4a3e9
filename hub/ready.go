package hub

import "context"

// Ready is Next without the wait, for a caller that reads several subscriptions from one
// goroutine, as a connection carrying several streams does: it returns the frames there
// are for the client, or, when there are none, the channel that is closed when there may
// be more. A catch-up the client is owed is computed before it returns, waiting for it
// until ctx ends. The frames are shared and must not be modified, and the slice is only
// valid until the next call; they count as sent. It returns ErrClosed when the topic
// stops, and ErrDrained once a drain has ended s.
func (s *Subscription) Ready(ctx context.Context) ([][]byte, <-chan struct{}, error) {
	for {
		if s.wasDrained() {
			return nil, nil, ErrDrained
		}
		if s.owes() {
			frames, err := s.settle(ctx)
			if err != nil || len(frames) > 0 {
				return s.sent(frames), nil, err
			}
		}
		frames, wake, err := s.t.since(s)
		if err != nil || len(frames) > 0 || wake != nil {
			return s.sent(frames), wake, err
		}
		// fell out of the log: owes a catch-up
	}
}

// sent counts frames as sent, and returns them.
func (s *Subscription) sent(frames [][]byte) [][]byte {
	if len(frames) > 0 {
		s.t.hub.cfg.Observer.Sent(len(frames), size(frames))
	}
	return frames
}

// Drained returns a channel closed when a drain ends s: Ready and Next then return
// ErrDrained.
func (s *Subscription) Drained() <-chan struct{} { return s.drained() }

// wasDrained reports whether a drain has ended s, without making its channel.
func (s *Subscription) wasDrained() bool {
	s.endMu.Lock()
	defer s.endMu.Unlock()
	return s.ended
}

// drained returns the channel closed when a drain ends s. It is made when something
// first waits on it: a stream handed to the hub's shared writers never does, although its
// first frames are read with Next, and holds none.
func (s *Subscription) drained() <-chan struct{} {
	s.endMu.Lock()
	defer s.endMu.Unlock()
	if s.end == nil {
		s.end = make(chan struct{})
		if s.ended {
			close(s.end)
		}
	}
	return s.end
}
