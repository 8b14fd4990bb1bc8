package k8sedgeresources

# Cases where the pack disagreed with Kubernetes' own quantity parser, found by the oracle
# property test (engine/tests/oracle.rs against k8s.io/apimachinery v0.34.0
# resource.ParseQuantity, tests/oracle/). Kubernetes parses an exponent suffix as an int64:
# beyond int64 the quantity is invalid; within it, valid.

_oracle_invalid(q) if {
	results := violation with input as _oracle_review(q)
	some r in results
	r.details.field == "limits.cpu"
	contains(r.msg, "is not a valid quantity")
}

_oracle_review(q) := {
	"review": {"object": {
		"apiVersion": "v1", "kind": "Pod",
		"metadata": {"name": "oracle", "namespace": "logistics"},
		"spec": {"containers": [{
			"name": "c", "image": "registry.example.com/x:1",
			"resources": {"requests": {"cpu": "200m", "memory": "256Mi"}, "limits": {"cpu": q, "memory": "1Gi"}},
		}]},
	}},
	"parameters": {},
}

test_oracle_exponent_beyond_int64_is_invalid if {
	_oracle_invalid("1e9223372036854775808")
	_oracle_invalid("1E+9223372036854775808")
	_oracle_invalid("1e-9223372036854775809")
	_oracle_invalid("1E99999999999999999999")
	_oracle_invalid("0.6E-99999999999999999999")
	_oracle_invalid("+0e+9223372036854775808")
	_oracle_invalid("001E99999999999999999999")
}

test_oracle_exponent_within_int64_is_valid if {
	not _oracle_invalid("1e9223372036854775807")
	not _oracle_invalid("1e-9223372036854775808")
	not _oracle_invalid("1e0009223372036854775807")
	not _oracle_invalid("1e2147483648")
}
