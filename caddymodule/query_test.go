package caddymodule

import (
	"bufio"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestQueryValueAgreesWithParseQuery compares queryValue with url.ParseQuery over many
// random queries made of the parts that matter: separators, escapes (good and bad),
// plus signs, semicolons, empty and repeated keys.
func TestQueryValueAgreesWithParseQuery(t *testing.T) {
	t.Parallel()
	parts := []string{"format", "last_event_id", "fo%72mat", "=", "&", ";", "+", "%20", "%zz", "%", "json_patch", "a", "", "format=", "=x"}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		var b strings.Builder
		for range rng.IntN(10) {
			b.WriteString(parts[rng.IntN(len(parts))])
		}
		q := b.String()
		want, _ := url.ParseQuery(q)
		for _, key := range []string{"format", "last_event_id", "a", ""} {
			if got := queryValue(q, key); got != want.Get(key) {
				t.Fatalf("queryValue(%q, %q) = %q; ParseQuery gives %q", q, key, got, want.Get(key))
			}
		}
	}
}

// BenchmarkStreamQuery reads the format and the last event id of a resuming request.
func BenchmarkStreamQuery(b *testing.B) {
	const q = "format=merge_patch&t=1700000000000"
	b.Run("ParseQuery", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			v, _ := url.ParseQuery(q)
			_, _ = v.Get("format"), v.Get("last_event_id")
		}
	})
	b.Run("queryValue", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = queryValue(q, "format"), queryValue(q, "last_event_id")
		}
	})
}

// TestLastEventID: the header, however the client spells its name, comes before the
// query parameter, which an empty header does not hide. Requests are parsed as net/http
// parses them off the wire.
func TestLastEventID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		header, target, want string
	}{
		{"Last-Event-ID: a", "/", "a"},
		{"last-event-id: b", "/?last_event_id=q", "b"},
		{"LAST-EVENT-ID: c", "/", "c"},
		{"Last-Event-Id: d\r\nLast-Event-ID: e", "/", "d"},
		{"Last-Event-ID: ", "/?last_event_id=q", "q"},
		{"X-Other: 1", "/?format=snapshot&last_event_id=q", "q"},
		{"X-Other: 1", "/", ""},
	}
	for _, tc := range tests {
		raw := "GET " + tc.target + " HTTP/1.1\r\nHost: x\r\n" + tc.header + "\r\n\r\n"
		r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
		if err != nil {
			t.Fatal(err)
		}
		if got := lastEventID(r); got != tc.want {
			t.Errorf("%q, %s: %q; want %q", tc.header, tc.target, got, tc.want)
		}
	}
}
