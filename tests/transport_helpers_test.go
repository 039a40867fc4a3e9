package tests

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testPKI is a private CA with a server certificate for 127.0.0.1 and a client
// certificate, written as PEM files in a test's temporary directory.
type testPKI struct {
	ca                  *x509.Certificate
	caKey               *ecdsa.PrivateKey
	caFile              string
	server              tls.Certificate
	clientCert, clientK string
}

func newTestPKI(t testing.TB) *testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey := newKey(t)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "poll_sse test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	p := &testPKI{ca: ca, caKey: caKey, caFile: filepath.Join(dir, "ca.pem")}
	writePEM(t, p.caFile, "CERTIFICATE", caDER)
	serverKey := newKey(t)
	serverDER := issue(t, ca, caKey, &serverKey.PublicKey, &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "upstream"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"upstream.test"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	p.server = tls.Certificate{Certificate: [][]byte{serverDER}, PrivateKey: serverKey}
	p.clientCert, p.clientK = filepath.Join(dir, "client.pem"), filepath.Join(dir, "client.key")
	p.issueClient(t, 3)
	return p
}

// issueClient writes a new client certificate with the given serial number, and its key,
// over the client certificate files.
func (p *testPKI) issueClient(t testing.TB, serial int64) {
	t.Helper()
	clientKey := newKey(t)
	clientDER := issue(t, p.ca, p.caKey, &clientKey.PublicKey, &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "poller"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	writePEM(t, p.clientCert, "CERTIFICATE", clientDER)
	keyDER, err := x509.MarshalECPrivateKey(clientKey)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, p.clientK, "EC PRIVATE KEY", keyDER)
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func issue(t testing.TB, ca *x509.Certificate, caKey *ecdsa.PrivateKey, pub *ecdsa.PublicKey, tmpl *x509.Certificate) []byte {
	t.Helper()
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, pub, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// mutualTLS returns the server config of an upstream that requires a client certificate
// issued by the test CA.
func (p *testPKI) mutualTLS() *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(p.ca)
	return &tls.Config{Certificates: []tls.Certificate{p.server}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
}

// serveDoc answers every request with doc, as JSON.
func serveDoc(doc []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(doc)
	}
}

// connCounter counts the connections a server accepted.
type connCounter struct{ opened atomic.Int64 }

func (c *connCounter) track(_ net.Conn, s http.ConnState) {
	if s == http.StateNew {
		c.opened.Add(1)
	}
}

// oauthServer is a token endpoint issuing short-lived tokens and an upstream that
// accepts only unexpired tokens it issued, answering 401 otherwise.
type oauthServer struct {
	lifetime time.Duration
	fetches  atomic.Int64 // token requests granted
	refused  atomic.Int64 // polls answered 401
	polls    atomic.Int64 // polls answered 200

	mu     sync.Mutex
	expiry map[string]time.Time // token → when it expires
}

func newOAuthServer(lifetime time.Duration) *oauthServer {
	return &oauthServer{lifetime: lifetime, expiry: make(map[string]time.Time)}
}

// token is the token endpoint: client credentials grant, client poller / s3cret.
func (o *oauthServer) token(w http.ResponseWriter, r *http.Request) {
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.FormValue("client_id"), r.FormValue("client_secret")
	}
	if r.FormValue("grant_type") != "client_credentials" || id != "poller" || secret != "s3cret" ||
		r.FormValue("audience") != "https://api.test" || r.FormValue("scope") != "orders.read orders.status" {
		http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
		return
	}
	tok := fmt.Sprintf("tok-%d-%d", o.fetches.Add(1), time.Now().UnixNano())
	o.mu.Lock()
	o.expiry[tok] = time.Now().Add(o.lifetime)
	o.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": int(o.lifetime / time.Second)})
}

// revokeAll makes every token issued so far invalid, as a key rotation at the provider
// would.
func (o *oauthServer) revokeAll() {
	o.mu.Lock()
	clear(o.expiry)
	o.mu.Unlock()
}

// api is the upstream: the document of the X-Tenant header's tenant, to a valid token.
func (o *oauthServer) api(w http.ResponseWriter, r *http.Request) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	o.mu.Lock()
	exp, known := o.expiry[tok]
	o.mu.Unlock()
	if !ok || !known || !time.Now().Before(exp) {
		o.refused.Add(1)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	o.polls.Add(1)
	w.Header().Set("Content-Type", "application/json")
	_, _ = fmt.Fprintf(w, `{"tenant":%q,"orders":[1,2,3]}`, r.Header.Get("X-Tenant"))
}

// quietLog drops a test server's log of refused handshakes, which the test provokes.
func quietLog() *log.Logger { return log.New(io.Discard, "", 0) }

// atPath has a client ask for path rather than /.
func atPath(p string) dialOption { return func(c *dialConfig) { c.path = p } }
