#!/usr/bin/env bash
# End-to-end: a real etcd + kube-apiserver on loopback, tollgate registered as a validating
# webhook by URL, and kubectl applying the tracker workloads. A kube-controller-manager runs only
# the garbage collector and namespace controllers; no scheduler or kubelet: objects are admitted or
# refused, never run.
#
# Usage: tests/e2e/run.sh            (tools from tests/e2e/install-tools.sh, tollgate from
#                                     `cargo build -p tollgate`, or $TOLLGATE_BIN)
#        E2E_KEEP=1 tests/e2e/run.sh (keep the work directory with logs and certificates)
# Prints PASS/FAIL per step and a final "N passed, N failed"; exits 1 on any failure.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
E2E="$ROOT/tests/e2e"
PACK="$ROOT/constraints"
STEP_TIMEOUT=${E2E_STEP_TIMEOUT:-30}   # seconds for anything to come up
TOLLGATE_NS=tollgate-system

tools_bin=$(bash "$E2E/install-tools.sh" | tail -n 1) || { echo "FAIL: install-tools.sh"; exit 1; }
export PATH="$tools_bin:$PATH"
if [ -z "${TOLLGATE_BIN:-}" ]; then
  (cd "$ROOT" && cargo build -q -p tollgate) || { echo "FAIL: cargo build -p tollgate"; exit 1; }
  TOLLGATE_BIN="$ROOT/target/debug/tollgate"
fi

W=$(mktemp -d "${TMPDIR:-/tmp}/tollgate-e2e.XXXXXX")
mkdir -p "$W/logs" "$W/certs" "$W/objects"
export KUBECONFIG="$W/kubeconfig"
unset POD_NAMESPACE SERVICE_ACCOUNT_NAME TOLLGATE_SERVICE_ACCOUNT TOLLGATE_POLICIES

# === processes ===

source "$E2E/processes.sh"

cleanup() {
  local name
  for name in tollgate tollgate-b tollgate-unreachable api-proxy kube-controller-manager kube-apiserver etcd; do stop "$name"; done
  if [ -n "${E2E_KEEP:-}" ]; then echo "work directory kept: $W"; else rm -rf "$W"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# === steps ===

# Runs kubectl, keeping stdout and stderr apart: $OUT, $ERR, $RC.
kc() {
  kubectl "$@" >"$W/out" 2>"$W/err"
  RC=$?
  OUT=$(cat "$W/out")
  ERR=$(cat "$W/err")
}

explain() { # shows what kubectl said under a failed step
  echo "    exit $RC"
  sed 's/^/    stdout: /' <<<"$OUT"
  sed 's/^/    stderr: /' <<<"$ERR"
}

# The constraint names in kubectl's error lines (warnings left out), sorted and unique.
denying_constraints() {
  grep -v '^Warning:' <<<"$ERR" | grep -o '\[[a-z0-9-]*\]' | grep -v 'Implied' | sort -u | tr -d '[]' | paste -sd ' ' -
}

expect_accepted() { # description kubectl-args...
  local what=$1; shift
  kc "$@"
  if [ $RC -eq 0 ]; then pass "$what"; else fail "$what"; explain; fi
}

expect_refused_by() { # description constraint file
  local what=$1 constraint=$2 file=$3
  kc apply -f "$file"
  if [ $RC -ne 0 ] && grep -q 'admission webhook "validation.tollgate.dev" denied the request' <<<"$ERR" &&
    [ "$(denying_constraints)" = "$constraint" ]; then
    pass "$what refused by [$constraint]"
  else
    fail "$what refused by [$constraint] (and by no other constraint)"
    explain
  fi
}

pod_yaml() { # name namespace: a plain Pod, no tracker settings
  cat <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: $1
  namespace: $2
spec:
  containers:
    - name: app
      image: registry.example.com/infra/agent:1.0
EOF
}

# === certificates ===

cd "$W/certs" || fatal "cd $W/certs"
source "$E2E/certs.sh"
{
  new_ca kube-ca e2e-kube-ca &&
    new_cert apiserver /CN=kube-apiserver kube-ca server &&
    new_cert controller-manager /CN=kube-controller-manager kube-ca server &&
    new_cert admin "/O=system:masters/CN=e2e-admin" kube-ca client &&
    openssl genrsa -out sa.key 2048 2>/dev/null && openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null &&
    new_ca tollgate-ca e2e-tollgate-ca &&
    new_cert tollgate /CN=tollgate tollgate-ca server
} || fatal "generate certificates with openssl"
cd "$ROOT" || fatal "cd $ROOT"
C="$W/certs"

# === etcd and kube-apiserver ===

ETCD_PORT=$(free_port)
ETCD_PEER_PORT=$(free_port)
API_PORT=$(free_port)
start etcd etcd --name e2e --data-dir "$W/etcd" \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster "e2e=http://127.0.0.1:$ETCD_PEER_PORT" \
  --unsafe-no-fsync --log-level warn
WATCH=etcd wait_for "etcd /health" curl -sf "http://127.0.0.1:$ETCD_PORT/health" || fatal "etcd did not come up"

# A function: the cluster-mode steps restart it.
start_apiserver() {
  start kube-apiserver kube-apiserver \
    --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$API_PORT" \
    --tls-cert-file "$C/apiserver.crt" --tls-private-key-file "$C/apiserver.key" \
    --client-ca-file "$C/kube-ca.crt" \
    --authorization-mode RBAC \
    --service-account-issuer https://kubernetes.default.svc \
    --service-account-key-file "$C/sa.pub" --service-account-signing-key-file "$C/sa.key" \
    --service-cluster-ip-range 10.0.0.0/24 \
    --enable-admission-plugins NamespaceLifecycle,ServiceAccount,RuntimeClass,ValidatingAdmissionWebhook \
    --endpoint-reconciler-type none --enable-priority-and-fairness=false \
    --cert-dir "$W/apiserver" --profiling=false --v=1
}
start_apiserver

cat >"$KUBECONFIG" <<EOF
apiVersion: v1
kind: Config
clusters:
  - name: e2e
    cluster:
      server: https://127.0.0.1:$API_PORT
      certificate-authority: $C/kube-ca.crt
users:
  - name: e2e-admin
    user:
      client-certificate: $C/admin.crt
      client-key: $C/admin.key
contexts:
  - name: e2e
    context: {cluster: e2e, user: e2e-admin}
current-context: e2e
EOF
WATCH=kube-apiserver STEP_TIMEOUT=60 wait_for "kube-apiserver /readyz" kubectl get --raw /readyz ||
  fatal "kube-apiserver did not become ready"
wait_for "namespace kube-system" kubectl get namespace kube-system || fatal "no kube-system namespace"
echo "kube-apiserver $(kubectl version -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["serverVersion"]["gitVersion"])') on https://127.0.0.1:$API_PORT"

# === kube-controller-manager: the garbage collector and namespace controllers ===

# As the admin (the kubeconfig above), without leader election; those two controllers need no
# cloud provider, service-account key or kubelet. Its /healthz is always allowed, so it needs no
# delegated authentication or authorization. It outlives kube-apiserver restarts (its informers
# reconnect), which the last step checks.
KCM_PORT=$(free_port)
start kube-controller-manager kube-controller-manager \
  --kubeconfig "$KUBECONFIG" \
  --controllers garbagecollector,namespace --leader-elect=false \
  --bind-address 127.0.0.1 --secure-port "$KCM_PORT" \
  --tls-cert-file "$C/controller-manager.crt" --tls-private-key-file "$C/controller-manager.key" \
  --profiling=false --v=1
kcm_healthy() { curl -sf --cacert "$C/kube-ca.crt" "https://127.0.0.1:$KCM_PORT/healthz"; }
WATCH=kube-controller-manager STEP_TIMEOUT=60 wait_for "kube-controller-manager /healthz" kcm_healthy ||
  fatal "kube-controller-manager did not become healthy"
echo "kube-controller-manager $(kube-controller-manager --version | cut -d' ' -f2) on https://127.0.0.1:$KCM_PORT"

# What the serviceaccount controller (not run here) would create, and what Pods need to pass the
# RuntimeClass admission plugin before any webhook is called.
{
  for ns in logistics "$TOLLGATE_NS"; do
    printf 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n---\n' "$ns"
  done
  printf 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: e2e-ignored\n  labels:\n    admission.gatekeeper.sh/ignore: "true"\n---\n'
  for ns in default kube-system logistics "$TOLLGATE_NS" e2e-ignored; do
    printf 'apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: default\n  namespace: %s\n---\n' "$ns"
  done
  for rc in wasmedge runc; do
    printf 'apiVersion: node.k8s.io/v1\nkind: RuntimeClass\nmetadata:\n  name: %s\nhandler: %s\n---\n' "$rc" "$rc"
  done
} >"$W/objects/setup.yaml"
kc apply -f "$W/objects/setup.yaml"
[ $RC -eq 0 ] || { explain; fatal "create namespaces, ServiceAccounts and RuntimeClasses"; }

echo "--- kube-controller-manager (before any webhook is registered)"

# Seconds since a ${EPOCHREALTIME} reading, to a tenth.
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }
# True when the object does not exist (and the API server answered).
absent() { # kubectl get args...
  local out
  out=$(kubectl get "$@" --ignore-not-found -o name 2>/dev/null) && [ -z "$out" ]
}
# A ConfigMap with an ownerReference to another; the owner deleted (kubectl's default, background
# propagation): the garbage collector deletes the dependent.
gc_check() { # namespace name-prefix description
  local ns=$1 p=$2 what=$3 uid started
  kc create configmap "$p-owner" -n "$ns" --from-literal=role=owner
  [ $RC -eq 0 ] || { fail "$what: create ConfigMap $p-owner"; explain; return; }
  uid=$(kubectl get configmap "$p-owner" -n "$ns" -o jsonpath='{.metadata.uid}')
  cat >"$W/objects/$p-dependent.yaml" <<EOF
apiVersion: v1
kind: ConfigMap
metadata:
  name: $p-dependent
  namespace: $ns
  ownerReferences:
    - {apiVersion: v1, kind: ConfigMap, name: $p-owner, uid: "$uid"}
data:
  role: dependent
EOF
  kc apply -f "$W/objects/$p-dependent.yaml"
  [ $RC -eq 0 ] || { fail "$what: create ConfigMap $p-dependent owned by $p-owner"; explain; return; }
  kc delete configmap "$p-owner" -n "$ns"
  [ $RC -eq 0 ] || { fail "$what: delete ConfigMap $p-owner"; explain; return; }
  started=$EPOCHREALTIME
  if WATCH=kube-controller-manager STEP_TIMEOUT=90 wait_for "the garbage collector to delete $ns/$p-dependent" \
    absent configmap "$p-dependent" -n "$ns"; then
    pass "$what: owner $ns/$p-owner deleted, dependent ConfigMap deleted after $(since "$started") s"
  else
    fail "$what: owner $ns/$p-owner deleted, dependent ConfigMap deleted"
  fi
}
gc_check default gc "garbage collector"

# A Namespace with objects in it, deleted: the namespace controller deletes its content and
# finalizes it.
printf 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: e2e-doomed\n' >"$W/objects/doomed.yaml"
kc apply -f "$W/objects/doomed.yaml"
[ $RC -eq 0 ] || { explain; fatal "create namespace e2e-doomed"; }
kc create configmap doomed-config -n e2e-doomed --from-literal=a=b
[ $RC -eq 0 ] || { explain; fatal "create a ConfigMap in e2e-doomed"; }
kc create secret generic doomed-secret -n e2e-doomed --from-literal=a=b
[ $RC -eq 0 ] || { explain; fatal "create a Secret in e2e-doomed"; }
kc delete namespace e2e-doomed --wait=false
started=$EPOCHREALTIME
if [ $RC -eq 0 ] && WATCH=kube-controller-manager STEP_TIMEOUT=90 wait_for "namespace e2e-doomed to finish terminating" \
  absent namespace e2e-doomed &&
  absent configmap doomed-config -n e2e-doomed && absent secret doomed-secret -n e2e-doomed; then
  pass "namespace controller: e2e-doomed deleted with a ConfigMap and a Secret in it, contents and namespace gone after $(since "$started") s"
else
  fail "namespace controller: e2e-doomed deleted with a ConfigMap and a Secret in it, contents and namespace gone"
  explain
  kubectl get namespace e2e-doomed -o yaml 2>&1 | sed 's/^/    /'
fi

# === tollgate ===

TOLLGATE_PORT=$(free_port)
PROBE_PORT=$(free_port)
start_tollgate() { # extra args...
  start tollgate "$TOLLGATE_BIN" serve \
    --listen "127.0.0.1:$TOLLGATE_PORT" --probe-listen "127.0.0.1:$PROBE_PORT" \
    --tls-cert "$C/tollgate.crt" --tls-key "$C/tollgate.key" \
    --exempt-namespace kube-system --exempt-namespace "$TOLLGATE_NS" \
    --log-format json "$@"
  WATCH=tollgate wait_for "tollgate /readyz" curl -sf "http://127.0.0.1:$PROBE_PORT/readyz" &&
    WATCH=tollgate wait_for "tollgate HTTPS" curl -sf --cacert "$C/tollgate-ca.crt" -o /dev/null \
      "https://127.0.0.1:$TOLLGATE_PORT/v1/admit" -X POST -d '{}' -H 'Content-Type: application/json'
}
start_tollgate || fatal "tollgate did not come up"
start_tollgate_b() { # extra args...: a second replica, tollgate-b, on ports of its own
  TOLLGATE_B_PORT=${TOLLGATE_B_PORT:-$(free_port)}
  PROBE_B_PORT=${PROBE_B_PORT:-$(free_port)}
  start tollgate-b env KUBECONFIG="$W/tollgate-kubeconfig" POD_NAMESPACE="$TOLLGATE_NS" POD_NAME=tollgate-b \
    SERVICE_ACCOUNT_NAME=tollgate "$TOLLGATE_BIN" serve \
    --listen "127.0.0.1:$TOLLGATE_B_PORT" --probe-listen "127.0.0.1:$PROBE_B_PORT" \
    --tls-cert "$C/tollgate.crt" --tls-key "$C/tollgate.key" \
    --exempt-namespace kube-system --exempt-namespace "$TOLLGATE_NS" \
    --log-format json "$@"
  WATCH=tollgate-b STEP_TIMEOUT=60 wait_for "tollgate-b /readyz" curl -sf "http://127.0.0.1:$PROBE_B_PORT/readyz"
}
# The replica holding the status Lease.
holder() { kubectl get lease tollgate-status -n "$TOLLGATE_NS" -o jsonpath='{.spec.holderIdentity}' 2>/dev/null; }

cat >"$W/objects/webhook.yaml" <<EOF
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: tollgate-e2e
webhooks:
  - name: validation.tollgate.dev
    admissionReviewVersions: ["v1"]
    sideEffects: None
    failurePolicy: Fail
    timeoutSeconds: 3
    clientConfig:
      url: https://127.0.0.1:$TOLLGATE_PORT/v1/admit
      caBundle: $(base64 -w0 "$C/tollgate-ca.crt")
    rules:
      - apiGroups: ["*"]
        apiVersions: ["*"]
        operations: ["CREATE", "UPDATE"]
        resources: ["*"]
    namespaceSelector:
      matchExpressions:
        - key: kubernetes.io/metadata.name
          operator: NotIn
          values: [kube-system, $TOLLGATE_NS]
        - key: admission.gatekeeper.sh/ignore
          operator: DoesNotExist
    # tollgate's own writes in cluster mode (constraint CRDs, status) never wait on tollgate.
    matchConditions:
      - name: not-tollgate
        expression: "request.userInfo.username != 'system:serviceaccount:$TOLLGATE_NS:tollgate'"
EOF
kc apply -f "$W/objects/webhook.yaml"
[ $RC -eq 0 ] || { explain; fatal "register the ValidatingWebhookConfiguration"; }
# The API server picks up webhook configurations from an informer: wait until tollgate is called.
probe_webhook() {
  local said
  said=$(kubectl apply --dry-run=server -f "$PACK/k8srequiredruntimeclass/samples/tracker/example_disallowed_runtimeclass_runc.yaml" 2>&1)
  grep -q 'tracker-runtime-class' <<<"$said"
}
wait_for "the API server to call tollgate" probe_webhook || fatal "the API server never called tollgate"

echo "--- the tracker pack (embedded)"

# The seed's Deployment, fixed: admitted, with exactly one warning, from tracker-image-tag.
kc apply -f "$PACK/k8srequiredruntimeclass/samples/tracker/example_allowed_deployment.yaml"
if [ $RC -eq 0 ] && grep -q '^deployment.apps/logistics-tracker created' <<<"$OUT" &&
  [ "$(grep -c '^Warning:' <<<"$ERR")" = 1 ] &&
  grep -q '^Warning: \[tracker-image-tag\] .*uses the disallowed tag "latest"' <<<"$ERR"; then
  pass "fixed tracker Deployment accepted with the :latest warning: $(grep '^Warning:' <<<"$ERR")"
else
  fail "fixed tracker Deployment accepted with exactly one warning, from [tracker-image-tag]"
  explain
fi
# The reference Pod under another name: the refused variants below reuse the samples' name, and
# must be creates, not updates of this Pod.
sed 's/^  name: logistics-tracker$/  name: tracker-reference/' \
  "$PACK/k8srequiredruntimeclass/samples/tracker/example_allowed.yaml" >"$W/objects/pod-reference.yaml"
kc apply -f "$W/objects/pod-reference.yaml"
if [ $RC -eq 0 ] && grep -q '^Warning: \[tracker-image-tag\]' <<<"$ERR"; then
  pass "reference tracker Pod accepted with the :latest warning"
else
  fail "reference tracker Pod accepted with the :latest warning"
  explain
fi

# Single-change variants that reach a webhook, as a Deployment and as a Pod.
expect_refused_by "Deployment with runtimeClassName runc" tracker-runtime-class "$E2E/manifests/deployment-runtimeclass-runc.yaml"
expect_refused_by "Pod with runtimeClassName runc" tracker-runtime-class "$PACK/k8srequiredruntimeclass/samples/tracker/example_disallowed_runtimeclass_runc.yaml"
expect_refused_by "Deployment without nodeSelector" tracker-edge-placement "$E2E/manifests/deployment-nodeselector-missing.yaml"
expect_refused_by "Pod without nodeSelector" tracker-edge-placement "$PACK/k8srequirednodeselector/samples/tracker/example_disallowed_nodeselector_missing.yaml"
expect_refused_by "Deployment with cpu limit 1500m" tracker-edge-resources "$E2E/manifests/deployment-cpu-limit-too-high.yaml"
expect_refused_by "Pod with cpu limit 1500m" tracker-edge-resources "$PACK/k8sedgeresources/samples/tracker/example_disallowed_cpu_limit_too_high.yaml"
expect_refused_by "Deployment with a docker.io image" tracker-allowed-registries "$E2E/manifests/deployment-image-docker-hub.yaml"
expect_refused_by "Pod with a docker.io image" tracker-allowed-registries "$PACK/k8sallowedregistries/samples/tracker/example_disallowed_image_docker_hub.yaml"

# An UPDATE goes through the webhook too: breaking the admitted Deployment is refused.
sed 's#registry.example.com/logistics-tracker:latest#docker.io/library/nginx:1.27#' \
  "$PACK/k8srequiredruntimeclass/samples/tracker/example_allowed_deployment.yaml" >"$W/objects/update.yaml"
expect_refused_by "update of the admitted Deployment to a docker.io image" tracker-allowed-registries "$W/objects/update.yaml"

echo "--- a catch-all deny constraint (namespaces: [\"*\"])"

mkdir -p "$W/policies"
for dir in "$PACK"/*/; do
  p=$(basename "$dir")
  cp "$dir/template.yaml" "$W/policies/$p-template.yaml"
  cp "$dir/samples/tracker/constraint.yaml" "$W/policies/$p-constraint.yaml"
done
cp "$E2E/manifests/catch-all/template.yaml" "$W/policies/catch-all-template.yaml"
cp "$E2E/manifests/catch-all/constraint.yaml" "$W/policies/catch-all-constraint.yaml"
stop tollgate
start_tollgate --policies "$W/policies" || fatal "tollgate did not come up with the catch-all policies"

pod_yaml catch-all-default default >"$W/objects/pod-default.yaml"
expect_refused_by "plain Pod in default" e2e-deny-everything "$W/objects/pod-default.yaml"
for ns in kube-system "$TOLLGATE_NS" e2e-ignored; do
  pod_yaml "catch-all-$ns" "$ns" >"$W/objects/pod-$ns.yaml"
  expect_accepted "Pod in $ns not blocked by the catch-all" apply -f "$W/objects/pod-$ns.yaml"
done
# The API server never sends those namespaces (namespaceSelector); tollgate exempts them by
# itself too, should a misconfigured webhook send them anyway.
review() { # namespace
  cat <<EOF
{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{
 "uid":"e2e-$1","kind":{"group":"","version":"v1","kind":"Pod"},
 "resource":{"group":"","version":"v1","resource":"pods"},"name":"direct","namespace":"$1",
 "operation":"CREATE","userInfo":{"username":"e2e-admin"},
 "object":$(kubectl create --dry-run=client -o json -f <(pod_yaml direct "$1") | tr -d '\n')}}
EOF
}
for ns in kube-system "$TOLLGATE_NS" default; do
  want=true
  [ "$ns" = default ] && want=false
  got=$(review "$ns" | curl -s --cacert "$C/tollgate-ca.crt" -H 'Content-Type: application/json' \
    --data-binary @- "https://127.0.0.1:$TOLLGATE_PORT/v1/admit" |
    python3 -c 'import json,sys; print(str(json.load(sys.stdin)["response"]["allowed"]).lower())' 2>&1)
  if [ "$got" = "$want" ]; then
    pass "AdmissionReview for a Pod in $ns sent straight to tollgate: allowed=$got"
  else
    fail "AdmissionReview for a Pod in $ns sent straight to tollgate: allowed=$want expected, got $got"
  fi
done

echo "--- tollgate down, failurePolicy Fail"

stop tollgate
sed 's/^  name: logistics-tracker$/  name: tracker-while-down/' \
  "$PACK/k8srequiredruntimeclass/samples/tracker/example_allowed.yaml" >"$W/objects/pod-down.yaml"
kc apply -f "$W/objects/pod-down.yaml"
if [ $RC -ne 0 ] && grep -q 'failed calling webhook "validation.tollgate.dev"' <<<"$ERR"; then
  pass "Pod in logistics refused while tollgate is down: $(grep -o 'failed calling webhook.*' <<<"$ERR" | cut -c1-120)"
else
  fail "Pod in logistics refused while tollgate is down"
  explain
fi
pod_yaml while-down kube-system >"$W/objects/pod-kube-system-down.yaml"
expect_accepted "Pod in kube-system accepted while tollgate is down" apply -f "$W/objects/pod-kube-system-down.yaml"

start_tollgate || fatal "tollgate did not come back"
kc apply -f "$W/objects/pod-down.yaml"
if [ $RC -eq 0 ] && grep -q '^Warning: \[tracker-image-tag\]' <<<"$ERR"; then
  pass "tollgate back: the same Pod in logistics accepted (with the :latest warning)"
else
  fail "tollgate back: the same Pod in logistics accepted"
  explain
fi

echo "--- cluster mode: Namespaces from the API server (tollgate as the chart's ServiceAccount)"

# The chart's RBAC for --cluster, applied for real; tollgate runs with a token of its
# ServiceAccount, not as an admin, so a missing permission fails here.
helm template tollgate "$ROOT/charts/tollgate" -n "$TOLLGATE_NS" -f "$E2E/values/cluster.yaml" \
  >"$W/objects/chart-cluster.yaml" 2>"$W/err" || fatal "helm template -f values/cluster.yaml"
python3 -c '
import sys, yaml
keep = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "CustomResourceDefinition"}
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] in keep]
yaml.safe_dump_all(docs, open(sys.argv[2], "w"))' "$W/objects/chart-cluster.yaml" "$W/objects/cluster-rbac.yaml"
kc apply -f "$W/objects/cluster-rbac.yaml"
[ $RC -eq 0 ] || { explain; fatal "apply the chart's RBAC and Gatekeeper's CRDs"; }
for crd in constrainttemplates.templates.gatekeeper.sh expansiontemplate.expansion.gatekeeper.sh \
  constrainttemplatepodstatuses.status.gatekeeper.sh constraintpodstatuses.status.gatekeeper.sh \
  configs.config.gatekeeper.sh syncsets.syncset.gatekeeper.sh \
  policyreports.wgpolicyk8s.io clusterpolicyreports.wgpolicyk8s.io; do
  WATCH=kube-apiserver wait_for "CRD $crd Established" kubectl wait --for condition=Established --timeout 5s "crd/$crd" ||
    fatal "the chart's CRD $crd is not Established"
done
GK_MOD="$(go env GOMODCACHE)/github.com/open-policy-agent/gatekeeper/v3@v3.23.0"
[ -d "$GK_MOD/test/bats/tests/templates" ] || fatal "Gatekeeper v3.23.0 module missing at $GK_MOD (tests/e2e/install-tools.sh downloads it)"
CRD_ORACLE=$(bash "$ROOT/tests/crd-oracle/install.sh" | tail -n 1) || fatal "build tollgate-crd-oracle"
# tollgate reaches the API server through a proxy the partition step can stop.
API_PROXY_PORT=$(free_port)
start api-proxy python3 "$E2E/tcp_proxy.py" "$API_PROXY_PORT" "$API_PORT"
kc create token tollgate -n "$TOLLGATE_NS" --duration 2h
[ $RC -eq 0 ] || { explain; fatal "create a token for tollgate's ServiceAccount"; }
SA_TOKEN=$OUT
cluster_kubeconfig() { # server-url file
  printf '%s\n' "apiVersion: v1" "kind: Config" "clusters:" "  - name: e2e" \
    "    cluster: {server: \"$1\", certificate-authority: $C/kube-ca.crt}" \
    "users:" "  - name: tollgate" "    user: {token: \"$SA_TOKEN\"}" "contexts:" "  - name: e2e" \
    "    context: {cluster: e2e, user: tollgate}" "current-context: e2e" >"$2"
}
cluster_kubeconfig "https://127.0.0.1:$API_PROXY_PORT" "$W/tollgate-kubeconfig"
mkdir -p "$W/cluster-policies"
cp "$E2E"/manifests/namespace-selector/*.yaml "$W/cluster-policies/"
# No serviceaccount controller here: each namespace gets the `default` ServiceAccount that the
# ServiceAccount admission plugin looks up before it lets a Pod in.
namespace_yaml() { # name [team]
  printf 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n' "$1"
  [ -z "${2:-}" ] || printf '  labels:\n    team: %s\n' "$2"
  printf -- '---\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: default\n  namespace: %s\n---\n' "$1"
}
{ namespace_yaml payments payments; namespace_yaml open; } >"$W/objects/team-namespaces.yaml"
kc apply -f "$W/objects/team-namespaces.yaml"
[ $RC -eq 0 ] || { explain; fatal "create the payments and open namespaces"; }
stop tollgate
KUBECONFIG="$W/tollgate-kubeconfig" POD_NAMESPACE="$TOLLGATE_NS" POD_NAME=tollgate-a SERVICE_ACCOUNT_NAME=tollgate \
  start_tollgate --cluster --audit-interval 0 --policies "$W/cluster-policies" || fatal "tollgate --cluster did not come up"
pass "tollgate --cluster ready as system:serviceaccount:$TOLLGATE_NS:tollgate: $(curl -s "http://127.0.0.1:$PROBE_PORT/readyz" | head -n 1)"

pod_yaml open-pod open >"$W/objects/pod-open.yaml"
expect_accepted "Pod in a namespace without the team label admitted (namespaceSelector does not match)" \
  apply -f "$W/objects/pod-open.yaml"
pod_yaml payments-pod payments >"$W/objects/pod-payments.yaml"
kc apply -f "$W/objects/pod-payments.yaml"
if [ $RC -ne 0 ] && [ "$(denying_constraints)" = need-owner ] &&
  grep -q 'in a namespace of team payments' <<<"$ERR"; then
  pass "Pod in the labelled namespace refused by [need-owner], namespaceObject read: $(grep -o 'Pod "payments-pod".*' <<<"$ERR")"
else
  fail "Pod in the labelled namespace refused by [need-owner] with the team from namespaceObject"
  explain
fi
# A label added later is seen through the watch.
kc label namespace open team=payments
[ $RC -eq 0 ] || { explain; fatal "label namespace open"; }
pod_yaml open-pod-2 open >"$W/objects/pod-open-2.yaml"
# (kubectl's output is read whole: under pipefail its own exit status would decide a pipe.)
refused_in_open() { grep -q '\[need-owner\]' <<<"$(kubectl apply --dry-run=server -f "$W/objects/pod-open-2.yaml" 2>&1)"; }
started=$SECONDS
if STEP_TIMEOUT=60 wait_for "the label on namespace open to be enforced" refused_in_open; then
  pass "label team=payments added to namespace open: enforced after $((SECONDS - started)) s"
else
  fail "label team=payments added to namespace open: enforced"
fi
# A Namespace created immediately before its first Pod (one apply, in order).
namespace_yaml fresh payments >"$W/objects/fresh.yaml"
pod_yaml fresh-pod fresh >>"$W/objects/fresh.yaml"
kc apply -f "$W/objects/fresh.yaml"
if grep -q '^namespace/fresh created' <<<"$OUT" && [ "$(denying_constraints)" = need-owner ]; then
  pass "Pod in a Namespace created a moment before it refused by [need-owner]"
else
  fail "Pod in a Namespace created a moment before it refused by [need-owner]"
  explain
fi
# A namespaced request whose Namespace does not exist: Gatekeeper's answer, whatever the constraints.
direct() { # namespace: the response as "allowed code message"
  [ -f "$W/objects/review-$1.json" ] || review "$1" >"$W/objects/review-$1.json"
  curl -s --cacert "$C/tollgate-ca.crt" -H 'Content-Type: application/json' \
    --data-binary @"$W/objects/review-$1.json" "https://127.0.0.1:$TOLLGATE_PORT/v1/admit" |
    python3 -c 'import json,sys; r=json.load(sys.stdin)["response"]; print(r["allowed"], r["status"]["code"], r["status"].get("message", ""))' 2>&1
}
got=$(direct missing)
if [ "$got" = 'False 500 failed to create augmentedReview: namespaces "missing" not found' ]; then
  pass "review for a Pod in a missing Namespace: $got"
else
  fail "review for a Pod in a missing Namespace: want 'False 500 failed to create augmentedReview: namespaces \"missing\" not found', got '$got'"
fi

echo "--- cluster mode: ConstraintTemplates and constraints from the API server"
source "$E2E/cluster-policies.sh"
echo "--- cluster mode: referential data (Gatekeeper's Config, data.inventory)"
source "$E2E/cluster-sync.sh"
echo "--- cluster mode: audit"
source "$E2E/cluster-audit.sh"

# kube-apiserver restarted: enforcement never lapses (the cache answers), and tollgate resyncs.
review payments >"$W/objects/review-payments.json"   # kubectl needs the API server to build it
stop kube-apiserver
got=$(direct payments)
if [[ "$got" == 'False 403 [need-owner] Pod "direct" is denied in a namespace of team payments'* ]]; then
  pass "kube-apiserver down: a Pod in payments still refused by [need-owner] from the cache"
else
  fail "kube-apiserver down: a Pod in payments still refused by [need-owner] from the cache (got '$got')"
fi
got=$(cm_direct "$TOLLGATE_PORT")
if [[ "$got" == "False 403 [cm-need-owner]"* ]]; then
  pass "kube-apiserver down: the cluster's constraint cm-need-owner still enforced"
else
  fail "kube-apiserver down: the cluster's constraint cm-need-owner still enforced (got '$got')"
fi
start_apiserver
WATCH=kube-apiserver STEP_TIMEOUT=60 wait_for "kube-apiserver /readyz after the restart" kubectl get --raw /readyz ||
  fatal "kube-apiserver did not come back"
kc label namespace open team-
[ $RC -eq 0 ] || { explain; fatal "remove the label from namespace open"; }
pod_yaml open-pod-3 open >"$W/objects/pod-open-3.yaml"
admitted_in_open() { grep -q 'created (server dry run)' <<<"$(kubectl apply --dry-run=server -f "$W/objects/pod-open-3.yaml" 2>&1)"; }
started=$SECONDS
if STEP_TIMEOUT=90 wait_for "tollgate to see the label removed after the restart" admitted_in_open; then
  pass "after the kube-apiserver restart tollgate resynced: label removal on open seen after $((SECONDS - started)) s"
else
  fail "after the kube-apiserver restart tollgate resynced (label removal seen)"
fi
restarts=$(curl -s "http://127.0.0.1:$PROBE_PORT/metrics" | awk '/^tollgate_watch_restarts_total\{resource="namespaces"\}/ {print $2}')
echo "    Namespace watch restarts counted: ${restarts:-0}"
still_enforced() { cm_refused; }
if STEP_TIMEOUT=60 wait_for "cm-need-owner after the restart" still_enforced; then
  pass "after the kube-apiserver restart the cluster's constraint is still enforced (the relist published no empty set)"
else
  fail "after the kube-apiserver restart the cluster's constraint is still enforced"
fi

echo "--- cluster mode: partition, two replicas, Gatekeeper's templates, garbage collection"
source "$E2E/cluster-failover.sh"

# An API server that cannot be reached at start: tollgate serves, but is not ready.
cluster_kubeconfig "https://127.0.0.1:$(free_port)" "$W/unreachable-kubeconfig"
UNREACHABLE_PROBE=$(free_port)
start tollgate-unreachable env KUBECONFIG="$W/unreachable-kubeconfig" POD_NAMESPACE="$TOLLGATE_NS" \
  "$TOLLGATE_BIN" serve --listen "127.0.0.1:$(free_port)" --probe-listen "127.0.0.1:$UNREACHABLE_PROBE" \
  --tls-cert "$C/tollgate.crt" --tls-key "$C/tollgate.key" --cluster
# Not ready for the cluster's sake alone: the files and the pack are published meanwhile.
unready() { [[ "$(curl -s "http://127.0.0.1:$UNREACHABLE_PROBE/readyz")" == "not ready: waiting for cluster"* ]]; }
if WATCH=tollgate-unreachable wait_for "tollgate with an unreachable API server to answer /readyz" unready; then
  pass "API server unreachable at start: /readyz says $(curl -s "http://127.0.0.1:$UNREACHABLE_PROBE/readyz")"
else
  fail "API server unreachable at start: /readyz 503"
fi
stop tollgate-unreachable
stop tollgate
start_tollgate || fatal "tollgate did not come back in file mode"

echo "--- the Helm chart against this API server"

# Server-side dry-run: the API server validates the rendered chart for real (schema, defaulting,
# webhook configuration validation, the CEL of matchConditions, cluster mode's Gatekeeper CRDs,
# the ServiceMonitor and PrometheusRule against the Prometheus Operator's CRDs, installed here
# from the release install-tools.sh pins). cert-manager kinds are left out: their CRDs are not
# installed here.
KUBE_VERSION=$(kubectl version -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["serverVersion"]["gitVersion"])')
PROMETHEUS_OPERATOR_VERSION=$(sed -n 's/^PROMETHEUS_OPERATOR_VERSION=\(v[0-9.]*\).*/\1/p' "$E2E/install-tools.sh")
PO_CRDS="$(go env GOMODCACHE)/github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION/example/prometheus-operator-crd"
[ -d "$PO_CRDS" ] || fatal "prometheus-operator $PROMETHEUS_OPERATOR_VERSION's CRDs missing at $PO_CRDS (tests/e2e/install-tools.sh downloads them)"
kc apply --server-side -f "$PO_CRDS/monitoring.coreos.com_servicemonitors.yaml" -f "$PO_CRDS/monitoring.coreos.com_prometheusrules.yaml"
[ $RC -eq 0 ] || { explain; fatal "apply the Prometheus Operator's ServiceMonitor and PrometheusRule CRDs"; }
for crd in servicemonitors.monitoring.coreos.com prometheusrules.monitoring.coreos.com; do
  WATCH=kube-apiserver wait_for "CRD $crd Established" kubectl wait --for condition=Established --timeout 5s "crd/$crd" ||
    fatal "the Prometheus Operator's CRD $crd is not Established"
done
kc create namespace monitoring
[ $RC -eq 0 ] || { explain; fatal "create namespace monitoring (full values put the monitoring objects there)"; }
for profile in default secret single full opt-in cluster; do
  values=()
  [ "$profile" = default ] || values=(-f "$E2E/values/$profile.yaml")
  helm template tollgate "$ROOT/charts/tollgate" -n "$TOLLGATE_NS" --kube-version "$KUBE_VERSION" \
    "${values[@]}" >"$W/objects/chart-$profile.yaml" 2>"$W/err"
  python3 -c '
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["apiVersion"] != "cert-manager.io/v1"]
yaml.safe_dump_all(docs, open(sys.argv[1], "w"))' "$W/objects/chart-$profile.yaml"
  kc apply --dry-run=server -f "$W/objects/chart-$profile.yaml"
  if [ $RC -eq 0 ]; then
    pass "chart ($profile values) accepted by kube-apiserver --dry-run=server: $(wc -l <<<"$OUT") objects"
  else
    fail "chart ($profile values) accepted by kube-apiserver --dry-run=server"
    explain
  fi
done

# The chart's policies ConfigMap is a policy directory tollgate loads.
mkdir -p "$W/chart-policies"
python3 -c '
import os, sys, yaml
for d in yaml.safe_load_all(open(sys.argv[1])):
    if d and d["kind"] == "ConfigMap":
        for name, content in d["data"].items():
            open(os.path.join(sys.argv[2], name), "w").write(content)' "$W/objects/chart-single.yaml" "$W/chart-policies"
pod_yaml in-sandbox sandbox >"$W/objects/pod-sandbox.yaml"
"$TOLLGATE_BIN" eval -f "$W/objects/pod-sandbox.yaml" --policies "$W/chart-policies" >"$W/out" 2>&1
if [ $? -eq 1 ] && grep -q 'deny-in-sandbox' "$W/out"; then
  pass "tollgate loads the chart's policies ConfigMap (single values): $(head -c 120 "$W/out")"
else
  fail "tollgate loads the chart's policies ConfigMap (single values)"
  sed 's/^/    /' "$W/out"
fi

# The chart's generated certificate (tls.mode helm) is one tollgate can serve with.
python3 - "$W/objects/chart-default.yaml" "$W/chart-tls" <<'EOF'
import base64, os, re, sys
text, out = open(sys.argv[1]).read(), sys.argv[2]
os.makedirs(out, exist_ok=True)
for key in ("tls.crt", "tls.key", "ca.crt"):
    m = re.search(r"^  %s: (\S+)$" % re.escape(key), text, re.M)
    open(os.path.join(out, key), "wb").write(base64.b64decode(m.group(1)))
EOF
stop tollgate
start tollgate "$TOLLGATE_BIN" serve \
  --listen "127.0.0.1:$TOLLGATE_PORT" --probe-listen "127.0.0.1:$PROBE_PORT" \
  --tls-cert "$W/chart-tls/tls.crt" --tls-key "$W/chart-tls/tls.key"
svc_host="tollgate.$TOLLGATE_NS.svc"
if WATCH=tollgate wait_for "tollgate with the chart's certificate" curl -sf --cacert "$W/chart-tls/ca.crt" \
  --resolve "$svc_host:$TOLLGATE_PORT:127.0.0.1" -o /dev/null -X POST -d '{}' \
  -H 'Content-Type: application/json' "https://$svc_host:$TOLLGATE_PORT/v1/admit"; then
  pass "tollgate serves the chart's generated certificate, verified as $svc_host against its caBundle"
else
  fail "tollgate serves the chart's generated certificate, verified as $svc_host against its caBundle"
fi

echo "--- kube-controller-manager after the kube-apiserver restart"

# The same controller-manager process, still healthy; kube-system: no webhook is called there.
kcm_pid=${PIDS[kube-controller-manager]:-}
if [ -n "$kcm_pid" ] && kill -0 "$kcm_pid" 2>/dev/null && kcm_healthy >/dev/null 2>&1; then
  pass "kube-controller-manager (pid $kcm_pid) survived the kube-apiserver restart: /healthz $(kcm_healthy)"
  gc_check kube-system gc-late "garbage collector after the kube-apiserver restart"
else
  fail "kube-controller-manager survived the kube-apiserver restart (running, /healthz ok)"
fi

[ $FAILED -eq 0 ] || show_logs
echo "$PASSED passed, $FAILED failed"
[ $FAILED -eq 0 ]
