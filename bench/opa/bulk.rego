# `opa eval` side of bench/run.sh's bulk (audit) measurement: every Pod of input.pods (the same
# Pods as the YAML stream given to `tollgate eval -f`) is reviewed through data.system.main, as a
# CREATE request. The result names the denied Pods and counts those allowed with warnings, so the
# two tools' answers can be compared.
package bulk

summary := {"denied": denied, "warned": count(warned)}

denied := sort([_id(pod) |
	some pod in input.pods
	not _response(pod).allowed
])

warned := [_id(pod) |
	some pod in input.pods
	r := _response(pod)
	r.allowed
	count(r.warnings) > 0
]

_response(pod) := r if {
	r := data.system.main.response with input as {"request": _request(pod)}
}

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
