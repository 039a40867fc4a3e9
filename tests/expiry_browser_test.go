package tests

import (
	"fmt"
	"path/filepath"
	"testing"
)

const expiryChecks = 2 // the checks expiry.mjs reports when all pass

// expirySettings is what expiry.mjs reads.
type expirySettings struct {
	Base     string `json:"base"`
	Chromium string `json:"chromium"`
}

// TestBrowserExpiry runs tests/browser/expiry.mjs in chromium against a route whose
// access ends at the Unix time in the `exp` cookie: the page's client, over EventSource
// and over fetch, reports `unauthorized` once it does, and stops.
func TestBrowserExpiry(t *testing.T) {
	t.Parallel()
	chromium := requireBrowser(t)
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	u := newUpstream(t, map[string]any{"n": 1})
	caddy := startCaddy(t, fmt.Sprintf(`root * %s
handle /blank {
	header Content-Type text/html
	respond "<!doctype html><title>expiry</title>"
}
handle /timed {
	%s
}
handle {
	file_server
}`, filepath.Join(root, "web"), pollSSE(u.url(), "interval 100ms", "expires {http.request.cookie.exp}")))
	runNodeChecks(t, "tests/browser/expiry.mjs", browserTimeout, expirySettings{
		Base:     "http://" + caddy.siteAddr,
		Chromium: chromium,
	}, expiryChecks)
}
