#!/usr/bin/env bash
# BENCHMARKS.md, issue 12: ingest of live-shaped traffic (examples/loadgen.rs --shape live:
# 50 tenants, 100 000 interleaved calls, 60 % turn.completed and the rest usage and
# provider requests, NDJSON bodies of 1 000 events from 8 connections), measured in ONE run
# on this machine three ways:
#   a. the seed's design on PostgreSQL: the same turns as 4 raw rows each in one
#      metrics_latency table (scripts/seed-design.sql), 100-row INSERTs, 8 connections,
#      once with the values bound to a prepared INSERT (the ratios are to this one) and
#      once with the values in the SQL text (as client-side interpolating drivers send);
#   b. voicemon release on SQLite, fresh data directory;
#   c. voicemon release on PostgreSQL, fresh schema;
# then a table of rates with ratios voicemon / seed and voicemon's RSS after each run.
# The servers run with their defaults (--batch-max-events 100, durability full).
#
#   cargo build --release --bin voicemon --example loadgen     # this script builds nothing
#   scripts/ingest-bench.sh [events=600000] [spread=minute|hour|30d] [database url]
#
# The database URL defaults to postgres://postgres@127.0.0.1:5432/test; the run makes the
# schemas seed_ingest_bench_<pid> and vm_ingest_bench_<pid> and drops them at exit.
# Environment: VOICEMON_BIN, LOADGEN_BIN (default target/release/…), VOICEMON_BENCH_PORT
# (first port tried, 3461; the next free one is used), VOICEMON_CONFIG (passed on).
set -euo pipefail
cd "$(dirname "$0")/.."

EVENTS=${1:-600000}
SPREAD=${2:-minute}
DB=${3:-postgres://postgres@127.0.0.1:5432/test}
VOICEMON=$(realpath -m "${VOICEMON_BIN:-target/release/voicemon}")
LOADGEN=$(realpath -m "${LOADGEN_BIN:-target/release/examples/loadgen}")
# Schemas of this run only, so that two runs on one database do not drop each other's.
SEED_SCHEMA=seed_ingest_bench_$$
VM_SCHEMA=vm_ingest_bench_$$
for bin in "$VOICEMON" "$LOADGEN"; do
  [[ -x $bin ]] || { echo "$bin is missing: cargo build --release --bin voicemon --example loadgen" >&2; exit 1; }
done
WORK=$(mktemp -d /tmp/ingest-bench.XXXXXX)
server=

drop_schemas() {
  psql "$DB" -q -c "SET client_min_messages = warning" -c "DROP SCHEMA IF EXISTS $SEED_SCHEMA CASCADE" \
    -c "DROP SCHEMA IF EXISTS $VM_SCHEMA CASCADE"
}
stop_server() {
  if [[ -n $server ]]; then
    kill -TERM "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    server=
  fi
}
cleanup() {
  stop_server
  drop_schemas >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# in_schema, free_port
source scripts/bench-lib.sh

# Starts voicemon (extra environment as arguments) on a free port; sets $server and $url.
start_voicemon() {
  local name=$1 port
  shift
  port=$(free_port "${VOICEMON_BENCH_PORT:-3461}")
  mkdir -p "$WORK/$name"
  # The load comes from one open-mode caller: rate limits out of its way (README, "Rate
  # limits"); read as ./voicemon.toml unless VOICEMON_CONFIG names another file.
  printf '[limits]\ningest_events_per_second = 1000000\ningest_burst = 10000000\n' >"$WORK/$name/voicemon.toml"
  (cd "$WORK/$name" && exec env "$@" RUST_LOG=warn "$VOICEMON" serve --port "$port" \
    --data-dir "$WORK/$name/data" >"$WORK/$name/server.log" 2>&1) &
  server=$!
  url=http://127.0.0.1:$port
  for _ in $(seq 1 300); do
    curl -sf "$url/readyz" >/dev/null && return 0
    kill -0 "$server" 2>/dev/null || break
    sleep 0.2
  done
  echo "voicemon ($name) did not become ready on port $port:" >&2
  tail -20 "$WORK/$name/server.log" >&2
  exit 1
}

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
  start_voicemon "$name" "$@"
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
echo "== b. voicemon on SQLite (fresh data directory)"
bench_voicemon sqlite

echo
echo "== c. voicemon on PostgreSQL (fresh schema)"
psql "$DB" -qc "CREATE SCHEMA $VM_SCHEMA"
bench_voicemon postgres DATABASE_URL="$(in_schema $VM_SCHEMA)"

seed_rows=$(rate_of seed)
seed_turns=$(turns_of seed)
row() { printf '| %-23s | %-15s | %-7s | %-13s | %-14s | %-17s | %-10s |\n' "$@"; }
echo
echo "== $EVENTS events, spread $SPREAD, load $(cut -d' ' -f1-3 /proc/loadavg) at the end"
row what rate turns/s "/ seed rows/s" "/ seed turns/s" "server RSS after" "server CPU"
row ----------------------- --------------- ------- ------------- -------------- ----------------- ----------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (a && b) printf "%.2f", a / b; else print "?"}'; }
row "seed design, PostgreSQL" "${seed_rows:-?} rows/s" "${seed_turns:-?}" 1.00 1.00 "-" "-"
row "seed, literal SQL" "$(rate_of seed-literal) rows/s" "$(turns_of seed-literal)" \
  "$(ratio "$(rate_of seed-literal)" "$seed_rows")" "$(ratio "$(turns_of seed-literal)" "$seed_turns")" "-" "-"
for name in sqlite postgres; do
  r=$(rate_of "$name")
  t=$(turns_of "$name")
  row "voicemon, $name" "${r:-?} events/s" "${t:-?}" "$(ratio "$r" "$seed_rows")" "$(ratio "$t" "$seed_turns")" \
    "${rss[$name]:-?}" "${cpu[$name]:-?} s"
done
echo "voicemon / the literal-SQL seed: SQLite $(ratio "$(rate_of sqlite)" "$(rate_of seed-literal)") (events/rows)," \
  "$(ratio "$(turns_of sqlite)" "$(turns_of seed-literal)") (turns); PostgreSQL" \
  "$(ratio "$(rate_of postgres)" "$(rate_of seed-literal)"), $(ratio "$(turns_of postgres)" "$(turns_of seed-literal)")"

if ((${#failed[@]})); then
  echo "FAILED runs: ${failed[*]} (their rates are not valid)" >&2
  exit 1
fi
