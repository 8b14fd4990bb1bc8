#!/usr/bin/env bash
# Static checks of charts/tollgate: helm lint, helm template under every value set in
# tests/e2e/values/, kubeconform -strict against offline Kubernetes JSON schemas (and the
# Prometheus Operator's, made from its CRDs), the alerting rules and dashboard queries through
# Prometheus's parsers (tests/promql-check), assertions on the rendered objects
# (tests/e2e/chart_assert.py), values that must be refused, cluster mode's
# CRDs and webhook rule compared with Gatekeeper's chart in its Go module, and snapshots of the
# default and cluster-mode renders (certificates masked). UPDATE_SNAPSHOTS=1 rewrites them.
# (tests/e2e/run.sh also applies the rendered chart to a real kube-apiserver with --dry-run=server.)
# Prints PASS/FAIL per check and a final "N passed, N failed"; exits 1 on any failure.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
E2E="$ROOT/tests/e2e"
CHART="$ROOT/charts/tollgate"
NS=tollgate-system
SNAPSHOTS="$E2E/snapshots"

tools_bin=$(bash "$E2E/install-tools.sh" | tail -n 1) || { echo "FAIL: install-tools.sh"; exit 1; }
export PATH="$tools_bin:$PATH"
CACHE=$(dirname "$tools_bin")
# The Kubernetes release the harness runs; schemas are those of its minor version.
KUBE_VERSION=$(sed -n 's/^K8S_VERSION=\(v[0-9.]*\).*/\1/p' "$E2E/install-tools.sh")
SCHEMA_VERSION=$(sed -n 's/^KUBERNETES_VALIDATE_VERSION=\([0-9.]*\).*/\1/p' "$E2E/install-tools.sh")
SCHEMAS="$CACHE/kubernetes-json-schema/v$SCHEMA_VERSION-standalone-strict"
# The ServiceMonitor and PrometheusRule (monitoring values): schemas made by install-tools.sh from
# the CRDs of the Prometheus Operator release it pins. Without them those two kinds are skipped,
# and said so, unless TOLLGATE_REQUIRE_ORACLES is set.
PROMETHEUS_OPERATOR_VERSION=$(sed -n 's/^PROMETHEUS_OPERATOR_VERSION=\(v[0-9.]*\).*/\1/p' "$E2E/install-tools.sh")
MONITORING_SCHEMAS="$CACHE/prometheus-operator-json-schema/$PROMETHEUS_OPERATOR_VERSION"
SKIP_KINDS=Certificate,Issuer
PROMQL_CHECK=$(TOLLGATE_TOOLS="$CACHE" bash "$ROOT/tests/promql-check/install.sh" 2>/dev/null | tail -n 1) || PROMQL_CHECK=""

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

if [ ! -f "$MONITORING_SCHEMAS/servicemonitor-monitoring-v1.json" ]; then
  if [ -n "${TOLLGATE_REQUIRE_ORACLES+set}" ]; then
    fail "kubeconform schemas of prometheus-operator $PROMETHEUS_OPERATOR_VERSION are missing ($MONITORING_SCHEMAS) and TOLLGATE_REQUIRE_ORACLES is set: run tests/e2e/install-tools.sh"
  else
    echo "SKIP: kubeconform of ServiceMonitor and PrometheusRule: no schemas at $MONITORING_SCHEMAS (tests/e2e/install-tools.sh makes them from prometheus-operator $PROMETHEUS_OPERATOR_VERSION's CRDs)"
  fi
  SKIP_KINDS+=,ServiceMonitor,PrometheusRule
fi
if [ -z "$PROMQL_CHECK" ]; then
  if [ -n "${TOLLGATE_REQUIRE_ORACLES+set}" ]; then
    fail "tests/promql-check does not build and TOLLGATE_REQUIRE_ORACLES is set: run tests/promql-check/install.sh"
  else
    echo "SKIP: alerting rules and dashboard queries through Prometheus's parsers: tests/promql-check does not build"
  fi
fi

run_check "helm lint --strict (default values)" helm lint --strict "$CHART"

# Lints, renders to $W/PROFILE.yaml, validates and asserts one value set (none: the defaults).
check_profile() { # profile [values-file]
  local profile=$1 values=() out="$W/$1.yaml"
  [ -z "${2:-}" ] || values=(-f "$2")
  [ -z "${2:-}" ] || run_check "helm lint --strict ($profile values)" helm lint --strict "$CHART" "${values[@]}"
  if ! helm template tollgate "$CHART" -n "$NS" --kube-version "$KUBE_VERSION" "${values[@]}" >"$out" 2>"$W/log"; then
    fail "helm template ($profile values)"; sed 's/^/    /' "$W/log"; return
  fi
  pass "helm template ($profile values): $(grep -c '^kind:' "$out") objects"
  # Strict: unknown fields are errors, and so is a kind without a schema, except cert-manager's.
  run_check "kubeconform -strict ($profile values)" kubeconform -strict -summary \
    -kubernetes-version "$SCHEMA_VERSION" -skip "$SKIP_KINDS" \
    -schema-location "$SCHEMAS/{{ .ResourceKind }}{{ .KindSuffix }}.json" \
    -schema-location "$MONITORING_SCHEMAS/{{ .ResourceKind }}{{ .KindSuffix }}.json" "$out"
  # The alerting rules as the Prometheus Operator's admission webhook parses them, and the
  # dashboard's queries through the PromQL parser.
  if [ -n "$PROMQL_CHECK" ] && grep -qE '^kind: PrometheusRule|grafana_dashboard' "$out"; then
    if "$PROMQL_CHECK" "$out" >"$W/log" 2>&1; then
      pass "alerting rules and dashboard queries parse ($profile values): $(paste -sd';' "$W/log" | sed 's/;/; /g')"
    else
      fail "alerting rules and dashboard queries parse ($profile values)"; sed 's/^/    /' "$W/log"
    fi
  fi
  python3 "$E2E/chart_assert.py" "$out" "$profile" "$NS" ${2:+"$2"} >"$W/assert" 2>&1
  while IFS= read -r line; do
    case "$line" in
      PASS:*) PASSED=$((PASSED + 1)); echo "$line" ;;
      FAIL:*) FAILED=$((FAILED + 1)); echo "$line" ;;
      *) FAILED=$((FAILED + 1)); echo "FAIL: chart_assert.py ($profile): $line" ;;
    esac
  done <"$W/assert"
}

profiles=(default secret single full opt-in cluster)
for profile in "${profiles[@]}"; do
  if [ "$profile" = default ]; then check_profile default; else check_profile "$profile" "$E2E/values/$profile.yaml"; fi
done
# Cluster mode with webhook.clusterRules.custom: those rules replace Gatekeeper's.
cat >"$W/cluster-custom.values.yaml" <<'VALUES'
cluster:
  enabled: true
webhook:
  clusterRules:
    custom:
      - apiGroups: ["networking.k8s.io"]
        apiVersions: ["v1"]
        operations: ["CREATE", "UPDATE"]
        resources: ["ingresses"]
        scope: Namespaced
VALUES
check_profile cluster-custom "$W/cluster-custom.values.yaml"
# Monitoring in file mode with the defaults: objects in the release namespace, no stale-audit
# alert (no audit runs; every replica exports gatekeeper_audit_last_run_time 0).
cat >"$W/monitoring-file.values.yaml" <<'VALUES'
serviceMonitor:
  enabled: true
prometheusRule:
  enabled: true
grafanaDashboard:
  enabled: true
VALUES
check_profile monitoring-file "$W/monitoring-file.values.yaml"

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
refused "a status subresource in clusterRules (only Gatekeeper's services/status)" "/webhook/clusterRules/subResources/0" \
  --set 'webhook.clusterRules.subResources={pods/status}'
refused "a scrape interval that is not a Prometheus duration" "/serviceMonitor/interval" --set serviceMonitor.interval=30
refused "an alert's for: that is not a Prometheus duration" "/prometheusRule/alerts/down/for" \
  --set prometheusRule.alerts.down.for=5min
refused "an error-share threshold of 1 or more" "/prometheusRule/alerts/admissionErrors/ratio" \
  --set prometheusRule.alerts.admissionErrors.ratio=1
refused "an unknown alert" "additional properties" --set prometheusRule.alerts.cpu.enabled=true
refused "an operation Kubernetes does not have in clusterRules" "/webhook/clusterRules/operations/0" \
  --set 'webhook.clusterRules.operations={READ}'
refused "a matchCondition with the name of cluster mode's own" \
  'webhook.matchConditions names "exclude-tollgate-serviceaccount", which cluster mode adds itself' \
  --set cluster.enabled=true --set 'webhook.matchConditions[0].name=exclude-tollgate-serviceaccount' \
  --set-string 'webhook.matchConditions[0].expression=true'
# 64 matchConditions are allowed, but not 64 beside cluster mode's own.
sixty_four=$(python3 -c 'import json; print(json.dumps([{"name": f"c{i}", "expression": "true"} for i in range(64)]))')
refused "64 matchConditions in cluster mode (65 with its own)" "more than the 64 Kubernetes allows" \
  --set cluster.enabled=true --set-json "webhook.matchConditions=$sixty_four"

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

# Cluster mode against Gatekeeper itself, read from its Go module (install-tools.sh downloads it;
# the version is pinned there): the CRD files the chart carries are byte-for-byte the module's,
# the rendered CRDs are those files plus only the keep annotation and the chart's labels, and the
# webhook rule is the one Gatekeeper's chart renders.
GATEKEEPER_VERSION=$(sed -n 's/^GATEKEEPER_VERSION=\(v[0-9.]*\).*/\1/p' "$E2E/install-tools.sh")
GK_CHART="$(go env GOMODCACHE)/github.com/open-policy-agent/gatekeeper/v3@$GATEKEEPER_VERSION/charts/gatekeeper"
CHART_CRDS=(constrainttemplate expansiontemplate constrainttemplatepodstatus constraintpodstatus config syncset)
if [ ! -d "$GK_CHART/crds" ]; then
  if [ -n "${TOLLGATE_REQUIRE_ORACLES+set}" ]; then
    fail "Gatekeeper $GATEKEEPER_VERSION's chart is not in the Go module cache ($GK_CHART) and TOLLGATE_REQUIRE_ORACLES is set: run tests/e2e/install-tools.sh (go mod download github.com/open-policy-agent/gatekeeper/v3@$GATEKEEPER_VERSION)"
  else
    echo "SKIP: cluster mode against Gatekeeper $GATEKEEPER_VERSION: $GK_CHART is missing (tests/e2e/install-tools.sh downloads it)"
  fi
else
  got=$(cd "$CHART/gatekeeper-crds" && ls)
  want=$(printf '%s-customresourcedefinition.yaml\n' "${CHART_CRDS[@]}" | sort)
  if [ "$got" = "$want" ]; then
    pass "charts/tollgate/gatekeeper-crds holds exactly the CRDs cluster mode renders"
  else
    fail "charts/tollgate/gatekeeper-crds holds exactly the CRDs cluster mode renders: want [$want], got [$got]"
  fi
  for name in "${CHART_CRDS[@]}"; do
    file=$name-customresourcedefinition.yaml
    run_check "gatekeeper-crds/$file is byte-for-byte Gatekeeper $GATEKEEPER_VERSION's (copy $GK_CHART/crds/$file to update)" \
      diff -u "$GK_CHART/crds/$file" "$CHART/gatekeeper-crds/$file"
  done
  for profile in cluster full; do
    [ -f "$W/$profile.yaml" ] || continue
    run_check "rendered CRDs ($profile values): Gatekeeper $GATEKEEPER_VERSION's, plus only the keep annotation and the chart's labels" \
      python3 - "$W/$profile.yaml" "$GK_CHART/crds" "${CHART_CRDS[@]}" <<'PYEOF'
import difflib, sys, yaml
rendered, crd_dir, names = sys.argv[1], sys.argv[2], sys.argv[3:]
# What templates/gatekeeper-crds.yaml adds to each CRD: nothing else may differ.
ADDED_ANNOTATIONS = {"helm.sh/resource-policy"}
ADDED_LABELS = {"helm.sh/chart", "app.kubernetes.io/name", "app.kubernetes.io/instance",
                "app.kubernetes.io/version", "app.kubernetes.io/managed-by"}
# The PolicyReport CRDs are Kyverno's, compared below.
got = {d["metadata"]["name"]: d for d in yaml.safe_load_all(open(rendered))
       if d and d.get("kind") == "CustomResourceDefinition" and d["spec"]["group"] != "wgpolicyk8s.io"}
failed = False
for name in names:
    want = yaml.safe_load(open(f"{crd_dir}/{name}-customresourcedefinition.yaml"))
    crd = got.pop(want["metadata"]["name"], None)
    if crd is None:
        print(f"{want['metadata']['name']} is not rendered")
        failed = True
        continue
    meta = crd["metadata"]
    for key, added in (("annotations", ADDED_ANNOTATIONS), ("labels", ADDED_LABELS)):
        meta[key] = {k: v for k, v in meta.get(key, {}).items() if k not in added}
        if not meta[key]:
            del meta[key]
    if crd != want:
        failed = True
        a, b = (yaml.safe_dump(x, sort_keys=True).splitlines() for x in (want, crd))
        print("\n".join(difflib.unified_diff(a, b, f"gatekeeper {name}", f"rendered {name}", lineterm="")))
if got:
    print(f"CRDs rendered that are not Gatekeeper's: {sorted(got)}")
    failed = True
sys.exit(1 if failed else 0)
PYEOF
  done
  # Gatekeeper's chart rendered, its validation webhook's rules compared with ours; for the full
  # values with deletions (its enableDeleteOperations; full.yaml adds DELETE to clusterRules).
  for profile in cluster full; do
    [ -f "$W/$profile.yaml" ] || continue
    gk_values=()
    [ "$profile" = full ] && gk_values=(--set enableDeleteOperations=true)
    if helm template gatekeeper "$GK_CHART" -n gatekeeper-system --kube-version "$KUBE_VERSION" "${gk_values[@]}" \
      --show-only templates/gatekeeper-validating-webhook-configuration-validatingwebhookconfiguration.yaml \
      >"$W/gatekeeper-webhook.yaml" 2>"$W/log"; then
      run_check "webhook rules ($profile values) are Gatekeeper $GATEKEEPER_VERSION's (validation.gatekeeper.sh${gk_values[1]:+, ${gk_values[1]}})" \
        python3 - "$W/gatekeeper-webhook.yaml" "$W/$profile.yaml" <<'PYEOF'
import sys, yaml
def rules(path, webhook):
    for d in yaml.safe_load_all(open(path)):
        if d and d.get("kind") == "ValidatingWebhookConfiguration":
            for h in d["webhooks"]:
                if h["name"] == webhook:
                    return h["rules"]
gatekeeper, ours = rules(sys.argv[1], "validation.gatekeeper.sh"), rules(sys.argv[2], "validation.tollgate.dev")
if not gatekeeper or gatekeeper != ours:
    print(f"Gatekeeper: {gatekeeper}\ntollgate:   {ours}")
    sys.exit(1)
PYEOF
    else
      fail "helm template of Gatekeeper $GATEKEEPER_VERSION's chart ($GK_CHART)"; sed 's/^/    /' "$W/log"
    fi
  done
fi

# Snapshots of the default and the cluster-mode render. Generated certificates differ on every
# render: masked.
mask() { sed -E 's/^(  (tls\.crt|tls\.key|ca\.crt)|      caBundle): .*/\1: <generated>/' "$1"; }
for profile in default cluster; do
  snapshot="$SNAPSHOTS/chart-$profile.yaml"
  [ -f "$W/$profile.yaml" ] || continue
  mask "$W/$profile.yaml" >"$W/$profile.masked.yaml"
  if [ -n "${UPDATE_SNAPSHOTS:-}" ]; then
    mkdir -p "$SNAPSHOTS"
    cp "$W/$profile.masked.yaml" "$snapshot"
    pass "snapshot written: ${snapshot#"$ROOT"/}"
  elif diff -u "$snapshot" "$W/$profile.masked.yaml" >"$W/log" 2>&1; then
    pass "$profile render matches ${snapshot#"$ROOT"/}"
  else
    fail "$profile render differs from ${snapshot#"$ROOT"/} (UPDATE_SNAPSHOTS=1 to accept)"
    sed 's/^/    /' "$W/log"
  fi
done

# The PolicyReport CRDs: byte-for-byte those of the pinned Kyverno module (install-tools.sh
# downloads it), and rendered with only the keep annotation and the chart's labels added.
KYVERNO_VERSION=$(sed -n 's/^KYVERNO_VERSION=\(v[0-9.]*\).*/\1/p' "$E2E/install-tools.sh")
KY_CRDS="$(go env GOMODCACHE)/github.com/kyverno/kyverno@$KYVERNO_VERSION/config/crds/policyreport"
if [ ! -d "$KY_CRDS" ]; then
  if [ -n "${TOLLGATE_REQUIRE_ORACLES+set}" ]; then
    fail "Kyverno $KYVERNO_VERSION's PolicyReport CRDs are not in the Go module cache ($KY_CRDS): run tests/e2e/install-tools.sh"
  else
    echo "SKIP: PolicyReport CRDs against Kyverno $KYVERNO_VERSION: $KY_CRDS is missing"
  fi
else
  for file in wgpolicyk8s.io_policyreports.yaml wgpolicyk8s.io_clusterpolicyreports.yaml; do
    run_check "policyreport-crds/$file is byte-for-byte Kyverno $KYVERNO_VERSION's (copy $KY_CRDS/$file to update)" \
      diff -u "$KY_CRDS/$file" "$CHART/policyreport-crds/$file"
  done
  run_check "rendered PolicyReport CRDs (cluster values): Kyverno $KYVERNO_VERSION's, plus only the keep annotation and the chart's labels" \
    python3 - "$W/cluster.yaml" "$KY_CRDS" <<'PYEOF'
import sys, yaml
rendered, crd_dir = sys.argv[1], sys.argv[2]
got = {d["metadata"]["name"]: d for d in yaml.safe_load_all(open(rendered))
       if d and d.get("kind") == "CustomResourceDefinition" and d["spec"]["group"] == "wgpolicyk8s.io"}
failed = False
for plural in ("policyreports", "clusterpolicyreports"):
    want = yaml.safe_load(open(f"{crd_dir}/wgpolicyk8s.io_{plural}.yaml"))
    crd = got.get(want["metadata"]["name"])
    if crd is None:
        print(f"{want['metadata']['name']} is not rendered"); failed = True; continue
    meta = crd["metadata"]
    meta["annotations"] = {k: v for k, v in meta.get("annotations", {}).items() if k != "helm.sh/resource-policy"}
    meta.pop("labels", None)
    if crd != want:
        print(f"{plural} differs from Kyverno's"); failed = True
sys.exit(1 if failed else 0)
PYEOF
fi

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
