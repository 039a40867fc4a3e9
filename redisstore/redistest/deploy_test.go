package redistest_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pollsse/caddy-poll-sse/redisstore/redistest"
)

// TestCluster writes keys of many slots through a cluster client, and reads them back
// from the master serving each.
func TestCluster(t *testing.T) {
	t.Parallel()
	c := redistest.NewCluster(t)
	rc := c.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	masters := map[string]bool{}
	for i := range 30 {
		key := fmt.Sprintf("key-%d", i)
		if err := rc.Set(ctx, key, i, 0).Err(); err != nil {
			t.Fatalf("SET %s: %v", key, err)
		}
		node, err := rc.MasterForKey(ctx, key)
		if err != nil {
			t.Fatalf("master of %s: %v", key, err)
		}
		masters[node.Options().Addr] = true
		if got, err := node.Get(ctx, key).Int(); err != nil || got != i {
			t.Fatalf("GET %s from %s: %d, %v; want %d", key, node.Options().Addr, got, err, i)
		}
	}
	if len(masters) != len(c.Addrs) {
		t.Errorf("30 keys on %d masters; want all %d", len(masters), len(c.Addrs))
	}
}

// TestSentinel kills the master: the Sentinels promote the replica, which holds what the
// master had, and a failover client writes to it.
func TestSentinel(t *testing.T) {
	t.Parallel()
	s := redistest.NewSentinel(t)
	rc := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: s.Master, SentinelAddrs: s.Addrs})
	defer rc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	if err := rc.Set(ctx, "before", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	old := s.KillMaster()
	killed := time.Now()
	promoted := s.WaitPromoted(old)
	t.Logf("master %s killed; %s promoted %v later", old, promoted, time.Since(killed).Round(time.Millisecond))
	for ctx.Err() == nil {
		if err := rc.Set(ctx, "after", "1", 0).Err(); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got, err := rc.Get(ctx, "before").Result(); err != nil || got != "1" {
		t.Errorf("GET before on %s: %q, %v; want the value written before the failover", promoted, got, err)
	}
}
