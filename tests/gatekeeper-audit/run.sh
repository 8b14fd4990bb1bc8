#!/usr/bin/env bash
# Oracle test: Gatekeeper's audit and tollgate's, side by side on one cluster. A real etcd and
# kube-apiserver (no controller manager, scheduler or kubelet) get Gatekeeper v3.23.0's CRDs, the
# templates of its own bats tests, the constraints in manifests/constraints.yaml and objects that
# violate them. Gatekeeper's manager (built from its Go module by tests/tools/install.sh) runs as
# its chart runs the audit Deployment; each constraint's status is saved, Gatekeeper stopped and
# the statuses cleared; then `tollgate serve --cluster` audits the same cluster. Per constraint,
# status.totalViolations and status.violations (as JSON, in order) must be equal.
#
# Everything runs inside a new network namespace (`unshare -n`, loopback only) when the kernel
# allows it, on the host's loopback at free ports otherwise.
#
# Usage: tests/gatekeeper-audit/run.sh          (tollgate from `cargo build -p tollgate`, or $TOLLGATE_BIN)
#        GKA_KEEP=1 tests/gatekeeper-audit/run.sh  (keep the work directory: logs, saved statuses)
#        GKA_NO_NETNS=1 ...                         (stay on the host's loopback)
#        GKA_VIOLATIONS_LIMIT=500 ...               (above every count: whole lists compared; the
#                                                    scenario check on the limit then fails)
# Prints PASS/FAIL per check and a final "N passed, N failed"; exits 1 on any failure.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE="$ROOT/tests/gatekeeper-audit"
LIMIT=${GKA_VIOLATIONS_LIMIT:-5}      # --constraint-violations-limit of both
INTERVAL=5                            # seconds between audit passes, both
CHUNK=10                              # --audit-chunk-size of both: list calls continue across chunks
STEP_TIMEOUT=${GKA_STEP_TIMEOUT:-180} # seconds for anything to happen
GK_NS=gatekeeper-system

if [ -z "${GKA_IN_NETNS:-}" ]; then
  # Tools and binaries first, on the host: nothing is downloaded inside the namespace.
  tools_bin=$(bash "$ROOT/tests/tools/install.sh" | tail -n 1) || { echo "FAIL: tests/tools/install.sh"; exit 1; }
  kube_bin=$(bash "$ROOT/tests/e2e/install-tools.sh" | tail -n 1) || { echo "FAIL: tests/e2e/install-tools.sh"; exit 1; }
  if [ -z "${TOLLGATE_BIN:-}" ]; then
    (cd "$ROOT" && cargo build -q -p tollgate) || { echo "FAIL: cargo build -p tollgate"; exit 1; }
    TOLLGATE_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/tollgate"
  fi
  export PATH="$tools_bin:$kube_bin:$PATH" TOLLGATE_BIN
  export GK_MOD="$(go env GOMODCACHE)/github.com/open-policy-agent/gatekeeper/v3@v3.23.0"
  if [ -z "${GKA_NO_NETNS:-}" ] && command -v ip >/dev/null && unshare -n true 2>/dev/null; then
    export GKA_IN_NETNS=1
    exec unshare -n -- "$BASH" "$HERE/run.sh" "$@"
  fi
  echo "note: no new network namespace (GKA_NO_NETNS set, unshare -n not permitted, or no ip command); running on the host's loopback"
  GKA_IN_NETNS=0
fi
if [ "$GKA_IN_NETNS" = 1 ]; then
  ip link set lo up || { echo "FAIL: ip link set lo up in the new network namespace"; exit 1; }
  echo "in a new network namespace (unshare -n), loopback only"
fi
command -v gatekeeper >/dev/null || { echo "FAIL: no gatekeeper binary on PATH (tests/tools/install.sh)"; exit 1; }
[ -d "$GK_MOD/charts/gatekeeper/crds" ] || { echo "FAIL: Gatekeeper v3.23.0 module missing at $GK_MOD"; exit 1; }

W=$(mktemp -d "${TMPDIR:-/tmp}/tollgate-gka.XXXXXX")
mkdir -p "$W/logs" "$W/certs" "$W/objects" "$W/status" "$W/gk-cache" "$W/gk-certs" "$W/no-policies"
export KUBECONFIG="$W/kubeconfig"
unset POD_NAMESPACE POD_NAME SERVICE_ACCOUNT_NAME TOLLGATE_SERVICE_ACCOUNT TOLLGATE_POLICIES

# === processes (as tests/e2e/run.sh) ===

declare -A PIDS=()
LOGS=()
start() { # name cmd...
  local name=$1; shift
  local log="$W/logs/$name.log"
  [[ " ${LOGS[*]} " == *" $log "* ]] || LOGS+=("$log")
  echo "=== start $(date +%T): $*" >>"$log"
  "$@" >>"$log" 2>&1 &
  PIDS[$name]=$!
}
stop() { # name: SIGTERM, then SIGKILL after 15 s
  local name=$1 pid=${PIDS[$1]:-}
  [ -n "$pid" ] || return 0
  kill "$pid" 2>/dev/null
  for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  unset "PIDS[$name]"
}
show_logs() {
  local log
  for log in "${LOGS[@]}"; do
    echo "----- last 30 lines of $log"
    tail -n 30 "$log" | cut -c1-400
  done
}
cleanup() {
  local name
  for name in tollgate gatekeeper kube-apiserver etcd; do stop "$name"; done
  if [ -n "${GKA_KEEP:-}" ]; then echo "work directory kept: $W"; else rm -rf "$W"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

WATCH=""
wait_for() { # description command...: retried every 0.5 s for STEP_TIMEOUT seconds
  local what=$1 deadline=$((SECONDS + STEP_TIMEOUT)) pid status; shift
  until "$@" >/dev/null 2>&1; do
    pid=""
    [ -z "$WATCH" ] || pid=${PIDS[$WATCH]:-}
    if [ -n "$WATCH" ] && [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
      wait "$pid"; status=$?
      unset "PIDS[$WATCH]"
      echo "$WATCH exited with status $status while waiting for $what" >&2
      return 1
    fi
    if [ $SECONDS -ge $deadline ]; then
      echo "timed out after ${STEP_TIMEOUT}s waiting for $what" >&2
      return 1
    fi
    sleep 0.5
  done
}

PASSED=0
FAILED=0
pass() { PASSED=$((PASSED + 1)); echo "PASS: $*"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL: $*"; }
fatal() {
  echo "FAIL: $*"
  show_logs
  echo "$PASSED passed, $((FAILED + 1)) failed"
  exit 1
}
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
kc() { # kubectl, its output kept in $W/out and shown on failure by the caller
  kubectl "$@" >"$W/out" 2>&1
}

# === certificates, etcd, kube-apiserver ===

cd "$W/certs" || fatal "cd $W/certs"
cat >openssl.cnf <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = placeholder
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign, digitalSignature
subjectKeyIdentifier = hash
[server]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost, IP:10.0.0.1, DNS:kubernetes.default.svc
authorityKeyIdentifier = keyid
[client]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid
EOF
new_ca() { # name CN
  openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -keyout "$1.key" \
    -out "$1.crt" -subj "/CN=$2" -days 2 -config openssl.cnf -extensions ca 2>/dev/null
}
new_cert() { # name subject ca extensions
  openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -keyout "$1.key" \
    -out "$1.csr" -subj "$2" -config openssl.cnf 2>/dev/null &&
    openssl x509 -req -in "$1.csr" -CA "$3.crt" -CAkey "$3.key" -CAcreateserial -out "$1.crt" \
      -days 2 -extfile openssl.cnf -extensions "$4" 2>/dev/null
}
{
  new_ca kube-ca gka-kube-ca &&
    new_cert apiserver /CN=kube-apiserver kube-ca server &&
    new_cert admin "/O=system:masters/CN=gka-admin" kube-ca client &&
    new_cert gatekeeper /CN=gatekeeper-webhook-service.gatekeeper-system.svc kube-ca server &&
    openssl genrsa -out sa.key 2048 2>/dev/null && openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
} || fatal "generate certificates with openssl"
cd "$ROOT" || fatal "cd $ROOT"
C="$W/certs"

ETCD_PORT=$(free_port)
ETCD_PEER_PORT=$(free_port)
API_PORT=$(free_port)
start etcd etcd --name gka --data-dir "$W/etcd" \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster "gka=http://127.0.0.1:$ETCD_PEER_PORT" \
  --unsafe-no-fsync --log-level warn
WATCH=etcd wait_for "etcd /health" curl -sf "http://127.0.0.1:$ETCD_PORT/health" || fatal "etcd did not come up"
# No serviceaccount controller runs: the ServiceAccount admission plugin (which would want a
# `default` ServiceAccount before any Pod) is left out, so namespaces hold only what this test puts there.
start kube-apiserver kube-apiserver \
  --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
  --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$API_PORT" \
  --tls-cert-file "$C/apiserver.crt" --tls-private-key-file "$C/apiserver.key" \
  --client-ca-file "$C/kube-ca.crt" \
  --authorization-mode RBAC \
  --service-account-issuer https://kubernetes.default.svc \
  --service-account-key-file "$C/sa.pub" --service-account-signing-key-file "$C/sa.key" \
  --service-cluster-ip-range 10.0.0.0/24 \
  --enable-admission-plugins NamespaceLifecycle --disable-admission-plugins ServiceAccount \
  --endpoint-reconciler-type none --enable-priority-and-fairness=false \
  --cert-dir "$W/apiserver" --profiling=false --v=1
cat >"$KUBECONFIG" <<EOF
apiVersion: v1
kind: Config
clusters:
  - name: gka
    cluster:
      server: https://127.0.0.1:$API_PORT
      certificate-authority: $C/kube-ca.crt
users:
  - name: gka-admin
    user:
      client-certificate: $C/admin.crt
      client-key: $C/admin.key
contexts:
  - name: gka
    context: {cluster: gka, user: gka-admin}
current-context: gka
EOF
WATCH=kube-apiserver wait_for "kube-apiserver /readyz" kubectl get --raw /readyz || fatal "kube-apiserver did not become ready"
wait_for "namespace kube-system" kubectl get namespace kube-system || fatal "no kube-system namespace"
echo "kube-apiserver $(kubectl version -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["serverVersion"]["gitVersion"])') on https://127.0.0.1:$API_PORT"

# === Gatekeeper's CRDs, the objects, templates, Config and ExpansionTemplate ===

kc apply --server-side -f "$GK_MOD/charts/gatekeeper/crds/" || { cat "$W/out"; fatal "apply Gatekeeper's CRDs"; }
kc wait --for condition=Established --timeout 60s crd --all || { cat "$W/out"; fatal "Gatekeeper's CRDs Established"; }
echo "Gatekeeper's CRDs: $(ls "$GK_MOD/charts/gatekeeper/crds" | wc -l) from $GK_MOD/charts/gatekeeper/crds"

python3 "$HERE/objects.py" "$GK_NS" >"$W/objects/objects.yaml" || fatal "generate the objects"
kc apply -f "$W/objects/objects.yaml" || { cat "$W/out"; fatal "create the objects"; }
echo "objects: $(grep -c '^kind:' "$W/objects/objects.yaml") (namespaces, ConfigMaps, Pods, workloads, ...)"
BATS="$GK_MOD/test/bats/tests/templates"
TEMPLATES=(k8srequiredlabels_template.yaml k8scontainterlimits_template.yaml k8suniquelabel_template.yaml
  k8snamespacelabelcheck_template_cel.yaml k8snamespacelabelcheck_template_rego.yaml)
for t in "${TEMPLATES[@]}"; do
  kc apply -f "$BATS/$t" || { cat "$W/out"; fatal "apply template $t"; }
done
sed "s/__GK_NS__/$GK_NS/" "$HERE/manifests/config.yaml" >"$W/objects/config.yaml"
kc apply -f "$W/objects/config.yaml" -f "$HERE/manifests/expansion.yaml" ||
  { cat "$W/out"; fatal "apply the Config and the ExpansionTemplate"; }

# The constraints, listed by kind/name.
constraint_names() { kubectl get constraints -o json | python3 -c '
import json, sys
for c in json.load(sys.stdin)["items"]:
    print("%s/%s" % (c["kind"].lower(), c["metadata"]["name"]))'; }
WANT_CONSTRAINTS=$(grep -c '^kind:' "$HERE/manifests/constraints.yaml")
all_constraints_present() { [ "$(constraint_names | wc -l)" = "$WANT_CONSTRAINTS" ]; }

# All constraints have an audit status from a pass that started after $1 (RFC 3339, UTC).
# Saves the statuses to $2.
audited_after() { # since file
  kubectl get constraints -o json >"$W/status/current.json" 2>/dev/null || return 1
  python3 - "$1" "$WANT_CONSTRAINTS" "$W/status/current.json" "$2" <<'EOF'
import json, sys
since, want, current, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
items = json.load(open(current))["items"]
if len(items) != want:
    sys.exit(1)
for c in items:
    s = c.get("status") or {}
    if "totalViolations" not in s or s.get("auditTimestamp", "") <= since:
        sys.exit(1)
json.dump(items, open(out, "w"))
EOF
}
utc_now() { date -u +%Y-%m-%dT%H:%M:%SZ; }
# Audit passes after $1 until two in a row agree (at most $MAX_PASSES); the last is saved as
# $2.json. Gatekeeper's can disagree: its status writer pops the kept violations off its queue
# before the Update, so an Update retried after a conflict (the status operation writes byPod on
# the same objects) writes totalViolations without the list. Such a pass is shown as a note.
MAX_PASSES=6
settled_pass() { # since prefix who
  local since=$1 prefix=$2 who=$3 n=1 t
  WATCH=$who wait_for "a $who audit pass after $since" audited_after "$since" "$prefix-1.json" || return 1
  while [ $n -lt $MAX_PASSES ]; do
    t=$(last_timestamp "$prefix-$n.json")
    n=$((n + 1))
    WATCH=$who wait_for "$who audit pass $n (after $t)" audited_after "$t" "$prefix-$n.json" || return 1
    if same_results "$prefix-$((n - 1)).json" "$prefix-$n.json" >"$W/out"; then
      cp "$prefix-$n.json" "$prefix.json"
      echo "$who: passes at $t and $(last_timestamp "$prefix-$n.json") agree ($n passes after $since)"
      return 0
    fi
    echo "note: $who's audit passes at $t and $(last_timestamp "$prefix-$n.json") differ on: $(cat "$W/out")"
    DISAGREED=1
  done
  echo "no two $who audit passes in a row agreed ($MAX_PASSES passes)" >&2
  return 1
}
last_timestamp() { python3 -c 'import json,sys; print(max(c["status"]["auditTimestamp"] for c in json.load(open(sys.argv[1]))))' "$1"; }
same_results() { # a.json b.json: totalViolations and violations of every constraint equal
  python3 - "$1" "$2" <<'EOF'
import json, sys
def key(f):
    out = {}
    for c in json.load(open(f)):
        vs = c["status"].get("violations")
        # Gatekeeper lists scoped enforcementActions in Go map order (a random order).
        vs = vs and [dict(v, enforcementActions=sorted(v["enforcementActions"])) if "enforcementActions" in v else v for v in vs]
        out[(c["kind"], c["metadata"]["name"])] = (c["status"].get("totalViolations"), vs)
    return out
a, b = key(sys.argv[1]), key(sys.argv[2])
bad = [("%s/%s" % k) for k in a if a[k] != b.get(k)]
print(" ".join(bad))
sys.exit(1 if bad else 0)
EOF
}

# === Gatekeeper ===

GK_PORT=$(free_port)
GK_HEALTH=$(free_port)
GK_METRICS=$(free_port)
# As the chart's audit Deployment (charts/gatekeeper/templates/gatekeeper-audit-deployment.yaml,
# default values) runs the manager, but for the interval, limit and chunk size above, and with
# what running outside a Pod needs: --debug-use-fake-pod (no Pod to look up; POD_NAME becomes
# "no-pod"), --disable-cert-rotation (no webhook Secret), a kubeconfig, loopback ports, a
# temporary --api-cache-dir. --operation=mutation-status is left out (no mutators here). External data is on (the chart's
# default): its client reads tls.crt/tls.key from --cert-dir, where the chart mounts the Secret the
# webhook's rotator fills; here a certificate from the test CA.
GK_ARGS=(--operation=generate --operation=audit --operation=status
  --audit-interval="$INTERVAL" --constraint-violations-limit="$LIMIT" --audit-chunk-size="$CHUNK"
  --audit-from-cache=false --audit-match-kind-only=false
  --enable-generator-resource-expansion=true --enable-k8s-native-validation=true
  --enable-external-data=true --log-level=INFO
  --debug-use-fake-pod --disable-cert-rotation
  --host=127.0.0.1 --port="$GK_PORT" --cert-dir="$W/gk-certs"
  --health-addr="127.0.0.1:$GK_HEALTH" --prometheus-port="$GK_METRICS" --metrics-addr=0
  --api-cache-dir="$W/gk-cache" --shutdown-delay=1
  --kubeconfig="$KUBECONFIG")
cp "$C/gatekeeper.crt" "$W/gk-certs/tls.crt" && cp "$C/gatekeeper.key" "$W/gk-certs/tls.key" &&
  cp "$C/kube-ca.crt" "$W/gk-certs/ca.crt" || fatal "Gatekeeper's certificate"
echo "gatekeeper ${GK_ARGS[*]}"
start gatekeeper env POD_NAMESPACE="$GK_NS" POD_NAME=gatekeeper-audit-0 NAMESPACE="$GK_NS" \
  CONTAINER_NAME=manager gatekeeper "${GK_ARGS[@]}"
WATCH=gatekeeper wait_for "Gatekeeper /healthz" curl -sf "http://127.0.0.1:$GK_HEALTH/healthz" ||
  fatal "Gatekeeper did not come up"
for t in "${TEMPLATES[@]}"; do
  kind=$(sed -n 's/^ *kind: \(K8s[A-Za-z]*\)$/\1/p' "$BATS/$t" | head -n 1 | tr 'A-Z' 'a-z')
  WATCH=gatekeeper wait_for "CRD $kind from Gatekeeper" \
    kubectl wait --for condition=Established --timeout 5s "crd/$kind.constraints.gatekeeper.sh" ||
    fatal "Gatekeeper did not create the CRD of $t"
done
pass "Gatekeeper created the constraint CRDs of ${#TEMPLATES[@]} templates"
kc apply -f "$HERE/manifests/constraints.yaml" || { cat "$W/out"; fatal "apply the constraints"; }
all_constraints_present || fatal "expected $WANT_CONSTRAINTS constraints"
# Enforced: every constraint's byPod (the status operation) says the audit pod holds it.
gk_enforced() {
  kubectl get constraints -o json | python3 -c '
import json, sys
items = json.load(sys.stdin)["items"]
ok = all(any(p.get("enforced") for p in (c.get("status") or {}).get("byPod", [])) for c in items)
sys.exit(0 if items and ok else 1)'
}
WATCH=gatekeeper wait_for "every constraint enforced by Gatekeeper" gk_enforced ||
  fatal "Gatekeeper did not report every constraint enforced"
sleep 1
since=$(utc_now)
settled_pass "$since" "$W/status/gatekeeper" gatekeeper || fatal "Gatekeeper's audit did not settle"
pass "Gatekeeper's audit settled: two passes in a row agree"
curl -s "http://127.0.0.1:$GK_METRICS/metrics" | grep '^gatekeeper_violations' >"$W/status/gatekeeper-metrics.txt"
stop gatekeeper

# === the switch: statuses cleared, Gatekeeper's pod statuses deleted ===

for c in $(constraint_names); do
  kc patch "$c" --subresource=status --type=merge -p '{"status":null}' ||
    { cat "$W/out"; fatal "clear the status of $c"; }
done
kc delete constraintpodstatuses.status.gatekeeper.sh,constrainttemplatepodstatuses.status.gatekeeper.sh,configpodstatuses.status.gatekeeper.sh,expansiontemplatepodstatuses.status.gatekeeper.sh \
  -n "$GK_NS" --all || { cat "$W/out"; fatal "delete Gatekeeper's pod statuses"; }
left=$(kubectl get constraints -o json | python3 -c '
import json, sys
print(sum(1 for c in json.load(sys.stdin)["items"] if c.get("status")))')
[ "$left" = 0 ] || fatal "$left constraints still have a status after clearing"

# === tollgate ===

TG_PORT=$(free_port)
TG_PROBE=$(free_port)
# The same limits and interval; no policy files (--policies on an empty directory: the embedded
# tracker pack stays out), templates and constraints from the cluster.
TG_ARGS=(serve --cluster --audit-interval "${INTERVAL}s" --constraint-violations-limit "$LIMIT"
  --audit-chunk-size "$CHUNK" --policies "$W/no-policies"
  --listen "127.0.0.1:$TG_PORT" --probe-listen "127.0.0.1:$TG_PROBE" --dev-ca-file "$W/tollgate-dev-ca.pem"
  --log-format json)
echo "tollgate ${TG_ARGS[*]}"
start tollgate env POD_NAMESPACE="$GK_NS" POD_NAME=tollgate-audit-0 "$TOLLGATE_BIN" "${TG_ARGS[@]}"
WATCH=tollgate wait_for "tollgate /readyz" curl -sf "http://127.0.0.1:$TG_PROBE/readyz" || fatal "tollgate did not become ready"
sleep 1
since=$(utc_now)
DISAGREED=0
settled_pass "$since" "$W/status/tollgate" tollgate || fatal "tollgate's audit did not settle"
if [ "$DISAGREED" = 0 ]; then
  pass "tollgate's first two passes agree"
else
  fail "tollgate's first two passes agree (its results changed between passes on an unchanging cluster)"
fi
curl -s "http://127.0.0.1:$TG_PROBE/metrics" | grep '^gatekeeper_violations' >"$W/status/tollgate-metrics.txt"
stop tollgate

# === the comparison ===

python3 "$HERE/compare.py" "$W/status/gatekeeper.json" "$W/status/tollgate.json" "$LIMIT" \
  "$W/status/gatekeeper-metrics.txt" "$W/status/tollgate-metrics.txt" >"$W/compare.txt"
echo "compare.py exited $?" >>"$W/compare.txt"
while IFS= read -r line; do
  case "$line" in
  PASS:\ *) pass "${line#PASS: }" ;;
  FAIL:\ *) fail "${line#FAIL: }" ;;
  "compare.py exited 0") ;;
  "compare.py exited "*) fail "$line" ;;
  *) echo "$line" ;;
  esac
done <"$W/compare.txt"
[ "$FAILED" = 0 ] || { [ -n "${GKA_KEEP:-}" ] || echo "(GKA_KEEP=1 keeps the saved statuses and logs)"; }
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
