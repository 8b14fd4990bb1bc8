"""Prints the objects both audits review (tests/gatekeeper-audit/run.sh), as YAML documents.

Usage: objects.py GATEKEEPER_NAMESPACE

Namespaces gka-*: ConfigMaps with and without the labels the constraints ask for, Pods with and
without resource limits, a Deployment (an ExpansionTemplate names it) and a StatefulSet (none
does), and one of several kinds in gka-any. No controller runs: the workloads create no Pods.
"""

import sys

import yaml

gk_ns = sys.argv[1]
docs = []


def namespace(name, labels=None):
    meta = {"name": name}
    if labels:
        meta["labels"] = labels
    docs.append({"apiVersion": "v1", "kind": "Namespace", "metadata": meta})


def configmap(ns, name, labels=None):
    meta = {"name": name, "namespace": ns}
    if labels:
        meta["labels"] = labels
    docs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"k": "v"}})


def container(name, limits=None):
    c = {"name": name, "image": "registry.example.com/app:1.0"}
    if limits is not None:
        c["resources"] = {"limits": limits}
    return c


def pod_spec(containers, init=None):
    spec = {"containers": containers}
    if init:
        spec["initContainers"] = init
    return spec


def pod(ns, name, containers, init=None):
    docs.append({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
                 "spec": pod_spec(containers, init)})


def workload(kind, ns, name, containers):
    labels = {"app": name}
    spec = {"selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": pod_spec(containers)}}
    if kind == "StatefulSet":
        spec["serviceName"] = name
    docs.append({"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name, "namespace": ns},
                 "spec": spec})


namespace(gk_ns)
namespace("gka-play")
namespace("gka-scoped")
namespace("gka-any", {"owner": "team-any"})
namespace("gka-excluded")
namespace("gka-env", {"environment": "prod", "owner": "team-env"})
namespace("gka-noenv")
namespace("gka-long")
namespace("gka-deploy")
namespace("gka-sts")

# gka-play: 16 ConfigMaps without the `gatekeeper` label (more than the limit), 7 of them
# labelled for cm-must-have-gk-audit; two sharing one `gatekeeper` value (K8sUniqueLabel), one
# with its own.
for i in range(1, 17):
    configmap("gka-play", "cm-%02d" % i, {"test.gatekeeper.sh/audit": "yes"} if i <= 7 else None)
configmap("gka-play", "cm-dup-a", {"gatekeeper": "shared"})
configmap("gka-play", "cm-dup-b", {"gatekeeper": "shared"})
configmap("gka-play", "cm-own", {"gatekeeper": "own"})

ok = {"cpu": "100m", "memory": "512Mi"}
pod("gka-play", "pod-no-limits", [container("app"), container("sidecar")])
pod("gka-play", "pod-too-high", [container("app", {"cpu": "500m", "memory": "2Gi"})])
pod("gka-play", "pod-ok", [container("app", ok)])
pod("gka-play", "pod-no-cpu", [container("app", {"memory": "256Mi"}), container("b", ok)])
pod("gka-play", "pod-init", [container("app", ok)], init=[container("init")])

# A Deployment (the ExpansionTemplate names it) and a StatefulSet (none does), each in a
# namespace of its own.
workload("Deployment", "gka-deploy", "web", [container("app"), container("proxy", {"cpu": "1", "memory": "64Mi"})])
workload("StatefulSet", "gka-sts", "db", [container("db", {"cpu": "2", "memory": "4Gi"})])

for i in range(1, 4):
    configmap("gka-scoped", "cm-s%d" % i)

# gka-any: one of several kinds, one of them with the `owner` label.
configmap("gka-any", "any-cm")
configmap("gka-any", "any-cm-owned", {"owner": "me"})
docs.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "any-secret", "namespace": "gka-any"},
             "stringData": {"k": "v"}})
docs.append({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "any-sa", "namespace": "gka-any"}})
docs.append({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "any-svc", "namespace": "gka-any"},
             "spec": {"ports": [{"port": 80}], "selector": {"app": "any"}}})
docs.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
             "metadata": {"name": "any-role", "namespace": "gka-any"}, "rules": []})

configmap("gka-excluded", "cm-x1")
configmap("gka-excluded", "cm-x2")
configmap("gka-env", "cm-e1")
configmap("gka-env", "cm-e2", {"gatekeeper": "env"})
configmap("gka-noenv", "cm-n1")
configmap("gka-long", "cm-l1")
configmap("gka-long", "cm-l2")

print(yaml.safe_dump_all(docs, sort_keys=False), end="")
