package caddymodule

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/caddytest"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
)

// TestCaddyfileAdapt compares `caddy adapt` output with the golden JSON in
// testdata/adapt/*.caddyfiletest (Caddyfile, a line of dashes, JSON).
func TestCaddyfileAdapt(t *testing.T) {
	files, err := filepath.Glob("testdata/adapt/*.caddyfiletest")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			in, want, ok := strings.Cut(string(raw), "----------\n")
			if !ok {
				t.Fatal("no separator line")
			}
			if !caddytest.CompareAdapt(t, file, in, "caddyfile", strings.TrimSpace(want)) {
				t.Fatal("adapted JSON differs from the golden file")
			}
		})
	}
}

// TestCaddyfileErrors checks that bad subdirectives are errors naming the file and line.
func TestCaddyfileErrors(t *testing.T) {
	t.Parallel()
	tests := []caddyfileError{
		{"unknown subdirective", "poll_sse http://127.0.0.1/x {\n\tintervall 1s\n}", `unknown subdirective "intervall"`, "at Caddyfile:3"},
		{"malformed duration", "poll_sse http://127.0.0.1/x {\n\tinterval soon\n}", "interval:", "at Caddyfile:3"},
		{"zero duration", "poll_sse http://127.0.0.1/x {\n\tlinger 0\n}", `linger: "0" must be positive`, "at Caddyfile:3"},
		{"negative history", "poll_sse http://127.0.0.1/x {\n\thistory -1\n}", `history: "-1" is not a positive whole number`, "at Caddyfile:3"},
		{"missing upstream", "poll_sse", "wrong argument count", "at Caddyfile:2"},
		{"two upstreams", "poll_sse http://a/x http://b/y", "wrong argument count", "at Caddyfile:2"},
		{"header_up without value", "poll_sse http://127.0.0.1/x {\n\theader_up X-A\n}", "wrong argument count", "at Caddyfile:3"},
		{"bad method", "poll_sse http://127.0.0.1/x {\n\tmethod PUT\n}", `method: "PUT" is not GET or POST`, "at Caddyfile:3"},
		{"bad size", "poll_sse http://127.0.0.1/x {\n\tmax_body lots\n}", `max_body: "lots" is not a positive size`, "at Caddyfile:3"},
		{"forward without fields", "poll_sse http://127.0.0.1/x {\n\tforward\n}", "wrong argument count", "at Caddyfile:3"},
		{"extra argument", "poll_sse http://127.0.0.1/x {\n\ttimeout 1s 2s\n}", "wrong argument count", "at Caddyfile:3"},
		{"bad format", "poll_sse http://127.0.0.1/x {\n\tformat xml\n}", `format: "xml" is not json_patch, merge_patch or snapshot`, "at Caddyfile:3"},
		{"format without value", "poll_sse http://127.0.0.1/x {\n\tformat\n}", "wrong argument count", "at Caddyfile:3"},
		{"select not a pointer", "poll_sse http://127.0.0.1/x {\n\tselect x\n}", `select: JSON pointer "x" must be empty or start with /`, "at Caddyfile:3"},
		{"select without value", "poll_sse http://127.0.0.1/x {\n\tselect\n}", "wrong argument count", "at Caddyfile:3"},
		{"bad escape", "poll_sse http://127.0.0.1/x {\n\tignore /a~2\n}", "ignore: JSON pointer", "at Caddyfile:3"},
		{"ignore outside select", "poll_sse http://127.0.0.1/x {\n\tselect /data\n\tignore /meta/ts\n}", `ignore "/meta/ts" lies outside select "/data"`, "at Caddyfile:4"},
		{"select after ignore", "poll_sse http://127.0.0.1/x {\n\tignore /meta/ts\n\tselect /data\n}", `ignore "/meta/ts" lies outside select "/data"`, "at Caddyfile:4"},
		{"ignore without pointer", "poll_sse http://127.0.0.1/x {\n\tignore\n}", "wrong argument count", "at Caddyfile:3"},
		{"array_key without member", "poll_sse http://127.0.0.1/x {\n\tarray_key /items\n}", "array_key: want <json-pointer> <member>, got 1 argument(s)", "at Caddyfile:3"},
		{"zero max_subscribers", "poll_sse http://127.0.0.1/x {\n\tmax_subscribers 0\n}", `max_subscribers: "0" is not a positive whole number`, "at Caddyfile:3"},
		{"bad lifetime", "poll_sse http://127.0.0.1/x {\n\tmax_connection_lifetime forever\n}", "max_connection_lifetime:", "at Caddyfile:3"},
		{"name without label", "poll_sse http://127.0.0.1/x {\n\tname\n}", "wrong argument count", "at Caddyfile:3"},
		{"array_key outside select", "poll_sse http://127.0.0.1/x {\n\tselect /data\n\tarray_key /items id\n}", `array_key "/items" lies outside select "/data"`, "at Caddyfile:4"},
	}
	checkCaddyfileErrors(t, tests)
}

// caddyfileError is a Caddyfile site body that must fail to adapt with an error holding
// want and ending with at, the file and line.
type caddyfileError struct{ name, body, want, at string }

// checkCaddyfileErrors adapts each case's body under ":8080" and checks its error.
func checkCaddyfileErrors(t *testing.T, tests []caddyfileError) {
	t.Helper()
	adapter := caddyconfig.GetAdapter("caddyfile")
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			body := ":8080\n" + tc.body + "\n"
			_, _, err := adapter.Adapt([]byte(body), map[string]any{"filename": "Caddyfile"})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasSuffix(err.Error(), tc.at) {
				t.Fatalf("error %v; want %q %s", err, tc.want, tc.at)
			}
		})
	}
}
