package k8sallowedregistries

_params := {"registries": ["registry.example.com"]}

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

_test_digest := "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

test_allowed_registry if {
	results := violation with input as _image("registry.example.com/logistics-tracker:latest", _params)
	count(results) == 0
}

test_allowed_registry_forms if {
	every image in [
		"registry.example.com/logistics-tracker",
		"registry.example.com/team/logistics-tracker:1.0",
		concat("@", ["registry.example.com/logistics-tracker", _test_digest]),
		concat("@", ["registry.example.com/logistics-tracker:1.0", _test_digest]),
		"REGISTRY.example.com/logistics-tracker:1.0",
	] {
		results := violation with input as _image(image, _params)
		count(results) == 0
	}
}

test_docker_hub_explicit if {
	results := violation with input as _image("docker.io/library/nginx:1.27", _params)
	_msgs(results) == {`container "logistics-tracker": image "docker.io/library/nginx:1.27" is from registry "docker.io", not one of ["registry.example.com"]`}
}

test_docker_hub_bare_name if {
	results := violation with input as _image("nginx:1.27", _params)
	_msgs(results) == {`container "logistics-tracker": image "nginx:1.27" is from registry "docker.io", not one of ["registry.example.com"]`}
}

test_lookalike_hosts if {
	every case in [
		["registry.example.com.evil.io/tracker:1", "registry.example.com.evil.io"],
		["evil.io/registry.example.com/x", "evil.io"],
		[concat("@", ["registry.example.com", _test_digest]), "docker.io"],
		["registry.example.comx/y", "registry.example.comx"],
		["registry.example.com:5000/x", "registry.example.com:5000"],
		["registry/x", "docker.io"],
		["registry.example.com", "docker.io"],
		["registry.example.com:5000", "docker.io"],
	] {
		results := violation with input as _image(case[0], _params)
		[r.details.registry | some r in results] == [case[1]]
	}
}

test_reference_parsing if {
	_reference("nginx") == {"registry": "docker.io", "repository": "library/nginx"}
	_reference("nginx:1.27") == {"registry": "docker.io", "repository": "library/nginx"}
	_reference("bitnami/nginx:1") == {"registry": "docker.io", "repository": "bitnami/nginx"}
	_reference("docker.io/nginx") == {"registry": "docker.io", "repository": "library/nginx"}
	_reference("index.docker.io/nginx") == {"registry": "docker.io", "repository": "library/nginx"}
	_reference("Index.Docker.IO/team/app") == {"registry": "docker.io", "repository": "team/app"}
	_reference("localhost/app") == {"registry": "localhost", "repository": "app"}
	_reference("localhost:5000/a/b:1") == {"registry": "localhost:5000", "repository": "a/b"}
	_reference("Registry/app") == {"registry": "registry", "repository": "app"}
	_reference("registry:5000/app@sha256:abc") == {"registry": "registry:5000", "repository": "app"}
	_reference("ghcr.io/org/app:v1") == {"registry": "ghcr.io", "repository": "org/app"}
	_reference("/app") == {"registry": "docker.io", "repository": "/app"}
}

test_registry_with_port if {
	params := {"registries": ["registry.example.com:5000"]}
	ok := violation with input as _image("registry.example.com:5000/x:1", params)
	count(ok) == 0
	no_port := violation with input as _image("registry.example.com/x:1", params)
	count(no_port) == 1
}

test_allowed_registry_is_case_insensitive if {
	results := violation with input as _image("registry.example.com/x:1", {"registries": ["Registry.Example.COM"]})
	count(results) == 0
}

test_docker_hub_allowed if {
	every registries in [["docker.io"], ["index.docker.io"]] {
		every image in ["nginx", "library/nginx:1", "docker.io/library/nginx", "index.docker.io/nginx"] {
			results := violation with input as _image(image, {"registries": registries})
			count(results) == 0
		}
	}
}

test_localhost_allowed if {
	results := violation with input as _image("localhost/app:1", {"registries": ["localhost"]})
	count(results) == 0
}

test_several_registries if {
	params := {"registries": ["registry.example.com", "ghcr.io"]}
	ok := violation with input as _image("ghcr.io/org/app:1", params)
	count(ok) == 0
	bad := violation with input as _image("quay.io/org/app:1", params)
	_msgs(bad) == {`container "logistics-tracker": image "quay.io/org/app:1" is from registry "quay.io", not one of ["registry.example.com", "ghcr.io"]`}
}

test_init_container if {
	spec := {
		"containers": [{"name": "logistics-tracker", "image": "registry.example.com/logistics-tracker:latest"}],
		"initContainers": [{"name": "init", "image": "busybox:1.36"}],
	}
	results := violation with input as _review(spec, _params)
	_msgs(results) == {`initContainer "init": image "busybox:1.36" is from registry "docker.io", not one of ["registry.example.com"]`}
}

test_ephemeral_container if {
	spec := {
		"containers": [{"name": "logistics-tracker", "image": "registry.example.com/logistics-tracker:latest"}],
		"ephemeralContainers": [{"name": "debug", "image": "busybox"}],
	}
	results := violation with input as _review(spec, _params)
	_msgs(results) == {`ephemeralContainer "debug": image "busybox" is from registry "docker.io", not one of ["registry.example.com"]`}
}

test_one_violation_per_container if {
	spec := {"containers": [{"name": "a", "image": "nginx"}, {"name": "b", "image": "nginx"}, {"name": "c", "image": "registry.example.com/c"}]}
	results := violation with input as _review(spec, _params)
	count(results) == 2
}

test_repositories if {
	params := {"registries": ["registry.example.com"], "repositories": ["team", "infra/tools/"]}
	every image in ["registry.example.com/team/x:1", "registry.example.com/team/sub/x", "registry.example.com/infra/tools/y", "registry.example.com/team"] {
		ok := violation with input as _image(image, params)
		count(ok) == 0
	}
	every image in ["registry.example.com/teamx/y:1", "registry.example.com/other/x", "registry.example.com/infra/x", "registry.example.com/x"] {
		bad := violation with input as _image(image, params)
		count(bad) == 1
	}
}

test_repository_message if {
	params := {"registries": ["registry.example.com"], "repositories": ["team"]}
	results := violation with input as _image("registry.example.com/teamx/y:1", params)
	_msgs(results) == {`container "logistics-tracker": image "registry.example.com/teamx/y:1" is from repository "teamx/y", not under one of ["team"]`}
}

test_repositories_on_docker_hub if {
	params := {"registries": ["docker.io"], "repositories": ["library"]}
	ok := violation with input as _image("nginx:1.27", params)
	count(ok) == 0
	bad := violation with input as _image("bitnami/nginx:1", params)
	count(bad) == 1
}

test_repositories_not_checked_outside_allowed_registries if {
	params := {"registries": ["registry.example.com"], "repositories": ["team"]}
	results := violation with input as _image("quay.io/other/x", params)
	count(results) == 1
}

test_empty_repositories_allow_every_repository if {
	results := violation with input as _image("registry.example.com/any/x", {"registries": ["registry.example.com"], "repositories": []})
	count(results) == 0
}

test_non_string_parameters_ignored if {
	results := violation with input as _image("registry.example.com/x", {"registries": [1, "registry.example.com"], "repositories": [2, "x"]})
	count(results) == 0
}

test_no_parameters_denies_every_image if {
	results := violation with input as _image("registry.example.com/x", {})
	_msgs(results) == {`container "logistics-tracker": image "registry.example.com/x" is from registry "registry.example.com", not one of []`}
}

test_container_without_image_or_name if {
	spec := {"containers": [{"name": "a"}, {"image": "nginx"}]}
	results := violation with input as _review(spec, _params)
	_msgs(results) == {`container "": image "nginx" is from registry "docker.io", not one of ["registry.example.com"]`}
}

test_not_a_pod_ignored if {
	inp := _image("nginx", _params)
	results := violation with input as object.union(inp, {"review": {"object": {"kind": "Deployment"}}})
	count(results) == 0
}

test_malformed_pod_ignored if {
	results := violation with input as {"review": {"object": {"kind": "Pod", "spec": "x"}}, "parameters": _params}
	count(results) == 0
}

test_malformed_parameters if {
	results := violation with input as _image("registry.example.com/x", {"registries": "registry.example.com"})
	count(results) == 1
	numbers := violation with input as _image("nginx", {"registries": [5000]})
	_msgs(numbers) == {`container "logistics-tracker": image "nginx" is from registry "docker.io", not one of [5000]`}
}

# === the common case: one pass, the same answers ===

test_common_path if {
	_fast_ok with input as _image("registry.example.com/logistics-tracker:latest", _params)
	_fast_ok with input as _image("REGISTRY.example.com/logistics-tracker:1.0", _params)
	not _fast_ok with input as _image("registry.example.com", _params)
	not _fast_ok with input as _image("registry.example.com.evil.io/tracker:1", _params)
	not _fast_ok with input as _image("nginx", _params)
	not _fast_ok with input as _image("registry.example.com/x", {"registries": ["registry.example.com"], "repositories": ["team"]})
}

test_allowed_registries_outside_the_common_path if {
	# allowed entries with "@", without ".", or naming index.docker.io: the full parse decides
	every case in [
		[["registry.example.com@sha256:x"], "registry.example.com@sha256:x/app", 1],
		[["registry.example.com"], "registry.example.com@sha256:x/app", 1],
		[["localhost:5000"], "localhost:5000/app", 0],
		[["localhost"], "localhost/app", 0],
		[["localhost"], "LOCALHOST/app", 0],
		[["index.docker.io"], "nginx", 0],
		[["index.docker.io"], "index.docker.io/library/nginx", 0],
		[["Docker.IO"], "docker.io/x/y", 0],
		[["myregistry"], "myregistry/app", 1],
		[["registry.example.com", 5], "registry.example.com/app", 0],
	] {
		results := violation with input as _image(case[1], {"registries": case[0]})
		count(results) == case[2]
	}
}

test_registries_not_a_list_allow_nothing if {
	results := violation with input as _image("registry.example.com/app", {"registries": {"a": "registry.example.com"}})
	count(results) == 1
}
