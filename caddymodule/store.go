package caddymodule

import (
	"crypto/tls"
	"fmt"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/redis/go-redis/v9"

	"github.com/pollsse/caddy-poll-sse/hub"
)

// Store says where a route's versions and history live.
type Store struct {
	// Type is "memory" (the default: this process only) or "redis" (shared by every
	// node using the same Redis and prefix).
	Type string `json:"type,omitempty"`
	// Address is the Redis server's host:port.
	Address string `json:"address,omitempty"`
	// Username and Password authenticate to Redis. Both may use {env.*} and {file.*}
	// placeholders, resolved at each config load: after a rotation, a reload connects
	// with the new credentials.
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	// DB is the Redis database number.
	DB int `json:"db,omitempty"`
	// TLS connects to Redis over TLS.
	TLS bool `json:"tls,omitempty"`
	// Prefix starts every key poll_sse writes. Default: "poll_sse:".
	Prefix string `json:"prefix,omitempty"`
	// LeaseTTL is how long a node's lease on a loop outlives the node. Default: 5s;
	// from 1s to 10m.
	LeaseTTL caddy.Duration `json:"lease_ttl,omitempty"`

	username, password string // resolved at each config load
}

// provision resolves the credentials' placeholders. A placeholder that resolves to
// nothing, such as an unset variable or a file that cannot be read, is an error.
func (s *Store) provision() error {
	if s == nil {
		return nil
	}
	repl := caddy.NewReplacer()
	var err error
	if s.username, err = repl.ReplaceOrErr(s.Username, true, false); err != nil {
		return fmt.Errorf("store redis: username: %w", err)
	}
	if s.password, err = repl.ReplaceOrErr(s.Password, true, false); err != nil {
		return fmt.Errorf("store redis: password: %w", err)
	}
	return nil
}

// keyed returns what of the store defines a hub: its settings with the credentials
// resolved, so that a rotated password makes a new hub with a new client.
func (s *Store) keyed() any {
	if s == nil {
		return nil
	}
	k := *s
	k.Username, k.Password = s.username, s.password
	return k
}

// redisStore returns the Redis store the route's hub uses, or nil for memory.
func (s *Store) redisStore(history int) *hub.RedisStore {
	if s == nil || s.Type != "redis" {
		return nil
	}
	opts := &redis.Options{
		Addr:     s.Address,
		Username: s.username,
		Password: s.password,
		DB:       s.DB,
	}
	if s.TLS {
		opts.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return &hub.RedisStore{
		Client:   redis.NewClient(opts),
		Prefix:   s.Prefix,
		LeaseTTL: time.Duration(s.LeaseTTL),
		History:  history,
	}
}

func (s *Store) validate() error {
	if s == nil {
		return nil
	}
	switch s.Type {
	case "", "memory":
		if s.Address != "" {
			return fmt.Errorf("store memory takes no address")
		}
		return nil
	case "redis":
		if s.Address == "" {
			return fmt.Errorf("store redis: an address is required")
		}
		if err := checkCount("db", int64(s.DB)); err != nil {
			return fmt.Errorf("store redis: %w", err)
		}
		if err := checkDuration("lease_ttl", s.LeaseTTL); err != nil {
			return fmt.Errorf("store redis: %w", err)
		}
		return nil
	}
	return fmt.Errorf("store %q: want memory or redis", s.Type)
}

// parseStore reads `store memory` or `store redis <address> { … }`.
func (h *Handler) parseStore(d *caddyfile.Dispenser) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	s := &Store{Type: d.Val()}
	switch s.Type {
	case "memory":
		if d.NextArg() || d.NextBlock(d.Nesting()) {
			return d.Errf("store memory takes no arguments")
		}
	case "redis":
		if !d.NextArg() {
			return d.Errf("store redis: want an address")
		}
		s.Address = d.Val()
		if d.NextArg() {
			return d.ArgErr()
		}
		if err := s.parseRedisBlock(d); err != nil {
			return err
		}
	default:
		return d.Errf("store: %q is not memory or redis", s.Type)
	}
	h.Store = s
	return nil
}

func (s *Store) parseRedisBlock(d *caddyfile.Dispenser) error {
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		name := d.Val()
		var err error
		switch name {
		case "username":
			err = parseString(d, &s.Username)
		case "password":
			err = parseString(d, &s.Password)
		case "prefix":
			err = parseString(d, &s.Prefix)
		case "lease_ttl":
			err = parseDuration(d, &s.LeaseTTL)
		case "tls":
			s.TLS = true
			if d.NextArg() {
				err = d.ArgErr()
			}
		case "db":
			var v string
			if v, err = oneArg(d); err == nil {
				if s.DB, err = strconv.Atoi(v); err != nil || s.DB < 0 {
					err = d.Errf("db: %q is not a database number", v)
				} else if err = checkCount("db", int64(s.DB)); err != nil {
					err = d.Errf("%v", err)
				}
			}
		default:
			err = d.Errf("store redis: unknown option %q", name)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
