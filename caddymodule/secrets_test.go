package caddymodule

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSettingsKeyFollowsResolvedSecrets checks that a route's hub is keyed on its
// secrets as resolved at load time: rotating a {file.*} token or an {env.*} password
// gives a new hub, the same resolved values give the same hub whatever the placeholder
// text, and no secret appears in the key.
func TestSettingsKeyFollowsResolvedSecrets(t *testing.T) {
	token := filepath.Join(t.TempDir(), "token")
	write := func(v string) {
		t.Helper()
		if err := os.WriteFile(token, []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg := `{"upstream": "http://127.0.0.1:9/x", "header_up": {"Authorization": ["Bearer {file.` + token + `}"]},
		"store": {"type": "redis", "address": "127.0.0.1:1", "password": "{env.POLL_SSE_TEST_PW}"}}`
	key := func(raw string) string {
		t.Helper()
		h, err := loadHandler(t, raw)
		if err != nil {
			t.Fatal(err)
		}
		return h.hubKey
	}
	write("tok-1")
	t.Setenv("POLL_SSE_TEST_PW", "pw-1")
	k1 := key(cfg)
	if k1 != key(cfg) {
		t.Fatal("the same config and secrets gave two hubs")
	}
	literal := `{"upstream": "http://127.0.0.1:9/x", "header_up": {"Authorization": ["Bearer tok-1"]},
		"store": {"type": "redis", "address": "127.0.0.1:1", "password": "pw-1"}}`
	if key(literal) != k1 {
		t.Error("secrets given literally and by placeholder, resolving the same, gave two hubs")
	}
	write("tok-2")
	k2 := key(cfg)
	if k2 == k1 {
		t.Error("a rotated header_up token kept the old hub")
	}
	t.Setenv("POLL_SSE_TEST_PW", "pw-2")
	if key(cfg) == k2 {
		t.Error("a rotated store password kept the old hub")
	}
	for _, secret := range []string{"tok-1", "tok-2", "pw-1", "pw-2", "Bearer"} {
		if strings.Contains(k1+k2, secret) {
			t.Errorf("key holds %q", secret)
		}
	}
}

// TestUnresolvedSecretIsAnError checks that a header_up or store credential whose
// placeholder resolves to nothing fails the load, naming the setting, rather than
// polling with an empty credential.
func TestUnresolvedSecretIsAnError(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	t.Setenv("POLL_SSE_TEST_EMPTY", "")
	for _, tc := range []struct{ raw, want string }{
		{`{"upstream": "http://127.0.0.1:9/x", "header_up": {"Authorization": ["Bearer {file.` + missing + `}"]}}`, "header_up Authorization"},
		{`{"upstream": "http://127.0.0.1:9/x", "store": {"type": "redis", "address": "127.0.0.1:1", "password": "{env.POLL_SSE_TEST_EMPTY}"}}`, "store redis: password"},
	} {
		if _, err := loadHandler(t, tc.raw); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("loading %s: %v; want an error naming %q", tc.raw, err, tc.want)
		}
	}
}
