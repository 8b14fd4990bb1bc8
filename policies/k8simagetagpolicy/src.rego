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

# This runs on every Pod: each image is read once (_images), a digest is checked only when the
# image has one, and messages are built only for violations.

violation contains {"msg": msg, "details": {"container": name, "image": image.image, "tag": image.tag}} if {
	some image in _images
	image.pinned == false
	image.tag in _disallowed_tags
	input.review.object.kind == "Pod"
	name := _name(image.c)
	msg := sprintf("%s %q: image %q uses the disallowed tag %q%s", [image.label, name, image.image, image.tag, _implicit(image)])
}

violation contains {"msg": msg, "details": {"container": name, "image": image.image}} if {
	input.parameters.requireDigest == true
	some image in _images
	image.pinned == false
	input.review.object.kind == "Pod"
	name := _name(image.c)
	msg := sprintf("%s %q: image %q is not pinned by a digest (image@sha256:...)", [image.label, name, image.image])
}

_disallowed_tags := {t |
	tags := input.parameters.disallowedTags
	is_array(tags)
	some t in tags
}

# Every container, init container and ephemeral container with a string image: its tag (or
# "latest"), whether the tag is explicit, and whether a valid digest pins it.
_images := [{"label": label, "c": c, "image": image, "tag": tag[0], "explicit": tag[1], "pinned": _pinned(image)} |
	spec := input.review.object.spec
	some field, label in {"containers": "container", "initContainers": "initContainer", "ephemeralContainers": "ephemeralContainer"}
	containers := spec[field]
	is_array(containers)
	some c in containers
	image := c.image
	is_string(image)
	tag := _tag_of(image)
]

# [tag, true], or ["latest", false] when the image has no tag: the tag is in the last path component
# of the name (before any "@") after ":" (so the port in "registry:5000/x" is not a tag).
_tag_of(image) := [tag, true] if {
	name := substring(image, 0, indexof(image, "@"))
	parts := split(name, "/")
	last := parts[count(parts) - 1]
	i := indexof(last, ":")
	i >= 0
	tag := substring(last, i + 1, -1)
	tag != ""
} else := ["latest", false]

_pinned(image) if {
	i := indexof(image, "@")
	i >= 0
	_valid_digest(substring(image, i + 1, -1))
} else := false

# {"tag", "digest", "explicit"}: the tag as _tag_of reads it, and the digest after the first "@".
_reference(image) := {"tag": tag[0], "digest": _digest(image), "explicit": tag[1]} if {
	tag := _tag_of(image)
}

_digest(image) := substring(image, indexof(image, "@") + 1, -1) if {
	contains(image, "@")
} else := ""

_implicit(image) := "" if {
	image.explicit == true
} else := " (an image with neither tag nor digest is :latest)"

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
