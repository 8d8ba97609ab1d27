#!/usr/bin/env bash
# The published API contract, checked against the real binary (issue 14): builds voicemon
# (debug), starts it on the embedded store in a temporary directory with an admin key,
# waits for /readyz, and runs schemathesis with every check on against GET /openapi.json.
# Fails on any failure: a 5xx, an answer that breaks the schema, a status the document
# does not list, an ignored key...
#
#   scripts/schemathesis.sh            # .ci/run calls it after cargo test
#
# schemathesis lives in a virtualenv outside the clone, made on first use and reused:
# ${XDG_CACHE_HOME:-$HOME/.cache}/voicemon-ci/venv-schemathesis-<version>.
# Environment: SCHEMATHESIS_MAX_EXAMPLES (per operation and phase, default 50),
# VOICEMON_SCHEMATHESIS_PORT (first port tried, 3481; the next free one is used),
# VOICEMON_BIN (default target/debug/voicemon, built here when it is the default).
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
MAX_EXAMPLES=${SCHEMATHESIS_MAX_EXAMPLES:-50}
VENV="${XDG_CACHE_HOME:-$HOME/.cache}/voicemon-ci/venv-schemathesis-$SCHEMATHESIS_VERSION"

if [ ! -x "$VENV/bin/schemathesis" ]; then
  echo "== installing schemathesis $SCHEMATHESIS_VERSION in $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

if [ -z "${VOICEMON_BIN:-}" ]; then
  echo "== cargo build -p voicemon"
  cargo build -p voicemon
fi
VOICEMON=$(realpath -m "${VOICEMON_BIN:-target/debug/voicemon}")

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
PORT=${VOICEMON_SCHEMATHESIS_PORT:-3481}
while ! port_free "$PORT"; do PORT=$((PORT + 1)); done

WORK=$(mktemp -d)
SERVER_PID=
stop_server() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID"
    wait "$SERVER_PID" || true
  fi
  rm -rf "$WORK"
}
trap stop_server EXIT

# With keys, not open mode: schemathesis sends the admin key, and its ignored_auth check
# replays requests without it and with a made-up one, expecting 401.
KEY=$("$VOICEMON" keys create --data-dir "$WORK/data" --role admin --name schemathesis 2>/dev/null | tail -1)
case "$KEY" in
  vm_*) ;;
  *) echo "FATAL: could not create an admin key" >&2; exit 1 ;;
esac

echo "== voicemon serve on 127.0.0.1:$PORT (log: $WORK/voicemon.log)"
# schemathesis sends far more requests a second than a dashboard: raise the per-key rate
# limits, or most of its requests would be 429s (tests/api/limits.rs covers the limits).
cat >"$WORK/voicemon.toml" <<'TOML'
[limits]
query_requests_per_second = 1000000
query_burst = 1000000
TOML
"$VOICEMON" serve --config "$WORK/voicemon.toml" --data-dir "$WORK/data" --bind 127.0.0.1 --port "$PORT" \
  --log-format json >"$WORK/voicemon.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/voicemon.log" >&2; echo "FATAL: voicemon exited" >&2; exit 1; }
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null || { echo "FATAL: voicemon is not ready" >&2; exit 1; }

echo "== schemathesis run --checks all (max $MAX_EXAMPLES examples per operation)"
status=0
# From the temporary directory: schemathesis keeps a cache of crashes in its working directory.
# One worker: two threads of hypothesis compiling strategies at once have crashed CPython
# 3.11 here ("AST constructor recursion depth mismatch"); the run takes seconds anyway.
CONFIG=$(realpath scripts/schemathesis.toml)
(cd "$WORK" && "$VENV/bin/schemathesis" --config-file "$CONFIG" run "http://127.0.0.1:$PORT/openapi.json" \
  --checks all \
  --header "Authorization: Bearer $KEY" \
  --max-examples "$MAX_EXAMPLES" \
  --seed "${SCHEMATHESIS_SEED:-14}" \
  --workers 1) || status=$?

if grep -q '"level":"ERROR"\|panicked' "$WORK/voicemon.log"; then
  echo "== voicemon logged errors:" >&2
  grep '"level":"ERROR"\|panicked' "$WORK/voicemon.log" | head -20 >&2
  status=1
fi
exit "$status"
