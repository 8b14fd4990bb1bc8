# Sourced by run.sh after cluster-sync.sh: the audit. Tracker Pods created before their constraint
# existed appear in its status after a pass, with Gatekeeper's count, cap, order and truncation,
# written by the Lease holder's field manager; `tollgate audit` against the cluster and on files;
# then two replicas, the leader stopped in the middle of a pass. tollgate-a runs with
# --audit-interval 2s, --constraint-violations-limit 5 and --policy-reports here, and without the
# audit again afterwards (the convergence check of cluster-failover.sh wants no writes).

stop tollgate
KUBECONFIG="$W/tollgate-kubeconfig" POD_NAMESPACE="$TOLLGATE_NS" POD_NAME=tollgate-a SERVICE_ACCOUNT_NAME=tollgate \
  start_tollgate --cluster --audit-interval 2s --constraint-violations-limit 5 --policy-reports --policies "$W/cluster-policies" ||
  fatal "tollgate-a with the audit did not come up"

# Twelve tracker Pods (created directly: no kubelet runs them) from a registry the pack's
# allowlist refuses, created before their constraint exists. Long image names make the message
# longer than Gatekeeper's 256 bytes.
long=$(printf 'x%.0s' $(seq 1 180))
{
  printf 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: audit-a\n---\n'
  # Pods need their ServiceAccount (ServiceAccount admission); no controller may have made it yet.
  printf 'apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: default\n  namespace: audit-a\n---\n'
  for i in $(seq -w 1 12); do
    printf 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: tracker-%s\n  namespace: audit-a\n  labels: {app: logistics-tracker}\n' "$i"
    printf 'spec:\n  runtimeClassName: wasmedge\n  nodeSelector: {node-type: edge}\n'
    printf '  containers:\n    - name: tracker\n      image: docker.io/logistics/tracker-%s:1.%s\n---\n' "$long" "$i"
  done
} >"$W/objects/audit-objects.yaml"
kc apply -f "$W/objects/audit-objects.yaml"
[ $RC -eq 0 ] || { explain; fatal "create the tracker Pods to audit"; }
# The pack's registry template, then its constraint for this namespace.
kc apply -f "$ROOT/constraints/k8sallowedregistries/template.yaml"
[ $RC -eq 0 ] || { explain; fatal "apply the pack's k8sallowedregistries template"; }
STEP_TIMEOUT=60 wait_for "the k8sallowedregistries CRD" crd_established k8sallowedregistries.constraints.gatekeeper.sh ||
  fatal "the k8sallowedregistries CRD is not Established"
sed 's/name: tracker-allowed-registries$/name: audit-registries/; s/- logistics$/- audit-a/' \
  "$ROOT/constraints/k8sallowedregistries/samples/tracker/constraint.yaml" >"$W/objects/audit-registries.yaml"
started=$(now_ms)
kc apply -f "$W/objects/audit-registries.yaml"
[ $RC -eq 0 ] || { explain; fatal "apply constraint audit-registries"; }
audit_status() { kubectl get k8sallowedregistries audit-registries -o json 2>/dev/null; }
audited() { [ "$(audit_status | python3 -c 'import json,sys; print(json.load(sys.stdin).get("status", {}).get("totalViolations", ""))')" = 12 ]; }
if STEP_TIMEOUT=60 wait_for "an audit pass to report audit-registries" audited; then
  pass "audit: tracker Pods created before their constraint counted in status.totalViolations=12 after $(($(now_ms) - started)) ms"
else
  fail "audit: status.totalViolations=12 on audit-registries"
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
if names != ["tracker-05", "tracker-04", "tracker-03", "tracker-02", "tracker-01"]:
    problems.append("names %s" % names)
for x in v:
    if len(x["message"].encode()) != 256 or not x["message"].endswith("..."):
        problems.append("message not cut to 256 bytes with ...: %d bytes" % len(x["message"].encode()))
    if (x["group"], x["version"], x["kind"], x.get("namespace"), x["enforcementAction"]) != ("", "v1", "Pod", "audit-a", "deny"):
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
managers=$(kubectl get k8sallowedregistries audit-registries --show-managed-fields -o json |
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
mine = [c for c in cli["constraints"] if c["name"] == "audit-registries"][0]
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
if grep -q '^K8sAllowedRegistries/audit-registries (deny): 12 violations$' "$W/audit.txt" &&
  grep -q '^  \[audit-registries\] Pod audit-a/tracker-12: container "tracker": image "docker.io/logistics/tracker-x' "$W/audit.txt"; then
  pass "tollgate audit (human): $(grep -c '^  \[audit-registries\]' "$W/audit.txt") lines under 'K8sAllowedRegistries/audit-registries (deny): 12 violations'"
else
  fail "tollgate audit (human output)"
  sed 's/^/    /' "$W/audit.txt" | head -20
fi
"$TOLLGATE_BIN" audit --namespace "$TOLLGATE_NS" --format junit >"$W/audit.xml" 2>/dev/null
if python3 - "$W/audit.xml" <<'EOF'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
case = [c for c in root.iter("testcase") if c.get("name") == "audit-registries"][0]
failure = case.find("failure")
sys.exit(0 if failure is not None and failure.text.count("Pod audit-a/") == 12 else 1)
EOF
then
  pass "tollgate audit --format junit: audit-registries is a failing test case listing its 12 violations"
else
  fail "tollgate audit --format junit: audit-registries is a failing test case listing its 12 violations"
  head -20 "$W/audit.xml" | sed 's/^/    /'
fi
# `tollgate audit -f` on the same Pods as kubectl prints them: what `tollgate eval` finds on
# them, and what the pass over the cluster found.
kubectl get pods -n audit-a -o yaml >"$W/audit-pods.yaml"
file_policies=(--policies "$ROOT/constraints/k8sallowedregistries/template.yaml" --policies "$W/objects/audit-registries.yaml")
"$TOLLGATE_BIN" audit -f "$W/audit-pods.yaml" "${file_policies[@]}" --format json >"$W/audit-f.json" 2>"$W/audit-f.err"
audit_f_rc=$?
"$TOLLGATE_BIN" eval -f "$W/audit-pods.yaml" "${file_policies[@]}" --format json >"$W/eval.json" 2>/dev/null
eval_rc=$?
if [ $audit_f_rc -eq 1 ] && [ $eval_rc -eq 1 ] && python3 - "$W/audit-f.json" "$W/eval.json" "$W/audit.json" >"$W/out" 2>&1 <<'EOF'
import json, sys
files, evaluated, cluster = (json.load(open(p)) for p in sys.argv[1:])
def cut(m):  # Gatekeeper's 256-byte cut (these messages are ASCII)
    return m if len(m.encode()) <= 256 else m[:253] + "..."
def of(audit):
    c = [c for c in audit["constraints"] if c["name"] == "audit-registries"][0]
    return sorted((v["kind"], v.get("namespace"), v["name"], v["message"], v["enforcementAction"]) for v in c["violations"])
from_eval = sorted((r["object"]["kind"], r["object"]["namespace"], r["object"]["name"], cut(r["message"]), ",".join(r["enforcementActions"]))
                   for r in evaluated["results"] if r["constraint"]["name"] == "audit-registries")
problems = []
if of(files) != from_eval:
    problems.append("audit -f %s\n  eval %s" % (of(files), from_eval))
if of(files) != of(cluster):
    problems.append("audit -f differs from the cluster pass")
if len(from_eval) != 12:
    problems.append("%d results, want 12" % len(from_eval))
print("\n".join(problems))
sys.exit(1 if problems else 0)
EOF
then
  pass "tollgate audit -f on the Pods kubectl printed: the same 12 violations as tollgate eval and as the pass over the cluster ($(tail -n 1 "$W/audit-f.err"))"
else
  fail "tollgate audit -f gives what tollgate eval gives on the same objects (exit $audit_f_rc, eval $eval_rc)"
  sed 's/^/    /' "$W/out" "$W/audit-f.err" | head -20
fi
# The PolicyReport is complete where the status is capped.
report=tollgate-k8sallowedregistries-audit-registries
report_complete() {
  [ "$(kubectl get policyreport "$report" -n audit-a -o jsonpath='{.summary.fail}' 2>/dev/null)" = 12 ]
}
if STEP_TIMEOUT=60 wait_for "the PolicyReport of audit-registries" report_complete &&
  kubectl get policyreport "$report" -n audit-a -o json | python3 -c '
import json, sys
r = json.load(sys.stdin)
names = sorted(x["resources"][0]["name"] for x in r["results"])
ok = names == ["tracker-%02d" % i for i in range(1, 13)] and all(
    x["policy"] == "audit-registries" and x["result"] == "fail" and x["source"] == "tollgate" for x in r["results"])
sys.exit(0 if ok else 1)'; then
  pass "PolicyReport audit-a/$report: all 12 results (the status keeps 5), result fail, source tollgate"
else
  fail "PolicyReport audit-a/$report with all 12 results"
  kubectl get policyreport -A 2>&1 | sed 's/^/    /'
fi
kc delete -f "$W/objects/audit-registries.yaml"
report_gone() { ! kubectl get policyreport "$report" -n audit-a >/dev/null 2>&1; }
if STEP_TIMEOUT=60 wait_for "the PolicyReport to be deleted with its constraint" report_gone; then
  pass "constraint deleted: its PolicyReport is deleted by the next pass"
else
  fail "constraint deleted: its PolicyReport is deleted by the next pass"
fi
# --- the leader stopped in the middle of a pass: the other replica takes the Lease and audits;
# every status and report write carries the Lease holder's field manager, never two at once.
# Both replicas run the audit back to back, one object per list request, over 150 more
# objects, so that a pass lasts long enough to be stopped in.
for i in $(seq -w 1 150); do
  printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: filler-%s\n  namespace: audit-a\n---\n' "$i"
done >"$W/objects/audit-filler.yaml"
kc apply -f "$W/objects/audit-filler.yaml"
[ $RC -eq 0 ] || { explain; fatal "create the filler ConfigMaps"; }
stop tollgate
handover_args=(--cluster --audit-interval 1s --audit-chunk-size 1 --policy-reports --policies "$W/cluster-policies")
KUBECONFIG="$W/tollgate-kubeconfig" POD_NAMESPACE="$TOLLGATE_NS" POD_NAME=tollgate-a SERVICE_ACCOUNT_NAME=tollgate \
  start_tollgate "${handover_args[@]}" || fatal "tollgate-a with the audit did not come up"
start_tollgate_b "${handover_args[@]}" || fatal "tollgate-b with the audit did not come up"
sed 's/name: audit-registries$/name: audit-handover/' "$W/objects/audit-registries.yaml" >"$W/objects/audit-handover.yaml"
kc apply -f "$W/objects/audit-handover.yaml"
[ $RC -eq 0 ] || { explain; fatal "apply constraint audit-handover"; }
handover_report=tollgate-k8sallowedregistries-audit-handover
# Writers of the constraint's status and of its PolicyReport, as "manager time" lines.
writers() {
  {
    kubectl get k8sallowedregistries audit-handover --show-managed-fields -o json
    kubectl get policyreport "$handover_report" -n audit-a --show-managed-fields -o json 2>/dev/null || echo '{}'
  } | python3 -c '
import json, sys
decoder, text, at = json.JSONDecoder(), sys.stdin.read(), 0
while at < len(text.rstrip()):
    doc, at = decoder.raw_decode(text, at)
    at += len(text[at:]) - len(text[at:].lstrip())
    kind = doc.get("kind", "")
    for m in doc.get("metadata", {}).get("managedFields", []):
        if kind == "PolicyReport" or m.get("subresource") == "status":
            print(kind, m["manager"], m["time"])'
}
handover_audited() {
  [ "$(kubectl get k8sallowedregistries audit-handover -o jsonpath='{.status.totalViolations}' 2>/dev/null)" = 12 ] &&
    [ "$(kubectl get policyreport "$handover_report" -n audit-a -o jsonpath='{.summary.fail}' 2>/dev/null)" = 12 ]
}
STEP_TIMEOUT=60 wait_for "the first pass over audit-handover" handover_audited || fatal "audit-handover was not audited"
leader=$(holder)
case "$leader" in
  tollgate-a) leader_proc=tollgate other=tollgate-b ;;
  tollgate-b) leader_proc=tollgate-b other=tollgate-a ;;
  *) fatal "the status Lease is held by '$leader', not by a replica" ;;
esac
# Both replicas have run the audit loop for several passes by now; only the holder wrote.
sleep 3
before=$(writers | awk '{print $1 "/" $2}' | sort -u | tr '\n' ' ')
if [ "$before" = "K8sAllowedRegistries/tollgate-$leader PolicyReport/tollgate-$leader " ]; then
  pass "two replicas with the audit on: status and PolicyReport written by the Lease holder $leader only"
else
  fail "two replicas with the audit on: status and PolicyReport written by the Lease holder $leader only (got '$before')"
fi
leader_log="$W/logs/$leader_proc.log"
mid_pass() { [ "$(grep -o 'audit pass [a-z]*' "$leader_log" | tail -n 1)" = "audit pass started" ]; }
STEP_TIMEOUT=60 wait_for "$leader to be in the middle of a pass" mid_pass || fatal "$leader never started a pass"
stop "$leader_proc"
stopped=$(date -u +%s)
started=$(now_ms)
if grep -q 'audit pass stopped unfinished: shutting down' "$leader_log"; then
  pass "leader $leader stopped in the middle of an audit pass (its log: audit pass stopped unfinished)"
else
  fail "leader $leader stopped in the middle of an audit pass"
fi
other_audited_after_stop() {
  [ "$(holder)" = "$other" ] && writers | python3 -c '
import calendar, sys, time
stopped, other = int(sys.argv[1]), sys.argv[2]
seen = set()
for line in sys.stdin:
    kind, manager, at = line.split()
    if manager == "tollgate-" + other and calendar.timegm(time.strptime(at, "%Y-%m-%dT%H:%M:%SZ")) >= stopped:
        seen.add(kind)
sys.exit(0 if seen == {"K8sAllowedRegistries", "PolicyReport"} else 1)' "$stopped" "$other"
}
if STEP_TIMEOUT=60 wait_for "$other to take the Lease and audit" other_audited_after_stop; then
  pass "$other took the Lease and wrote status and PolicyReport from its own pass, $(($(now_ms) - started)) ms after $leader stopped"
else
  fail "$other took the Lease and audited (Lease: $(holder))"
  writers | sed 's/^/    /'
fi
# Never two at once: nothing of the stopped leader's is newer than its stop, nothing of the new
# leader's older than it.
if writers | python3 -c '
import calendar, sys, time
stopped, leader, other = int(sys.argv[1]), sys.argv[2], sys.argv[3]
bad = []
for line in sys.stdin:
    kind, manager, at = line.split()
    t = calendar.timegm(time.strptime(at, "%Y-%m-%dT%H:%M:%SZ"))
    if manager == "tollgate-" + leader and t > stopped:
        bad.append("%s written by the stopped leader at %s" % (kind, at))
    elif manager == "tollgate-" + other and t < stopped - 1:
        bad.append("%s written by the follower at %s, before the handover" % (kind, at))
    elif manager not in ("tollgate-" + leader, "tollgate-" + other):
        bad.append("%s written by %s" % (kind, manager))
print("; ".join(bad))
sys.exit(1 if bad else 0)' "$stopped" "$leader" "$other" >"$W/out"; then
  pass "handover: every status and report write is the Lease holder's ($(writers | awk '{print $1 "/" $2 "@" $3}' | sort | tr '\n' ' '))"
else
  fail "handover: every status and report write is the Lease holder's"
  sed 's/^/    /' "$W/out"
fi
kc delete -f "$W/objects/audit-handover.yaml"
kc delete -f "$W/objects/audit-filler.yaml"
stop tollgate-b
stop tollgate
KUBECONFIG="$W/tollgate-kubeconfig" POD_NAMESPACE="$TOLLGATE_NS" POD_NAME=tollgate-a SERVICE_ACCOUNT_NAME=tollgate \
  start_tollgate --cluster --audit-interval 0 --policies "$W/cluster-policies" || fatal "tollgate-a did not come back"
