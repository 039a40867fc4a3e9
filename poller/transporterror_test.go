package poller

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
)

// reasonTripper fails every request with an error that carries its own reason.
type reasonTripper struct{}

type tokenFailure struct{}

func (tokenFailure) Error() string  { return "fetching token from https://idp/token: secret body" }
func (tokenFailure) Reason() string { return "oauth2 token endpoint answered 401" }

func (reasonTripper) RoundTrip(*http.Request) (*http.Response, error) { return nil, tokenFailure{} }

// TestTransportFailureReasons checks the reasons clients see for TLS failures and for a
// RoundTripper's own errors: each names what failed, and none holds the URL.
func TestTransportFailureReasons(t *testing.T) {
	t.Parallel()
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(`{}`)) })
	plain := httptest.NewTLSServer(ok)
	t.Cleanup(plain.Close)
	mtls := httptest.NewUnstartedServer(ok)
	mtls.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert}
	mtls.StartTLS()
	t.Cleanup(mtls.Close)
	trusting := func(srv *httptest.Server) *http.Client {
		pool := x509.NewCertPool()
		pool.AddCert(srv.Certificate())
		return ClientWith(&http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}})
	}
	tests := []struct {
		name, url, reason string
		client            *http.Client
	}{
		{"unknown authority", plain.URL, "tls handshake failed: certificate signed by unknown authority", NewClient()},
		{"client certificate required", mtls.URL, "tls handshake failed: the upstream sent certificate required", trusting(mtls)},
		{"own reason", plain.URL, "oauth2 token endpoint answered 401", ClientWith(reasonTripper{})},
		{"trusted", plain.URL, "", trusting(plain)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res := newPoller(t, Config{URL: tc.url, Client: tc.client}).Poll(context.Background())
			var perr *Error
			if tc.reason == "" {
				if res.Err != nil {
					t.Fatalf("unexpected error %v", res.Err)
				}
				return
			}
			if !errors.As(res.Err, &perr) || perr.Reason != tc.reason {
				t.Fatalf("error %v; want reason %q", res.Err, tc.reason)
			}
		})
	}
}
