package caddymodule

import (
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/dustin/go-humanize"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/pollsse/caddy-poll-sse/diff"
	"github.com/pollsse/caddy-poll-sse/hub"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("poll_sse", parseCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("poll_sse", httpcaddyfile.Before, "reverse_proxy")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(Handler)
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return m, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	poll_sse [<matcher>] <upstream_url> {
//		interval  <duration>
//		timeout   <duration>
//		header_up <field> <value>
//		history   <events> [<size>]
//		heartbeat <duration>
//		retry     <duration>
//		linger    <duration>
//		method    GET|POST
//		body      <text>
//		forward   <field...>
//		max_body  <size>
//		max_upstreams <n>
//		max_loops_per_client <n>
//		poke      <secret>
//		format    json_patch|merge_patch|snapshot
//		select    <json-pointer>
//		ignore    <json-pointer...>
//		array_key <json-pointer> <member>
//		max_subscribers <n>
//		max_connection_lifetime <duration>
//		drain     <duration>
//		name      <label>
//		store     memory | redis <address...> {
//			sentinel  <master> [<address...>]
//			cluster
//			username  <name>
//			password  <secret>
//			db        <n>
//			tls
//			prefix    <text>
//			lease_ttl <duration>
//		}
//		transport http {
//			<reverse_proxy's http transport options>
//		}
//		dial      unix//<path>
//		oauth2 {
//			token_url     <url>
//			client_id     <id>
//			client_secret <secret>
//			scopes        <scope...>
//			audience      <audience>
//		}
//	}
//
// header_up, ignore, array_key and oauth2's scopes may repeat. A store with one address
// is a single Redis server; with several, or with cluster, a Redis Cluster; with
// sentinel, the addresses are Sentinels watching <master>. transport takes the options
// of reverse_proxy's http transport that a poll can use: tls, tls_trust_pool,
// tls_trusted_ca_certs, tls_client_auth <cert_file> <key_file>, tls_server_name,
// tls_insecure_skip_verify, tls_timeout, dial_timeout, read_buffer, versions 1.1|2|h2c,
// forward_proxy_url and the others but proxy_protocol.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if !d.NextArg() {
		return d.ArgErr()
	}
	h.Upstream = d.Val()
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		if err := h.unmarshalSubdirective(d); err != nil {
			return err
		}
	}
	return nil
}

func (h *Handler) unmarshalSubdirective(d *caddyfile.Dispenser) error {
	name := d.Val()
	parse, ok := subdirectives[name]
	if !ok {
		return d.Errf("unknown subdirective %q", name)
	}
	return parse(h, d)
}

// subdirectives parses each subdirective of poll_sse into the handler.
var subdirectives = map[string]func(*Handler, *caddyfile.Dispenser) error{
	"interval":                func(h *Handler, d *caddyfile.Dispenser) error { return parseDuration(d, &h.Interval) },
	"timeout":                 func(h *Handler, d *caddyfile.Dispenser) error { return parseDuration(d, &h.Timeout) },
	"heartbeat":               func(h *Handler, d *caddyfile.Dispenser) error { return parseDuration(d, &h.Heartbeat) },
	"retry":                   func(h *Handler, d *caddyfile.Dispenser) error { return parseDuration(d, &h.Retry) },
	"linger":                  func(h *Handler, d *caddyfile.Dispenser) error { return parseDuration(d, &h.Linger) },
	"max_connection_lifetime": func(h *Handler, d *caddyfile.Dispenser) error { return parseDuration(d, &h.MaxConnectionLifetime) },
	"drain":                   func(h *Handler, d *caddyfile.Dispenser) error { return parseDuration(d, &h.Drain) },
	"history":                 (*Handler).parseHistory,
	"max_upstreams":           func(h *Handler, d *caddyfile.Dispenser) error { return parsePositiveInt(d, &h.MaxUpstreams) },
	"max_subscribers":         func(h *Handler, d *caddyfile.Dispenser) error { return parsePositiveInt(d, &h.MaxSubscribers) },
	"max_loops_per_client":    func(h *Handler, d *caddyfile.Dispenser) error { return parsePositiveInt(d, &h.MaxLoopsPerClient) },
	"header_up":               (*Handler).parseHeaderUp,
	"method":                  func(h *Handler, d *caddyfile.Dispenser) error { return parseMethod(d, &h.Method) },
	"body":                    func(h *Handler, d *caddyfile.Dispenser) error { return parseString(d, &h.Body) },
	"poke":                    func(h *Handler, d *caddyfile.Dispenser) error { return parseString(d, &h.Poke) },
	"name":                    func(h *Handler, d *caddyfile.Dispenser) error { return parseString(d, &h.Name) },
	"forward":                 func(h *Handler, d *caddyfile.Dispenser) error { return parseFields(d, &h.Forward) },
	"max_body":                func(h *Handler, d *caddyfile.Dispenser) error { return parseSize(d, &h.MaxBody) },
	"format":                  func(h *Handler, d *caddyfile.Dispenser) error { return parseFormat(d, &h.Format) },
	"select":                  (*Handler).parseShape,
	"ignore":                  (*Handler).parseShape,
	"array_key":               (*Handler).parseShape,
	"store":                   (*Handler).parseStore,
	"transport":               (*Handler).parseTransport,
	"dial":                    (*Handler).parseDial,
	"oauth2":                  (*Handler).parseOAuth2,
}

// oneArg returns the single argument of the current subdirective.
func oneArg(d *caddyfile.Dispenser) (string, error) {
	if !d.NextArg() {
		return "", d.ArgErr()
	}
	v := d.Val()
	if d.NextArg() {
		return "", d.ArgErr()
	}
	return v, nil
}

func parseDuration(d *caddyfile.Dispenser, dst *caddy.Duration) error {
	name := d.Val()
	v, err := oneArg(d)
	if err != nil {
		return err
	}
	dur, err := caddy.ParseDuration(v)
	if err != nil {
		return d.Errf("%s: %v", name, err)
	}
	if dur <= 0 {
		return d.Errf("%s: %q must be positive", name, v)
	}
	if err := checkDuration(name, caddy.Duration(dur)); err != nil {
		return d.Errf("%v", err)
	}
	*dst = caddy.Duration(dur)
	return nil
}

func parsePositiveInt(d *caddyfile.Dispenser, dst *int) error {
	name := d.Val()
	v, err := oneArg(d)
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return d.Errf("%s: %q is not a positive whole number", name, v)
	}
	if err := checkCount(name, int64(n)); err != nil {
		return d.Errf("%v", err)
	}
	*dst = n
	return nil
}

// parseHistory parses `history <events> [<size>]`: the versions kept for resume, and
// the most bytes their changes may hold.
func (h *Handler) parseHistory(d *caddyfile.Dispenser) error {
	args := d.RemainingArgs()
	if len(args) < 1 || len(args) > 2 {
		return d.ArgErr()
	}
	n, err := strconv.Atoi(args[0])
	if err != nil || n <= 0 {
		return d.Errf("history: %q is not a positive whole number", args[0])
	}
	if err := checkCount("history", int64(n)); err != nil {
		return d.Errf("%v", err)
	}
	h.History = n
	if len(args) == 2 {
		size, err := humanize.ParseBytes(args[1])
		if err != nil || size == 0 || size > math.MaxInt64 {
			return d.Errf("history: %q is not a positive size", args[1])
		}
		if err := checkCount("history_size", int64(size)); err != nil {
			return d.Errf("history: %v", err)
		}
		h.HistorySize = int64(size)
	}
	return nil
}

func (h *Handler) parseHeaderUp(d *caddyfile.Dispenser) error {
	args := d.RemainingArgs()
	if len(args) != 2 {
		return d.ArgErr()
	}
	if h.HeaderUp == nil {
		h.HeaderUp = make(http.Header)
	}
	h.HeaderUp.Add(args[0], args[1])
	return nil
}

func parseString(d *caddyfile.Dispenser, dst *string) error {
	v, err := oneArg(d)
	*dst = v
	return err
}

func parseMethod(d *caddyfile.Dispenser, dst *string) error {
	v, err := oneArg(d)
	if err != nil {
		return err
	}
	if v = strings.ToUpper(v); v != http.MethodGet && v != http.MethodPost {
		return d.Errf("method: %q is not GET or POST", v)
	}
	*dst = v
	return nil
}

func parseFields(d *caddyfile.Dispenser, dst *[]string) error {
	args := d.RemainingArgs()
	if len(args) == 0 {
		return d.ArgErr()
	}
	*dst = append(*dst, args...)
	return nil
}

func parseSize(d *caddyfile.Dispenser, dst *int64) error {
	name := d.Val()
	v, err := oneArg(d)
	if err != nil {
		return err
	}
	n, err := humanize.ParseBytes(v)
	if err != nil || n == 0 || n > math.MaxInt64 {
		return d.Errf("%s: %q is not a positive size", name, v)
	}
	if err := checkCount(name, int64(n)); err != nil {
		return d.Errf("%v", err)
	}
	*dst = int64(n)
	return nil
}

func parseFormat(d *caddyfile.Dispenser, dst *string) error {
	v, err := oneArg(d)
	if err != nil {
		return err
	}
	if _, err := hub.ParseFormat(v); err != nil {
		return d.Errf("format: %q is not json_patch, merge_patch or snapshot", v)
	}
	*dst = v
	return nil
}

// parseShape parses select, ignore or array_key, then checks the three together so that
// a pointer that is malformed or lies outside select is reported at its line.
func (h *Handler) parseShape(d *caddyfile.Dispenser) error {
	var err error
	switch d.Val() {
	case "select":
		err = parseString(d, &h.Select)
	case "ignore":
		err = parseFields(d, &h.Ignore)
	default:
		err = h.parseArrayKey(d)
	}
	if err != nil {
		return err
	}
	if _, err := diff.NewTracker(h.diffOptions()); err != nil {
		return d.Errf("%v", err)
	}
	return nil
}

func (h *Handler) parseArrayKey(d *caddyfile.Dispenser) error {
	args := d.RemainingArgs()
	if len(args) != 2 {
		return d.Errf("array_key: want <json-pointer> <member>, got %d argument(s)", len(args))
	}
	h.ArrayKeys = append(h.ArrayKeys, ArrayKey{Pointer: args[0], Member: args[1]})
	return nil
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Handler)(nil)
