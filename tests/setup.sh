#!/usr/bin/env bash
# setup.sh installs what the tests need, from the project's own files only, so that
# `tests/setup.sh && go test -race -count=1 ./...` works on a fresh machine. It is
# idempotent and prints nothing when all is in place; run it as often as you like.
#
# Each need is one function, called at the bottom. To add one, write a function that
# returns at once when its need is met, and call it there.
set -euo pipefail
cd "$(dirname "$0")/.."

# quietly runs a command and shows its output only when it fails.
quietly() {
	local log
	log=$(mktemp)
	if ! "$@" >"$log" 2>&1; then
		echo "setup.sh: $* failed:" >&2
		cat "$log" >&2
		rm -f "$log"
		return 1
	fi
	rm -f "$log"
}

# apt_install installs the Debian packages among its arguments that are missing; it is
# here for the steps that need system packages.
apt_install() {
	local missing=()
	local pkg
	for pkg in "$@"; do
		dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || missing+=("$pkg")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	local sudo=()
	[ "$(id -u)" -eq 0 ] || sudo=(sudo)
	quietly "${sudo[@]}" apt-get update
	quietly "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
}

# node_modules: the JavaScript oracles of tests/oracle, pinned by package-lock.json.
# npm ci rewrites node_modules/.package-lock.json, so an install newer than the lock
# file is up to date.
setup_node_modules() {
	if [ -f node_modules/.package-lock.json ] && [ node_modules/.package-lock.json -nt package-lock.json ]; then
		return 0
	fi
	if ! command -v npm >/dev/null; then
		echo "setup.sh: npm is missing: install Node.js 20 or later" >&2
		return 1
	fi
	quietly npm ci --no-audit --no-fund
	touch node_modules/.package-lock.json
}

# redis-server: the Redis the store tests start on their own ports (Debian's package).
setup_redis() {
	command -v redis-server >/dev/null && return 0
	apt_install redis-server
}

# redis-sentinel: the Sentinels of the failover tests (redisstore/redistest/sentinel.go),
# Debian's package; the Redis Cluster tests need only redis-server.
setup_redis_sentinel() {
	command -v redis-sentinel >/dev/null && return 0
	apt_install redis-sentinel
}

# chromium: the browser of the end-to-end tests (tests/browser_test.go), driven by the
# playwright-core of node_modules; Debian's package, since Playwright's own downloads are
# not used.
setup_chromium() {
	apt_install chromium
}

setup_node_modules
setup_chromium
setup_redis
setup_redis_sentinel
