package hub

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pollsse/caddy-poll-sse/diff"
	"github.com/pollsse/caddy-poll-sse/poller"
)

// ReasonStoreDown is what clients are told, in an `upstream` event with status 0, while
// the Redis store cannot be reached. They keep the last document meanwhile.
const ReasonStoreDown = "store unreachable"

// Defaults of RedisStore.
const (
	DefaultRedisPrefix = "poll_sse:"
	DefaultLeaseTTL    = 5 * time.Second
)

// RedisStore shares poll loops between nodes through Redis. For each loop key one node
// holds a lease (SET NX PX, renewed) and polls; each body that differs from the last is
// appended to a Redis Stream (XADD, MAXLEN ~ history), and so is each change of upstream
// health. Every node with subscribers reads the stream (XREAD BLOCK) and passes the bodies,
// in stream order, through its own diff.Tracker: versions are content-derived, so every
// node computes the same ids and patches, and a client resumes on any node. A node that
// starts reads the whole stream first, so history survives a restart of every node.
type RedisStore struct {
	// Client talks to Redis.
	Client redis.UniversalClient
	// Prefix starts every key; default DefaultRedisPrefix.
	Prefix string
	// LeaseTTL is how long a lease outlives its holder; default DefaultLeaseTTL.
	LeaseTTL time.Duration
	// History bounds the stream's length, approximately; default DefaultHistory.
	History int
	// Node names this node in leases; default a random id.
	Node string
}

func (rs *RedisStore) defaults() {
	if rs.Prefix == "" {
		rs.Prefix = DefaultRedisPrefix
	}
	if rs.LeaseTTL <= 0 {
		rs.LeaseTTL = DefaultLeaseTTL
	}
	if rs.History <= 0 {
		rs.History = DefaultHistory
	}
	if rs.Node == "" {
		b := make([]byte, 8)
		_, _ = rand.Read(b)
		rs.Node = hex.EncodeToString(b)
	}
}

// Source returns the source of the loop with key: newPoller makes the poller of a lease
// term, tr follows the documents.
func (rs *RedisStore) Source(key string, newPoller func() *poller.Poller, tr *diff.Tracker) *RedisSource {
	rs.defaults()
	sum := sha256.Sum256([]byte(key))
	id := hex.EncodeToString(sum[:16])
	return &RedisSource{
		store:     rs,
		lease:     rs.Prefix + "lease:" + id,
		stream:    rs.Prefix + "stream:" + id,
		newPoller: newPoller,
		feed:      PollSource{tracker: tr},
		lastID:    "0",
	}
}

// RedisSource is one loop shared through a RedisStore.
type RedisSource struct {
	store         *RedisStore
	lease, stream string
	newPoller     func() *poller.Poller

	// Owned by the goroutine reading the stream.
	feed     PollSource // turns bodies into versions, as a local loop does
	lastID   string     // the last stream entry read
	down     bool       // Redis could not be reached at the last try
	upstream Status     // the upstream health the stream last said

	mu       sync.Mutex
	poller   *poller.Poller // while this node holds the lease
	added    []byte         // the last body this node appended
	addedBad Status         // the last failure this node appended; OK when none
}

// Poke makes the loop poll now, if this node holds its lease.
func (s *RedisSource) Poke() {
	s.mu.Lock()
	p := s.poller
	s.mu.Unlock()
	if p != nil {
		p.Poke()
	}
}

// Status returns the state of the loop: the last poll, when this node holds the lease.
func (s *RedisSource) Status() PollStatus {
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
func (s *RedisSource) Leader() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.poller != nil
}

// Restore publishes the versions the stream holds, oldest first.
func (s *RedisSource) Restore(ctx context.Context, t *Topic) {
	ctx, cancel := context.WithTimeout(ctx, restoreWait)
	defer cancel()
	for ctx.Err() == nil {
		n, err := s.read(ctx, t, 0)
		if err != nil || n == 0 {
			return
		}
	}
}

// Run implements Source: it competes for the lease and polls while it holds it, and
// follows the stream. It returns once the lease is let go, even when following panics;
// a panic while leading ends the loop and is raised again here, where the hub recovers
// and logs it, rather than in a goroutine nothing recovers.
func (s *RedisSource) Run(ctx context.Context, t *Topic) {
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
func (s *RedisSource) follow(ctx context.Context, t *Topic) {
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

// read takes the entries after the last one read, waiting at most block for one (0: not
// at all), publishes them, and returns how many it took.
func (s *RedisSource) read(ctx context.Context, t *Topic, block time.Duration) (int, error) {
	args := &redis.XReadArgs{Streams: []string{s.stream, s.lastID}, Count: 256, Block: block}
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
	n := 0
	for _, st := range res {
		for _, m := range st.Messages {
			s.take(t, m)
			s.lastID = m.ID
			n++
		}
	}
	return n, nil
}

// take publishes one stream entry: a body, or a change of upstream health.
func (s *RedisSource) take(t *Topic, m redis.XMessage) {
	if body, ok := m.Values["body"].(string); ok {
		s.upstream = Status{OK: true}
		result, reason := s.feed.handle(t, poller.Result{Body: []byte(body), Status: 200})
		s.feed.record(result, reason)
		return
	}
	code, _ := strconv.Atoi(str(m.Values["status"]))
	reason := str(m.Values["error"])
	if reason == "" {
		s.upstream = Status{OK: true}
		t.Recover()
		return
	}
	s.upstream = Status{Code: code, Reason: reason}
	t.Fail(code, reason)
}

// restoreHealth tells clients the upstream health the stream last said, once Redis is
// back.
func (s *RedisSource) restoreHealth(t *Topic) {
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

// lead takes the lease whenever it is free and polls while holding it.
func (s *RedisSource) lead(ctx context.Context, t *Topic) {
	ttl := s.store.LeaseTTL
	for ctx.Err() == nil {
		ok, err := s.store.Client.SetNX(ctx, s.lease, s.store.Node, ttl).Result()
		if err == nil && ok {
			s.hold(ctx, t)
		}
		sleep(ctx, ttl/3)
	}
}

// renewLease extends the lease if this node still holds it; releaseLease frees it.
var (
	renewLease   = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("PEXPIRE", KEYS[1], ARGV[2]) end return 0`)
	releaseLease = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`)
)

// hold polls for as long as the lease is renewed, then lets it go.
func (s *RedisSource) hold(ctx context.Context, t *Topic) {
	defer s.release()
	p := s.newPoller()
	s.mu.Lock()
	s.poller, s.added, s.addedBad = p, nil, Status{OK: true}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.poller = nil
		s.mu.Unlock()
	}()
	hctx, cancel := context.WithCancel(ctx)
	var keeper sync.WaitGroup
	keeper.Go(func() { s.keep(hctx, cancel) })
	defer keeper.Wait()
	defer cancel()
	p.Run(hctx, func(r poller.Result) { s.append(hctx, t, r) })
}

// release lets the lease go, if this node still holds it, even once ctx has ended.
func (s *RedisSource) release() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = releaseLease.Run(ctx, s.store.Client, []string{s.lease}, s.store.Node).Err()
}

// keep renews the lease every third of its TTL, and cancels the term when it cannot.
func (s *RedisSource) keep(ctx context.Context, lost context.CancelFunc) {
	ttl := s.store.LeaseTTL
	for sleep(ctx, ttl/3) {
		n, err := renewLease.Run(ctx, s.store.Client, []string{s.lease}, s.store.Node, ttl.Milliseconds()).Int()
		if err != nil || n == 0 {
			lost()
			return
		}
	}
}

// append adds a poll's outcome to the stream: a body that differs from the last one this
// node appended, or a change of upstream health.
func (s *RedisSource) append(ctx context.Context, t *Topic, r poller.Result) {
	values, result := s.entry(r)
	t.hub.cfg.Observer.Poll(result, r.Duration)
	if values == nil {
		return
	}
	err := s.store.Client.XAdd(ctx, &redis.XAddArgs{
		Stream: s.stream, MaxLen: int64(s.store.History), Approx: true, Values: values,
	}).Err()
	if err != nil {
		s.mu.Lock()
		s.added, s.addedBad = nil, Status{OK: true} // say it again next time
		s.mu.Unlock()
	}
}

// entry returns the stream entry for a poll's outcome, nil when there is nothing new, and
// the poll's result.
func (s *RedisSource) entry(r poller.Result) ([]any, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case r.Err != nil:
		bad := Status{Code: r.Status, Reason: r.Err.Error()}
		if s.addedBad == bad {
			return nil, PollError
		}
		s.addedBad = bad
		return []any{"status", strconv.Itoa(r.Status), "error", bad.Reason}, PollError
	case r.NotModified || bytes.Equal(r.Body, s.added):
		result := PollUnchanged
		if r.NotModified {
			result = PollNotModified
		}
		if s.addedBad.OK {
			return nil, result
		}
		s.addedBad = Status{OK: true}
		return []any{"status", strconv.Itoa(r.Status), "error", ""}, result
	}
	s.added, s.addedBad = r.Body, Status{OK: true}
	return []any{"body", string(r.Body)}, PollChanged
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
