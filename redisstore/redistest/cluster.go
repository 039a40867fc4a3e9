package redistest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// clusterSlots is the number of hash slots of a Redis Cluster.
const clusterSlots = 16384

// clusterTimeout bounds how long a new cluster takes to agree on its slots.
const clusterTimeout = 20 * time.Second

// Cluster is a Redis Cluster of three masters, without replicas, each a redis-server of
// the test's own on loopback ports, keeping no data on disk.
type Cluster struct {
	// Addrs are the masters' host:port, each a seed address for a cluster client.
	Addrs []string
}

// NewCluster starts the three masters, gives each a third of the hash slots, joins them,
// and waits until every one says cluster_state:ok. They are stopped when the test ends.
// Where redis-server is missing it skips the test, or fails it under CI.
func NewCluster(t testing.TB) *Cluster {
	t.Helper()
	bin := need(t, "redis-server")
	dir := t.TempDir()
	clients := make([]*redis.Client, 3)
	buses := make([]int, 3)
	c := &Cluster{Addrs: make([]string, 3)}
	for i := range clients {
		port := freePort(t)
		buses[i] = freePort(t) // the cluster bus, named so that port+10000 need not be free
		log, args := serverArgs(dir, port,
			"--cluster-enabled", "yes",
			"--cluster-config-file", fmt.Sprintf("%s/nodes-%d.conf", dir, port),
			"--cluster-port", fmt.Sprint(buses[i]),
			"--cluster-node-timeout", "2000")
		p := startProc(t, port, log, bin, args...)
		c.Addrs[i] = p.addr
		clients[i] = redis.NewClient(&redis.Options{Addr: p.addr})
		t.Cleanup(func() { _ = clients[i].Close() })
	}
	if err := join(clients, buses); err != nil {
		t.Fatalf("creating the cluster: %v", err)
	}
	if err := waitFor(clusterTimeout, func() error { return clusterOK(clients) }); err != nil {
		t.Fatalf("cluster not ready within %v: %v", clusterTimeout, err)
	}
	return c
}

// join gives node i the i-th third of the slots and a config epoch of its own, and makes
// the first node meet the others.
func join(clients []*redis.Client, buses []int) error {
	ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
	defer cancel()
	for i, rc := range clients {
		from := i * clusterSlots / len(clients)
		to := (i+1)*clusterSlots/len(clients) - 1
		if err := rc.ClusterAddSlotsRange(ctx, from, to).Err(); err != nil {
			return fmt.Errorf("adding slots %d-%d to %s: %w", from, to, rc.Options().Addr, err)
		}
		if err := rc.Do(ctx, "CLUSTER", "SET-CONFIG-EPOCH", i+1).Err(); err != nil {
			return fmt.Errorf("setting the config epoch of %s: %w", rc.Options().Addr, err)
		}
	}
	for i, rc := range clients[1:] {
		host, port, _ := strings.Cut(rc.Options().Addr, ":")
		if err := clients[0].Do(ctx, "CLUSTER", "MEET", host, port, buses[i+1]).Err(); err != nil {
			return fmt.Errorf("meeting %s: %w", rc.Options().Addr, err)
		}
	}
	return nil
}

// clusterOK returns nil when every node says the cluster is ok, with all slots served
// and all nodes known.
func clusterOK(clients []*redis.Client) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for _, rc := range clients {
		info, err := rc.ClusterInfo(ctx).Result()
		if err != nil {
			return err
		}
		for _, want := range []string{
			"cluster_state:ok",
			fmt.Sprintf("cluster_slots_ok:%d", clusterSlots),
			fmt.Sprintf("cluster_known_nodes:%d", len(clients)),
		} {
			if !strings.Contains(info, want+"\r\n") {
				return fmt.Errorf("%s: no %s in CLUSTER INFO:\n%s", rc.Options().Addr, want, info)
			}
		}
	}
	return nil
}

// Client returns a cluster client on the seed addresses, closed when the test ends.
func (c *Cluster) Client(t testing.TB) *redis.ClusterClient {
	rc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs})
	t.Cleanup(func() { _ = rc.Close() })
	return rc
}

// Keys returns the keys matching pattern on the one server at addr, such as one master of
// a cluster.
func Keys(ctx context.Context, addr, pattern string) ([]string, error) {
	rc := redis.NewClient(&redis.Options{Addr: addr})
	defer rc.Close()
	var keys []string
	iter := rc.Scan(ctx, 0, pattern, 100).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	return keys, iter.Err()
}
