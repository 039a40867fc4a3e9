package tests

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pollsse/caddy-poll-sse/redisstore/redistest"
)

// The root-type tests walk the upstream document's root through every kind behind a real
// Caddy, with Node clients built on fast-json-patch and json-merge-patch and with
// web/poll-sse.js in chromium (tests/roottype/roottype.mjs). A merge patch is an object
// merged into an object, so each change whose root is or becomes an array or a scalar
// must reach merge_patch clients as a snapshot; after every step every client holds the
// upstream's document at the server's version.

const (
	rootTypeTimeout = 4 * time.Minute
	rootTypeChecks  = 3 // the checks roottype.mjs reports when all pass
)

// rootTypeSteps are the upstream's documents in turn: [1,2] to [], {} to [], "x" to {},
// arrays in arrays, null and scalars at the root, and objects between them.
var rootTypeSteps = []string{
	`{"a":1,"list":[1,2]}`, `[1,2]`, `[]`, `{}`, `[]`, `[[1,[2]],3]`, `[[1,[2,4]],3]`, `[[1],3]`,
	`"x"`, `{}`, `{"b":{"c":[1]}}`, `7`, `8`, `null`, `{"a":null}`, `true`, `[{"a":1}]`,
	`[{"a":2}]`, `{"a":{"b":2}}`, `{"a":{"b":3}}`, `"y"`, `"x"`, `[1,2]`, `{"list":[1,2]}`,
	`{"list":[1,2],"n":1}`, `[1,2]`,
}

// rootTypeRoute is a stream route of the test's Caddy and its format.
type rootTypeRoute struct {
	Path   string `json:"path"`
	Format string `json:"format"`
}

var rootTypeRoutes = []rootTypeRoute{{"/json_patch", "json_patch"}, {"/merge_patch", "merge_patch"}, {"/snapshot", "snapshot"}}

type rootTypeSettings struct {
	Base       string          `json:"base"`
	ResumeBase string          `json:"resumeBase,omitempty"`
	Control    string          `json:"control"`
	Routes     []rootTypeRoute `json:"routes"`
	Steps      []string        `json:"steps"`
	Chromium   string          `json:"chromium,omitempty"`
}

// TestRootTypeChanges runs the Node clients and chromium against routes of every default
// format, on the memory store.
func TestRootTypeChanges(t *testing.T) {
	t.Parallel()
	chromium := requireBrowser(t)
	requireNode(t)
	runRootTypes(t, chromium, 1)
}

// TestRootTypeChangesRedis runs the Node clients against the same routes on two nodes
// sharing a Redis store, where each node passes the bodies read from Redis through its own
// tracker: the live clients read one node, the resuming clients the other.
func TestRootTypeChangesRedis(t *testing.T) {
	t.Parallel()
	requireNode(t)
	r := redistest.New(t)
	runRootTypes(t, "", 2, "store redis "+r.Addr)
}

// runRootTypes starts an upstream with a control endpoint and the given number of Caddy
// nodes (one or two) with a stream route per format (each with the extra subdirectives),
// and runs roottype.mjs against them.
func runRootTypes(t *testing.T, chromium string, nodes int, extra ...string) {
	t.Helper()
	u := newUpstream(t, json.RawMessage(rootTypeSteps[0]))
	control := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if r.Method != http.MethodPut || err != nil || !json.Valid(body) {
			http.Error(w, "PUT a JSON document", http.StatusBadRequest)
			return
		}
		u.set(t, json.RawMessage(body))
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(control.Close)
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	site := rootTypeSite(u.url(), filepath.Join(root, "web"), extra)
	caddy := startCaddy(t, site)
	settings := rootTypeSettings{
		Base: "http://" + caddy.siteAddr, Control: control.URL, Routes: rootTypeRoutes,
		Steps: rootTypeSteps, Chromium: chromium,
	}
	if nodes > 1 {
		settings.ResumeBase = "http://" + startCaddy(t, site).siteAddr
	}
	runRootTypeScript(t, settings)
}

// rootTypeSite is the site body: the stream routes, the client module and a blank page.
func rootTypeSite(upstream, webDir string, extra []string) string {
	var b strings.Builder
	for _, r := range rootTypeRoutes {
		sub := append([]string{"interval 50ms", "format " + r.Format}, extra...)
		b.WriteString("handle " + r.Path + " {\n" + indent(pollSSE(upstream, sub...)) + "\n}\n")
	}
	b.WriteString("handle /poll-sse.js {\n\troot * " + webDir + "\n\tfile_server\n}\n")
	b.WriteString("handle /page {\n\theader Content-Type text/html\n\trespond `<!doctype html><title>root types</title>`\n}\n")
	return b.String()
}

// runRootTypeScript runs roottype.mjs with s and reports its checks.
func runRootTypeScript(t *testing.T, s rootTypeSettings) {
	t.Helper()
	runNodeChecks(t, "tests/roottype/roottype.mjs", rootTypeTimeout, s, rootTypeChecks)
}
