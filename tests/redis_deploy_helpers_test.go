package tests

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/redis/go-redis/v9"
)

// Timing of the Redis deployment tests: short, so that a lease expires and is taken over
// within about a second.
const (
	deployInterval = 200 * time.Millisecond
	deployLease    = time.Second
	deployWait     = 15 * time.Second // for a version to reach a client
)

// storeRedis returns a `store redis` subdirective on addrs with the given block lines and
// the deployment tests' lease TTL.
func storeRedis(addrs []string, lines ...string) string {
	lines = append(lines, "lease_ttl "+deployLease.String())
	return "store redis " + strings.Join(addrs, " ") + " {\n\t\t" + strings.Join(lines, "\n\t\t") + "\n\t}"
}

// startNodes starts n Caddy nodes, each on the site body that site gives for its index.
func startNodes(t *testing.T, n int, site func(i int) string) []*caddyProc {
	t.Helper()
	nodes := make([]*caddyProc, n)
	for i := range nodes {
		nodes[i] = startCaddy(t, site(i))
	}
	return nodes
}

// pause stops the process (SIGSTOP), as a long GC pause or a frozen VM would, and waits
// until every thread of it has stopped; resume lets it run on (SIGCONT).
func (c *caddyProc) pause() {
	c.t.Helper()
	pid := c.cmd.Process.Pid
	if err := c.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		c.t.Fatalf("pausing caddy (pid %d): %v", pid, err)
	}
	if !eventually(caddyStopTimeout, func() bool { return stopped(pid) }) {
		c.t.Fatalf("caddy (pid %d) still running %v after SIGSTOP", pid, caddyStopTimeout)
	}
}

// stopped reports whether every thread of process pid is stopped, as Linux's
// /proc/<pid>/task/<tid>/stat says (state T).
func stopped(pid int) bool {
	stats, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
	if err != nil || len(stats) == 0 {
		return false
	}
	for _, f := range stats {
		b, err := os.ReadFile(f)
		if err != nil {
			return false
		}
		// The state follows the command name, which is in parentheses and may hold any byte.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 || i+2 >= len(b) || b[i+2] != 'T' {
			return false
		}
	}
	return true
}

func (c *caddyProc) resume() {
	c.t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		c.t.Fatalf("resuming caddy (pid %d): %v", c.cmd.Process.Pid, err)
	}
}

// docTrace follows one client version by version: docs holds its document after each
// snapshot or patch it applied, with the independent applier of sseClient, and ids the
// event ids.
type docTrace struct {
	name string
	c    *sseClient
	docs [][]byte
	ids  []string
}

func newTrace(name string, c *sseClient) *docTrace { return &docTrace{name: name, c: c} }

// until consumes messages until the client holds want, recording each version and
// passing it to check (which may be nil).
func (tr *docTrace) until(want []byte, d time.Duration, check func(doc []byte, r received)) {
	tr.c.t.Helper()
	deadline := time.Now().Add(d)
	for tr.c.doc == nil || !jsonEqual(tr.c.doc, want) {
		r, err := tr.c.next(time.Until(deadline))
		if err != nil {
			tr.c.t.Fatalf("%s: document not reached within %v: %v\nwant: %.300s\nhave: %.300s\nversions: %s",
				tr.name, d, err, want, tr.c.doc, tr.summary())
		}
		tr.record(r, check)
	}
}

// settle consumes messages until the client holds want and nothing more arrives for
// quiet, recording each version and passing it to check.
func (tr *docTrace) settle(want []byte, quiet, d time.Duration, check func(doc []byte, r received)) {
	tr.c.t.Helper()
	deadline := time.Now().Add(d)
	for {
		tr.until(want, time.Until(deadline), check)
		r, err := tr.c.next(min(quiet, time.Until(deadline)))
		if errors.Is(err, errTimeout) && jsonEqual(tr.c.doc, want) {
			return
		}
		if err != nil {
			tr.c.t.Fatalf("%s: not settled on %.300s within %v: %v; versions: %s", tr.name, want, d, err, tr.summary())
		}
		tr.record(r, check)
	}
}

func (tr *docTrace) record(r received, check func(doc []byte, r received)) {
	if r.Type != "snapshot" && r.Type != "patch" {
		return
	}
	tr.docs = append(tr.docs, tr.c.doc)
	tr.ids = append(tr.ids, r.LastEventID)
	if check != nil {
		check(tr.c.doc, r)
	}
}

// summary lists the documents the client went through, for failure output.
func (tr *docTrace) summary() string {
	var b strings.Builder
	for i, d := range tr.docs {
		fmt.Fprintf(&b, "\n\t%s %.120s", tr.ids[i], d)
	}
	return b.String()
}

// checkSequence checks that the client went through exactly the documents the upstream
// served, in order: none lost, none repeated, none out of order, and a new id for each.
func (tr *docTrace) checkSequence(t testing.TB, want [][]byte) {
	t.Helper()
	for i := range max(len(want), len(tr.docs)) {
		switch {
		case i >= len(tr.docs):
			t.Errorf("%s: version %d lost: %.120s; went through:%s", tr.name, i, want[i], tr.summary())
			return
		case i >= len(want):
			t.Errorf("%s: version %d beyond the upstream's %d: %.120s; went through:%s",
				tr.name, i, len(want), tr.docs[i], tr.summary())
			return
		case !jsonEqual(tr.docs[i], want[i]):
			t.Errorf("%s: version %d is %.120s; the upstream served %.120s; went through:%s",
				tr.name, i, tr.docs[i], want[i], tr.summary())
			return
		}
	}
	seen := map[string]bool{}
	for _, id := range tr.ids {
		if seen[id] {
			t.Errorf("%s: id %s given twice; went through:%s", tr.name, id, tr.summary())
			return
		}
		seen[id] = true
	}
}

// loopStream returns the key of the one stream in Redis, the loop's.
func loopStream(ctx context.Context, t *testing.T, rc *redis.Client) string {
	t.Helper()
	keys, err := rc.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	var streams []string
	for _, k := range keys {
		if typ, err := rc.Type(ctx, k).Result(); err == nil && typ == "stream" {
			streams = append(streams, k)
		}
	}
	if len(streams) != 1 {
		t.Fatalf("%d streams in Redis, want the loop's one: %q", len(streams), keys)
	}
	return streams[0]
}

// streamBodies returns the upstream bodies a stream holds, oldest first, decompressed
// with a zstd decoder of the test's own: a body entry holds the field "body", a zstd
// frame of "size" bytes.
func streamBodies(ctx context.Context, t *testing.T, rc *redis.Client, stream string) [][]byte {
	t.Helper()
	entries, err := rc.XRange(ctx, stream, "-", "+").Result()
	if err != nil {
		t.Fatalf("reading %s: %v", stream, err)
	}
	dec, err := zstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	var bodies [][]byte
	for _, e := range entries {
		data, ok := e.Values["body"].(string)
		if !ok {
			continue // a change of upstream health
		}
		body, err := dec.DecodeAll([]byte(data), nil)
		if err != nil {
			t.Fatalf("entry %s of %s: the body is not a zstd frame: %v", e.ID, stream, err)
		}
		if size, _ := e.Values["size"].(string); size != strconv.Itoa(len(body)) {
			t.Errorf("entry %s of %s: size %q, body of %d bytes", e.ID, stream, size, len(body))
		}
		bodies = append(bodies, body)
	}
	return bodies
}
