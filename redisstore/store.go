// Package redisstore shares poll loops between the nodes of a cluster through Redis: a
// single server, a Redis Cluster or a master found through Sentinels.
//
// For each loop one node holds a lease and polls. Each body that differs from the
// stream's last entry is appended, compressed, to a Redis Stream, and so is each change of
// upstream health; an append is refused unless its node still holds the lease, checked in
// the same script. Every node with subscribers reads the stream, in bounded pages, and
// passes the bodies through its own diff.Tracker: versions are content-derived, so every
// node computes the same ids and patches, and a client resumes on any node. A node that
// starts reads the stream first, so history survives a restart of every node.
package redisstore

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pollsse/caddy-poll-sse/diff"
	"github.com/pollsse/caddy-poll-sse/hub"
	"github.com/pollsse/caddy-poll-sse/poller"
)

// Defaults of Store.
const (
	DefaultPrefix    = "poll_sse:"
	DefaultLeaseTTL  = 5 * time.Second
	DefaultRetention = 24 * time.Hour
)

// Store shares poll loops between nodes through Redis.
type Store struct {
	// Client talks to Redis: a *redis.Client, *redis.ClusterClient or a failover
	// client, as redis.NewUniversalClient makes them.
	Client redis.UniversalClient
	// Prefix starts every key; default DefaultPrefix. It must hold no braces: each
	// loop's keys carry a hash tag of their own.
	Prefix string
	// LeaseTTL is how long a lease outlives its holder; default DefaultLeaseTTL.
	LeaseTTL time.Duration
	// History bounds each stream's length, approximately (MAXLEN ~); default
	// hub.DefaultHistory.
	History int
	// HistoryBytes bounds the stored bytes of each stream: a body is appended with a
	// MAXLEN of at most HistoryBytes divided by its compressed size, so that a stream of
	// similar bodies holds about HistoryBytes at most. Default hub.DefaultHistoryBytes.
	HistoryBytes int64
	// Retention is how long a stream outlives the last poll of its loop by any node;
	// default DefaultRetention. Loops whose URL came from a request, or that no route
	// polls any more, leave nothing in Redis past it.
	Retention time.Duration
	// Node names this node in lease values; default a random id.
	Node string
	// Reach tells apart loops whose polls go to the same URL by different ways: another
	// transport, socket or set of credentials. It is part of every key (digested), so
	// that such loops never share a lease or a stream. It must not hold what changes
	// while the loop runs, such as an access token.
	Reach string

	terms atomic.Uint64 // lease terms begun, numbering each term's lease value
}

func (st *Store) defaults() {
	if st.Prefix == "" {
		st.Prefix = DefaultPrefix
	}
	if st.LeaseTTL <= 0 {
		st.LeaseTTL = DefaultLeaseTTL
	}
	if st.History <= 0 {
		st.History = hub.DefaultHistory
	}
	if st.HistoryBytes <= 0 {
		st.HistoryBytes = hub.DefaultHistoryBytes
	}
	if st.Retention <= 0 {
		st.Retention = DefaultRetention
	}
	if st.Node == "" {
		st.Node = randomID()
	}
}

func randomID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// leaseValue returns the value of a new lease term: unique to this node and term, so that
// a node that lost its lease and took it again is another holder, and an append made for
// the earlier term is refused.
func (st *Store) leaseValue() string {
	return st.Node + "." + strconv.FormatUint(st.terms.Add(1), 36) + "." + randomID()
}

// Source returns the source of the loop polling with cfg; tr follows its documents. The
// loop's keys are derived from cfg (see LoopID): nodes polling with the same settings
// share the loop, any other never does. cfg must be valid for poller.New: each lease term
// makes a poller of it.
func (st *Store) Source(cfg poller.Config, tr *diff.Tracker) *Source {
	st.defaults()
	lease, stream := st.Keys(cfg)
	maxBody := cfg.MaxBody
	if maxBody <= 0 {
		maxBody = poller.DefaultMaxBody
	}
	return &Source{
		store:   st,
		lease:   lease,
		stream:  stream,
		cfg:     cfg,
		maxBody: maxBody,
		feed:    hub.NewFeed(tr),
		lastID:  "0",
	}
}

// Keys returns the lease and stream keys of the loop polling with cfg. Both carry the
// loop's id as a Redis Cluster hash tag, so that they live in one slot.
func (st *Store) Keys(cfg poller.Config) (lease, stream string) {
	st.defaults()
	id := LoopID(cfg)
	if st.Reach != "" {
		id = reachedID(id, st.Reach)
	}
	tag := st.Prefix + "{" + id + "}:"
	return tag + "lease", tag + "stream"
}
