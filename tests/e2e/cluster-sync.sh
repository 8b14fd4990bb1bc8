# Sourced by run.sh after cluster-policies.sh: referential data. Gatekeeper's Config syncs
# Ingresses into data.inventory; a template of our own refuses a second Ingress with a host
# already in use, also right after a restart; the Config's excludedNamespaces skip the webhook.

ingress_yaml() { # name namespace host
  printf 'apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: %s\n  namespace: %s\nspec:\n  rules:\n  - host: %s\n    http:\n      paths:\n      - path: /\n        pathType: Prefix\n        backend:\n          service:\n            name: shop\n            port:\n              number: 80\n' "$1" "$2" "$3"
}
printf 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: web\n' >"$W/objects/web.yaml"
cat >"$W/objects/sync-config.yaml" <<EOF
apiVersion: config.gatekeeper.sh/v1alpha1
kind: Config
metadata:
  name: config
  namespace: $TOLLGATE_NS
spec:
  sync:
    syncOnly:
      - group: networking.k8s.io
        version: v1
        kind: Ingress
  match:
    - excludedNamespaces: ["e2e-skip-*"]
      processes: ["webhook"]
EOF
ingress_yaml first web shop.example.com >"$W/objects/ingress-first.yaml"
ingress_yaml second web shop.example.com >"$W/objects/ingress-second.yaml"
kc apply -f "$W/objects/web.yaml" -f "$W/objects/ingress-first.yaml" -f "$E2E/manifests/unique-ingress-host/template.yaml"
[ $RC -eq 0 ] || { explain; fatal "apply the first Ingress and the unique-host template"; }
# Its requires-sync-data names Ingresses, which nothing syncs yet: a note in its status, not a failure.
sync_note() { template_status k8se2euniqueingresshost '.byPod[0].errors[0].code'; }
noted() { [ "$(sync_note)" = requires_sync_data_not_synced ] && [ "$(template_status k8se2euniqueingresshost '.created')" = true ]; }
if STEP_TIMEOUT=60 wait_for "the requires-sync-data note" noted; then
  pass "template requiring unsynced data: status note requires_sync_data_not_synced, created=true"
else
  fail "template requiring unsynced data: status note requires_sync_data_not_synced, created=true"
  echo "    status: $(template_status k8se2euniqueingresshost '')"
fi
kc apply -f "$W/objects/sync-config.yaml"
[ $RC -eq 0 ] || { explain; fatal "apply the Config"; }
note_cleared() { [ -z "$(sync_note)" ]; }
if STEP_TIMEOUT=60 wait_for "the note to clear once the Config syncs Ingresses" note_cleared; then
  pass "Config syncs Ingresses: the requires-sync-data note is gone"
else
  fail "Config syncs Ingresses: the requires-sync-data note is gone"
fi
STEP_TIMEOUT=60 wait_for "the unique-host CRD" crd_established k8se2euniqueingresshost.constraints.gatekeeper.sh ||
  fatal "the unique-host template's CRD is not Established"
kc apply -f "$E2E/manifests/unique-ingress-host/constraint.yaml"
[ $RC -eq 0 ] || { explain; fatal "apply constraint unique-ingress-host"; }
duplicate_refused() {
  grep -q '\[unique-ingress-host\] ingress host "shop.example.com" is already used by web/first' \
    <<<"$(kubectl apply --dry-run=server -f "$W/objects/ingress-second.yaml" 2>&1)"
}
duplicate_admitted() {
  grep -q 'created (server dry run)' <<<"$(kubectl apply --dry-run=server -f "$W/objects/ingress-second.yaml" 2>&1)"
}
started=$(now_ms)
if STEP_TIMEOUT=60 wait_for "a duplicate Ingress host to be refused" duplicate_refused; then
  pass "Config syncs Ingresses into data.inventory: a second Ingress for shop.example.com refused ($(($(now_ms) - started)) ms after the constraint was applied)"
else
  fail "Config syncs Ingresses into data.inventory: a duplicate host refused"
  kubectl apply --dry-run=server -f "$W/objects/ingress-second.yaml" 2>&1 | sed 's/^/    /'
fi
kc apply -f "$W/objects/ingress-first.yaml"
expect_accepted "the first Ingress itself is not its own duplicate (UPDATE admitted)" \
  label -f "$W/objects/ingress-first.yaml" --overwrite e2e=updated
kc delete -f "$W/objects/ingress-first.yaml"
started=$(now_ms)
if STEP_TIMEOUT=60 wait_for "the host to be free after the first Ingress is deleted" duplicate_admitted; then
  pass "first Ingress deleted: the host is free again after $(($(now_ms) - started)) ms"
else
  fail "first Ingress deleted: the host is free again"
fi
kc apply -f "$W/objects/ingress-first.yaml"
STEP_TIMEOUT=60 wait_for "the host to be taken again" duplicate_refused || fail "the host is taken again"
# Right after a restart: readiness waits for the Config and the first list of Ingresses, so the
# first answer already knows the first Ingress.
stop tollgate
KUBECONFIG="$W/tollgate-kubeconfig" POD_NAMESPACE="$TOLLGATE_NS" POD_NAME=tollgate-a SERVICE_ACCOUNT_NAME=tollgate \
  start_tollgate --cluster --audit-interval 0 --policies "$W/cluster-policies" || fatal "tollgate-a did not come back"
if duplicate_refused; then
  pass "right after a tollgate restart the duplicate host is refused (readiness waited for the synced Ingresses)"
else
  fail "right after a tollgate restart the duplicate host is refused"
  kubectl apply --dry-run=server -f "$W/objects/ingress-second.yaml" 2>&1 | sed 's/^/    /'
fi
# The Config's excludedNamespaces for the webhook: Gatekeeper's answer, whatever the constraints.
ingress_yaml second e2e-skip-web shop.example.com >"$W/objects/ingress-skipped.yaml"
got=$(python3 - "$W/objects/ingress-skipped.yaml" <<'EOF' | curl -s --cacert "$C/tollgate-ca.crt" -H 'Content-Type: application/json' --data-binary @- "https://127.0.0.1:$TOLLGATE_PORT/v1/admit" |
import json, sys, yaml
obj = yaml.safe_load(open(sys.argv[1]))
print(json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
    "uid": "e2e-skip", "kind": {"group": "networking.k8s.io", "version": "v1", "kind": "Ingress"},
    "resource": {"group": "networking.k8s.io", "version": "v1", "resource": "ingresses"},
    "name": "second", "namespace": "e2e-skip-web", "operation": "CREATE",
    "userInfo": {"username": "e2e-admin"}, "object": obj}}))
EOF
  python3 -c 'import json,sys; r=json.load(sys.stdin)["response"]; print(r["allowed"], r["status"]["code"], r["status"].get("message", ""))' 2>&1)
if [ "$got" = "True 200 Namespace is set to be ignored by Gatekeeper config" ]; then
  pass "a duplicate in a namespace the Config excludes from the webhook: $got"
else
  fail "a duplicate in a namespace the Config excludes from the webhook: want 'True 200 Namespace is set to be ignored by Gatekeeper config', got '$got'"
fi
