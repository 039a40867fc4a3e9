package poller

import (
	"errors"
	"net"
	"net/http"
	"time"
)

// errRedirect reports a redirect to another scheme or host, which is never followed:
// the configured upstream fixes both.
var errRedirect = errors.New("redirect to another host refused")

// maxRedirects bounds redirect chains on the same host.
const maxRedirects = 5

// NewClient returns the HTTP client polls use by default: its own connection pool, sane
// dial and header timeouts, and redirects followed only to the same scheme and host.
func NewClient() *http.Client {
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   32,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   5 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	return ClientWith(tr)
}

// ClientWith returns an HTTP client that sends polls through rt, following redirects only
// to the same scheme and host, as NewClient's does. Share one client among the loops of
// an upstream, so that they share rt's connections.
func ClientWith(rt http.RoundTripper) *http.Client {
	return &http.Client{Transport: rt, CheckRedirect: sameOrigin}
}

func sameOrigin(req *http.Request, via []*http.Request) error {
	if len(via) >= maxRedirects {
		return errors.New("too many redirects")
	}
	first := via[0].URL
	if req.URL.Scheme != first.Scheme || req.URL.Host != first.Host {
		return errRedirect
	}
	return nil
}
