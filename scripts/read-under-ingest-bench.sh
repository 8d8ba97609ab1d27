#!/usr/bin/env bash
# BENCHMARKS.md, issue 12: how long a latency query takes while live-shaped traffic is
# being ingested, against the same query on the same store once ingest has stopped.
# One release voicemon (SQLite, then PostgreSQL in a fresh schema); loadgen sends the
# live shape (50 tenants, 100 000 interleaved calls, 8 connections of 1 000-event bodies)
# and, meanwhile, one client asks GET /metrics/latency of one tenant's last hour every
# 250 ms; after ingest ends it asks the same 40 more times. Reports p50/p99/max of both.
#
#   cargo build --release --bin voicemon --example loadgen     # this script builds nothing
#   scripts/read-under-ingest-bench.sh [events=600000] [spread=minute|hour] [database url]
#
# The database URL defaults to postgres://postgres@127.0.0.1:5432/test; the PostgreSQL run
# makes the schema vm_read_bench_<pid> and drops it at exit. Environment: VOICEMON_BIN,
# LOADGEN_BIN (default target/release/…), VOICEMON_BENCH_PORT (first port tried, 3481),
# VOICEMON_BENCH_QUERY (below).
set -euo pipefail
cd "$(dirname "$0")/.."

# The query asked: one tenant's last-hour latency, or VOICEMON_BENCH_QUERY (a path and
# query string, such as /metrics/health?tenant_id=t00).
QUERY=${VOICEMON_BENCH_QUERY:-/metrics/latency?tenant_id=t00&step=1m}
EVENTS=${1:-600000}
SPREAD=${2:-minute}
DB=${3:-postgres://postgres@127.0.0.1:5432/test}
VM_SCHEMA=vm_read_bench_$$
# in_schema, free_port, start_voicemon, stop_server, bench_binaries
source scripts/bench-lib.sh
bench_binaries
WORK=$(mktemp -d /tmp/read-bench.XXXXXX)
server=
cleanup() {
  stop_server
  psql "$DB" -qc "DROP SCHEMA IF EXISTS $VM_SCHEMA CASCADE" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM


# Seconds each query took (curl's time_total), one a line, into $1, every 250 ms while
# the process $2 runs, or $3 times when $2 is "-".
ask_latency() {
  local into=$1 while_pid=$2 times=${3:-0} n=0
  local route="$url$QUERY"
  while true; do
    if [[ $while_pid == - ]]; then
      ((n++ < times)) || break
    else
      kill -0 "$while_pid" 2>/dev/null || break
    fi
    curl -s -o /dev/null -w '%{http_code} %{time_total}\n' "$route" >>"$into"
    sleep 0.25
  done
}

# p50, p99 and max in ms of the 200 answers in $1, and how many were not 200.
summary() {
  awk '$1 == 200 { print $2 * 1000 } $1 != 200 { bad++ } END { if (bad) print "not-200 " bad > "/dev/stderr" }' "$1" |
    sort -n | awk '{ v[NR] = $1 } END {
      if (!NR) { print "no answers"; exit }
      p50 = v[int((NR - 1) * 0.50) + 1]; p99 = v[int((NR - 1) * 0.99) + 1]
      printf "%d queries: p50 %.1f ms, p99 %.1f ms, max %.1f ms", NR, p50, p99, v[NR] }'
}

declare -A during after
bench() {
  local name=$1
  shift
  start_voicemon "$name" 3481 "$@"
  "$LOADGEN" --shape live --spread "$SPREAD" "$url" "$EVENTS" >"$WORK/$name.loadgen" 2>&1 &
  local loadgen=$!
  : >"$WORK/$name.during"   # a run too short for a query still gets its (empty) summary
  sleep 1
  ask_latency "$WORK/$name.during" "$loadgen"
  wait "$loadgen" || { echo "loadgen ($name) failed:" >&2; tail -5 "$WORK/$name.loadgen" >&2; exit 1; }
  tail -1 "$WORK/$name.loadgen"
  ask_latency "$WORK/$name.after" - 40
  during[$name]=$(summary "$WORK/$name.during")
  after[$name]=$(summary "$WORK/$name.after")
  echo "== $name: during ingest ${during[$name]}; after ${after[$name]}"
  stop_server
}

echo "read-under-ingest-bench: GET $QUERY, $EVENTS events, spread $SPREAD, $(date -u '+%Y-%m-%d %H:%M UTC'), nproc $(nproc), load $(cut -d' ' -f1-3 /proc/loadavg)"
bench sqlite
psql "$DB" -qc "CREATE SCHEMA $VM_SCHEMA"
bench postgres DATABASE_URL="$(in_schema $VM_SCHEMA)"
