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
// and must stay small once minified, as must each of its optional parts,
// web/poll-sse-*.js, each measured on its own as the separate import it is.

const (
	webClientMaxMinified = 3072 // bytes
	webPartMaxMinified   = 1536 // bytes, each optional part
	nodeTestTimeout      = 2 * time.Minute
)

// webClientTests are the test files of tests/web, relative to the repository root.
var webClientTests = []string{"tests/web/patch.test.mjs", "tests/web/client.test.mjs", "tests/web/transports.test.mjs", "tests/web/mux.test.mjs"}

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
	parts, err := filepath.Glob(filepath.Join("..", "web", "poll-sse-*.js"))
	if err != nil || len(parts) == 0 {
		t.Fatalf("no optional parts in web/: %v", err)
	}
	checkMinified(t, esbuild, "web/poll-sse.js", webClientMaxMinified)
	for _, p := range parts {
		checkMinified(t, esbuild, "web/"+filepath.Base(p), webPartMaxMinified)
	}
}

// checkMinified checks that file, minified alone (its imports left as imports), is at
// most limit bytes.
func checkMinified(t *testing.T, esbuild, file string, limit int) {
	t.Helper()
	out, err := runInRepo(t, time.Minute, esbuild, file, "--minify", "--format=esm", "--log-level=warning")
	if err != nil {
		t.Fatalf("esbuild: %v\n%s", err, truncate(out, 4000))
	}
	if len(out) > limit {
		t.Errorf("%s is %d bytes minified, over %d", file, len(out), limit)
	}
	t.Logf("%s minified: %d bytes (limit %d)", file, len(out), limit)
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
