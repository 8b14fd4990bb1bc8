#!/usr/bin/env python3
"""Assertions on a rendered tollgate chart (helm template output), for tests/e2e/chart-check.sh.

Usage: chart_assert.py RENDERED.yaml PROFILE RELEASE_NAMESPACE [VALUES.yaml]
PROFILE is default or the name of a value set under tests/e2e/values/; what is expected is read
from VALUES.yaml over the chart's defaults. Prints one PASS:/FAIL: line per check; exits 1 if any
failed.
"""
import base64
import subprocess
import sys
import tempfile

import yaml

rendered, profile, namespace = sys.argv[1], sys.argv[2], sys.argv[3]
values = yaml.safe_load(open(sys.argv[4])) if len(sys.argv) > 4 else {}
docs = [d for d in yaml.safe_load_all(open(rendered)) if d]
failed = 0


def check(ok, what, detail=""):
    """One PASS:/FAIL: line; detail (what was rendered, when that is long) only on failure."""
    global failed
    print(("PASS: " if ok else "FAIL: ") + f"[{profile}] {what}" + ("" if ok or not detail else f" ({detail})"))
    if not ok:
        failed += 1


def kinds(kind):
    return [d for d in docs if d.get("kind") == kind]


def one(kind):
    found = kinds(kind)
    check(len(found) == 1, f"exactly one {kind} rendered (found {len(found)})")
    return found[0] if found else {}


dep = one("Deployment")
vwc = one("ValidatingWebhookConfiguration")
one("Service")
pod = dep.get("spec", {}).get("template", {}).get("spec", {})
containers = pod.get("containers", [])
c = containers[0] if containers else {}
sc, psc = c.get("securityContext", {}), pod.get("securityContext", {})

# --- pod security (restricted Pod Security Standard)
check(psc.get("runAsNonRoot") is True and sc.get("runAsNonRoot") is True, "runAsNonRoot on pod and container")
check(sc.get("readOnlyRootFilesystem") is True, "readOnlyRootFilesystem")
check(sc.get("allowPrivilegeEscalation") is False, "allowPrivilegeEscalation false")
check(sc.get("privileged") in (None, False), "not privileged")
check(sc.get("capabilities", {}).get("drop") == ["ALL"] and not sc.get("capabilities", {}).get("add"),
      "capabilities drop [ALL], none added")
check(psc.get("seccompProfile", {}).get("type") == "RuntimeDefault"
      and sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", "seccompProfile RuntimeDefault")
cluster = values.get("cluster", {}).get("enabled", False)
if cluster:
    check(pod.get("automountServiceAccountToken") is True, "cluster mode: ServiceAccount token mounted")
else:
    check(pod.get("automountServiceAccountToken") is False, "no ServiceAccount token mounted")
check(not any(v.get("hostPath") for v in pod.get("volumes", [])) and not pod.get("hostNetwork"),
      "no hostPath volume, no host network")

# --- resources, probes, env, args
res = c.get("resources", {})
if profile == "default":
    check(res == {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}},
          f"resources 50m/64Mi requests, 500m/256Mi limits (got {res})")
    check(dep["spec"]["replicas"] == 2, "2 replicas")
else:
    check(res.get("requests") and res.get("limits"), "requests and limits set")
ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
live, ready = c.get("livenessProbe", {}).get("httpGet", {}), c.get("readinessProbe", {}).get("httpGet", {})
check(live.get("path") == "/healthz" and live.get("port") == "probe", "liveness /healthz on the probe port")
check(ready.get("path") == "/readyz" and ready.get("port") == "probe", "readiness /readyz on the probe port")
check("probe" in ports and ports.get("probe") != ports.get("webhook"), f"probe port separate from webhook port {ports}")
env = {e["name"]: e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") for e in c.get("env", [])}
check(env.get("POD_NAMESPACE") == "metadata.namespace", "POD_NAMESPACE from the downward API")
check(env.get("SERVICE_ACCOUNT_NAME") == "spec.serviceAccountName", "SERVICE_ACCOUNT_NAME from the downward API")
args = c.get("args", [])
check(args[:1] == ["serve"], "runs tollgate serve")
exempt_args = [a.split("=", 1)[1] for a in args if a.startswith("--exempt-namespace=")]
prefix_args = [a.split("=", 1)[1] for a in args if a.startswith("--exempt-namespace-prefix=")]
check(prefix_args == values.get("exemptNamespacePrefixes", []), f"--exempt-namespace-prefix flags from values {prefix_args}")
for extra in values.get("extraArgs", []):
    check(extra in args, f"extra arg {extra} rendered")
check("--tls-cert=/tls/tls.crt" in args and "--tls-key=/tls/tls.key" in args, "serves the mounted certificate")
anti = pod.get("affinity", {}).get("podAntiAffinity", {})
if profile == "default":
    check(bool(anti.get("preferredDuringSchedulingIgnoredDuringExecution"))
          and not anti.get("requiredDuringSchedulingIgnoredDuringExecution"),
          "preferred (not required) pod anti-affinity: a single-node K3s still runs every replica")

# --- webhook
hooks = vwc.get("webhooks", [])
check(len(hooks) == 1, "one webhook")
h = hooks[0] if hooks else {}
wv = values.get("webhook", {})
want_policy = wv.get("failurePolicy", "Fail")
check(h.get("failurePolicy") == want_policy, f"failurePolicy {want_policy}")
want_timeout = wv.get("timeoutSeconds", 3)
check(h.get("timeoutSeconds") == want_timeout, f"timeoutSeconds {want_timeout} (values, default 3)")
check(h.get("sideEffects") == "None", "sideEffects None")

# --- namespaceSelector: which namespaces the API server sends to tollgate
NAME = "kubernetes.io/metadata.name"
exprs = h.get("namespaceSelector", {}).get("matchExpressions", [])
check(set(h.get("namespaceSelector", {})) <= {"matchExpressions"}, "namespaceSelector uses matchExpressions only")
check(all(isinstance(v, str) for e in exprs for v in e.get("values", [])),
      "every namespaceSelector value is a string (names YAML would read as numbers are quoted)")
notin = [e for e in exprs if e.get("key") == NAME and e.get("operator") == "NotIn"]
check(len(notin) == 1, f"one {NAME} NotIn expression (found {len(notin)})")
exempt = notin[0].get("values", []) if notin else []
always = [namespace, "kube-system", "kube-public", "kube-node-lease"]
want_exempt = list(dict.fromkeys(always + values.get("exemptNamespaces", [])))
check(exempt == want_exempt, f"{NAME} NotIn {want_exempt}: release and system namespaces, then exemptNamespaces "
                             f"(got {exempt})")
check(exempt_args == exempt, f"--exempt-namespace flags name the selector's NotIn namespaces (got {exempt_args})")
want_in = wv.get("includeNamespaces", [])
ins = [e for e in exprs if e.get("key") == NAME and e.get("operator") == "In"]
if want_in:
    check(ins == [{"key": NAME, "operator": "In", "values": want_in}],
          f"includeNamespaces rendered as {NAME} In {want_in} (got {ins})")
else:
    check(not ins, f"no {NAME} In expression unless includeNamespaces is set")
labels = wv.get("ignoreLabels", ["admission.gatekeeper.sh/ignore", "admission.tollgate.dev/ignore"])
for label in labels:
    check({"key": label, "operator": "DoesNotExist"} in exprs, f"namespaceSelector exempts the {label} label")
for extra in wv.get("extraNamespaceSelectorExpressions", []):
    check(extra in exprs, f"extra expression {extra} kept")


def selects(namespace_labels):
    """Label selector semantics: every matchExpression must hold (they are ANDed)."""
    for e in exprs:
        present, value = e["key"] in namespace_labels, namespace_labels.get(e["key"])
        ok = {"In": present and value in e.get("values", []),
              "NotIn": not present or value not in e.get("values", []),
              "Exists": present, "DoesNotExist": not present}[e["operator"]]
        if not ok:
            return False
    return True


def ns_labels(name, **more):
    return {NAME: name, **more}


for name in want_exempt:
    check(not selects(ns_labels(name)), f"namespace {name} is not sent to tollgate")
for label in labels:
    check(not selects(ns_labels("labelled", **{label: "true"})), f"a namespace labelled {label} is not sent")
if not wv.get("extraNamespaceSelectorExpressions"):
    for name in want_in:
        check(selects(ns_labels(name)), f"included namespace {name} is sent to tollgate")
        for label in labels:
            check(not selects(ns_labels(name, **{label: ""})), f"included namespace {name} labelled {label} is not sent")
    check(selects(ns_labels("logistics-unlisted")) == (not want_in),
          "a namespace outside includeNamespaces is " + ("not sent" if want_in else "sent (no includeNamespaces)"))
rules = h.get("rules", [])
resources = [r for rule in rules for r in rule.get("resources", [])]
cluster_rules = wv.get("clusterRules", {})
if not cluster:
    check(not [r for r in resources if r.endswith("/status") or r in ("*", "*/*")], "no status subresource in rules")
    for r in ("pods", "pods/ephemeralcontainers", "deployments", "replicasets", "statefulsets", "daemonsets",
              "jobs", "cronjobs", "replicationcontrollers"):
        check(r in resources, f"rules cover {r}")
    ops = {o for rule in rules for o in rule.get("operations", [])}
    check(ops == {"CREATE", "UPDATE"}, f"rules on CREATE and UPDATE only ({sorted(ops)})")
elif cluster_rules.get("custom"):
    check(rules == cluster_rules["custom"], "cluster mode: webhook.clusterRules.custom replaces Gatekeeper's rule",
          f"got {rules}")
else:
    # Gatekeeper v3.23.0's validation webhook rule (charts/gatekeeper, validatingWebhookSubResources);
    # chart-check.sh also compares it with Gatekeeper's chart rendered from the module.
    gatekeeper_subresources = [
        "pods/ephemeralcontainers", "pods/exec", "pods/log", "pods/eviction", "pods/portforward", "pods/proxy",
        "pods/attach", "pods/binding", "pods/resize", "deployments/scale", "replicasets/scale",
        "statefulsets/scale", "replicationcontrollers/scale", "services/proxy", "nodes/proxy", "services/status"]
    want_rules = [{"apiGroups": ["*"], "apiVersions": ["*"],
                   "operations": cluster_rules.get("operations", ["CREATE", "UPDATE"]),
                   "resources": ["*"] + cluster_rules.get("subResources", gatekeeper_subresources),
                   "scope": cluster_rules.get("scope", "*")}]
    check(rules == want_rules, "cluster mode: Gatekeeper's rule, every resource (\"*\") and its subresources",
          f"want {want_rules}, got {rules}")
if cluster:
    check(not [r for r in resources if (r.endswith("/status") and r != "services/status") or r == "*/*"],
          "cluster mode: no status subresource but Gatekeeper's services/status", f"got {resources}")
svc = h.get("clientConfig", {}).get("service", {})
check(svc.get("namespace") == namespace and svc.get("path") == "/v1/admit", "clientConfig points at the Service, /v1/admit")
sa_name = pod.get("serviceAccountName")
# Every profile renders release "tollgate": the full name, unless serviceAccount.name is given.
want_sa = values.get("serviceAccount", {}).get("name") or "tollgate"
check(sa_name == want_sa, f"the Pods run as ServiceAccount {want_sa} (got {sa_name})")
if cluster:
    # Exact, not just present: another ServiceAccount's name here would leave tollgate's own CRD,
    # status and Lease writes waiting on a webhook that is tollgate.
    own = {"name": "exclude-tollgate-serviceaccount",
           "expression": f"request.userInfo.username != 'system:serviceaccount:{namespace}:{want_sa}'"}
    want_conditions = [own] + wv.get("matchConditions", [])
    check(h.get("matchConditions") == want_conditions,
          f"cluster mode: matchConditions exempt system:serviceaccount:{namespace}:{want_sa}, then the values'",
          f"want {want_conditions}, got {h.get('matchConditions')}")
elif wv.get("matchConditions"):
    check(h.get("matchConditions") == wv["matchConditions"], "matchConditions from values")
else:
    check("matchConditions" not in h, "no matchConditions unless configured")

# --- priority and the ResourceQuota that lets clusters limiting critical priority admit the Pods
want_pc = values.get("priorityClassName", "system-cluster-critical")
check(pod.get("priorityClassName") == (want_pc or None),
      f"priorityClassName {want_pc or '(none)'} (got {pod.get('priorityClassName')})")
quotas = kinds("ResourceQuota")
if want_pc and values.get("resourceQuota", {}).get("enabled", True):
    check(len(quotas) == 1, f"one ResourceQuota for priority class {want_pc} (found {len(quotas)})")
    q = quotas[0] if quotas else {}
    check(q.get("metadata", {}).get("namespace") == namespace, f"ResourceQuota in the release namespace {namespace}")
    scope = q.get("spec", {}).get("scopeSelector", {}).get("matchExpressions")
    check(scope == [{"scopeName": "PriorityClass", "operator": "In", "values": [want_pc]}],
          f"ResourceQuota scoped to PriorityClass In [{want_pc}] (got {scope})")
    pods = int(q.get("spec", {}).get("hard", {}).get("pods", 0))
    want_pods = values.get("resourceQuota", {}).get("pods", 100)
    check(pods == want_pods and pods >= dep.get("spec", {}).get("replicas", 1) + 1,
          f"ResourceQuota allows {want_pods} pods, room for every replica and the rollout's surge (got {pods})")
else:
    check(not quotas, "no ResourceQuota without a priority class or with resourceQuota.enabled false")

# --- PodDisruptionBudget
pdbs = kinds("PodDisruptionBudget")
if dep.get("spec", {}).get("replicas", 1) > 1:
    check(len(pdbs) == 1 and pdbs[0]["spec"].get("maxUnavailable") == 1, "PodDisruptionBudget maxUnavailable 1")
else:
    check(not pdbs, "no PodDisruptionBudget with one replica")

# --- ServiceAccount and RBAC: none in file mode; in cluster mode exactly what --cluster uses
rbac = [d for d in docs if d.get("kind") in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")]
sas = kinds("ServiceAccount")
# Cluster-wide: read what is enforced, write the constraint CRDs and the templates' and
# constraints' status. Listed in full: a right added to the chart must be added here, on purpose.
WANT_CLUSTER_RULES = [
    {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"],
     "verbs": ["get", "list", "watch", "create", "update", "patch"]},
    {"apiGroups": ["templates.gatekeeper.sh"], "resources": ["constrainttemplates"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["templates.gatekeeper.sh"], "resources": ["constrainttemplates/status"],
     "verbs": ["get", "update", "patch"]},
    {"apiGroups": ["templates.gatekeeper.sh"], "resources": ["constrainttemplates/finalizers"], "verbs": ["update"]},
    {"apiGroups": ["constraints.gatekeeper.sh"], "resources": ["*"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["constraints.gatekeeper.sh"], "resources": ["*/status"], "verbs": ["get", "update", "patch"]},
    # The plural of Gatekeeper's ExpansionTemplate CRD is "expansiontemplate" (no s).
    {"apiGroups": ["expansion.gatekeeper.sh"], "resources": ["expansiontemplate"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["syncset.gatekeeper.sh"], "resources": ["syncsets"], "verbs": ["get", "list", "watch"]},
] + ([
    # The audit lists everything the constraints can match (on unless cluster.audit.enabled=false).
    {"apiGroups": ["*"], "resources": ["*"], "verbs": ["list"]},
] if ((values.get("cluster") or {}).get("audit") or {}).get("enabled", True) else []) + ([
    # The audit's PolicyReports, when asked for.
    {"apiGroups": ["wgpolicyk8s.io"], "resources": ["policyreports", "clusterpolicyreports"],
     "verbs": ["get", "list", "create", "update", "patch", "delete"]},
] if (((values.get("cluster") or {}).get("audit") or {}).get("enabled", True)
      and (((values.get("cluster") or {}).get("audit") or {}).get("policyReports") or {}).get("enabled", False)) else []) + [
    # One read-only rule per kind the values say is synced into data.inventory.
    {"apiGroups": r["apiGroups"], "resources": r["resources"], "verbs": ["get", "list", "watch"]}
    for r in (values.get("cluster") or {}).get("syncRead", [])
]
# In the release namespace only: per-pod statuses, the leader-election Lease, the replica's own Pod.
WANT_ROLE_RULES = [
    {"apiGroups": ["status.gatekeeper.sh"], "resources": ["constrainttemplatepodstatuses", "constraintpodstatuses"],
     "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]},
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
     "verbs": ["get", "list", "watch", "create", "update", "patch"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
    {"apiGroups": ["config.gatekeeper.sh"], "resources": ["configs"], "verbs": ["get", "list", "watch"]},
]
if cluster:
    roles, croles = kinds("Role"), kinds("ClusterRole")
    bindings, cbindings = kinds("RoleBinding"), kinds("ClusterRoleBinding")
    check(len(rbac) == 4 and len(croles) == 1 and len(cbindings) == 1 and len(roles) == 1 and len(bindings) == 1,
          f"cluster mode: one ClusterRole, one Role and their bindings (found {sorted(d['kind'] for d in rbac)})")
    crole = croles[0] if croles else {}
    role = roles[0] if roles else {}
    crules, rrules = crole.get("rules", []), role.get("rules", [])
    check(crules == WANT_CLUSTER_RULES, "cluster mode: ClusterRole rules exactly as --cluster needs", f"got {crules}")
    check(rrules == WANT_ROLE_RULES, "cluster mode: Role rules exactly as --cluster needs", f"got {rrules}")
    check(not [r for r in crules + rrules if "*" in r.get("verbs", [])
               or ("*" in r.get("apiGroups", []) and r != {"apiGroups": ["*"], "resources": ["*"], "verbs": ["list"]})],
          "cluster mode: no wildcard verb, and no wildcard API group but the audit's list")
    namespaced_only = {"status.gatekeeper.sh", "coordination.k8s.io", "config.gatekeeper.sh"}
    check(not [r for r in crules if namespaced_only & set(r.get("apiGroups", []))]
          and not [r for r in crules if "pods" in r.get("resources", [])],
          "cluster mode: status objects, Leases and Pods only in the release namespace's Role, not cluster-wide")
    check(role.get("metadata", {}).get("namespace") == namespace, f"cluster mode: the Role is in {namespace}")
    sa_subject = [{"kind": "ServiceAccount", "name": sa_name, "namespace": namespace}]
    cb = cbindings[0] if cbindings else {}
    check(cb.get("subjects") == sa_subject and cb.get("roleRef") == {
              "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": crole.get("metadata", {}).get("name")},
          f"cluster mode: the ClusterRole is bound to tollgate's ServiceAccount {sa_name}")
    rb = bindings[0] if bindings else {}
    check(rb.get("subjects") == sa_subject and rb.get("metadata", {}).get("namespace") == namespace
          and rb.get("roleRef") == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                    "name": role.get("metadata", {}).get("name")},
          f"cluster mode: the Role is bound to tollgate's ServiceAccount {sa_name} in {namespace}")
    check(len(sas) == 1 and sas[0]["metadata"]["name"] == sa_name, f"cluster mode: the Pods run as the ServiceAccount {sa_name}")
    check(len(sas) == 1 and sas[0].get("automountServiceAccountToken") is True, "cluster mode: ServiceAccount token automount")
    check("--cluster" in c.get("args", []), "cluster mode: --cluster")
    audit = (values.get("cluster") or {}).get("audit") or {}
    want_interval = audit.get("interval", "60s") if audit.get("enabled", True) else "0s"
    check(f"--audit-interval={want_interval}" in c.get("args", []),
          f"cluster mode: --audit-interval={want_interval}")
    want_reports = audit.get("enabled", True) and (audit.get("policyReports") or {}).get("enabled", False)
    check(("--policy-reports" in c.get("args", [])) == bool(want_reports),
          f"cluster mode: --policy-reports {'given' if want_reports else 'not given'}")
    check(env.get("POD_NAME") == "metadata.name", "cluster mode: POD_NAME from the downward API")
else:
    check(not rbac, "no RBAC objects (file mode reads nothing from the API)")
    check(len(sas) == 1 and sas[0].get("automountServiceAccountToken") is False, "ServiceAccount without token automount")
    check("--cluster" not in c.get("args", []), "file mode: no --cluster")
    check("POD_NAME" not in env, "file mode: no POD_NAME")

# --- Gatekeeper's CRDs: cluster mode only, kept on uninstall (chart-check.sh compares their
# content with the Gatekeeper module's)
crds = kinds("CustomResourceDefinition")
if cluster:
    want_crds = {"constrainttemplates.templates.gatekeeper.sh", "expansiontemplate.expansion.gatekeeper.sh",
                 "constrainttemplatepodstatuses.status.gatekeeper.sh", "constraintpodstatuses.status.gatekeeper.sh",
                 "configs.config.gatekeeper.sh", "syncsets.syncset.gatekeeper.sh"}
    audit_values = (values.get("cluster") or {}).get("audit") or {}
    reports_values = audit_values.get("policyReports") or {}
    if audit_values.get("enabled", True) and reports_values.get("enabled", False) and reports_values.get("installCRDs", True):
        want_crds |= {"policyreports.wgpolicyk8s.io", "clusterpolicyreports.wgpolicyk8s.io"}
    got_crds = sorted(d["metadata"]["name"] for d in crds)
    check(set(got_crds) == want_crds and len(crds) == len(want_crds),
          f"cluster mode: Gatekeeper's six CRDs, and the PolicyReport ones when asked for (got {got_crds})")
    chart_labels = dep.get("metadata", {}).get("labels", {})
    for crd in crds:
        meta = crd.get("metadata", {})
        name = meta.get("name")
        check(meta.get("annotations", {}).get("helm.sh/resource-policy") == "keep",
              f"cluster mode: CRD {name} has helm.sh/resource-policy keep (helm uninstall keeps every template)")
        crd_labels = meta.get("labels", {})
        gatekeepers = crd.get("spec", {}).get("group", "").endswith("gatekeeper.sh")
        check((crd_labels.get("gatekeeper.sh/system") == "yes" or not gatekeepers) and chart_labels.items() <= crd_labels.items(),
              f"cluster mode: CRD {name} keeps its own labels (gatekeeper.sh/system for Gatekeeper's) and has the chart's")
    # A rule on a resource that does not exist grants nothing, silently: every resource the roles
    # name in the CRDs' groups must be one of the rendered CRDs (by its plural) or a subresource.
    served = {(d["spec"]["group"], d["spec"]["names"]["plural"]) for d in crds}
    for rule in crules + rrules:
        for group in rule.get("apiGroups", []):
            if group in {g for g, _ in served}:
                for resource in rule.get("resources", []):
                    check((group, resource.split("/")[0]) in served,
                          f"cluster mode: RBAC names {group} {resource}, a resource of the rendered CRDs")
else:
    check(not crds, "file mode: no CRDs")

# --- policies ConfigMap
cms = [d for d in kinds("ConfigMap") if d["metadata"]["name"].endswith("-policies")]
if values.get("policies"):
    check(len(cms) == 1 and set(cms[0].get("data", {})) == set(values["policies"]), "policies ConfigMap has every file")
    check("--policies=/policies" in args, "--policies=/policies")
    check(any(m.get("mountPath") == "/policies" for m in c.get("volumeMounts", [])), "policies mounted at /policies")
    for name, content in cms[0].get("data", {}).items() if cms else []:
        check(all(d.get("kind") for d in yaml.safe_load_all(content) if d), f"{name} parses as Kubernetes YAML")
else:
    check(not cms and not [a for a in args if a.startswith("--policies")], "no --policies: the embedded pack")

# --- TLS
secret_name = next((v["secret"]["secretName"] for v in pod.get("volumes", []) if v.get("name") == "tls"), None)
ca_bundle = h.get("clientConfig", {}).get("caBundle")
secrets = kinds("Secret")
tls_mode = values.get("tls", {}).get("mode", "helm")
if tls_mode == "helm":
    check(len(secrets) == 1 and secrets[0]["metadata"]["name"] == secret_name, "tls.mode helm: Secret rendered and mounted")
    data = secrets[0].get("data", {}) if secrets else {}
    check(ca_bundle == data.get("ca.crt"), "caBundle is the Secret's ca.crt")
    with tempfile.TemporaryDirectory() as tmp:
        for key in ("ca.crt", "tls.crt"):
            open(f"{tmp}/{key}", "wb").write(base64.b64decode(data.get(key, "")))
        name = vwc["webhooks"][0]["clientConfig"]["service"]["name"]
        verify = subprocess.run(["openssl", "verify", "-CAfile", f"{tmp}/ca.crt", "-verify_hostname",
                                 f"{name}.{namespace}.svc", f"{tmp}/tls.crt"], capture_output=True, text=True)
        check(verify.returncode == 0, f"tls.crt verifies against caBundle for {name}.{namespace}.svc "
                                      f"{verify.stdout.strip()} {verify.stderr.strip()}")
elif tls_mode == "secret":
    check(not secrets and secret_name == values["tls"]["secret"]["name"], "tls.mode secret: your Secret mounted, none rendered")
    check(base64.b64decode(ca_bundle or "").decode().strip() == values["tls"]["secret"]["caBundle"].strip(),
          "caBundle is the PEM from values, base64-encoded")
elif tls_mode == "cert-manager":
    certs = kinds("Certificate")
    serving = [x for x in certs if x["spec"].get("secretName") == secret_name]
    check(len(serving) == 1 and not secrets, "tls.mode cert-manager: a Certificate writes the mounted Secret")
    check(len(kinds("Issuer")) == 2 and any(x["spec"].get("isCA") for x in certs), "self-signed CA chain of Issuers")
    ann = vwc.get("metadata", {}).get("annotations", {}).get("cert-manager.io/inject-ca-from")
    check(ann == f"{namespace}/{serving[0]['metadata']['name']}" if serving else False, "cert-manager injects the caBundle")

# --- monitoring: ServiceMonitor, PrometheusRule, Grafana dashboard (all off by default)
import json  # noqa: E402
import re  # noqa: E402



def seconds(duration):
    """Seconds in a Prometheus or Go duration (1h30m, 500ms)."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)(ms|s|m|h|d|w|y)", duration))


service = (kinds("Service") or [{}])[0]
svc_meta = service.get("metadata", {})
sm_values = values.get("serviceMonitor", {})
sms = kinds("ServiceMonitor")
if sm_values.get("enabled"):
    check(len(sms) == 1, f"serviceMonitor.enabled: one ServiceMonitor (found {len(sms)})")
    sm = sms[0] if sms else {}
    meta, spec = sm.get("metadata", {}), sm.get("spec", {})
    want_ns = sm_values.get("namespace") or namespace
    check(meta.get("namespace") == want_ns, f"ServiceMonitor in namespace {want_ns} (got {meta.get('namespace')})")
    check(sm_values.get("labels", {}).items() <= meta.get("labels", {}).items(),
          f"ServiceMonitor carries serviceMonitor.labels for the Prometheus's serviceMonitorSelector {sm_values.get('labels', {})}")
    match = spec.get("selector", {}).get("matchLabels", {})
    selected = [d for d in kinds("Service") if match and match.items() <= d["metadata"].get("labels", {}).items()]
    check(selected == [service] and set(spec.get("selector", {})) == {"matchLabels"},
          f"ServiceMonitor selects exactly tollgate's Service by its labels {match}")
    check(spec.get("namespaceSelector") == {"matchNames": [svc_meta.get("namespace")]},
          f"ServiceMonitor looks for the Service in its namespace {svc_meta.get('namespace')}",
          f"got {spec.get('namespaceSelector')}")
    endpoints = spec.get("endpoints", [])
    check(len(endpoints) == 1, f"ServiceMonitor has one endpoint (found {len(endpoints)})")
    ep = endpoints[0] if endpoints else {}
    svc_ports = {p.get("name"): p for p in service.get("spec", {}).get("ports", [])}
    port = svc_ports.get(ep.get("port"), {})
    check(bool(port), f"ServiceMonitor endpoint names a port of the Service ({ep.get('port')} in {sorted(svc_ports)})")
    target = port.get("targetPort")
    check(target in ("probe", ports.get("probe")) and f"--probe-listen=0.0.0.0:{ports.get('probe')}" in args,
          f"that Service port leads to the container's plain-HTTP probe port {ports.get('probe')} (targetPort {target})")
    check(ep.get("path") == "/metrics" and ep.get("scheme") == "http", "ServiceMonitor scrapes /metrics over plain HTTP",
          f"got {ep}")
    want_interval = sm_values.get("interval", "30s")
    want_timeout = sm_values.get("scrapeTimeout", "10s")
    check(ep.get("interval") == want_interval and ep.get("scrapeTimeout") == want_timeout,
          f"ServiceMonitor interval {want_interval}, scrapeTimeout {want_timeout}", f"got {ep}")

    check(seconds(ep.get("scrapeTimeout", "0s")) <= seconds(ep.get("interval", "0s")),
          "scrapeTimeout not above the interval (Prometheus refuses the configuration otherwise)")
    for key in ("relabelings", "metricRelabelings"):
        check(ep.get(key, []) == sm_values.get(key, []), f"ServiceMonitor endpoint {key} from values")
else:
    check(not sms, "no ServiceMonitor unless serviceMonitor.enabled")

pr_values = values.get("prometheusRule", {})
rules_objs = kinds("PrometheusRule")
# The chart's alerts, by values key; each on by default.
ALERTS = {"down": "TollgateDown", "replicaDown": "TollgateReplicaDown", "admissionErrors": "TollgateAdmissionErrors",
          "latency": "TollgateAdmissionLatencyHigh", "latencyNearTimeout": "TollgateAdmissionNearTimeout",
          "templateErrors": "TollgateConstraintTemplateErrors", "policyProblems": "TollgatePolicyProblems",
          "watchRestarts": "TollgateWatchRestarts", "auditStale": "TollgateAuditStale"}
DEFAULT_SEVERITY = {"down": "critical", "latencyNearTimeout": "critical"}
if pr_values.get("enabled"):
    check(len(rules_objs) == 1, f"prometheusRule.enabled: one PrometheusRule (found {len(rules_objs)})")
    pr = rules_objs[0] if rules_objs else {}
    meta = pr.get("metadata", {})
    want_ns = pr_values.get("namespace") or namespace
    check(meta.get("namespace") == want_ns, f"PrometheusRule in namespace {want_ns} (got {meta.get('namespace')})")
    check(pr_values.get("labels", {}).items() <= meta.get("labels", {}).items(),
          f"PrometheusRule carries prometheusRule.labels for the Prometheus's ruleSelector {pr_values.get('labels', {})}")
    rules = [r for g in pr.get("spec", {}).get("groups", []) for r in g.get("rules", [])]
    alert_values = pr_values.get("alerts", {})
    # Only cluster mode watches the API server. The audit runs in cluster mode with
    # cluster.audit.enabled; without it every replica exports gatekeeper_audit_last_run_time 0 and
    # the stale-audit alert would always fire: not rendered.
    audit_on = cluster and ((values.get("cluster") or {}).get("audit") or {}).get("enabled", True)
    want_alerts = [name for key, name in ALERTS.items() if alert_values.get(key, {}).get("enabled", True)
                   and (key != "auditStale" or audit_on) and (key != "watchRestarts" or cluster)]
    check([r.get("alert") for r in rules] == want_alerts, f"alerts rendered: {want_alerts}",
          f"got {[r.get('alert') for r in rules]}")
    # Without prometheusRule.selector the rules pick tollgate's series by the labels the
    # ServiceMonitor's targets get: job is the Service's name, namespace the Service's.
    want_selector = pr_values.get("selector") or f'job="{svc_meta.get("name")}",namespace="{svc_meta.get("namespace")}"'
    by_name = {name: key for key, name in ALERTS.items()}
    for r in rules:
        name, key = r.get("alert"), by_name.get(r.get("alert"))
        av = alert_values.get(key, {})
        labels = r.get("labels", {})
        ann = r.get("annotations", {})
        want_sev = av.get("severity", DEFAULT_SEVERITY.get(key, "warning"))
        check(labels.get("severity") == want_sev, f"alert {name} has severity {want_sev} (got {labels.get('severity')})")
        check(pr_values.get("additionalAlertLabels", {}).items() <= labels.items(),
              f"alert {name} carries prometheusRule.additionalAlertLabels")
        check(bool(r.get("for")) and (not av.get("for") or r.get("for") == av["for"]),
              f"alert {name} has for: {r.get('for')}")
        check(bool(ann.get("summary", "").strip()) and bool(ann.get("description", "").strip()),
              f"alert {name} has summary and description annotations")
        expr = r.get("expr", "")
        check("{" + want_selector in expr, f"alert {name} selects tollgate's series by {{{want_selector}...}}", expr)
        if key == "latencyNearTimeout":
            share = av.get("timeoutShare", 0.5)
            limit = share * values.get("webhook", {}).get("timeoutSeconds", 3)
            got = float(expr.rsplit(">", 1)[-1])
            check(abs(got - limit) < 1e-9, f"alert {name}: threshold {limit}s, {share} of webhook.timeoutSeconds (got {got})")
        if key == "auditStale":
            interval = ((values.get("cluster") or {}).get("audit") or {}).get("interval", "60s")
            want = av.get("missedIntervals", 5) * seconds(interval)
            got = float(expr.rsplit(">", 1)[-1])
            check(abs(got - want) < 1e-9, f"alert {name}: {want}s, missedIntervals times cluster.audit.interval {interval} "
                                          f"(got {got})")
        if key == "latency":
            got = float(expr.rsplit(">", 1)[-1])
            want = av.get("p99Seconds", 0.1)
            check(got == want, f"alert {name}: threshold {want}s from values (got {got})")
else:
    check(not rules_objs, "no PrometheusRule unless prometheusRule.enabled")

gd_values = values.get("grafanaDashboard", {})
label_key, label_value = gd_values.get("label", "grafana_dashboard"), gd_values.get("labelValue", "1")
dashboards = [d for d in kinds("ConfigMap") if d["metadata"].get("labels", {}).get(label_key) is not None]
if gd_values.get("enabled"):
    check(len(dashboards) == 1, f"grafanaDashboard.enabled: one ConfigMap labelled {label_key} (found {len(dashboards)})")
    cm = dashboards[0] if dashboards else {}
    meta = cm.get("metadata", {})
    check(meta.get("labels", {}).get(label_key) == label_value,
          f"dashboard ConfigMap labelled {label_key}: \"{label_value}\" for the Grafana sidecar")
    want_ns = gd_values.get("namespace") or namespace
    check(meta.get("namespace") == want_ns, f"dashboard ConfigMap in namespace {want_ns} (got {meta.get('namespace')})")
    check(gd_values.get("annotations", {}).items() <= meta.get("annotations", {}).items(),
          "dashboard ConfigMap carries grafanaDashboard.annotations")
    data = cm.get("data", {})
    check(list(data) == ["tollgate.json"], f"dashboard ConfigMap holds tollgate.json (got {list(data)})")
    try:
        dash = json.loads(data.get("tollgate.json", ""))
        check(True, "dashboard JSON parses")
    except ValueError as e:
        dash = {}
        check(False, f"dashboard JSON parses ({e})")
    panels = [p for p in dash.get("panels", []) if p.get("type") != "row"]
    check(dash.get("uid") == "tollgate" and dash.get("title"), "dashboard has uid tollgate and a title")
    check(len(panels) >= 10, f"dashboard has its panels ({len(panels)})")
    variables = {v.get("name"): v for v in dash.get("templating", {}).get("list", [])}
    check(variables.get("datasource", {}).get("type") == "datasource"
          and variables["datasource"].get("query") == "prometheus",
          "dashboard picks its Prometheus data source with a variable (no data source uid baked in)")
    ids = [p.get("id") for p in dash.get("panels", [])]
    check(len(ids) == len(set(ids)), "dashboard panel ids are unique")
    for p in panels:
        targets = p.get("targets", [])
        refs = [t.get("refId") for t in targets]
        check(targets and all(t.get("expr") for t in targets) and len(refs) == len(set(refs)),
              f"panel {p.get('title')!r}: queries with unique refIds")
        check(p.get("datasource", {}).get("uid") == "${datasource}"
              and all(t.get("datasource", {}).get("uid") == "${datasource}" for t in targets),
              f"panel {p.get('title')!r} queries the chosen data source")
        check(all('namespace="$namespace",job="$job"' in t.get("expr", "") for t in targets),
              f"panel {p.get('title')!r} selects the chosen namespace and job")
else:
    check(not dashboards, "no dashboard ConfigMap unless grafanaDashboard.enabled")

sys.exit(1 if failed else 0)
