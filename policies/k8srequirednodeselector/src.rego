# METADATA
# title: Required node selector
# description: >-
#   Requires pods to be pinned to nodes with given labels: for every key and value, either
#   spec.nodeSelector has it, or (when allowNodeAffinity) every term of the required node affinity
#   has a matchExpressions entry {key, operator: In, values: [value]}.
# custom:
#   kind: K8sRequiredNodeSelector
#   version: 1.0.0
#   parameters:
#     type: object
#     description: The node labels pods must select.
#     properties:
#       nodeSelector:
#         type: object
#         description: Node label keys and the value each must select.
#         minProperties: 1
#         additionalProperties:
#           type: string
#       allowNodeAffinity:
#         type: boolean
#         description: >-
#           Also accept a required node affinity in which every nodeSelectorTerm pins the key with
#           operator In and exactly the expected value.
#         default: true
package k8srequirednodeselector

_pod := input.review.object

_spec := _obj(object.get(_pod, "spec", {}))

violation contains {"msg": msg, "details": {"key": key, "expected": value, "found": found}} if {
	_pod.kind == "Pod"
	some key, value in _obj(object.get(input.parameters, "nodeSelector", {}))
	not _satisfied(key, value)
	found := _found(key)
	msg := sprintf("pod %q must select nodes with %s=%s (%s), found %s", [_pod_name, key, _text(value), _how(value), found])
}

_satisfied(key, value) if _node_selector[key] == value

# The scheduler ORs the terms, so one term that does not pin the key lets the pod escape.
_satisfied(key, value) if {
	_allow_node_affinity
	count(_terms) > 0
	every term in _terms {
		_pins(term, key, value)
	}
}

_pins(term, key, value) if {
	some expr in _list(object.get(_obj(term), "matchExpressions", []))
	expr.key == key
	expr.operator == "In"
	expr.values == [value]
}

_allow_node_affinity if object.get(input.parameters, "allowNodeAffinity", true) == true

_node_selector := _obj(object.get(_spec, "nodeSelector", {}))

_terms := t if {
	t := _spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms
	is_array(t)
} else := []

_how(value) := sprintf("nodeSelector, or In [%s] in every required node affinity term", [_quote(value)]) if {
	_allow_node_affinity
} else := "nodeSelector"

_found(key) := sprintf("nodeSelector %s=%s", [key, _text(_node_selector[key])]) if {
	_ = _node_selector[key]
} else := sprintf("no nodeSelector %s and a required node affinity term that does not pin it", [key]) if {
	_allow_node_affinity
	count(_terms) > 0
} else := sprintf("no nodeSelector %s", [key])

_pod_name := n if {
	n := _pod.metadata.name
	is_string(n)
	n != ""
} else := n if {
	n := _pod.metadata.generateName
	is_string(n)
} else := ""

_text(v) := v if is_string(v)

_text(v) := sprintf("%v", [v]) if not is_string(v)

_quote(v) := sprintf("%q", [v]) if is_string(v)

_quote(v) := sprintf("%v", [v]) if not is_string(v)

_obj(x) := x if is_object(x)

_obj(x) := {} if not is_object(x)

_list(x) := x if is_array(x)

_list(x) := [] if not is_array(x)
