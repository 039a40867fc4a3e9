package tests

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"
)

// stopWithin bounds how long Caddy takes to exit after POST /stop with streams open.
const stopWithin = time.Second

// TestOpsStopEndsStreamsOverEveryProtocol opens streams over HTTP/3, HTTP/2 and
// HTTP/1.1 with TLS, each protocol on a Caddy of its own, so that no request of another
// protocol reaches the handler first, then sends POST /stop: Caddy exits within a second
// and every stream ends.
func TestOpsStopEndsStreamsOverEveryProtocol(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		major int // the HTTP version the streams must use
		rt    func(*tls.Config) (http.RoundTripper, func())
	}{
		{"http3", 3, func(c *tls.Config) (http.RoundTripper, func()) {
			tr := &http3.Transport{TLSClientConfig: c}
			return tr, func() { _ = tr.Close() }
		}},
		{"http2", 2, func(c *tls.Config) (http.RoundTripper, func()) {
			tr := &http.Transport{TLSClientConfig: c, ForceAttemptHTTP2: true}
			return tr, tr.CloseIdleConnections
		}},
		{"http1.1 over tls", 1, func(c *tls.Config) (http.RoundTripper, func()) {
			tr := &http.Transport{TLSClientConfig: c, TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}
			return tr, tr.CloseIdleConnections
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			u := newUpstream(t, map[string]any{"rev": 0, "note": tc.name})
			caddy := startCaddyTLS(t, pollSSE(u.url(), "interval 1s"))
			tlsConf := &tls.Config{RootCAs: caddy.rootCAs(t)}
			caddy.waitCertificate(t, tlsConf)
			rt, closeRT := tc.rt(tlsConf)
			defer closeRT()
			const n = 4
			ended := make([]<-chan error, n)
			for i := range ended {
				ended[i] = openStream(t, rt, "https://"+caddy.siteAddr+"/", tc.major)
			}

			start := time.Now()
			if status, body, err := caddy.admin(http.MethodPost, "/stop", "", nil, nil); err != nil || status != http.StatusOK {
				t.Logf("POST /stop: status %d, %v: %s", status, err, body)
			}
			if !caddy.waitExit(caddyStopTimeout) {
				t.Fatalf("caddy did not exit within %v of POST /stop with %d %s streams open", caddyStopTimeout, n, tc.name)
			}
			took := time.Since(start)
			t.Logf("stop with %d %s streams: caddy exited after %v", n, tc.name, took.Round(time.Millisecond))
			if took > stopWithin {
				t.Errorf("caddy took %v to exit with %d %s streams open, want under %v", took, n, tc.name, stopWithin)
			}
			for i, e := range ended {
				select {
				case <-e:
				case <-time.After(caddyStopTimeout):
					t.Fatalf("%s stream %d still open after caddy exited", tc.name, i)
				}
			}
		})
	}
}

// openStream opens an event stream at url through rt over HTTP/major, reads its first
// event, and returns a channel that receives the end of the stream.
func openStream(t *testing.T, rt http.RoundTripper, url string, major int) <-chan error {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != major {
		resp.Body.Close()
		t.Fatalf("stream: %s %s, want 200 over HTTP/%d", resp.Proto, resp.Status, major)
	}
	br := bufio.NewReader(resp.Body)
	if err := firstEvent(br, "snapshot"); err != nil {
		resp.Body.Close()
		t.Fatal(err)
	}
	ended := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, br)
		resp.Body.Close()
		ended <- err
	}()
	return ended
}

// firstEvent reads up to the end of the first event, which must be of type typ.
func firstEvent(br *bufio.Reader, typ string) error {
	seen := ""
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return fmt.Errorf("reading the first event: %w", err)
		}
		line = strings.TrimRight(line, "\n")
		if v, ok := strings.CutPrefix(line, "event: "); ok {
			seen = v
		}
		if line == "" && seen != "" {
			if seen != typ {
				return fmt.Errorf("first event %q, want %q", seen, typ)
			}
			return nil
		}
	}
}

// startCaddyTLS is startCaddy with an HTTPS site on the loopback address, with a
// certificate from Caddy's internal CA, served over HTTP/1.1, HTTP/2 and HTTP/3.
func startCaddyTLS(t testing.TB, siteBody string) *caddyProc {
	t.Helper()
	return startCaddyConfig(t, func(c *caddyProc) string { return tlsCaddyfile(c, siteBody) })
}

// tlsCaddyfile is the Caddyfile of startCaddyTLS for c's addresses and siteBody.
func tlsCaddyfile(c *caddyProc, siteBody string) string {
	return fmt.Sprintf("{\n\tadmin %s\n\tpersist_config off\n\tlocal_certs\n\tskip_install_trust\n"+
		"\tauto_https disable_redirects\n\tservers {\n\t\tprotocols h1 h2 h3\n\t}\n}\n\n"+
		"https://%s {\n\tbind 127.0.0.1\n\ttls internal\n%s\n}\n", c.adminAddr, c.siteAddr, indent(siteBody))
}

// waitCertificate waits until the site completes a TLS handshake with conf: Caddy
// obtains the site's certificate in the background after it starts.
func (c *caddyProc) waitCertificate(t testing.TB, conf *tls.Config) {
	t.Helper()
	var err error
	for deadline := time.Now().Add(caddyStartTimeout); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		var conn *tls.Conn
		conn, err = tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", c.siteAddr, conf)
		if err == nil {
			conn.Close()
			return
		}
	}
	t.Fatalf("no TLS handshake with %s within %v: %v", c.siteAddr, caddyStartTimeout, err)
}

// rootCAs returns a pool holding the root certificate of Caddy's internal CA.
func (c *caddyProc) rootCAs(t testing.TB) *x509.CertPool {
	t.Helper()
	status, body, err := c.admin(http.MethodGet, "/pki/ca/local", "", nil, nil)
	if err != nil || status != http.StatusOK {
		t.Fatalf("GET /pki/ca/local: %d %v: %s", status, err, body)
	}
	var ca struct {
		Root string `json:"root_certificate"`
	}
	if err := json.Unmarshal([]byte(body), &ca); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(ca.Root)) {
		t.Fatalf("no certificate in %q", ca.Root)
	}
	return pool
}

// TestOpsStopEndsDocumentWait asks for the JSON document of a loop whose first poll
// hangs, then sends POST /stop: Caddy exits within a second, without waiting out the
// poll's timeout.
func TestOpsStopEndsDocumentWait(t *testing.T) {
	t.Parallel()
	u := newUpstream(t, map[string]any{"rev": 0})
	u.setMode(serveHang)
	caddy := startCaddy(t, pollSSE(u.url(), "timeout 30s"))
	answered := make(chan error, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, caddy.url("/"), nil)
		req.Header.Set("Accept", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		answered <- err
	}()
	if !eventually(caddyStartTimeout, func() bool { return u.count() > 0 }) {
		t.Fatal("the loop did not poll")
	}
	start := time.Now()
	if status, body, err := caddy.admin(http.MethodPost, "/stop", "", nil, nil); err != nil || status != http.StatusOK {
		t.Logf("POST /stop: status %d, %v: %s", status, err, body)
	}
	if !caddy.waitExit(caddyStopTimeout) {
		t.Fatalf("caddy did not exit within %v of POST /stop while a document request waited", caddyStopTimeout)
	}
	if took := time.Since(start); took > stopWithin {
		t.Errorf("caddy took %v to exit while a document request waited, want under %v", took, stopWithin)
	}
	select {
	case <-answered:
	case <-time.After(caddyStopTimeout):
		t.Fatal("the document request still waits after caddy exited")
	}
}
