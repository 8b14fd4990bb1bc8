package k8srequirednodeselector

_params := {"nodeSelector": {"node-type": "edge"}, "allowNodeAffinity": true}

_review(spec, params) := {
	"review": {"object": {
		"apiVersion": "v1", "kind": "Pod",
		"metadata": {"name": "logistics-tracker", "namespace": "logistics"},
		"spec": object.union({"containers": [{"name": "logistics-tracker", "image": "x"}]}, spec),
	}},
	"parameters": params,
}

_in(key, values) := {"key": key, "operator": "In", "values": values}

_affinity(terms) := {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}}

_pinned := {"matchExpressions": [_in("node-type", ["edge"])]}

_unpinned := {"matchExpressions": [_in("kubernetes.io/arch", ["arm64"])]}

_msgs(results) := {r.msg | some r in results}

_expected_how := `(nodeSelector, or In ["edge"] in every required node affinity term)`

test_node_selector_allowed if {
	results := violation with input as _review({"nodeSelector": {"node-type": "edge"}}, _params)
	count(results) == 0
}

test_node_selector_with_extra_labels_allowed if {
	results := violation with input as _review({"nodeSelector": {"node-type": "edge", "zone": "a"}}, _params)
	count(results) == 0
}

test_node_selector_missing if {
	results := violation with input as _review({}, _params)
	_msgs(results) == {sprintf(`pod "logistics-tracker" must select nodes with node-type=edge %s, found no nodeSelector node-type`, [_expected_how])}
}

test_node_selector_other_value if {
	results := violation with input as _review({"nodeSelector": {"node-type": "cloud"}}, _params)
	_msgs(results) == {sprintf(`pod "logistics-tracker" must select nodes with node-type=edge %s, found nodeSelector node-type=cloud`, [_expected_how])}
}

test_node_selector_value_is_case_sensitive if {
	results := violation with input as _review({"nodeSelector": {"node-type": "Edge"}}, _params)
	count(results) == 1
}

test_affinity_every_term_pinned_allowed if {
	spec := _affinity([_pinned, {"matchExpressions": [_in("kubernetes.io/arch", ["arm64"]), _in("node-type", ["edge"])]}])
	results := violation with input as _review(spec, _params)
	count(results) == 0
}

test_affinity_single_term_pinned_allowed if {
	results := violation with input as _review(_affinity([_pinned]), _params)
	count(results) == 0
}

test_affinity_second_term_unpinned if {
	results := violation with input as _review(_affinity([_pinned, _unpinned]), _params)
	_msgs(results) == {sprintf(`pod "logistics-tracker" must select nodes with node-type=edge %s, found no nodeSelector node-type and a required node affinity term that does not pin it`, [_expected_how])}
}

test_affinity_term_without_match_expressions if {
	results := violation with input as _review(_affinity([_pinned, {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]), _params)
	count(results) == 1
}

test_affinity_values_must_be_exactly_the_value if {
	results := violation with input as _review(_affinity([{"matchExpressions": [_in("node-type", ["edge", "cloud"])]}]), _params)
	count(results) == 1
}

test_affinity_operator_must_be_in if {
	expr := {"key": "node-type", "operator": "NotIn", "values": ["edge"]}
	results := violation with input as _review(_affinity([{"matchExpressions": [expr]}]), _params)
	count(results) == 1
}

test_affinity_other_key if {
	results := violation with input as _review(_affinity([{"matchExpressions": [_in("node-kind", ["edge"])]}]), _params)
	count(results) == 1
}

test_affinity_without_terms if {
	results := violation with input as _review(_affinity([]), _params)
	_msgs(results) == {sprintf(`pod "logistics-tracker" must select nodes with node-type=edge %s, found no nodeSelector node-type`, [_expected_how])}
}

test_affinity_not_allowed if {
	params := {"nodeSelector": {"node-type": "edge"}, "allowNodeAffinity": false}
	results := violation with input as _review(_affinity([_pinned]), params)
	_msgs(results) == {`pod "logistics-tracker" must select nodes with node-type=edge (nodeSelector), found no nodeSelector node-type`}
}

test_affinity_not_allowed_node_selector_still_works if {
	params := {"nodeSelector": {"node-type": "edge"}, "allowNodeAffinity": false}
	results := violation with input as _review({"nodeSelector": {"node-type": "edge"}}, params)
	count(results) == 0
}

test_allow_node_affinity_defaults_to_true if {
	results := violation with input as _review(_affinity([_pinned]), {"nodeSelector": {"node-type": "edge"}})
	count(results) == 0
}

test_wrong_node_selector_but_pinned_affinity_allowed if {
	spec := object.union({"nodeSelector": {"node-type": "cloud"}}, _affinity([_pinned]))
	results := violation with input as _review(spec, _params)
	count(results) == 0
}

test_one_violation_per_unsatisfied_key if {
	params := {"nodeSelector": {"node-type": "edge", "zone": "north", "arch": "arm64"}}
	results := violation with input as _review({"nodeSelector": {"zone": "north"}}, params)
	count(results) == 2
	{r.details.key | some r in results} == {"node-type", "arch"}
}

test_keys_satisfied_by_selector_and_affinity if {
	params := {"nodeSelector": {"node-type": "edge", "zone": "north"}}
	spec := object.union({"nodeSelector": {"zone": "north"}}, _affinity([_pinned]))
	results := violation with input as _review(spec, params)
	count(results) == 0
}

test_details if {
	results := violation with input as _review({"nodeSelector": {"node-type": "cloud"}}, _params)
	[r.details | some r in results] == [{"key": "node-type", "expected": "edge", "found": "nodeSelector node-type=cloud"}]
}

test_non_string_value if {
	results := violation with input as _review({"nodeSelector": {"node-type": 1}}, {"nodeSelector": {"node-type": 2}})
	_msgs(results) == {`pod "logistics-tracker" must select nodes with node-type=2 (nodeSelector, or In [2] in every required node affinity term), found nodeSelector node-type=1`}
}

test_no_parameters_allows_everything if {
	results := violation with input as _review({}, {})
	count(results) == 0
}

test_pod_name_from_generate_name if {
	inp := _review({}, _params)
	results := violation with input as object.union(inp, {"review": {"object": {"metadata": {"name": null, "generateName": "tracker-"}}}})
	[r.msg | some r in results][0] == sprintf(`pod "tracker-" must select nodes with node-type=edge %s, found no nodeSelector node-type`, [_expected_how])
}

test_pod_without_name if {
	results := violation with input as {"review": {"object": {"kind": "Pod"}}, "parameters": _params}
	startswith([r.msg | some r in results][0], `pod "" must select`)
}

test_not_a_pod_ignored if {
	inp := _review({}, _params)
	results := violation with input as object.union(inp, {"review": {"object": {"kind": "Deployment"}}})
	count(results) == 0
}

test_malformed_input if {
	params := violation with input as _review({}, {"nodeSelector": "node-type=edge"})
	count(params) == 0
	expressions := violation with input as _review(_affinity([{"matchExpressions": "node-type"}]), _params)
	count(expressions) == 1
	term := violation with input as _review(_affinity(["node-type"]), _params)
	count(term) == 1
}
