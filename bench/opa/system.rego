# The classic OPA admission-controller setup, for bench/run.sh: `opa run --server` answers
# `POST /` with data.system.main, an AdmissionReview response built from the five unmodified
# tracker-pack template modules (policies/*/src.rego). Each constraint is loaded as data under
# data.constraints.<Kind>.<name> ({enforcementAction, match, parameters}, from
# constraints/*/samples/tracker/constraint.yaml) and its template's violation rule is evaluated
# `with input as {"review": input.request, "parameters": ...}`, as Gatekeeper does.
#
# Matching is simplified to what the tracker constraints use (match.kinds and match.namespaces);
# no namespace selectors, label selectors, exclusions or exemptions.
package system

main := {
	"apiVersion": "admission.k8s.io/v1",
	"kind": "AdmissionReview",
	"response": response,
}

response := {
	"uid": input.request.uid,
	"allowed": true,
	"status": {"code": 200},
	"warnings": warnings,
} if {
	count(denials) == 0
} else := {
	"uid": input.request.uid,
	"allowed": false,
	"status": {"code": 403, "reason": "Forbidden", "message": concat("\n", sort(denials))},
	"warnings": warnings,
}

denials contains sprintf("[%s] %s", [r.name, r.msg]) if {
	some r in results
	r.action == "deny"
}

warnings := sort([sprintf("[%s] %s", [r.name, r.msg]) |
	some r in results
	r.action == "warn"
])

results contains _result(name, c, v) if {
	some name, c in data.constraints.K8sAllowedRegistries
	_matches(c)
	vs := data.k8sallowedregistries.violation with input as _template_input(c)
	some v in vs
}

results contains _result(name, c, v) if {
	some name, c in data.constraints.K8sEdgeResources
	_matches(c)
	vs := data.k8sedgeresources.violation with input as _template_input(c)
	some v in vs
}

results contains _result(name, c, v) if {
	some name, c in data.constraints.K8sImageTagPolicy
	_matches(c)
	vs := data.k8simagetagpolicy.violation with input as _template_input(c)
	some v in vs
}

results contains _result(name, c, v) if {
	some name, c in data.constraints.K8sRequiredNodeSelector
	_matches(c)
	vs := data.k8srequirednodeselector.violation with input as _template_input(c)
	some v in vs
}

results contains _result(name, c, v) if {
	some name, c in data.constraints.K8sRequiredRuntimeClass
	_matches(c)
	vs := data.k8srequiredruntimeclass.violation with input as _template_input(c)
	some v in vs
}

_template_input(c) := {"review": input.request, "parameters": object.get(c, "parameters", {})}

_result(name, c, v) := {"name": name, "action": object.get(c, "enforcementAction", "deny"), "msg": v.msg}

_matches(c) if {
	_kind_matches(object.get(c, "match", {}))
	_namespace_matches(object.get(c, "match", {}))
}

_kind_matches(match) if not match.kinds

_kind_matches(match) if {
	some k in match.kinds
	_any_or(k.apiGroups, input.request.kind.group)
	_any_or(k.kinds, input.request.kind.kind)
}

_namespace_matches(match) if not match.namespaces

_namespace_matches(match) if input.request.namespace in match.namespaces

_any_or(list, value) if value in list

_any_or(list, _) if "*" in list
