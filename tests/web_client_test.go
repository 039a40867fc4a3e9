package tests

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The browser client, web/poll-sse.js, is tested with Node's test runner (tests/web/)
// and must stay small once minified.

const (
	webClientMaxMinified = 3072 // bytes
	nodeTestTimeout      = 2 * time.Minute
)

// webClientTests are the test files of tests/web, relative to the repository root.
var webClientTests = []string{"tests/web/patch.test.mjs", "tests/web/client.test.mjs"}

func TestWebClientUnit(t *testing.T) {
	t.Parallel()
	requireNodeBinary(t)
	args := append([]string{"--no-warnings", "--test", "--test-reporter=spec"}, webClientTests...)
	out, err := runInRepo(t, nodeTestTimeout, "node", args...)
	if err != nil {
		t.Fatalf("node --test: %v\n%s", err, truncate(out, 40000))
	}
	t.Logf("node --test: %s", lastLines(out, 8))
}

func TestWebClientSize(t *testing.T) {
	t.Parallel()
	requireNodeBinary(t)
	esbuild := filepath.Join("node_modules", ".bin", "esbuild")
	if _, err := os.Stat(filepath.Join("..", esbuild)); err != nil {
		t.Fatal("node_modules/.bin/esbuild is missing: run tests/setup.sh")
	}
	out, err := runInRepo(t, time.Minute, esbuild, "web/poll-sse.js", "--minify", "--format=esm", "--log-level=warning")
	if err != nil {
		t.Fatalf("esbuild: %v\n%s", err, truncate(out, 4000))
	}
	if len(out) > webClientMaxMinified {
		t.Errorf("web/poll-sse.js is %d bytes minified, over %d", len(out), webClientMaxMinified)
	}
	t.Logf("web/poll-sse.js minified: %d bytes (limit %d)", len(out), webClientMaxMinified)
}

// requireNodeBinary fails the test when node is not installed.
func requireNodeBinary(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatal("node is not installed (Node 20 or later); run tests/setup.sh")
	}
}

// runInRepo runs a command in the repository root within d and returns its stdout, or
// stdout and stderr together when it fails.
func runInRepo(t *testing.T, d time.Duration, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = ".."
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return stdout.String() + stderr.String(), err
	}
	return stdout.String(), nil
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
