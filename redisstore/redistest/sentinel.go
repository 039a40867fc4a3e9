package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Settings of the Sentinels: a master is down after a second without an answer, two of
// the three must agree, and a failover that stalls is retried after three seconds.
const (
	sentinelQuorum    = 2
	sentinelDownAfter = time.Second
	sentinelFailover  = 3 * time.Second
	sentinelTimeout   = 30 * time.Second // for the Sentinels to know each other and the replica
)

// FailoverTimeout bounds how long the Sentinels take to promote the replica once the
// master is killed: the master is found down after a second, and a failover that stalls
// is retried after three seconds.
const FailoverTimeout = 30 * time.Second

// Sentinel is a Redis master with one replica, watched by three Sentinels, each a process
// of the test's own on loopback ports, keeping no data on disk.
type Sentinel struct {
	// Master is the name the Sentinels know the master by.
	Master string
	// Addrs are the Sentinels' host:port.
	Addrs []string

	t       testing.TB
	servers map[string]*proc // the redis-servers by host:port
}

// NewSentinel starts the master, its replica and the three Sentinels, and waits until
// the replica is in sync and every Sentinel knows the replica and the other Sentinels,
// so that a failover can happen. All are stopped when the test ends. Where redis-server
// or redis-sentinel is missing it skips the test, or fails it under CI.
func NewSentinel(t testing.TB) *Sentinel {
	t.Helper()
	need(t, "redis-server")
	sentinel := need(t, "redis-sentinel")
	dir := t.TempDir()
	s := &Sentinel{Master: "mymaster", t: t, servers: map[string]*proc{}}
	master := s.startServer(dir)
	s.startServer(dir, "--replicaof", "127.0.0.1", fmt.Sprint(portOf(master)))
	if err := waitFor(sentinelTimeout, func() error { return s.synced(master) }); err != nil {
		t.Fatalf("replica not in sync within %v: %v", sentinelTimeout, err)
	}
	for range 3 {
		port := freePort(t)
		conf, log := s.sentinelConfig(dir, port, master)
		s.Addrs = append(s.Addrs, startProc(t, port, log, sentinel, conf).addr)
	}
	if err := waitFor(sentinelTimeout, s.watching); err != nil {
		t.Fatalf("sentinels not ready within %v: %v", sentinelTimeout, err)
	}
	return s
}

// startServer starts a redis-server that starts a replica's sync at once, and returns its
// host:port.
func (s *Sentinel) startServer(dir string, extra ...string) string {
	port := freePort(s.t)
	log, args := serverArgs(dir, port, append([]string{"--repl-diskless-sync-delay", "0"}, extra...)...)
	p := startProc(s.t, port, log, need(s.t, "redis-server"), args...)
	s.servers[p.addr] = p
	return p.addr
}

// sentinelConfig writes the configuration file of a Sentinel on port, which it rewrites
// as it learns, and returns its path and the Sentinel's log file.
func (s *Sentinel) sentinelConfig(dir string, port int, master string) (string, string) {
	conf := filepath.Join(dir, fmt.Sprintf("sentinel-%d.conf", port))
	log := filepath.Join(dir, fmt.Sprintf("sentinel-%d.log", port))
	host, mport, _ := net.SplitHostPort(master)
	text := fmt.Sprintf(`bind 127.0.0.1
port %d
dir %s
logfile %s
sentinel monitor %s %s %s %d
sentinel down-after-milliseconds %[4]s %[7]d
sentinel failover-timeout %[4]s %[8]d
sentinel parallel-syncs %[4]s 1
`, port, dir, log, s.Master, host, mport, sentinelQuorum, sentinelDownAfter.Milliseconds(), sentinelFailover.Milliseconds())
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		s.t.Fatal(err)
	}
	return conf, log
}

func portOf(addr string) int {
	_, p, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(p)
	return n
}

// watching returns nil when every Sentinel knows the replica and the two other Sentinels.
func (s *Sentinel) watching() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for _, addr := range s.Addrs {
		sc := redis.NewSentinelClient(&redis.Options{Addr: addr})
		replicas, err := sc.Replicas(ctx, s.Master).Result()
		if err == nil && len(replicas) != 1 {
			err = fmt.Errorf("%d replicas known", len(replicas))
		}
		var others []map[string]string
		if err == nil {
			others, err = sc.Sentinels(ctx, s.Master).Result()
		}
		if err == nil && len(others) != len(s.Addrs)-1 {
			err = fmt.Errorf("%d other sentinels known", len(others))
		}
		_ = sc.Close()
		if err != nil {
			return fmt.Errorf("sentinel %s: %w", addr, err)
		}
	}
	return nil
}

// MasterAddr returns the host:port of the master, as the first Sentinel that answers
// says.
func (s *Sentinel) MasterAddr() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	errs := []error{errors.New("no sentinel answered")}
	for _, addr := range s.Addrs {
		sc := redis.NewSentinelClient(&redis.Options{Addr: addr})
		hp, err := sc.GetMasterAddrByName(ctx, s.Master).Result()
		_ = sc.Close()
		if err == nil && len(hp) == 2 {
			return net.JoinHostPort(hp[0], hp[1]), nil
		}
		errs = append(errs, fmt.Errorf("sentinel %s: %v %w", addr, hp, err))
	}
	return "", errors.Join(errs...)
}

// synced returns nil when master has a replica online that has every byte of its
// replication stream.
func (s *Sentinel) synced(master string) error {
	info, err := s.info(master)
	if err != nil {
		return err
	}
	offset := field(info, "master_repl_offset")
	for _, line := range strings.Split(info, "\r\n") {
		if strings.HasPrefix(line, "slave0:") && strings.Contains(line, "state=online") &&
			strings.Contains(line, ",offset="+offset+",") {
			return nil
		}
	}
	return fmt.Errorf("master %s at offset %s; replica not online at that offset:\n%s", master, offset, info)
}

// info returns the INFO replication of the server at addr.
func (s *Sentinel) info(addr string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	rc := redis.NewClient(&redis.Options{Addr: addr})
	defer rc.Close()
	return rc.Info(ctx, "replication").Result()
}

// role returns the role of the server at addr, "" when it does not answer.
func (s *Sentinel) role(addr string) string {
	info, err := s.info(addr)
	if err != nil {
		return ""
	}
	return field(info, "role")
}

// field returns the value of name in an INFO answer.
func field(info, name string) string {
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, name+":"); ok {
			return v
		}
	}
	return ""
}

// KillMaster waits until the replica has everything the master wrote, then kills the
// master at once, as a crash would, and returns its host:port. Redis replicates
// asynchronously: a write the master acknowledged just before a crash may never reach
// the replica, and waiting keeps that loss, which no client of Redis can prevent, out
// of what a test checks.
func (s *Sentinel) KillMaster() string {
	s.t.Helper()
	addr, err := s.MasterAddr()
	if err != nil {
		s.t.Fatal(err)
	}
	if err := waitFor(sentinelTimeout, func() error { return s.synced(addr) }); err != nil {
		s.t.Fatalf("replica not in sync within %v: %v", sentinelTimeout, err)
	}
	p := s.servers[addr]
	if p == nil {
		s.t.Fatalf("the sentinels name %s, not one of this test's servers, as master", addr)
	}
	p.kill()
	return addr
}

// WaitPromoted waits until every Sentinel names a master other than old and that server
// says it is a master, and returns its host:port.
func (s *Sentinel) WaitPromoted(old string) string {
	s.t.Helper()
	var promoted string
	err := waitFor(FailoverTimeout, func() error {
		for _, addr := range s.Addrs {
			sc := redis.NewSentinelClient(&redis.Options{Addr: addr})
			hp, err := sc.GetMasterAddrByName(context.Background(), s.Master).Result()
			_ = sc.Close()
			if err != nil || len(hp) != 2 {
				return fmt.Errorf("sentinel %s: %v %w", addr, hp, err)
			}
			if promoted = net.JoinHostPort(hp[0], hp[1]); promoted == old {
				return fmt.Errorf("sentinel %s still names %s", addr, old)
			}
		}
		if role := s.role(promoted); role != "master" {
			return fmt.Errorf("%s says it is %q", promoted, role)
		}
		return nil
	})
	if err != nil {
		s.t.Fatalf("no replica promoted within %v: %v", FailoverTimeout, err)
	}
	return promoted
}
