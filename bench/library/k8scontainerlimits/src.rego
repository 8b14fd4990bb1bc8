package k8scontainerlimits

# Benchmark template in the style of gatekeeper-library's k8scontainerlimits (Rego v0): every
# container's limits are parsed on each review with a regular expression and a table of unit
# multipliers, the way library templates commonly read quantities (no fast path).

missing(obj, field) {
	not obj[field]
}

missing(obj, field) {
	obj[field] == ""
}

# Millicores per unit.
cpu_units := {"": 1000, "m": 1}

# Millibytes per unit, so that "m" (millibytes, which Kubernetes accepts) stays an integer.
mem_units := {
	"": 1000, "m": 1,
	"k": 1000000, "M": 1000000000, "G": 1000000000000, "T": 1000000000000000,
	"Ki": 1024000, "Mi": 1048576000, "Gi": 1073741824000, "Ti": 1099511627776000,
}

number_and_suffix(orig) = [number, suffix] {
	is_string(orig)
	found := regex.find_n("^[0-9]+(\\.[0-9]+)?", orig, 1)
	number := found[0]
	suffix := substring(orig, count(number), -1)
}

canonify_cpu(orig) = new {
	is_number(orig)
	new := orig * 1000
}

canonify_cpu(orig) = new {
	parts := number_and_suffix(orig)
	new := to_number(parts[0]) * cpu_units[parts[1]]
}

canonify_mem(orig) = new {
	is_number(orig)
	new := orig * 1000
}

canonify_mem(orig) = new {
	parts := number_and_suffix(orig)
	new := to_number(parts[0]) * mem_units[parts[1]]
}

violation[{"msg": msg}] {
	general_violation[{"msg": msg, "field": "containers"}]
}

violation[{"msg": msg}] {
	general_violation[{"msg": msg, "field": "initContainers"}]
}

general_violation[{"msg": msg, "field": field}] {
	container := input.review.object.spec[field][_]
	not container.resources
	msg := sprintf("container <%v> has no resource limits", [container.name])
}

general_violation[{"msg": msg, "field": field}] {
	container := input.review.object.spec[field][_]
	not container.resources.limits
	msg := sprintf("container <%v> has no resource limits", [container.name])
}

general_violation[{"msg": msg, "field": field}] {
	container := input.review.object.spec[field][_]
	missing(container.resources.limits, "cpu")
	msg := sprintf("container <%v> has no cpu limit", [container.name])
}

general_violation[{"msg": msg, "field": field}] {
	container := input.review.object.spec[field][_]
	missing(container.resources.limits, "memory")
	msg := sprintf("container <%v> has no memory limit", [container.name])
}

general_violation[{"msg": msg, "field": field}] {
	container := input.review.object.spec[field][_]
	cpu_orig := container.resources.limits.cpu
	not canonify_cpu(cpu_orig)
	msg := sprintf("container <%v> cpu limit <%v> could not be parsed", [container.name, cpu_orig])
}

general_violation[{"msg": msg, "field": field}] {
	container := input.review.object.spec[field][_]
	mem_orig := container.resources.limits.memory
	not canonify_mem(mem_orig)
	msg := sprintf("container <%v> memory limit <%v> could not be parsed", [container.name, mem_orig])
}

general_violation[{"msg": msg, "field": field}] {
	container := input.review.object.spec[field][_]
	cpu_orig := container.resources.limits.cpu
	cpu := canonify_cpu(cpu_orig)
	max_cpu_orig := input.parameters.cpu
	max_cpu := canonify_cpu(max_cpu_orig)
	cpu > max_cpu
	msg := sprintf("container <%v> cpu limit <%v> is higher than the maximum allowed of <%v>", [container.name, cpu_orig, max_cpu_orig])
}

general_violation[{"msg": msg, "field": field}] {
	container := input.review.object.spec[field][_]
	mem_orig := container.resources.limits.memory
	mem := canonify_mem(mem_orig)
	max_mem_orig := input.parameters.memory
	max_mem := canonify_mem(max_mem_orig)
	mem > max_mem
	msg := sprintf("container <%v> memory limit <%v> is higher than the maximum allowed of <%v>", [container.name, mem_orig, max_mem_orig])
}
