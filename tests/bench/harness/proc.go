package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// clockTicks is the kernel's USER_HZ, the unit of utime and stime in /proc/<pid>/stat.
var clockTicks = 100.0

// Child is a server process started in its own process group.
type Child struct {
	Name string
	cmd  *exec.Cmd
	done chan struct{}
	log  string
}

// children holds every child still running, so that they can all be stopped on exit.
var children struct {
	sync.Mutex
	set     map[*Child]struct{}
	pidFile string
}

// StartChild runs argv with its output in logPath, in a new process group, and waits until
// addr accepts connections.
func StartChild(name string, argv []string, logPath, addr string) (*Child, error) {
	out, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer out.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Dir = filepath.Dir(logPath)
	cmd.Env = append(os.Environ(), "HOME="+cmd.Dir, "XDG_CONFIG_HOME="+cmd.Dir, "XDG_DATA_HOME="+cmd.Dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &Child{Name: name, cmd: cmd, done: make(chan struct{}), log: logPath}
	go func() { _ = cmd.Wait(); close(c.done) }()
	register(c)
	if err := c.waitListening(addr, 15*time.Second); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// register adds c to the running children and rewrites the pid file.
func register(c *Child) {
	children.Lock()
	defer children.Unlock()
	if children.set == nil {
		children.set = make(map[*Child]struct{})
	}
	children.set[c] = struct{}{}
	writePidFile()
}

// writePidFile lists the running children's pids for run.sh's trap. children is locked.
func writePidFile() {
	if children.pidFile == "" {
		return
	}
	var b strings.Builder
	for c := range children.set {
		fmt.Fprintln(&b, c.cmd.Process.Pid)
	}
	_ = os.WriteFile(children.pidFile, []byte(b.String()), 0o644)
}

// StopAll stops every child still running.
func StopAll() {
	children.Lock()
	var list []*Child
	for c := range children.set {
		list = append(list, c)
	}
	children.Unlock()
	for _, c := range list {
		c.Stop()
	}
}

// waitListening dials addr until it answers, the child exits, or timeout.
func (c *Child) waitListening(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-c.done:
			return fmt.Errorf("%s exited at start; its log %s ends:\n%s", c.Name, c.log, tail(c.log))
		default:
		}
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s not listening on %s after %v; its log %s ends:\n%s", c.Name, addr, timeout, c.log, tail(c.log))
}

// tail returns the end of a log file.
func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// Pid is the process (and process group) id.
func (c *Child) Pid() int { return c.cmd.Process.Pid }

// Stop sends SIGTERM to the child's process group, then SIGKILL if it has not exited
// within 5 s, and waits for it.
func (c *Child) Stop() {
	pgid := c.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		select {
		case <-c.done:
		case <-time.After(5 * time.Second):
		}
	}
	if groupAlive(pgid) {
		_ = syscall.Kill(-pgid, syscall.SIGKILL) // workers left behind by the leader
	}
	children.Lock()
	delete(children.set, c)
	writePidFile()
	children.Unlock()
}

// groupAlive reports whether a process of group pgid still runs; while one does, the
// group id cannot be given to another process.
func groupAlive(pgid int) bool {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return false
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if group, _, err := procStat(pid); err == nil && group == pgid {
			return true
		}
	}
	return false
}

// Usage is a process group's resident memory and CPU time.
type Usage struct {
	RSS   int64         // bytes, summed over the group
	CPU   time.Duration // utime+stime, summed over the group
	Procs int
}

// Usage sums VmRSS and utime+stime over the processes of the child's group.
func (c *Child) Usage() (Usage, error) {
	pgid := c.cmd.Process.Pid
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return Usage{}, err
	}
	var u Usage
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		group, cpu, err := procStat(pid)
		if err != nil || group != pgid {
			continue
		}
		rss, err := procRSS(pid)
		if err != nil {
			continue
		}
		u.RSS += rss
		u.CPU += cpu
		u.Procs++
	}
	if u.Procs == 0 {
		return u, errors.New(c.Name + ": no process in its group")
	}
	return u, nil
}

// procStat reads a process's group id and utime+stime from /proc/<pid>/stat.
func procStat(pid int) (pgid int, cpu time.Duration, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, errors.New("bad stat")
	}
	f := strings.Fields(string(b[i+1:]))
	// After the command: state(0) ppid(1) pgrp(2) … utime(11) stime(12).
	if len(f) < 13 {
		return 0, 0, errors.New("short stat")
	}
	pgid, _ = strconv.Atoi(f[2])
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return pgid, time.Duration((ut + st) / clockTicks * float64(time.Second)), nil
}

// procRSS reads VmRSS from /proc/<pid>/status, in bytes.
func procRSS(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v)
			kb, err := strconv.ParseInt(f[0], 10, 64)
			return kb * 1024, err
		}
	}
	return 0, errors.New("no VmRSS")
}

// freeAddr returns a loopback address with a port free at the time of the call.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
