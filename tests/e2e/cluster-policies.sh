# Sourced by run.sh (its functions and variables): `tollgate serve --cluster` as Gatekeeper's
# template and constraint controllers. tollgate runs as the chart's ServiceAccount, through
# tcp_proxy.py ($API_PROXY_PORT) so that a step can cut it off the API server alone.
# Expects: tollgate (POD_NAME tollgate-a) ready on $TOLLGATE_PORT/$PROBE_PORT, the Gatekeeper
# CRDs from the chart applied, $CRD_ORACLE and $GK_MOD set.

BATS="$GK_MOD/test/bats/tests"
CT_KIND=k8srequiredlabels
CRD="$CT_KIND.constraints.gatekeeper.sh"

now_ms() { date +%s%3N; }

crd_established() {
  [ "$(kubectl get crd "$1" -o jsonpath='{.status.conditions[?(@.type=="Established")].status}' 2>/dev/null)" = True ]
}

# ConfigMaps in cm-test need an `owner` label once cm-need-owner is enforced.
printf 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: cm-test\n' >"$W/objects/cm-test.yaml"
kc apply -f "$W/objects/cm-test.yaml"
[ $RC -eq 0 ] || { explain; fatal "create namespace cm-test"; }
cat >"$W/objects/cm-need-owner.yaml" <<'EOF'
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: K8sRequiredLabels
metadata:
  name: cm-need-owner
spec:
  match:
    kinds:
      - apiGroups: [""]
        kinds: ["ConfigMap"]
    namespaces: ["cm-test"]
  parameters:
    labels: ["owner"]
EOF
cm_refused() { # name: a dry-run ConfigMap without the owner label is refused by cm-need-owner
  grep -q '\[cm-need-owner\] you must provide labels' <<<"$(kubectl create configmap "${1:-probe}" -n cm-test --dry-run=server 2>&1)"
}
cm_admitted() {
  grep -q 'created (server dry run)' <<<"$(kubectl create configmap "${1:-probe}" -n cm-test --dry-run=server 2>&1)"
}
# A ConfigMap CREATE in cm-test sent straight to one tollgate: "allowed code message".
cm_direct() { # https-port
  printf '%s' '{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"e2e-cm","kind":{"group":"","version":"v1","kind":"ConfigMap"},"resource":{"group":"","version":"v1","resource":"configmaps"},"name":"direct","namespace":"cm-test","operation":"CREATE","userInfo":{"username":"e2e-admin"},"object":{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"direct","namespace":"cm-test"}}}}' |
    curl -s --cacert "$C/tollgate-ca.crt" -H 'Content-Type: application/json' --data-binary @- \
      "https://127.0.0.1:$1/v1/admit" |
    python3 -c 'import json,sys; r=json.load(sys.stdin)["response"]; print(r["allowed"], r.get("status", {}).get("code", 200), r.get("status", {}).get("message", ""))' 2>&1
}

template_status() { # template jsonpath
  kubectl get constrainttemplate "$1" -o jsonpath="{.status$2}" 2>/dev/null
}

# --- the constraint CRD is the one Gatekeeper's generator makes
"$CRD_ORACLE" "$BATS/templates/k8srequiredlabels_template.yaml" >"$W/objects/oracle-crd.json" 2>"$W/err" ||
  fatal "tollgate-crd-oracle on the bats k8srequiredlabels template: $(cat "$W/err")"
# The API server's defaulting applied to Gatekeeper's CRD before tollgate creates the real one.
kc create --dry-run=server -o json -f "$W/objects/oracle-crd.json"
[ $RC -eq 0 ] || { explain; fatal "server dry run of the oracle's CRD"; }
printf '%s\n' "$OUT" >"$W/objects/oracle-crd-defaulted.json"
started=$(now_ms)
kc apply -f "$BATS/templates/k8srequiredlabels_template.yaml"
[ $RC -eq 0 ] || { explain; fatal "apply the bats k8srequiredlabels template"; }
if STEP_TIMEOUT=60 wait_for "$CRD to be Established" crd_established "$CRD"; then
  pass "kubectl apply of a ConstraintTemplate: constraint CRD $CRD Established after $(($(now_ms) - started)) ms"
else
  fail "kubectl apply of a ConstraintTemplate: constraint CRD $CRD Established"
fi
kubectl get crd "$CRD" -o json >"$W/objects/live-crd.json" 2>&1
kubectl get constrainttemplate "$CT_KIND" -o json >"$W/objects/live-template.json" 2>&1
if python3 - "$W/objects/oracle-crd-defaulted.json" "$W/objects/live-crd.json" "$W/objects/live-template.json" >"$W/out" 2>&1 <<'EOF'
import json, sys
want, have, template = (json.load(open(p)) for p in sys.argv[1:4])
problems = []
if want["spec"] != have["spec"]:
    problems.append("spec differs:\n  gatekeeper: %s\n  tollgate:   %s" % (json.dumps(want["spec"], sort_keys=True), json.dumps(have["spec"], sort_keys=True)))
if want["metadata"].get("labels") != have["metadata"].get("labels"):
    problems.append("labels differ: %s vs %s" % (want["metadata"].get("labels"), have["metadata"].get("labels")))
owners = have["metadata"].get("ownerReferences", [])
expected = {"kind": "ConstraintTemplate", "name": template["metadata"]["name"], "uid": template["metadata"]["uid"], "controller": True}
if not any(all(o.get(k) == v for k, v in expected.items()) for o in owners):
    problems.append("no controller ownerReference to the template: %s" % owners)
print("\n".join(problems))
sys.exit(1 if problems else 0)
EOF
then
  pass "constraint CRD equals Gatekeeper's generator (frameworks CreateCRD, K8sValidationTarget) after API-server defaulting, owned by its template"
else
  fail "constraint CRD equals Gatekeeper's generator after API-server defaulting"
  sed 's/^/    /' "$W/out"
fi

# --- a constraint applied with kubectl is enforced. Two times: kubectl's own (the first apply
# of a new kind refreshes kubectl's discovery cache, which takes a second or two), and from
# kubectl's return to the first refusal, which is tollgate's.
started=$(now_ms)
kc apply -f "$W/objects/cm-need-owner.yaml"
[ $RC -eq 0 ] || { explain; fatal "apply constraint cm-need-owner"; }
applied=$(now_ms)
if STEP_TIMEOUT=60 wait_for "cm-need-owner to be enforced" cm_refused; then
  enforced=$(now_ms)
  pass "kubectl apply of a constraint: enforced $((enforced - applied)) ms after kubectl returned ($((enforced - started)) ms from the start of kubectl apply, $((applied - started)) ms of it kubectl's)"
else
  fail "kubectl apply of a constraint: enforced"
fi
kc get constraints
if [ $RC -eq 0 ] && grep -q '^cm-need-owner  *deny' <<<"$OUT"; then
  pass "kubectl get constraints lists it: $(grep '^cm-need-owner' <<<"$OUT" | tr -s ' ')"
else
  fail "kubectl get constraints lists cm-need-owner"
  explain
fi
printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: owned\n  namespace: cm-test\n  labels:\n    owner: e2e\n' >"$W/objects/cm-owned.yaml"
expect_accepted "ConfigMap with the owner label admitted" apply --dry-run=server -f "$W/objects/cm-owned.yaml"
template_byPod_ok() {
  [ "$(template_status "$1" '.created')" = true ] &&
    [ "$(template_status "$1" '.byPod[*].id')" = "${2:-tollgate-a}" ]
}
constraint_enforced() {
  [ "$(kubectl get k8srequiredlabels cm-need-owner -o jsonpath='{.status.byPod[*].enforced}' 2>/dev/null)" = true ]
}
if STEP_TIMEOUT=60 wait_for "template and constraint status" template_byPod_ok "$CT_KIND" &&
  STEP_TIMEOUT=60 wait_for "constraint status" constraint_enforced; then
  pass "status: template created=true, byPod[tollgate-a]; constraint byPod[tollgate-a].enforced=true"
else
  fail "status: template created=true with byPod, constraint enforced"
  echo "    template: $(template_status "$CT_KIND" '')"
  echo "    constraint: $(kubectl get k8srequiredlabels cm-need-owner -o jsonpath='{.status}' 2>&1)"
fi

# --- a template with broken Rego: reported with code and location; everything else works
cat >"$W/objects/broken.yaml" <<'EOF'
apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: k8se2ebroken
spec:
  crd:
    spec:
      names:
        kind: K8sE2eBroken
  targets:
    - target: admission.k8s.gatekeeper.sh
      rego: |
        package k8se2ebroken
        violation[{"msg": msg}] {
          msg := concat("", [input.review.object.kind
        }
EOF
kc apply -f "$W/objects/broken.yaml"
[ $RC -eq 0 ] || { explain; fatal "apply the broken template"; }
broken_reported() {
  [ "$(template_status k8se2ebroken '.byPod[0].errors[0].code')" = ingest_error ] &&
    [ "$(template_status k8se2ebroken '.created')" = false ]
}
if STEP_TIMEOUT=60 wait_for "the broken template's status" broken_reported; then
  pass "template with broken Rego: status.byPod errors code=ingest_error location=$(template_status k8se2ebroken '.byPod[0].errors[0].location'), created=false"
else
  fail "template with broken Rego: status reports ingest_error"
  echo "    status: $(template_status k8se2ebroken '')"
fi
if [ -n "$(template_status k8se2ebroken '.byPod[0].errors[0].location')" ]; then
  pass "the error's location names the Rego line and column"
else
  fail "the error's location names the Rego line and column"
fi
if cm_refused && ! kubectl get crd k8se2ebroken.constraints.gatekeeper.sh >/dev/null 2>&1; then
  pass "with a broken template beside it cm-need-owner still enforced; the broken one gets no CRD"
else
  fail "with a broken template beside it cm-need-owner still enforced; the broken one gets no CRD"
fi
sed 's/\[input.review.object.kind$/[input.review.object.kind])/' "$W/objects/broken.yaml" >"$W/objects/fixed.yaml"
kc apply -f "$W/objects/fixed.yaml"
fixed() { template_byPod_ok k8se2ebroken && [ -z "$(template_status k8se2ebroken '.byPod[0].errors')" ]; }
if STEP_TIMEOUT=60 wait_for "the fixed template's status" fixed; then
  pass "template fixed: error cleared, created=true"
else
  fail "template fixed: error cleared, created=true"
  echo "    status: $(template_status k8se2ebroken '')"
fi
# Breaking a good template keeps its last good version enforced.
python3 - "$BATS/templates/k8srequiredlabels_template.yaml" "$W/objects/k8srequiredlabels-broken.yaml" <<'EOF'
import sys
text = open(sys.argv[1]).read()
open(sys.argv[2], "w").write(text.replace("count(missing) > 0", "count(missing) > 0 +"))
EOF
kc apply -f "$W/objects/k8srequiredlabels-broken.yaml"
last_good_reported() { [ "$(template_status "$CT_KIND" '.byPod[0].errors[0].code')" = ingest_error ]; }
if STEP_TIMEOUT=60 wait_for "the broken update's status" last_good_reported && cm_refused; then
  pass "good template broken by an update: error in status, last good version still enforces cm-need-owner"
else
  fail "good template broken by an update: error in status, last good version still enforces cm-need-owner"
  echo "    status: $(template_status "$CT_KIND" '')"
fi
kc apply -f "$BATS/templates/k8srequiredlabels_template.yaml"
restored() { template_byPod_ok "$CT_KIND" && [ -z "$(template_status "$CT_KIND" '.byPod[0].errors')" ]; }
STEP_TIMEOUT=60 wait_for "the restored template's status" restored || fail "template restored: error cleared"
kc delete -f "$W/objects/fixed.yaml"

# --- deleting a constraint stops its enforcement (and recompiles no template)
ingestions() {
  curl -s "http://127.0.0.1:$PROBE_PORT/metrics" |
    awk '/^gatekeeper_constraint_template_ingestion_count_total/ {n += $2} END {print n + 0}'
}
ingested_before=$(ingestions)
kc delete -f "$W/objects/cm-need-owner.yaml"
started=$(now_ms)
if STEP_TIMEOUT=60 wait_for "cm-need-owner to stop being enforced" cm_admitted; then
  pass "constraint deleted: no longer enforced after $(($(now_ms) - started)) ms"
else
  fail "constraint deleted: no longer enforced"
fi
kc apply -f "$W/objects/cm-need-owner.yaml"
STEP_TIMEOUT=60 wait_for "cm-need-owner enforced again" cm_refused || fatal "cm-need-owner not enforced again"
if [ "$(ingestions)" = "$ingested_before" ]; then
  pass "constraint deleted and applied again: no template recompiled (gatekeeper_constraint_template_ingestion_count_total stays $ingested_before)"
else
  fail "constraint deleted and applied again: no template recompiled ($ingested_before ingestions before, $(ingestions) after)"
fi

# --- a cluster template of the same kind as a file template wins; both places say so
kc apply -f "$E2E/manifests/namespace-selector/template.yaml"
[ $RC -eq 0 ] || { explain; fatal "apply k8se2eteamonly to the cluster"; }
override_reported() {
  [ "$(template_status k8se2eteamonly '.byPod[0].errors[0].code')" = overrides_local_template ] &&
    [ "$(template_status k8se2eteamonly '.created')" = true ] &&
    curl -s "http://127.0.0.1:$PROBE_PORT/readyz" | grep -q 'k8se2eteamonly.*cluster defines the same constraint kind'
}
if STEP_TIMEOUT=60 wait_for "the override to be reported" override_reported; then
  pass "cluster template over a file template of the same kind: status says so (created=true), /readyz names the file one"
else
  fail "cluster template over a file template of the same kind: reported in status and /readyz"
  echo "    status: $(template_status k8se2eteamonly '')"
  curl -s "http://127.0.0.1:$PROBE_PORT/readyz" | sed 's/^/    readyz: /'
fi
kc delete -f "$E2E/manifests/namespace-selector/template.yaml"

# --- an ExpansionTemplate from the cluster: the built-in workload expansion steps aside for the
# kinds it expands, so a Deployment in payments is refused as implied by the cluster's template
sed 's/namespace: logistics$/namespace: payments/' "$E2E/manifests/deployment-runtimeclass-runc.yaml" >"$W/objects/deployment-payments.yaml"
implied_by() { # expansion: the Deployment in payments refused by need-owner, implied by it
  grep -q "\[need-owner\] \[Implied by $1\]" <<<"$(kubectl apply --dry-run=server -f "$W/objects/deployment-payments.yaml" 2>&1)"
}
if implied_by expand-workloads; then
  pass "Deployment in payments refused by [need-owner], implied by the built-in expand-workloads"
else
  fail "Deployment in payments refused by [need-owner], implied by the built-in expand-workloads"
fi
sed 's/name: expand-deployments$/name: e2e-expand-deployments/' "$PACK/k8sedgeresources/samples/tracker/expansion.yaml" >"$W/objects/expansion.yaml"
kc apply -f "$W/objects/expansion.yaml"
[ $RC -eq 0 ] || { explain; fatal "apply the ExpansionTemplate"; }
started=$(now_ms)
if STEP_TIMEOUT=60 wait_for "the cluster's ExpansionTemplate to be used" implied_by e2e-expand-deployments; then
  pass "ExpansionTemplate applied with kubectl: the Deployment is refused as implied by e2e-expand-deployments after $(($(now_ms) - started)) ms"
else
  fail "ExpansionTemplate applied with kubectl is used for Deployments"
fi
kc delete -f "$W/objects/expansion.yaml"
if STEP_TIMEOUT=60 wait_for "the built-in expansion to come back" implied_by expand-workloads; then
  pass "ExpansionTemplate deleted: the built-in expansion is back"
else
  fail "ExpansionTemplate deleted: the built-in expansion is back"
fi
