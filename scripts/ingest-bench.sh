#!/usr/bin/env bash
# BENCHMARKS.md, issue 12: ingest of live-shaped traffic (examples/loadgen.rs --shape live:
# 50 tenants, 100 000 interleaved calls, 60 % turn.completed and the rest usage and
# provider requests, NDJSON bodies of 1 000 events from 8 connections), measured in ONE run
# on this machine four ways:
#   a. the seed's design on PostgreSQL: the same turns as 4 raw rows each in one
#      metrics_latency table (scripts/seed-design.sql), 100-row INSERTs, 8 connections,
#      once with the values bound to a prepared INSERT (the ratios are to this one) and
#      once with the values in the SQL text (as client-side interpolating drivers send);
#   f. the storage floor on PostgreSQL: every event as its idempotency key and one raw row,
#      binary COPY, 1 000 events a transaction, 8 connections, nothing else (loadgen
#      --storage-floor): the least any durable, idempotent store of these events writes;
#   b. voicemon release on SQLite, fresh data directory;
#   c. voicemon release on PostgreSQL, fresh schema;
# then a table of rates with ratios voicemon / seed and voicemon's RSS after each run.
# The servers run with their defaults (--batch-max-events 100, durability full).
#
#   cargo build --release --bin voicemon --example loadgen     # this script builds nothing
#   scripts/ingest-bench.sh [events=600000] [spread=minute|hour|30d] [database url]
#
# The database URL defaults to postgres://postgres@127.0.0.1:5432/test; the run makes the
# schemas seed_ingest_bench_<pid>, floor_ingest_bench_<pid> and vm_ingest_bench_<pid> and
# drops them at exit.
# Environment: VOICEMON_BIN, LOADGEN_BIN (default target/release/…), VOICEMON_BENCH_PORT
# (first port tried, 3461; the next free one is used), VOICEMON_CONFIG (passed on).
set -euo pipefail
cd "$(dirname "$0")/.."

EVENTS=${1:-600000}
SPREAD=${2:-minute}
DB=${3:-postgres://postgres@127.0.0.1:5432/test}
# Schemas of this run only, so that two runs on one database do not drop each other's.
SEED_SCHEMA=seed_ingest_bench_$$
VM_SCHEMA=vm_ingest_bench_$$
FLOOR_SCHEMA=floor_ingest_bench_$$
# in_schema, free_port, start_voicemon, stop_server, bench_binaries
source scripts/bench-lib.sh
bench_binaries
WORK=$(mktemp -d /tmp/ingest-bench.XXXXXX)
server=

drop_schemas() {
  psql "$DB" -q -c "SET client_min_messages = warning" -c "DROP SCHEMA IF EXISTS $SEED_SCHEMA CASCADE" \
    -c "DROP SCHEMA IF EXISTS $VM_SCHEMA CASCADE" -c "DROP SCHEMA IF EXISTS $FLOOR_SCHEMA CASCADE"
}
cleanup() {
  stop_server
  drop_schemas >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM


# Runs loadgen with the arguments given, shows its output, keeps it in $WORK/$name.out.
run_loadgen() {
  local name=$1
  shift
  if ! "$LOADGEN" --shape live --spread "$SPREAD" "$@" "$EVENTS" | tee "$WORK/$name.out"; then
    echo "FAILED: loadgen ($name) exited with an error; see above" >&2
    failed+=("$name")
  fi
}

# The rate and turns/s of loadgen's last line: "rate: <n> <unit>, <turns> turns/s".
rate_of() { awk '/^rate:/ {print $2}' "$WORK/$1.out"; }
turns_of() { awk '/^rate:/ {print $4}' "$WORK/$1.out"; }
cpu_seconds() { awk '{printf "%.1f", ($14 + $15) / '"$(getconf CLK_TCK)"'}' "/proc/$server/stat"; }
mib() { awk -v key="$1:" '$1 == key {printf "%d", $2 / 1024}' "/proc/$server/status"; }

# One voicemon run: name, then the server's extra environment.
bench_voicemon() {
  local name=$1
  shift
  start_voicemon "$name" 3461 "$@"
  local cpu_before
  cpu_before=$(cpu_seconds)
  run_loadgen "$name" "$url"
  rss[$name]="$(mib VmRSS) MiB (peak $(mib VmHWM))"
  cpu[$name]=$(awk -v a="$(cpu_seconds)" -v b="$cpu_before" 'BEGIN {printf "%.1f", a - b}')
  echo "server RSS after: ${rss[$name]}; server CPU during the run: ${cpu[$name]} s"
  # Anything the server logged at WARN or ERROR but the open-mode notice at start.
  if grep -E 'WARN|ERROR' "$WORK/$name/server.log" | grep -v 'running OPEN' | tail -5 | grep .; then
    echo "(server log of $name: warnings above)"
  fi
  stop_server
}

declare -A rss cpu
failed=()
echo "ingest-bench: $EVENTS events, spread $SPREAD, $(date -u '+%Y-%m-%d %H:%M UTC'), nproc $(nproc), load $(cut -d' ' -f1-3 /proc/loadavg)"

# The seed's design in a fresh schema: name, then loadgen's extra arguments.
bench_seed() {
  local name=$1
  shift
  psql "$DB" -q -c "SET client_min_messages = warning" -c "DROP SCHEMA IF EXISTS $SEED_SCHEMA CASCADE" \
    -c "CREATE SCHEMA $SEED_SCHEMA"
  PGOPTIONS="-c search_path=$SEED_SCHEMA" psql "$DB" -q -v ON_ERROR_STOP=1 -f scripts/seed-design.sql
  run_loadgen "$name" --seed-design "$@" "$(in_schema $SEED_SCHEMA)"
  echo "metrics_latency: $(psql "$DB" -qAtc \
    "SELECT pg_size_pretty(pg_total_relation_size('$SEED_SCHEMA.metrics_latency'))") with its index"
}

echo
echo "== a. the seed's design on PostgreSQL, values bound to a prepared INSERT"
bench_seed seed
echo
echo "== a'. the seed's design on PostgreSQL, values in the SQL text"
bench_seed seed-literal --seed-values literal

echo
echo "== f. the storage floor on PostgreSQL: a key and a raw row per event, binary COPY"
psql "$DB" -qc "CREATE SCHEMA $FLOOR_SCHEMA"
run_loadgen floor --storage-floor "$(in_schema $FLOOR_SCHEMA)"
psql "$DB" -q -c "SET client_min_messages = warning" -c "DROP SCHEMA $FLOOR_SCHEMA CASCADE"

echo
echo "== b. voicemon on SQLite (fresh data directory)"
bench_voicemon sqlite

echo
echo "== c. voicemon on PostgreSQL (fresh schema)"
psql "$DB" -qc "CREATE SCHEMA $VM_SCHEMA"
bench_voicemon postgres DATABASE_URL="$(in_schema $VM_SCHEMA)"

seed_rows=$(rate_of seed)
seed_turns=$(turns_of seed)
row() { printf '| %-26s | %-15s | %-7s | %-13s | %-14s | %-17s | %-10s |\n' "$@"; }
echo
echo "== $EVENTS events, spread $SPREAD, load $(cut -d' ' -f1-3 /proc/loadavg) at the end"
row what rate turns/s "/ seed rows/s" "/ seed turns/s" "server RSS after" "server CPU"
row -------------------------- --------------- ------- ------------- -------------- ----------------- ----------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (a && b) printf "%.2f", a / b; else print "?"}'; }
row "seed design, PostgreSQL" "${seed_rows:-?} rows/s" "${seed_turns:-?}" 1.00 1.00 "-" "-"
row "seed, literal SQL" "$(rate_of seed-literal) rows/s" "$(turns_of seed-literal)" \
  "$(ratio "$(rate_of seed-literal)" "$seed_rows")" "$(ratio "$(turns_of seed-literal)" "$seed_turns")" "-" "-"
row "storage floor, PostgreSQL" "$(rate_of floor) events/s" "$(turns_of floor)" \
  "$(ratio "$(rate_of floor)" "$seed_rows")" "$(ratio "$(turns_of floor)" "$seed_turns")" "-" "-"
for name in sqlite postgres; do
  r=$(rate_of "$name")
  t=$(turns_of "$name")
  row "voicemon, $name" "${r:-?} events/s" "${t:-?}" "$(ratio "$r" "$seed_rows")" "$(ratio "$t" "$seed_turns")" \
    "${rss[$name]:-?}" "${cpu[$name]:-?} s"
done
echo "voicemon / the literal-SQL seed: SQLite $(ratio "$(rate_of sqlite)" "$(rate_of seed-literal)") (events/rows)," \
  "$(ratio "$(turns_of sqlite)" "$(turns_of seed-literal)") (turns); PostgreSQL" \
  "$(ratio "$(rate_of postgres)" "$(rate_of seed-literal)"), $(ratio "$(turns_of postgres)" "$(turns_of seed-literal)")"
echo "voicemon / the storage floor: SQLite $(ratio "$(rate_of sqlite)" "$(rate_of floor)")," \
  "PostgreSQL $(ratio "$(rate_of postgres)" "$(rate_of floor)") (events/s)"

if ((${#failed[@]})); then
  echo "FAILED runs: ${failed[*]} (their rates are not valid)" >&2
  exit 1
fi
