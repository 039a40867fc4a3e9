package tests

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// adminWait bounds each wait on a client in these tests.
const adminWait = 10 * time.Second

// routed returns a poll_sse directive with a path matcher.
func routed(path, upstream string, subdirectives ...string) string {
	return "poll_sse " + path + " " + strings.TrimPrefix(pollSSE(upstream, subdirectives...), "poll_sse ")
}

// TestOpsAdminLoops checks GET /poll_sse/loops on two routes, one named board and one
// without a name: it answers application/json, with no loop before any client; a board
// client that saw three versions finds its loop listed with route board, its upstream
// URL, no forwarded headers, 1 subscriber, the version id it holds, history 3, a recent
// last_poll, last_result unchanged, no failures and upstream_ok; the unnamed route is
// listed under its upstream's scheme://host, after board; while the upstream answers 500
// the loop shows last_result error, a last_error, failures and upstream_ok false, and
// keeps its version; after recovery failures go back to 0; once the clients leave, the
// loops go after linger.
func TestOpsAdminLoops(t *testing.T) {
	t.Parallel()
	board := newUpstream(t, bigDoc(0))
	plain := newUpstream(t, map[string]any{"plain": true})
	caddy := startCaddy(t, routed("/board/*", board.url(), "name board", "interval 100ms", "history 50", "linger 500ms")+"\n"+
		routed("/plain/*", plain.url(), "interval 100ms", "linger 500ms"))
	if ct := loopsContentType(t, caddy); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("GET /poll_sse/loops: Content-Type %q, want application/json", ct)
	}
	if ls, body := loops(t, caddy); len(ls) != 0 {
		t.Fatalf("loops before any client: %s", body)
	}

	c := dialSSE(t, caddy.url("/board"))
	c.waitFor(board.document(), adminWait)
	for rev := 1; rev <= 2; rev++ {
		c.waitFor(board.set(t, bigDoc(rev)), adminWait)
	}
	l := waitLoops(t, caddy, "board", "the board loop at the client's version, unchanged", func(ls []loopInfo) bool {
		return len(ls) == 1 && ls[0].Version != nil && *ls[0].Version == c.lastID && ls[0].LastResult == "unchanged"
	})[0]
	checkHealthyLoop(t, l, board.url(), 1, 3)

	p := dialSSE(t, caddy.url("/plain"))
	p.waitFor(plain.document(), adminWait)
	checkDefaultRoute(t, caddy, plain)
	checkFailingLoop(t, caddy, board, c.lastID)

	c.close()
	p.close()
	for _, route := range []string{"board", plain.srv.URL} {
		waitLoops(t, caddy, route, "no loop after the clients left and linger passed", func(ls []loopInfo) bool { return len(ls) == 0 })
	}
}

// checkHealthyLoop checks a loop's fields while its upstream is fine.
func checkHealthyLoop(t *testing.T, l loopInfo, upstream string, subscribers, history int) {
	t.Helper()
	if l.Upstream != upstream || len(l.Forward) != 0 || l.Subscribers != subscribers || l.History != history {
		t.Errorf("loop %v: want upstream %q, no forward, subscribers %d, history %d", l, upstream, subscribers, history)
	}
	if l.Failures != 0 || !l.UpstreamOK || l.LastError != nil {
		t.Errorf("loop %v: want failures 0, upstream_ok, no last_error", l)
	}
	last := checkTime(t, "last_poll", l.LastPoll, true)
	if age := time.Since(last); age < -time.Minute || age > time.Minute {
		t.Errorf("last_poll %v is not the time of a recent poll", last)
	}
	checkTime(t, "next_poll", l.NextPoll, false)
}

// checkTime checks that v is an RFC 3339 time, present when required, and returns it.
func checkTime(t *testing.T, field string, v *string, required bool) time.Time {
	t.Helper()
	if v == nil {
		if required {
			t.Errorf("%s missing", field)
		}
		return time.Time{}
	}
	at, err := time.Parse(time.RFC3339, *v)
	if err != nil {
		t.Errorf("%s %q is not RFC 3339: %v", field, *v, err)
	}
	return at
}

// checkDefaultRoute checks that the unnamed route's loop is listed under its upstream's
// scheme://host, after board.
func checkDefaultRoute(t *testing.T, caddy *caddyProc, plain *upstream) {
	t.Helper()
	ls := waitLoops(t, caddy, plain.srv.URL, "the unnamed route's loop, under its upstream's scheme://host", oneLoopWith(1))
	checkTime(t, "last_poll", ls[0].LastPoll, true)
	all, body := loops(t, caddy)
	routes := make([]string, len(all))
	for i, l := range all {
		routes[i] = l.Route
	}
	if !slices.Equal(routes, []string{"board", plain.srv.URL}) {
		t.Errorf("routes listed %q, want board then %s: %s", routes, plain.srv.URL, body)
	}
}

// checkFailingLoop makes the upstream answer 500 and checks the loop's failure fields,
// then lets it recover.
func checkFailingLoop(t *testing.T, caddy *caddyProc, u *upstream, version string) {
	t.Helper()
	u.setMode(serve500)
	l := waitLoops(t, caddy, "board", "a loop failing twice in a row", func(ls []loopInfo) bool {
		return len(ls) == 1 && ls[0].LastResult == "error" && ls[0].Failures >= 2 && !ls[0].UpstreamOK
	})[0]
	if l.LastError == nil || *l.LastError == "" {
		t.Errorf("failing loop %v: want a last_error", l)
	}
	if l.Version == nil || *l.Version != version {
		t.Errorf("failing loop %v: want the last good version %q kept", l, version)
	}
	last := checkTime(t, "last_poll", l.LastPoll, true)
	if next := checkTime(t, "next_poll", l.NextPoll, false); l.NextPoll != nil && next.Before(last) {
		t.Errorf("failing loop: next_poll %v before last_poll %v", next, last)
	}
	u.setMode(serveJSON)
	waitLoops(t, caddy, "board", "the loop recovered", func(ls []loopInfo) bool {
		return len(ls) == 1 && ls[0].Failures == 0 && ls[0].UpstreamOK && ls[0].LastResult != "error"
	})
}

// secrets are the credentials TestOpsNoCredentials configures and sends.
var secrets = []string{"s3cret-token", "pa55word", "k3y-value", "c00kie-secret"}

// credentialUpstream serves an upstream's document through a server that records the
// credentials each request carried.
type credentialUpstream struct {
	*upstream
	srv  *httptest.Server
	mu   sync.Mutex
	seen []string // Authorization, query and Cookie of each request
}

func newCredentialUpstream(t *testing.T, doc any) *credentialUpstream {
	cu := &credentialUpstream{upstream: newUpstream(t, doc)}
	cu.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cu.mu.Lock()
		cu.seen = append(cu.seen, r.Header.Get("Authorization")+" "+r.URL.RawQuery+" "+r.Header.Get("Cookie"))
		cu.mu.Unlock()
		cu.serve(w, r)
	}))
	t.Cleanup(cu.srv.Close)
	return cu
}

func (cu *credentialUpstream) lastSeen() string {
	cu.mu.Lock()
	defer cu.mu.Unlock()
	if len(cu.seen) == 0 {
		return ""
	}
	return cu.seen[len(cu.seen)-1]
}

// TestOpsNoCredentials runs, with Caddy logging at debug level, a route whose upstream
// URL holds a password and an api_key query value, which sends an Authorization header
// with header_up and forwards the client's Cookie. The upstream gets the credentials; the
// loop goes through timeouts, 500s, a recovery, a reload with a new interval and a stop
// after linger. The admin route shows the upstream as user:xxxxx@…?api_key=REDACTED and
// forward as [Cookie]; no secret appears in the admin route's body, in /metrics or
// anywhere in Caddy's log, which does hold the module's loop logs with the route name.
func TestOpsNoCredentials(t *testing.T) {
	t.Parallel()
	u := newCredentialUpstream(t, map[string]any{"ok": true})
	host := strings.TrimPrefix(u.srv.URL, "http://")
	body := func(interval string) string {
		return pollSSE("http://user:pa55word@"+host+"/state.json?api_key=k3y-value", "name guarded",
			`header_up Authorization "Bearer s3cret-token"`, "forward Cookie",
			"interval "+interval, "timeout 300ms", "linger 500ms")
	}
	caddy := startCaddyWith(t, "debug", body("100ms"))
	defer u.setMode(serveJSON)

	c := dialSSE(t, caddy.url(""), withHeader("Cookie", "session=c00kie-secret"))
	c.waitFor(u.document(), adminWait)
	if got, want := u.lastSeen(), "Bearer s3cret-token api_key=k3y-value session=c00kie-secret"; got != want {
		t.Fatalf("the upstream got %q, want %q", got, want)
	}
	failAndRecover(t, caddy, u, c)
	adminBody := checkRedactedLoop(t, caddy, host)
	_, metricsBody := scrape(t, caddy)

	caddy.config = []byte(caddyfileWith(caddy.adminAddr, caddy.siteAddr, "debug", body("150ms")))
	load(t, caddy, caddy.config, nil)
	waitAnswering(t, caddy)
	again := dialSSE(t, caddy.url(""), withHeader("Cookie", "session=c00kie-secret"))
	again.waitFor(u.document(), adminWait)
	again.close()
	waitLoops(t, caddy, "guarded", "no loop after linger", func(ls []loopInfo) bool { return len(ls) == 0 })

	out := withoutConfigDump(t, caddy.stderr.String())
	checkModuleLogs(t, out)
	for where, text := range map[string]string{"admin route": adminBody, "/metrics": metricsBody, "caddy's log": out} {
		for _, s := range secrets {
			if i := strings.Index(text, s); i >= 0 {
				t.Errorf("%s holds the secret %q: …%s…", where, s, text[max(0, i-300):min(len(text), i+100)])
			}
		}
	}
}

// failAndRecover makes the upstream hang past the timeout, then answer 500, then recover,
// waiting on the admin route and the client for each.
func failAndRecover(t *testing.T, caddy *caddyProc, u *credentialUpstream, c *sseClient) {
	t.Helper()
	for _, mode := range []upstreamMode{serveHang, serve500} {
		failures := 0
		if ls := routeLoops(loopsOnly(loops(t, caddy)), "guarded"); len(ls) == 1 {
			failures = ls[0].Failures
		}
		u.setMode(mode)
		waitLoops(t, caddy, "guarded", "a failed poll", func(ls []loopInfo) bool {
			return len(ls) == 1 && ls[0].LastResult == "error" && ls[0].Failures > failures
		})
	}
	c.waitEvent("upstream ok:false", adminWait, isUpstream(t, func(s upstreamStatus) bool { return !s.OK }))
	u.setMode(serveJSON)
	c.waitEvent("upstream ok:true", adminWait, isUpstream(t, func(s upstreamStatus) bool { return s.OK }))
}

// loopsOnly returns the loops of a loops call, dropping its body.
func loopsOnly(ls []loopInfo, _ string) []loopInfo { return ls }

// checkRedactedLoop checks the admin route's view of the guarded loop and returns the
// route's body.
func checkRedactedLoop(t *testing.T, caddy *caddyProc, host string) string {
	t.Helper()
	waitLoops(t, caddy, "guarded", "a healthy loop", func(ls []loopInfo) bool { return len(ls) == 1 && ls[0].UpstreamOK })
	ls, body := loops(t, caddy)
	l := routeLoops(ls, "guarded")[0]
	if want := "http://user:xxxxx@" + host + "/state.json?api_key=REDACTED"; l.Upstream != want {
		t.Errorf("upstream %q, want %q", l.Upstream, want)
	}
	if !slices.Equal(l.Forward, []string{"Cookie"}) {
		t.Errorf("forward %q, want [Cookie]", l.Forward)
	}
	return body
}

// checkModuleLogs checks that Caddy's log holds the module's entries and that some name
// the route, so that the absence of secrets in it means something.
func checkModuleLogs(t *testing.T, out string) {
	t.Helper()
	mine := moduleLogs(out)
	named := 0
	for _, line := range mine {
		if strings.Contains(line, `"guarded"`) {
			named++
		}
	}
	if len(mine) == 0 || named == 0 {
		t.Errorf("caddy's log holds %d poll_sse entries, %d naming the route guarded; want loop logs with the route", len(mine), named)
	}
}

// withoutConfigDump returns Caddy's output without the entries in which Caddy itself, at
// debug level, logs the HTTP app's config as written ("adjusted config" of
// http.auto_https): they hold every handler's settings, secrets included, whatever the
// handler does.
func withoutConfigDump(t *testing.T, out string) string {
	t.Helper()
	var kept []string
	dropped := 0
	for _, line := range strings.Split(out, "\n") {
		var e struct {
			Logger string `json:"logger"`
			Msg    string `json:"msg"`
		}
		if json.Unmarshal([]byte(line), &e) == nil && e.Logger == "http.auto_https" && e.Msg == "adjusted config" {
			dropped++
			continue
		}
		kept = append(kept, line)
	}
	t.Logf("left out %d debug entries in which Caddy logs its own config", dropped)
	return strings.Join(kept, "\n")
}
