package caddymodule

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2"

	"github.com/pollsse/caddy-poll-sse/poller"
)

// routeClient is the HTTP client of a route's hub, shared by all its poll loops, so that
// they share one connection pool and one OAuth2 token. It lives as long as the hub, across
// reloads; the transport under it belongs to a config. Each config that uses the hub
// attaches its transport on Provision and detaches it on Cleanup, and polls go through the
// transport of the newest config still attached: after a reload the kept loops use the new
// config's transport, with its freshly read certificates, and a config that fails to load
// hands the loops back to the one before it.
type routeClient struct {
	client *http.Client // handed to every poll loop of the hub
	tokens *tokenCache  // nil without oauth2

	mu       sync.Mutex
	attached []attachedTransport // oldest first
	current  atomic.Pointer[http.Transport]
}

type attachedTransport struct {
	owner *Handler
	rt    *http.Transport
}

// newRouteClient returns the client of a new hub; oauth2 is nil without credentials.
func newRouteClient(oauth2 *oauth2Settings) *routeClient {
	rc := new(routeClient)
	rc.client = poller.ClientWith(rc)
	if oauth2 != nil {
		rc.tokens = newTokenCache(oauth2, poller.ClientWith(baseTransport{rc}))
	}
	return rc
}

// attach makes rt the transport of the hub's polls, on behalf of owner.
func (rc *routeClient) attach(owner *Handler, rt *http.Transport) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.attached = append(rc.attached, attachedTransport{owner, rt})
	rc.current.Store(rt)
}

// detach drops owner's transport. The newest transport still attached takes over; when
// none is left the last one stays, for the polls of loops the hub is stopping.
func (rc *routeClient) detach(owner *Handler) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for i, a := range rc.attached {
		if a.owner == owner {
			rc.attached = append(rc.attached[:i], rc.attached[i+1:]...)
			a.rt.CloseIdleConnections()
			break
		}
	}
	if n := len(rc.attached); n > 0 {
		rc.current.Store(rc.attached[n-1].rt)
	}
}

// RoundTrip sends a poll through the current transport, with a bearer token when the
// route has OAuth2 credentials. The request carries a replacer of global placeholders,
// such as {env.*}, which reverse_proxy's transport reads at request time, as in a
// forward_proxy_url of {env.HTTPS_PROXY}.
func (rc *routeClient) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.WithContext(context.WithValue(req.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
	if rc.tokens != nil {
		return rc.tokens.roundTrip(rc.current.Load(), req)
	}
	return rc.current.Load().RoundTrip(req)
}

// baseTransport sends requests through the route's current transport, with no token: the
// token endpoint is reached with the route's TLS settings.
type baseTransport struct{ rc *routeClient }

func (b baseTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	return b.rc.current.Load().RoundTrip(req)
}
