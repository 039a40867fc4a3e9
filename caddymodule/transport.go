package caddymodule

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	"go.uber.org/zap"

	"github.com/pollsse/caddy-poll-sse/poller"
)

// pollIdleConnsPerHost is how many idle connections a route keeps to its upstream, unless
// keepalive_idle_conns_per_host says otherwise. The loops of a route all poll one host,
// and their polls come in bursts (all the loops that started together): reverse_proxy's
// default of 32 would close the connections of every burst beyond 32 and open them again
// at the next, where this many are kept and reused.
const pollIdleConnsPerHost = 256

// pollVersions are the HTTP versions a poll may use: reverse_proxy's, less HTTP/3, whose
// transport a config unload closes while loops kept by a reload still use it.
var pollVersions = []string{"1.1", "2", "h2c"}

// parseTransport parses `transport http { … }`: the subdirectives of reverse_proxy's
// HTTP transport, parsed by its own code, then checked for what polling supports.
func (h *Handler) parseTransport(d *caddyfile.Dispenser) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	if d.Val() != "http" {
		return d.Errf("transport: %q is not supported; the only transport is http", d.Val())
	}
	if h.TransportRaw != nil {
		return d.Err("transport: given twice")
	}
	at := caddyfile.NewDispenser([]caddyfile.Token{d.Token()}) // errors name the transport line
	at.Next()
	t := new(reverseproxy.HTTPTransport)
	if err := t.UnmarshalCaddyfile(d.NewFromNextSegment()); err != nil {
		return err
	}
	if err := checkTransport(t); err != nil {
		return at.Errf("transport: %v", err)
	}
	h.TransportRaw = caddyconfig.JSONModuleObject(t, "protocol", "http", nil)
	return nil
}

// parseDial parses `dial unix//<path>`.
func (h *Handler) parseDial(d *caddyfile.Dispenser) error {
	if err := parseString(d, &h.Dial); err != nil {
		return err
	}
	if _, err := unixSocket(h.Dial); err != nil {
		return d.Errf("%v", err)
	}
	return nil
}

// checkTransport refuses the options of reverse_proxy's transport that polling cannot
// honour: a PROXY protocol header (a poll has no client address to pass on), a TLS server
// name with placeholders (a poll has no request to fill them from), a client certificate
// automated by Caddy's TLS app (a pooled loop outlives the config whose app manages it),
// and HTTP/3.
func checkTransport(t *reverseproxy.HTTPTransport) error {
	for _, v := range t.Versions {
		if !slices.Contains(pollVersions, v) {
			return fmt.Errorf("versions: %q is not one of %s", v, strings.Join(pollVersions, ", "))
		}
	}
	switch {
	case t.ProxyProtocol != "":
		return errors.New("proxy_protocol: polls have no client address to send")
	case t.TLS == nil:
		return nil
	case strings.Contains(t.TLS.ServerName, "{"):
		return errors.New("tls_server_name: placeholders are not supported in polls")
	case t.TLS.ClientCertificateAutomate != "":
		return errors.New("tls_client_auth: give a certificate file and a key file")
	}
	return nil
}

// unixSocket returns the socket path of a `unix//<path>` dial address.
func unixSocket(dial string) (string, error) {
	addr, err := caddy.ParseNetworkAddress(caddy.NewReplacer().ReplaceKnown(dial, ""))
	if err != nil || addr.Network != "unix" || addr.Host == "" {
		return "", fmt.Errorf("dial %q: want unix//<socket path>", dial)
	}
	return addr.Host, nil
}

// provisionTransport builds the HTTP transport of this config: reverse_proxy's, loaded
// and provisioned by Caddy, which also cleans it up when the config unloads; or, without
// a transport block, the poller's default. With dial, connections to the upstream's host
// go to the Unix socket instead.
func (h *Handler) provisionTransport(ctx caddy.Context) (*http.Transport, error) {
	rt, err := h.loadTransport(ctx)
	if err != nil {
		return nil, err
	}
	if h.Dial == "" {
		return rt, nil
	}
	socket, err := unixSocket(h.Dial)
	if err != nil {
		return nil, err
	}
	authority, err := dialedAuthority(h.poll.URL)
	if err != nil {
		return nil, err
	}
	dial := rt.DialContext
	rt.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if addr == authority {
			network, addr = "unix", socket
		}
		return dial(ctx, network, addr)
	}
	rt.Proxy = nil // the socket is local: no forward proxy reaches it
	return rt, nil
}

func (h *Handler) loadTransport(ctx caddy.Context) (*http.Transport, error) {
	if h.TransportRaw == nil {
		rt := poller.NewClient().Transport.(*http.Transport)
		rt.MaxIdleConnsPerHost = pollIdleConnsPerHost
		return rt, nil
	}
	var idle struct {
		KeepAlive struct {
			PerHost int `json:"max_idle_conns_per_host"`
		} `json:"keep_alive"`
	}
	_ = json.Unmarshal(h.TransportRaw, &idle) // malformed JSON is LoadModule's to report
	mod, err := ctx.LoadModule(h, "TransportRaw")
	if err != nil {
		return nil, fmt.Errorf("loading transport: %w", err)
	}
	t, ok := mod.(*reverseproxy.HTTPTransport)
	if !ok {
		return nil, fmt.Errorf("transport: %T is not supported; the only transport is http", mod)
	}
	if err := h.checkTransportUse(t); err != nil {
		return nil, fmt.Errorf("transport: %w", err)
	}
	if idle.KeepAlive.PerHost == 0 {
		t.Transport.MaxIdleConnsPerHost = pollIdleConnsPerHost
	}
	if t.TLS != nil && t.TLS.InsecureSkipVerify {
		h.logger.Warn("upstream TLS certificates are not verified (tls_insecure_skip_verify): anyone on the path can read and change polls; use only in testing",
			zap.String("route", h.routeName()))
	}
	return t.Transport, nil
}

// checkTransportUse checks the transport against the rest of the route.
func (h *Handler) checkTransportUse(t *reverseproxy.HTTPTransport) error {
	if err := checkTransport(t); err != nil {
		return err
	}
	scheme, _, _ := strings.Cut(h.poll.URL, "://")
	switch {
	case t.TLS != nil && scheme != "https":
		return errors.New("tls options need an https upstream URL")
	case slices.Contains(t.Versions, "h2c") && scheme != "http":
		return errors.New("versions h2c needs an http upstream URL")
	case h.Dial != "" && (t.ForwardProxyURL != "" || t.NetworkProxyRaw != nil):
		return errors.New("a forward proxy cannot reach a dial unix socket")
	}
	return nil
}

// dialedAuthority returns the host:port that the HTTP transport dials for rawURL.
func dialedAuthority(rawURL string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", fmt.Errorf("parsing upstream URL: %w", err)
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	return net.JoinHostPort(u.Hostname(), port), nil
}

// provisionUpstreamClient resolves the OAuth2 credentials and builds this config's
// transport, which Provision attaches to the hub's client once it has the hub.
func (h *Handler) provisionUpstreamClient(ctx caddy.Context) error {
	var err error
	if h.oauth2, err = h.OAuth2.resolve(h); err != nil {
		return err
	}
	h.transportID = h.transportKey()
	h.transport, err = h.provisionTransport(ctx)
	return err
}

// attachTransport makes this config's transport the one of the hub's loops.
func (h *Handler) attachTransport(rc *routeClient) {
	h.client = rc
	rc.attach(h, h.transport)
	h.poll.Client = rc.client
}

// detachTransport hands the hub's loops back to the transport of an older config still
// using the hub, if any.
func (h *Handler) detachTransport() {
	if h.client != nil {
		h.client.detach(h)
	}
}

// transportKey tells apart routes whose polls travel differently: transport settings,
// dial socket and OAuth2 credentials (by a digest of the secret, never the token). It is
// empty when none is set, so that such routes keep their keys.
func (h *Handler) transportKey() string {
	if h.TransportRaw == nil && h.Dial == "" && h.oauth2 == nil {
		return ""
	}
	var oauth2 string
	if h.oauth2 != nil {
		oauth2 = h.oauth2.identity
	}
	sum := sha256.Sum256(fmt.Appendf(nil, "%q %q %q", h.TransportRaw, h.Dial, oauth2))
	return hex.EncodeToString(sum[:16])
}
