//go:build pollssetest

package main

// A module of the integration tests: built in with `go build -tags pollssetest`.
import _ "github.com/pollsse/caddy-poll-sse/tests/rewritemodule"
