package caddymodule

import (
	"strings"
	"testing"
)

// TestRedactURL checks that the upstream shown in logs and the admin API hides the
// userinfo password and every query value, shows placeholders by name, and keeps the rest.
func TestRedactURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"http://127.0.0.1:8080/state.json", "http://127.0.0.1:8080/state.json"},
		{"https://user:pa55word@api.example.com/v1/orders?api_key=k3y&page=2", "https://user:xxxxx@api.example.com/v1/orders?api_key=REDACTED&page=REDACTED"},
		{"https://user@api.example.com/x", "https://user@api.example.com/x"},
		{"http://10.0.0.5/api/users/{http.request.uri.path.1}/orders?lang={http.request.uri.query.lang}&x=1",
			"http://10.0.0.5/api/users/{http.request.uri.path.1}/orders?lang=REDACTED&x=REDACTED"},
		{"http://a:s3cr3t@10.0.0.5/{q}?{k}=v&&flag#frag", "http://a:xxxxx@10.0.0.5/{q}?{k}=REDACTED&flag=REDACTED"},
		{"not a url", "(unparsable upstream URL)"},
	} {
		got := redactURL(tc.in)
		if got != tc.want {
			t.Errorf("redactURL(%q) = %q; want %q", tc.in, got, tc.want)
		}
		for _, secret := range []string{"pa55word", "k3y", "s3cr3t", "frag"} {
			if strings.Contains(got, secret) {
				t.Errorf("redactURL(%q) shows %q", tc.in, secret)
			}
		}
	}
}
