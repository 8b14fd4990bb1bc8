# `opa eval` side of bench/run.sh's per-decision estimate for the gatekeeper-library-style
# templates in bench/library/: each Pod of input.pods is reviewed by one template, with its
# constraint's parameters from data.library.<Kind>.<name>; the result names the denied Pods.
# Loaded with --v0-compatible (the templates are Rego v0), hence the rego.v1 import.
package library_bulk

import rego.v1

denied["K8sContainerLimits"] := sort([_id(pod) |
	some pod in input.pods
	some c in data.library.K8sContainerLimits
	_namespace_matches(pod, c)
	vs := data.k8scontainerlimits.violation with input as {"review": _request(pod), "parameters": c.parameters}
	count(vs) > 0
])

denied["K8sAllowedRepos"] := sort([_id(pod) |
	some pod in input.pods
	some c in data.library.K8sAllowedRepos
	_namespace_matches(pod, c)
	vs := data.k8sallowedrepos.violation with input as {"review": _request(pod), "parameters": c.parameters}
	count(vs) > 0
])

_namespace_matches(pod, c) if object.get(pod.metadata, "namespace", "") in c.match.namespaces

_id(pod) := concat("/", [object.get(pod.metadata, "namespace", ""), pod.metadata.name])

_request(pod) := {
	"uid": "bulk",
	"kind": {"group": "", "version": "v1", "kind": pod.kind},
	"resource": {"group": "", "version": "v1", "resource": "pods"},
	"namespace": object.get(pod.metadata, "namespace", ""),
	"name": pod.metadata.name,
	"operation": "CREATE",
	"userInfo": {"username": "bench"},
	"object": pod,
}
