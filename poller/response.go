package poller

import (
	"compress/flate"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// MaxRetryAfter caps the wait an upstream's Retry-After can ask for.
const MaxRetryAfter = 10 * time.Minute

const (
	// errorDiscard is how much of an error response is read, so its connection can be reused.
	errorDiscard = 64 << 10
	// refusedDiscard is how much of a refused 2xx body is read.
	refusedDiscard = 4 << 10
	// maxReasonValue bounds an upstream value quoted in a Reason.
	maxReasonValue = 64
	// maxValidator bounds a remembered ETag or Last-Modified.
	maxValidator = 1 << 10
)

var (
	// errTooLarge reports a body over MaxBody.
	errTooLarge = errors.New("body too large")
	// errEncoding reports a Content-Encoding the poller does not decode.
	errEncoding = errors.New("unsupported Content-Encoding")
	// errBadGzip reports a gzip body that does not decode.
	errBadGzip = errors.New("bad gzip body")
)

// statusError reports a response outside 2xx, with its Retry-After when it asks to slow down.
func (p *Poller) statusError(resp *http.Response) Result {
	_, _ = io.CopyN(io.Discard, resp.Body, errorDiscard)
	res := Result{
		Status: resp.StatusCode,
		Err:    &Error{Status: resp.StatusCode, Reason: "upstream answered " + http.StatusText(resp.StatusCode)},
	}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		res.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), p.cfg.Clock.Now())
	}
	return res
}

// success reads a 2xx response: a JSON-compatible type, decoded, under MaxBody.
func (p *Poller) success(resp *http.Response) Result {
	status := resp.StatusCode
	if mt := mediaType(resp.Header.Get("Content-Type")); !acceptedType(mt) {
		_, _ = io.CopyN(io.Discard, resp.Body, refusedDiscard)
		reason := "not JSON (Content-Type " + clip(mt) + ")"
		return Result{Status: status, Err: &Error{Status: status, Reason: reason}}
	}
	body, err := p.readBody(resp)
	if err != nil {
		return Result{Status: status, Err: bodyError(status, err)}
	}
	p.remember(resp.Header)
	return Result{Body: body, Status: status}
}

// mediaType returns the media type of a Content-Type value, lowercase, without parameters.
func mediaType(ct string) string {
	mt, _, _ := strings.Cut(ct, ";")
	return strings.ToLower(strings.TrimSpace(mt))
}

// acceptedType reports whether a body of media type mt may be JSON: a JSON type, text/plain,
// application/octet-stream, or none at all.
func acceptedType(mt string) bool {
	switch mt {
	case "", "text/plain", "application/octet-stream":
		return true
	}
	_, sub, ok := strings.Cut(mt, "/")
	return ok && (sub == "json" || strings.HasSuffix(sub, "+json"))
}

// clip makes an upstream value fit for a Reason: printable ASCII, at most maxReasonValue bytes.
func clip(s string) string {
	b := []byte(s[:min(len(s), maxReasonValue)])
	for i, c := range b {
		if c < 0x20 || c > 0x7e {
			b[i] = '?'
		}
	}
	return string(b)
}

// readBody reads the decoded body, failing past MaxBody decoded bytes without reading further.
func (p *Poller) readBody(resp *http.Response) ([]byte, error) {
	r, err := decoder(resp)
	if err != nil {
		return nil, err
	}
	return readLimited(r, p.cfg.MaxBody)
}

// decoder returns a reader of resp's decoded body: gzip is the only coding decoded.
func decoder(resp *http.Response) (io.Reader, error) {
	if resp.Uncompressed {
		return resp.Body, nil
	}
	enc := strings.ToLower(strings.TrimSpace(strings.Join(resp.Header.Values("Content-Encoding"), ",")))
	switch enc {
	case "", "identity":
		return resp.Body, nil
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(resp.Body)
		if errors.Is(err, io.EOF) {
			err = gzip.ErrHeader
		}
		return zr, err
	}
	return nil, fmt.Errorf("%w %s", errEncoding, clip(enc))
}

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
	var corrupt flate.CorruptInputError
	switch {
	case errors.Is(err, errTooLarge), errors.Is(err, errEncoding):
		return &Error{Status: status, Reason: err.Error(), err: err}
	case errors.Is(err, gzip.ErrHeader), errors.Is(err, gzip.ErrChecksum), errors.As(err, &corrupt):
		return &Error{Status: status, Reason: errBadGzip.Error(), err: err}
	}
	e := transportError(err).(*Error)
	e.Status = status
	return e
}

// parseRetryAfter reads a Retry-After value, delta-seconds or HTTP-date, as a wait from now
// in [0, MaxRetryAfter]; 0 when absent or malformed.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if d, ok := deltaSeconds(v); ok {
		return min(d, MaxRetryAfter)
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0
	}
	return min(max(t.Sub(now), 0), MaxRetryAfter)
}

// deltaSeconds parses 1*DIGIT seconds, saturating long before time.Duration overflows.
func deltaSeconds(v string) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	var n int64
	for _, c := range []byte(v) {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = min(n*10+int64(c-'0'), 1<<31)
	}
	return time.Duration(n) * time.Second, true
}
