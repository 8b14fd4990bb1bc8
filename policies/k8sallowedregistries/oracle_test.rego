package k8sallowedregistries

# Cases where the pack disagreed with the distribution reference grammar, found by the oracle
# property test (engine/tests/oracle.rs against github.com/distribution/reference v0.6.0
# ParseNormalizedNamed, tests/oracle/). Docker Hub's "library/" prefix applies only when the host
# is exactly "docker.io" (or "index.docker.io", which becomes "docker.io"); with any other
# spelling the host is kept as written and the path gets no prefix.

_oracle_review(image, params) := {
	"review": {"object": {
		"apiVersion": "v1", "kind": "Pod",
		"metadata": {"name": "oracle", "namespace": "logistics"},
		"spec": {"containers": [{"name": "c", "image": image}]},
	}},
	"parameters": params,
}

test_oracle_uppercase_docker_hub_host_keeps_the_path if {
	results := violation with input as _oracle_review("Docker.io/x", {"registries": ["Docker.io"], "repositories": ["x"]})
	count(results) == 0
}

test_oracle_uppercase_index_docker_io_keeps_the_path if {
	results := violation with input as _oracle_review("Index.Docker.io/x", {"registries": ["Index.Docker.io"], "repositories": ["x"]})
	count(results) == 0
}

test_oracle_lowercase_docker_hub_host_gets_library if {
	results := violation with input as _oracle_review("docker.io/x", {"registries": ["docker.io"], "repositories": ["library/x"]})
	count(results) == 0
}
