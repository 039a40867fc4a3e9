// Package pollsse is the Caddy module poll_sse: it turns legacy JSON APIs that clients poll
// into Server-Sent Events streams. Importing it registers the module, so
// `xcaddy build --with github.com/pollsse/caddy-poll-sse` works.
package pollsse

import (
	// Register http.handlers.poll_sse and the poll_sse Caddyfile directive.
	_ "github.com/pollsse/caddy-poll-sse/caddymodule"
)
