package hub

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestDrainedBeforeAndAfterItIsAskedFor: a subscription's drain channel is closed when
// a drain ends it, whether it was asked for before the drain or only after, and Next and
// Ready then say ErrDrained; one not drained stays open.
func TestDrainedBeforeAndAfterItIsAskedFor(t *testing.T) {
	t.Parallel()
	h := newHub(t, Config{})
	src := newDocSource()
	early, late, kept := subscribe(t, h, src, ""), subscribe(t, h, src, ""), subscribe(t, h, src, "")
	asked := early.sub.Drained()
	if got := Drain([]*Subscription{early.sub, late.sub}, time.Millisecond); got != 2 {
		t.Fatalf("Drain scheduled %d, want 2", got)
	}
	for name, ch := range map[string]func() <-chan struct{}{
		"asked before the drain": func() <-chan struct{} { return asked },
		"asked after the drain":  func() <-chan struct{} { waitDrained(t, late.sub); return late.sub.Drained() },
	} {
		select {
		case <-ch():
		case <-time.After(5 * time.Second):
			t.Fatalf("the drain channel %s is still open", name)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, s := range []*Subscription{early.sub, late.sub} {
		if err := nextUntilErr(ctx, s); !errors.Is(err, ErrDrained) {
			t.Fatalf("Next after the drain: %v, want ErrDrained", err)
		}
		if _, _, err := s.Ready(ctx); !errors.Is(err, ErrDrained) {
			t.Fatalf("Ready after the drain: %v, want ErrDrained", err)
		}
	}
	select {
	case <-kept.sub.Drained():
		t.Fatal("a subscription no drain ends was told it is drained")
	default:
	}
}

// waitDrained waits until a drain has ended s, without asking for its channel.
func waitDrained(t *testing.T, s *Subscription) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.endMu.Lock()
		ended := s.ended
		s.endMu.Unlock()
		if ended {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the drain did not end the subscription")
		}
		time.Sleep(time.Millisecond)
	}
}

// nextUntilErr reads s until Next fails, and returns the error.
func nextUntilErr(ctx context.Context, s *Subscription) error {
	for {
		if _, err := s.Next(ctx); err != nil {
			return err
		}
	}
}
