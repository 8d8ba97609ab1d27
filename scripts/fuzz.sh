#!/usr/bin/env bash
# Fuzzing (README.md, "Fuzzing"): runs every cargo-fuzz target of fuzz/ for a bounded
# time, each seeded from the repository's own examples (examples/events, the JSON and
# query strings of README.md and docs/, pricing/default.toml, the voicemon.toml blocks of
# the docs), then prints one line per target: executions, coverage and the result.
#
#   scripts/fuzz.sh [seconds-per-target=60] [target...]
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`); the stable toolchain builds the
# instrumented targets with RUSTC_BOOTSTRAP=1, which this script sets. Builds use overflow
# checks and debug assertions (`-a`), so an arithmetic overflow is a crash too. Sanitizer:
# FUZZ_SANITIZER (default `none`: the code under test is safe Rust, and AddressSanitizer
# halves the executions on two cores; `address` to use it). The corpus grows in
# fuzz/corpus/<target> across runs; a crash leaves its input in fuzz/artifacts/<target>/
# and makes the script exit 1 after the table. Logs: fuzz/artifacts/<target>.log.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_TARGET=${1:-60}
shift || true
SANITIZER=${FUZZ_SANITIZER:-none}
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "cargo-fuzz is missing: cargo install cargo-fuzz --locked" >&2
  exit 1
fi

targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  mapfile -t targets < <(cd fuzz && cargo fuzz list)
fi

# Seeds: standard input written into the target's corpus, named by its content (so a
# rerun adds nothing). Through files, not variables: seeds may hold NUL bytes.
add_seed() {
  local dir=fuzz/corpus/$1 tmp name
  mkdir -p "$dir"
  tmp=$(mktemp)
  cat >"$tmp"
  name=seed-$(sha1sum <"$tmp" | cut -c1-16)
  mv "$tmp" "$dir/$name"
}

# A bulk-string reply of Redis holding $1.
bulk() { printf '$%d\r\n%s\r\n' "${#1}" "$1"; }

# Matches of an extended regex in the README and docs/, one seed each.
seed_matches() {
  local target=$1 pattern=$2 line
  while IFS= read -r line; do
    printf '%s' "$line" | add_seed "$target"
  done < <(grep -ohE "$pattern" README.md docs/*.md | sort -u)
}

# The seeds of one target, from the repository's own examples.
seed() {
  local target=$1 file line
  case $target in
    ingest_body)
      for file in examples/events/*; do
        { printf '\x00'; cat "$file"; } | add_seed "$target"   # NDJSON framing
        { printf '\x01'; cat "$file"; } | add_seed "$target"   # JSON framing
      done
      ;;
    event_validation)
      for file in examples/events/*.json; do add_seed "$target" <"$file"; done
      while IFS= read -r line; do printf '%s' "$line" | add_seed "$target"; done <examples/events/call.ndjson
      ;;
    price_book)
      add_seed "$target" <pricing/default.toml
      ;;
    config_file)
      # Every ```toml block of the README and docs/ (voicemon.toml examples).
      local blocks
      blocks=$(mktemp -d)
      awk -v dir="$blocks" '/^```toml/ { inside = 1; n++; next }
                            /^```/ && inside { inside = 0; next }
                            inside { print > (dir "/" n) }' README.md docs/*.md
      for file in "$blocks"/*; do add_seed "$target" <"$file"; done
      rm -rf "$blocks"
      ;;
    live_subscription)
      seed_matches "$target" '\{"type": ?"(subscribe|auth)"[^}]*\}'
      ;;
    query_params)
      while IFS= read -r line; do
        printf '%s' "${line#*\?}" | add_seed "$target"
      done < <(grep -ohE '/(metrics/[a-z]+|alerts[a-z/]*)\?[^ "`'"'"')]*' README.md docs/*.md | sort -u)
      printf '%s' 'from=2026-11-01T00:00:00Z&to=2026-11-02T00:00:00Z&step=1h' | add_seed "$target"
      ;;
    silence_request)
      printf '%s' '{"matchers":["tenant_id=acme","rule!=worker_down"],"duration":"2h","comment":"maintenance","author":"ops"}' \
        | add_seed "$target"
      printf '%s' '{"matchers":["tenant_id=acme"],"starts_at":"2026-11-27T12:00:00Z","ends_at":"2026-11-27T14:00:00Z","comment":"c","author":"a"}' \
        | add_seed "$target"
      ;;
    derived_journal)
      # An empty journal row, and one holding a call's totals (string table, format 1,
      # then the five maps' lengths and entries as varints).
      printf '\x00\x01\x00\x00\x00\x00\x00' | add_seed "$target"
      printf '\x00\x01\x00\x00\x00\x01\x02\x80\x80\x01\x0a\x02\x00\x00' | add_seed "$target"
      ;;
    latency_sketch)
      # Version 1: zero count, bucket count, then (index delta, count) pairs.
      printf '\x01\x00\x00' | add_seed "$target"
      printf '\x01\x02\x02\xc8\x01\x05\x02\x03' | add_seed "$target"
      ;;
    redis_reply)
      bulk "$(printf '# Stats\r\ntotal_commands_processed:1234\r\nkeyspace_hits:90\r\nkeyspace_misses:10')" | add_seed "$target"
      bulk "$(printf '# Memory\r\nused_memory:1048576\r\nused_memory_human:1.00M')" | add_seed "$target"
      printf '+OK\r\n' | add_seed "$target"
      printf -- '-NOAUTH Authentication required.\r\n' | add_seed "$target"
      printf '%s' 'rediss://watcher:hunter2@cache:6380/0' | add_seed "$target"
      ;;
    *)
      mkdir -p "fuzz/corpus/$target"
      ;;
  esac
}

echo "== building ${#targets[@]} targets (sanitizer $SANITIZER, overflow checks on)"
(cd fuzz && cargo fuzz build -s "$SANITIZER" -a)

mkdir -p fuzz/artifacts
failed=()
rows=()
for target in "${targets[@]}"; do
  seed "$target"
  seeds=$(find "fuzz/corpus/$target" -type f | wc -l)
  log=fuzz/artifacts/$target.log
  echo "== $target: ${SECONDS_PER_TARGET}s from $seeds inputs"
  if (cd fuzz && cargo fuzz run -s "$SANITIZER" -a "$target" -- \
      -max_total_time="$SECONDS_PER_TARGET" -print_final_stats=1 -rss_limit_mb=2048 -timeout=10) >"$log" 2>&1; then
    result=ok
  else
    artifact=$(grep -oE 'fuzz/artifacts/[^ ]+|artifacts/[^ ]+' "$log" | tail -1 || true)
    result="CRASH ${artifact:-see $log}"
    failed+=("$target")
  fi
  execs=$(grep -oE 'stat::number_of_executed_units: [0-9]+' "$log" | awk '{print $2}' | tail -1)
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' "$log" | tail -1)
  rows+=("$(printf '%-18s %12s  %-28s %s' "$target" "${execs:-?}" "${cov:-?}" "$result")")
done

echo
printf '%-18s %12s  %-28s %s\n' target executions "coverage (edges, features, corpus)" result
printf '%s\n' "${rows[@]}"
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "crashed: ${failed[*]} (inputs in fuzz/artifacts/<target>/, logs beside them)" >&2
  exit 1
fi
