# Sourced by run.sh after cluster-sync.sh: the audit. Objects created before their constraint
# existed appear in its status after a pass, with Gatekeeper's count, cap, order and truncation,
# written by the Lease holder's field manager. tollgate-a runs with --audit-interval 2s and
# --constraint-violations-limit 5 and --policy-reports here, and without the audit again afterwards (the convergence
# check of cluster-failover.sh wants no writes).

stop tollgate
KUBECONFIG="$W/tollgate-kubeconfig" POD_NAMESPACE="$TOLLGATE_NS" POD_NAME=tollgate-a SERVICE_ACCOUNT_NAME=tollgate \
  start_tollgate --cluster --audit-interval 2s --constraint-violations-limit 5 --policy-reports --policies "$W/cluster-policies" ||
  fatal "tollgate-a with the audit did not come up"

# Twelve ConfigMaps, none with the labels the constraint will ask for; created first.
{
  printf 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: audit-a\n---\n'
  for i in $(seq -w 1 12); do
    printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-%s\n  namespace: audit-a\n---\n' "$i"
  done
} >"$W/objects/audit-objects.yaml"
kc apply -f "$W/objects/audit-objects.yaml"
[ $RC -eq 0 ] || { explain; fatal "create the ConfigMaps to audit"; }
# Long label names make the message longer than Gatekeeper's 256 bytes.
long=$(printf 'x%.0s' $(seq 1 60))
cat >"$W/objects/audit-need-owner.yaml" <<EOF
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: K8sRequiredLabels
metadata:
  name: audit-need-owner
spec:
  match:
    kinds:
      - apiGroups: [""]
        kinds: ["ConfigMap"]
    namespaces: ["audit-a"]
  parameters:
    labels: ["owner", "a$long", "b$long", "c$long", "d$long"]
EOF
started=$(now_ms)
kc apply -f "$W/objects/audit-need-owner.yaml"
[ $RC -eq 0 ] || { explain; fatal "apply constraint audit-need-owner"; }
audit_status() { kubectl get k8srequiredlabels audit-need-owner -o json 2>/dev/null; }
audited() { [ "$(audit_status | python3 -c 'import json,sys; print(json.load(sys.stdin).get("status", {}).get("totalViolations", ""))')" = 12 ]; }
if STEP_TIMEOUT=60 wait_for "an audit pass to report audit-need-owner" audited; then
  pass "audit: ConfigMaps created before their constraint counted in status.totalViolations=12 after $(($(now_ms) - started)) ms"
else
  fail "audit: status.totalViolations=12 on audit-need-owner"
  audit_status | python3 -c 'import json,sys; print(json.load(sys.stdin).get("status"))' | sed 's/^/    /'
fi
if audit_status | python3 -c '
import json, sys
s = json.load(sys.stdin)["status"]
v = s.get("violations", [])
names = [x["name"] for x in v]
problems = []
# Gatekeeper keeps the limit smallest by (group, version, kind, namespace, name, message, action)
# and lists them largest first.
if names != ["cm-05", "cm-04", "cm-03", "cm-02", "cm-01"]:
    problems.append("names %s" % names)
for x in v:
    if len(x["message"].encode()) != 256 or not x["message"].endswith("..."):
        problems.append("message not cut to 256 bytes with ...: %d bytes" % len(x["message"].encode()))
    if (x["group"], x["version"], x["kind"], x.get("namespace"), x["enforcementAction"]) != ("", "v1", "ConfigMap", "audit-a", "deny"):
        problems.append("fields %s" % x)
if not s.get("auditTimestamp", "").endswith("Z"):
    problems.append("auditTimestamp %r" % s.get("auditTimestamp"))
print("; ".join(problems))
sys.exit(1 if problems else 0)' >"$W/out" 2>&1; then
  pass "audit: status.violations capped at 5 (--constraint-violations-limit), Gatekeeper's order, messages cut to 256 bytes, auditTimestamp set"
else
  fail "audit: status.violations with Gatekeeper's cap, order and truncation"
  sed 's/^/    /' "$W/out"
fi
managers=$(kubectl get k8srequiredlabels audit-need-owner --show-managed-fields -o json |
  python3 -c 'import json,sys; print(" ".join(sorted({m["manager"] for m in json.load(sys.stdin)["metadata"].get("managedFields", []) if m.get("subresource") == "status"})))')
if [ "$managers" = "tollgate-tollgate-a" ]; then
  pass "audit: the status is written by the Lease holder's field manager only ($managers)"
else
  fail "audit: the status is written by the Lease holder's field manager only (got '$managers')"
fi
denials=$(curl -s "http://127.0.0.1:$PROBE_PORT/metrics" | awk '/^gatekeeper_violations\{enforcement_action="deny"\}/ {print $2}')
if [ "${denials:-0}" -ge 12 ]; then
  pass "audit: gatekeeper_violations{enforcement_action=\"deny\"} $denials"
else
  fail "audit: gatekeeper_violations{enforcement_action=\"deny\"} at least 12 (got '${denials:-}')"
fi
# `tollgate audit` from a terminal or CI prints what the status holds (and the rest, uncapped).
"$TOLLGATE_BIN" audit --namespace "$TOLLGATE_NS" --format json >"$W/audit.json" 2>"$W/audit.err"
audit_rc=$?
audit_status >"$W/audit-status.json"
if [ $audit_rc -eq 1 ] && python3 - "$W/audit.json" "$W/audit-status.json" >"$W/out" 2>&1 <<'EOF'
import json, sys
cli = json.load(open(sys.argv[1]))
status = json.load(open(sys.argv[2]))["status"]
mine = [c for c in cli["constraints"] if c["name"] == "audit-need-owner"][0]
problems = []
if mine["totalViolations"] != status["totalViolations"]:
    problems.append("total %s vs status %s" % (mine["totalViolations"], status["totalViolations"]))
listed = [json.dumps(v, sort_keys=True) for v in mine["violations"]]
for v in status["violations"]:
    if json.dumps(v, sort_keys=True) not in listed:
        problems.append("status violation not printed: %s" % v)
if len(mine["violations"]) != 12:
    problems.append("%d violations printed, want all 12" % len(mine["violations"]))
print("; ".join(problems))
sys.exit(1 if problems else 0)
EOF
then
  pass "tollgate audit --format json: exit 1 (deny violations), all 12 violations printed, every one the status holds among them ($(tail -n 1 "$W/audit.err"))"
else
  fail "tollgate audit against the cluster prints the violations the status holds (exit $audit_rc)"
  sed 's/^/    /' "$W/out" "$W/audit.err"
fi
"$TOLLGATE_BIN" audit --namespace "$TOLLGATE_NS" >"$W/audit.txt" 2>/dev/null
if grep -q '^K8sRequiredLabels/audit-need-owner (deny): 12 violations$' "$W/audit.txt" &&
  grep -q '^  \[audit-need-owner\] ConfigMap audit-a/cm-12: you must provide labels' "$W/audit.txt"; then
  pass "tollgate audit (human): $(grep -c '^  \[audit-need-owner\]' "$W/audit.txt") lines under 'K8sRequiredLabels/audit-need-owner (deny): 12 violations'"
else
  fail "tollgate audit (human output)"
  sed 's/^/    /' "$W/audit.txt" | head -20
fi
"$TOLLGATE_BIN" audit --namespace "$TOLLGATE_NS" --format junit >"$W/audit.xml" 2>/dev/null
if python3 - "$W/audit.xml" <<'EOF'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
case = [c for c in root.iter("testcase") if c.get("name") == "audit-need-owner"][0]
failure = case.find("failure")
sys.exit(0 if failure is not None and failure.text.count("ConfigMap audit-a/") == 12 else 1)
EOF
then
  pass "tollgate audit --format junit: audit-need-owner is a failing test case listing its 12 violations"
else
  fail "tollgate audit --format junit: audit-need-owner is a failing test case listing its 12 violations"
  head -20 "$W/audit.xml" | sed 's/^/    /'
fi
# The PolicyReport is complete where the status is capped.
report=tollgate-k8srequiredlabels-audit-need-owner
report_complete() {
  [ "$(kubectl get policyreport "$report" -n audit-a -o jsonpath='{.summary.fail}' 2>/dev/null)" = 12 ]
}
if STEP_TIMEOUT=60 wait_for "the PolicyReport of audit-need-owner" report_complete &&
  kubectl get policyreport "$report" -n audit-a -o json | python3 -c '
import json, sys
r = json.load(sys.stdin)
names = sorted(x["resources"][0]["name"] for x in r["results"])
ok = names == ["cm-%02d" % i for i in range(1, 13)] and all(
    x["policy"] == "audit-need-owner" and x["result"] == "fail" and x["source"] == "tollgate" for x in r["results"])
sys.exit(0 if ok else 1)'; then
  pass "PolicyReport audit-a/$report: all 12 results (the status keeps 5), result fail, source tollgate"
else
  fail "PolicyReport audit-a/$report with all 12 results"
  kubectl get policyreport -A 2>&1 | sed 's/^/    /'
fi
kc delete -f "$W/objects/audit-need-owner.yaml"
report_gone() { ! kubectl get policyreport "$report" -n audit-a >/dev/null 2>&1; }
if STEP_TIMEOUT=60 wait_for "the PolicyReport to be deleted with its constraint" report_gone; then
  pass "constraint deleted: its PolicyReport is deleted by the next pass"
else
  fail "constraint deleted: its PolicyReport is deleted by the next pass"
fi
stop tollgate
KUBECONFIG="$W/tollgate-kubeconfig" POD_NAMESPACE="$TOLLGATE_NS" POD_NAME=tollgate-a SERVICE_ACCOUNT_NAME=tollgate \
  start_tollgate --cluster --audit-interval 0 --policies "$W/cluster-policies" || fatal "tollgate-a did not come back"
