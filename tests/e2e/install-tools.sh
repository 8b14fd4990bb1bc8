#!/usr/bin/env bash
# Installs the pinned Kubernetes tools the end-to-end harness and the chart checks use, built from
# Go modules into a cache outside the repository (the same cache as tests/tools/install.sh), so a
# warm CI run reuses them. A tool is rebuilt only when its stamp (name + version) is missing.
# Prints the bin directory on its last line. Nothing here is a stand-in: every binary is the real
# upstream tool built from its published module.
set -euo pipefail
# chart_assert.py reads YAML with PyYAML (in the machine image; installed here if missing).
python3 -c 'import yaml' 2>/dev/null || python3 -m pip install --quiet 'pyyaml==6.0.3' >&2
K8S_VERSION=v1.30.14          # kube-apiserver, kubectl, kube-controller-manager (the seed's edge nodes run K3s 1.30)
ETCD_VERSION=v3.5.21          # the etcd line Kubernetes 1.30 is tested with
HELM_VERSION=v3.19.0
HELM_KUBE_MINOR=34           # helm v3.19.0 is built with k8s.io/client-go v0.34
KUBECONFORM_VERSION=v0.7.0
# Offline JSON schemas for kubeconform, from the kubernetes-validate PyPI package (it bundles
# strict JSON schemas of the Kubernetes API per minor version; 1.30.0 holds those of 1.30).
KUBERNETES_VALIDATE_VERSION=1.30.0
# The Gatekeeper release whose CRDs and webhook rules the chart's cluster mode copies
# (charts/tollgate/gatekeeper-crds/); chart-check.sh compares them with this module's chart.
GATEKEEPER_VERSION=v3.23.0
KYVERNO_VERSION=v1.13.4       # its config/crds/policyreport: the wgpolicyk8s.io PolicyReport CRDs
# The Prometheus Operator release whose CRDs (example/prometheus-operator-crd/ in its Go module)
# give the JSON schemas kubeconform checks the chart's ServiceMonitor and PrometheusRule against.
# tests/promql-check/go.mod pins the github.com/prometheus/prometheus this release builds with.
PROMETHEUS_OPERATOR_VERSION=v0.85.0
CACHE="${TOLLGATE_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/tollgate-tools}"
BIN="$CACHE/bin"
WORK="$CACHE/build"
mkdir -p "$BIN" "$WORK"
# Big Go builds on a small shared machine: be nice.
NICE=(nice -n 10)

have() { [ -x "$BIN/$1" ] && [ -f "$BIN/.$1-$2" ]; }
stamp() { touch "$BIN/.$1-$2"; }

# go install for modules whose go.mod has no replace directives. The stamp also names a hash of
# the link flags, so changing how a tool is built rebuilds it.
install_plain() { # name module/pkg version [ldflags]
  local name=$1 pkg=$2 version=$3 ld="-s -w ${4:-}" key
  key="$version-$(printf '%s' "$ld" | cksum | cut -d' ' -f1)"
  have "$name" "$key" && return 0
  echo "installing $name $version from $pkg" >&2
  GOBIN="$BIN" GOFLAGS=-mod=mod "${NICE[@]}" go install -trimpath -ldflags "$ld" "$pkg@$version" >&2
  rm -f "$BIN/.$name-"*
  stamp "$name" "$key"
}

# A throwaway main module: needed where the tool's own go.mod uses replace directives (which
# `go install pkg@version` refuses), e.g. etcd's sibling modules and Kubernetes' staging repos.
new_module() { # dir
  rm -rf "$1"; mkdir -p "$1"
  (cd "$1" && go mod init tollgate-e2e-tools >/dev/null 2>&1 && go mod edit -go=1.22)
}

install_etcd() {
  have etcd "$ETCD_VERSION" && return 0
  echo "installing etcd $ETCD_VERSION from go.etcd.io/etcd/server/v3" >&2
  local d="$WORK/etcd"
  new_module "$d"
  (cd "$d" && export GOFLAGS=-mod=mod &&
    go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >&2 &&
    "${NICE[@]}" go build -trimpath -ldflags "-s -w" -o "$BIN/etcd" go.etcd.io/etcd/server/v3 >&2)
  stamp etcd "$ETCD_VERSION"
}

# kube-apiserver, kubectl and kube-controller-manager from k8s.io/kubernetes: its go.mod requires
# every k8s.io/* staging module at v0.0.0 and replaces it by ./staging/src/...; here each is replaced
# by the published module of the same release (v1.30.14 -> v0.30.14). Only the tools whose stamp is
# missing are built (adding one to the list does not rebuild the others).
KUBE_TOOLS=(kube-apiserver kubectl kube-controller-manager)
install_kube() {
  local missing=() t
  for t in "${KUBE_TOOLS[@]}"; do have "$t" "$K8S_VERSION" || missing+=("$t"); done
  [ ${#missing[@]} -gt 0 ] || return 0
  echo "installing ${missing[*]} $K8S_VERSION from k8s.io/kubernetes" >&2
  local d="$WORK/kubernetes" staging_version="v0.${K8S_VERSION#v1.}" gomod
  new_module "$d"
  gomod=$(cd "$d" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" |
    sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
  [ -f "$gomod" ] || { echo "cannot download k8s.io/kubernetes@$K8S_VERSION" >&2; return 1; }
  local args=() m
  for m in $(sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "$gomod"); do
    args+=("-replace=$m=$m@$staging_version")
  done
  [ ${#args[@]} -gt 10 ] || { echo "no staging replaces found in $gomod" >&2; return 1; }
  local v="k8s.io/component-base/version" c="k8s.io/client-go/pkg/version" minor
  minor=$(echo "$K8S_VERSION" | cut -d. -f2)
  local ld="-s -w"
  for p in $v $c; do
    ld+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
  done
  (cd "$d" && export GOFLAGS=-mod=mod &&
    go mod edit "${args[@]}" &&
    go get "k8s.io/kubernetes@$K8S_VERSION" >&2)
  for t in "${missing[@]}"; do
    (cd "$d" && GOFLAGS=-mod=mod "${NICE[@]}" go build -trimpath -ldflags "$ld" -o "$BIN/$t" "k8s.io/kubernetes/cmd/$t" >&2)
    stamp "$t" "$K8S_VERSION"
  done
}

# kubeconform needs standalone schemas; kubernetes-validate ships "local-strict" ones whose $refs
# point into a shared _definitions.json. Each kind's schema is rewritten to carry the definitions it
# references, so kubeconform reads them from disk and never downloads anything.
install_schemas() {
  local dir="$CACHE/kubernetes-json-schema" ver="$KUBERNETES_VALIDATE_VERSION"
  [ -f "$dir/.kubernetes-validate-$ver" ] && return 0
  echo "installing JSON schemas from kubernetes-validate $ver (PyPI)" >&2
  local tmp="$WORK/kubernetes-validate"
  rm -rf "$tmp"; mkdir -p "$tmp"
  python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" "kubernetes-validate==$ver" >&2
  (cd "$tmp" && python3 -m zipfile -e ./*.whl unpacked >&2)
  local src="$tmp/unpacked/kubernetes_validate/kubernetes-json-schema/v$ver-local-strict"
  [ -f "$src/_definitions.json" ] || { echo "no $src/_definitions.json in kubernetes-validate $ver" >&2; return 1; }
  rm -rf "$dir"; mkdir -p "$dir/v$ver-standalone-strict"
  python3 - "$src" "$dir/v$ver-standalone-strict" <<'PYEOF'
import json, os, sys
src, out = sys.argv[1], sys.argv[2]
defs = json.load(open(os.path.join(src, "_definitions.json")))["$defs"]
PREFIX = "/api/_definitions.json#/$defs/"
def walk(node, found):
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            if ref.startswith(PREFIX):
                ref = node["$ref"] = "#/$defs/" + ref[len(PREFIX):]
            if ref.startswith("#/$defs/"):
                found.append(ref[len("#/$defs/"):])
        for v in node.values():
            walk(v, found)
    elif isinstance(node, list):
        for v in node:
            walk(v, found)
for name in sorted(os.listdir(src)):
    if not name.endswith(".json") or name in ("_definitions.json", "all.json"):
        continue
    schema = json.load(open(os.path.join(src, name)))
    schema.pop("$id", None)
    todo, keep = [], {}
    walk(schema, todo)
    while todo:
        d = todo.pop()
        if d in keep or d not in defs:
            continue
        keep[d] = json.loads(json.dumps(defs[d]))
        walk(keep[d], todo)
    if keep:
        schema["$defs"] = keep
    with open(os.path.join(out, name), "w") as f:
        json.dump(schema, f, separators=(",", ":"))
PYEOF
  rm -rf "$tmp"
  touch "$dir/.kubernetes-validate-$ver"
}

install_plain kubeconform github.com/yannh/kubeconform/cmd/kubeconform "$KUBECONFORM_VERSION" \
  "-X main.version=$KUBECONFORM_VERSION"
# As helm's Makefile does: its version, and the Kubernetes version `helm template` assumes by
# default (that of the client-go it is built with, 1.34 for helm 3.19).
helm_ld="-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
for p in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  helm_ld+=" -X $p.k8sVersionMajor=1 -X $p.k8sVersionMinor=$HELM_KUBE_MINOR"
done
install_plain helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION" "$helm_ld"
# Not a tool: Gatekeeper's Go module, for its chart (CRDs, webhook rules), into the Go module
# cache (`go env GOMODCACHE`), where chart-check.sh looks. Nothing is downloaded when it is there.
# A failed download only warns: chart-check.sh then skips those comparisons, or fails them under
# TOLLGATE_REQUIRE_ORACLES (as CI runs).
# Kyverno's module for the wgpolicyk8s.io PolicyReport CRDs the chart carries (the working
# group's sigs.k8s.io/wg-policy-prototypes is not served by the module proxy here).
download_kyverno() {
  (cd "$WORK" && go mod download "github.com/kyverno/kyverno@$KYVERNO_VERSION") >&2 ||
    echo "warning: could not download github.com/kyverno/kyverno@$KYVERNO_VERSION" >&2
}
download_gatekeeper() {
  (cd "$WORK" && go mod download "github.com/open-policy-agent/gatekeeper/v3@$GATEKEEPER_VERSION") >&2 ||
    echo "warning: could not download github.com/open-policy-agent/gatekeeper/v3@$GATEKEEPER_VERSION" >&2
}

# kubeconform schemas for the Prometheus Operator's kinds (the chart's ServiceMonitor and
# PrometheusRule), made from the openAPIV3Schema of its CRDs in its Go module, in kubeconform's
# `{{ .ResourceKind }}{{ .KindSuffix }}.json` layout (servicemonitor-monitoring-v1.json). Strict as
# kubeconform's own openapi2jsonschema.py makes them with DENY_ROOT_ADDITIONAL_PROPERTIES: every
# object with properties gets additionalProperties false (except where the CRD preserves unknown
# fields), `nullable` allows null; and metadata is Kubernetes' ObjectMeta, taken from the strict
# ConfigMap schema above, where the CRD only says "object". A failed download only warns:
# chart-check.sh then skips those kinds, or fails under TOLLGATE_REQUIRE_ORACLES.
install_monitoring_schemas() {
  local dir="$CACHE/prometheus-operator-json-schema/$PROMETHEUS_OPERATOR_VERSION" mod
  [ -f "$dir/.done" ] && return 0
  mod=$(cd "$WORK" && go mod download -json "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p') || true
  if [ ! -d "$mod/example/prometheus-operator-crd" ]; then
    echo "warning: could not download github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION" >&2
    return 0
  fi
  echo "making JSON schemas from the CRDs of prometheus-operator $PROMETHEUS_OPERATOR_VERSION" >&2
  rm -rf "$dir"; mkdir -p "$dir"
  python3 - "$mod/example/prometheus-operator-crd" "$dir" \
    "$CACHE/kubernetes-json-schema/v$KUBERNETES_VALIDATE_VERSION-standalone-strict/configmap-v1.json" <<'PYEOF'
import glob, json, os, sys
import yaml
crd_dir, out, configmap = sys.argv[1:]
meta = json.load(open(configmap))
# Values spelled "=" are YAML's obsolete value tag to PyYAML: read them as strings (as
# kubeconform's openapi2jsonschema.py does).
yaml.SafeLoader.add_constructor("tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node))
def strict(node):
    if isinstance(node, list):
        return [strict(v) for v in node]
    if not isinstance(node, dict):
        return node
    node = {k: strict(v) for k, v in node.items()}
    if "properties" in node and "additionalProperties" not in node \
            and not node.get("x-kubernetes-preserve-unknown-fields"):
        node["additionalProperties"] = False
    if node.pop("nullable", False) and isinstance(node.get("type"), str):
        node["type"] = [node["type"], "null"]
    return node
written = 0
for path in sorted(glob.glob(os.path.join(crd_dir, "*.yaml"))):
    crd = yaml.safe_load(open(path))
    if crd.get("kind") != "CustomResourceDefinition":
        continue
    group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
    for version in crd["spec"]["versions"]:
        schema = strict(version["schema"]["openAPIV3Schema"])
        schema["$schema"] = meta["$schema"]
        schema["properties"]["metadata"] = meta["properties"]["metadata"]
        schema["$defs"] = meta["$defs"]
        name = f"{kind.lower()}-{group.split('.')[0]}-{version['name']}.json"
        with open(os.path.join(out, name), "w") as f:
            json.dump(schema, f, separators=(",", ":"))
        written += 1
if not os.path.exists(os.path.join(out, "servicemonitor-monitoring-v1.json")) or \
        not os.path.exists(os.path.join(out, "prometheusrule-monitoring-v1.json")):
    sys.exit(f"no ServiceMonitor or PrometheusRule schema among the {written} made from {crd_dir}")
PYEOF
  touch "$dir/.done"
}

install_schemas
install_monitoring_schemas
install_etcd
install_kube
download_gatekeeper
download_kyverno
# The constraint CRD oracle (Gatekeeper's own CRD generation, tests/crd-oracle) the e2e compares
# tollgate's CRDs with: hash-stamped, rebuilt only when its sources change.
TOLLGATE_TOOLS="$CACHE" bash "$(dirname "$0")/../crd-oracle/install.sh" >/dev/null
# Prometheus's rule and PromQL parsers (tests/promql-check), for the chart's alerts and dashboard.
TOLLGATE_TOOLS="$CACHE" bash "$(dirname "$0")/../promql-check/install.sh" >/dev/null
echo "$BIN"
