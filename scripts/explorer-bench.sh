#!/usr/bin/env bash
# BENCHMARKS.md, issue 17: the call explorer's slow-calls query (GET /calls) for one tenant
# over one hour, on a store of millions of turns, on SQLite and on PostgreSQL.
#
# Each store gets, from examples/loadgen.rs:
#   1. the 30-day base of issue 2: 4 000 000 events (2 M turns), 10 tenants t0..t9, calls
#      of 8 events, timestamps over the last 30 days;
#   2. a busy last hour, live-shaped: 600 000 events, 100 000 interleaved calls over 50
#      tenants t00..t49 (about 2 000 calls and 7 000 turns per tenant in the hour).
# Then, through the REST API of the release binary, the median and slowest of 20 runs of:
#   - GET /calls for the busiest tenant's last hour (t00, about 2 000 calls), each sort;
#   - GET /calls for a 30-day tenant's busiest hour of the base (t0);
#   - GET /calls/{call_id} of the slowest call listed.
#
#   cargo build --release --bin voicemon --example loadgen     # this script builds nothing
#   scripts/explorer-bench.sh [sqlite|postgres|both=both] [database url]
#
# The database URL defaults to postgres://postgres@127.0.0.1:5432/test; the run makes the
# schema vm_explorer_bench_<pid> and drops it at exit. Environment: VOICEMON_BIN,
# LOADGEN_BIN (default target/release/…), VOICEMON_BENCH_PORT (first port tried, 3471),
# BASE_EVENTS (4000000), HOUR_EVENTS (600000).
set -euo pipefail
cd "$(dirname "$0")/.."

WHICH=${1:-both}
DB=${2:-postgres://postgres@127.0.0.1:5432/test}
BASE_EVENTS=${BASE_EVENTS:-4000000}
HOUR_EVENTS=${HOUR_EVENTS:-600000}
SCHEMA=vm_explorer_bench_$$
RUNS=20
# in_schema, free_port, start_voicemon, stop_server, bench_binaries
source scripts/bench-lib.sh
bench_binaries
WORK=$(mktemp -d /tmp/explorer-bench.XXXXXX)
server=

cleanup() {
  stop_server
  psql "$DB" -q -c "SET client_min_messages = warning" -c "DROP SCHEMA IF EXISTS $SCHEMA CASCADE" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM


# Median and slowest of $RUNS timings of GET $1, in ms; the answer of the last run in $WORK/answer.json.
timed() {
  local path=$1 times=()
  for _ in $(seq 1 "$RUNS"); do
    times+=("$(curl -sf -o "$WORK/answer.json" -w '%{time_total}' "$url$path")")
  done
  printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR] = $1 * 1000} END {printf "median %.1f ms, slowest %.1f ms", a[int((NR + 1) / 2)], a[NR]}'
}

iso() { date -u -d "@$1" '+%Y-%m-%dT%H:%M:%SZ'; }

bench() {
  local name=$1
  shift
  echo
  echo "== $name"
  start_voicemon "$name" 3471 "$@"
  echo "-- base: $BASE_EVENTS events over 30 days (10 tenants)"
  "$LOADGEN" "$url" "$BASE_EVENTS" 5000 4 30 10 | grep -E '^rate|^ingest|events/s' | tail -2
  echo "-- the last hour, live-shaped: $HOUR_EVENTS events (50 tenants, 100 000 calls)"
  "$LOADGEN" --shape live --spread hour "$url" "$HOUR_EVENTS" | grep -E '^rate' | tail -1
  local now from
  now=$(date -u +%s)
  from=$(iso $((now - 3600)))
  local hour="tenant_id=t00&from=$from&to=$(iso "$now")"
  for sort in worst_turn p95 cost duration; do
    local figure
    figure=$(timed "/calls?$hour&sort=$sort")
    echo "GET /calls, t00, last hour, sort=$sort: $figure ($(jq -r '.matching' "$WORK/answer.json") calls in the window)"
  done
  local slowest
  slowest=$(jq -r '.calls[0].call_id' "$WORK/answer.json")
  echo "GET /calls, t00, last hour, min_e2e_ms=1500: $(timed "/calls?$hour&min_e2e_ms=1500")"
  # The base's hours hold about 70 calls per tenant.
  local base="tenant_id=t0&from=$(iso $((now - 86400 * 15)))&to=$(iso $((now - 86400 * 15 + 3600)))"
  echo "GET /calls, t0, an hour of the 30-day base: $(timed "/calls?$base") ($(jq -r '.matching' "$WORK/answer.json") calls)"
  echo "GET /calls/{call_id}, $slowest: $(timed "/calls/$slowest?tenant_id=t00") ($(jq '.turns | length' "$WORK/answer.json") turns)"
  echo "server RSS after: $(awk '$1 == "VmRSS:" {printf "%d MiB", $2 / 1024}' "/proc/$server/status")"
  stop_server
}

echo "explorer-bench: $(date -u '+%Y-%m-%d %H:%M UTC'), nproc $(nproc), load $(cut -d' ' -f1-3 /proc/loadavg)"
if [[ $WHICH == sqlite || $WHICH == both ]]; then
  bench sqlite
fi
if [[ $WHICH == postgres || $WHICH == both ]]; then
  psql "$DB" -qc "CREATE SCHEMA $SCHEMA"
  bench postgres DATABASE_URL="$(in_schema $SCHEMA)"
fi
