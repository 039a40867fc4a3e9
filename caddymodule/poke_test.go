package caddymodule

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
)

// TestPokeSecretPlaceholders checks that the poke secret is resolved when the config
// loads: the value of {env.*} or {file.*} opens the door, and the placeholder's own text,
// which anyone can read in the docs, does not. A placeholder that does not resolve is an
// error, never an empty secret that an empty header would match.
func TestPokeSecretPlaceholders(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "poke")
	if err := os.WriteFile(file, []byte("from-a-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("POLL_SSE_TEST_POKE", "from-the-env")
	t.Setenv("POLL_SSE_TEST_EMPTY", "")
	tests := []struct {
		name, config string
		open         []string // header values that poke
		shut         []string // header values refused
		bad          bool     // provisioning fails
	}{
		{name: "literal", config: "s3cret", open: []string{"s3cret"}, shut: []string{"", "s3cre", "s3cret ", "S3CRET"}},
		{name: "env", config: "{env.POLL_SSE_TEST_POKE}", open: []string{"from-the-env"},
			shut: []string{"{env.POLL_SSE_TEST_POKE}", "", "from-the-env\n"}},
		{name: "file", config: "{file." + file + "}", open: []string{"from-a-file"},
			shut: []string{"{file." + file + "}", "from-a-file\n", ""}},
		{name: "mixed", config: "x-{env.POLL_SSE_TEST_POKE}-y", open: []string{"x-from-the-env-y"},
			shut: []string{"x-{env.POLL_SSE_TEST_POKE}-y"}},
		{name: "unset env", config: "{env.POLL_SSE_TEST_UNSET}", bad: true},
		{name: "empty env", config: "{env.POLL_SSE_TEST_EMPTY}", bad: true},
		{name: "missing file", config: "{file." + filepath.Join(dir, "none") + "}", bad: true},
		{name: "unknown placeholder", config: "{http.request.header.X}", bad: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := &Handler{Poke: tc.config}
			err := h.provisionPoke()
			if tc.bad {
				if err == nil {
					t.Fatalf("poke %q provisioned", tc.config)
				}
				return
			}
			if err != nil {
				t.Fatalf("poke %q: %v", tc.config, err)
			}
			for _, v := range tc.open {
				if !h.pokeAllowed(pokeRequest(v)) {
					t.Errorf("poke %q refused %q", tc.config, v)
				}
			}
			for _, v := range tc.shut {
				if h.pokeAllowed(pokeRequest(v)) {
					t.Errorf("poke %q accepted %q", tc.config, v)
				}
			}
		})
	}
}

// TestPokeUnprovisionedRefusesAll checks that a handler whose secret was never resolved
// accepts no header, the empty one included.
func TestPokeUnprovisionedRefusesAll(t *testing.T) {
	t.Parallel()
	h := &Handler{Poke: "s3cret"}
	for _, v := range []string{"", "s3cret"} {
		if h.pokeAllowed(pokeRequest(v)) {
			t.Errorf("accepted %q", v)
		}
	}
}

// pokeRequest returns a poke carrying secret.
func pokeRequest(secret string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/", nil)
	r.Header.Set(pokeHeader, secret)
	return r
}
