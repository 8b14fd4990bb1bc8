package k8sallowedrepos

# Benchmark template in the style of gatekeeper-library's k8sallowedrepos (Rego v0): an image is
# allowed when it starts with one of parameters.repos, a plain string prefix check.

labels := {"containers": "container", "initContainers": "initContainer", "ephemeralContainers": "ephemeralContainer"}

violation[{"msg": msg}] {
	container := input.review.object.spec[field][_]
	label := labels[field]
	matched := [repo | repo := input.parameters.repos[_]; startswith(container.image, repo)]
	count(matched) == 0
	msg := sprintf("%v <%v> has an invalid image repo <%v>, allowed repos are %v", [label, container.name, container.image, input.parameters.repos])
}
