#!/usr/bin/env bash
# BENCHMARKS.md, issue 14: does a flood from one key leave another key's queries alone?
# One release voicemon (SQLite, keys, loopback) holding a few hours of simulated traffic;
# a "quiet" read key asks GET /metrics/latency at a steady ~15 requests/s (under its
# limit) and its latency distribution is measured by wrk, three ways in ONE run:
#   alone     the quiet key only;
#   neighbour while a second read key asks the same route at its limit (~20 requests/s,
#             from one connection): the load any key may add, the floor for a flood;
#   flood     while a second read key hammers the same route from 32 connections, with
#             the default limits (the flood is answered 429 once its burst is spent, each
#             429 held until the flood's bucket could admit a request, at most 1 s);
#   no-hold   the same flood with the same limits but every 429 sent at once
#             (refusal_hold = "0s"), to show what holding refusals buys;
#   unlimited the same flood with limits raised out of the way (a second server on the
#             same data), to show what the limit buys.
# Then p50/p99 of each and the ratio of p99 to the quiet key's alone.
#
#   cargo build --release --bin voicemon      # this script builds nothing
#   scripts/ratelimit-bench.sh [seconds per measurement=30]
#
# Needs wrk (apt-get install wrk). Environment: VOICEMON_BIN (default target/release/voicemon),
# VOICEMON_BENCH_PORT (default 3471). wrk runs on the same 2 cores as the server, so the
# flood's 429s still cost CPU: this measures the whole machine, as a real flood would.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_EACH=${1:-30}
VOICEMON=$(realpath -m "${VOICEMON_BIN:-target/release/voicemon}")
PORT=${VOICEMON_BENCH_PORT:-3471}
[[ -x $VOICEMON ]] || { echo "$VOICEMON is missing: cargo build --release --bin voicemon" >&2; exit 1; }
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }

WORK=$(mktemp -d /tmp/ratelimit-bench.XXXXXX)
server=
stop_server() {
  if [[ -n $server ]]; then
    kill -TERM "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    server=
  fi
}
trap 'stop_server; rm -rf "$WORK"' EXIT

key() { "$VOICEMON" keys create --data-dir "$WORK/data" "$@" 2>/dev/null; }
ADMIN=$(key --role admin --name bench-admin)
QUIET=$(key --role read --tenant tenant-01 --name quiet)
FLOOD=$(key --role read --tenant tenant-01 --name flood)

# Starts voicemon with the config file $1; sets $server.
start_voicemon() {
  (exec env RUST_LOG=warn "$VOICEMON" serve --config "$1" --bind 127.0.0.1 --port "$PORT" \
    --data-dir "$WORK/data" >>"$WORK/server.log" 2>&1) &
  server=$!
  for _ in $(seq 1 150); do
    curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && return 0
    sleep 0.2
  done
  echo "voicemon did not start:" >&2
  tail -20 "$WORK/server.log" >&2
  exit 1
}

# The limits under test are the defaults; the other file moves them out of the way.
printf '' >"$WORK/default-limits.toml"
printf '[limits]\nrefusal_hold = "0s"\n' >"$WORK/no-hold.toml"
printf '[limits]\nquery_requests_per_second = 1000000\nquery_burst = 1000000\ningest_events_per_second = 1000000\ningest_burst = 10000000\n' \
  >"$WORK/no-limits.toml"

start_voicemon "$WORK/no-limits.toml"
echo "== loading 3 h of simulated traffic (1 tenant, 120 calls a minute)"
"$VOICEMON" simulate --url "http://127.0.0.1:$PORT" --api-key "$ADMIN" --tenants 1 \
  --calls-per-minute 120 --backfill 3h --duration 1s --seed 14 >"$WORK/simulate.log" 2>&1
tail -1 "$WORK/simulate.log"
stop_server

ROUTE="/metrics/latency?tenant_id=tenant-01&from=$(date -u -d '-3 hours' +%s)&step=5m"
# The quiet key: one connection, a 60 ms pause between requests (wrk leaves the pause out
# of the latency it records), so ~15 requests/s, under the default 20/s.
cat >"$WORK/quiet.lua" <<EOF
wrk.headers["Authorization"] = "Bearer $QUIET"
function delay() return 60 end
EOF
cat >"$WORK/flood.lua" <<EOF
wrk.headers["Authorization"] = "Bearer $FLOOD"
EOF
cat >"$WORK/neighbour.lua" <<EOF
wrk.headers["Authorization"] = "Bearer $FLOOD"
function delay() return 48 end
EOF

# wrk's latency text ("850.00us", "1.23ms", "2.01s") in milliseconds.
to_ms() {
  awk '{ v = $1; if (v ~ /us$/) { sub(/us$/, "", v); v /= 1000 } else if (v ~ /ms$/) { sub(/ms$/, "", v) }
         else if (v ~ /s$/) { sub(/s$/, "", v); v *= 1000 } printf "%.2f", v }' <<<"$1"
}
percentile() { to_ms "$(awk -v p="$1%" '$1 == p { print $2 }' "$2")"; }

# One measurement of the quiet key, named $1; the other key runs meanwhile when $2 is
# "flood" (32 connections, no pause) or "neighbour" (one connection at its limit).
measure() {
  local name=$1 flood=$2 flood_pid=
  if [[ $flood != none ]]; then
    local connections=32
    [[ $flood == neighbour ]] && connections=1
    wrk -t1 -c"$connections" -d"$((SECONDS_EACH + 4))s" -s "$WORK/$flood.lua" "http://127.0.0.1:$PORT$ROUTE" \
      >"$WORK/$name.flood.txt" 2>&1 &
    flood_pid=$!
    sleep 2
  fi
  wrk -t1 -c1 -d"${SECONDS_EACH}s" --latency -s "$WORK/quiet.lua" "http://127.0.0.1:$PORT$ROUTE" \
    >"$WORK/$name.txt" 2>&1
  [[ -n $flood_pid ]] && wait "$flood_pid"
  local non2xx
  non2xx=$(awk '/Non-2xx/ { print $NF }' "$WORK/$name.txt")
  if [[ -n $non2xx ]]; then
    echo "the quiet key was refused $non2xx times in '$name'; its measurement is void" >&2
    exit 1
  fi
  p50[$name]=$(percentile 50 "$WORK/$name.txt")
  p99[$name]=$(percentile 99 "$WORK/$name.txt")
  requests[$name]=$(awk '/requests in/ { print $1 }' "$WORK/$name.txt")
  if [[ $flood != none ]]; then
    flood_rps[$name]=$(awk '/Requests\/sec/ { printf "%d", $2 }' "$WORK/$name.flood.txt")
    flood_refused[$name]=$(awk '/Non-2xx/ { print $NF }' "$WORK/$name.flood.txt")
  fi
  echo "== $name: quiet key p50 ${p50[$name]} ms, p99 ${p99[$name]} ms over ${requests[$name]} requests"
}

declare -A p50 p99 requests flood_rps flood_refused
start_voicemon "$WORK/default-limits.toml"
measure alone none
measure neighbour neighbour
measure flood flood
stop_server
start_voicemon "$WORK/no-hold.toml"
measure no-hold flood
stop_server
start_voicemon "$WORK/no-limits.toml"
measure unlimited flood
stop_server

echo
echo "machine: $(nproc) CPUs, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo); $(uptime | sed 's/.*load/load/')"
printf '%-10s %10s %10s %12s %22s %16s\n' run "p50 (ms)" "p99 (ms)" "p99 / alone" "other key (req/s)" "other key refused"
for name in alone neighbour flood no-hold unlimited; do
  ratio=$(awk -v a="${p99[$name]}" -v b="${p99[alone]}" 'BEGIN { printf "%.2f", a / b }')
  printf '%-10s %10s %10s %12s %22s %16s\n' "$name" "${p50[$name]}" "${p99[$name]}" "$ratio" \
    "${flood_rps[$name]:--}" "${flood_refused[$name]:--}"
done
