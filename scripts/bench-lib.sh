# Shell functions the benchmark scripts share; sourced, not run.

# Sets $VOICEMON and $LOADGEN (VOICEMON_BIN, LOADGEN_BIN, default target/release/…) and
# stops the script when either is not built.
bench_binaries() {
  VOICEMON=$(realpath -m "${VOICEMON_BIN:-target/release/voicemon}")
  LOADGEN=$(realpath -m "${LOADGEN_BIN:-target/release/examples/loadgen}")
  local bin
  for bin in "$VOICEMON" "$LOADGEN"; do
    [[ -x $bin ]] || { echo "$bin is missing: cargo build --release --bin voicemon --example loadgen" >&2; exit 1; }
  done
}

# The database URL $DB with its search path set to schema $1.
in_schema() {
  local sep='?'
  [[ $DB == *\?* ]] && sep='&'
  echo "$DB${sep}options=-csearch_path%3D$1"
}

# The first port from $1 on that nothing listens on (loopback).
free_port() {
  local port=$1
  while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
  echo "$port"
}

# Stops the voicemon that start_voicemon started, if any.
stop_server() {
  if [[ -n ${server:-} ]]; then
    kill -TERM "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    server=
  fi
}

# Starts $VOICEMON serve (release) as $WORK/$1 on a free port from
# ${VOICEMON_BENCH_PORT:-$2}, with the extra environment given after the name and port;
# sets $server (its pid) and $url, and waits until it is ready. The load comes from one
# open-mode caller: its rate limits are raised out of the way (README, "Rate limits"),
# read as ./voicemon.toml unless VOICEMON_CONFIG names another file.
start_voicemon() {
  local name=$1 first_port=$2 port
  shift 2
  port=$(free_port "${VOICEMON_BENCH_PORT:-$first_port}")
  mkdir -p "$WORK/$name"
  printf '[limits]\ningest_events_per_second = 1000000\ningest_burst = 10000000\nquery_requests_per_second = 1000\nquery_burst = 1000\n' \
    >"$WORK/$name/voicemon.toml"
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
