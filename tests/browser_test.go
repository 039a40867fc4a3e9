package tests

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The browser tests run the demo of caddyfile.example and caddyfile.h2.example, on free
// ports through their {$DEMO_…} placeholders, and drive Debian's chromium through it
// with playwright-core (tests/browser/e2e.mjs).

const (
	browserTimeout = 4 * time.Minute
	chromiumPath   = "/usr/bin/chromium"
	e2eChecks      = 13 // the checks e2e.mjs reports when all pass
)

// browserSettings is what e2e.mjs reads.
type browserSettings struct {
	Base        string `json:"base"`
	Admin       string `json:"admin"`
	Caddyfile   string `json:"caddyfile"`
	APIDir      string `json:"apiDir"`
	Artifacts   string `json:"artifacts"`
	H2Base      string `json:"h2Base"`
	H2Admin     string `json:"h2Admin"`
	H2Caddyfile string `json:"h2Caddyfile"`
	Chromium    string `json:"chromium"`
}

func TestBrowserDemo(t *testing.T) {
	t.Parallel()
	chromium := requireBrowser(t)
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	apiDir := demoAPIDir(t, root)
	demo := startDemo(t, filepath.Join(root, "caddyfile.example"), map[string]string{
		"DEMO_API_DIR":  apiDir,
		"DEMO_TICK_MS":  "250",
		"DEMO_INTERVAL": "250ms",
		"DEMO_RETRY":    "250ms",
	}, "DEMO_ADDR")
	h2 := startDemo(t, filepath.Join(root, "caddyfile.h2.example"), map[string]string{
		"DEMO_API_DIR":  apiDir,
		"DEMO_TICK_MS":  "250",
		"DEMO_INTERVAL": "250ms",
		"DEMO_RETRY":    "250ms",
		"DEMO_API_ADDR": freeAddr(t),
	}, "DEMO_H2_ADDR")
	artifacts := filepath.Join(root, "tests", "browser", "artifacts")
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	runE2E(t, browserSettings{
		Base:        "http://" + localhost(demo.siteAddr),
		Admin:       "http://" + demo.adminAddr,
		Caddyfile:   demo.file,
		APIDir:      apiDir,
		Artifacts:   artifacts,
		H2Base:      "https://" + localhost(h2.siteAddr),
		H2Admin:     "http://" + h2.adminAddr,
		H2Caddyfile: h2.file,
		Chromium:    chromium,
	})
}

// requireBrowser returns chromium's path and checks for playwright-core. Without
// chromium the test is skipped, unless CI is set.
func requireBrowser(t *testing.T) string {
	t.Helper()
	path := chromiumPath
	if _, err := os.Stat(path); err != nil {
		if p, lerr := exec.LookPath("chromium"); lerr == nil {
			path = p
		} else if os.Getenv("CI") == "" {
			t.Skip("chromium is not installed: run tests/setup.sh (with CI set, this is a failure)")
		} else {
			t.Fatal("chromium is not installed: run tests/setup.sh")
		}
	}
	requireNodeBinary(t)
	if _, err := os.Stat(filepath.Join("..", "node_modules", "playwright-core", "package.json")); err != nil {
		t.Fatal("node_modules/playwright-core is missing: run tests/setup.sh")
	}
	return path
}

// demoAPIDir returns a directory holding a copy of the simulated API, where the test may
// create the file that makes it fail.
func demoAPIDir(t *testing.T, root string) string {
	t.Helper()
	dir := t.TempDir()
	tpl, err := os.ReadFile(filepath.Join(root, "web", "demo", "api", "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "state.json"), tpl, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// localhost turns 127.0.0.1:port into localhost:port, the demos' host name.
func localhost(addr string) string {
	return strings.Replace(addr, "127.0.0.1", "localhost", 1)
}

// startDemo runs Caddy in the repository root on the Caddyfile file, with env and a free
// admin address and site address (the latter in the variable siteVar), and waits until it
// answers. It is killed when the test ends.
func startDemo(t *testing.T, file string, env map[string]string, siteVar string) *caddyProc {
	t.Helper()
	config, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	c := &caddyProc{
		t:         t,
		file:      file,
		config:    config,
		adminAddr: freeAddr(t),
		siteAddr:  freeAddr(t),
		stderr:    new(syncBuffer),
		exited:    make(chan struct{}),
	}
	c.cmd = exec.Command(caddyBin, "run", "--config", file, "--adapter", "caddyfile")
	c.cmd.Dir = filepath.Dir(file)
	c.cmd.Env = append(os.Environ(),
		"HOME="+dir, "XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"),
		"DEMO_ADMIN="+c.adminAddr, siteVar+"="+localhost(c.siteAddr))
	for k, v := range env {
		c.cmd.Env = append(c.cmd.Env, k+"="+v)
	}
	c.cmd.Stdout, c.cmd.Stderr = c.stderr, c.stderr
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("starting caddy: %v", err)
	}
	go func() {
		c.exitErr = c.cmd.Wait()
		close(c.exited)
	}()
	t.Cleanup(c.cleanup)
	c.waitReady()
	return c
}

// runE2E runs e2e.mjs with s and reports its checks.
func runE2E(t *testing.T, s browserSettings) {
	t.Helper()
	runNodeChecks(t, "tests/browser/e2e.mjs", browserTimeout, s, e2eChecks)
}

// runNodeChecks runs a Node script of the tests with its settings, given as a JSON file,
// logs what it prints, and checks that it passed want checks (`{"pass":…}` lines).
func runNodeChecks(t *testing.T, script string, timeout time.Duration, settings any, want int) {
	t.Helper()
	data, err := json.Marshal(settings)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "settings.json")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := runInRepo(t, timeout, "node", script, file)
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		t.Log(line)
	}
	if err != nil {
		t.Fatalf("%s: %v", script, err)
	}
	if n := strings.Count(out, `{"pass":`); n != want {
		t.Fatalf("%s passed %d checks, want %d", script, n, want)
	}
}
