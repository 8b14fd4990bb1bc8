package k8srequiredruntimeclass

_params := {"runtimeClassNames": ["wasmedge"]}

_review(spec, params) := {
	"review": {"object": {
		"apiVersion": "v1", "kind": "Pod",
		"metadata": {"name": "tracker-7d9", "namespace": "logistics"},
		"spec": spec,
	}},
	"parameters": params,
}

_spec(runtime_class) := {
	"runtimeClassName": runtime_class,
	"containers": [{"name": "logistics-tracker", "image": "registry.example.com/logistics-tracker:latest"}],
}

_msgs(results) := {r.msg | some r in results}

test_allowed_runtime_class if {
	results := violation with input as _review(_spec("wasmedge"), _params)
	count(results) == 0
}

test_other_runtime_class if {
	results := violation with input as _review(_spec("runc"), _params)
	_msgs(results) == {`pod "tracker-7d9" must set runtimeClassName to one of ["wasmedge"], found "runc"`}
}

test_runtime_class_missing if {
	results := violation with input as _review({"containers": []}, _params)
	_msgs(results) == {`pod "tracker-7d9" must set runtimeClassName to one of ["wasmedge"], found ""`}
}

test_runtime_class_empty if {
	results := violation with input as _review(_spec(""), _params)
	count(results) == 1
}

test_empty_runtime_class_even_if_listed if {
	results := violation with input as _review(_spec(""), {"runtimeClassNames": ["", "wasmedge"]})
	count(results) == 1
}

test_runtime_class_null if {
	results := violation with input as _review(_spec(null), _params)
	_msgs(results) == {`pod "tracker-7d9" must set runtimeClassName to one of ["wasmedge"], found ""`}
}

test_runtime_class_is_case_sensitive if {
	results := violation with input as _review(_spec("WasmEdge"), _params)
	count(results) == 1
}

test_several_allowed if {
	params := {"runtimeClassNames": ["wasmedge", "crun-wasm"]}
	ok := violation with input as _review(_spec("crun-wasm"), params)
	count(ok) == 0
	bad := violation with input as _review(_spec("runc"), params)
	_msgs(bad) == {`pod "tracker-7d9" must set runtimeClassName to one of ["wasmedge", "crun-wasm"], found "runc"`}
}

test_no_parameters_denies_everything if {
	results := violation with input as _review(_spec("wasmedge"), {})
	_msgs(results) == {`pod "tracker-7d9" must set runtimeClassName to one of [], found "wasmedge"`}
}

test_details if {
	results := violation with input as _review(_spec("runc"), _params)
	[r.details | some r in results] == [{"allowed": ["wasmedge"], "found": "runc"}]
}

test_pod_name_from_generate_name if {
	inp := _review(_spec("runc"), _params)
	results := violation with input as object.union(inp, {"review": {"object": {"metadata": {"name": null, "generateName": "tracker-"}}}})
	_msgs(results) == {`pod "tracker-" must set runtimeClassName to one of ["wasmedge"], found "runc"`}
}

test_pod_without_name if {
	inp := {"review": {"object": {"kind": "Pod", "spec": {}}}, "parameters": _params}
	results := violation with input as inp
	_msgs(results) == {`pod "" must set runtimeClassName to one of ["wasmedge"], found ""`}
}

test_non_string_allowed_names if {
	results := violation with input as _review(_spec("runc"), {"runtimeClassNames": [1]})
	_msgs(results) == {`pod "tracker-7d9" must set runtimeClassName to one of [1], found "runc"`}
}

test_malformed_parameter if {
	results := violation with input as _review(_spec("wasmedge"), {"runtimeClassNames": "wasmedge"})
	count(results) == 1
}

test_not_a_pod_ignored if {
	inp := _review({}, _params)
	results := violation with input as object.union(inp, {"review": {"object": {"kind": "Deployment"}}})
	count(results) == 0
}
