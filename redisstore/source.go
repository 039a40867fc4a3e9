package redisstore

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pollsse/caddy-poll-sse/hub"
	"github.com/pollsse/caddy-poll-sse/poller"
)

// ReasonStoreDown is what clients are told, in an `upstream` event with status 0, while
// Redis cannot be reached. They keep the last document meanwhile.
const ReasonStoreDown = "store unreachable"

// Reads are bounded in bytes: each takes about readBudget bytes of stored entries, with
// a COUNT from the largest entry of the read before (one entry at first, and never more
// than maxReadCount), so that a stream of large documents is read a few at a time and a
// node's memory holds one page, not the stream.
const (
	readBudget   = 1 << 20
	maxReadCount = 128
)

// Source is one loop shared through a Store. It implements hub.Source and hub.Restorer.
type Source struct {
	store         *Store
	lease, stream string
	cfg           poller.Config // each lease term polls with a poller of its own
	maxBody       int64         // the largest body this node decodes

	// Owned by the goroutine reading the stream.
	feed      *hub.Feed  // turns bodies into versions, as a local loop does
	lastID    string     // the last stream entry read
	down      bool       // Redis could not be reached at the last try
	upstream  hub.Status // the upstream health the stream last said
	readCount int64      // the COUNT of the next read

	mu     sync.Mutex
	poller *poller.Poller // while this node holds the lease
}

// Poke makes the loop poll now, if this node holds its lease.
func (s *Source) Poke() {
	s.mu.Lock()
	p := s.poller
	s.mu.Unlock()
	if p != nil {
		p.Poke()
	}
}

// Status returns the state of the loop: the last document read, and the last poll's
// backoff when this node holds the lease.
func (s *Source) Status() hub.PollStatus {
	s.mu.Lock()
	p := s.poller
	s.mu.Unlock()
	st := s.feed.Status()
	if p != nil {
		st.Failures, st.NextPoll = p.Backoff()
	}
	return st
}

// Leader reports whether this node holds the loop's lease.
func (s *Source) Leader() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.poller != nil
}

// Restore publishes the versions the stream holds, oldest first, a page at a time, until
// it has read them all or ctx ends; Run goes on from where it stopped.
func (s *Source) Restore(ctx context.Context, t *hub.Topic) {
	for ctx.Err() == nil {
		n, err := s.read(ctx, t, 0)
		if err != nil || n == 0 {
			return
		}
	}
}

// Run implements hub.Source: it competes for the lease and polls while it holds it, and
// follows the stream. It returns once the lease is let go, even when following panics;
// a panic while leading ends the loop and is raised again here, where the hub recovers
// and logs it, rather than in a goroutine nothing recovers.
func (s *Source) Run(ctx context.Context, t *hub.Topic) {
	ctx, cancel := context.WithCancel(ctx)
	var (
		wg       sync.WaitGroup
		panicked any
	)
	defer func() {
		wg.Wait()
		if panicked != nil {
			panic(panicked)
		}
	}()
	defer cancel()
	wg.Go(func() {
		defer func() {
			if panicked = recover(); panicked != nil {
				cancel()
			}
		}()
		s.lead(ctx, t)
	})
	s.follow(ctx, t)
}

// follow reads the stream until ctx ends. While Redis cannot be reached clients are told
// so, keep the last document, and the reads are retried every second.
func (s *Source) follow(ctx context.Context, t *hub.Topic) {
	for ctx.Err() == nil {
		_, err := s.read(ctx, t, time.Second)
		if err == nil || ctx.Err() != nil {
			continue
		}
		if !s.down {
			s.down = true
			t.Fail(0, ReasonStoreDown)
		}
		sleep(ctx, time.Second)
	}
}

// read takes a page of the entries after the last one read, waiting at most block for
// one (0: not at all), publishes them, and returns how many it took.
func (s *Source) read(ctx context.Context, t *hub.Topic, block time.Duration) (int, error) {
	if s.readCount <= 0 {
		s.readCount = 1
	}
	args := &redis.XReadArgs{Streams: []string{s.stream, s.lastID}, Count: s.readCount, Block: block}
	if block == 0 {
		args.Block = -1 // no BLOCK argument
	}
	res, err := s.store.Client.XRead(ctx, args).Result()
	if errors.Is(err, redis.Nil) {
		err = nil
	}
	if err != nil {
		return 0, err
	}
	if s.down {
		s.down = false
		s.restoreHealth(t)
	}
	n, largest := 0, 0
	for _, st := range res {
		for _, m := range st.Messages {
			largest = max(largest, len(str(m.Values["body"])))
			s.take(t, m)
			s.lastID = m.ID
			n++
		}
	}
	if n > 0 {
		s.readCount = min(maxReadCount, max(1, int64(readBudget/max(largest, 1))))
	}
	return n, nil
}

// take publishes one stream entry: a body, or a change of upstream health.
func (s *Source) take(t *hub.Topic, m redis.XMessage) {
	if data, ok := m.Values["body"].(string); ok {
		size, _ := strconv.ParseInt(str(m.Values["size"]), 10, 64)
		body, err := decompress([]byte(data), size, s.maxBody)
		if err != nil {
			s.upstream = hub.Status{Code: 200, Reason: err.Error()}
			s.feed.Handle(t, poller.Result{Status: 200, Err: err})
			return
		}
		s.upstream = hub.Status{OK: true}
		s.feed.Handle(t, poller.Result{Body: body, Status: 200})
		return
	}
	code, _ := strconv.Atoi(str(m.Values["status"]))
	reason := str(m.Values["error"])
	if reason == "" {
		s.upstream = hub.Status{OK: true}
		t.Recover()
		return
	}
	s.upstream = hub.Status{Code: code, Reason: reason}
	t.Fail(code, reason)
}

// restoreHealth tells clients the upstream health the stream last said, once Redis is
// back.
func (s *Source) restoreHealth(t *hub.Topic) {
	if s.upstream.OK || s.upstream.Reason == "" {
		t.Recover()
		return
	}
	t.Fail(s.upstream.Code, s.upstream.Reason)
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// sleep waits d or until ctx ends, and reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-ctx.Done():
		return false
	}
}
