package tests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The browser tests of the optional client parts run tests/browser/reach.mjs in
// chromium against a Caddy serving web/ and three routes over HTTP/1.1: /events (shared
// among tabs), /private (which asks for a bearer token), and the same site behind a proxy
// that buffers event streams (the long-poll fallback).

const (
	reachChecks = 9 // the checks reach.mjs reports when all pass
	reachToken  = "tok-9f8e7d6c5b4a"
)

// reachSettings is what reach.mjs reads.
type reachSettings struct {
	Base      string `json:"base"`
	Buffered  string `json:"buffered"`
	Admin     string `json:"admin"`
	Upstream  string `json:"upstream"`
	Token     string `json:"token"`
	AccessLog string `json:"accessLog"`
	Chromium  string `json:"chromium"`
	Interval  int    `json:"intervalMs"`
}

func TestBrowserReach(t *testing.T) {
	t.Parallel()
	chromium := requireBrowser(t)
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	up := newRevUpstream(t)
	accessLog := filepath.Join(t.TempDir(), "access.log")
	caddy := startCaddy(t, fmt.Sprintf(`log {
	output file %s
	format json
}
root * %s
handle /blank {
	header Content-Type text/html
	respond "<!doctype html><title>reach</title>"
}
@authorized {
	path /private
	header Authorization "Bearer %s"
}
handle @authorized {
	%s
}
handle /private {
	respond 401
}
handle /events {
	%s
}
%s
handle {
	file_server
}`, accessLog, filepath.Join(root, "web"), reachToken,
		pollSSE(up.url()+"?route=private", "interval 100ms", "name private", "max_connection_lifetime 1s"),
		pollSSE(up.url(), "interval 100ms", "name shared"),
		muxRoutesFor(up)))
	proxy := newBufferingProxy(t, caddy.siteAddr)
	runNodeChecks(t, "tests/browser/reach.mjs", browserTimeout, reachSettings{
		Base:      "http://" + caddy.siteAddr,
		Buffered:  "http://" + proxy,
		Admin:     "http://" + caddy.adminAddr,
		Upstream:  up.base,
		Token:     reachToken,
		AccessLog: accessLog,
		Chromium:  chromium,
		Interval:  100,
	}, reachChecks)
}

// muxRoutesFor returns ten poll_sse routes, m0 to m9, each its own loop on u, and a
// poll_sse_mux at /mux carrying them.
func muxRoutesFor(u *revUpstream) string {
	var routes, names []string
	for i := range muxRoutes {
		name := fmt.Sprintf("m%d", i)
		names = append(names, name)
		routes = append(routes, fmt.Sprintf("handle /%s {\n%s\n}", name, indent(pollSSE(u.url()+"?route="+name, "interval 100ms", "name "+name))))
	}
	routes = append(routes, fmt.Sprintf("handle /mux {\n\tpoll_sse_mux {\n\t\tstreams %s\n\t}\n}", strings.Join(names, " ")))
	return strings.Join(routes, "\n")
}

// revUpstream serves a document of many rows whose revision the test script moves on with
// POST /next; GET /state.json is the document.
type revUpstream struct {
	base string
	mu   sync.Mutex
	rev  int
	doc  []byte
}

func newRevUpstream(t *testing.T) *revUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &revUpstream{}
	u.set(0)
	u.base = "http://" + ln.Addr().String()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /state.json", func(w http.ResponseWriter, _ *http.Request) {
		u.mu.Lock()
		doc := u.doc
		u.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Access-Control-Allow-Origin", "*")
		_, _ = w.Write(doc)
	})
	mux.HandleFunc("POST /next", func(w http.ResponseWriter, _ *http.Request) {
		u.mu.Lock()
		rev := u.rev + 1
		u.mu.Unlock()
		u.set(rev)
		_, _ = io.WriteString(w, strconv.Itoa(rev))
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return u
}

// url returns the URL Caddy polls.
func (u *revUpstream) url() string { return u.base + "/state.json" }

// set makes the document of revision rev the one served.
func (u *revUpstream) set(rev int) {
	doc, err := json.Marshal(rowsDocument(rev))
	if err != nil {
		panic(err)
	}
	u.mu.Lock()
	u.rev, u.doc = rev, doc
	u.mu.Unlock()
}

// newBufferingProxy starts a proxy to target that passes every response on as it comes,
// except event streams, which it holds until they end, as some corporate proxies and
// antivirus products do. It returns its address.
func newBufferingProxy(t *testing.T, target string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		out := r.Clone(r.Context())
		out.RequestURI = ""
		out.URL.Scheme, out.URL.Host = "http", target
		resp, err := tr.RoundTrip(out)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		body := io.Reader(resp.Body)
		if resp.Header.Get("Content-Type") == "text/event-stream" {
			held, _ := io.ReadAll(resp.Body) // until the stream ends or the client leaves
			body = bytes.NewReader(held)
		}
		for k, vs := range resp.Header {
			w.Header()[k] = vs
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, body)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = srv.Close()
		tr.CloseIdleConnections()
	})
	return ln.Addr().String()
}
