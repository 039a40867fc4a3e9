package caddymodule

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/pollsse/caddy-poll-sse/hub"
)

// hubs holds the hubs of all routes across config loads, keyed by the settings that
// define them. A reload that keeps a route's settings hands the new handler the same hub,
// with its poll loops, versions and history; the hub stops when no config uses it.
var hubs = caddy.NewUsagePool()

// pooledHub makes a hub a caddy.Destructor.
type pooledHub struct{ *hub.Hub }

func (p pooledHub) Destruct() error {
	p.Close()
	return nil
}

func (h *Handler) provisionHub() error {
	key, err := h.settingsKey()
	if err != nil {
		return err
	}
	val, _, err := hubs.LoadOrNew(key, func() (caddy.Destructor, error) {
		return pooledHub{hub.New(hub.Config{
			History:   h.History,
			Heartbeat: time.Duration(h.Heartbeat),
			Retry:     time.Duration(h.Retry),
			Linger:    time.Duration(h.Linger),
			MaxTopics: h.MaxUpstreams,
			Logger:    h.logger,
		})}, nil
	})
	if err != nil {
		return err
	}
	h.hub, h.hubKey = val.(pooledHub).Hub, key
	return nil
}

// settingsKey identifies a hub by everything that shapes its loops and streams. It is a
// digest, so header values (credentials) never appear in it. Format is left out: a hub
// serves every format, and each client's is chosen per request.
func (h *Handler) settingsKey() (string, error) {
	b, err := json.Marshal(struct {
		Upstream                 string
		Interval, Timeout        caddy.Duration
		HeaderUp                 map[string][]string
		History                  int
		Heartbeat, Retry, Linger caddy.Duration
		Method, Body             string
		Forward                  []string
		MaxBody                  int64
		MaxUpstreams             int
		Select                   string
		Ignore                   []string
		ArrayKeys                []ArrayKey
	}{h.Upstream, h.Interval, h.Timeout, h.HeaderUp, h.History, h.Heartbeat, h.Retry, h.Linger,
		h.Method, h.Body, h.Forward, h.MaxBody, h.MaxUpstreams, h.Select, h.Ignore, h.ArrayKeys})
	if err != nil {
		return "", fmt.Errorf("hashing settings: %w", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}
