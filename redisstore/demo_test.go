package redisstore

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"strconv"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/pollsse/caddy-poll-sse/poller"
	"github.com/pollsse/caddy-poll-sse/redisstore/redistest"
)

// demoVersions returns n versions of the demo's document (testdata/demo-state.json, as
// caddyfile.example serves it): each moves the tick and the volumes, as the demo's ticks do.
func demoVersions(t *testing.T, n int) [][]byte {
	t.Helper()
	doc, err := os.ReadFile("testdata/demo-state.json")
	if err != nil {
		t.Fatal(err)
	}
	numbers := regexp.MustCompile(`("tick": |"volume": )(\d+)`)
	out := make([][]byte, n)
	for v := range n {
		out[v] = numbers.ReplaceAllFunc(doc, func(m []byte) []byte {
			sub := numbers.FindSubmatch(m)
			x, _ := strconv.Atoi(string(sub[2]))
			return append(bytes.Clone(sub[1]), strconv.Itoa(x+v*97%1000)...)
		})
	}
	return out
}

// TestDemoDocumentFigures stores 1,000 versions of the demo's document and reports what
// they cost: the compression ratio, and the Redis bytes per version, which the
// documented formula bounds.
func TestDemoDocumentFigures(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	client := redis.NewClient(&redis.Options{Addr: r.Addr})
	t.Cleanup(func() { _ = client.Close() })
	st := &Store{Client: client}
	s := st.Source(poller.Config{URL: "http://127.0.0.1:9/demo"}, nil)
	ctx := context.Background()
	value := st.leaseValue()
	client.Set(ctx, s.lease, value, 0)
	var raw, stored int
	versions := demoVersions(t, 1000)
	for i, doc := range versions {
		if n, err := s.offer(ctx, value, digest(doc), poller.Result{Body: doc, Status: 200}); err != nil || n != appendDone {
			t.Fatalf("version %d: %d, %v", i, n, err)
		}
		raw += len(doc)
		stored += len(compress(doc))
	}
	used := memoryUsage(t, client, s.stream)
	c := float64(stored) / float64(len(versions))
	if bound := int64(float64(len(versions)) * allocatorSlack * (c + entryOverhead)); used > bound {
		t.Errorf("Redis holds %d bytes for %d versions; the formula bounds it at %d", used, len(versions), bound)
	}
	t.Logf("demo document: %d bytes, compressed %.0f (ratio %.1f); Redis %d bytes for %d versions, %.0f per version",
		raw/len(versions), c, float64(raw)/float64(stored), used, len(versions), float64(used)/float64(len(versions)))
}
