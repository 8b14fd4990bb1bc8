# Sourced by run.sh after cluster-sync.sh: the audit. Objects created before their constraint
# existed appear in its status after a pass, with Gatekeeper's count, cap, order and truncation,
# written by the Lease holder's field manager. tollgate-a runs with --audit-interval 2s and
# --constraint-violations-limit 5 here, and without the audit again afterwards (the convergence
# check of cluster-failover.sh wants no writes).

stop tollgate
KUBECONFIG="$W/tollgate-kubeconfig" POD_NAMESPACE="$TOLLGATE_NS" POD_NAME=tollgate-a SERVICE_ACCOUNT_NAME=tollgate \
  start_tollgate --cluster --audit-interval 2s --constraint-violations-limit 5 --policies "$W/cluster-policies" ||
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
kc delete -f "$W/objects/audit-need-owner.yaml"
stop tollgate
KUBECONFIG="$W/tollgate-kubeconfig" POD_NAMESPACE="$TOLLGATE_NS" POD_NAME=tollgate-a SERVICE_ACCOUNT_NAME=tollgate \
  start_tollgate --cluster --audit-interval 0 --policies "$W/cluster-policies" || fatal "tollgate-a did not come back"
