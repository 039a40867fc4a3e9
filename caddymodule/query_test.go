package caddymodule

import (
	"math/rand/v2"
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
