package caddymodule

import (
	"context"
	"errors"
	"net/http/httptest"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/pollsse/caddy-poll-sse/hub"
)

// TestRouteCountOutlivesReload checks that the streams a route holds when its config is
// reloaded count against its cap in the new config: with max_subscribers 2 and two
// streams open, the reloaded route refuses a third, takes one when one of the two leaves,
// and a reload that lowers the cap to 1 refuses while two remain.
func TestRouteCountOutlivesReload(t *testing.T) {
	t.Parallel()
	old := loadIn(t, `{"upstream": "http://127.0.0.1:9/count-outlives-reload", "max_subscribers": 2}`)
	held := []*hub.Subscription{subscribeTo(t, old.h), subscribeTo(t, old.h)}
	reloaded := loadIn(t, `{"upstream": "http://127.0.0.1:9/count-outlives-reload", "max_subscribers": 2}`)
	old.unload()
	if _, err := trySubscribe(reloaded.h); !errors.Is(err, hub.ErrTooManySubscribers) {
		t.Fatalf("third stream after the reload: %v; want ErrTooManySubscribers", err)
	}
	held[0].Close()
	held = append(held[1:], subscribeTo(t, reloaded.h))
	lowered := loadIn(t, `{"upstream": "http://127.0.0.1:9/count-outlives-reload", "max_subscribers": 1}`)
	reloaded.unload()
	if _, err := trySubscribe(lowered.h); !errors.Is(err, hub.ErrTooManySubscribers) {
		t.Fatalf("a stream with cap 1 and 2 open: %v; want ErrTooManySubscribers", err)
	}
}

// loaded is a handler in a config of its own, unloaded at will or when the test ends.
type loaded struct {
	h      *Handler
	unload context.CancelFunc
}

func loadIn(t *testing.T, raw string) loaded {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	h, err := loadHandlerIn(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	return loaded{h: h, unload: cancel}
}

// trySubscribe subscribes to h's loop as a stream request to "/" does.
func trySubscribe(h *Handler) (*hub.Subscription, error) {
	lp, err := h.loopFor(httptest.NewRequest("GET", "/", nil))
	if err != nil {
		return nil, err
	}
	return h.hub.Subscribe(lp.key, lp.newSource, "", hub.JSONPatch)
}

func subscribeTo(t *testing.T, h *Handler) *hub.Subscription {
	t.Helper()
	sub, err := trySubscribe(h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Close)
	return sub
}
