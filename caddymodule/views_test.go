package caddymodule

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// TestViewsCaddyfileErrors checks that client_select, filter and expires settings that
// could not be served safely are errors naming the file and line.
func TestViewsCaddyfileErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, body, want, at string
	}{
		{"pattern outside select", "select /data\n\tclient_select /meta", `client_select "/meta" lies outside select "/data"`, "at Caddyfile:4"},
		{"pattern not a pointer", "client_select prices", `client_select: JSON pointer "prices" must be empty or start with /`, "at Caddyfile:3"},
		{"pattern into filtered rows", "client_select /*/*\n\tfilter /orders owner {http.auth.user.id}", `may reach into the rows of filtered array "/orders"`, "at Caddyfile:4"},
		{"filter with literal value", "filter /orders owner alice", `filter: "alice" must be a request placeholder`, "at Caddyfile:3"},
		{"filter with text around", "filter /orders owner u-{http.auth.user.id}", `must be a request placeholder`, "at Caddyfile:3"},
		{"filter with wildcard", "filter /orders/* owner {http.auth.user.id}", `may not hold a * token`, "at Caddyfile:3"},
		{"filter outside select", "select /data\n\tfilter /orders owner {http.auth.user.id}", `filter "/orders" lies outside select "/data"`, "at Caddyfile:4"},
		{"filter twice", "filter /a o {http.auth.user.id}\n\tfilter /b o {http.auth.user.id}", "filter: given twice", "at Caddyfile:4"},
		{"filter arguments", "filter /orders owner", "filter: want <array-pointer> <member> <placeholder>", "at Caddyfile:3"},
		{"expires literal", "expires 1700000000", `expires: "1700000000" must be a request placeholder`, "at Caddyfile:3"},
	}
	adapter := caddyconfig.GetAdapter("caddyfile")
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			body := ":8080\npoll_sse http://127.0.0.1/x {\n\t" + tc.body + "\n}\n"
			_, _, err := adapter.Adapt([]byte(body), map[string]any{"filename": "Caddyfile"})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasSuffix(err.Error(), tc.at) {
				t.Fatalf("error %v; want %q %s", err, tc.want, tc.at)
			}
		})
	}
}

// TestViewsCaddyfileJSON checks the JSON that client_select, filter and expires adapt to.
func TestViewsCaddyfileJSON(t *testing.T) {
	t.Parallel()
	body := ":8080\npoll_sse http://127.0.0.1/x {\n\tclient_select /prices/* /totals\n\tclient_select /meta\n" +
		"\tfilter /orders customer {http.auth.user.id}\n\texpires {http.auth.user.exp}\n}\n"
	out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(body), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Apps struct {
			HTTP struct {
				Servers map[string]struct {
					Routes []struct {
						Handle []Handler `json:"handle"`
					} `json:"routes"`
				} `json:"servers"`
			} `json:"http"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	h := cfg.Apps.HTTP.Servers["srv0"].Routes[0].Handle[0]
	if strings.Join(h.ClientSelect, " ") != "/prices/* /totals /meta" {
		t.Errorf("client_select %q", h.ClientSelect)
	}
	if h.Filter == nil || *h.Filter != (Filter{Array: "/orders", Member: "customer", Value: "{http.auth.user.id}"}) {
		t.Errorf("filter %+v", h.Filter)
	}
	if h.Expires != "{http.auth.user.exp}" {
		t.Errorf("expires %q", h.Expires)
	}
}

// TestParseExpiry checks the expiry forms: Unix seconds, with a fraction, and RFC 3339.
func TestParseExpiry(t *testing.T) {
	for v, want := range map[string]int64{"1700000000": 1700000000, "1700000000.5": 1700000000, "2023-11-14T22:13:20Z": 1700000000, "2023-11-15T00:13:20+02:00": 1700000000} {
		got, err := parseExpiry(v)
		if err != nil || got.Unix() != want {
			t.Errorf("%q: %v, %v", v, got, err)
		}
	}
	for _, v := range []string{"", "soon", "-5", "NaN", "Inf", "1e300"} {
		if _, err := parseExpiry(v); err == nil {
			t.Errorf("%q was read as a time", v)
		}
	}
}

// TestViewsSettingsKey checks that a route whose views change gets another hub, so that
// a reload ends the streams opened under the old views.
func TestViewsSettingsKey(t *testing.T) {
	base := Handler{Upstream: "http://127.0.0.1/x", Filter: &Filter{Array: "/orders", Member: "owner", Value: "{http.auth.user.id}"}}
	key := func(h Handler) string {
		k, err := h.settingsKey()
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	same := base
	same.Filter = &Filter{Array: "/orders", Member: "owner", Value: "{http.auth.user.id}"}
	if key(base) != key(same) {
		t.Fatal("equal settings gave different keys")
	}
	for name, h := range map[string]Handler{
		"filter member": {Upstream: base.Upstream, Filter: &Filter{Array: "/orders", Member: "customer", Value: "{http.auth.user.id}"}},
		"filter value":  {Upstream: base.Upstream, Filter: &Filter{Array: "/orders", Member: "owner", Value: "{http.auth.user.email}"}},
		"client_select": {Upstream: base.Upstream, Filter: base.Filter, ClientSelect: []string{"/orders"}},
		"expires":       {Upstream: base.Upstream, Filter: base.Filter, Expires: "{http.auth.user.exp}"},
		"no filter":     {Upstream: base.Upstream},
	} {
		if key(h) == key(base) {
			t.Errorf("%s: a change of views kept the hub", name)
		}
	}
}
