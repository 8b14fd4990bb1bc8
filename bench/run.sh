#!/usr/bin/env bash
# Side-by-side benchmark of tollgate against the real OPA, on this machine and the same inputs:
# per-decision cost, HTTPS throughput and latency, cold start, RSS, and bulk evaluation; then
# against Gatekeeper v3.23.0's own webhook (and OPA again) on a private cluster
# (bench/gatekeeper-cluster.sh), and the CLI tools against gator and opa. Prints the tables and
# rewrites the two generated sections of BENCHMARKS.md (see there for what is measured).
#
#   BENCH_ROUNDS          rounds per measurement, sides alternating; medians reported (default 3)
#   BENCH_SECONDS         duration of each measured HTTPS load run (default 10)
#   BENCH_WARMUP_SECONDS  unmeasured load before each run (default 2)
#   BENCH_CONCURRENCY     connections of the load tool (default 4)
#   BENCH_PODS            Pods in the bulk file (default 20000)
#   BENCH_LIBRARY_PODS    Pods for the bulk-derived per-decision cost of bench/library (default 5000)
#   BENCH_COLD_STARTS     starts per server per round for the cold start (default 5)
#   BENCH_SERVER_CPU      core for the servers and in-process benchmarks (default 1)
#   BENCH_LOAD_CPU        core for the load tool and the probing script (default 0)
#   BENCH_QUICK=1         smoke test: 1 round, 2 s runs, 2,000 Pods; BENCHMARKS.md left alone
#   BENCH_ONLY=bulk       only the bulk part (no servers, no load tool, no divan); printed, and
#                         BENCHMARKS.md left alone
#   BENCH_ONLY=gatekeeper only the Gatekeeper part (webhooks on the private cluster, CLI tools; no
#                         divan); printed, and only the Gatekeeper section of BENCHMARKS.md rewritten
#   BENCH_WRITE=0         do not rewrite BENCHMARKS.md (BENCH_OUTPUT: another file to rewrite)
#   BENCH_KEEP_WORK=1     keep the temporary directory with inputs, outputs and server logs
#   TOLLGATE_BIN          tollgate binary to measure (default: built here by image/build.sh)
#   TOLLGATE_DECISION_BENCH  divan bench binary (default: built here with cargo bench --no-run)
# Needs: cargo, go (to install OPA, gator and Gatekeeper), python3, openssl, file, taskset (util-linux),
# unshare and ip (for the private network namespace; without them the cluster uses the host's
# loopback), and two CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "bench: error: $*" >&2; exit 1; }
for cmd in cargo python3 openssl taskset git; do
  command -v "$cmd" >/dev/null || die "$cmd is required but not on PATH"
done
[ "$(nproc)" -ge 2 ] || die "needs at least two usable CPU cores (server and load tool each get one); nproc says $(nproc)"

only=${BENCH_ONLY:-}
case "$only" in
  "" | bulk | gatekeeper) ;;
  *) die "BENCH_ONLY=$only: only 'bulk' or 'gatekeeper' can run alone" ;;
esac

echo "bench: installing the pinned tools (tests/tools/install.sh, bench/install-oha.sh)" >&2
tools_bin=$(bash tests/tools/install.sh | tail -n 1)
export OPA_BIN="$tools_bin/opa"
[ -x "$OPA_BIN" ] || die "opa not found at $OPA_BIN after tests/tools/install.sh"
export GATOR_BIN="$tools_bin/gator" GATEKEEPER_BIN="$tools_bin/gatekeeper"
[ -x "$GATOR_BIN" ] && [ -x "$GATEKEEPER_BIN" ] ||
  die "gator or gatekeeper not found in $tools_bin after tests/tools/install.sh"
if [ "$only" != bulk ]; then
  oha_bin=$(bash bench/install-oha.sh | tail -n 1)
  export OHA_BIN="$oha_bin/oha"
  [ -x "$OHA_BIN" ] || die "oha not found at $OHA_BIN after bench/install-oha.sh"
fi

# The binary measured is the one the image ships (image/build.sh: static, stripped, fixed
# address), not a host build: how it is linked moves its cold start and RSS by milliseconds
# and megabytes.
if [ -z "${TOLLGATE_BIN:-}" ]; then
  echo "bench: image/build.sh (the release binary the container image carries)" >&2
  image_ref=$(bash image/build.sh | tail -n 1) || die "building tollgate with image/build.sh failed"
  image_out=${image_ref#oci:}
  TOLLGATE_BIN="${image_out%%/oci:*}/tollgate"
fi
[ -x "$TOLLGATE_BIN" ] || die "TOLLGATE_BIN=$TOLLGATE_BIN is not an executable"
TOLLGATE_BIN=$(realpath "$TOLLGATE_BIN")
export TOLLGATE_BIN

# The webhooks run beside a private cluster (etcd, kube-apiserver, Gatekeeper's CRDs); the bulk
# part needs none.
if [ "$only" = bulk ]; then
  exec python3 bench/bench.py
fi
if [ "$only" = gatekeeper ]; then
  exec bash bench/gatekeeper-cluster.sh python3 bench/bench.py
fi
# The divan bench is run as its binary (not through cargo bench) so that it can be pinned to the
# server core like everything else measured; cargo reports where it built it.
if [ -z "${TOLLGATE_DECISION_BENCH:-}" ]; then
  echo "bench: cargo bench -p tollgate-engine --bench decision --no-run" >&2
  build_json=$(cargo bench -p tollgate-engine --bench decision --no-run --message-format=json-render-diagnostics) \
    || die "building the divan bench engine/benches/decision.rs failed"
  TOLLGATE_DECISION_BENCH=$(printf '%s\n' "$build_json" | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "decision" and m.get("executable"):
        print(m["executable"])')
fi
[ -x "${TOLLGATE_DECISION_BENCH:-}" ] || die "no divan bench binary (TOLLGATE_DECISION_BENCH=${TOLLGATE_DECISION_BENCH:-})"
TOLLGATE_DECISION_BENCH=$(realpath "$TOLLGATE_DECISION_BENCH")
export TOLLGATE_DECISION_BENCH

exec bash bench/gatekeeper-cluster.sh python3 bench/bench.py
