# Sourced by run.sh, bench/audit-vs-gatekeeper.sh and bench/gatekeeper-cluster.sh: the tools, a
# new network namespace, the process helpers of tests/e2e/run.sh, and etcd + kube-apiserver
# v1.30.14 on loopback with
# Gatekeeper's CRDs. Expects ROOT and GKA_SCRIPT (the script to run again inside the namespace);
# GKA_RELEASE=1 builds tollgate with --release when TOLLGATE_BIN is not set. Sets W (the work
# directory), KUBECONFIG, C (certificates), GK_MOD, TOLLGATE_BIN, and the gatekeeper certificate
# in $W/gk-certs that its external-data client reads.
if [ -z "${GKA_IN_NETNS:-}" ]; then
  # Tools and binaries first, on the host: nothing is downloaded inside the namespace.
  tools_bin=$(bash "$ROOT/tests/tools/install.sh" | tail -n 1) || { echo "FAIL: tests/tools/install.sh"; exit 1; }
  kube_bin=$(bash "$ROOT/tests/e2e/install-tools.sh" | tail -n 1) || { echo "FAIL: tests/e2e/install-tools.sh"; exit 1; }
  if [ -z "${TOLLGATE_BIN:-}" ]; then
    gka_profile=debug
    [ -z "${GKA_RELEASE:-}" ] || gka_profile=release
    (cd "$ROOT" && cargo build -q -p tollgate ${GKA_RELEASE:+--release}) || { echo "FAIL: cargo build -p tollgate"; exit 1; }
    TOLLGATE_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/$gka_profile/tollgate"
  fi
  export PATH="$tools_bin:$kube_bin:$PATH" TOLLGATE_BIN
  export GK_MOD="$(go env GOMODCACHE)/github.com/open-policy-agent/gatekeeper/v3@v3.23.0"
  if [ -z "${GKA_NO_NETNS:-}" ] && command -v ip >/dev/null && unshare -n true 2>/dev/null; then
    export GKA_IN_NETNS=1
    exec unshare -n -- "$BASH" "$GKA_SCRIPT" "$@"
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
mkdir -p "$W/logs" "$W/certs" "$W/objects" "$W/gk-cache" "$W/gk-certs" "$W/no-policies"
export KUBECONFIG="$W/kubeconfig"
unset POD_NAMESPACE POD_NAME SERVICE_ACCOUNT_NAME TOLLGATE_SERVICE_ACCOUNT TOLLGATE_POLICIES

# === processes (as tests/e2e/run.sh) ===

STOP_GRACE_S=15
source "$ROOT/tests/e2e/processes.sh"
cleanup() {
  local name
  for name in "${!PIDS[@]}"; do [ "$name" = kube-apiserver ] || [ "$name" = etcd ] || stop "$name"; done
  stop kube-apiserver
  stop etcd
  if [ -n "${GKA_KEEP:-}" ]; then echo "work directory kept: $W"; else rm -rf "$W"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

kc() { # kubectl, its output kept in $W/out and shown on failure by the caller
  kubectl "$@" >"$W/out" 2>&1
}

# === certificates, etcd, kube-apiserver ===

cd "$W/certs" || fatal "cd $W/certs"
source "$ROOT/tests/e2e/certs.sh"
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


kc apply --server-side -f "$GK_MOD/charts/gatekeeper/crds/" || { cat "$W/out"; fatal "apply Gatekeeper's CRDs"; }
kc wait --for condition=Established --timeout 60s crd --all || { cat "$W/out"; fatal "Gatekeeper's CRDs Established"; }
echo "Gatekeeper's CRDs: $(ls "$GK_MOD/charts/gatekeeper/crds" | wc -l) from $GK_MOD/charts/gatekeeper/crds"
# External data is on (the chart's default): its client reads tls.crt/tls.key from --cert-dir,
# where the chart mounts the Secret the webhook's rotator fills; here a certificate from the test CA.
cp "$C/gatekeeper.crt" "$W/gk-certs/tls.crt" && cp "$C/gatekeeper.key" "$W/gk-certs/tls.key" &&
  cp "$C/kube-ca.crt" "$W/gk-certs/ca.crt" || fatal "Gatekeeper's certificate"
