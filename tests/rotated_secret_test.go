package tests

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// tokenUpstream serves one fixed document and records the Authorization header of every
// request, in order.
type tokenUpstream struct {
	srv  *httptest.Server
	mu   sync.Mutex
	auth []string
}

func newTokenUpstream(t *testing.T, doc string) *tokenUpstream {
	t.Helper()
	u := new(tokenUpstream)
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.auth = append(u.auth, r.Header.Get("Authorization"))
		u.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(doc))
	}))
	t.Cleanup(u.srv.Close)
	return u
}

// since returns the Authorization headers of the requests after the first n, and how
// many requests there were.
func (u *tokenUpstream) since(n int) ([]string, int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.auth[n:]...), len(u.auth)
}

// TestRotatedTokenFileReachesPolls checks that a token read from a file with {file.*}
// and rotated before a reload is what the polls send after it: once the reload has
// returned and a client has come, a poll carries the new token within a few intervals,
// and from then on no poll carries the old one. The document did not change, so its version id did not
// either: clients connected before the reload, whether their stream stayed open or they
// resumed with their Last-Event-ID, get no snapshot.
func TestRotatedTokenFileReachesPolls(t *testing.T) {
	t.Parallel()
	const doc = `{"board":[1,2,3]}`
	u := newTokenUpstream(t, doc)
	token := filepath.Join(t.TempDir(), "token")
	writeToken(t, token, "old-secret")
	caddy := startCaddy(t, pollSSE(u.srv.URL+"/state.json", "interval 100ms",
		`header_up Authorization "Bearer {file.`+token+`}"`))
	clients := []*sseClient{dialSSE(t, caddy.url("")), dialSSE(t, caddy.url(""))}
	for _, c := range clients {
		c.waitFor([]byte(doc), limitsWait)
	}
	if got, _ := u.since(0); len(got) == 0 || got[0] != "Bearer old-secret" {
		t.Fatalf("first poll sent Authorization %q, want the old token", got)
	}

	writeToken(t, token, "new-secret")
	load(t, caddy, caddy.config, forceReload)
	_, reloaded := u.since(0)
	fresh := dialSSE(t, caddy.url("")) // a route's loop starts with its first stream
	fresh.waitFor([]byte(doc), limitsWait)
	var first int
	if !eventually(limitsWait, func() bool {
		got, _ := u.since(reloaded)
		for i, a := range got {
			if a == "Bearer new-secret" {
				first = reloaded + i
				return true
			}
		}
		return false
	}) {
		got, _ := u.since(reloaded)
		t.Fatalf("no poll sent the new token after the reload; polls sent %q", got)
	}
	time.Sleep(time.Second) // ten intervals: an old loop still running would poll meanwhile
	after, _ := u.since(first)
	for i, a := range after {
		if a != "Bearer new-secret" {
			t.Fatalf("poll %d after the first with the new token sent %q", i, a)
		}
	}
	t.Logf("%d polls after the reload, all with the new token", len(after))
	for i, c := range clients {
		checkNoSnapshot(t, caddy, c, i)
	}
}

// checkNoSnapshot reads what client i gets in the second after the reload, resuming
// with its Last-Event-ID if its stream was closed, and checks it holds no snapshot.
func checkNoSnapshot(t *testing.T, caddy *caddyProc, c *sseClient, i int) {
	t.Helper()
	got := drain(c, time.Second)
	if c.ended {
		resumed := dialSSE(t, caddy.url(""), withDocument(c.doc, c.lastID), withLastEventID(c.lastID))
		got = append(got, resumed.quiet(time.Second)...)
	}
	if s := ofType(got, "snapshot"); len(s) > 0 {
		t.Errorf("client %d got a snapshot after the reload: %s", i, summarize(got))
	}
}

// drain consumes what c receives for d, or until its stream ends.
func drain(c *sseClient, d time.Duration) []received {
	deadline := time.Now().Add(d)
	var got []received
	for {
		r, err := c.next(time.Until(deadline))
		if err != nil {
			return got
		}
		got = append(got, r)
	}
}

// writeToken replaces the token file at path, as a secret manager rotating it would.
func writeToken(t *testing.T, path, token string) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}
