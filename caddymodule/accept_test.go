package caddymodule

import (
	"math/rand/v2"
	"mime"
	"strings"
	"testing"
)

// wantsJSONOracle is wantsJSON written plainly with mime.ParseMediaType for every range.
func wantsJSONOracle(accept []string) bool {
	seen := false
	for _, field := range accept {
		for _, rng := range strings.Split(field, ",") {
			mt, params, err := mime.ParseMediaType(strings.TrimSpace(rng))
			if err != nil || params["q"] == "0" || params["q"] == "0.0" {
				continue
			}
			if mt != "application/json" && !strings.HasSuffix(mt, "+json") {
				return false
			}
			seen = true
		}
	}
	return seen
}

// acceptPieces are the parts random Accept headers are made of: media types in any case,
// parameters, separators, spaces and bytes that are not token characters.
var acceptPieces = []string{
	"application/json", "Application/JSON", "application/problem+json", "text/event-stream",
	"TEXT/Event-Stream", "*/*", "application/*", "text", "/json", "application/", "a/b/c",
	";q=0", ";q=0.0", "; q=0", ";q=1", ";charset=utf-8", `;x="a,b"`, ";", ",", ", ", " ",
	"\t", "@", "é", "\x7f", "=", "\"", "(", "[", "?", "+json", `\`, "{", "~",
}

func randomAccept(rng *rand.Rand) []string {
	fields := make([]string, 1+rng.IntN(3))
	for i := range fields {
		var b strings.Builder
		for range 1 + rng.IntN(6) {
			b.WriteString(acceptPieces[rng.IntN(len(acceptPieces))])
		}
		fields[i] = b.String()
	}
	return fields
}

func TestWantsJSONAgreesWithMediaTypeParser(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(20, 1))
	for range 200000 {
		accept := randomAccept(rng)
		if got, want := wantsJSON(accept), wantsJSONOracle(accept); got != want {
			t.Fatalf("wantsJSON(%q) = %v, mime.ParseMediaType says %v", accept, got, want)
		}
	}
}

func FuzzWantsJSON(f *testing.F) {
	for _, s := range []string{"text/event-stream", "application/json, text/html;q=0", "*/*", "a/b/c, Application/JSON"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, accept string) {
		if got, want := wantsJSON([]string{accept}), wantsJSONOracle([]string{accept}); got != want {
			t.Fatalf("wantsJSON(%q) = %v, mime.ParseMediaType says %v", accept, got, want)
		}
	})
}

// BenchmarkWantsJSON is the check every stream request makes, with an EventSource's Accept.
func BenchmarkWantsJSON(b *testing.B) {
	accept := []string{"text/event-stream"}
	b.ReportAllocs()
	for b.Loop() {
		wantsJSON(accept)
	}
}
