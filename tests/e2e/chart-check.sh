#!/usr/bin/env bash
# Static checks of charts/tollgate: helm lint, helm template under every value set in
# tests/e2e/values/, kubeconform -strict against offline Kubernetes JSON schemas, assertions on
# the rendered objects (tests/e2e/chart_assert.py), values that must be refused, and a snapshot of
# the default render (certificates masked). UPDATE_SNAPSHOTS=1 rewrites the snapshot.
# (tests/e2e/run.sh also applies the rendered chart to a real kube-apiserver with --dry-run=server.)
# Prints PASS/FAIL per check and a final "N passed, N failed"; exits 1 on any failure.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
E2E="$ROOT/tests/e2e"
CHART="$ROOT/charts/tollgate"
NS=tollgate-system
SNAPSHOT="$E2E/snapshots/chart-default.yaml"

tools_bin=$(bash "$E2E/install-tools.sh" | tail -n 1) || { echo "FAIL: install-tools.sh"; exit 1; }
export PATH="$tools_bin:$PATH"
CACHE=$(dirname "$tools_bin")
# The Kubernetes release the harness runs; schemas are those of its minor version.
KUBE_VERSION=$(sed -n 's/^K8S_VERSION=\(v[0-9.]*\).*/\1/p' "$E2E/install-tools.sh")
SCHEMA_VERSION=$(sed -n 's/^KUBERNETES_VALIDATE_VERSION=\([0-9.]*\).*/\1/p' "$E2E/install-tools.sh")
SCHEMAS="$CACHE/kubernetes-json-schema/v$SCHEMA_VERSION-standalone-strict"

W=$(mktemp -d "${TMPDIR:-/tmp}/tollgate-chart.XXXXXX")
trap 'rm -rf "$W"' EXIT

PASSED=0
FAILED=0
pass() { PASSED=$((PASSED + 1)); echo "PASS: $*"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL: $*"; }
run_check() { # description command...: pass when the command succeeds, else show its output
  local what=$1; shift
  if "$@" >"$W/log" 2>&1; then pass "$what"; else fail "$what"; sed 's/^/    /' "$W/log"; fi
}

echo "helm $(helm version --short), kubeconform $(kubeconform -v), schemas v$SCHEMA_VERSION, kube $KUBE_VERSION"

run_check "helm lint --strict (default values)" helm lint --strict "$CHART"

profiles=(default secret single full opt-in)
for profile in "${profiles[@]}"; do
  values=()
  [ "$profile" = default ] || values=(-f "$E2E/values/$profile.yaml")
  [ "$profile" = default ] || run_check "helm lint --strict ($profile values)" helm lint --strict "$CHART" "${values[@]}"
  out="$W/$profile.yaml"
  if ! helm template tollgate "$CHART" -n "$NS" --kube-version "$KUBE_VERSION" "${values[@]}" >"$out" 2>"$W/log"; then
    fail "helm template ($profile values)"; sed 's/^/    /' "$W/log"; continue
  fi
  pass "helm template ($profile values): $(grep -c '^kind:' "$out") objects"
  # Strict: unknown fields are errors, and so is a kind without a schema, except cert-manager's.
  run_check "kubeconform -strict ($profile values)" kubeconform -strict -summary \
    -kubernetes-version "$SCHEMA_VERSION" -skip Certificate,Issuer \
    -schema-location "$SCHEMAS/{{ .ResourceKind }}{{ .KindSuffix }}.json" "$out"
  python3 "$E2E/chart_assert.py" "$out" "$profile" "$NS" ${values[1]:+"${values[1]}"} >"$W/assert" 2>&1
  while IFS= read -r line; do
    case "$line" in
      PASS:*) PASSED=$((PASSED + 1)); echo "$line" ;;
      FAIL:*) FAILED=$((FAILED + 1)); echo "$line" ;;
      *) FAILED=$((FAILED + 1)); echo "FAIL: chart_assert.py ($profile): $line" ;;
    esac
  done <"$W/assert"
done

# Argo CD renders with `helm template`, where `lookup` finds nothing: tls.mode helm generates a
# new CA on every render (the chart README sends such tools to the other modes), while secret and
# cert-manager must render the same objects every time.
for profile in default secret full; do
  [ -f "$W/$profile.yaml" ] || continue
  mode=helm values=()
  if [ "$profile" != default ]; then
    values=(-f "$E2E/values/$profile.yaml")
    mode=$(python3 -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1])).get("tls", {}).get("mode", "helm"))' \
      "$E2E/values/$profile.yaml")
  fi
  helm template tollgate "$CHART" -n "$NS" --kube-version "$KUBE_VERSION" "${values[@]}" >"$W/$profile.again.yaml" 2>"$W/log"
  if [ "$mode" = helm ]; then
    if cmp -s "$W/$profile.yaml" "$W/$profile.again.yaml"; then
      fail "tls.mode helm ($profile values): two renders without a cluster differ (new CA each time)"
    else
      pass "tls.mode helm ($profile values): two renders without a cluster differ (new CA each time)"
    fi
  else
    run_check "tls.mode $mode ($profile values): two renders are identical (safe for helm template tools)" \
      diff -u "$W/$profile.yaml" "$W/$profile.again.yaml"
  fi
done

# Values the chart must refuse.
refused() { # description expected-message helm-args...
  local what=$1 msg=$2; shift 2
  if helm template tollgate "$CHART" -n "$NS" --kube-version "$KUBE_VERSION" "$@" >/dev/null 2>"$W/log"; then
    fail "refused: $what (rendered instead)"
  elif grep -q -- "$msg" "$W/log"; then
    pass "refused: $what"
  else
    fail "refused: $what (not with '$msg')"; sed 's/^/    /' "$W/log"
  fi
}
refused "tls.mode secret without a Secret name" "tls.secret.name is required" --set tls.mode=secret
refused "tls.mode secret without a caBundle" "tls.secret.caBundle" --set tls.mode=secret --set tls.secret.name=x
refused "an unknown tls.mode" "tls.mode" --set tls.mode=vault
refused "failurePolicy other than Fail/Ignore" "failurePolicy" --set webhook.failurePolicy=Deny
refused "a status subresource in rules" "/webhook/rules/0/resources/0" --set 'webhook.rules[0].apiGroups[0]=' \
  --set 'webhook.rules[0].apiVersions[0]=v1' --set 'webhook.rules[0].operations[0]=UPDATE' \
  --set 'webhook.rules[0].resources[0]=pods/status'
refused "timeoutSeconds above 30" "timeoutSeconds" --set webhook.timeoutSeconds=31
refused "an unknown value" "additional properties" --set replicas=2
refused "a Kubernetes older than 1.28" "kubeVersion" --kube-version 1.27.0
refused "an included namespace that is exempt by name" 'webhook.includeNamespaces names "kube-public", which is exempt' \
  --set 'webhook.includeNamespaces={logistics,kube-public}'
refused "the release namespace as an included namespace" 'names "tollgate-system", which is exempt' \
  --set 'webhook.includeNamespaces={tollgate-system}'
refused "an included namespace that is exempt by prefix" 'which exemptNamespacePrefixes exempts ("cattle-")' \
  --set 'webhook.includeNamespaces={cattle-apps}' --set 'exemptNamespacePrefixes={cattle-}'
refused "an exempt namespace that is not a namespace name" "/exemptNamespaces/0" --set 'exemptNamespaces={Cattle_System}'
refused "an empty exempt prefix (tollgate would refuse to start)" "/exemptNamespacePrefixes/0" \
  --set 'exemptNamespacePrefixes[0]='
refused "a ResourceQuota too small for a rollout" "resourceQuota.pods (3) must be at least replicaCount + 1 (4)" \
  --set replicaCount=3 --set resourceQuota.pods=3

# Objects and fields that some values leave out. kinds_and_fields prints a render's kinds and the
# Deployment's priority class as space-separated words; renders matches whole words.
kinds_and_fields() {
  helm template tollgate "$CHART" -n "$NS" --kube-version "$KUBE_VERSION" "$@" 2>&1 |
    python3 -c '
import sys, yaml
docs = [d for d in yaml.safe_load_all(sys.stdin) if d]
pc = [d["spec"]["template"]["spec"].get("priorityClassName", "") for d in docs if d["kind"] == "Deployment"]
print(" ".join(sorted(d["kind"] for d in docs)), "priorityClassName=" + ",".join(pc))'
}
renders() { # description expected-substring unexpected-substring helm-args...
  local what=$1 want=$2 unwanted=$3; shift 3
  local got
  got=$(kinds_and_fields "$@")
  if [[ " $got " == *" $want "* && " $got " != *" $unwanted "* ]]; then
    pass "$what"
  else
    fail "$what: want '$want' and not '$unwanted' in: $got"
  fi
}
renders "priorityClassName \"\": no priority class, no ResourceQuota" "priorityClassName=" "ResourceQuota" \
  --set priorityClassName=
renders "resourceQuota.enabled false: the priority class without the quota" \
  "priorityClassName=system-cluster-critical" "ResourceQuota" --set resourceQuota.enabled=false

# Snapshot of the default render. Generated certificates differ on every render: masked.
mask() { sed -E 's/^(  (tls\.crt|tls\.key|ca\.crt)|      caBundle): .*/\1: <generated>/' "$1"; }
if [ -f "$W/default.yaml" ]; then
  mask "$W/default.yaml" >"$W/default.masked.yaml"
  if [ -n "${UPDATE_SNAPSHOTS:-}" ]; then
    mkdir -p "$(dirname "$SNAPSHOT")"
    cp "$W/default.masked.yaml" "$SNAPSHOT"
    pass "snapshot written: ${SNAPSHOT#"$ROOT"/}"
  elif diff -u "$SNAPSHOT" "$W/default.masked.yaml" >"$W/log" 2>&1; then
    pass "default render matches ${SNAPSHOT#"$ROOT"/}"
  else
    fail "default render differs from ${SNAPSHOT#"$ROOT"/} (UPDATE_SNAPSHOTS=1 to accept)"
    sed 's/^/    /' "$W/log"
  fi
fi

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
