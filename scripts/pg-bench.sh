#!/usr/bin/env bash
# BENCHMARKS.md, PostgreSQL: ingest N `turn.completed` events (every latency component)
# into a release voicemon on PostgreSQL over HTTP, then one tenant's P50/P95/P99 over the
# 30 days loaded, answered three ways in the same run and on the same data:
#   1. the REST API (sketch rollups merged in Rust),
#   2. SQL over the sketch rollups (voicemon_merge + voicemon_quantile, as Grafana does),
#   3. the raw-row design: percentile_cont over the raw turns table.
#
#   cargo build --release --bin voicemon --example loadgen
#   scripts/pg-bench.sh [turns=10000000] [database url]
set -euo pipefail
cd "$(dirname "$0")/.."

TURNS=${1:-10000000}
DB=${2:-postgres://postgres@127.0.0.1:5432/test}
SCHEMA=vm_bench
PORT=${VOICEMON_BENCH_PORT:-3451}
psql "$DB" -qc "SET client_min_messages = warning" -c "DROP SCHEMA IF EXISTS $SCHEMA CASCADE" -c "CREATE SCHEMA $SCHEMA"
URL="$DB?options=-csearch_path%3D$SCHEMA"

# The load comes from one open-mode caller: rate limits out of its way (README, "Rate limits").
mkdir -p /tmp/vm-pg-bench
printf '[limits]\ningest_events_per_second = 1000000\ningest_burst = 10000000\nquery_requests_per_second = 1000000\nquery_burst = 1000000\n' \
  >/tmp/vm-pg-bench/voicemon.toml
DATABASE_URL=$URL RUST_LOG=warn target/release/voicemon serve --port $PORT --batch-max-events 5000 \
  --data-dir /tmp/vm-pg-bench --config /tmp/vm-pg-bench/voicemon.toml &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -sf localhost:$PORT/readyz >/dev/null && break; sleep 0.2; done
kill -0 $server 2>/dev/null || { echo "voicemon did not start (is port $PORT taken?)" >&2; exit 1; }

echo "== ingest and REST latency queries"
target/release/examples/loadgen http://127.0.0.1:$PORT "$TURNS" 5000 4 30 10 turns
echo "server RSS: $(($(awk '/VmRSS/ {print $2}' /proc/$server/status) / 1024)) MiB"

export PGOPTIONS="-c search_path=$SCHEMA"
psql "$DB" -qAtc "VACUUM ANALYZE"
echo "== storage"
psql "$DB" -qAtc "SELECT 'turns: ' || count(*) FROM turns"
psql "$DB" -qAtc "SELECT 'database size: ' || pg_size_pretty(sum(pg_total_relation_size(c.oid)))
                  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE n.nspname = '$SCHEMA' AND c.relkind IN ('r', 'm')"

# Median of 7 runs (after one warm-up) of a query, in ms, with its answer.
median_ms() {
  local sql=$1 times=()
  psql "$DB" -qAtc "$sql" >/dev/null
  for _ in 1 2 3 4 5 6 7; do
    times+=("$(psql "$DB" -qAt -c '\timing on' -c "$sql" | awk '/^Time:/ {print $2}')")
  done
  printf '%s\n' "${times[@]}" | sort -n | sed -n 4p
}

RANGE="tenant_id = 't0' AND %s >= now() - interval '31 days'"
SKETCH_SQL="SELECT voicemon_quantile(s, 0.5), voicemon_quantile(s, 0.95), voicemon_quantile(s, 0.99), voicemon_count(s)
            FROM (SELECT voicemon_merge(sketch) AS s FROM latency_hour
                  WHERE $(printf "$RANGE" start_at) AND component = 'turn_e2e' AND source = 'turn') AS w"
RAW_SQL="SELECT percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY e2e_ms), count(*)
         FROM turns WHERE $(printf "$RANGE" ts)"

echo "== one tenant, 30 days, P50/P95/P99 in SQL"
echo "sketch rollups:   $(psql "$DB" -qAtc "$SKETCH_SQL")"
echo "raw rows (exact): $(psql "$DB" -qAtc "$RAW_SQL")"
sketch=$(median_ms "$SKETCH_SQL")
raw=$(median_ms "$RAW_SQL")
echo "sketch rollups median ${sketch} ms; percentile_cont over raw rows median ${raw} ms"
awk -v s="$sketch" -v r="$raw" 'BEGIN { printf "raw / sketch = %.0fx\n", r / s }'
