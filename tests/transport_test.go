package tests

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const transportWait = 10 * time.Second

// TestUpstreamMutualTLS polls an upstream that serves a certificate from a private CA
// and requires a client certificate from it. The route that trusts the CA with
// tls_trust_pool and presents the client certificate with tls_client_auth converges; a
// route without the CA, and one with the CA but no client certificate, stay open and tell
// their clients why in an `upstream` event naming the TLS failure. A route that skips
// verification converges too, and a warning naming it is logged.
func TestUpstreamMutualTLS(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t)
	doc := []byte(`{"private":true,"items":[1,2]}`)
	up := httptest.NewUnstartedServer(serveDoc(doc))
	up.TLS = pki.mutualTLS()
	up.Config.ErrorLog = quietLog()
	up.StartTLS()
	t.Cleanup(up.Close)
	// h2 also speaks HTTP/2. Over HTTP/2 a refused client certificate can surface as a
	// broken connection rather than the server's alert (the client writes its preface
	// before it reads the alert), so the routes that check the failure use up.
	var proto atomic.Value
	h2 := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proto.Store(r.Proto)
		serveDoc(doc)(w, r)
	}))
	h2.TLS = pki.mutualTLS()
	h2.EnableHTTP2 = true
	h2.Config.ErrorLog = quietLog()
	h2.StartTLS()
	t.Cleanup(h2.Close)
	caddy := startCaddy(t, strings.Join([]string{
		"poll_sse /mtls " + h2.URL + "/state.json {\n\tinterval 200ms\n\ttransport http {\n\t\ttls_trust_pool file " + pki.caFile +
			"\n\t\ttls_client_auth " + pki.clientCert + " " + pki.clientK + "\n\t}\n}",
		"poll_sse /untrusted " + up.URL + "/state.json {\n\tinterval 200ms\n}",
		"poll_sse /nocert " + up.URL + "/state.json {\n\tinterval 200ms\n\ttransport http {\n\t\ttls_trusted_ca_certs " + pki.caFile + "\n\t}\n}",
		"poll_sse /insecure " + up.URL + "/state.json {\n\tinterval 200ms\n\tname insecure\n\ttransport http {\n\t\ttls_insecure_skip_verify" +
			"\n\t\ttls_client_auth " + pki.clientCert + " " + pki.clientK + "\n\t}\n}",
	}, "\n"))

	c := dialSSE(t, caddy.url(""), atPath("/mtls"))
	c.waitFor(doc, transportWait)
	if got := proto.Load(); got != "HTTP/2.0" {
		t.Errorf("polled over %v, want HTTP/2.0, which the default versions 1.1 2 offer over TLS", got)
	}
	dialSSE(t, caddy.url(""), atPath("/insecure")).waitFor(doc, transportWait)
	if log := caddy.stderr.String(); !strings.Contains(log, "tls_insecure_skip_verify") || !strings.Contains(log, `"route":"insecure"`) {
		t.Error("no warning in the log of a route that does not verify the upstream's certificate")
	}

	for path, reason := range map[string]string{
		"/untrusted": "tls handshake failed: certificate signed by unknown authority",
		"/nocert":    "tls handshake failed: the upstream sent certificate required",
	} {
		c := dialSSE(t, caddy.url(""), atPath(path))
		r, _ := c.waitEvent(path+" upstream failure", transportWait, isUpstream(t, func(s upstreamStatus) bool { return !s.OK }))
		if s := decodeStatus(t, r); s.Error != reason {
			t.Errorf("%s: upstream event %s; want the error %q", path, r.Data, reason)
		}
		if c.doc != nil {
			t.Errorf("%s: got a document without reaching the upstream: %s", path, c.doc)
		}
		c.close()
	}
}

// TestUpstreamUnixSocket polls an upstream listening on a Unix socket, reached with
// `dial unix//<path>`; the URL's host is the Host header the upstream sees.
func TestUpstreamUnixSocket(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(t.TempDir(), "api.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	doc := []byte(`{"via":"unix socket"}`)
	var host atomic.Value
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host.Store(r.Host + " " + r.URL.RequestURI())
		serveDoc(doc)(w, r)
	}), ReadHeaderTimeout: time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	caddy := startCaddy(t, pollSSE("http://api.internal/items?page=1", "interval 200ms", "dial unix/"+sock))
	c := dialSSE(t, caddy.url(""))
	c.waitFor(doc, transportWait)
	if got := host.Load(); got != "api.internal /items?page=1" {
		t.Errorf("the upstream saw %v, want Host api.internal and /items?page=1", got)
	}
}

// TestUpstreamH2C polls an upstream that speaks HTTP/2 over cleartext, with versions h2c.
func TestUpstreamH2C(t *testing.T) {
	t.Parallel()
	doc := []byte(`{"via":"h2c"}`)
	var protos atomic.Value
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		protos.Store(r.Proto)
		serveDoc(doc)(w, r)
	}))
	up.Config.Protocols = new(http.Protocols)
	up.Config.Protocols.SetUnencryptedHTTP2(true)
	up.Start()
	t.Cleanup(up.Close)

	caddy := startCaddy(t, pollSSE(up.URL+"/state.json", "interval 200ms", "transport http {\n\t\tversions h2c\n\t}"))
	c := dialSSE(t, caddy.url(""))
	c.waitFor(doc, transportWait)
	if got := protos.Load(); got != "HTTP/2.0" {
		t.Errorf("the upstream was polled over %v, want HTTP/2.0", got)
	}
}

// TestUpstreamOAuth2 polls, for 30 s at 200 ms, an upstream that takes 2 s tokens from
// a client credentials endpoint and answers 401 to an expired or revoked one (all tokens
// are revoked at 10 s and at 20 s, so polls are refused and sent again), with five clients of
// different tenants (five loops) sharing the route's token. No client is ever told of a
// failure or sent a new version: ids stay as they were; the token endpoint is called about
// once per token lifetime, not per poll or per loop; and neither the token nor the secret
// shows in the admin API, the metrics or the log.
func TestUpstreamOAuth2(t *testing.T) {
	t.Parallel()
	const (
		lifetime = 2 * time.Second
		run      = 30 * time.Second
		tenants  = 5
	)
	o := newOAuthServer(lifetime)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", o.token)
	mux.HandleFunc("GET /orders", o.api)
	up := httptest.NewServer(mux)
	t.Cleanup(up.Close)
	secret := filepath.Join(t.TempDir(), "client_secret")
	if err := os.WriteFile(secret, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	caddy := startCaddy(t, pollSSE(up.URL+"/orders", "name orders", "interval 200ms", "forward X-Tenant",
		"oauth2 {\n\t\ttoken_url "+up.URL+"/token\n\t\tclient_id poller\n\t\tclient_secret {file."+secret+"}"+
			"\n\t\tscopes orders.read\n\t\tscopes orders.status\n\t\taudience https://api.test\n\t}"))

	clients := make([]*sseClient, tenants)
	ids := make([]string, tenants)
	for i := range clients {
		clients[i] = dialSSE(t, caddy.url(""), withHeader("X-Tenant", fmt.Sprint("tenant-", i)))
		clients[i].waitFor(fmt.Appendf(nil, `{"tenant":"tenant-%d","orders":[1,2,3]}`, i), transportWait)
		ids[i] = clients[i].lastID
	}
	start, startFetches := time.Now(), o.fetches.Load()
	for range 3 { // the provider revokes every token twice, at 10 s and at 20 s
		time.Sleep(run / 3)
		if time.Since(start) < run {
			o.revokeAll()
		}
	}
	fetches, polls, refused := o.fetches.Load()-startFetches, o.polls.Load(), o.refused.Load()
	t.Logf("over %v: %d token requests for %d tenants' loops, %d polls answered, %d refused with 401 and retried",
		time.Since(start).Round(time.Second), fetches, tenants, polls, refused)
	for i, c := range clients {
		for _, r := range c.quiet(300 * time.Millisecond) {
			t.Errorf("tenant %d got %s %q while the token was renewed: %.200s", i, r.Type, r.LastEventID, r.Data)
		}
		late := dialSSE(t, caddy.url(""), withHeader("X-Tenant", fmt.Sprint("tenant-", i)))
		if r := late.mustNext(transportWait); r.Type != "snapshot" || r.LastEventID != ids[i] {
			t.Errorf("tenant %d: a new client got %s %q, want the snapshot %q of 30 s before", i, r.Type, r.LastEventID, ids[i])
		}
		late.close()
	}
	if refused == 0 {
		t.Error("no poll was refused: the revocations were not seen")
	}
	if lo, hi := int64(run/lifetime)/2, int64(run/lifetime)*2; fetches < lo || fetches > hi {
		t.Errorf("%d token requests in %v of 2 s tokens; want about 15 (between %d and %d)", fetches, run, lo, hi)
	}
	checkNoToken(t, caddy)
}

// checkNoToken checks that neither a token nor the client secret shows in the admin
// route, the metrics or Caddy's log.
func checkNoToken(t *testing.T, caddy *caddyProc) {
	t.Helper()
	_, adminBody := loops(t, caddy)
	_, metricsBody := scrape(t, caddy)
	for where, text := range map[string]string{"admin route": adminBody, "/metrics": metricsBody, "caddy's log": caddy.stderr.String()} {
		for _, s := range []string{"tok-", "s3cret", "Bearer"} {
			if i := strings.Index(text, s); i >= 0 {
				t.Errorf("%s holds %q: …%s…", where, s, text[max(0, i-200):min(len(text), i+100)])
			}
		}
	}
}

// TestUpstreamConnectionReuse runs 500 loops on one route, one per forwarded tenant,
// each polling every second, and counts the connections the upstream accepts: the loops
// share the route's transport, so fewer connections than loops carry their first polls,
// which all come at once, and after that the pool is reused, hardly growing.
func TestUpstreamConnectionReuse(t *testing.T) {
	t.Parallel()
	const loopsN = 500
	var conns connCounter
	var polls atomic.Int64
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		polls.Add(1)
		serveDoc(fmt.Appendf(nil, `{"tenant":%q}`, r.Header.Get("X-Tenant")))(w, r)
	}))
	up.Config.ConnState = conns.track
	up.Start()
	t.Cleanup(up.Close)
	caddy := startCaddy(t, pollSSE(up.URL+"/state.json", "interval 1s", "forward X-Tenant", "max_loops_per_client 1000",
		"transport http {\n\t\tdial_timeout 2s\n\t}"))
	addr := strings.TrimPrefix(caddy.url(""), "http://")
	streams := openRawStreams(t, addr, "/", loopsN, func(i int) map[string]string {
		return map[string]string{"X-Tenant": fmt.Sprint("tenant-", i)}
	})
	for i, ev := range firstEvents(t, streams, 2*transportWait) {
		if want := fmt.Sprintf(`{"tenant":"tenant-%d"}`, i); ev.data != want {
			t.Fatalf("stream %d got %s, want %s", i, ev.data, want)
		}
	}
	n0, p0 := conns.opened.Load(), polls.Load()
	time.Sleep(5 * time.Second)
	n, p := conns.opened.Load(), polls.Load()
	t.Logf("%d loops: %d polls over %d upstream connections (%.1f polls a connection); in the last 5 s, %d polls over %d new connections",
		loopsN, p, n, float64(p)/float64(n), p-p0, n-n0)
	if n >= loopsN || p-p0 < 2*loopsN || n-n0 > (p-p0)/20 {
		t.Errorf("want fewer connections than loops, at least %d polls in the last 5 s, and at most one new connection per 20 polls there", 2*loopsN)
	}
}

// TestUpstreamOAuth2AcrossReload checks that a reload keeping a route with OAuth2
// credentials keeps its loop and its token: no new token request, and a client resuming
// after the reload gets no new version; and that a route whose credentials the token endpoint refuses tells its clients
// so in an `upstream` event, without the endpoint's answer.
func TestUpstreamOAuth2AcrossReload(t *testing.T) {
	t.Parallel()
	o := newOAuthServer(time.Minute)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", o.token)
	mux.HandleFunc("GET /orders", o.api)
	up := httptest.NewServer(mux)
	t.Cleanup(up.Close)
	route := func(path, secret string) string {
		return "poll_sse " + path + " " + up.URL + "/orders {\n\tinterval 200ms\n\toauth2 {\n\t\ttoken_url " + up.URL + "/token" +
			"\n\t\tclient_id poller\n\t\tclient_secret " + secret + "\n\t\tscopes orders.read orders.status\n\t\taudience https://api.test\n\t}\n}"
	}
	body := route("/good", "s3cret") + "\n" + route("/bad", "wrong")
	caddy := startCaddy(t, body)
	c := dialSSE(t, caddy.url(""), atPath("/good"))
	c.waitFor([]byte(`{"tenant":"","orders":[1,2,3]}`), transportWait)
	fetches := o.fetches.Load()

	load(t, caddy, []byte(caddyfile(caddy.adminAddr, caddy.siteAddr, body)), forceReload)
	checkResumedQuiet(t, caddy, "/good", c)
	if n := o.fetches.Load(); n != fetches {
		t.Errorf("the reload caused %d token requests, want none: the route's token is kept", n-fetches)
	}

	bad := dialSSE(t, caddy.url(""), atPath("/bad"))
	r, _ := bad.waitEvent("token refused", transportWait, isUpstream(t, func(s upstreamStatus) bool { return !s.OK }))
	if s := decodeStatus(t, r); s.Error != "oauth2 token endpoint answered 401" {
		t.Errorf("upstream event %s; want the error oauth2 token endpoint answered 401", r.Data)
	}
}

// TestUpstreamForwardProxyAndServerName polls through a forward proxy whose URL is read
// from a file by placeholder, and polls an upstream by an address its certificate does
// not name, verified against tls_server_name.
func TestUpstreamForwardProxyAndServerName(t *testing.T) {
	t.Parallel()
	doc := []byte(`{"via":"proxy"}`)
	up := httptest.NewServer(serveDoc([]byte(`{"via":"direct"}`)))
	t.Cleanup(up.Close)
	var proxied atomic.Value
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proxied.Store(r.URL.String())
		serveDoc(doc)(w, r)
	}))
	t.Cleanup(proxy.Close)
	proxyFile := filepath.Join(t.TempDir(), "proxy_url")
	if err := os.WriteFile(proxyFile, []byte(proxy.URL), 0o600); err != nil {
		t.Fatal(err)
	}
	pki := newTestPKI(t)
	named := httptest.NewUnstartedServer(serveDoc([]byte(`{"via":"server name"}`)))
	named.TLS = pki.mutualTLS()
	named.Config.ErrorLog = quietLog()
	named.StartTLS()
	t.Cleanup(named.Close)
	byName := strings.Replace(named.URL, "127.0.0.1", "localhost", 1) // not in the certificate
	caddy := startCaddy(t, strings.Join([]string{
		"poll_sse /proxied " + up.URL + "/state.json {\n\tinterval 200ms\n\ttransport http {\n\t\tforward_proxy_url {file." + proxyFile + "}\n\t}\n}",
		"poll_sse /named " + byName + "/state.json {\n\tinterval 200ms\n\ttransport http {\n\t\ttls_trust_pool file " + pki.caFile +
			"\n\t\ttls_client_auth " + pki.clientCert + " " + pki.clientK + "\n\t\ttls_server_name upstream.test\n\t}\n}",
	}, "\n"))
	dialSSE(t, caddy.url(""), atPath("/proxied")).waitFor(doc, transportWait)
	if got := proxied.Load(); got != up.URL+"/state.json" {
		t.Errorf("the proxy was asked for %v, want %s", got, up.URL+"/state.json")
	}
	dialSSE(t, caddy.url(""), atPath("/named")).waitFor([]byte(`{"via":"server name"}`), transportWait)
}

// TestUpstreamClientCertificateRenewal replaces the client certificate files and reloads
// the unchanged Caddyfile: the route keeps its loop, a client resuming after the reload
// gets no new version, and the polls after the reload present the new certificate.
func TestUpstreamClientCertificateRenewal(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t)
	var serial atomic.Value
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		serial.Store(r.TLS.PeerCertificates[0].SerialNumber.String())
		serveDoc([]byte(`{"ok":true}`))(w, r)
	}))
	up.TLS = pki.mutualTLS()
	up.Config.ErrorLog = quietLog()
	up.StartTLS()
	t.Cleanup(up.Close)
	body := pollSSE(up.URL+"/state.json", "interval 200ms", "transport http {\n\t\ttls_trust_pool file "+pki.caFile+
		"\n\t\ttls_client_auth "+pki.clientCert+" "+pki.clientK+"\n\t}")
	caddy := startCaddy(t, body)
	c := dialSSE(t, caddy.url(""))
	c.waitFor([]byte(`{"ok":true}`), transportWait)
	if got := serial.Load(); got != "3" {
		t.Fatalf("the upstream saw client certificate %v, want 3", got)
	}
	pki.issueClient(t, 4)
	load(t, caddy, []byte(caddyfile(caddy.adminAddr, caddy.siteAddr, body)), forceReload)
	if !eventually(transportWait, func() bool { return serial.Load() == "4" }) {
		t.Fatalf("after the reload the upstream still sees client certificate %v, want 4", serial.Load())
	}
	checkResumedQuiet(t, caddy, "/", c)
	if ls, _ := loops(t, caddy); len(ls) != 1 {
		t.Errorf("%d loops after the reload, want the one kept", len(ls))
	}
}

// checkResumedQuiet checks that a client resuming at path with c's document and last id,
// after a reload that kept the route's loop, is sent no version: its id is still current.
func checkResumedQuiet(t *testing.T, caddy *caddyProc, path string, c *sseClient) {
	t.Helper()
	again := dialSSE(t, caddy.url(""), atPath(path), withDocument(c.doc, c.lastID), withLastEventID(c.lastID))
	for _, r := range again.quiet(time.Second) {
		if r.Type == "snapshot" || r.Type == "patch" {
			t.Errorf("a client resuming at %q after the reload got %s %q: %.200s", c.lastID, r.Type, r.LastEventID, r.Data)
		}
	}
	again.close()
}
