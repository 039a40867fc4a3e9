// Package redistest runs a redis-server of a test's own, from Debian's package, on a free
// loopback port, for the tests of the Redis store.
package redistest

import (
	"net"
	"os"
	"os/exec"
	"testing"
	"time"
)

// Server is a redis-server that keeps no data on disk.
type Server struct {
	// Addr is the host:port it listens on, the same across Stop and Start.
	Addr string

	t   testing.TB
	cmd *exec.Cmd
}

// New starts a server, stopped when the test ends. Where redis-server is missing it skips
// the test, or fails it under CI, whose setup (tests/setup.sh) installs it.
func New(t testing.TB) *Server {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("redis-server is missing: tests/setup.sh installs it")
		}
		t.Skip("redis-server is not installed (tests/setup.sh installs it)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Addr: ln.Addr().String(), t: t}
	_ = ln.Close()
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

// Start starts the server again after Stop, empty, and waits until it accepts
// connections.
func (s *Server) Start() {
	s.t.Helper()
	_, port, _ := net.SplitHostPort(s.Addr)
	s.cmd = exec.Command("redis-server", "--bind", "127.0.0.1", "--port", port, "--save", "", "--appendonly", "no")
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("tcp", s.Addr); err == nil {
			_ = c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.t.Fatal("redis-server did not start")
}

// Stop kills the server.
func (s *Server) Stop() {
	if s.cmd != nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
		s.cmd = nil
	}
}
