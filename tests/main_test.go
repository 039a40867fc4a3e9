// Package tests holds the integration tests of poll_sse: each test runs a real Caddy
// process built with the module, a real upstream in the test process, and real SSE
// clients over loopback TCP.
package tests

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// caddyBin is the Caddy binary built once for the whole run by TestMain.
var caddyBin string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "pollsse-tests-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "creating build dir:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	caddyBin = filepath.Join(dir, "caddy")
	if err := buildCaddy(caddyBin); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if code := m.Run(); code != 0 {
		return code
	}
	return checkGoroutines()
}

// checkGoroutines reports goroutines left running by the tests (clients, upstreams,
// process waiters) once they have had time to exit.
func checkGoroutines() int {
	http.DefaultClient.CloseIdleConnections()
	if err := goleak.Find(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// buildCaddy builds ./cmd/caddy of the repository that holds this directory, with the
// modules of the tests (tests/rewritemodule).
func buildCaddy(out string) error {
	start := time.Now()
	cmd := exec.Command("go", "build", "-tags", "pollssetest", "-o", out, "./cmd/caddy")
	cmd.Dir = ".."
	if msg, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building caddy: %v\n%s", err, msg)
	}
	fmt.Fprintf(os.Stderr, "built caddy in %v\n", time.Since(start).Round(time.Millisecond))
	return nil
}
