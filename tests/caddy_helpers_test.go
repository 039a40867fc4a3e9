package tests

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	caddyStartTimeout = 15 * time.Second
	caddyStopTimeout  = 5 * time.Second
	stderrShown       = 64 << 10 // the tail of Caddy's stderr shown on failure
)

// caddyProc is one running Caddy process with its own Caddyfile, admin port and site port.
type caddyProc struct {
	t         testing.TB
	file      string // path of the Caddyfile
	config    []byte // its content
	adminAddr string // host:port of the admin API
	siteAddr  string // host:port of the site
	cmd       *exec.Cmd
	stderr    *syncBuffer
	exited    chan struct{} // closed when the process has exited
	exitErr   error         // valid after exited is closed
}

// startCaddy writes a Caddyfile with the given site body (the inside of the site block),
// starts Caddy on it and waits until both the admin API and the site answer. The process
// is killed when the test ends.
func startCaddy(t testing.TB, siteBody string) *caddyProc {
	t.Helper()
	return startCaddyWith(t, "", siteBody)
}

// startCaddyWith is startCaddy with extra global options, such as debug.
func startCaddyWith(t testing.TB, globals, siteBody string) *caddyProc {
	t.Helper()
	return startCaddyConfig(t, func(c *caddyProc) string {
		return caddyfileWith(c.adminAddr, c.siteAddr, globals, siteBody)
	})
}

// startCaddyConfig writes the Caddyfile that config makes for the process's admin and
// site addresses, starts Caddy on it and waits until both answer. The process is killed
// when the test ends.
func startCaddyConfig(t testing.TB, config func(c *caddyProc) string) *caddyProc {
	t.Helper()
	dir := t.TempDir()
	c := &caddyProc{
		t:         t,
		file:      filepath.Join(dir, "Caddyfile"),
		adminAddr: freeAddr(t),
		siteAddr:  freeAddr(t),
		stderr:    new(syncBuffer),
		exited:    make(chan struct{}),
	}
	c.config = []byte(config(c))
	if err := os.WriteFile(c.file, c.config, 0o600); err != nil {
		t.Fatal(err)
	}
	c.start(dir)
	t.Cleanup(c.cleanup)
	c.waitReady()
	return c
}

// caddyfile returns a Caddyfile with an admin endpoint, no persisted config, and one
// plain-HTTP site holding body.
func caddyfile(adminAddr, siteAddr, body string) string {
	return caddyfileWith(adminAddr, siteAddr, "", body)
}

// caddyfileWith is caddyfile with extra global options.
func caddyfileWith(adminAddr, siteAddr, globals, body string) string {
	if globals != "" {
		globals = indent(globals) + "\n"
	}
	return fmt.Sprintf("{\n\tadmin %s\n\tpersist_config off\n%s}\n\nhttp://%s {\n\tbind 127.0.0.1\n%s\n}\n",
		adminAddr, globals, siteAddr, indent(body))
}

func indent(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i, l := range lines {
		lines[i] = "\t" + l
	}
	return strings.Join(lines, "\n")
}

// pollSSE returns a poll_sse directive for upstream with the given subdirective lines.
func pollSSE(upstream string, subdirectives ...string) string {
	return "poll_sse " + upstream + " {\n\t" + strings.Join(subdirectives, "\n\t") + "\n}"
}

func (c *caddyProc) start(dir string) {
	c.cmd = exec.Command(caddyBin, "run", "--config", c.file, "--adapter", "caddyfile")
	c.cmd.Dir = dir
	c.cmd.Env = append(os.Environ(),
		"HOME="+dir, "XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"))
	c.cmd.Stdout = c.stderr
	c.cmd.Stderr = c.stderr
	if err := c.cmd.Start(); err != nil {
		c.t.Fatalf("starting caddy: %v", err)
	}
	go func() {
		c.exitErr = c.cmd.Wait()
		close(c.exited)
	}()
}

// waitReady waits until the admin API answers and the site accepts connections.
func (c *caddyProc) waitReady() {
	c.t.Helper()
	deadline := time.Now().Add(caddyStartTimeout)
	for time.Now().Before(deadline) {
		select {
		case <-c.exited:
			c.t.Fatalf("caddy exited while starting: %v", c.exitErr)
		default:
		}
		if c.adminAnswers() && canDial(c.siteAddr) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatalf("caddy did not answer within %v", caddyStartTimeout)
}

func (c *caddyProc) adminAnswers() bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+c.adminAddr+"/config/", nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode == http.StatusOK
}

func canDial(addr string) bool {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

// url returns the site URL of path.
func (c *caddyProc) url(path string) string { return "http://" + c.siteAddr + path }

// admin sends a request to the admin API and returns its status and body.
func (c *caddyProc) admin(method, path, contentType string, body []byte, header http.Header) (int, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "http://"+c.adminAddr+path, bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	// Caddy replaces its admin server at every config load, closing the idle connections
	// of the one before: a POST sent on one of those as it closes fails with EOF, and is
	// not retried. One connection a request avoids that race.
	req.Close = true
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(msg), nil
}

// waitExit waits up to d for the process to exit and reports whether it did.
func (c *caddyProc) waitExit(d time.Duration) bool {
	select {
	case <-c.exited:
		return true
	case <-time.After(d):
		return false
	}
}

// cleanup kills the process, waits for it within a bound, and shows stderr on failure.
func (c *caddyProc) cleanup() {
	select {
	case <-c.exited:
	default:
		_ = c.cmd.Process.Kill()
		if !c.waitExit(caddyStopTimeout) {
			c.t.Errorf("caddy (pid %d) did not exit within %v of being killed", c.cmd.Process.Pid, caddyStopTimeout)
		}
	}
	if c.t.Failed() {
		c.t.Logf("Caddyfile:\n%s\ncaddy output (tail):\n%s", c.config, c.stderr.tail(stderrShown))
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writes and reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *syncBuffer) tail(n int) string {
	s := b.String()
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// ports handed out in this run, so that parallel tests never get the same one.
var (
	portsMu sync.Mutex
	ports   = map[string]bool{}
)

// freeAddr returns a loopback host:port that was free a moment ago and that no other
// test of this run has been given.
func freeAddr(t testing.TB) string {
	t.Helper()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		portsMu.Lock()
		taken := ports[addr]
		ports[addr] = true
		portsMu.Unlock()
		if !taken {
			return addr
		}
	}
	t.Fatal("no free port found")
	return ""
}
