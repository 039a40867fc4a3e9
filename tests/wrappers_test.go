package tests

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestStreamBehindWrappingMiddleware streams through middleware that wraps the
// ResponseWriter: `intercept` (for error statuses, which a stream never has), and a
// module that rewrites every write, as third-party modules do. Every event reaches the
// client through them: a connection is handed to the hub only when each writer of the
// route is known to pass bytes on unchanged.
func TestStreamBehindWrappingMiddleware(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, middleware string
		seen             func(note string) string // the note as the client must see it
	}{
		{"intercept", "intercept {\n\t\t@err status 5xx\n\t\treplace_status @err 502\n\t}", func(n string) string { return n }},
		{"rewriting module", "rewrite_body_test secret XXXXXX", func(n string) string { return strings.ReplaceAll(n, "secret", "XXXXXX") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			checkStreamBehind(t, tc.middleware, tc.seen)
		})
	}
}

func checkStreamBehind(t *testing.T, middleware string, seen func(string) string) {
	note := func(rev int) map[string]any {
		return map[string]any{"rev": rev, "note": "secret " + strings.Repeat("x", rev)}
	}
	shown := func(rev int) map[string]any { d := note(rev); d["note"] = seen(d["note"].(string)); return d }
	u := newUpstream(t, note(0))
	route := "route {\n\t" + middleware + "\n\t" + indent(pollSSE(u.url(), "interval 50ms")) + "\n}"
	caddy := startCaddy(t, route)

	c := dialSSE(t, caddy.url(""))
	checkStreamHeaders(t, c.resp)
	c.waitFor(jsonOf(t, shown(0)), 5*time.Second)
	const changes = 10
	for rev := 1; rev <= changes; rev++ {
		u.set(t, note(rev))
		got := c.waitFor(jsonOf(t, shown(rev)), 5*time.Second)
		if len(versionEvents(got)) != 1 {
			t.Fatalf("change %d: want one event, got %s", rev, summarize(got))
		}
	}
	c.close()
}

func jsonOf(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
