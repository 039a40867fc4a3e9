package caddymodule

import (
	"strings"
	"testing"
)

// TestRedactURL checks that the upstream shown in logs and the admin API hides the
// userinfo password and every query value, and keeps the rest.
func TestRedactURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"http://127.0.0.1:8080/state.json", "http://127.0.0.1:8080/state.json"},
		{"https://user:pa55word@api.example.com/v1/orders?api_key=k3y&page=2", "https://user:xxxxx@api.example.com/v1/orders?api_key=REDACTED&page=REDACTED"},
		{"https://user@api.example.com/x", "https://user@api.example.com/x"},
	} {
		got := redactURL(tc.in)
		if got != tc.want {
			t.Errorf("redactURL(%q) = %q; want %q", tc.in, got, tc.want)
		}
		for _, secret := range []string{"pa55word", "k3y"} {
			if strings.Contains(got, secret) {
				t.Errorf("redactURL(%q) shows %q", tc.in, secret)
			}
		}
	}
}

// TestLoopURL checks that the digest of forwarded header values, the second part of a
// loop key, is never taken for the URL.
func TestLoopURL(t *testing.T) {
	t.Parallel()
	if got := loopURL("http://a/b?c=d 0123456789abcdef"); got != "http://a/b?c=d" {
		t.Fatalf("loopURL = %q", got)
	}
}
