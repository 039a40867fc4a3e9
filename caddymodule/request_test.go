package caddymodule

import (
	"errors"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

func TestWantsJSON(t *testing.T) {
	t.Parallel()
	tests := []struct {
		accept []string
		want   bool
	}{
		{nil, false},
		{[]string{"text/event-stream"}, false},
		{[]string{"application/json"}, true},
		{[]string{"application/json, application/problem+json"}, true},
		{[]string{"application/json", "text/event-stream"}, false},
		{[]string{"application/json, */*"}, false},
		{[]string{"application/json, text/html;q=0"}, true},
		{[]string{"*/*"}, false},
		{[]string{"garbage;;;"}, false},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.accept, "|"), func(t *testing.T) {
			t.Parallel()
			if got := wantsJSON(tc.accept); got != tc.want {
				t.Fatalf("wantsJSON(%q) = %v", tc.accept, got)
			}
		})
	}
}

func TestParseUpstreamRejectsPlaceholdersOutsidePathAndQuery(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{
		"http://{http.request.host}/x",
		"{http.request.scheme}://a/x",
		"http://a:{env.PORT}/x",
		"http://a/x/{unclosed",
		"ftp://a/x",
	} {
		if _, err := parseUpstream(raw); err == nil {
			t.Errorf("parseUpstream(%q) accepted", raw)
		}
	}
}

func TestExpandEscapesOnce(t *testing.T) {
	t.Parallel()
	tmpl, err := parseUpstream("http://127.0.0.1:9/api/{p}/items?id={q}&x=1")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		p, q, want string
		bad        bool
	}{
		{"u1", "7", "http://127.0.0.1:9/api/u1/items?id=7&x=1", false},
		{"../admin", "a&b=c#d", "http://127.0.0.1:9/api/..%2Fadmin/items?id=a%26b%3Dc%23d&x=1", false},
		{"{env.HOME}", "{env.HOME}", "http://127.0.0.1:9/api/%7Benv.HOME%7D/items?id=%7Benv.HOME%7D&x=1", false},
		{"a\r\nb?c", "", "http://127.0.0.1:9/api/a%0D%0Ab%3Fc/items?id=&x=1", false},
		{"@evil.com", "", "http://127.0.0.1:9/api/@evil.com/items?id=&x=1", false},
		{"..", "", "", true},
		{".", "", "", true},
		{"", "", "", true},
	}
	for _, tc := range tests {
		repl := caddy.NewReplacer()
		repl.Set("p", tc.p)
		repl.Set("q", tc.q)
		got, err := tmpl.expand(repl)
		if tc.bad != errors.Is(err, errBadValue) || got != tc.want {
			t.Errorf("expand(%q, %q) = %q, %v; want %q", tc.p, tc.q, got, err, tc.want)
		}
	}
}
