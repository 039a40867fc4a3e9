package caddymodule

import (
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// TestHistoryCaddyfileErrors checks the errors of `history <events> [<size>]`, each
// naming the file and line.
func TestHistoryCaddyfileErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, body, want string
	}{
		{"no events", "history", "wrong argument count"},
		{"three arguments", "history 10 1MiB 2", "wrong argument count"},
		{"events not a number", "history lots", `history: "lots" is not a positive whole number`},
		{"bad size", "history 10 big", `history: "big" is not a positive size`},
		{"zero size", "history 10 0", `history: "0" is not a positive size`},
	}
	adapter := caddyconfig.GetAdapter("caddyfile")
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			body := ":8080\npoll_sse http://127.0.0.1/x {\n\t" + tc.body + "\n}\n"
			_, _, err := adapter.Adapt([]byte(body), map[string]any{"filename": "Caddyfile"})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasSuffix(err.Error(), "at Caddyfile:3") {
				t.Fatalf("error %v; want %q at Caddyfile:3", err, tc.want)
			}
		})
	}
}
