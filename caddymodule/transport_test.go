package caddymodule

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestTransportCaddyfileErrors checks that a transport, dial or oauth2 block that polling
// cannot honour is an error naming the setting, the file and the line.
func TestTransportCaddyfileErrors(t *testing.T) {
	t.Parallel()
	block := func(lines ...string) string {
		return "poll_sse https://127.0.0.1/x {\n\t" + strings.Join(lines, "\n\t") + "\n}"
	}
	tests := []caddyfileError{
		{"unknown transport subdirective", block("transport http {", "\ttls_trust_me", "}"), `unrecognized subdirective tls_trust_me`, "at Caddyfile:4"},
		{"other transport", block("transport fastcgi {", "}"), `transport: "fastcgi" is not supported; the only transport is http`, "at Caddyfile:3"},
		{"transport without protocol", block("transport"), "wrong argument count", "at Caddyfile:3"},
		{"two transports", block("transport http", "transport http"), "transport: given twice", "at Caddyfile:4"},
		{"HTTP/3", block("transport http {", "\tversions 2 3", "}"), `transport: versions: "3" is not one of 1.1, 2, h2c`, "at Caddyfile:3"},
		{"unknown version", block("transport http {", "\tversions 1.0", "}"), `transport: versions: "1.0" is not one of 1.1, 2, h2c`, "at Caddyfile:3"},
		{"no versions", block("transport http {", "\tversions", "}"), "wrong argument count", "at Caddyfile:4"},
		{"proxy protocol", block("transport http {", "\tproxy_protocol v2", "}"), "transport: proxy_protocol: polls have no client address to send", "at Caddyfile:3"},
		{"server name placeholder", block("transport http {", "\ttls_server_name {http.request.host}", "}"), "transport: tls_server_name: placeholders are not supported", "at Caddyfile:3"},
		{"automated client certificate", block("transport http {", "\ttls_client_auth poller.internal", "}"), "transport: tls_client_auth: give a certificate file and a key file", "at Caddyfile:3"},
		{"dial over TCP", block("dial tcp/127.0.0.1:80"), `dial "tcp/127.0.0.1:80": want unix//<socket path>`, "at Caddyfile:3"},
		{"dial without path", block("dial"), "wrong argument count", "at Caddyfile:3"},
		{"oauth2 without token_url", block("oauth2 {", "\tclient_id a", "\tclient_secret b", "}"), "oauth2: token_url is required", "at Caddyfile:6"},
		{"oauth2 without client_id", block("oauth2 {", "\ttoken_url https://idp/t", "\tclient_secret b", "}"), "oauth2: client_id is required", "at Caddyfile:6"},
		{"oauth2 without secret", block("oauth2 {", "\ttoken_url https://idp/t", "\tclient_id a", "}"), "oauth2: client_secret is required", "at Caddyfile:6"},
		{"oauth2 relative token_url", block("oauth2 {", "\ttoken_url /token", "\tclient_id a", "\tclient_secret b", "}"), "oauth2: token_url: want an absolute http or https URL", "at Caddyfile:7"},
		{"oauth2 unknown subdirective", block("oauth2 {", "\tgrant_type password", "}"), `oauth2: unknown subdirective "grant_type"`, "at Caddyfile:4"},
		{"oauth2 argument", block("oauth2 inline {", "}"), "wrong argument count", "at Caddyfile:3"},
		{"oauth2 scopes empty", block("oauth2 {", "\tscopes", "}"), "wrong argument count", "at Caddyfile:4"},
		{"two oauth2", block("oauth2 {", "\ttoken_url https://idp/t", "\tclient_id a", "\tclient_secret b", "}", "oauth2 {", "}"), "oauth2: given twice", "at Caddyfile:8"},
	}
	checkCaddyfileErrors(t, tests)
}

// TestTransportProvisionErrors checks the JSON configs that the Caddyfile cannot express
// or that depend on the rest of the route: each fails the load with a clear error.
func TestTransportProvisionErrors(t *testing.T) {
	t.Setenv("POLL_SSE_TEST_EMPTY", "")
	oauth := `"oauth2": {"token_url": "https://idp/t", "client_id": "a", "client_secret": "b"}`
	tests := []struct{ name, raw, want string }{
		{"tls over http", `{"upstream": "http://127.0.0.1/x", "transport": {"protocol": "http", "tls": {}}}`, "tls options need an https upstream URL"},
		{"h2c over https", `{"upstream": "https://127.0.0.1/x", "transport": {"protocol": "http", "versions": ["h2c"]}}`, "versions h2c needs an http upstream URL"},
		{"HTTP/3", `{"upstream": "https://127.0.0.1/x", "transport": {"protocol": "http", "versions": ["3"], "tls": {}}}`, `versions: "3" is not one of`},
		{"bad version", `{"upstream": "http://127.0.0.1/x", "transport": {"protocol": "http", "versions": ["9"]}}`, "unsupported HTTP version"},
		{"fastcgi", `{"upstream": "http://127.0.0.1/x", "transport": {"protocol": "fastcgi"}}`, "the only transport is http"},
		{"proxy to a socket", `{"upstream": "http://localhost/x", "dial": "unix//tmp/s.sock", "transport": {"protocol": "http", "forward_proxy_url": "http://127.0.0.1:3128"}}`, "a forward proxy cannot reach a dial unix socket"},
		{"dial udp", `{"upstream": "http://localhost/x", "dial": "udp/127.0.0.1:53"}`, "want unix//<socket path>"},
		{"oauth2 with header_up Authorization", `{"upstream": "http://127.0.0.1/x", "header_up": {"Authorization": ["Basic eA=="]}, ` + oauth + `}`, "header_up and forward cannot set it too"},
		{"oauth2 with header_up authorization", `{"upstream": "http://127.0.0.1/x", "header_up": {"authorization": ["Basic eA=="]}, ` + oauth + `}`, "header_up and forward cannot set it too"},
		{"oauth2 with forwarded Authorization", `{"upstream": "http://127.0.0.1/x", "forward": ["authorization"], ` + oauth + `}`, "header_up and forward cannot set it too"},
		{"oauth2 unresolved secret", `{"upstream": "http://127.0.0.1/x", "oauth2": {"token_url": "https://idp/t", "client_id": "a", "client_secret": "{env.POLL_SSE_TEST_EMPTY}"}}`, "oauth2: client_secret"},
		{"oauth2 missing token_url", `{"upstream": "http://127.0.0.1/x", "oauth2": {"client_id": "a", "client_secret": "b"}}`, "oauth2: token_url is required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := loadHandler(t, tc.raw); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("loading %s: %v; want an error with %q", tc.raw, err, tc.want)
			}
		})
	}
}

// TestDialSocketOnlyForUpstreamHost checks that `dial unix//…` sends the connections to
// the upstream URL's host and port to the socket, and leaves other hosts, such as a
// token endpoint's, to the network.
func TestDialSocketOnlyForUpstreamHost(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "api.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	socketSrv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("socket")) }),
		ReadHeaderTimeout: time.Second}
	go func() { _ = socketSrv.Serve(ln) }()
	t.Cleanup(func() { _ = socketSrv.Close() })
	tcp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("tcp")) }))
	t.Cleanup(tcp.Close)

	h, err := loadHandler(t, `{"upstream": "http://api.internal/items", "dial": "unix/`+sock+`", "transport": {"protocol": "http"}}`)
	if err != nil {
		t.Fatal(err)
	}
	get := func(url string) string {
		t.Helper()
		resp, err := h.poll.Client.Get(url)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if got := get("http://api.internal/items"); got != "socket" {
		t.Errorf("the upstream's host was reached at %q, want the socket", got)
	}
	if got := get(tcp.URL); got != "tcp" {
		t.Errorf("another host was reached at %q, want its own address", got)
	}
}

// TestIdleConnectionsPerHost checks that a route keeps pollIdleConnsPerHost idle
// connections to its upstream, with or without a transport block, unless
// keepalive_idle_conns_per_host sets it.
func TestIdleConnectionsPerHost(t *testing.T) {
	tests := []struct {
		name, transport string
		want            int
	}{
		{"default transport", ``, pollIdleConnsPerHost},
		{"transport block", `, "transport": {"protocol": "http", "dial_timeout": "1s"}`, pollIdleConnsPerHost},
		{"set by the config", `, "transport": {"protocol": "http", "keep_alive": {"max_idle_conns_per_host": 8}}`, 8},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, err := loadHandler(t, `{"upstream": "http://127.0.0.1:9/x"`+tc.transport+`}`)
			if err != nil {
				t.Fatal(err)
			}
			if got := h.transport.MaxIdleConnsPerHost; got != tc.want {
				t.Errorf("MaxIdleConnsPerHost %d, want %d", got, tc.want)
			}
		})
	}
}
