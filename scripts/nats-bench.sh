#!/usr/bin/env bash
# BENCHMARKS.md, issue 16: events/s through NATS JetStream into one and into two voicemon
# instances sharing one PostgreSQL, in ONE run. For each count of instances: the live-shaped
# traffic of examples/loadgen.rs (50 tenants, 100 000 interleaved calls, NDJSON messages of
# 1 000 events, timestamps in the last minute) is published into a fresh stream first, then
# the instances start on a fresh schema with the stream's consumer, and loadgen times the
# consumer from its first delivery to its last acknowledgement (every event committed).
#
#   cargo build --release --bin voicemon --example loadgen     # this script builds nothing
#   scripts/nats-bench.sh [events=300000] [database url] [nats url]
set -euo pipefail
cd "$(dirname "$0")/.."

EVENTS=${1:-300000}
DB=${2:-postgres://postgres@127.0.0.1:5432/test}
NATS=${3:-nats://127.0.0.1:4222}
VOICEMON=$(realpath -m "${VOICEMON_BIN:-target/release/voicemon}")
LOADGEN=$(realpath -m "${LOADGEN_BIN:-target/release/examples/loadgen}")
for bin in "$VOICEMON" "$LOADGEN"; do
  [[ -x $bin ]] || { echo "$bin is missing: cargo build --release --bin voicemon --example loadgen" >&2; exit 1; }
done
WORK=$(mktemp -d /tmp/nats-bench.XXXXXX)
servers=()
schemas=()

stop_servers() {
  for pid in "${servers[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${servers[@]}"; do wait "$pid" 2>/dev/null || true; done
  servers=()
}
cleanup() {
  stop_servers
  for schema in "${schemas[@]}"; do psql "$DB" -qc "SET client_min_messages = warning" -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# in_schema, free_port
source scripts/bench-lib.sh

declare -A rates
echo "nats-bench: $EVENTS events, $(date -u '+%Y-%m-%d %H:%M UTC'), nproc $(nproc), load $(cut -d' ' -f1-3 /proc/loadavg)"
for instances in 1 2; do
  name="NB_$$_$instances"
  subject_prefix="natsbench.$$.$instances"
  schema="vm_nats_bench_$$_$instances"
  schemas+=("$schema")
  psql "$DB" -qc "CREATE SCHEMA $schema"
  echo
  echo "== $instances instance(s): publishing into stream $name"
  "$LOADGEN" --shape live --nats-subject "$subject_prefix.events" --nats-stream "$name" "$NATS" "$EVENTS"
  config="$WORK/voicemon-$instances.toml"
  cat >"$config" <<TOML
[nats]
stream = "$name"
subjects = ["$subject_prefix.>"]
consumer = "voicemon_bench"
dead_letter_subject = "natsbench.$$.dead"
TOML
  port=3471
  for i in $(seq 1 "$instances"); do
    port=$(free_port "$port")
    mkdir -p "$WORK/$instances-$i"
    (cd "$WORK/$instances-$i" && exec env RUST_LOG=warn DATABASE_URL="$(in_schema "$schema")" NATS_URL="$NATS" \
      "$VOICEMON" serve --port "$port" --config "$config" >"$WORK/$instances-$i/server.log" 2>&1) &
    servers+=($!)
    port=$((port + 1))
  done
  "$LOADGEN" --shape live --nats-drain voicemon_bench --nats-stream "$name" "$NATS" "$EVENTS" \
    | tee "$WORK/drain-$instances.out"
  rates[$instances]=$(awk '/^rate:/ {print $2}' "$WORK/drain-$instances.out")
  for i in $(seq 1 "$instances"); do
    if grep -E 'WARN|ERROR' "$WORK/$instances-$i/server.log" | grep -v 'running OPEN' | tail -3 | grep .; then
      echo "(server log of instance $i: warnings above)"
    fi
  done
  stop_servers
  # Drained already: this returns at once, and deletes the stream.
  "$LOADGEN" --shape live --nats-drain voicemon_bench --nats-stream "$name" --nats-delete "$NATS" "$EVENTS" >/dev/null
done
echo
echo "== through JetStream into PostgreSQL, $EVENTS events, load $(cut -d' ' -f1-3 /proc/loadavg) at the end"
echo "one instance:  ${rates[1]:-?} events/s"
echo "two instances: ${rates[2]:-?} events/s ($(awk -v a="${rates[2]:-0}" -v b="${rates[1]:-0}" 'BEGIN {if (b) printf "%.2f", a / b; else print "?"}')× one)"
