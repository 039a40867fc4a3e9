package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const adaptTimeout = 30 * time.Second

// adapt runs `caddy adapt` on a Caddyfile holding body and returns the file's path, the
// combined output and the command's error.
func adapt(t *testing.T, body string) (string, string, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "Caddyfile")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), adaptTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, caddyBin, "adapt", "--config", path, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	out, err := cmd.CombinedOutput()
	return path, string(out), err
}

// logMessages returns the text of Caddy's output with its JSON log lines reduced to
// their messages and errors, unescaped.
func logMessages(out string) string {
	var b strings.Builder
	for _, line := range strings.Split(out, "\n") {
		var entry struct{ Msg, Error string }
		if json.Unmarshal([]byte(line), &entry) != nil {
			b.WriteString(line + "\n")
			continue
		}
		b.WriteString(strings.TrimSpace(entry.Msg+" "+entry.Error) + "\n")
	}
	return b.String()
}

// lineOf returns the 1-based number of the first line of s containing sub.
func lineOf(t *testing.T, s, sub string) int {
	t.Helper()
	for i, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return i + 1
		}
	}
	t.Fatalf("%q not in %q", sub, s)
	return 0
}

// TestCaddyfileErrors checks that mistakes in a poll_sse block make `caddy adapt` fail
// with an error that says what is wrong and names the file and line.
func TestCaddyfileErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		bad  string // the offending line, also used to find its number
		want string // in the error
	}{
		{"unknown subdirective", "bogus_option 1", `unknown subdirective "bogus_option"`},
		{"malformed duration", "interval fast", `interval: time: invalid duration "fast"`},
		{"duration with garbage", "timeout 10sx", "timeout: "},
		{"zero duration", "linger 0s", `linger: "0s" must be positive`},
		{"duration missing", "heartbeat", "wrong argument count"},
		{"two durations", "retry 1s 2s", "wrong argument count"},
		{"history not a number", "history many", `history: "many" is not a positive whole number`},
		{"header_up without value", "header_up X-Only", "wrong argument count"},
		{"unknown format", "format xml", `format: "xml" is not json_patch, merge_patch or snapshot`},
		{"select not a pointer", "select x", `select: JSON pointer "x" must be empty or start with /`},
		{"array_key without member", "array_key /items", "array_key: want <json-pointer> <member>"},
		{"unknown store", "store disk", `store: "disk" is not memory or redis`},
		{"zero max_subscribers", "max_subscribers 0", `max_subscribers: "0" is not a positive whole number`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			body := caddyfile("127.0.0.1:1", "127.0.0.1:2", pollSSE("http://127.0.0.1:3/state.json", "interval 1s", tc.bad, "timeout 2s"))
			path, out, err := adapt(t, body)
			if err == nil {
				t.Fatalf("caddy adapt succeeded, want an error; output:\n%s", out)
			}
			msg := logMessages(out)
			where := fmt.Sprintf("%s:%d", path, lineOf(t, body, tc.bad))
			if !strings.Contains(msg, where) {
				t.Errorf("error does not name %s:\n%s", where, msg)
			}
			if !strings.Contains(msg, tc.want) {
				t.Errorf("error does not mention %q:\n%s", tc.want, msg)
			}
		})
	}
}

// TestCaddyfileAdaptsShape checks that format, select, ignore (repeated, appending) and
// array_key appear in the JSON config under their snake_case names.
func TestCaddyfileAdaptsShape(t *testing.T) {
	t.Parallel()
	body := caddyfile("127.0.0.1:1", "127.0.0.1:2", pollSSE("http://127.0.0.1:3/state.json",
		"format merge_patch", "select /data", "ignore /data/ts /data/items/*/seen", "ignore /data/etag",
		"array_key /data/items id"))
	_, out, err := adapt(t, body)
	if err != nil {
		t.Fatalf("caddy adapt: %v\n%s", err, out)
	}
	h := findHandler(t, out)
	got, _ := json.Marshal(map[string]any{"format": h["format"], "select": h["select"], "ignore": h["ignore"], "array_key": h["array_key"]})
	want := `{"array_key":[{"member":"id","pointer":"/data/items"}],"format":"merge_patch",` +
		`"ignore":["/data/ts","/data/items/*/seen","/data/etag"],"select":"/data"}`
	if string(got) != want {
		t.Errorf("adapted %s\nwant     %s", got, want)
	}
}

// TestCaddyfileAdapts checks the valid counterpart: every implemented subdirective is
// accepted and appears in the JSON config under its snake_case name.
func TestCaddyfileAdapts(t *testing.T) {
	t.Parallel()
	body := caddyfile("127.0.0.1:1", "127.0.0.1:2", pollSSE("http://127.0.0.1:3/state.json",
		"interval 1s", "timeout 2s", "header_up X-Token abc", "history 50",
		"heartbeat 5s", "retry 1500ms", "linger 1m"))
	_, out, err := adapt(t, body)
	if err != nil {
		t.Fatalf("caddy adapt: %v\n%s", err, out)
	}
	h := findHandler(t, out)
	want := map[string]any{
		"upstream": "http://127.0.0.1:3/state.json", "interval": 1e9, "timeout": 2e9,
		"history": 50.0, "heartbeat": 5e9, "retry": 1.5e9, "linger": 60e9,
	}
	for k, v := range want {
		if h[k] != v {
			t.Errorf("%s: %v, want %v", k, h[k], v)
		}
	}
	if hdr, _ := h["header_up"].(map[string]any); fmt.Sprint(hdr["X-Token"]) != "[abc]" {
		t.Errorf("header_up: %v, want X-Token: [abc]", h["header_up"])
	}
}

// findHandler returns the poll_sse handler of the adapted JSON config printed in out.
func findHandler(t *testing.T, out string) map[string]any {
	t.Helper()
	start := strings.Index(out, "{")
	end := strings.LastIndex(out, "}")
	if start < 0 || end < start {
		t.Fatalf("no JSON in output:\n%s", out)
	}
	var cfg any
	if err := json.Unmarshal([]byte(out[start:end+1]), &cfg); err != nil {
		t.Fatalf("adapted config: %v\n%s", err, out)
	}
	if h := searchHandler(cfg); h != nil {
		return h
	}
	t.Fatalf("no poll_sse handler in:\n%s", out)
	return nil
}

func searchHandler(v any) map[string]any {
	switch x := v.(type) {
	case map[string]any:
		if x["handler"] == "poll_sse" {
			return x
		}
		for _, e := range x {
			if h := searchHandler(e); h != nil {
				return h
			}
		}
	case []any:
		for _, e := range x {
			if h := searchHandler(e); h != nil {
				return h
			}
		}
	}
	return nil
}
