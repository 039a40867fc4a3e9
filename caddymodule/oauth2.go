package caddymodule

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// OAuth2 has polls carry a bearer token got with the OAuth2 client credentials grant
// (RFC 6749 section 4.4). The token is fetched once for the route, whatever the number of
// its loops, renewed shortly before it expires, and renewed at once when the upstream
// answers 401, after which the poll is sent again, once. The token is never logged, shown
// in the admin API, or part of a loop's identity: a new token never resyncs clients.
type OAuth2 struct {
	// TokenURL is the token endpoint, an absolute http or https URL. Required.
	TokenURL string `json:"token_url,omitempty"`
	// ClientID identifies the client. Required. It may use {env.*} and {file.*}
	// placeholders, resolved at each config load.
	ClientID string `json:"client_id,omitempty"`
	// ClientSecret is the client's secret. Required. It may use {env.*} and {file.*}
	// placeholders, resolved at each config load; one that resolves to nothing is an
	// error. A rotated secret takes effect at the next reload, with new poll loops.
	ClientSecret string `json:"client_secret,omitempty"`
	// Scopes are requested with the token. Default: none.
	Scopes []string `json:"scopes,omitempty"`
	// Audience is sent to the token endpoint as the `audience` parameter, which some
	// providers require. Default: none.
	Audience string `json:"audience,omitempty"`
}

// oauth2Settings are the OAuth2 settings with placeholders resolved.
type oauth2Settings struct {
	conf *clientcredentials.Config
	// identity tells the credentials apart without holding the secret: it is part of the
	// route's settings key, never the token.
	identity string
	logger   *zap.Logger // with the route's name
}

// parseOAuth2 parses `oauth2 { token_url client_id client_secret scopes audience }`.
func (h *Handler) parseOAuth2(d *caddyfile.Dispenser) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	if h.OAuth2 != nil {
		return d.Err("oauth2: given twice")
	}
	o := new(OAuth2)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		if err := o.parseSubdirective(d); err != nil {
			return err
		}
	}
	if err := o.check(); err != nil {
		return d.Errf("%v", err)
	}
	h.OAuth2 = o
	return nil
}

func (o *OAuth2) parseSubdirective(d *caddyfile.Dispenser) error {
	switch name := d.Val(); name {
	case "token_url":
		return parseString(d, &o.TokenURL)
	case "client_id":
		return parseString(d, &o.ClientID)
	case "client_secret":
		return parseString(d, &o.ClientSecret)
	case "audience":
		return parseString(d, &o.Audience)
	case "scopes":
		return parseFields(d, &o.Scopes)
	default:
		return d.Errf("oauth2: unknown subdirective %q", name)
	}
}

// check reports a missing or malformed setting.
func (o *OAuth2) check() error {
	switch {
	case o.TokenURL == "":
		return errors.New("oauth2: token_url is required")
	case o.ClientID == "":
		return errors.New("oauth2: client_id is required")
	case o.ClientSecret == "":
		return errors.New("oauth2: client_secret is required")
	}
	u, err := url.Parse(o.TokenURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("oauth2: token_url: want an absolute http or https URL")
	}
	return nil
}

// resolve checks o and resolves its placeholders. A poll's own Authorization, set by
// header_up or forwarded from clients, would be overwritten by the token, so it is an
// error.
func (o *OAuth2) resolve(h *Handler) (*oauth2Settings, error) {
	if o == nil {
		return nil, nil
	}
	if err := o.check(); err != nil {
		return nil, err
	}
	if containsFold(slices.Collect(maps.Keys(h.HeaderUp)), "Authorization") || containsFold(h.Forward, "Authorization") {
		return nil, errors.New("oauth2: the token is the polls' Authorization; header_up and forward cannot set it too")
	}
	repl := caddy.NewReplacer()
	var resolved [3]string
	for i, v := range []string{o.TokenURL, o.ClientID, o.ClientSecret} {
		r, err := repl.ReplaceOrErr(v, true, false)
		if err != nil {
			return nil, fmt.Errorf("oauth2: %s: %w", [...]string{"token_url", "client_id", "client_secret"}[i], err)
		}
		resolved[i] = r
	}
	conf := &clientcredentials.Config{TokenURL: resolved[0], ClientID: resolved[1], ClientSecret: resolved[2], Scopes: o.Scopes}
	if o.Audience != "" {
		conf.EndpointParams = url.Values{"audience": {o.Audience}}
	}
	secret := sha256.Sum256([]byte(conf.ClientSecret))
	identity := fmt.Sprintf("%q %q %x %q %q", conf.TokenURL, conf.ClientID, secret, conf.Scopes, o.Audience)
	logger := h.logger.With(zap.String("route", h.routeName()))
	return &oauth2Settings{conf: conf, identity: identity, logger: logger}, nil
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

// maxEarlyRenewal bounds how early a token is renewed: when a tenth of its lifetime is
// left, at most this long before it expires; a 60 s token at 54 s, an hour's at 59 min 50 s.
const maxEarlyRenewal = 10 * time.Second

// failureHold is how long a failed token request answers for all loops: the loops that
// waited on it fail with it, and each loop's own backoff spaces its next try.
const failureHold = time.Second

// tokenCache holds a route's token. Its lock is held while a token is fetched, so that
// however many loops need one at once, one request serves them all.
type tokenCache struct {
	conf   *clientcredentials.Config
	client *http.Client // reaches the token endpoint
	now    func() time.Time
	logger *zap.Logger // never given the token

	lock    chan struct{} // a one-slot semaphore, so that waiting honours contexts
	tok     *oauth2.Token
	renewAt time.Time
	// forced says tok was fetched because the upstream refused the one before; forceNext
	// that the next fetch is such a one.
	forced, forceNext bool
	// failed is when the last fetch failed, with failure: the loops that waited for it
	// share its failure rather than each asking again.
	failed  time.Time
	failure tokenError
}

func newTokenCache(s *oauth2Settings, client *http.Client) *tokenCache {
	logger := s.logger
	if logger == nil {
		logger = zap.NewNop()
	}
	return &tokenCache{conf: s.conf, client: client, now: time.Now, logger: logger, lock: make(chan struct{}, 1)}
}

// token returns the cached token, fetching a new one when there is none or it is due
// for renewal.
func (c *tokenCache) token(ctx context.Context) (*oauth2.Token, error) {
	select {
	case c.lock <- struct{}{}:
	case <-ctx.Done():
		return nil, tokenError{ctx.Err()}
	}
	defer func() { <-c.lock }()
	switch {
	case c.tok != nil && c.now().Before(c.renewAt):
		return c.tok, nil
	case c.now().Sub(c.failed) < failureHold:
		return nil, c.failure
	}
	tok, err := c.conf.Token(context.WithValue(ctx, oauth2.HTTPClient, c.client))
	if err != nil {
		c.failed, c.failure = c.now(), tokenError{err}
		c.logger.Debug("fetching oauth2 token", zap.String("error", c.failure.Reason()))
		return nil, c.failure
	}
	c.tok, c.renewAt = tok, renewal(c.now(), tok)
	c.forced, c.forceNext = c.forceNext, false
	c.logger.Debug("fetched oauth2 token", zap.Duration("renew_in", c.renewAt.Sub(c.now())), zap.Bool("after_401", c.forced))
	return tok, nil
}

// renewal returns when tok, fetched at now, is renewed; a token without expiry is kept
// until the upstream refuses it. Its lifetime is measured on the real clock, which
// x/oauth2 used to turn expires_in into Expiry.
func renewal(now time.Time, tok *oauth2.Token) time.Time {
	if tok.Expiry.IsZero() {
		return now.Add(100 * 365 * 24 * time.Hour)
	}
	lifetime := time.Until(tok.Expiry)
	return now.Add(lifetime - min(maxEarlyRenewal, lifetime/10))
}

// refused reports that the upstream answered 401 to tok, and whether a poll should be
// sent again: yes when tok is dropped here, or another loop renewed it already; no when
// tok is itself the renewal of a refused token and was never taken. So an upstream that
// refuses every token costs the token endpoint one extra request per token lifetime, not
// one per poll.
func (c *tokenCache) refused(ctx context.Context, tok *oauth2.Token) bool {
	select {
	case c.lock <- struct{}{}:
	case <-ctx.Done():
		return false
	}
	defer func() { <-c.lock }()
	switch {
	case c.tok != tok:
		return true
	case c.forced:
		return false
	}
	c.tok, c.forceNext = nil, true
	return true
}

// accepted notes that the upstream took tok: a renewal after a 401 that the upstream took
// may be renewed after a 401 again. When a fetch holds the lock, it is left alone.
func (c *tokenCache) accepted(tok *oauth2.Token) {
	select {
	case c.lock <- struct{}{}:
	default:
		return
	}
	if c.tok == tok {
		c.forced = false
	}
	<-c.lock
}

// roundTrip sends req through rt with the route's token; on a 401 it renews the token and
// sends req again, once. The body of a POST poll is replayed through req.GetBody.
func (c *tokenCache) roundTrip(rt http.RoundTripper, req *http.Request) (*http.Response, error) {
	tok, err := c.token(req.Context())
	if err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	resp, err := rt.RoundTrip(withToken(req, req.Body, tok))
	if err != nil || (resp.StatusCode == http.StatusUnauthorized && req.Body != nil && req.GetBody == nil) {
		return resp, err
	}
	if resp.StatusCode != http.StatusUnauthorized {
		c.accepted(tok)
		return resp, nil
	}
	if !c.refused(req.Context(), tok) {
		return resp, nil
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // so the connection is reused
	resp.Body.Close()
	return c.retry(rt, req)
}

func (c *tokenCache) retry(rt http.RoundTripper, req *http.Request) (*http.Response, error) {
	var body io.ReadCloser
	if req.GetBody != nil {
		var err error
		if body, err = req.GetBody(); err != nil {
			return nil, err
		}
	}
	tok, err := c.token(req.Context())
	if err != nil {
		if body != nil {
			body.Close()
		}
		return nil, err
	}
	resp, err := rt.RoundTrip(withToken(req, body, tok))
	if err == nil && resp.StatusCode != http.StatusUnauthorized {
		c.accepted(tok)
	}
	return resp, err
}

// withToken returns a copy of req with body and tok's Authorization.
func withToken(req *http.Request, body io.ReadCloser, tok *oauth2.Token) *http.Request {
	r := req.Clone(req.Context())
	r.Body = body
	r.Header.Set("Authorization", tok.Type()+" "+tok.AccessToken)
	return r
}

// tokenError is a failure to get a token, told to clients in a few safe words: never the
// endpoint's answer, which may echo credentials.
type tokenError struct{ err error }

func (e tokenError) Error() string { return "getting oauth2 token: " + e.err.Error() }
func (e tokenError) Unwrap() error { return e.err }

// Reason implements poller.Reasoner.
func (e tokenError) Reason() string {
	var re *oauth2.RetrieveError
	switch {
	case errors.As(e.err, &re) && re.Response != nil:
		return fmt.Sprintf("oauth2 token endpoint answered %d", re.Response.StatusCode)
	case errors.Is(e.err, context.DeadlineExceeded), errors.Is(e.err, context.Canceled):
		return "timeout getting oauth2 token"
	}
	return "oauth2 token request failed"
}
