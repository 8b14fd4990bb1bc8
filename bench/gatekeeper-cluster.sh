#!/usr/bin/env bash
# Runs a command (bench/run.sh runs bench/bench.py) beside a private cluster for the Gatekeeper
# comparison: etcd + kube-apiserver with Gatekeeper v3.23.0's CRDs in a new network namespace
# (tests/gatekeeper-audit/cluster.sh, shared with the audit comparison and its oracle test), the
# pack's templates and ExpansionTemplates and the reviewed Namespaces applied. The constraints
# are left to bench.py: their CRDs exist only once Gatekeeper's generator (or tollgate
# --cluster) has made them. etcd and kube-apiserver are pinned to BENCH_LOAD_CPU, off the core
# the servers are measured on.
#
#   bash bench/gatekeeper-cluster.sh CMD...   (TOLLGATE_BIN must be set; bench/run.sh does)
#
# Exports to CMD: BENCH_KUBECONFIG (admin kubeconfig), BENCH_GK_CERT_DIR (tls.crt, tls.key of a
# server certificate for 127.0.0.1 from the cluster's CA, handed to both webhooks),
# BENCH_CLUSTER_WORK (the work directory; its logs/ holds etcd's and kube-apiserver's logs).
#
# Not `set -e`: cluster.sh's helpers (stop, wait_for, the EXIT trap that stops etcd and the API
# server) test their commands' status themselves, and an early exit inside the trap would leave
# etcd running.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
[ -n "${TOLLGATE_BIN:-}" ] || { echo "bench: error: TOLLGATE_BIN is not set (run through bench/run.sh)" >&2; exit 1; }
[ "$#" -gt 0 ] || { echo "bench: error: usage: bench/gatekeeper-cluster.sh CMD..." >&2; exit 1; }
STEP_TIMEOUT=${BENCH_GK_STEP_TIMEOUT:-180}
GKA_SCRIPT="$ROOT/bench/gatekeeper-cluster.sh"
source "$ROOT/tests/gatekeeper-audit/cluster.sh"

load_cpu=${BENCH_LOAD_CPU:-0}
for name in etcd kube-apiserver; do
  taskset -a -p -c "$load_cpu" "${PIDS[$name]}" >/dev/null || fatal "pin $name to CPU $load_cpu"
done

# The reviewed Namespace (Gatekeeper answers 500 for a namespaced request whose Namespace does
# not exist) and Gatekeeper's own.
printf 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n---\n' logistics gatekeeper-system \
  >"$W/objects/namespaces.yaml"
kc apply -f "$W/objects/namespaces.yaml" || { cat "$W/out"; fatal "create the Namespaces"; }
templates=("$ROOT"/constraints/*/template.yaml)
kc apply "${templates[@]/#/-f}" || { cat "$W/out"; fatal "apply the pack's templates"; }
# Every template ships the same ExpansionTemplate (Deployments as Pods): applied once.
expansions=("$ROOT"/constraints/*/samples/tracker/expansion.yaml)
kc apply -f "${expansions[0]}" || { cat "$W/out"; fatal "apply the pack's ExpansionTemplate"; }
echo "applied ${#templates[@]} templates, the ExpansionTemplate and the Namespaces"

export BENCH_KUBECONFIG="$KUBECONFIG" BENCH_GK_CERT_DIR="$W/gk-certs" BENCH_CLUSTER_WORK="$W"
"$@"
status=$?
[ "$status" = 0 ] || show_logs
exit "$status"
