package caddymodule

import (
	"net/http"
	"testing"
	"time"

	"github.com/pollsse/caddy-poll-sse/hub"
)

func TestLongPollOf(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                string
		inm, prefer, accept string
		ok, asked, patches  bool
		held                string
		wait                time.Duration
		format              hub.Format
	}{
		{name: "plain document", accept: "application/json"},
		{name: "conditional only", inm: `"v1"`, accept: "application/json"},
		{name: "held", inm: `"v1"`, prefer: "wait=5", accept: "application/json", ok: true, asked: true, held: "v1", wait: 5 * time.Second, format: hub.Snapshot},
		{name: "capped", inm: `W/"v1", "v0"`, prefer: "respond-async, wait=3600", accept: "application/json", ok: true, asked: true, held: "v1", wait: MaxLongPollWait, format: hub.Snapshot},
		{name: "wait without a version", prefer: "wait=5", accept: "application/json"},
		{name: "bad wait", inm: `"v1"`, prefer: "wait=-1", accept: "application/json"},
		{name: "merge patch now", inm: `"v1"`, accept: "application/merge-patch+json", ok: true, patches: true, held: "v1", format: hub.MergePatch},
		{name: "json patch preferred", inm: `"v1"`, prefer: "wait=1", accept: "application/json-patch+json, application/merge-patch+json", ok: true, asked: true, patches: true, held: "v1", wait: time.Second, format: hub.JSONPatch},
		{name: "refused patch type", inm: `"v1"`, accept: "application/json-patch+json;q=0, application/json"},
		{name: "unsafe version", inm: `"a b"`, prefer: "wait=5", accept: "application/json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, _ := http.NewRequest(http.MethodGet, "/", nil)
			for k, v := range map[string]string{"If-None-Match": tt.inm, "Prefer": tt.prefer, "Accept": tt.accept} {
				if v != "" {
					r.Header.Set(k, v)
				}
			}
			lp, ok := longPollOf(r)
			if ok != tt.ok || ok && (lp.held != tt.held || lp.wait != tt.wait || lp.asked != tt.asked || lp.patches != tt.patches || lp.format != tt.format) {
				t.Errorf("got %+v %v, want held %q wait %v asked %v patches %v format %v: %v", lp, ok, tt.held, tt.wait, tt.asked, tt.patches, tt.format, tt.ok)
			}
		})
	}
}
