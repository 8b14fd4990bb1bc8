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

# Quantities follow Kubernetes' grammar exactly and are converted to exact integers: cpu in
# millicores rounded up (like Quantity.MilliValue), memory in bytes rounded up (like
# Quantity.Value).
#
# This runs on every Pod, and regorus charges for every statement, builtin call, function call and
# rule, so the common case is decided in one pass (_fast_ok) before any rule looks further:
# - A quantity written as digits starting with 1-9 and a suffix that needs no rounding (_milli,
#   _base) is converted directly: the short path. Comparisons check the first character (a string
#   that starts with 1-9 sorts between "1" and ":"; other types sort outside), and a value below
#   10^17 has at most 17 digits, which every engine reads exactly. Anything else (a sign, a
#   fraction, an exponent, a leading zero, n/u, a YAML number, an invalid string) goes through the
#   full grammar (_qty), which decides validity; the short path only ever accepts valid quantities.
# - _fast_ok holds when the pod breaks no rule at all: app containers only, no overhead, all eight
#   parameters and all four values of every container in the short path, every container within
#   its bounds and the pod's limits within the allocatable resources (each request is at most its
#   limit, so the pod's requests fit too). Each rule starts with `not _fast_ok`.
# - Otherwise the rules below decide one by one, reusing what the common pass computed, and build
#   messages only for the violations they find.

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

# Rules 1 to 5, for the containers that may break them.
violation contains v if {
	not _fast_ok
	_flagged != []
	_is_pod
	some v in _container_violations
}

violation contains v if {
	not _fast_ok
	some t in _totals
	allocatable := _alloc[t.res]
	t.total > allocatable
	_is_pod
	v := _total_violation(t.kind, t.res, t.total, allocatable)
}

violation contains {"msg": msg, "details": {"field": field, "value": raw}} if {
	not _fast_ok
	overhead := _spec.overhead
	_is_pod
	some res, raw in _obj(overhead)
	res in _resources
	not _num(raw, res)
	field := concat(".", ["overhead", res])
	msg := sprintf("pod %q: %s %s is not a valid quantity", [_pod_name, field, _quote(raw)])
}

violation contains {"msg": msg, "details": {"parameter": field, "value": raw}} if {
	not _fast_ok

	# the eight parameters that _params reads are all valid when it is defined
	not _params
	_is_pod
	some group in ["node", "reserved", "maxContainerLimits", "maxLimitRequestRatio"]
	some res, raw in _obj(object.get(input.parameters, group, {}))
	res in _resources
	not _qty(raw)
	field := concat(".", [group, res])
	msg := sprintf("constraint parameter %s %s is not a valid quantity", [field, _quote(raw)])
}

_total_violation(kind, res, total, allocatable) := {"msg": msg, "details": details} if {
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

# === the common case ===

_fast_ok if {
	spec := input.review.object.spec
	not spec.initContainers
	not spec.overhead
	containers := spec.containers
	is_array(containers)
	quick := _quick
	count(quick) == count(containers)
	p := _params
	sum([q[2] | some q in quick]) <= p.alloc_cpu
	sum([q[3] | some q in quick]) <= p.alloc_memory
}

# [requests.cpu, requests.memory, limits.cpu, limits.memory] of each app container whose four
# values take the short path and that breaks none of rules 1 to 5, in order (in the common case,
# every app container).
_quick := [[request_cpu, request_memory, limit_cpu, limit_memory] |
	containers := input.review.object.spec.containers
	is_array(containers)
	p := _params
	milli := p.milli
	base := p.base
	some c in containers
	requests := c.resources.requests
	limits := c.resources.limits
	s1 := requests.cpu
	"1" <= s1
	s1 < ":"
	x1 := trim_left(s1, "0123456789")
	d1 := to_number(trim_suffix(s1, x1))
	d1 < 100000000000000000
	request_cpu := d1 * milli[x1]
	s2 := requests.memory
	"1" <= s2
	s2 < ":"
	x2 := trim_left(s2, "0123456789")
	d2 := to_number(trim_suffix(s2, x2))
	d2 < 100000000000000000
	request_memory := d2 * base[x2]
	s3 := limits.cpu
	"1" <= s3
	s3 < ":"
	x3 := trim_left(s3, "0123456789")
	d3 := to_number(trim_suffix(s3, x3))
	d3 < 100000000000000000
	limit_cpu := d3 * milli[x3]
	s4 := limits.memory
	"1" <= s4
	s4 < ":"
	x4 := trim_left(s4, "0123456789")
	d4 := to_number(trim_suffix(s4, x4))
	d4 < 100000000000000000
	limit_memory := d4 * base[x4]
	request_cpu <= limit_cpu
	request_memory <= limit_memory
	limit_cpu <= p.max_cpu
	limit_memory <= p.max_memory
	limit_cpu <= p.ratio_cpu * request_cpu
	limit_memory <= p.ratio_memory * request_memory
]

# The eight parameters, when all are set and take the short path: the per-container maximums, the
# maximum ratios (integers), and the allocatable resources; with the suffix tables. Undefined
# otherwise (the rules then read them through _max_limit, _max_ratio and _allocatable).
_params := {
	"max_cpu": max_cpu, "max_memory": max_memory,
	"ratio_cpu": ratio_cpu, "ratio_memory": ratio_memory,
	"alloc_cpu": node_cpu - reserved_cpu, "alloc_memory": node_memory - reserved_memory,
	"milli": milli, "base": base,
} if {
	# _milli and _base, written out: a rule reference costs more than the literals
	milli := {
		"": 1000, "m": 1, "k": 1000000, "M": 1000000000, "G": 1000000000000,
		"Ki": 1024000, "Mi": 1048576000, "Gi": 1073741824000,
	}
	base := {
		"": 1, "k": 1000, "M": 1000000, "G": 1000000000, "T": 1000000000000,
		"Ki": 1024, "Mi": 1048576, "Gi": 1073741824, "Ti": 1099511627776,
	}
	p := input.parameters
	s1 := p.maxContainerLimits.cpu
	"1" <= s1
	s1 < ":"
	x1 := trim_left(s1, "0123456789")
	d1 := to_number(trim_suffix(s1, x1))
	d1 < 100000000000000000
	max_cpu := d1 * milli[x1]
	s2 := p.maxContainerLimits.memory
	"1" <= s2
	s2 < ":"
	x2 := trim_left(s2, "0123456789")
	d2 := to_number(trim_suffix(s2, x2))
	d2 < 100000000000000000
	max_memory := d2 * base[x2]

	# a ratio may be a number: its text is the quantity (strings print as themselves)
	s3 := sprintf("%v", [p.maxLimitRequestRatio.cpu])
	"1" <= s3
	s3 < ":"
	x3 := trim_left(s3, "0123456789")
	d3 := to_number(trim_suffix(s3, x3))
	d3 < 100000000000000000
	ratio_cpu := d3 * base[x3]
	s4 := sprintf("%v", [p.maxLimitRequestRatio.memory])
	"1" <= s4
	s4 < ":"
	x4 := trim_left(s4, "0123456789")
	d4 := to_number(trim_suffix(s4, x4))
	d4 < 100000000000000000
	ratio_memory := d4 * base[x4]
	s5 := p.node.cpu
	"1" <= s5
	s5 < ":"
	x5 := trim_left(s5, "0123456789")
	d5 := to_number(trim_suffix(s5, x5))
	d5 < 100000000000000000
	node_cpu := d5 * milli[x5]
	s6 := p.node.memory
	"1" <= s6
	s6 < ":"
	x6 := trim_left(s6, "0123456789")
	d6 := to_number(trim_suffix(s6, x6))
	d6 < 100000000000000000
	node_memory := d6 * base[x6]
	s7 := p.reserved.cpu
	"1" <= s7
	s7 < ":"
	x7 := trim_left(s7, "0123456789")
	d7 := to_number(trim_suffix(s7, x7))
	d7 < 100000000000000000
	reserved_cpu := d7 * milli[x7]
	s8 := p.reserved.memory
	"1" <= s8
	s8 < ":"
	x8 := trim_left(s8, "0123456789")
	d8 := to_number(trim_suffix(s8, x8))
	d8 < 100000000000000000
	reserved_memory := d8 * base[x8]
}

# === per-container rules (1 to 5) ===

_container_violations contains {"msg": msg, "details": {"container": c.name, "field": field}} if {
	some c in _flagged
	some kind in _kinds
	some res in _resources
	not _has(c.raw[kind], res)
	field := concat(".", [kind, res])
	msg := sprintf("%s %q: %s is not set", [c.label, c.name, field])
}

_container_violations contains {"msg": msg, "details": {"container": c.name, "field": field, "value": raw}} if {
	some c in _flagged
	some kind in _kinds
	some res, raw in c.raw[kind]
	not _has(c.n[kind], res)
	field := concat(".", [kind, res])
	msg := sprintf("%s %q: %s %s is not a valid quantity", [c.label, c.name, field, _quote(raw)])
}

_container_violations contains {"msg": msg, "details": details} if {
	some c in _flagged
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

_container_violations contains {"msg": msg, "details": details} if {
	some c in _flagged
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

_container_violations contains {"msg": msg, "details": details} if {
	some c in _flagged
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

# === containers ===

# Every container and init container (ephemeral containers cannot set resources), with the exact
# integer values of requests.cpu, requests.memory, limits.cpu and limits.memory in `n` (0 when
# unset or invalid), and `ok` when it breaks none of rules 1 to 5. Taken from _quick when that
# covers every container.
_containers := [{"label": "container", "index": -1, "sidecar": false, "n": q, "ok": true} | some q in quick] if {
	spec := input.review.object.spec
	not spec.initContainers
	containers := spec.containers
	is_array(containers)
	quick := _quick
	count(quick) == count(containers)
} else := array.concat(
	[_describe("container", -1, false, c) | some c in _list(object.get(_spec, "containers", []))],
	[_describe("initContainer", i, _is_sidecar(c), c) |
		some i, c in _list(object.get(_spec, "initContainers", []))
	],
)

_describe(label, index, sidecar, c) := {"label": label, "index": index, "sidecar": sidecar, "n": n, "ok": true} if {
	requests := c.resources.requests
	limits := c.resources.limits
	n := [
		_num(requests.cpu, "cpu"), _num(requests.memory, "memory"),
		_num(limits.cpu, "cpu"), _num(limits.memory, "memory"),
	]
	n[0] <= n[2]
	n[1] <= n[3]
	n[2] <= _max_limit.cpu
	n[3] <= _max_limit.memory
	n[2] * _max_ratio.cpu.den <= _max_ratio.cpu.num * n[0]
	n[3] * _max_ratio.memory.den <= _max_ratio.memory.num * n[1]
} else := {"label": label, "index": index, "sidecar": sidecar, "n": n, "ok": false, "c": c} if {
	d := _detail(c)
	n := [_value(d, "requests", "cpu"), _value(d, "requests", "memory"), _value(d, "limits", "cpu"), _value(d, "limits", "memory")]
}

# The containers that may break rules 1 to 5, with their raw resource values (set ones only) and
# their exact integer values (valid ones only).
_flagged := [object.union(_detail(d.c), {"label": d.label, "name": _name(d.c)}) | some d in _containers; d.ok == false]

_detail(c) := {"raw": raw, "n": {kind: {res: n | some res, v in raw[kind]; n := _num(v, res)} | some kind in _kinds}} if {
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

_value(c, kind, res) := object.get(c.n[kind], res, 0)

# === pod totals ===

_totals := [
	{"kind": "requests", "res": "cpu", "total": sum([c.n[0] | some c in containers])},
	{"kind": "requests", "res": "memory", "total": sum([c.n[1] | some c in containers])},
	{"kind": "limits", "res": "cpu", "total": sum([c.n[2] | some c in containers])},
	{"kind": "limits", "res": "memory", "total": sum([c.n[3] | some c in containers])},
] if {
	# app containers only, no overhead
	not input.review.object.spec.initContainers
	not input.review.object.spec.overhead
	containers := _containers
} else := [{"kind": s.kind, "res": s.res, "total": _total(s.i, s.res)} | some s in _slots]

_slots := [
	{"kind": "requests", "res": "cpu", "i": 0},
	{"kind": "requests", "res": "memory", "i": 1},
	{"kind": "limits", "res": "cpu", "i": 2},
	{"kind": "limits", "res": "memory", "i": 3},
]

_index := {"requests": {"cpu": 0, "memory": 1}, "limits": {"cpu": 2, "memory": 3}}

_pod_total(kind, res) := _total(i, res) if {
	slots := _index[kind]
	i := slots[res]
}

# The effective pod request (or limit) as the scheduler computes it:
# max(sum(app containers) + sum(sidecars), max over regular init containers i of
# (value_i + sum(sidecars declared before i))) + overhead. Unset or invalid values count as 0
# (they are reported per container).
_total(i, res) := total if {
	apps := [c.n[i] | some c in _containers; c.label == "container"]
	sidecars := [[c.index, c.n[i]] | some c in _containers; c.sidecar == true]
	inits := [n |
		some c in _containers
		c.label == "initContainer"
		c.sidecar == false
		n := c.n[i] + sum([s[1] | some s in sidecars; s[0] < c.index])
	]
	running := sum(apps) + sum([s[1] | some s in sidecars])
	total := max(array.concat([running], inits)) + _overhead(res)
}

_overhead(res) := n if {
	n := _num(_spec.overhead[res], res)
} else := 0

# === parameters ===

_alloc := {"cpu": p.alloc_cpu, "memory": p.alloc_memory} if {
	p := _params
} else := _allocatable

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
_max_ratio[res] := ratio if {
	some res in _resources
	ratio := _ratio(input.parameters.maxLimitRequestRatio[res])
}

_ratio(raw) := {"num": n, "den": 1} if {
	s := _qtext(raw)
	"1" <= s
	s < ":"
	suffix := trim_left(s, "0123456789")
	d := to_number(trim_suffix(s, suffix))
	d < 100000000000000000
	n := d * _base[suffix]
} else := {"num": _sign(q.neg, x * _p10(q.e)), "den": 1} if {
	q := _qty(raw)
	x := q.m * _pow1024[q.b]
	q.e >= 0
} else := {"num": _sign(q.neg, x), "den": _p10(0 - q.e)} if {
	q := _qty(raw)
	x := q.m * _pow1024[q.b]
	q.e < 0
}

# === quantities ===

# The suffixes of the short path (no rounding), with their multipliers to millicores and to bytes
# (or to units, for a ratio). _params has its own copy (a test keeps them equal).
_milli := {
	"": 1000, "m": 1, "k": 1000000, "M": 1000000000, "G": 1000000000000,
	"Ki": 1024000, "Mi": 1048576000, "Gi": 1073741824000,
}

_base := {
	"": 1, "k": 1000, "M": 1000000, "G": 1000000000, "T": 1000000000000,
	"Ki": 1024, "Mi": 1048576, "Gi": 1073741824, "Ti": 1099511627776,
}

_mults := {"cpu": _milli, "memory": _base}

_shift := {"cpu": 3, "memory": 0}

# _num(raw, res) is the exact integer value of quantity raw in the unit of res (millicores for cpu,
# bytes for memory), rounded up; undefined when raw is not a valid quantity.
_num(raw, res) := n if {
	s := _qtext(raw)
	"1" <= s
	s < ":"
	suffix := trim_left(s, "0123456789")
	d := to_number(trim_suffix(s, suffix))
	d < 100000000000000000
	mults := _mults[res]
	n := d * mults[suffix]
} else := _to_units(_qty(raw), _shift[res])

# A quantity from YAML such as `cpu: 1` or `cpu: 0.5` arrives as a number.
_qtext(raw) := raw if {
	is_string(raw)
} else := sprintf("%v", [raw]) if {
	is_number(raw)
}

_qty(raw) := _parse(_qtext(raw))

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
	_fits_int64(signed[0], trim_left(signed[1], "0"))
}

# Kubernetes reads the exponent with strconv.ParseInt(s, 10, 64): beyond int64 the quantity is
# invalid. Decided on the digits (no leading zeros), as a number that large is not exact.
_fits_int64(_, digits) if count(digits) < 19

_fits_int64(neg, digits) if {
	count(digits) == 19
	digits <= _int64_limit[neg]
}

_int64_limit := {false: "9223372036854775807", true: "9223372036854775808"}

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

_show_units(n, res) := _memory_text(n) if res == "memory"

# Bytes as a Kubernetes quantity a person reads: the shortest exact text among the largest binary
# suffix (Ei to Ki) that divides them, the largest decimal one (E to k), and the plain byte count;
# binary first on a tie, as memory is usually written. 17179869184 reads "16Gi", 2000000000 "2G"
# (not "1953125Ki"), 1000001 "1000001".
_memory_text(n) := "0" if n == 0

_memory_text(n) := _unsigned_memory_text(n) if n > 0

_memory_text(n) := concat("", ["-", _unsigned_memory_text(0 - n)]) if n < 0

_unsigned_memory_text(n) := [t | some t in texts; count(t) == shortest][0] if {
	units := [sprintf("%v%s", [n / unit[1], unit[0]]) | some unit in _memory_units; n % unit[1] == 0]
	texts := array.concat(units, [sprintf("%v", [n])])
	shortest := min([count(t) | some t in texts])
}

_memory_units := [
	["Ei", 1152921504606846976], ["Pi", 1125899906842624], ["Ti", 1099511627776],
	["Gi", 1073741824], ["Mi", 1048576], ["Ki", 1024],
	["E", 1000000000000000000], ["P", 1000000000000000], ["T", 1000000000000],
	["G", 1000000000], ["M", 1000000], ["k", 1000],
]

_obj(x) := x if {
	is_object(x)
} else := {}

_list(x) := x if {
	is_array(x)
} else := []

_has(o, k) if _ = o[k]
