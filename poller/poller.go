// Package poller runs one upstream poll loop: it requests a legacy JSON endpoint once per
// interval, bounds each request in time and size, backs off while the upstream fails, sends
// conditional requests, and reports every outcome to a callback.
package poller

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// Defaults applied by New to zero Config fields.
const (
	DefaultInterval   = 2 * time.Second
	DefaultTimeout    = 10 * time.Second
	DefaultMaxBody    = 8 << 20
	DefaultMaxBackoff = time.Minute
)

// Config describes one upstream request and its schedule.
type Config struct {
	// URL is the absolute http or https URL polled.
	URL string
	// Method is GET (default) or POST.
	Method string
	// Header is sent on every poll. It overrides the defaults: Accept: application/json,
	// Accept-Encoding: gzip, and Content-Type: application/json on a POST. Whatever it says
	// of Accept-Encoding, the poller decodes gzip responses itself, under MaxBody; any other
	// Content-Encoding is an error. An If-None-Match or If-Modified-Since set here replaces
	// the validator the poller would send.
	Header http.Header
	// Body is the request body of a POST poll.
	Body []byte
	// Interval is the time between the starts of two successful polls.
	Interval time.Duration
	// Timeout bounds one poll, body included.
	Timeout time.Duration
	// MaxBody bounds the response body, counted after decompression.
	MaxBody int64
	// MaxBackoff caps the wait after consecutive failures; default DefaultMaxBackoff, and
	// never less than Interval.
	MaxBackoff time.Duration
	// Client sends the requests; nil means a client from NewClient.
	Client *http.Client
	// Clock tells the time and waits between polls; nil means the real clock.
	Clock Clock
	// Rand returns a number in [0, 1) for jitter; nil means math/rand/v2 Float64.
	Rand func() float64
}

// Result is the outcome of one poll.
type Result struct {
	// Body is the response body of a successful poll; nil when NotModified.
	Body []byte
	// Status is the HTTP status received, 0 when no response arrived.
	Status int
	// Err is nil on success, else an *Error.
	Err error
	// Duration is how long the poll took, by the configured Clock.
	Duration time.Duration
	// NotModified reports a 304 answer to a conditional request: the document is the one
	// of the last successful poll.
	NotModified bool
	// RetryAfter is the upstream's Retry-After on a 429 or 503, capped at MaxRetryAfter.
	RetryAfter time.Duration
}

// Error is a failed poll, as clients are told about it.
type Error struct {
	// Status is the HTTP status received, 0 when no response arrived.
	Status int
	// Reason is short and safe to show to clients: it never holds the URL or headers.
	Reason string
	err    error
}

func (e *Error) Error() string { return e.Reason }

// Unwrap returns the underlying error, if any.
func (e *Error) Unwrap() error { return e.err }

// Poller polls one upstream. It belongs to one poll loop: its conditional-request and
// backoff state describe that loop.
type Poller struct {
	cfg  Config
	poke chan struct{}

	mu sync.Mutex
	// etag and lastModified are the validators of the last response that passed all checks.
	etag, lastModified string
	failures           int       // consecutive failed polls
	next               time.Time // when the next poll is due
}

// New checks cfg, fills in defaults and returns a Poller.
func New(cfg Config) (*Poller, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("parsing upstream URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("upstream URL %q: want an absolute http or https URL", u.Redacted())
	}
	if cfg.Method == "" {
		cfg.Method = http.MethodGet
	}
	if cfg.Method != http.MethodGet && cfg.Method != http.MethodPost {
		return nil, fmt.Errorf("method %q: want GET or POST", cfg.Method)
	}
	applyDefaults(&cfg)
	return &Poller{cfg: cfg, poke: make(chan struct{}, 1)}, nil
}

func applyDefaults(cfg *Config) {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	cfg.MaxBackoff = max(cfg.MaxBackoff, cfg.Interval)
	if cfg.Client == nil {
		cfg.Client = NewClient()
	}
	if cfg.Clock == nil {
		cfg.Clock = realClock{}
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Float64
	}
	cfg.Header = canonicalHeader(cfg.Header)
}

// canonicalHeader copies h with canonical keys, so that the defaults see what it sets.
func canonicalHeader(h http.Header) http.Header {
	out := make(http.Header, len(h))
	for k, vs := range h {
		ck := http.CanonicalHeaderKey(k)
		out[ck] = append(out[ck], vs...)
	}
	return out
}

// Interval returns the configured time between polls.
func (p *Poller) Interval() time.Duration { return p.cfg.Interval }

// Poll makes one request. A 304 answer to the validators of an earlier successful poll is
// a success with NotModified set.
func (p *Poller) Poll(ctx context.Context) Result {
	start := p.cfg.Clock.Now()
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	res := p.fetch(ctx)
	res.Duration = p.cfg.Clock.Now().Sub(start)
	return res
}

func (p *Poller) fetch(ctx context.Context) Result {
	req, conditional, err := p.request(ctx)
	if err != nil {
		return Result{Err: &Error{Reason: "bad request", err: err}}
	}
	resp, err := p.cfg.Client.Do(req)
	if err != nil {
		return Result{Err: transportError(err)}
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotModified && conditional:
		return Result{Status: http.StatusNotModified, NotModified: true}
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		return p.statusError(resp)
	}
	return p.success(resp)
}

// request builds one poll's request; conditional reports whether it carries a validator
// remembered from an earlier response.
func (p *Poller) request(ctx context.Context) (req *http.Request, conditional bool, err error) {
	var body io.Reader
	if p.cfg.Method == http.MethodPost {
		body = bytes.NewReader(p.cfg.Body)
	}
	req, err = http.NewRequestWithContext(ctx, p.cfg.Method, p.cfg.URL, body)
	if err != nil {
		return nil, false, err
	}
	req.Header = p.cfg.Header.Clone()
	setDefault(req.Header, "Accept", "application/json")
	setDefault(req.Header, "Accept-Encoding", "gzip")
	if body != nil {
		setDefault(req.Header, "Content-Type", "application/json")
	}
	return req, p.addValidators(req.Header), nil
}

// setDefault sets key, in canonical form, unless h already has it.
func setDefault(h http.Header, key, value string) {
	if _, ok := h[key]; !ok {
		h[key] = []string{value}
	}
}
