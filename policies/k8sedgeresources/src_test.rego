package k8sedgeresources

# === fixtures ===

_tracker_params := {
	"node": {"cpu": "4", "memory": "8Gi"},
	"reserved": {"cpu": "500m", "memory": "1Gi"},
	"maxContainerLimits": {"cpu": "1", "memory": "1Gi"},
	"maxLimitRequestRatio": {"cpu": 5, "memory": 4},
}

_ref := {"requests": {"cpu": "200m", "memory": "256Mi"}, "limits": {"cpu": "1000m", "memory": "1Gi"}}

_res(request_cpu, request_memory, limit_cpu, limit_memory) := {
	"requests": {"cpu": request_cpu, "memory": request_memory},
	"limits": {"cpu": limit_cpu, "memory": limit_memory},
}

_c(name, resources) := {"name": name, "image": "registry.example.com/logistics-tracker:latest", "resources": resources}

_review(spec, params) := {
	"review": {"object": {
		"apiVersion": "v1", "kind": "Pod",
		"metadata": {"name": "logistics-tracker", "namespace": "logistics"},
		"spec": spec,
	}},
	"parameters": params,
}

_pod_spec(spec) := _review(spec, _tracker_params)

_one(resources) := _pod_spec({"containers": [_c("logistics-tracker", resources)]})

_n(n, resources) := _pod_spec({"containers": [_c(sprintf("c%d", [i]), resources) | some i in numbers.range(1, n)]})

_msgs(results) := {r.msg | some r in results}

# === the reference pod and its variants ===

test_reference_pod_allowed if {
	results := violation with input as _one(_ref)
	count(results) == 0
}

test_reference_resources_as_yaml_numbers_allowed if {
	# cpu: 0.2 / cpu: 1 and plain byte counts, as YAML numbers: still exactly on the ratio limits
	results := violation with input as _one(_res(0.2, 268435456, 1, 1073741824))
	count(results) == 0
}

test_missing_requests_cpu if {
	results := violation with input as _one({"requests": object.remove(_ref.requests, ["cpu"]), "limits": _ref.limits})
	_msgs(results) == {`container "logistics-tracker": requests.cpu is not set`}
}

test_missing_requests_memory if {
	results := violation with input as _one({"requests": object.remove(_ref.requests, ["memory"]), "limits": _ref.limits})
	_msgs(results) == {`container "logistics-tracker": requests.memory is not set`}
}

test_missing_limits_cpu if {
	results := violation with input as _one({"limits": object.remove(_ref.limits, ["cpu"]), "requests": _ref.requests})
	_msgs(results) == {`container "logistics-tracker": limits.cpu is not set`}
}

test_missing_limits_memory if {
	results := violation with input as _one({"limits": object.remove(_ref.limits, ["memory"]), "requests": _ref.requests})
	_msgs(results) == {`container "logistics-tracker": limits.memory is not set`}
}

test_missing_resources if {
	results := violation with input as _pod_spec({"containers": [{"name": "a", "image": "x"}]})
	count(results) == 4
}

test_null_resources_are_not_set if {
	results := violation with input as _pod_spec({"containers": [{"name": "a", "image": "x", "resources": null}]})
	count(results) == 4
}

test_null_value_is_not_set if {
	results := violation with input as _one(_res(null, "256Mi", "1", "1Gi"))
	_msgs(results) == {`container "logistics-tracker": requests.cpu is not set`}
}

test_cpu_limit_too_high if {
	results := violation with input as _one(_res("300m", "256Mi", "1500m", "1Gi"))
	_msgs(results) == {`container "logistics-tracker": limits.cpu 1500m exceeds the maximum 1`}
}

test_memory_limit_too_high if {
	results := violation with input as _one(_res("200m", "512Mi", "1000m", "2Gi"))
	_msgs(results) == {`container "logistics-tracker": limits.memory 2Gi exceeds the maximum 1Gi`}
}

test_cpu_ratio_too_high if {
	results := violation with input as _one(_res("150m", "256Mi", "900m", "1Gi"))
	_msgs(results) == {`container "logistics-tracker": limits.cpu 900m is more than 5 times requests.cpu 150m`}
}

test_cpu_request_above_limit if {
	results := violation with input as _one(_res("400m", "256Mi", "300m", "1Gi"))
	_msgs(results) == {`container "logistics-tracker": requests.cpu 400m exceeds limits.cpu 300m`}
}

test_invalid_quantity if {
	results := violation with input as _one(_res("12xyz", "256Mi", "1000m", "1Gi"))
	_msgs(results) == {`container "logistics-tracker": requests.cpu "12xyz" is not a valid quantity`}
}

test_four_containers_exceed_allocatable_cpu_limit if {
	results := violation with input as _n(4, _ref)
	_msgs(results) == {`pod "logistics-tracker": effective cpu limit 4000m exceeds the allocatable 3500m (node 4 minus reserved 500m)`}
}

# === rule 2: quantity grammar ===

test_invalid_quantities if {
	every q in ["12xyz", "1.", "K", "1K", "gi", "1gi", "", ".", "+", "-", "1e", "1E+", "1e1.5", "1.2.3", "+-1", " 1", "1 ", "1Ki1", "1m1", "1mi", "0x10", "1,5", "--1", "1kk", "١"] {
		results := violation with input as _one(_res("200m", "256Mi", q, "1Gi"))
		_msgs(results) == {sprintf(`container "logistics-tracker": limits.cpu %q is not a valid quantity`, [q])}
	}
}

test_invalid_quantity_of_another_type if {
	results := violation with input as _one(_res("200m", "256Mi", true, "1Gi"))
	_msgs(results) == {`container "logistics-tracker": limits.cpu true is not a valid quantity`}
}

test_invalid_quantity_in_every_field if {
	results := violation with input as _one(_res("a", "b", "c", "d"))
	count(results) == 4
}

test_quantity_values_cpu if {
	_num("0.5", "cpu") == 500
	_num("500m", "cpu") == 500
	_num(".5", "cpu") == 500
	_num(0.5, "cpu") == 500
	_num(1, "cpu") == 1000
	_num("1", "cpu") == 1000
	_num("+1", "cpu") == 1000
	_num("0", "cpu") == 0
	_num("-0", "cpu") == 0
	_num("00012", "cpu") == 12000
	_num("1.000", "cpu") == 1000
	_num("1000000n", "cpu") == 1
	_num("1000u", "cpu") == 1
	_num("1k", "cpu") == 1000000
	_num("1e3", "cpu") == 1000000
	_num("1E3", "cpu") == 1000000
	_num("1e+3", "cpu") == 1000000
	_num("1e-3", "cpu") == 1
	_num("1E-3", "cpu") == 1
	_num("1e0", "cpu") == 1000
	_num(0.0000001, "cpu") == 1
}

test_quantity_cpu_rounds_up_like_milli_value if {
	_num("0.1m", "cpu") == 1
	_num("1001u", "cpu") == 2
	_num("1n", "cpu") == 1
	_num("1e-99", "cpu") == 1
	_num("-0.1m", "cpu") == 0
	_num("-1.5m", "cpu") == -1
}

test_quantity_values_memory if {
	_num("1Gi", "memory") == 1073741824
	_num("1G", "memory") == 1000000000
	_num("129e6", "memory") == 129000000
	_num("129E6", "memory") == 129000000
	_num("128974848", "memory") == 128974848
	_num("123Mi", "memory") == 128974848
	_num("1Ki", "memory") == 1024
	_num("1Mi", "memory") == 1048576
	_num("1Ti", "memory") == 1099511627776
	_num("1Pi", "memory") == 1125899906842624
	_num("1Ei", "memory") == 1152921504606846976
	_num("1T", "memory") == 1000000000000
	_num("1P", "memory") == 1000000000000000
	_num("1E", "memory") == 1000000000000000000
	_num("1.5Gi", "memory") == 1610612736
	_num("0.5Ki", "memory") == 512
	_num("0.1Ki", "memory") == 103
	_num("1m", "memory") == 1
	_num("1500m", "memory") == 2
	_num("-1Ki", "memory") == -1024
	_num(1e9, "memory") == 1000000000
}

test_quantity_large_values_are_numbers if {
	_num("1234567890123456789012345", "memory") == 1234567890123456790000000
	_num("1e99999999999", "memory") > _num("8Ei", "memory")
}

test_quantity_parse_forms if {
	_qty("1.5Gi") == {"neg": false, "m": 15, "e": -1, "b": 3}
	_qty("-2e3") == {"neg": true, "m": 2, "e": 3, "b": 0}
	_qty("0") == {"neg": false, "m": 0, "e": 0, "b": 0}
	not _qty("1.")
	not _qty("K")
	not _qty("gi")
	not _qty(null)
	not _qty({"cpu": 1})
}

test_quantity_short_path_boundaries if {
	# at most 17 digits take the short path; longer ones, leading zeros, signs, fractions,
	# exponents, n/u and YAML numbers take the full grammar: the values agree
	_num("99999999999999999", "memory") == 99999999999999999
	_num("100000000000000000", "memory") == 100000000000000000
	_num("123456789012345678", "memory") == 123456789012345678
	_num("99999999999999999Gi", "memory") == 107374182399999998926258176
	_num("12345678901234567Ki", "cpu") == 12641975194864196608000
	_num("1Ti", "cpu") == 1099511627776000
	_num("1Ti", "memory") == 1099511627776
	_num("0200m", "cpu") == 200
	_num("00", "cpu") == 0
	_num("200000u", "cpu") == 200
	_num(200, "cpu") == 200000
	_num("9m", "memory") == 1
	not _num("1mm", "cpu")
	not _num("1Mi ", "memory")
	not _num("1 Mi", "memory")
	not _num("1e", "cpu")
	not _num("1E+", "cpu")
	not _num("1M1", "cpu")
}

# === the common case: one pass, the same answers ===

test_reference_pod_takes_the_common_path if {
	_fast_ok with input as _one(_ref)
	_containers == [{"label": "container", "index": -1, "sidecar": false, "n": [200, 268435456, 1000, 1073741824], "ok": true}] with input as _one(_ref)
}

test_common_path_parameters if {
	_params.max_cpu == 1000 with input as _one(_ref)
	_params.max_memory == 1073741824 with input as _one(_ref)
	_params.ratio_cpu == 5 with input as _one(_ref)
	_params.ratio_memory == 4 with input as _one(_ref)
	_params.alloc_cpu == 3500 with input as _one(_ref)
	_params.alloc_memory == 7516192768 with input as _one(_ref)
}

test_common_path_tables_match_the_full_ones if {
	_params.milli == _milli with input as _one(_ref)
	_params.base == _base with input as _one(_ref)
}

test_ratio_parameters_as_strings_take_the_common_path if {
	params := object.union(_tracker_params, {"maxLimitRequestRatio": {"cpu": "5", "memory": "4"}})
	_params.ratio_cpu == 5 with input as _review({"containers": [_c("a", _ref)]}, params)
	_fast_ok with input as _review({"containers": [_c("a", _ref)]}, params)
}

test_other_forms_of_the_reference_values_are_allowed_without_the_common_path if {
	every q in ["0200m", "0.2", "200000u", "200000000n", "+200m", "2e-1", "0.2e0", ".2", 0.2] {
		not _fast_ok with input as _one(_res(q, "256Mi", "1", "1Gi"))
		results := violation with input as _one(_res(q, "256Mi", "1", "1Gi"))
		count(results) == 0
	}
}

test_parameters_outside_the_common_path_give_the_same_answers if {
	params := {
		"node": {"cpu": "4.0", "memory": "8192Mi"},
		"reserved": {"cpu": "0.5", "memory": "1024Mi"},
		"maxContainerLimits": {"cpu": "1000m", "memory": "1Gi"},
		"maxLimitRequestRatio": {"cpu": 5.0, "memory": "4e0"},
	}
	not _params with input as _review({"containers": [_c("a", _ref)]}, params)
	ok := violation with input as _review({"containers": [_c("a", _ref)]}, params)
	count(ok) == 0
	four := violation with input as _review({"containers": [_c(sprintf("c%d", [i]), _ref) | some i in numbers.range(1, 4)]}, params)
	_msgs(four) == {`pod "logistics-tracker": effective cpu limit 4000m exceeds the allocatable 3500m (node 4.0 minus reserved 0.5)`}
	ratio := violation with input as _review({"containers": [_c("a", _res("150m", "256Mi", "900m", "1Gi"))]}, params)
	_msgs(ratio) == {`container "a": limits.cpu 900m is more than 5 times requests.cpu 150m`}
}

test_one_bad_container_among_good_ones if {
	spec := {"containers": [_c("a", _ref), _c("b", _res("200m", "256Mi", "1500m", "1Gi")), _c("c", _ref)]}
	results := violation with input as _pod_spec(spec)
	_msgs(results) == {
		`container "b": limits.cpu 1500m exceeds the maximum 1`,
		`container "b": limits.cpu 1500m is more than 5 times requests.cpu 200m`,
	}
}

test_empty_init_containers_and_overhead_allowed if {
	spec := {"containers": [_c("a", _ref)], "initContainers": [], "overhead": {}}
	not _fast_ok with input as _pod_spec(spec)
	results := violation with input as _pod_spec(spec)
	count(results) == 0
}

# === rule 3: request <= limit ===

test_request_equal_to_limit_allowed if {
	results := violation with input as _one(_res("1", "1Gi", "1000m", "1024Mi"))
	count(results) == 0
}

test_request_equal_to_limit_in_other_units_allowed if {
	results := violation with input as _one(_res("0.3", "0.5Gi", "300m", "512Mi"))
	count(results) == 0
}

test_memory_request_above_limit if {
	results := violation with input as _one(_res("200m", "1025Mi", "1000m", "1Gi"))
	_msgs(results) == {`container "logistics-tracker": requests.memory 1025Mi exceeds limits.memory 1Gi`}
}

test_cpu_request_just_above_limit if {
	results := violation with input as _one(_res("301m", "256Mi", "300m", "1Gi"))
	count(results) == 1
}

# === rule 4: limit <= maxContainerLimits ===

test_cpu_limit_at_maximum_allowed if {
	results := violation with input as _one(_res("1", "1Gi", 1, "1Gi"))
	count(results) == 0
}

test_cpu_limit_just_over_maximum if {
	results := violation with input as _one(_res("1", "1Gi", "1001m", "1Gi"))
	_msgs(results) == {`container "logistics-tracker": limits.cpu 1001m exceeds the maximum 1`}
}

test_cpu_limit_number_over_maximum if {
	results := violation with input as _one(_res("1", "1Gi", 1.5, "1Gi"))
	_msgs(results) == {`container "logistics-tracker": limits.cpu 1.5 exceeds the maximum 1`}
}

test_memory_limit_just_over_maximum if {
	results := violation with input as _one(_res("1", "1Gi", "1", "1073741825"))
	count(results) == 1
}

test_memory_limit_decimal_1g_below_1gi_allowed if {
	results := violation with input as _one(_res("1", "1G", "1", "1G"))
	count(results) == 0
}

# === rule 5: limit / request <= maxLimitRequestRatio ===

test_cpu_ratio_exactly_at_limit_allowed if {
	results := violation with input as _one(_res("200m", "256Mi", "1", "1Gi"))
	count(results) == 0
}

test_cpu_ratio_just_over_limit if {
	results := violation with input as _one(_res("199m", "256Mi", "1000m", "1Gi"))
	_msgs(results) == {`container "logistics-tracker": limits.cpu 1000m is more than 5 times requests.cpu 199m`}
}

test_memory_ratio_exactly_at_limit_allowed if {
	results := violation with input as _one(_res("200m", "268435456", "1", "1Gi"))
	count(results) == 0
}

test_memory_ratio_just_over_limit if {
	results := violation with input as _one(_res("200m", "268435455", "1", "1Gi"))
	_msgs(results) == {`container "logistics-tracker": limits.memory 1Gi is more than 4 times requests.memory 268435455`}
}

test_zero_request_with_nonzero_limit_violates_ratio if {
	results := violation with input as _one(_res("0", "256Mi", "1", "1Gi"))
	_msgs(results) == {`container "logistics-tracker": limits.cpu 1 is more than 5 times requests.cpu 0`}
}

test_zero_request_with_zero_limit_allowed if {
	results := violation with input as _one(_res("0", "256Mi", "0m", "1Gi"))
	count(results) == 0
}

test_fractional_ratio_is_exact if {
	params := object.union(_tracker_params, {"maxLimitRequestRatio": {"cpu": 1.1, "memory": 4}})
	at := violation with input as _review({"containers": [_c("a", _res("100m", "256Mi", "110m", "1Gi"))]}, params)
	count(at) == 0
	over := violation with input as _review({"containers": [_c("a", _res("100m", "256Mi", "111m", "1Gi"))]}, params)
	count(over) == 1
}

test_ratio_parameter_forms if {
	_max_ratio.cpu == {"num": 5, "den": 1} with input.parameters as _tracker_params
	_max_ratio.cpu == {"num": 15, "den": 10} with input.parameters.maxLimitRequestRatio as {"cpu": 1.5}
	_max_ratio.cpu == {"num": 2000, "den": 1} with input.parameters.maxLimitRequestRatio as {"cpu": "2k"}
	_max_ratio.cpu == {"num": -1, "den": 1} with input.parameters.maxLimitRequestRatio as {"cpu": -1}
	_max_ratio.cpu == {"num": -15, "den": 10} with input.parameters.maxLimitRequestRatio as {"cpu": "-1.5"}
}

test_negative_quantities_violate if {
	# the grammar allows a sign; a negative request or limit always breaks rule 3 or rule 5
	neg_request := violation with input as _one(_res("-100m", "256Mi", "100m", "1Gi"))
	count(neg_request) == 1
	neg_limit := violation with input as _one(_res("100m", "256Mi", "-100m", "1Gi"))
	count(neg_limit) == 1
	neg_both := violation with input as _one(_res("-100m", "256Mi", "-100m", "1Gi"))
	count(neg_both) == 1
}

# === rules 6 and 7: the pod's effective request and limit fit in allocatable ===

test_pod_cpu_limit_exactly_allocatable_allowed if {
	spec := {"containers": [
		_c("a", _ref), _c("b", _ref), _c("c", _ref),
		_c("d", _res("100m", "256Mi", "500m", "1Gi")),
	]}
	results := violation with input as _pod_spec(spec)
	count(results) == 0
}

test_pod_cpu_limit_just_over_allocatable if {
	spec := {"containers": [
		_c("a", _ref), _c("b", _ref), _c("c", _ref),
		_c("d", _res("101m", "256Mi", "501m", "1Gi")),
	]}
	results := violation with input as _pod_spec(spec)
	_msgs(results) == {`pod "logistics-tracker": effective cpu limit 3501m exceeds the allocatable 3500m (node 4 minus reserved 500m)`}
}

test_pod_memory_limit_exactly_allocatable_allowed if {
	results := violation with input as _review(
		{"containers": [_c(sprintf("c%d", [i]), _res("100m", "256Mi", "100m", "1Gi")) | some i in numbers.range(1, 7)]},
		_tracker_params,
	)
	count(results) == 0
}

test_pod_memory_limit_over_allocatable if {
	results := violation with input as _review(
		{"containers": [_c(sprintf("c%d", [i]), _res("100m", "256Mi", "100m", "1Gi")) | some i in numbers.range(1, 8)]},
		_tracker_params,
	)
	_msgs(results) == {`pod "logistics-tracker": effective memory limit 8Gi exceeds the allocatable 7Gi (node 8Gi minus reserved 1Gi)`}
}

test_pod_memory_over_allocatable_in_binary_units if {
	params := {"node": {"cpu": "4", "memory": "8Gi"}, "reserved": {"cpu": "500m", "memory": "1Gi"}}
	results := violation with input as _review({"containers": [_c("a", _res("100m", "16Gi", "100m", "16Gi"))]}, params)
	_msgs(results) == {
		`pod "logistics-tracker": effective memory request 16Gi exceeds the allocatable 7Gi (node 8Gi minus reserved 1Gi)`,
		`pod "logistics-tracker": effective memory limit 16Gi exceeds the allocatable 7Gi (node 8Gi minus reserved 1Gi)`,
	}
}

test_pod_memory_over_allocatable_in_bytes_when_no_unit_divides if {
	params := {"node": {"cpu": "4", "memory": "1M"}}
	results := violation with input as _review({"containers": [_c("a", _res("100m", "1000001", "100m", "1000001"))]}, params)
	_msgs(results) == {
		`pod "logistics-tracker": effective memory request 1000001 exceeds the allocatable 1M (node 1M minus reserved 0)`,
		`pod "logistics-tracker": effective memory limit 1000001 exceeds the allocatable 1M (node 1M minus reserved 0)`,
	}
}

test_memory_text if {
	cases := {
		0: "0",
		1023: "1023",
		1024: "1Ki",
		1000: "1k",
		1000001: "1000001",
		1024000: "1024k",
		1000000: "1M",
		1610612736: "1536Mi",
		7516192768: "7Gi",
		17179869184: "16Gi",
		1500000000: "1500M",
		2000000000: "2G",
		2048000: "2048k",
		6926258176: "6763924Ki",
		3458764513820540928: "3Ei",
		-268435456: "-256Mi",
		-1500: "-1500",
	}
	every n, text in cases {
		_memory_text(n) == text
	}
}

test_pod_request_over_allocatable if {
	params := {"node": {"cpu": "1", "memory": "1Gi"}}
	results := violation with input as _review({"containers": [_c("a", _res("600m", "1", "600m", "1")), _c("b", _res("600m", "1", "600m", "1"))]}, params)
	_msgs(results) == {
		`pod "logistics-tracker": effective cpu request 1200m exceeds the allocatable 1000m (node 1 minus reserved 0)`,
		`pod "logistics-tracker": effective cpu limit 1200m exceeds the allocatable 1000m (node 1 minus reserved 0)`,
	}
}

# Parameters without per-container bounds, so that only the pod totals are checked.
_node_only := {"node": {"cpu": "4", "memory": "8Gi"}}

_cpu(request, limit) := _res(request, "1Mi", limit, "1Mi")

_init(name, resources, restart_policy) := object.union(_c(name, resources), {"restartPolicy": restart_policy})

test_regular_init_container_counts_alone if {
	# max(app 1000m, init 3000m) = 3000m
	spec := {"containers": [_c("app", _cpu("1", "1"))], "initContainers": [_c("init", _cpu("3", "3"))]}
	results := violation with input as _review(spec, _node_only)
	count(results) == 0
}

test_regular_init_container_over_allocatable if {
	spec := {"containers": [_c("app", _cpu("1", "1"))], "initContainers": [_c("init", _cpu("4001m", "4001m"))]}
	results := violation with input as _review(spec, _node_only)
	count(results) == 2
}

test_sidecar_declared_before_init_container_counts_with_it if {
	# init term: 3000m + sidecar 1500m = 4500m > 4000m
	spec := {
		"containers": [_c("app", _cpu("1", "1"))],
		"initContainers": [_init("sidecar", _cpu("1500m", "1500m"), "Always"), _c("init", _cpu("3", "3"))],
	}
	results := violation with input as _review(spec, _node_only)
	_msgs(results) == {
		`pod "logistics-tracker": effective cpu request 4500m exceeds the allocatable 4000m (node 4 minus reserved 0)`,
		`pod "logistics-tracker": effective cpu limit 4500m exceeds the allocatable 4000m (node 4 minus reserved 0)`,
	}
}

test_sidecar_declared_after_init_container_does_not_count_with_it if {
	# max(app 1000m + sidecar 1500m, init 3000m) = 3000m
	spec := {
		"containers": [_c("app", _cpu("1", "1"))],
		"initContainers": [_c("init", _cpu("3", "3")), _init("sidecar", _cpu("1500m", "1500m"), "Always")],
	}
	results := violation with input as _review(spec, _node_only)
	count(results) == 0
}

test_sidecars_count_with_app_containers if {
	# app 3000m + sidecar 1001m = 4001m
	spec := {
		"containers": [_c("app", _cpu("3", "3"))],
		"initContainers": [_init("sidecar", _cpu("1001m", "1001m"), "Always"), _init("once", _cpu("1", "1"), "OnFailure")],
	}
	results := violation with input as _review(spec, _node_only)
	count(results) == 2
}

test_pod_totals if {
	spec := {
		"containers": [_c("app", _cpu("1", "2")), _c("app2", _cpu("500m", "500m"))],
		"initContainers": [
			_init("s1", _cpu("100m", "200m"), "Always"),
			_c("i1", _cpu("3", "3")),
			_init("s2", _cpu("10m", "10m"), "Always"),
			_c("i2", _cpu("1", "1")),
		],
		"overhead": {"cpu": "250m"},
	}

	# request: max(1500 + 110, 3000 + 100, 1000 + 110) + 250; limit: max(2500 + 210, 3200, 1210) + 250
	_pod_total("requests", "cpu") == 3350 with input as _review(spec, _node_only)
	_pod_total("limits", "cpu") == 3450 with input as _review(spec, _node_only)
}

test_overhead_counts if {
	spec := {"containers": [_c("a", _ref), _c("b", _ref), _c("c", _ref)], "overhead": {"cpu": "501m"}}
	results := violation with input as _pod_spec(spec)
	_msgs(results) == {`pod "logistics-tracker": effective cpu limit 3501m exceeds the allocatable 3500m (node 4 minus reserved 500m)`}
}

test_overhead_within_allocatable_allowed if {
	spec := {"containers": [_c("a", _ref), _c("b", _ref), _c("c", _ref)], "overhead": {"cpu": "500m", "memory": "120Mi"}}
	results := violation with input as _pod_spec(spec)
	count(results) == 0
}

test_invalid_overhead if {
	spec := {"containers": [_c("a", _ref)], "overhead": {"cpu": "lots"}}
	results := violation with input as _pod_spec(spec)
	_msgs(results) == {`pod "logistics-tracker": overhead.cpu "lots" is not a valid quantity`}
}

test_invalid_values_count_as_zero_in_pod_totals if {
	spec := {"containers": [_c("a", _res("x", "256Mi", "1", "1Gi")), _c("b", _res("200m", "256Mi", "1", "1Gi"))]}
	results := violation with input as _pod_spec(spec)
	count(results) == 1
}

# === which containers ===

test_init_containers_checked if {
	spec := {"containers": [_c("app", _ref)], "initContainers": [{"name": "init", "image": "busybox:1.36"}]}
	results := violation with input as _pod_spec(spec)
	_msgs(results) == {
		`initContainer "init": requests.cpu is not set`,
		`initContainer "init": requests.memory is not set`,
		`initContainer "init": limits.cpu is not set`,
		`initContainer "init": limits.memory is not set`,
	}
}

test_init_container_with_reference_resources_allowed if {
	spec := {"containers": [_c("app", _ref)], "initContainers": [_c("init", _ref)]}
	results := violation with input as _pod_spec(spec)
	count(results) == 0
}

test_sidecar_limit_too_high if {
	spec := {"containers": [_c("app", _ref)], "initContainers": [_init("proxy", _res("1", "1Gi", "2", "1Gi"), "Always")]}
	results := violation with input as _pod_spec(spec)
	_msgs(results) == {`initContainer "proxy": limits.cpu 2 exceeds the maximum 1`}
}

test_ephemeral_containers_skipped if {
	spec := {"containers": [_c("app", _ref)], "ephemeralContainers": [{"name": "debug", "image": "busybox"}]}
	results := violation with input as _pod_spec(spec)
	count(results) == 0
}

test_one_violation_per_container if {
	results := violation with input as _n(2, _res("150m", "256Mi", "900m", "1Gi"))
	count(results) == 2
}

test_pod_without_containers_allowed if {
	results := violation with input as _pod_spec({})
	count(results) == 0
}

test_not_a_pod_ignored if {
	inp := _one({})
	results := violation with input as object.union(inp, {"review": {"object": {"kind": "Deployment"}}})
	count(results) == 0
}

test_pod_name_from_generate_name if {
	inp := _n(4, _ref)
	results := violation with input as object.union(inp, {"review": {"object": {"metadata": {"name": null, "generateName": "tracker-"}}}})
	_msgs(results) == {`pod "tracker-": effective cpu limit 4000m exceeds the allocatable 3500m (node 4 minus reserved 500m)`}
}

test_pod_without_name if {
	inp := _n(4, _ref)
	results := violation with input as object.union(inp, {"review": {"object": {"metadata": {"name": null}}}})
	_msgs(results) == {`pod "": effective cpu limit 4000m exceeds the allocatable 3500m (node 4 minus reserved 500m)`}
}

# === parameters ===

test_no_parameters_checks_presence_and_validity_only if {
	ok := violation with input as _review({"containers": [_c("a", _res("1", "1", "999", "99Ei"))]}, {})
	count(ok) == 0
	missing := violation with input as _review({"containers": [_c("a", {})]}, {})
	count(missing) == 4
	above := violation with input as _review({"containers": [_c("a", _res("2", "1", "1", "1"))]}, {})
	count(above) == 1
}

test_invalid_parameters_reported if {
	params := {
		"node": {"cpu": "4 cores", "memory": "8Gi"},
		"reserved": {"cpu": "500m", "memory": "1GB"},
		"maxContainerLimits": {"cpu": "1", "memory": "1Gi", "ephemeral-storage": "bad"},
		"maxLimitRequestRatio": {"cpu": "five", "memory": 4},
	}
	results := violation with input as _review({"containers": [_c("a", _ref)]}, params)
	_msgs(results) == {
		`constraint parameter node.cpu "4 cores" is not a valid quantity`,
		`constraint parameter reserved.memory "1GB" is not a valid quantity`,
		`constraint parameter maxLimitRequestRatio.cpu "five" is not a valid quantity`,
	}
}

test_reserved_defaults_to_zero if {
	params := {"node": {"cpu": "4", "memory": "8Gi"}}
	results := violation with input as _review({"containers": [_c(sprintf("c%d", [i]), _ref) | some i in numbers.range(1, 4)]}, params)
	count(results) == 0
}

test_container_without_name if {
	results := violation with input as _pod_spec({"containers": [{"image": "x", "resources": _res("1", "1Gi", "2", "1Gi")}]})
	_msgs(results) == {`container "": limits.cpu 2 exceeds the maximum 1`}
}

test_malformed_container_list_ignored if {
	results := violation with input as _pod_spec({"containers": "not a list"})
	count(results) == 0
}
