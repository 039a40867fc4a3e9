#!/usr/bin/env bash
# Benchmark poll_sse against Nchan and a plain Go SSE broadcaster on this machine.
#
#   tests/bench/run.sh [--counts 1000,5000,10000] [--runs 3] [--quick] [--rev REV]
#                      [--out FILE] [--pprof FILE] [--scenarios LIST] [--storm N]
#                      [-- harness flags...]
#
# Environment: BENCH_COUNTS, BENCH_RUNS, BENCH_QUICK=1 (counts 200,500, one short run),
# BENCH_REV (build Caddy from this git revision instead of the working tree), BENCH_OUT,
# BENCH_PPROF, BENCH_SCENARIOS (fanout,continuous,slow,storm; default all but storm),
# BENCH_STORM (subscribers in the reconnect storm, which --storm adds). It installs nginx-light and libnginx-mod-nchan from Debian when missing,
# builds everything into a temporary directory, runs the harness and prints the report.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
COUNTS=${BENCH_COUNTS:-1000,5000,10000}
RUNS=${BENCH_RUNS:-3}
QUICK=${BENCH_QUICK:-0}
REV=${BENCH_REV:-}
OUT=${BENCH_OUT:-}
PPROF=${BENCH_PPROF:-}
SCENARIOS=${BENCH_SCENARIOS:-fanout,continuous,slow}
STORM=${BENCH_STORM:-}
COMMAND="tests/bench/run.sh $*"
for v in BENCH_COUNTS BENCH_RUNS BENCH_QUICK BENCH_REV BENCH_OUT BENCH_PPROF BENCH_SCENARIOS BENCH_STORM; do
	[ -z "${!v:-}" ] || COMMAND="$v=${!v} $COMMAND"
done
EXTRA=()

while [ $# -gt 0 ]; do
	case "$1" in
	--counts) COUNTS=$2; shift 2 ;;
	--runs) RUNS=$2; shift 2 ;;
	--quick) QUICK=1; shift ;;
	--rev) REV=$2; shift 2 ;;
	--out) OUT=$2; shift 2 ;;
	--pprof) PPROF=$2; shift 2 ;;
	--scenarios) SCENARIOS=$2; shift 2 ;;
	--storm) STORM=$2; shift 2 ;;
	--) shift; EXTRA=("$@"); break ;;
	*) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
	esac
done

if [ -n "$STORM" ]; then
	case ",$SCENARIOS," in *,storm,*) ;; *) SCENARIOS="$SCENARIOS,storm" ;; esac
fi
if [ "$QUICK" = 1 ]; then
	COUNTS=${BENCH_COUNTS:-200,500}
	RUNS=1
	STORM=${STORM:-500}
	EXTRA=(-changes 5 -trial-changes 3 -settle 1s -idle-window 2s -cont-subs 200 -cont-changes 50
		-slow-subs 200 -slow-before 10 -slow-changes 150 "${EXTRA[@]}")
fi
[ -z "$STORM" ] || EXTRA=(-storm-subs "$STORM" "${EXTRA[@]}")
[ -n "$OUT" ] || OUT="$ROOT/tests/bench/results-$(date +%Y%m%d-%H%M%S).txt"

TMP=$(mktemp -d /tmp/pollsse-bench.XXXXXX)
HPID=

# stop_group sends TERM to a process group we started, then KILL if it outlives 10 s.
stop_group() {
	local pid=$1 i
	kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
	for i in $(seq 1 100); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
	if [ -n "$HPID" ] && kill -0 "$HPID" 2>/dev/null; then
		kill -TERM "$HPID" 2>/dev/null || true
		for _ in $(seq 1 100); do
			kill -0 "$HPID" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$HPID" 2>/dev/null || true
	fi
	if [ -f "$TMP/pids" ]; then
		while read -r pid; do
			[ -n "$pid" ] && stop_group "$pid"
		done <"$TMP/pids"
	fi
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

NCHAN_PKGS=(nginx-light libnginx-mod-nchan)

# nchan_module prints the path of the installed Nchan module.
nchan_module() {
	local f
	for f in /usr/lib/nginx/modules/ngx_nchan_module.so; do
		[ -f "$f" ] && { echo "$f"; return; }
	done
	f=$(sed -n 's/^load_module \(.*\);/\1/p' /usr/share/nginx/modules-available/mod-nchan.conf 2>/dev/null | head -n 1)
	case "$f" in
	/*) [ -f "$f" ] && echo "$f" ;;
	?*) [ -f "/usr/share/nginx/$f" ] && echo "/usr/share/nginx/$f" ;;
	esac
}

install_peers() {
	if command -v nginx >/dev/null && [ -n "$(nchan_module)" ]; then
		return
	fi
	echo "installing ${NCHAN_PKGS[*]} from Debian" >&2
	export DEBIAN_FRONTEND=noninteractive
	if ! apt-get install -y "${NCHAN_PKGS[@]}" >"$TMP/apt.log" 2>&1; then
		apt-get update >>"$TMP/apt.log" 2>&1
		apt-get install -y "${NCHAN_PKGS[@]}" >>"$TMP/apt.log" 2>&1 || { tail -n 20 "$TMP/apt.log" >&2; exit 1; }
	fi
}

# build_caddy builds cmd/caddy from the working tree, or from git revision $REV.
build_caddy() {
	local src=$ROOT
	if [ -n "$REV" ]; then
		src=$TMP/src
		mkdir -p "$src"
		git -C "$ROOT" archive --format=tar "$REV" | tar -x -C "$src"
		LABEL="Caddy built from git revision $REV ($(git -C "$ROOT" rev-parse --short "$REV"))"
	else
		LABEL="Caddy built from the working tree at $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
		if [ -n "$(git -C "$ROOT" status --porcelain -- . ':!tests/bench' 2>/dev/null)" ]; then
			LABEL="$LABEL, with uncommitted changes"
		fi
	fi
	(cd "$src" && go build -o "$TMP/caddy" ./cmd/caddy)
}

install_peers
MODULE=$(nchan_module)
[ -n "$MODULE" ] || { echo "run.sh: Nchan module not found after install" >&2; exit 1; }
echo "building into $TMP" >&2
build_caddy
(cd "$ROOT" && go build -o "$TMP/harness" ./tests/bench/harness && go build -o "$TMP/baseline" ./tests/bench/baseline)
ulimit -n "$(ulimit -Hn)"

TMPDIR="$TMP" "$TMP/harness" -caddy "$TMP/caddy" -nginx "$(command -v nginx)" -nchan-module "$MODULE" \
	-baseline "$TMP/baseline" -counts "$COUNTS" -runs "$RUNS" -out "$OUT" \
	-scenarios "$SCENARIOS" ${PPROF:+-pprof "$PPROF"} -pidfile "$TMP/pids" -label "$LABEL" -command "$COMMAND" \
	"${EXTRA[@]}" &
HPID=$!
rc=0
wait "$HPID" || rc=$?
HPID=
[ "$rc" = 0 ] || { echo "run.sh: harness failed (exit $rc)" >&2; exit "$rc"; }
echo "report written to $OUT" >&2
