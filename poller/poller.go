// Package poller runs one upstream poll loop: it requests a legacy JSON endpoint once per
// interval, bounds each request in time and size, and reports every outcome to a callback.
package poller

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"
)

// Defaults applied by New to zero Config fields.
const (
	DefaultInterval = 2 * time.Second
	DefaultTimeout  = 10 * time.Second
	DefaultMaxBody  = 8 << 20
)

// Config describes one upstream request and its schedule.
type Config struct {
	// URL is the absolute http or https URL polled.
	URL string
	// Method is GET (default) or POST.
	Method string
	// Header is sent on every poll.
	Header http.Header
	// Body is the request body of a POST poll.
	Body []byte
	// Interval is the time between the starts of two polls.
	Interval time.Duration
	// Timeout bounds one poll, body included.
	Timeout time.Duration
	// MaxBody bounds the response body, counted after decompression.
	MaxBody int64
	// Client sends the requests; nil means a client from NewClient.
	Client *http.Client
}

// Result is the outcome of one poll.
type Result struct {
	// Body is the response body of a successful poll.
	Body []byte
	// Status is the HTTP status received, 0 when no response arrived.
	Status int
	// Err is nil on success, else an *Error.
	Err error
	// Duration is how long the poll took.
	Duration time.Duration
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

// Poller polls one upstream.
type Poller struct {
	cfg Config
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
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.Client == nil {
		cfg.Client = NewClient()
	}
	return &Poller{cfg: cfg}, nil
}

// Interval returns the configured time between polls.
func (p *Poller) Interval() time.Duration { return p.cfg.Interval }

// Run polls once at once, then once per interval, calling fn with each result, until ctx
// ends. fn runs on Run's goroutine; a poll never overlaps the previous one, and a poll that
// takes longer than the interval is followed by the next one at once.
func (p *Poller) Run(ctx context.Context, fn func(Result)) {
	ticker := time.NewTicker(p.cfg.Interval)
	defer ticker.Stop()
	for {
		res := p.Poll(ctx)
		if ctx.Err() != nil {
			return
		}
		fn(res)
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// Poll makes one request.
func (p *Poller) Poll(ctx context.Context) Result {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	body, status, err := p.fetch(ctx)
	return Result{Body: body, Status: status, Err: err, Duration: time.Since(start)}
}

func (p *Poller) fetch(ctx context.Context) ([]byte, int, error) {
	req, err := p.request(ctx)
	if err != nil {
		return nil, 0, &Error{Reason: "bad request", err: err}
	}
	resp, err := p.cfg.Client.Do(req)
	if err != nil {
		return nil, 0, transportError(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil, resp.StatusCode, &Error{Status: resp.StatusCode, Reason: "upstream answered " + http.StatusText(resp.StatusCode)}
	}
	body, err := readLimited(resp.Body, p.cfg.MaxBody)
	if err != nil {
		return nil, resp.StatusCode, bodyError(resp.StatusCode, err)
	}
	return body, resp.StatusCode, nil
}

func (p *Poller) request(ctx context.Context) (*http.Request, error) {
	var body io.Reader
	if p.cfg.Method == http.MethodPost {
		body = bytes.NewReader(p.cfg.Body)
	}
	req, err := http.NewRequestWithContext(ctx, p.cfg.Method, p.cfg.URL, body)
	if err != nil {
		return nil, err
	}
	for k, vs := range p.cfg.Header {
		req.Header[k] = vs
	}
	if req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", "application/json")
	}
	return req, nil
}

// errTooLarge reports a body over MaxBody.
var errTooLarge = errors.New("body too large")

func readLimited(r io.Reader, limit int64) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(body)) > limit {
		return nil, fmt.Errorf("%w: over %d bytes", errTooLarge, limit)
	}
	return body, nil
}

func bodyError(status int, err error) error {
	if errors.Is(err, errTooLarge) {
		return &Error{Status: status, Reason: err.Error(), err: err}
	}
	e := transportError(err).(*Error)
	e.Status = status
	return e
}

func transportError(err error) error {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return &Error{Reason: "timeout", err: err}
	case errors.Is(err, errRedirect):
		return &Error{Reason: errRedirect.Error(), err: err}
	default:
		return &Error{Reason: "upstream unreachable", err: err}
	}
}
