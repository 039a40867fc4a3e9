package tests

import (
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestPokeSecretPlaceholders runs the poke form the README recommends, `poke
// {env.POKE_SECRET}`, and its {file.*} twin against a real Caddy: the resolved secret
// pokes (204, and the upstream is polled), while the placeholder's literal text, a wrong
// secret, the other route's secret and an empty header get 403 and no poll. A
// placeholder that does not resolve fails the config instead of leaving an empty secret.
// It sets an environment variable for Caddy, so it does not run in parallel.
func TestPokeSecretPlaceholders(t *testing.T) {
	envSecret, fileSecret := rand.Text(), rand.Text()
	t.Setenv("POLL_SSE_TEST_POKE", envSecret)
	file := filepath.Join(t.TempDir(), "poke-secret")
	if err := os.WriteFile(file, []byte(fileSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	u := newUpstream(t, map[string]any{"n": 0})
	envRoute := "poll_sse /env/* " + u.url() + " {\n\tname env\n\tinterval 1h\n\tpoke {env.POLL_SSE_TEST_POKE}\n}"
	fileRoute := "poll_sse /file/* " + u.url() + " {\n\tname file\n\tinterval 1h\n\tpoke {file." + file + "}\n}"
	c := startCaddy(t, envRoute+"\n"+fileRoute)
	for _, route := range []string{"/env", "/file"} {
		cl := dialSSE(t, c.url(route))
		checkStreamHeaders(t, cl.resp)
		cl.waitFor(u.document(), 5*time.Second)
	}
	client := boundedClient()
	defer client.CloseIdleConnections()
	tests := []struct {
		route, secret string
		want          int
	}{
		{"/env/", envSecret, http.StatusNoContent},
		{"/env/", "{env.POLL_SSE_TEST_POKE}", http.StatusForbidden},
		{"/env/", fileSecret, http.StatusForbidden},
		{"/env/", "", http.StatusForbidden},
		{"/env/", envSecret[:len(envSecret)-1], http.StatusForbidden},
		{"/file/", fileSecret, http.StatusNoContent},
		{"/file/", "{file." + file + "}", http.StatusForbidden},
		{"/file/", envSecret, http.StatusForbidden},
		{"/file/", strings.ToLower(fileSecret), http.StatusForbidden},
	}
	for _, tc := range tests {
		before := u.count()
		status, _, err := post(client, c.url(tc.route), map[string]string{"Poll-SSE-Poke": tc.secret})
		if err != nil || status != tc.want {
			t.Errorf("poke %s with %q: status %d, %v; want %d", tc.route, tc.secret, status, err, tc.want)
			continue
		}
		if tc.want == http.StatusNoContent {
			if !eventually(5*time.Second, func() bool { return u.count() > before }) {
				t.Errorf("poke %s with the right secret: no upstream request within 5s", tc.route)
			}
			continue
		}
		time.Sleep(3 * pokeGap) // a poke that got through would poll within one gap
		if n := u.count(); n != before {
			t.Errorf("refused poke %s with %q made %d upstream request(s)", tc.route, tc.secret, n-before)
		}
	}
	checkPokeConfigRefused(t, u.url())
}

// pokeGap is poller.MinPokeGap: at most one poll a poke brings forward per gap.
const pokeGap = 100 * time.Millisecond

// checkPokeConfigRefused checks that `caddy validate` refuses poke secrets whose
// placeholder resolves to nothing.
func checkPokeConfigRefused(t *testing.T, upstream string) {
	t.Helper()
	dir := t.TempDir()
	for _, secret := range []string{"{env.POLL_SSE_TEST_UNSET}", "{file." + filepath.Join(dir, "missing") + "}"} {
		file := filepath.Join(dir, "Caddyfile")
		cfg := caddyfile(freeAddr(t), freeAddr(t), pollSSE(upstream, "poke "+secret))
		if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(caddyBin, "validate", "--config", file, "--adapter", "caddyfile").CombinedOutput()
		if err == nil {
			t.Errorf("caddy validate accepted poke %s:\n%s", secret, out)
		}
	}
}

// hitLog is an upstream that answers 429 with Retry-After: 5 and records when each
// request arrived.
type hitLog struct {
	mu   sync.Mutex
	hits []time.Time
}

func (l *hitLog) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	l.mu.Lock()
	l.hits = append(l.hits, time.Now())
	l.mu.Unlock()
	w.Header().Set("Retry-After", "5")
	http.Error(w, "slow down", http.StatusTooManyRequests)
}

func (l *hitLog) times() []time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]time.Time(nil), l.hits...)
}

// TestPokeFloodRespectsRetryAfter pokes a loop 1,000 times in about a second while its
// upstream has asked, with 429 and Retry-After: 5, to be left alone for 5 s: every poke
// is accepted, and the upstream sees no request before the 5 s are over.
func TestPokeFloodRespectsRetryAfter(t *testing.T) {
	t.Parallel()
	up := new(hitLog)
	srv := httptest.NewServer(up)
	defer srv.Close()
	c := startCaddy(t, pollSSE(srv.URL+"/state.json", "interval 200ms", "poke s3cret"))
	cl := dialSSE(t, c.url(""))
	checkStreamHeaders(t, cl.resp)
	if !eventually(5*time.Second, func() bool { return len(up.times()) > 0 }) {
		t.Fatal("no first poll within 5s")
	}
	refused := pokeFlood(t, c.url("/"), 1000, time.Second)
	if refused > 0 {
		t.Errorf("%d of 1000 pokes not answered 204", refused)
	}
	if !eventually(15*time.Second, func() bool { return len(up.times()) >= 2 }) {
		t.Fatal("no poll after the Retry-After within 15s")
	}
	hits := up.times()
	if gap := hits[1].Sub(hits[0]); gap < 5*time.Second {
		t.Errorf("second upstream request %v after the 429 with Retry-After: 5; want at least 5s (%d requests so far)", gap, len(hits))
	}
}

// TestPokeFloodIsRateLimited pokes a healthy loop 1,000 times in about a second through
// Caddy: the upstream sees at most one request per 100 ms of poking, plus one.
func TestPokeFloodIsRateLimited(t *testing.T) {
	t.Parallel()
	u := newUpstream(t, map[string]any{"n": 0})
	c := startCaddy(t, pollSSE(u.url(), "interval 1h", "poke s3cret"))
	cl := dialSSE(t, c.url(""))
	checkStreamHeaders(t, cl.resp)
	cl.waitFor(u.document(), 5*time.Second)
	start := time.Now()
	if refused := pokeFlood(t, c.url("/"), 1000, time.Second); refused > 0 {
		t.Errorf("%d of 1000 pokes not answered 204", refused)
	}
	time.Sleep(2 * pokeGap) // the poll the last pokes brought forward
	took := time.Since(start)
	polls := u.countBetween(start, time.Now())
	if bound := int(took/pokeGap) + 1; polls > bound || polls == 0 {
		t.Errorf("1000 pokes over %v made %d upstream requests; want 1 to %d", took, polls, bound)
	}
	t.Logf("1000 pokes over %v: %d upstream requests", took.Round(time.Millisecond), polls)
}

// pokeFlood sends n pokes with the right secret to u from 10 clients, spread over about
// d, and returns how many were not answered 204.
func pokeFlood(t *testing.T, u string, n int, d time.Duration) int {
	t.Helper()
	const workers = 10
	client := boundedClient()
	defer client.CloseIdleConnections()
	var mu sync.Mutex
	refused := 0
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range n / workers {
				status, _, err := post(client, u, map[string]string{"Poll-SSE-Poke": "s3cret"})
				if err != nil || status != http.StatusNoContent {
					mu.Lock()
					refused++
					mu.Unlock()
				}
				time.Sleep(d / time.Duration(n/workers))
			}
		})
	}
	wg.Wait()
	return refused
}
