// Command caddy is Caddy with its standard modules and poll_sse.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	// Caddy's standard modules.
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	// poll_sse.
	_ "github.com/pollsse/caddy-poll-sse"
)

func main() {
	caddycmd.Main()
}
