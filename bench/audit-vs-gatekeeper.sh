#!/usr/bin/env bash
# By hand: one audit pass over 10,000 Pods by Gatekeeper v3.23.0's own manager and by
# `tollgate serve --cluster`, on the same cluster (etcd + kube-apiserver in a new network
# namespace, set up by tests/gatekeeper-audit/cluster.sh), one after the other. Prints a markdown
# table: the pass's wall time (as each reports it, and from its start until every constraint's
# status shows it), the CPU seconds the process used during the pass, and its memory (VmRSS before
# and at most during the pass, VmHWM at its end), sampled from /proc/<pid> every 0.2 s.
#
#   BENCH_AUDIT_PODS      Pods (default 10000), in 10 namespaces; each violates both constraints
#   BENCH_AUDIT_INTERVAL  --audit-interval of both, seconds (default 30); the first pass that starts
#                         after both constraints are enforced is measured
#   BENCH_AUDIT_ADMISSION_RATE     requests/s of the admission load measured with the audit off
#                                  and running (default 200; 0 skips that part)
#   BENCH_AUDIT_ADMISSION_SECONDS  each measured admission load (default 20)
#   TOLLGATE_BIN          tollgate binary (default: built here with cargo build --release)
#   GKA_KEEP=1            keep the work directory (logs, samples)
#
# Both run with their defaults otherwise (--constraint-violations-limit 20, --audit-chunk-size 500,
# every listable kind), as the admin (system:masters), the API server on the same machine.
# Gatekeeper's own pass duration ("auditing is complete") ends before its status writes, which run
# in the background; tollgate's ("audit pass done") includes them. The "to statuses" row measures
# both the same way.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
HERE="$ROOT/tests/gatekeeper-audit"
PODS=${BENCH_AUDIT_PODS:-10000}
NAMESPACES=10
INTERVAL=${BENCH_AUDIT_INTERVAL:-30}
ADMISSION_RATE=${BENCH_AUDIT_ADMISSION_RATE:-200}
ADMISSION_SECONDS=${BENCH_AUDIT_ADMISSION_SECONDS:-20}
STEP_TIMEOUT=900
GK_NS=gatekeeper-system
GKA_SCRIPT="$ROOT/bench/audit-vs-gatekeeper.sh"
GKA_RELEASE=1
if [ -z "${GKA_IN_NETNS:-}" ] && [ "$ADMISSION_RATE" -gt 0 ]; then
  # On the host: nothing can be downloaded inside the namespace.
  OHA_BIN=$(bash "$ROOT/bench/install-oha.sh" | tail -n 1)/oha || { echo "FAIL: bench/install-oha.sh"; exit 1; }
  export OHA_BIN
fi
source "$HERE/cluster.sh"
mkdir -p "$W/samples"

# === objects: namespaces, Pods, templates ===

for ns in "$GK_NS" $(seq -f 'bench-%g' 0 $((NAMESPACES - 1))); do
  printf 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n---\n' "$ns"
done >"$W/objects/namespaces.yaml"
kc apply -f "$W/objects/namespaces.yaml" || { cat "$W/out"; fatal "create the namespaces"; }
# POSTed straight to the API server over 8 kept-alive connections (kubectl create takes minutes).
started=$SECONDS
python3 - "$PODS" "$NAMESPACES" "127.0.0.1" "$API_PORT" "$C" <<'EOF' || fatal "create the Pods"
import http.client, json, ssl, sys, threading
pods, nss, host, port, c = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]
ctx = ssl.create_default_context(cafile=c + "/kube-ca.crt")
ctx.load_cert_chain(c + "/admin.crt", c + "/admin.key")
errors = []
def worker(k):
    conn = http.client.HTTPSConnection(host, port, context=ctx)
    for j in range(k, pods, 8):
        ns = "bench-%d" % (j % nss)
        body = json.dumps({"apiVersion": "v1", "kind": "Pod",
                           "metadata": {"name": "pod-%05d" % j, "namespace": ns, "labels": {"app": "bench"}},
                           "spec": {"containers": [{"name": "app", "image": "registry.example.com/app:1.0"}]}})
        conn.request("POST", "/api/v1/namespaces/%s/pods" % ns, body, {"Content-Type": "application/json"})
        r = conn.getresponse()
        r.read()
        if r.status != 201:
            errors.append("%s: %d" % (j, r.status))
threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
[t.start() for t in threads]
[t.join() for t in threads]
if errors:
    sys.exit("%d Pods not created, e.g. %s" % (len(errors), errors[:3]))
EOF
have=$(kubectl get pods -A --no-headers 2>/dev/null | wc -l)
[ "$have" = "$PODS" ] || fatal "$have Pods instead of $PODS"
echo "$PODS Pods created in $((SECONDS - started)) s"
BATS="$GK_MOD/test/bats/tests/templates"
kc apply -f "$BATS/k8srequiredlabels_template.yaml" -f "$BATS/k8scontainterlimits_template.yaml" ||
  { cat "$W/out"; fatal "apply the templates"; }
cat >"$W/objects/constraints.yaml" <<'EOF'
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: K8sRequiredLabels
metadata:
  name: pods-need-owner
spec:
  match:
    kinds: [{apiGroups: [""], kinds: ["Pod"]}]
  parameters:
    labels: ["owner"]
---
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: K8sContainerLimits
metadata:
  name: pods-need-limits
spec:
  match:
    kinds: [{apiGroups: [""], kinds: ["Pod"]}]
  parameters:
    cpu: "200m"
    memory: "1Gi"
EOF

# === measuring ===

# Samples /proc/<pid> every 0.2 s until it exits: "epoch cpu_seconds vmrss_kb vmhwm_kb".
sample() { # pid file
  python3 - "$1" "$2" <<'EOF' &
import os, sys, time
pid, out = sys.argv[1], open(sys.argv[2], "w", buffering=1)
tick = os.sysconf("SC_CLK_TCK")
while True:
    try:
        stat = open("/proc/%s/stat" % pid).read()
        status = open("/proc/%s/status" % pid).read()
    except OSError:
        break
    f = stat[stat.rindex(")") + 2:].split()
    cpu = (int(f[11]) + int(f[12])) / tick
    mem = {l.split(":")[0]: l.split()[1] for l in status.splitlines() if l.startswith(("VmRSS", "VmHWM"))}
    out.write("%.3f %.2f %s %s\n" % (time.time(), cpu, mem.get("VmRSS", 0), mem.get("VmHWM", 0)))
    time.sleep(0.2)
EOF
}
# In the background: polls both constraints on the API server every 0.1 s until their status
# shows a pass that started at or after $1 (the second the measured pass was awaited from) with
# $PODS violations each, then writes the time (epoch) into $2.
watch_statuses() { # since file
  python3 - "$1" "$2" "$PODS" "https://127.0.0.1:$API_PORT" "$C" <<'EOF' &
import json, ssl, sys, time, urllib.request
since, out, pods, api, c = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
ctx = ssl.create_default_context(cafile=c + "/kube-ca.crt")
ctx.load_cert_chain(c + "/admin.crt", c + "/admin.key")
urls = [api + "/apis/constraints.gatekeeper.sh/v1beta1/" + p for p in
        ("k8srequiredlabels/pods-need-owner", "k8scontainerlimits/pods-need-limits")]
deadline = time.time() + 900
while time.time() < deadline:
    ok = True
    for u in urls:
        try:
            s = json.load(urllib.request.urlopen(u, context=ctx, timeout=5)).get("status") or {}
        except Exception:
            ok = False
            break
        if s.get("auditTimestamp", "") < since or s.get("totalViolations") != pods:
            ok = False
            break
    if ok:
        open(out, "w").write("%.3f\n" % time.time())
        break
    time.sleep(0.1)
EOF
}
# The measured pass: start and end (epoch seconds) from the log, and the pass's own duration.
pass_from_log() { # who log after-epoch
  python3 - "$@" <<'EOF'
import json, re, sys
from datetime import datetime, timezone
who, log, after = sys.argv[1], sys.argv[2], float(sys.argv[3])
def go_duration(s):
    units = {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
    return sum(float(n) * units[u] for n, u in re.findall(r"([0-9.]+)(h|ms|us|µs|ns|m|s)", s))
def epoch(rfc3339):
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()
starts = {}
for line in open(log):
    try:
        e = json.loads(line)
    except ValueError:
        continue
    if who == "gatekeeper":
        if e.get("msg") == "auditing constraints and violations":
            starts[e.get("audit_id")] = e["ts"]
        elif e.get("msg") == "auditing is complete" and starts.get(e.get("audit_id"), 0) > after:
            print(starts[e["audit_id"]], e["ts"], go_duration(e["duration"]), "-", e["audit_id"])
            break
    elif e.get("fields", {}).get("message") == "audit pass done":
        end = epoch(e["timestamp"])
        took = e["fields"]["elapsed_ms"] / 1000
        if end - took > after:
            print(end - took, end, took, e["fields"]["objects"],
                  datetime.fromtimestamp(end - took, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
            break
EOF
}
# One column of the table from the samples: cpu during [start, end], RSS before, max RSS in the
# window, HWM at the end, process CPU at the end.
window() { # samples start end
  python3 - "$@" <<'EOF'
import sys
rows = [tuple(map(float, l.split())) for l in open(sys.argv[1]) if len(l.split()) == 4]
start, end = float(sys.argv[2]), float(sys.argv[3])
before = [r for r in rows if r[0] <= start] or rows[:1]
upto = [r for r in rows if r[0] <= end + 0.25] or rows
during = [r for r in rows if start <= r[0] <= end + 0.25] or upto[-1:]
b, e = before[-1], upto[-1]
mib = lambda kb: kb / 1024
print("%.1f %.0f %.0f %.0f %.1f" % (e[1] - b[1], mib(b[2]), mib(max(r[2] for r in during)), mib(e[3]), e[1]))
EOF
}
pass_done() { [ -n "$(pass_from_log "$1" "$W/logs/$1.log" "$2")" ]; }
declare -A RESULT=()
measure() { # who: after the process is started and ready
  local who=$1 after since line start end own objects id cpu rss_before rss_max hwm cpu_total written
  after=$(date +%s.%N)
  since=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  watch_statuses "$since" "$W/samples/$who-written"
  WATCH=$who wait_for "a $who audit pass after $since" pass_done "$who" "$after" ||
    fatal "no $who audit pass finished"
  read -r start end own objects id <<<"$(pass_from_log "$who" "$W/logs/$who.log" "$after")"
  WATCH=$who wait_for "$who's statuses from the pass at $id" test -s "$W/samples/$who-written" ||
    fatal "$who did not write $PODS violations on both constraints"
  written=$(cat "$W/samples/$who-written")
  sleep 1
  read -r cpu rss_before rss_max hwm cpu_total <<<"$(window "$W/samples/$who" "$start" "$end")"
  own=$(awk -v x="$own" 'BEGIN { printf "%.1f", x }')
  RESULT[$who]="$own|$(awk -v a="$start" -v b="$written" 'BEGIN { printf "%.1f", b - a }')|$cpu|$rss_before|$rss_max|$hwm|$cpu_total|$objects"
  echo "$who: pass at $id took $own s (own measure), CPU $cpu s, RSS $rss_before -> max $rss_max MiB, HWM $hwm MiB"
}

# === Gatekeeper ===

GK_ARGS=(--operation=generate --operation=audit --operation=status
  --audit-interval="$INTERVAL" --log-level=INFO
  --debug-use-fake-pod --disable-cert-rotation
  --host=127.0.0.1 --port="$(free_port)" --cert-dir="$W/gk-certs"
  --health-addr="127.0.0.1:$(free_port)" --prometheus-port="$(free_port)" --metrics-addr=0
  --api-cache-dir="$W/gk-cache" --shutdown-delay=1 --kubeconfig="$KUBECONFIG")
echo "gatekeeper ${GK_ARGS[*]}"
start gatekeeper env POD_NAMESPACE="$GK_NS" POD_NAME=gatekeeper-audit-0 gatekeeper "${GK_ARGS[@]}"
sample "${PIDS[gatekeeper]}" "$W/samples/gatekeeper"
for kind in k8srequiredlabels k8scontainerlimits; do
  WATCH=gatekeeper wait_for "CRD $kind" kubectl wait --for condition=Established --timeout 5s "crd/$kind.constraints.gatekeeper.sh" ||
    fatal "Gatekeeper did not create the CRD $kind"
done
kc apply -f "$W/objects/constraints.yaml" || { cat "$W/out"; fatal "apply the constraints"; }
enforced() {
  kubectl get constraints -o json | python3 -c '
import json, sys
items = json.load(sys.stdin)["items"]
sys.exit(0 if len(items) == 2 and all(any(p.get("enforced") for p in (c.get("status") or {}).get("byPod", [])) for c in items) else 1)'
}
WATCH=gatekeeper wait_for "both constraints enforced by Gatekeeper" enforced || fatal "Gatekeeper did not enforce the constraints"
measure gatekeeper
stop gatekeeper
for c in k8srequiredlabels/pods-need-owner k8scontainerlimits/pods-need-limits; do
  kc patch "$c" --subresource=status --type=merge -p '{"status":null}' || { cat "$W/out"; fatal "clear $c"; }
done
kc delete constraintpodstatuses.status.gatekeeper.sh,constrainttemplatepodstatuses.status.gatekeeper.sh -n "$GK_NS" --all

# === tollgate ===

TG_PORT=$(free_port)
TG_PROBE=$(free_port)
start_tollgate() { # audit-interval
  local args=(serve --cluster --audit-interval "$1" --policies "$W/no-policies"
    --listen "127.0.0.1:$TG_PORT" --probe-listen "127.0.0.1:$TG_PROBE"
    --dev-ca-file "$W/tollgate-dev-ca.pem" --log-format json)
  echo "tollgate ${args[*]}"
  start tollgate env POD_NAMESPACE="$GK_NS" POD_NAME=tollgate-audit-0 "$TOLLGATE_BIN" "${args[@]}"
  WATCH=tollgate wait_for "tollgate /readyz" curl -sf "http://127.0.0.1:$TG_PROBE/readyz" || fatal "tollgate did not become ready"
}
start_tollgate "${INTERVAL}s"
sample "${PIDS[tollgate]}" "$W/samples/tollgate"
measure tollgate
stop tollgate

# === admission while tollgate audits ===
# The same tollgate with the audit off, then with passes back to back (--audit-interval 1s): a
# fixed-rate admission load (oha, 2 connections) of a Pod that violates both constraints, its
# latency percentiles in each case. Everything shares the machine's cores, the API server
# included, which the audit's lists keep busy.
declare -A ADMISSION=()
if [ "$ADMISSION_RATE" -gt 0 ]; then
  oha_bin=${OHA_BIN:-}
  [ -x "$oha_bin" ] || fatal "oha not installed by bench/install-oha.sh (OHA_BIN='$oha_bin')"
  python3 - >"$W/objects/review.json" <<'EOF'
import json
pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "admitted", "namespace": "bench-0"},
       "spec": {"containers": [{"name": "app", "image": "registry.example.com/app:1.0"}]}}
print(json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
    "uid": "bench", "kind": {"group": "", "version": "v1", "kind": "Pod"},
    "resource": {"group": "", "version": "v1", "resource": "pods"}, "namespace": "bench-0",
    "operation": "CREATE", "userInfo": {"username": "bench"}, "object": pod}}))
EOF
  load() { # seconds: prints "p50 p99 p999 rps" in ms
    "$oha_bin" -z "$1s" -c 2 -q "$ADMISSION_RATE" --latency-correction --no-tui --insecure \
      --output-format json -m POST -D "$W/objects/review.json" -T application/json \
      "https://127.0.0.1:$TG_PORT/v1/admit" | python3 -c '
import json, sys
d = json.load(sys.stdin)
codes = d.get("statusCodeDistribution", {})
if set(codes) != {"200"}:
    sys.exit("status codes %s" % codes)
l = d["latencyPercentiles"]
print("%.2f %.2f %.2f %.0f" % (l["p50"] * 1e3, l["p99"] * 1e3, l["p99.9"] * 1e3, d["summary"]["requestsPerSec"]))'
  }
  for mode in off on; do
    interval=0
    [ "$mode" = on ] && interval=1s
    start_tollgate "$interval"
    if [ "$mode" = on ]; then
      WATCH=tollgate wait_for "the first audit pass" grep -q '"audit pass started"' "$W/logs/tollgate.log" || fatal "no audit pass started"
    fi
    load 3 >/dev/null || fatal "admission warm-up load failed"
    done_before=$(grep -c '"audit pass done"' "$W/logs/tollgate.log")
    result=$(load "$ADMISSION_SECONDS") || fatal "admission load failed"
    passes=$(($(grep -c '"audit pass done"' "$W/logs/tollgate.log") - done_before))
    ADMISSION[$mode]="$result $passes"
    echo "admission, audit $mode: p50 p99 p99.9 (ms) rps = $result; audit passes finished meanwhile: $passes"
    stop tollgate
  done
fi

# === the table ===

IFS='|' read -r g_own g_written g_cpu g_rss0 g_rss g_hwm g_total _ <<<"${RESULT[gatekeeper]}"
IFS='|' read -r t_own t_written t_cpu t_rss0 t_rss t_hwm t_total t_objects <<<"${RESULT[tollgate]}"
echo
echo "One audit pass, $PODS Pods in $NAMESPACES namespaces, 2 constraints (each Pod violates both), every listable kind;"
echo "$(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end; tollgate objects reviewed: $t_objects."
echo
echo "| | Gatekeeper v3.23.0 | tollgate $("$TOLLGATE_BIN" --version | cut -d' ' -f2-) |"
echo "|---|---|---|"
echo "| pass, as each reports it (s) | $g_own (status writes after) | $t_own (status writes included) |"
echo "| pass start to both statuses written (s) | $g_written | $t_written |"
echo "| CPU during the pass (s) | $g_cpu | $t_cpu |"
echo "| RSS before the pass (MiB) | $g_rss0 | $t_rss0 |"
echo "| RSS at most during the pass (MiB) | $g_rss | $t_rss |"
echo "| VmHWM at the end of the pass (MiB) | $g_hwm | $t_hwm |"
echo "| process CPU, start to end of the pass (s) | $g_total | $t_total |"
if [ "$ADMISSION_RATE" -gt 0 ]; then
  read -r off_p50 off_p99 off_p999 off_rps _ <<<"${ADMISSION[off]}"
  read -r on_p50 on_p99 on_p999 on_rps on_passes <<<"${ADMISSION[on]}"
  echo
  echo "tollgate admission during the audit: $ADMISSION_RATE requests/s for $ADMISSION_SECONDS s over 2 connections (oha, HTTPS),"
  echo "a Pod denied by both constraints; the audit on: passes back to back (--audit-interval 1s), $on_passes finished during the load."
  echo
  echo "| tollgate admission | p50 (ms) | p99 (ms) | p99.9 (ms) | requests/s |"
  echo "|---|---|---|---|---|"
  echo "| audit off | $off_p50 | $off_p99 | $off_p999 | $off_rps |"
  echo "| audit running | $on_p50 | $on_p99 | $on_p999 | $on_rps |"
fi
