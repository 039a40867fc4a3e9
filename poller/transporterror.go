package poller

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"strings"
)

// Reasoner is an error that carries its own short reason, safe to show to clients: a
// RoundTripper that fails before or after the request, as when it cannot get a
// credential, returns one so that clients learn why rather than "upstream unreachable".
type Reasoner interface {
	error
	// Reason tells what failed without a URL, a header or a credential.
	Reason() string
}

// transportError classifies an error of the HTTP client into the reason clients see.
func transportError(err error) error {
	var ne net.Error
	var r Reasoner
	switch {
	case errors.As(err, &r):
		return &Error{Reason: r.Reason(), err: err}
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return &Error{Reason: "timeout", err: err}
	case errors.Is(err, errRedirect):
		return &Error{Reason: errRedirect.Error(), err: err}
	}
	if reason, ok := tlsReason(err); ok {
		return &Error{Reason: "tls handshake failed: " + reason, err: err}
	}
	return &Error{Reason: "upstream unreachable", err: err}
}

// tlsReason names a TLS failure: a server certificate that does not verify, or an alert
// from the server, such as a client certificate it requires or refuses. The texts are
// crypto/tls's and crypto/x509's, which name no host, URL or key.
func tlsReason(err error) (string, bool) {
	var (
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		verify   *tls.CertificateVerificationError
		op       *net.OpError
	)
	switch {
	case errors.As(err, &unknown):
		return "certificate signed by unknown authority", true
	case errors.As(err, &hostname):
		return "certificate is not valid for the upstream's host name", true
	case errors.As(err, &invalid):
		return "certificate is invalid: " + invalidReason(invalid), true
	case errors.As(err, &verify):
		return "certificate does not verify", true
	case errors.As(err, &op) && op.Op == "remote error" && strings.HasPrefix(op.Err.Error(), "tls: "):
		return "the upstream sent " + strings.TrimPrefix(op.Err.Error(), "tls: "), true
	}
	return "", false
}

// invalidReason says why a certificate is invalid, in a few words.
func invalidReason(e x509.CertificateInvalidError) string {
	switch e.Reason {
	case x509.Expired:
		return "expired or not yet valid"
	case x509.NotAuthorizedToSign:
		return "its issuer may not sign certificates"
	case x509.IncompatibleUsage:
		return "not for this usage"
	}
	return "rejected"
}
