# Sourced by run.sh after cluster-policies.sh and the kube-apiserver restart: tollgate cut off
# the API server, a second replica and the status Lease, Gatekeeper's own test templates, and
# deletion of a template (garbage collector).

# --- cut off the API server: a constraint deleted meanwhile stops being enforced on reconnect
stop api-proxy
kc delete -f "$W/objects/cm-need-owner.yaml"
[ $RC -eq 0 ] || { explain; fatal "delete cm-need-owner during the partition"; }
sleep 5
got=$(cm_direct "$TOLLGATE_PORT")
if [[ "$got" == "False 403 [cm-need-owner]"* ]]; then
  pass "tollgate cut off the API server: still enforces what it had (cm-need-owner, deleted meanwhile)"
else
  fail "tollgate cut off the API server: still enforces what it had (got '$got')"
fi
start api-proxy python3 "$E2E/tcp_proxy.py" "$API_PROXY_PORT" "$API_PORT"
started=$(now_ms)
admitted_direct() { [[ "$(cm_direct "$TOLLGATE_PORT")" == "True 200"* ]]; }
if STEP_TIMEOUT=120 wait_for "the deletion to be seen after reconnecting" admitted_direct; then
  pass "reconnected: the constraint deleted during the partition is no longer enforced, $(($(now_ms) - started)) ms after the proxy came back"
else
  fail "reconnected: the constraint deleted during the partition is no longer enforced"
fi
kc apply -f "$W/objects/cm-need-owner.yaml"
STEP_TIMEOUT=60 wait_for "cm-need-owner enforced again" cm_refused || fatal "cm-need-owner not enforced again"

# --- two replicas: same answers, status from both, one leader, handover
start_tollgate_b --cluster --audit-interval 0 --policies "$W/cluster-policies" ||
  fatal "the second replica did not become ready"
a=$(cm_direct "$TOLLGATE_PORT")
b=$(cm_direct "$TOLLGATE_B_PORT")
if [ "$a" = "$b" ] && [[ "$a" == "False 403 [cm-need-owner]"* ]]; then
  pass "two replicas give the same answer: $a"
else
  fail "two replicas give the same answer: '$a' vs '$b'"
fi
both_in_by_pod() {
  [ "$(template_status "$CT_KIND" '.byPod[*].id')" = "tollgate-a tollgate-b" ] &&
    [ "$(kubectl get k8srequiredlabels cm-need-owner -o jsonpath='{.status.byPod[*].id}')" = "tollgate-a tollgate-b" ] &&
    [ "$(kubectl get constrainttemplatepodstatuses -n "$TOLLGATE_NS" -l "internal.gatekeeper.sh/constrainttemplate-name=$CT_KIND" -o name | wc -l)" = 2 ]
}
started=$(now_ms)
if STEP_TIMEOUT=60 wait_for "byPod entries of both replicas" both_in_by_pod; then
  pass "per-pod status objects and byPod entries for both replicas, $(($(now_ms) - started)) ms after the second was ready"
else
  fail "per-pod status objects and byPod entries for both replicas"
  echo "    template: $(template_status "$CT_KIND" '.byPod')"
fi
status_versions() {
  {
    kubectl get constrainttemplates -o jsonpath='{range .items[*]}{.metadata.name}={.metadata.resourceVersion}{"\n"}{end}'
    kubectl get k8srequiredlabels -o jsonpath='{range .items[*]}{.metadata.name}={.metadata.resourceVersion}{"\n"}{end}'
    kubectl get constrainttemplatepodstatuses,constraintpodstatuses -n "$TOLLGATE_NS" \
      -o jsonpath='{range .items[*]}{.metadata.name}={.metadata.resourceVersion}{"\n"}{end}'
  } | sort
}
status_versions >"$W/rv-before"
sleep 30
status_versions >"$W/rv-after"
if [ -s "$W/rv-before" ] && diff -q "$W/rv-before" "$W/rv-after" >/dev/null; then
  pass "converged: no template, constraint or status object changed resourceVersion in 30 s ($(wc -l <"$W/rv-before") objects)"
else
  fail "converged: no status object changed resourceVersion in 30 s"
  diff "$W/rv-before" "$W/rv-after" | sed 's/^/    /'
fi
leader=$(holder)
case "$leader" in
  tollgate-a) leader_proc=tollgate other=tollgate-b ;;
  tollgate-b) leader_proc=tollgate-b other=tollgate-a ;;
  *) fatal "the status Lease is held by '$leader', not by a replica" ;;
esac
pass "one leader holds Lease tollgate-status: $leader"
stop "$leader_proc"
started=$(now_ms)
other_leads() { [ "$(holder)" = "$other" ]; }
if STEP_TIMEOUT=60 wait_for "$other to take the Lease" other_leads; then
  pass "leader $leader stopped: $other took the Lease after $(($(now_ms) - started)) ms"
else
  fail "leader $leader stopped: $other took the Lease"
fi
# The API server calls the webhook at tollgate-a's port: bring it back (as a follower now) so a
# new constraint can be applied; the new leader must fold the status of both live replicas.
if [ "$leader_proc" = tollgate ]; then
  KUBECONFIG="$W/tollgate-kubeconfig" POD_NAMESPACE="$TOLLGATE_NS" POD_NAME=tollgate-a SERVICE_ACCOUNT_NAME=tollgate \
    start_tollgate --cluster --audit-interval 0 --policies "$W/cluster-policies" || fatal "tollgate-a did not come back"
  live="tollgate-a tollgate-b"
else
  live="tollgate-a"
fi
sed 's/name: cm-need-owner$/name: cm-need-team/; s/\["owner"\]/["team"]/' "$W/objects/cm-need-owner.yaml" >"$W/objects/cm-need-team.yaml"
kc apply -f "$W/objects/cm-need-team.yaml"
[ $RC -eq 0 ] || { explain; fatal "apply constraint cm-need-team"; }
new_leader_folds() {
  [ "$(kubectl get k8srequiredlabels cm-need-team -o jsonpath='{.status.byPod[*].id}' 2>/dev/null)" = "$live" ] &&
    [ "$(holder)" = "$other" ]
}
if STEP_TIMEOUT=60 wait_for "the new leader to fold status" new_leader_folds; then
  pass "the new leader $other aggregates: new constraint cm-need-team has byPod [$live]"
else
  fail "the new leader aggregates status of a new constraint (byPod: $(kubectl get k8srequiredlabels cm-need-team -o jsonpath='{.status.byPod[*].id}' 2>&1), Lease: $(holder))"
fi
kc delete -f "$W/objects/cm-need-team.yaml"
stop tollgate-b

# --- the ConstraintTemplates of Gatekeeper's own end-to-end tests all ingest
kc apply -f "$BATS/templates/"
[ $RC -eq 0 ] || { explain; fatal "apply Gatekeeper's test/bats/tests/templates"; }
bats_names=$(python3 -c '
import sys, yaml
for p in sys.argv[1:]:
    for d in yaml.safe_load_all(open(p)):
        if d and d.get("kind") == "ConstraintTemplate":
            print(d["metadata"]["name"])' "$BATS"/templates/*.yaml | sort -u)
all_created() {
  local name
  for name in $bats_names; do [ "$(template_status "$name" '.created')" = true ] || return 1; done
}
started=$(now_ms)
if STEP_TIMEOUT=120 wait_for "every bats template to be created" all_created; then
  pass "Gatekeeper's test/bats/tests templates: all $(wc -w <<<"$bats_names") ingested, status.created=true ($(($(now_ms) - started)) ms)"
else
  fail "Gatekeeper's test/bats/tests templates: all ingested with status.created=true"
  for name in $bats_names; do
    echo "    $name: created=$(template_status "$name" '.created') $(template_status "$name" '.byPod[0].errors[0].message' | head -c 200)"
  done
fi

# --- deleting a template removes its CRD and constraints (kube-controller-manager's garbage
# collector follows the CRD's ownerReference, as with Gatekeeper)
kc delete constrainttemplate "$CT_KIND"
[ $RC -eq 0 ] || { explain; fatal "delete template $CT_KIND"; }
crd_gone() { ! kubectl get crd "$CRD" >/dev/null 2>&1; }
started=$(now_ms)
if STEP_TIMEOUT=90 wait_for "$CRD to be garbage-collected" crd_gone && cm_admitted; then
  pass "template deleted: its CRD (and cm-need-owner with it) gone after $(($(now_ms) - started)) ms, no longer enforced"
else
  fail "template deleted: its CRD and constraints gone, no longer enforced"
fi
