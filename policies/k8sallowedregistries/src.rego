# METADATA
# title: Allowed registries
# description: >-
#   Requires container, init container and ephemeral container images to come from an allowed
#   registry host (and, optionally, from allowed repository path prefixes in it). The registry is
#   found with the distribution reference grammar that Kubernetes and containerd use, not by string
#   prefix: "nginx" is docker.io/library/nginx, and "registry.example.com.evil.io/x" is not from
#   registry.example.com.
# custom:
#   kind: K8sAllowedRegistries
#   version: 1.0.0
#   parameters:
#     type: object
#     description: The registries (and repositories) images may come from.
#     properties:
#       registries:
#         type: array
#         description: >-
#           Allowed registry hosts, optionally with a port (registry.example.com,
#           registry.example.com:5000), compared exactly and case-insensitively. Images without a
#           registry host come from docker.io.
#         minItems: 1
#         items:
#           type: string
#       repositories:
#         type: array
#         description: >-
#           Optional allowed repository path prefixes (without the host) within those registries,
#           matched at a "/" boundary: "team" allows "team/x" but not "teamx/y". Absent or empty,
#           every repository is allowed.
#         items:
#           type: string
package k8sallowedregistries

# This runs on every Pod, so the common case is decided in one pass (_fast_ok): no repositories
# parameter, and every image's first path component is, lowercased, one of the allowed hosts.
# Otherwise the rules parse each image and build messages.

_pod := input.review.object

_spec := _obj(object.get(_pod, "spec", {}))

violation contains {"msg": msg, "details": details} if {
	not _fast_ok
	_pod.kind == "Pod"
	some c in _containers
	ref := _reference(c.image)
	not _allowed_registry(ref.registry)
	msg := sprintf("%s %q: image %q is from registry %q, not one of %s", [
		c.label, c.name, c.image, ref.registry, _show_list(_registries),
	])
	details := {"container": c.name, "image": c.image, "registry": ref.registry, "allowed": _registries}
}

violation contains {"msg": msg, "details": details} if {
	not _fast_ok
	_pod.kind == "Pod"
	count(_repositories) > 0
	some c in _containers
	ref := _reference(c.image)
	_allowed_registry(ref.registry)
	not _allowed_repository(ref.repository)
	msg := sprintf("%s %q: image %q is from repository %q, not under one of %s", [
		c.label, c.name, c.image, ref.repository, _show_list(_repositories),
	])
	details := {"container": c.name, "image": c.image, "repository": ref.repository, "allowed": _repositories}
}

# === the common case ===

# True when no image breaks a rule: no repositories are required, and the first path component of
# every image is, lowercased, one of _hosts. Such a component is a registry host (it holds "."), it
# names the registry of the image name before any "@" (it holds none), and it is not
# index.docker.io, so it is the image's registry: an allowed one.
_fast_ok if {
	not input.parameters.repositories
	hosts := _hosts
	spec := input.review.object.spec
	images := [image |
		some field in ["containers", "initContainers", "ephemeralContainers"]
		containers := spec[field]
		is_array(containers)
		some c in containers
		image := c.image
		is_string(image)
	]
	allowed := [image |
		some image in images
		i := indexof(image, "/")
		i > 0
		lower(substring(image, 0, i)) in hosts
	]
	count(allowed) == count(images)
}

# The allowed registries that are hosts (with a "."), lowercased, without "@", and not
# index.docker.io (which normalizes to docker.io: such an image takes the full path).
_hosts := {host |
	registries := input.parameters.registries
	is_array(registries)
	some allowed in registries
	is_string(allowed)
	host := lower(allowed)
	host != "index.docker.io"
	contains(host, ".")
	indexof(host, "@") < 0
}

_registries := _list(object.get(input.parameters, "registries", []))

_repositories := _list(object.get(input.parameters, "repositories", []))

_allowed_registry(registry) if {
	some allowed in _registries
	is_string(allowed)
	_normalize_registry(allowed) == registry
}

_allowed_repository(repository) if {
	some allowed in _repositories
	is_string(allowed)
	prefix := trim_right(allowed, "/")
	_under(repository, prefix)
}

_under(repository, prefix) if repository == prefix

_under(repository, prefix) if startswith(repository, concat("", [prefix, "/"]))

_containers := [{"label": label, "name": _name(c), "image": c.image} |
	some field, label in _fields
	some c in _list(object.get(_spec, field, []))
	is_string(c.image)
]

_fields := {"containers": "container", "initContainers": "initContainer", "ephemeralContainers": "ephemeralContainer"}

# The distribution reference grammar: the first path component is a registry host only if it
# contains "." or ":", is "localhost", or has an uppercase letter; otherwise the registry is
# docker.io, and a one-component name is docker.io/library/<name>. index.docker.io is docker.io.
_reference(image) := {"registry": "docker.io", "repository": _docker_hub_repository(_path(name))} if {
	name := split(image, "@")[0]
	not _has_host(name)
}

_reference(image) := {"registry": _normalize_registry(host), "repository": repository} if {
	name := split(image, "@")[0]
	_has_host(name)
	i := indexof(name, "/")
	host := substring(name, 0, i)
	remainder := substring(name, i + 1, -1)
	repository := _repository_for(host, _path(remainder))
}

_has_host(name) if {
	i := indexof(name, "/")
	i > 0
	_is_host(substring(name, 0, i))
}

_is_host(component) if contains(component, ".")

_is_host(component) if contains(component, ":")

_is_host(component) if component == "localhost"

_is_host(component) if lower(component) != component

# The repository path without the tag (only a tag can hold ":" once the host is split off).
_path(remainder) := split(remainder, ":")[0]

# Docker Hub's "library/" applies only to the host spelled exactly docker.io or index.docker.io
# (distribution compares the host case-sensitively); any other spelling keeps the path as written.
_repository_for(host, path) := _docker_hub_repository(path) if host in {"docker.io", "index.docker.io"}

_repository_for(host, path) := path if not host in {"docker.io", "index.docker.io"}

_docker_hub_repository(path) := path if contains(path, "/")

_docker_hub_repository(path) := concat("/", ["library", path]) if not contains(path, "/")

_normalize_registry(host) := "docker.io" if {
	lower(host) == "index.docker.io"
} else := lower(host)

_name(c) := n if {
	n := c.name
	is_string(n)
} else := ""

# ["a", "b"], the same in every engine (sprintf's %v on arrays differs between them).
_show_list(values) := concat("", ["[", concat(", ", [_quote(v) | some v in values]), "]"])

_quote(v) := sprintf("%q", [v]) if is_string(v)

_quote(v) := sprintf("%v", [v]) if not is_string(v)

_obj(x) := x if {
	is_object(x)
} else := {}

_list(x) := x if {
	is_array(x)
} else := []
