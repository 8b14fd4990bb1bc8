# METADATA
# title: Image tag policy
# description: >-
#   Forbids container, init container and ephemeral container images with a disallowed tag (an
#   image with neither tag nor digest is treated as ":latest") and, optionally, requires every image
#   to be pinned by a digest. An image pinned by a valid digest (any algorithm) is accepted whatever
#   its tag.
# custom:
#   kind: K8sImageTagPolicy
#   version: 1.0.0
#   parameters:
#     type: object
#     description: The tags images may not use, and whether a digest is required.
#     properties:
#       disallowedTags:
#         type: array
#         description: Tags images may not use, such as "latest". An image with neither tag nor digest is "latest".
#         items:
#           type: string
#       requireDigest:
#         type: boolean
#         description: Require every image to be pinned by a digest (image@algorithm:hex).
#         default: false
package k8simagetagpolicy

_pod := input.review.object

_spec := _obj(object.get(_pod, "spec", {}))

violation contains {"msg": msg, "details": {"container": c.name, "image": c.image, "tag": ref.tag}} if {
	_pod.kind == "Pod"
	some c in _containers
	ref := _reference(c.image)
	not _valid_digest(ref.digest)
	ref.tag in _disallowed_tags
	msg := sprintf("%s %q: image %q uses the disallowed tag %q%s", [c.label, c.name, c.image, ref.tag, _implicit(ref)])
}

violation contains {"msg": msg, "details": {"container": c.name, "image": c.image}} if {
	_pod.kind == "Pod"
	object.get(input.parameters, "requireDigest", false) == true
	some c in _containers
	ref := _reference(c.image)
	not _valid_digest(ref.digest)
	msg := sprintf("%s %q: image %q is not pinned by a digest (image@sha256:...)", [c.label, c.name, c.image])
}

_disallowed_tags := {t | some t in _list(object.get(input.parameters, "disallowedTags", []))}

_containers := [{"label": label, "name": _name(c), "image": c.image} |
	some field, label in _fields
	some c in _list(object.get(_spec, field, []))
	is_string(c.image)
]

_fields := {"containers": "container", "initContainers": "initContainer", "ephemeralContainers": "ephemeralContainer"}

# {"tag", "digest", "explicit"}: the tag is in the last path component after ":" (so the port in
# "registry:5000/x" is not a tag); with no tag it is "latest".
_reference(image) := {"tag": _tag_or_latest(tag), "digest": _digest(image), "explicit": _is_set(tag)} if {
	name := split(image, "@")[0]
	parts := split(name, "/")
	last := parts[count(parts) - 1]
	tag := _tag(last)
}

_tag(component) := substring(component, indexof(component, ":") + 1, -1) if contains(component, ":")

_tag(component) := "" if not contains(component, ":")

_is_set(tag) if tag != ""

_is_set(tag) := false if tag == ""

_tag_or_latest(tag) := tag if tag != ""

_tag_or_latest(tag) := "latest" if tag == ""

_digest(image) := substring(image, indexof(image, "@") + 1, -1) if contains(image, "@")

_digest(image) := "" if not contains(image, "@")

_implicit(ref) := "" if ref.explicit == true

_implicit(ref) := " (an image with neither tag nor digest is :latest)" if ref.explicit == false

# digest := algorithm ":" hex; algorithm := component ([+._-] component)*, component :=
# [A-Za-z][A-Za-z0-9]*; hex := [0-9a-fA-F]{32,} (any algorithm is accepted).
_valid_digest(digest) if {
	parts := split(digest, ":")
	count(parts) == 2
	_valid_algorithm(parts[0])
	count(parts[1]) >= 32
	trim_left(parts[1], "0123456789abcdefABCDEF") == ""
}

_letters := "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

_valid_algorithm(algorithm) if {
	components := split(strings.replace_n({"+": ".", "_": ".", "-": "."}, algorithm), ".")
	every component in components {
		component != ""
		trim_left(substring(component, 0, 1), _letters) == ""
		trim_left(component, concat("", [_letters, "0123456789"])) == ""
	}
}

_name(c) := n if {
	n := c.name
	is_string(n)
} else := ""

_obj(x) := x if is_object(x)

_obj(x) := {} if not is_object(x)

_list(x) := x if is_array(x)

_list(x) := [] if not is_array(x)
