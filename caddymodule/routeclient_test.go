package caddymodule

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// TestRouteClientAcrossReloads loads one route three times, as reloads do: the three
// configs share the hub and its client, whose polls go through the newest config's
// transport. When the oldest config unloads, polls keep that transport; when the newest
// fails and is cleaned up, they go back to the one before; and polls succeed throughout.
func TestRouteClientAcrossReloads(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(`{}`)) }))
	t.Cleanup(up.Close)
	raw := `{"upstream": "` + up.URL + `/x", "transport": {"protocol": "http", "dial_timeout": "1s"}}`
	load := func() (*Handler, context.CancelFunc) {
		t.Helper()
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		h, err := loadHandlerIn(ctx, raw)
		if err != nil {
			t.Fatal(err)
		}
		return h, cancel
	}
	poll := func(h *Handler, what string) {
		t.Helper()
		resp, err := h.poll.Client.Get(up.URL + "/x")
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: poll %v %v", what, resp, err)
		}
		resp.Body.Close()
	}
	unload := func(_ *Handler, cancel context.CancelFunc) { cancel() } // cleans up what the config loaded
	first, cancelFirst := load()
	second, cancelSecond := load()
	rc := second.client
	if first.client != rc || first.hubKey != second.hubKey {
		t.Fatal("two loads of one route got two hubs")
	}
	if rc.current.Load() != second.transport || second.transport == first.transport {
		t.Fatal("polls do not go through the newest config's own transport")
	}
	poll(first, "two configs loaded")
	unload(first, cancelFirst)
	if rc.current.Load() != second.transport {
		t.Fatal("unloading the old config moved polls off the new config's transport")
	}
	poll(second, "old config unloaded")
	failed, cancelFailed := load()
	if failed.client != rc {
		t.Fatal("the third config got another hub")
	}
	if rc.current.Load() != failed.transport {
		t.Fatal("a third config's transport was not taken up")
	}
	unload(failed, cancelFailed)
	if rc.current.Load() != second.transport {
		t.Fatal("after a config failed, polls did not go back to the running config's transport")
	}
	poll(second, "failed config cleaned up")
	unload(second, cancelSecond)
}
