#!/usr/bin/env bash
# Measures alert detection: from the moment a condition becomes true (a worker reports
# 90 % memory) to the moment the Slack stand-in receives the message, with the default
# alerting settings (evaluation every 10 s, group wait 10 s). For BENCHMARKS.md.
#
#   cargo build --release --bin voicemon && scripts/alert-latency.sh [runs]
set -euo pipefail
runs=${1:-5}
bin=$(realpath "${VOICEMON_BIN:-target/release/voicemon}")
work=$(mktemp -d)
touch "$work/arrivals"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

# A Slack stand-in that writes the arrival time of each message.
python3 - "$work/arrivals" <<'PY' &
import http.server, sys, time
out = sys.argv[1]
class Slack(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get('content-length', 0)))
        with open(out, 'a') as f:
            f.write(f"{time.time()}\n")
        self.send_response(200); self.end_headers(); self.wfile.write(b'ok')
    def log_message(self, *args): pass
http.server.HTTPServer(('127.0.0.1', 3677), Slack).serve_forever()
PY
sleep 0.5
(cd "$work" && SLACK_WEBHOOK_URL=http://127.0.0.1:3677/hook exec "$bin" serve --port 3678 --data-dir "$work/data" \
  > "$work/server.log" 2>&1) &
for _ in $(seq 1 50); do curl -sf localhost:3678/healthz > /dev/null && break; sleep 0.1; done

for run in $(seq 1 "$runs"); do
  before=$(wc -l < "$work/arrivals")
  start=$(python3 -c 'import time; print(time.time())')
  stamp=$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)
  curl -sf -XPOST localhost:3678/v1/events -H 'content-type: application/json' -d "{\"id\":\"hb-$run-$start\",\"type\":\"worker.heartbeat\",\"timestamp\":\"$stamp\",\"tenant_id\":\"bench-$run\",\"worker_id\":\"w-$run\",\"memory_used_bytes\":900,\"memory_limit_bytes\":1000,\"cpu_percent\":10,\"active_calls\":1}" > /dev/null
  for _ in $(seq 1 600); do
    [ "$(wc -l < "$work/arrivals")" -gt "$before" ] && break
    sleep 0.1
  done
  arrived=$(tail -n 1 "$work/arrivals")
  python3 -c "print(f'run $run: condition true → Slack message in {${arrived} - ${start}:.1f} s')"
  sleep 2
done
