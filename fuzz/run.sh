#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time and reports executions and crashes per target.
#
#   FUZZ_SECONDS    seconds per target (default 20, what CI runs; run longer by hand: 600)
#   FUZZ_TARGETS    targets to run (default: all of fuzz/fuzz_targets/)
#   FUZZ_SANITIZER  cargo fuzz --sanitizer (default none: tollgate forbids unsafe code, and
#                   the instrumentation overhead halves the executions; "address" by hand)
#   FUZZ_KEEP_GOING=1  do not stop at the first crash (libFuzzer -fork=1 -ignore_crashes=1 ...):
#                   for long runs by hand while known crashes are still open; the crashing
#                   inputs stay in fuzz/artifacts/<target>/ for triage instead of being copied
#
# Inputs grow in fuzz/work/<target>/ (ignored by git, kept between runs); the committed seeds
# in fuzz/corpus/<target>/ are only read. A crash, timeout or out-of-memory input is copied to
# fuzz/regressions/<target>/ (commit it with the fix: `cargo test` replays it) and the script
# exits 1. Needs cargo-fuzz (tests/tools/install.sh puts the pinned one in the tools cache) and runs libFuzzer's
# nightly flags on stable through RUSTC_BOOTSTRAP=1.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-20}
sanitizer=${FUZZ_SANITIZER:-none}
targets=${FUZZ_TARGETS:-$(cd fuzz/fuzz_targets && ls *.rs | sed 's/\.rs$//' | tr '\n' ' ')}
cache="${TOLLGATE_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/tollgate-tools}"
export PATH="$cache/bin:$PATH"
if ! command -v cargo-fuzz >/dev/null; then
  TOLLGATE_TOOLS="$cache" bash tests/tools/install.sh >/dev/null
fi
export RUSTC_BOOTSTRAP=1
flags=(--sanitizer "$sanitizer" --debug-assertions)
cargo fuzz build "${flags[@]}" >&2

status=0
summary=()
for t in $targets; do
  work=fuzz/work/$t artifacts=fuzz/artifacts/$t log=fuzz/artifacts/$t.log
  mkdir -p "$work" "$artifacts"
  rm -f "$artifacts"/*
  extra=()
  if [ "${FUZZ_KEEP_GOING:-}" = 1 ]; then
    extra=(-fork=1 -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1)
  fi
  set +e
  cargo fuzz run "${flags[@]}" "$t" "$work" "fuzz/corpus/$t" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$artifacts/" "${extra[@]}" >"$log" 2>&1
  rc=$?
  set -e
  # Executions: the final stats line, else (fork mode) the last status line's counter.
  execs=$( (grep -a 'stat::number_of_executed_units:' "$log" || true) | awk '{n+=$2} END {print n+0}')
  if [ "$execs" = 0 ]; then
    execs=$( (grep -aEo '^#[0-9]+' "$log" || true) | tail -n 1 | tr -d '#')
  fi
  cov=$( (grep -aEo 'cov: [0-9]+' "$log" || true) | tail -n 1 | cut -d' ' -f2)
  found=()
  for f in "$artifacts"/*; do
    [ -f "$f" ] || continue
    if [ "${FUZZ_KEEP_GOING:-}" = 1 ]; then
      # Many inputs per bug: leave them for triage (cargo fuzz tmin) instead of committing all.
      found+=("$f")
      continue
    fi
    mkdir -p "fuzz/regressions/$t"
    cp "$f" "fuzz/regressions/$t/"
    found+=("fuzz/regressions/$t/$(basename "$f")")
  done
  line="$t: ${execs} executions in ${seconds}s, coverage ${cov:-?}, ${#found[@]} crashes"
  summary+=("$line")
  echo "$line"
  if [ "${#found[@]}" -gt 0 ] || [ "$rc" -ne 0 ]; then
    status=1
    echo "  libFuzzer exit $rc; log: $log" >&2
    grep -aE -A1 'panicked at|memory allocation|ERROR: libFuzzer' "$log" | head -n 6 | sed 's/^/  /' >&2 || true
    for f in "${found[@]:0:5}"; do echo "  reproducer: $f" >&2; done
    if [ "${#found[@]}" -gt 5 ]; then echo "  ... and $((${#found[@]} - 5)) more in $artifacts/" >&2; fi
  fi
done
echo "fuzz summary (${seconds}s per target, sanitizer $sanitizer):"
printf '  %s\n' "${summary[@]}"
exit $status
