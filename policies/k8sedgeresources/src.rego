# METADATA
# title: Edge resources
# description: >-
#   Requires every container and init container to set cpu and memory requests and limits as valid
#   Kubernetes quantities, with request <= limit, limit <= a per-container maximum and
#   limit / request <= a maximum ratio, and requires the pod's effective request and limit (computed
#   as the scheduler does, with sidecars and overhead) to fit in a node's allocatable resources
#   (capacity minus what is reserved for the system).
# custom:
#   kind: K8sEdgeResources
#   version: 1.0.0
#   parameters:
#     type: object
#     description: Node size and per-container bounds. Every quantity is a Kubernetes quantity string.
#     properties:
#       node:
#         type: object
#         description: Capacity of the nodes the pods run on.
#         properties:
#           cpu:
#             type: string
#             description: CPU capacity, a Kubernetes quantity such as "4".
#           memory:
#             type: string
#             description: Memory capacity, a Kubernetes quantity such as "8Gi".
#       reserved:
#         type: object
#         description: Resources kept back on the node for the OS, the kubelet and the runtime.
#         properties:
#           cpu:
#             type: string
#             description: Reserved CPU, a Kubernetes quantity such as "500m".
#           memory:
#             type: string
#             description: Reserved memory, a Kubernetes quantity such as "1Gi".
#       maxContainerLimits:
#         type: object
#         description: The largest limits a single container may set.
#         properties:
#           cpu:
#             type: string
#             description: Largest limits.cpu, a Kubernetes quantity such as "1".
#           memory:
#             type: string
#             description: Largest limits.memory, a Kubernetes quantity such as "1Gi".
#       maxLimitRequestRatio:
#         type: object
#         description: The largest limit / request ratio a container may set.
#         properties:
#           cpu:
#             type: number
#             description: Largest limits.cpu / requests.cpu.
#           memory:
#             type: number
#             description: Largest limits.memory / requests.memory.
package k8sedgeresources

# Quantities are parsed by hand with string builtins (no regex: this runs on every Pod) following
# Kubernetes' grammar, then converted to exact integers: cpu in millicores rounded up (like
# Quantity.MilliValue), memory in bytes rounded up (like Quantity.Value).

_resources := ["cpu", "memory"]

_kinds := ["requests", "limits"]

_singular := {"requests": "request", "limits": "limit"}

_pod := input.review.object

_is_pod if _pod.kind == "Pod"

_spec := _obj(object.get(_pod, "spec", {}))

_pod_name := n if {
	n := _pod.metadata.name
	is_string(n)
	n != ""
} else := n if {
	n := _pod.metadata.generateName
	is_string(n)
} else := ""

violation contains {"msg": msg, "details": {"container": c.name, "field": field}} if {
	_is_pod
	some c in _containers
	some kind in _kinds
	some res in _resources
	not _has(c.raw[kind], res)
	field := concat(".", [kind, res])
	msg := sprintf("%s %q: %s is not set", [c.label, c.name, field])
}

violation contains {"msg": msg, "details": {"container": c.name, "field": field, "value": raw}} if {
	_is_pod
	some c in _containers
	some kind in _kinds
	some res, raw in c.raw[kind]
	not _has(c.n[kind], res)
	field := concat(".", [kind, res])
	msg := sprintf("%s %q: %s %s is not a valid quantity", [c.label, c.name, field, _quote(raw)])
}

violation contains {"msg": msg, "details": details} if {
	_is_pod
	some c in _containers
	some res in _resources
	request := c.n.requests[res]
	limit := c.n.limits[res]
	request > limit
	msg := sprintf("%s %q: requests.%s %s exceeds limits.%s %s", [
		c.label, c.name,
		res, _text(c.raw.requests[res]),
		res, _text(c.raw.limits[res]),
	])
	details := {"container": c.name, "resource": res, "request": c.raw.requests[res], "limit": c.raw.limits[res]}
}

violation contains {"msg": msg, "details": details} if {
	_is_pod
	some c in _containers
	some res in _resources
	limit := c.n.limits[res]
	maximum := _max_limit[res]
	limit > maximum
	max_raw := input.parameters.maxContainerLimits[res]
	msg := sprintf("%s %q: limits.%s %s exceeds the maximum %s", [
		c.label, c.name,
		res, _text(c.raw.limits[res]), _text(max_raw),
	])
	details := {"container": c.name, "resource": res, "limit": c.raw.limits[res], "maximum": max_raw}
}

violation contains {"msg": msg, "details": details} if {
	_is_pod
	some c in _containers
	some res in _resources
	request := c.n.requests[res]
	limit := c.n.limits[res]
	ratio := _max_ratio[res]

	# limit / request > num / den, without division (a zero request with a non-zero limit violates)
	limit * ratio.den > ratio.num * request
	ratio_raw := input.parameters.maxLimitRequestRatio[res]
	msg := sprintf("%s %q: limits.%s %s is more than %s times requests.%s %s", [
		c.label, c.name,
		res, _text(c.raw.limits[res]), _text(ratio_raw),
		res, _text(c.raw.requests[res]),
	])
	details := {
		"container": c.name, "resource": res, "request": c.raw.requests[res],
		"limit": c.raw.limits[res], "maxRatio": ratio_raw,
	}
}

violation contains {"msg": msg, "details": details} if {
	_is_pod
	some kind in _kinds
	some res in _resources
	allocatable := _allocatable[res]
	total := _pod_total(kind, res)
	total > allocatable
	node_raw := input.parameters.node[res]
	reserved_raw := object.get(_obj(object.get(input.parameters, "reserved", {})), res, "0")
	msg := sprintf("pod %q: effective %s %s %s exceeds the allocatable %s (node %s minus reserved %s)", [
		_pod_name, res, _singular[kind], _show_units(total, res),
		_show_units(allocatable, res), _text(node_raw), _text(reserved_raw),
	])
	details := {
		"resource": res, "field": kind,
		"effective": _show_units(total, res), "allocatable": _show_units(allocatable, res),
	}
}

violation contains {"msg": msg, "details": {"field": field, "value": raw}} if {
	_is_pod
	some res, raw in _obj(object.get(_spec, "overhead", {}))
	res in _resources
	not _num(raw, res)
	field := concat(".", ["overhead", res])
	msg := sprintf("pod %q: %s %s is not a valid quantity", [_pod_name, field, _quote(raw)])
}

violation contains {"msg": msg, "details": {"parameter": field, "value": raw}} if {
	_is_pod
	some group in ["node", "reserved", "maxContainerLimits", "maxLimitRequestRatio"]
	some res, raw in _obj(object.get(input.parameters, group, {}))
	res in _resources
	not _qty(raw)
	field := concat(".", [group, res])
	msg := sprintf("constraint parameter %s %s is not a valid quantity", [field, _quote(raw)])
}

# === containers ===

# Every container and init container (ephemeral containers cannot set resources), with its raw
# resource values (set ones only) and their exact integer values (valid ones only).
_containers := array.concat(
	[_describe("container", -1, false, c) | some c in _list(object.get(_spec, "containers", []))],
	[_describe("initContainer", i, _is_sidecar(c), c) |
		some i, c in _list(object.get(_spec, "initContainers", []))
	],
)

_describe(label, index, sidecar, c) := {
	"label": label,
	"name": _name(c),
	"index": index,
	"sidecar": sidecar,
	"raw": raw,
	"n": {kind: {res: n | some res, v in raw[kind]; n := _num(v, res)} | some kind in _kinds},
} if {
	resources := _obj(object.get(_obj(c), "resources", {}))
	raw := {kind: _set_values(_obj(object.get(resources, kind, {}))) | some kind in _kinds}
}

_set_values(values) := {res: v | some res in _resources; v := values[res]; v != null}

_is_sidecar(c) if {
	object.get(_obj(c), "restartPolicy", "") == "Always"
} else := false

_name(c) := n if {
	n := c.name
	is_string(n)
} else := ""

# === pod totals ===

# The effective pod request (or limit) as the scheduler computes it:
# max(sum(app containers) + sum(sidecars), max over regular init containers i of
# (value_i + sum(sidecars declared before i))) + overhead. Unset or invalid values count as 0
# (they are reported per container).
_pod_total(kind, res) := total if {
	apps := [_value(c, kind, res) | some c in _containers; c.label == "container"]
	sidecars := [[c.index, _value(c, kind, res)] | some c in _containers; c.sidecar == true]
	inits := [n |
		some c in _containers
		c.label == "initContainer"
		c.sidecar == false
		n := _value(c, kind, res) + sum([s[1] | some s in sidecars; s[0] < c.index])
	]
	running := sum(apps) + sum([s[1] | some s in sidecars])
	total := max(array.concat([running], inits)) + _overhead(res)
}

_value(c, kind, res) := object.get(c.n[kind], res, 0)

_overhead(res) := n if {
	n := _num(_spec.overhead[res], res)
} else := 0

# === parameters ===

_max_limit[res] := n if {
	some res in _resources
	n := _num(input.parameters.maxContainerLimits[res], res)
}

_allocatable[res] := node - reserved if {
	some res in _resources
	node := _num(input.parameters.node[res], res)
	reserved := _reserved(res)
}

_reserved(res) := n if {
	n := _num(input.parameters.reserved[res], res)
} else := 0

# The maximum ratio as an exact fraction num / den.
_max_ratio[res] := {"num": _sign(q.neg, x * _p10(q.e)), "den": 1} if {
	some res in _resources
	q := _qty(input.parameters.maxLimitRequestRatio[res])
	x := q.m * _pow1024[q.b]
	q.e >= 0
}

_max_ratio[res] := {"num": _sign(q.neg, x), "den": _p10(0 - q.e)} if {
	some res in _resources
	q := _qty(input.parameters.maxLimitRequestRatio[res])
	x := q.m * _pow1024[q.b]
	q.e < 0
}

# === quantities ===

_shift := {"cpu": 3, "memory": 0}

# _num(raw, res) is the exact integer value of quantity raw in the unit of res (millicores for cpu,
# bytes for memory), rounded up; undefined when raw is not a valid quantity.
_num(raw, res) := _to_units(_qty(raw), _shift[res])

_qty(raw) := _parse(raw) if is_string(raw)

# A quantity from YAML such as `cpu: 1` or `cpu: 0.5` arrives as a number.
_qty(raw) := _parse(sprintf("%v", [raw])) if is_number(raw)

# Kubernetes quantity grammar: [+-] number suffix, where number is digits, digits.digits or .digits,
# and suffix is one of n u m "" k M G T P E, Ki Mi Gi Ti Pi Ei, or e|E followed by a signed integer.
# The result is {"neg", "m", "e", "b"}: the value is (-1 if neg) * m * 10^e * 1024^b, m a
# non-negative integer of at most 18 digits (rounded up beyond that).
_parse(s) := _normalize(signed[0], digits, suffix.e - count(int_frac[1]), suffix.b) if {
	signed := _split_sign(s)
	body := signed[1]
	rest := trim_left(body, "0123456789.")
	int_frac := _int_frac(split(substring(body, 0, count(body) - count(rest)), "."))
	suffix := _suffix(rest)
	digits := trim_left(concat("", int_frac), "0")
}

_split_sign(s) := [true, substring(s, 1, -1)] if startswith(s, "-")

_split_sign(s) := [false, substring(s, 1, -1)] if startswith(s, "+")

_split_sign(s) := [false, s] if {
	not startswith(s, "-")
	not startswith(s, "+")
}

# "1", "1.5" and ".5" are numbers; "", ".", "1." and "1.2.3" are not.
_int_frac(parts) := [parts[0], ""] if {
	count(parts) == 1
	parts[0] != ""
}

_int_frac(parts) := parts if {
	count(parts) == 2
	parts[1] != ""
}

_decimal_suffixes := {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}

_binary_suffixes := {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}

_suffix(s) := {"e": _decimal_suffixes[s], "b": 0}

_suffix(s) := {"e": 0, "b": _binary_suffixes[s]}

_suffix(s) := {"e": _exponent(substring(s, 1, -1)), "b": 0} if {
	count(s) > 1
	substring(s, 0, 1) in {"e", "E"}
}

_exponent(s) := _sign(signed[0], _small_int(signed[1])) if {
	signed := _split_sign(s)
	signed[1] != ""
	trim_left(signed[1], "0123456789") == ""
}

# Exponents beyond 6 digits are clamped: such values are far outside anything comparable anyway.
_small_int(digits) := 0 if {
	trim_left(digits, "0") == ""
} else := 999999 if {
	count(trim_left(digits, "0")) > 6
} else := to_number(trim_left(digits, "0"))

_normalize(neg, digits, e, b) := {"neg": neg, "m": m[0], "e": ((e + count(digits)) - count(t)) + m[1], "b": b} if {
	t := trim_right(digits, "0")
	m := _mantissa(t)
}

# Keep the mantissa within 18 digits (exact integer arithmetic in every engine), rounding up.
_mantissa(t) := [0, 0] if t == ""

_mantissa(t) := [to_number(t), 0] if {
	t != ""
	count(t) <= 18
}

_mantissa(t) := [to_number(substring(t, 0, 18)) + 1, count(t) - 18] if count(t) > 18

_to_units(q, shift) := _scale(q.neg, q.m * _pow1024[q.b], q.e + shift)

# Kubernetes rounds up (ceil), for negative values too.
_scale(neg, x, p) := _sign(neg, x * _p10(p)) if p >= 0

_scale(neg, x, p) := _ceil_div(x, _p10(0 - p)) if {
	p < 0
	neg == false
}

_scale(neg, x, p) := 0 - _floor_div(x, _p10(0 - p)) if {
	p < 0
	neg == true
}

_ceil_div(x, y) := _floor_div(x, y) + 1 if {
	x % y != 0
} else := x / y

_floor_div(x, y) := (x - (x % y)) / y

_sign(neg, x) := 0 - x if neg == true

_sign(neg, x) := x if neg == false

# Powers of ten beyond 10^40 are clamped: values that large exceed any node.
_p10(p) := _pow10[p] if p <= 40

_p10(p) := _pow10[40] if p > 40

_pow10 := [
	1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000,
	10000000000, 100000000000, 1000000000000, 10000000000000, 100000000000000,
	1000000000000000, 10000000000000000, 100000000000000000, 1000000000000000000,
	10000000000000000000, 100000000000000000000, 1000000000000000000000,
	10000000000000000000000, 100000000000000000000000, 1000000000000000000000000,
	10000000000000000000000000, 100000000000000000000000000, 1000000000000000000000000000,
	10000000000000000000000000000, 100000000000000000000000000000,
	1000000000000000000000000000000, 10000000000000000000000000000000,
	100000000000000000000000000000000, 1000000000000000000000000000000000,
	10000000000000000000000000000000000, 100000000000000000000000000000000000,
	1000000000000000000000000000000000000, 10000000000000000000000000000000000000,
	100000000000000000000000000000000000000, 1000000000000000000000000000000000000000,
	10000000000000000000000000000000000000000,
]

_pow1024 := [1, 1024, 1048576, 1073741824, 1099511627776, 1125899906842624, 1152921504606846976]

# === formatting ===

_text(v) := v if is_string(v)

_text(v) := sprintf("%v", [v]) if not is_string(v)

_quote(v) := sprintf("%q", [v]) if is_string(v)

_quote(v) := sprintf("%v", [v]) if not is_string(v)

_show_units(n, res) := sprintf("%vm", [n]) if res == "cpu"

_show_units(n, res) := sprintf("%v", [n]) if res == "memory"

_obj(x) := x if is_object(x)

_obj(x) := {} if not is_object(x)

_list(x) := x if is_array(x)

_list(x) := [] if not is_array(x)

_has(o, k) if _ = o[k]
