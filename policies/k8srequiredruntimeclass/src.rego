# METADATA
# title: Required runtime class
# description: >-
#   Requires pods to set spec.runtimeClassName to one of an allowed list of RuntimeClass names.
# custom:
#   kind: K8sRequiredRuntimeClass
#   version: 1.0.0
#   parameters:
#     type: object
#     description: The RuntimeClasses pods may use.
#     properties:
#       runtimeClassNames:
#         type: array
#         description: The allowed RuntimeClass names; a pod must set spec.runtimeClassName to one of them.
#         minItems: 1
#         items:
#           type: string
package k8srequiredruntimeclass

_pod := input.review.object

violation contains {"msg": msg, "details": {"allowed": allowed, "found": found}} if {
	_pod.kind == "Pod"
	allowed := _list(object.get(input.parameters, "runtimeClassNames", []))
	found := _runtime_class
	_disallowed(found, allowed)
	msg := sprintf("pod %q must set runtimeClassName to one of %s, found %q", [_pod_name, _show_list(allowed), found])
}

_runtime_class := c if {
	c := _pod.spec.runtimeClassName
	is_string(c)
} else := ""

_disallowed(found, _) if found == ""

_disallowed(found, allowed) if not found in allowed

_pod_name := n if {
	n := _pod.metadata.name
	is_string(n)
	n != ""
} else := n if {
	n := _pod.metadata.generateName
	is_string(n)
} else := ""

# ["a", "b"], the same in every engine (sprintf's %v on arrays differs between them).
_show_list(values) := concat("", ["[", concat(", ", [_quote(v) | some v in values]), "]"])

_quote(v) := sprintf("%q", [v]) if is_string(v)

_quote(v) := sprintf("%v", [v]) if not is_string(v)

_list(x) := x if is_array(x)

_list(x) := [] if not is_array(x)
