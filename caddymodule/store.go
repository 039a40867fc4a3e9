package caddymodule

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/redis/go-redis/v9"

	"github.com/pollsse/caddy-poll-sse/redisstore"
)

// Store says where a route's versions and history live.
type Store struct {
	// Type is "memory" (the default: this process only) or "redis" (shared by every
	// node using the same Redis and prefix).
	Type string `json:"type,omitempty"`
	// Addresses are host:port pairs. One address is a single Redis server; several are
	// seeds of a Redis Cluster (see Cluster); with SentinelMaster they are the Sentinels.
	Addresses []string `json:"addresses,omitempty"`
	// Address is the older spelling of a single entry of Addresses, still read.
	Address string `json:"address,omitempty"`
	// Cluster treats a single address as a seed of a Redis Cluster, such as a cluster's
	// configuration endpoint. Several addresses are a cluster without it.
	Cluster bool `json:"cluster,omitempty"`
	// SentinelMaster names the master that Redis Sentinels watch: the addresses are then
	// the Sentinels', and the store follows the master they promote.
	SentinelMaster string `json:"sentinel_master,omitempty"`
	// Username and Password authenticate to Redis (to the master under Sentinel). Both
	// may use {env.*} and {file.*} placeholders, resolved at each config load: after a
	// rotation, a reload connects with the new credentials.
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	// DB is the Redis database number; a Redis Cluster has only database 0.
	DB int `json:"db,omitempty"`
	// TLS connects to Redis over TLS.
	TLS bool `json:"tls,omitempty"`
	// Prefix starts every key poll_sse writes. Default: "poll_sse:". It may not hold
	// braces: each loop's keys carry a Redis Cluster hash tag of their own.
	Prefix string `json:"prefix,omitempty"`
	// LeaseTTL is how long a node's lease on a loop outlives the node. Default: 5s;
	// from 1s to 10m.
	LeaseTTL caddy.Duration `json:"lease_ttl,omitempty"`

	username, password string // resolved at each config load
}

// maxStoreAddresses bounds the addresses of a store: seeds of a cluster or Sentinels are
// a handful, and each costs a connection pool.
const maxStoreAddresses = 64

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
	k.Addresses, k.Address = s.addresses(), ""
	return k
}

// addresses returns the store's addresses, the older single address included.
func (s *Store) addresses() []string {
	if s.Address == "" {
		return s.Addresses
	}
	return append([]string{s.Address}, s.Addresses...)
}

// redisOptions returns the client options of the store: a single server, a Redis
// Cluster, or a master found through Sentinels (see redis.NewUniversalClient).
func (s *Store) redisOptions() *redis.UniversalOptions {
	opts := &redis.UniversalOptions{
		Addrs:         s.addresses(),
		IsClusterMode: s.Cluster,
		MasterName:    s.SentinelMaster,
		Username:      s.username,
		Password:      s.password,
		DB:            s.DB,
	}
	if s.TLS {
		opts.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return opts
}

// redisStore returns the Redis store the route's hub uses, or nil for memory.
func (s *Store) redisStore(history int, historyBytes int64, reach string) *redisstore.Store {
	if s == nil || s.Type != "redis" {
		return nil
	}
	return &redisstore.Store{
		Client:       redis.NewUniversalClient(s.redisOptions()),
		Prefix:       s.Prefix,
		LeaseTTL:     time.Duration(s.LeaseTTL),
		History:      history,
		HistoryBytes: historyBytes,
		Reach:        reach,
	}
}

func (s *Store) validate() error {
	if s == nil {
		return nil
	}
	switch s.Type {
	case "", "memory":
		if len(s.addresses()) > 0 || s.SentinelMaster != "" || s.Cluster {
			return errors.New("store memory takes no address, cluster or sentinel")
		}
		return nil
	case "redis":
		if err := s.validateRedis(); err != nil {
			return fmt.Errorf("store redis: %w", err)
		}
		return nil
	}
	return fmt.Errorf("store %q: want memory or redis", s.Type)
}

func (s *Store) validateRedis() error {
	if err := checkAddresses(s.addresses()); err != nil {
		return err
	}
	cluster := s.SentinelMaster == "" && (s.Cluster || len(s.addresses()) > 1)
	switch {
	case s.SentinelMaster != "" && s.Cluster:
		return errors.New("sentinel and cluster exclude each other")
	case strings.ContainsAny(s.SentinelMaster, " \t\r\n"):
		return fmt.Errorf("sentinel: %q is not a master name", s.SentinelMaster)
	case cluster && s.DB != 0:
		return fmt.Errorf("db %d: a Redis Cluster has only database 0", s.DB)
	case strings.ContainsAny(s.Prefix, "{}"):
		return fmt.Errorf("prefix %q: braces would put every loop in one cluster slot", s.Prefix)
	}
	if err := checkCount("db", int64(s.DB)); err != nil {
		return err
	}
	return checkDuration("lease_ttl", s.LeaseTTL)
}

// checkAddresses reports a missing, malformed or repeated address.
func checkAddresses(addrs []string) error {
	if len(addrs) == 0 {
		return errors.New("an address is required")
	}
	if len(addrs) > maxStoreAddresses {
		return fmt.Errorf("%d addresses: at most %d", len(addrs), maxStoreAddresses)
	}
	for i, a := range addrs {
		host, port, err := net.SplitHostPort(a)
		if err != nil || host == "" {
			return fmt.Errorf("address %q: want host:port", a)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("address %q: %q is not a port", a, port)
		}
		if slices.Contains(addrs[:i], a) {
			return fmt.Errorf("address %q given twice", a)
		}
	}
	return nil
}

// parseStore reads `store memory` or `store redis <address...> { … }`.
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
		s.Addresses = d.RemainingArgs()
		if err := s.parseRedisBlock(d); err != nil {
			return err
		}
		if err := s.validateRedis(); err != nil {
			return d.Errf("store redis: %v", err)
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
		case "tls", "cluster":
			err = parseFlag(d, map[string]*bool{"tls": &s.TLS, "cluster": &s.Cluster}[name])
		case "sentinel":
			err = s.parseSentinel(d)
		case "db":
			err = s.parseDB(d)
		default:
			err = d.Errf("store redis: unknown option %q", name)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// parseFlag reads a subdirective that takes no argument.
func parseFlag(d *caddyfile.Dispenser, dst *bool) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	*dst = true
	return nil
}

// parseSentinel reads `sentinel <master> [<address...>]`: the addresses, if any, are
// Sentinels added to those of the store line.
func (s *Store) parseSentinel(d *caddyfile.Dispenser) error {
	if s.SentinelMaster != "" {
		return d.Errf("sentinel given twice")
	}
	if !d.NextArg() {
		return d.Errf("sentinel: want <master> [<address...>]")
	}
	s.SentinelMaster = d.Val()
	s.Addresses = append(s.Addresses, d.RemainingArgs()...)
	return nil
}

func (s *Store) parseDB(d *caddyfile.Dispenser) error {
	v, err := oneArg(d)
	if err != nil {
		return err
	}
	if s.DB, err = strconv.Atoi(v); err != nil || s.DB < 0 {
		return d.Errf("db: %q is not a database number", v)
	}
	if err = checkCount("db", int64(s.DB)); err != nil {
		return d.Errf("%v", err)
	}
	return nil
}
