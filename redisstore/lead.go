package redisstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/pollsse/caddy-poll-sse/hub"
	"github.com/pollsse/caddy-poll-sse/poller"
)

// term is one lease term of this node: the lease value it holds, what it last polled,
// and how to end it.
type term struct {
	value  string
	polled string // digest of the last body polled in this term; "" before the first
	end    context.CancelFunc
}

// lead takes the lease whenever it is free and polls while holding it.
func (s *Source) lead(ctx context.Context, t *hub.Topic) {
	ttl := s.store.LeaseTTL
	for ctx.Err() == nil {
		value := s.store.leaseValue()
		ok, err := s.store.Client.SetNX(ctx, s.lease, value, ttl).Result()
		if err == nil && ok {
			s.hold(ctx, t, value)
		}
		sleep(ctx, ttl/3)
	}
}

// hold polls for as long as the lease is renewed and no append is refused, then lets
// the lease go.
func (s *Source) hold(ctx context.Context, t *hub.Topic, value string) {
	defer s.release(value)
	p, err := poller.New(s.cfg)
	if err != nil {
		panic(fmt.Sprintf("poller config checked before the loop started: %v", err))
	}
	s.setPoller(p)
	defer s.setPoller(nil)
	hctx, cancel := context.WithCancel(ctx)
	var keeper sync.WaitGroup
	keeper.Go(func() { s.keep(hctx, cancel, value) })
	defer keeper.Wait()
	defer cancel()
	tm := &term{value: value, end: cancel}
	p.Run(hctx, func(r poller.Result) { s.append(hctx, t, tm, r) })
}

func (s *Source) setPoller(p *poller.Poller) {
	s.mu.Lock()
	s.poller = p
	s.mu.Unlock()
}

// release lets the lease go, if this term still holds it, even once ctx has ended.
func (s *Source) release(value string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = releaseLease.Run(ctx, s.store.Client, []string{s.lease}, value).Err()
}

// keep renews the lease every third of its TTL, and ends the term when it cannot.
func (s *Source) keep(ctx context.Context, lost context.CancelFunc, value string) {
	ttl := s.store.LeaseTTL
	for sleep(ctx, ttl/3) {
		n, err := renewLease.Run(ctx, s.store.Client, []string{s.lease}, value, ttl.Milliseconds()).Int()
		if err != nil || n == 0 {
			lost()
			return
		}
	}
}

// append offers a poll's outcome to the stream. An append refused because the lease is
// no longer this term's ends the term at once: the node polls no more until it takes the
// lease again.
func (s *Source) append(ctx context.Context, t *hub.Topic, tm *term, r poller.Result) {
	sum := tm.polled
	result := hub.PollNotModified
	switch {
	case r.Err != nil:
		result = hub.PollError
	case !r.NotModified:
		sum = digest(r.Body)
		result = hub.PollUnchanged
		if sum != tm.polled {
			result = hub.PollChanged
		}
		tm.polled = sum
	}
	t.Polled(result, r.Duration)
	answer, err := s.offer(ctx, tm.value, sum, r)
	switch {
	case err != nil:
		return // Redis is unreachable: the next poll offers its outcome again
	case answer == appendRefused:
		tm.end()
	case answer == appendWantBody && r.NotModified:
		// The stream's last body is not the one this poller holds (the stream was
		// trimmed away or deleted): end the term, so that the next one polls afresh.
		tm.end()
	}
}

// offer runs appendEntry for r, sending the compressed body only when the stream asks
// for it, and returns the script's answer.
func (s *Source) offer(ctx context.Context, value, sum string, r poller.Result) (int, error) {
	keys := []string{s.lease, s.stream}
	maxLen := strconv.Itoa(s.store.History)
	if r.Err != nil {
		return appendEntry.Run(ctx, s.store.Client, keys, value, maxLen, "fail", strconv.Itoa(r.Status), r.Err.Error()).Int()
	}
	answer, err := appendEntry.Run(ctx, s.store.Client, keys, value, maxLen, "body", sum).Int()
	if err != nil || answer != appendWantBody || r.NotModified {
		return answer, err
	}
	return appendEntry.Run(ctx, s.store.Client, keys, value, maxLen, "body", sum, strconv.Itoa(len(r.Body)), compress(r.Body)).Int()
}

// digest identifies a body in the stream.
func digest(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:16])
}
