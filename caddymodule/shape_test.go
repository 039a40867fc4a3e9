package caddymodule

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/pollsse/caddy-poll-sse/hub"
)

// TestValidateShape checks the JSON config path: format, select, ignore and array_key are
// checked together, and each error names the setting.
func TestValidateShape(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		h    Handler
		want string // in the error; "" for none
	}{
		{"defaults", Handler{}, ""},
		{"all set", Handler{Format: "snapshot", Select: "/data", Ignore: []string{"/data/ts"},
			ArrayKeys: []ArrayKey{{Pointer: "/data/items", Member: "id"}}}, ""},
		{"bad format", Handler{Format: "xml"}, `format: unknown format "xml"`},
		{"select not a pointer", Handler{Select: "data"}, "select"},
		{"ignore outside select", Handler{Select: "/data", Ignore: []string{"/ts"}}, `ignore "/ts" lies outside select "/data"`},
		{"array_key without member", Handler{ArrayKeys: []ArrayKey{{Pointer: "/items"}}}, "array_key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.h.Upstream = "http://127.0.0.1:9/x"
			err := tc.h.Validate()
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("Validate() = %v; want %q", err, tc.want)
			}
		})
	}
}

func TestRequestFormat(t *testing.T) {
	t.Parallel()
	h := Handler{Format: "merge_patch"}
	if err := h.provisionShape(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		query string
		want  hub.Format
		bad   bool
	}{
		{"", hub.MergePatch, false},
		{"format=", hub.MergePatch, false},
		{"format=json_patch", hub.JSONPatch, false},
		{"format=snapshot", hub.Snapshot, false},
		{"format=merge_patch", hub.MergePatch, false},
		{"format=JSON_PATCH", 0, true},
		{"format=xml", 0, true},
	}
	for _, tc := range tests {
		got, err := h.requestFormat(httptest.NewRequest("GET", "/events?"+tc.query, nil))
		if (err != nil) != tc.bad || !tc.bad && got != tc.want {
			t.Errorf("?%s: %v, %v; want %v (error: %v)", tc.query, got, err, tc.want, tc.bad)
		}
	}
}
