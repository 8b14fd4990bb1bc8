package k8simagetagpolicy

_params := {"disallowedTags": ["latest"], "requireDigest": false}

_review(spec, params) := {
	"review": {"object": {
		"apiVersion": "v1", "kind": "Pod",
		"metadata": {"name": "logistics-tracker", "namespace": "logistics"},
		"spec": spec,
	}},
	"parameters": params,
}

_image(image, params) := _review({"containers": [{"name": "logistics-tracker", "image": image}]}, params)

_msgs(results) := {r.msg | some r in results}

_test_hex := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

_test_digest := concat(":", ["sha256", _test_hex])

test_latest_tag if {
	results := violation with input as _image("registry.example.com/logistics-tracker:latest", _params)
	_msgs(results) == {`container "logistics-tracker": image "registry.example.com/logistics-tracker:latest" uses the disallowed tag "latest"`}
}

test_no_tag_is_latest if {
	results := violation with input as _image("registry.example.com/logistics-tracker", _params)
	_msgs(results) == {`container "logistics-tracker": image "registry.example.com/logistics-tracker" uses the disallowed tag "latest" (an image with neither tag nor digest is :latest)`}
}

test_bare_name_is_latest if {
	results := violation with input as _image("nginx", _params)
	count(results) == 1
}

test_port_is_not_a_tag if {
	results := violation with input as _image("registry:5000/x", _params)
	[r.details.tag | some r in results] == ["latest"]
	tagged := violation with input as _image("registry:5000/x:1.0", _params)
	count(tagged) == 0
	latest := violation with input as _image("registry:5000/team/x:latest", _params)
	count(latest) == 1
}

test_other_tags_allowed if {
	every image in ["registry.example.com/logistics-tracker:1.4.2", "nginx:1.27", "registry:5000", "x:latest-2", "x:Latest"] {
		results := violation with input as _image(image, _params)
		count(results) == 0
	}
}

test_valid_digest_accepted_whatever_the_tag if {
	every image in [
		concat("@", ["registry.example.com/logistics-tracker:latest", _test_digest]),
		concat("@", ["registry.example.com/logistics-tracker", _test_digest]),
		concat("@", ["nginx", _test_digest]),
		concat("@", ["registry:5000/x:latest", _test_digest]),
		concat("@", ["x:latest", concat(":", ["sha512", concat("", [_test_hex, _test_hex])])]),
		concat("@", ["x:latest", concat(":", ["blake3", upper(_test_hex)])]),
		concat("@", ["x:latest", concat(":", ["multihash+base58", substring(_test_hex, 0, 32)])]),
		concat("@", ["x:latest", concat(":", ["a.b_c-d1", _test_hex])]),
	] {
		results := violation with input as _image(image, _params)
		count(results) == 0
	}
}

test_invalid_digest_does_not_pin if {
	every image in [
		concat("@", ["x:latest", "sha256:abc"]),
		concat("@", ["x:latest", concat("", ["sha256:", substring(_test_hex, 0, 31)])]),
		concat("@", ["x:latest", concat(":", ["sha256", replace(_test_hex, "a", "g")])]),
		concat("@", ["x:latest", concat(":", ["1sha", _test_hex])]),
		concat("@", ["x:latest", concat(":", ["sha..256", _test_hex])]),
		concat("@", ["x:latest", concat(":", ["sha/256", _test_hex])]),
		concat("@", ["x:latest", concat(":", ["", _test_hex])]),
		concat("@", ["x:latest", _test_hex]),
		concat("@", ["x:latest", concat(":", ["sha256", _test_hex, "00"])]),
		concat("@", ["x", "sha256:abc"]),
	] {
		results := violation with input as _image(image, _params)
		count(results) == 1
	}
}

test_require_digest if {
	params := {"disallowedTags": ["latest"], "requireDigest": true}
	tagged := violation with input as _image("registry.example.com/logistics-tracker:1.4.2", params)
	_msgs(tagged) == {`container "logistics-tracker": image "registry.example.com/logistics-tracker:1.4.2" is not pinned by a digest (image@sha256:...)`}
	latest := violation with input as _image("registry.example.com/logistics-tracker:latest", params)
	count(latest) == 2
	pinned := violation with input as _image(concat("@", ["registry.example.com/logistics-tracker:1.4.2", _test_digest]), params)
	count(pinned) == 0
	invalid := violation with input as _image("registry.example.com/logistics-tracker:1.4.2@sha256:abc", params)
	count(invalid) == 1
}

test_require_digest_defaults_to_false if {
	results := violation with input as _image("nginx:1.27", {"disallowedTags": ["latest"]})
	count(results) == 0
}

test_several_disallowed_tags if {
	params := {"disallowedTags": ["latest", "dev", "main"]}
	every image in ["x:dev", "x:main", "x"] {
		results := violation with input as _image(image, params)
		count(results) == 1
	}
}

test_no_disallowed_tags if {
	results := violation with input as _image("nginx", {})
	count(results) == 0
}

test_init_and_ephemeral_containers if {
	spec := {
		"containers": [{"name": "app", "image": "x:1"}],
		"initContainers": [{"name": "init", "image": "busybox"}],
		"ephemeralContainers": [{"name": "debug", "image": "busybox:latest"}],
	}
	results := violation with input as _review(spec, _params)
	_msgs(results) == {
		`initContainer "init": image "busybox" uses the disallowed tag "latest" (an image with neither tag nor digest is :latest)`,
		`ephemeralContainer "debug": image "busybox:latest" uses the disallowed tag "latest"`,
	}
}

test_one_violation_per_container if {
	spec := {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "x"}]}
	results := violation with input as _review(spec, _params)
	count(results) == 2
}

test_reference_parsing if {
	_reference("x") == {"tag": "latest", "digest": "", "explicit": false}
	_reference("x:1") == {"tag": "1", "digest": "", "explicit": true}
	_reference("r:5000/a/b") == {"tag": "latest", "digest": "", "explicit": false}
	_reference("r:5000/a/b:c@sha256:d") == {"tag": "c", "digest": "sha256:d", "explicit": true}
}

test_container_without_image_or_name if {
	spec := {"containers": [{"name": "a"}, {"image": "x"}]}
	results := violation with input as _review(spec, _params)
	_msgs(results) == {`container "": image "x" uses the disallowed tag "latest" (an image with neither tag nor digest is :latest)`}
}

test_not_a_pod_ignored if {
	inp := _image("x", _params)
	results := violation with input as object.union(inp, {"review": {"object": {"kind": "Deployment"}}})
	count(results) == 0
}

test_malformed_pod_ignored if {
	results := violation with input as {"review": {"object": {"kind": "Pod", "spec": "x"}}, "parameters": _params}
	count(results) == 0
}

test_malformed_parameters if {
	results := violation with input as _image("x", {"disallowedTags": "latest"})
	count(results) == 0
}

test_tag_forms if {
	_tag_of("x") == ["latest", false]
	_tag_of("x:") == ["latest", false]
	_tag_of("x:a:b") == ["a:b", true]
	_tag_of("r:5000/x") == ["latest", false]
	_tag_of("r:5000/x:1@sha256:abc:d") == ["1", true]
	_tag_of("x@sha256:abc") == ["latest", false]
	_tag_of("a:1/b") == ["latest", false]
	_tag_of("a/b:c/d:e") == ["e", true]
}

test_empty_tag_is_latest if {
	results := violation with input as _image("nginx:", _params)
	_msgs(results) == {`container "logistics-tracker": image "nginx:" uses the disallowed tag "latest" (an image with neither tag nor digest is :latest)`}
}

test_digest_checked_only_after_the_first_at if {
	pinned := violation with input as _image(concat("@", ["x:latest", _test_digest]), _params)
	count(pinned) == 0
	twice := violation with input as _image(concat("@", ["x:latest", _test_digest, "y"]), _params)
	count(twice) == 1
}
