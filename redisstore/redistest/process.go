package redistest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

const (
	startTimeout = 5 * time.Second // for a process to accept connections
	logShown     = 4 << 10         // the tail of a process's log shown when a test fails
)

// need returns the path of bin, or skips the test where it is missing; under CI, whose
// setup (tests/setup.sh) installs it, it fails the test instead.
func need(t testing.TB, bin string) string {
	t.Helper()
	path, err := exec.LookPath(bin)
	if err == nil {
		return path
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is missing: tests/setup.sh installs it", bin)
	}
	t.Skipf("%s is not installed (tests/setup.sh installs it)", bin)
	return ""
}

// ports handed out by this package in this process, so that the processes of parallel
// tests never get the same one.
var (
	portsMu sync.Mutex
	ports   = map[int]bool{}
)

// freePort returns a loopback port that was free a moment ago and that this package has
// not handed out before.
func freePort(t testing.TB) int {
	t.Helper()
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		_ = ln.Close()
		portsMu.Lock()
		taken := ports[port]
		ports[port] = true
		portsMu.Unlock()
		if !taken {
			return port
		}
	}
	t.Fatal("no free port found")
	return 0
}

// proc is one redis-server or redis-sentinel process of a test. It logs to a file, whose
// tail the test shows when it fails, and is killed when the test ends.
type proc struct {
	addr string
	log  string
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
}

// startProc starts bin with args, listening on port, and waits until it accepts
// connections.
func startProc(t testing.TB, port int, log, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{
		addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		log:  log,
		cmd:  exec.Command(bin, args...),
		done: make(chan struct{}),
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("%s %s log (tail):\n%s", filepath.Base(bin), p.addr, tail(p.log, logShown))
		}
	})
	if err := p.waitUp(); err != nil {
		t.Fatalf("%s on %s: %v\nlog:\n%s", bin, p.addr, err, tail(p.log, logShown))
	}
	return p
}

// waitUp waits until the process accepts connections.
func (p *proc) waitUp() error {
	deadline := time.Now().Add(startTimeout)
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return fmt.Errorf("exited while starting")
		default:
		}
		if c, err := net.DialTimeout("tcp", p.addr, time.Second); err == nil {
			_ = c.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("not accepting connections after %v", startTimeout)
}

// kill ends the process at once, as a crash would, and waits for it to exit.
func (p *proc) kill() {
	_ = p.cmd.Process.Kill()
	select {
	case <-p.done:
	case <-time.After(startTimeout):
	}
}

// tail returns the last n bytes of the file at path.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > n {
		return "…" + string(b[len(b)-n:])
	}
	return string(b)
}

// serverArgs are the arguments of a redis-server on port that keeps no data on disk and
// logs into dir.
func serverArgs(dir string, port int, extra ...string) (string, []string) {
	log := filepath.Join(dir, fmt.Sprintf("redis-%d.log", port))
	args := []string{
		"--bind", "127.0.0.1", "--port", strconv.Itoa(port),
		"--save", "", "--appendonly", "no",
		"--dir", dir, "--logfile", log,
	}
	return log, append(args, extra...)
}

// waitFor calls ok every 50 ms until it reports true or d has passed, and returns the
// last error ok gave.
func waitFor(d time.Duration, ok func() error) error {
	deadline := time.Now().Add(d)
	for {
		err := ok()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}
