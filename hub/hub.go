// Package hub fans documents out to subscribers: one topic per poll loop key, a shared
// frame log every subscriber reads with its own cursor, a version history for resume, and
// the lifecycle that starts a loop with its first subscriber and stops it linger after
// its last.
//
// A subscriber reads its frames with Subscription.Next, or hands its connection over with
// Subscription.Serve, or with ServeMulti for a connection that carries several
// subscriptions: the hub's shared writers, one per CPU, then write each frame to every
// connection without blocking, and a connection holds no goroutine of its own except
// while its socket is full.
package hub

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// ErrClosed is returned to subscribers when their topic or the whole hub has stopped.
var ErrClosed = errors.New("hub closed")

// ErrTooManyTopics is returned by Subscribe when a new topic would exceed Config.MaxTopics.
var ErrTooManyTopics = errors.New("too many poll loops")

// ErrNoSource is returned by Subscribe and Document when their newSource declines to
// start a topic by returning nil, such as for a client that started too many.
var ErrNoSource = errors.New("no source for a new poll loop")

// Defaults applied by New to zero Config fields.
const (
	DefaultHistory      = 1000
	DefaultHistoryBytes = 64 << 20
	DefaultHeartbeat    = 15 * time.Second
	DefaultRetry        = 3 * time.Second
	DefaultLinger       = 30 * time.Second
)

// BriefLinger is how long a topic lingers, at most, when its last subscriber leaves
// before its first poll answered: a client that opened a loop and left at once keeps it
// polling no longer than this.
const BriefLinger = time.Second

// Config holds the settings shared by all topics of a hub.
type Config struct {
	// History is how many versions each topic keeps for resume.
	History int
	// HistoryBytes bounds the bytes of the patches each topic keeps for resume; past it
	// the oldest versions go first, and a client holding one gets a snapshot.
	HistoryBytes int64
	// Heartbeat is the idle time after which a comment line is sent.
	Heartbeat time.Duration
	// Retry is the reconnection delay announced to clients, each stream's moved by up to
	// RetryJitter of it either way.
	Retry time.Duration
	// Linger is how long a topic keeps polling after its last subscriber leaves.
	Linger time.Duration
	// WriteTimeout bounds a blocking write to a connection handed over with Serve: a
	// client that takes no bytes for that long is disconnected, and resumes from its
	// last event id. Default: two heartbeats.
	WriteTimeout time.Duration
	// MaxTopics caps the topics running at once; 0 means no cap.
	MaxTopics int
	// Now tells the time; nil means time.Now.
	Now func() time.Time
	// Logger receives loop and upstream state changes; nil means no logs.
	Logger *zap.Logger
	// Describe turns a topic key into the fields logged for it, leaving out what must not
	// be logged, such as credentials in a URL; nil logs the key as it is.
	Describe func(key string) []zap.Field
	// Observer is told what the hub does, for metrics; nil means nobody is.
	Observer Observer
	// Stopped, when set, is called once for each topic that stops, with its key and
	// source. It is called with the topic locked: it must be quick and not call the hub.
	Stopped func(key string, src Source)
}

// MaxLoops caps the poll loops running at once in the process, over all hubs. A client
// that would start one more gets ErrTooManyTopics.
const MaxLoops = 10_000

// ErrTooManySubscribers is returned by SubscribeLimited when the route has as many
// subscribers as its Limits allow.
var ErrTooManySubscribers = errors.New("too many subscribers")

// liveLoops counts the poll loops running in the process.
var liveLoops atomic.Int64

// Source produces a topic's documents. Run blocks until ctx ends, publishing through t.
type Source interface {
	Run(ctx context.Context, t *Topic)
}

// A Restorer is a Source that brings a new topic up to date before its first subscriber
// is served, such as from a store shared with other nodes: Restore publishes the versions
// the store holds, then Run goes on from there. Subscribers wait for Restore, for a few
// seconds at most (its ctx then ends), so that a client resuming on a fresh node gets a
// patch.
type Restorer interface {
	Restore(ctx context.Context, t *Topic)
}

// Hub owns the topics of one route.
type Hub struct {
	cfg      Config
	logBytes int // each topic's log budget: logBytes, lowered by tests
	// onCompute, when set by tests, is called as each catch-up computation starts.
	onCompute func(*catchUp)
	slots     chan struct{} // catch-up computing slots: the process's, or a test's own

	mu      sync.Mutex
	topics  map[string]*Topic
	closed  bool
	retired atomic.Bool // see Retire
	// retireWindow is the drain window of Retire.
	retireWindow atomic.Int64
	// empty is closed when a retired hub has no stream left.
	empty     chan struct{}
	emptyOnce sync.Once
	wg        sync.WaitGroup // running sources

	subs atomic.Int64 // subscribers, over all topics

	denied denials // loops whose upstream refused their credential

	quit        chan struct{}  // closed by Close: stops the writers and the heartbeats
	bg          sync.WaitGroup // writers and heartbeats
	beatsOnce   sync.Once
	writersOnce sync.Once
	writers     []*writer
}

// New returns a hub with cfg's zero fields set to their defaults.
func New(cfg Config) *Hub {
	if cfg.History <= 0 {
		cfg.History = DefaultHistory
	}
	if cfg.HistoryBytes <= 0 {
		cfg.HistoryBytes = DefaultHistoryBytes
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = DefaultHeartbeat
	}
	if cfg.Retry <= 0 {
		cfg.Retry = DefaultRetry
	}
	if cfg.Linger <= 0 {
		cfg.Linger = DefaultLinger
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 2 * cfg.Heartbeat
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Describe == nil {
		cfg.Describe = func(key string) []zap.Field { return []zap.Field{zap.String("key", key)} }
	}
	if cfg.Observer == nil {
		cfg.Observer = nopObserver{}
	}
	if cfg.Stopped == nil {
		cfg.Stopped = func(string, Source) {}
	}
	return &Hub{
		cfg:      cfg,
		logBytes: logBytes,
		slots:    computeSlots(),
		topics:   make(map[string]*Topic),
		quit:     make(chan struct{}),
		empty:    make(chan struct{}),
	}
}

// Subscribe joins the topic for key, starting it with newSource if it is not running;
// a newSource that returns nil refuses the new topic (ErrNoSource). lastEventID is the version the client holds ("" for none); the subscription's first
// frames bring the client from there to the current version. Changes reach the client in
// format.
func (h *Hub) Subscribe(key string, newSource func() Source, lastEventID string, format Format) (*Subscription, error) {
	return h.SubscribeLimited(key, newSource, lastEventID, format, Limits{})
}

// SubscribeLimited is Subscribe for a route with limits of its own: the subscription
// counts in lim.Slots until it is closed, and a stream it serves ends within
// lim.MaxLifetime.
func (h *Hub) SubscribeLimited(key string, newSource func() Source, lastEventID string, format Format, lim Limits) (*Subscription, error) {
	if format < 0 || format >= numFormats {
		return nil, fmt.Errorf("subscribing: %v is not a format", format)
	}
	t, err := h.join(key, newSource, format, true, lim)
	if err != nil {
		return nil, err
	}
	return h.open(t, lastEventID, format, lim), nil
}

// open opens the subscription of a stream that join counted in t. One that joined just
// before the hub retired, and that Retire did not see, is drained as Retire drains the
// others.
func (h *Hub) open(t *Topic, lastEventID string, format Format, lim Limits) *Subscription {
	t.waitReady()
	s := t.subscribe(lastEventID, format)
	s.limits = lim
	t.enlist(s)
	if h.retired.Load() {
		Drain([]*Subscription{s}, time.Duration(h.retireWindow.Load()))
	}
	return s
}

// restoreWait bounds how long a subscriber waits for a Restorer to restore its topic.
const restoreWait = 5 * time.Second

// join counts a subscriber of the topic for key, starting the topic with newSource if it
// is not running. A stream is a subscriber of the hub, counted in lim; a caller that only
// waits for a document is not.
func (h *Hub) join(key string, newSource func() Source, format Format, stream bool, lim Limits) (*Topic, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || h.retired.Load() {
		return nil, ErrClosed
	}
	if stream && !lim.take() {
		return nil, ErrTooManySubscribers
	}
	t, ok := h.topics[key]
	if !ok {
		if h.cfg.MaxTopics > 0 && len(h.topics) >= h.cfg.MaxTopics || liveLoops.Load() >= MaxLoops {
			giveIf(stream, lim)
			return nil, ErrTooManyTopics
		}
		src := newSource()
		if src == nil {
			giveIf(stream, lim)
			return nil, ErrNoSource
		}
		t = newTopic(h, key)
		h.topics[key] = t
		h.beatsOnce.Do(func() { h.bg.Go(h.beats) })
		h.start(t, src)
	}
	if stream {
		h.subs.Add(1)
		h.cfg.Observer.Subscribers(1)
	}
	t.join(format)
	return t, nil
}

// giveIf uncounts in lim the stream that join counted, when it was one.
func giveIf(stream bool, lim Limits) {
	if stream {
		lim.give()
	}
}

// Subscribers returns the subscribers of the hub.
func (h *Hub) Subscribers() int { return int(h.subs.Load()) }

func (h *Hub) start(t *Topic, src Source) {
	ctx, cancel := context.WithCancel(context.Background())
	t.cancel, t.source = cancel, src
	h.cfg.Logger.Info("starting poll loop", h.cfg.Describe(t.key)...)
	liveLoops.Add(1)
	h.cfg.Observer.Loops(1)
	h.wg.Go(func() { h.run(ctx, t, src) })
}

// run restores t and runs its source until ctx ends. A source that panics is logged and
// its topic removed, so that its subscribers reconnect to a new one. Close waits for run:
// a source must be done with everything it holds, such as a lease, when Run returns.
func (h *Hub) run(ctx context.Context, t *Topic, src Source) {
	defer func() {
		if r := recover(); r != nil {
			h.cfg.Logger.Error("poll loop panicked", append(h.cfg.Describe(t.key), zap.Any("panic", r))...)
			h.remove(t)
		}
	}()
	restore(ctx, t, src)
	src.Run(ctx, t)
}

// restore lets a Restorer bring t up to date, for restoreWait at most, then lets t's
// subscribers in, even when restoring panicked.
func restore(ctx context.Context, t *Topic, src Source) {
	defer close(t.ready)
	if r, ok := src.(Restorer); ok {
		ctx, cancel := context.WithTimeout(ctx, restoreWait)
		defer cancel()
		r.Restore(ctx, t)
	}
}

// remove stops t and forgets it, if it is still the topic for its key.
func (h *Hub) remove(t *Topic) {
	h.mu.Lock()
	if h.topics[t.key] == t {
		delete(h.topics, t.key)
	}
	h.mu.Unlock()
	t.stop()
	t.closeStreams()
}

// expire stops t if no subscriber joined it since it had joins and it has none. A linger
// timer that fired as a subscriber joined may call it after that subscriber left again:
// the topic then lingers for the timer set when it left.
func (h *Hub) expire(t *Topic, joins uint64) {
	h.mu.Lock()
	idle := h.topics[t.key] == t && t.idleSince(joins)
	if idle {
		delete(h.topics, t.key)
	}
	h.mu.Unlock()
	if idle {
		h.cfg.Logger.Info("stopping poll loop", h.cfg.Describe(t.key)...)
		t.stop()
	}
}

// Poke asks the source of the topic for key to poll now, if the topic is running and its
// source can be poked. It reports whether a source was poked.
func (h *Hub) Poke(key string) bool {
	h.mu.Lock()
	t := h.topics[key]
	h.mu.Unlock()
	if t == nil {
		return false
	}
	p, ok := t.source.(interface{ Poke() })
	if ok {
		p.Poke()
	}
	return ok
}

// Topics returns how many topics are running.
func (h *Hub) Topics() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.topics)
}

// Close ends every subscription with ErrClosed, stops every source and waits for them.
// It ends a retirement at once.
func (h *Hub) Close() {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.closed = true
	topics := h.topics
	h.topics = map[string]*Topic{}
	h.mu.Unlock()
	for _, t := range topics {
		t.stop()
		t.closeStreams()
	}
	h.wg.Wait()
	close(h.quit)
	h.bg.Wait()
}

// beats adds a heartbeat to each topic that has been idle for the heartbeat interval,
// checking every quarter of it: one ticker for all topics and all their subscribers.
func (h *Hub) beats() {
	tick := time.NewTicker(h.cfg.Heartbeat / 4)
	defer tick.Stop()
	for {
		select {
		case now := <-tick.C:
			for _, t := range h.running() {
				t.heartbeat(now)
			}
		case <-h.quit:
			return
		}
	}
}

// running returns the running topics.
func (h *Hub) running() []*Topic {
	h.mu.Lock()
	defer h.mu.Unlock()
	topics := make([]*Topic, 0, len(h.topics))
	for _, t := range h.topics {
		topics = append(topics, t)
	}
	return topics
}

// LoopStatus describes one running topic, for operators.
type LoopStatus struct {
	// Key is the topic's key.
	Key string
	// Subscribers counts its subscribers.
	Subscribers int
	// Version is the current version id; "" before the first document.
	Version string
	// History counts the versions kept for resume.
	History int
	// Draining counts the subscribers that a drain is to end.
	Draining int
	// Upstream is the upstream status clients were last told.
	Upstream Status
	// Source is the topic's source, such as a *PollSource.
	Source Source
}

// Loops describes the running topics.
func (h *Hub) Loops() []LoopStatus {
	topics := h.running()
	out := make([]LoopStatus, 0, len(topics))
	for _, t := range topics {
		out = append(out, t.describe())
	}
	return out
}
