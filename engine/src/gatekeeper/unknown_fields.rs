//! Fields of a constraint that its CRD's schema does not describe: what the API server's
//! structural pruning would drop, and what gator rejects as `invalid Constraint: unknown fields:
//! [...]` (the frameworks' `crds.ValidateCR`). A typo such as `spec.match.namespace` would
//! otherwise be ignored and widen the constraint to every namespace.
//!
//! The constraint CRD's schema is the frameworks' `CreateSchema`: `metadata` and `status` are
//! free, `spec` holds `match` (Gatekeeper's match schema), `enforcementAction`,
//! `scopedEnforcementActions` and `parameters` (the template's `openAPIV3Schema`; with
//! `legacySchema` every parameter is kept; without a schema and without `legacySchema` the
//! CRD has no `parameters` at all).

use serde_json::{Value, json};

/// How a template describes `spec.parameters`.
#[derive(Debug, Clone, Copy)]
pub enum ParametersShape<'a> {
    /// `legacySchema`: any parameters are kept (`x-kubernetes-preserve-unknown-fields`
    /// everywhere).
    Anything,
    /// The template's `openAPIV3Schema`, structural.
    Schema(&'a Value),
    /// No schema and no `legacySchema`: the CRD has no `spec.parameters`.
    Absent,
}

/// Gatekeeper's match schema (`pkg/target/matchcrd_constant.go`), reduced to what pruning reads.
fn match_schema() -> Value {
    let selector = json!({
        "type": "object",
        "properties": {
            "matchExpressions": {"type": "array", "items": {"type": "object", "properties": {
                "key": {"type": "string"},
                "operator": {"type": "string"},
                "values": {"type": "array", "items": {"type": "string"}}
            }}},
            "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}}
        }
    });
    let strings = json!({"type": "array", "items": {"type": "string"}});
    json!({
        "type": "object",
        "properties": {
            "excludedNamespaces": strings,
            "kinds": {"type": "array", "items": {"type": "object", "properties": {
                "apiGroups": strings,
                "kinds": strings
            }}},
            "labelSelector": selector,
            "name": {"type": "string"},
            "namespaceSelector": selector,
            "namespaces": strings,
            "scope": {"type": "string"},
            "source": {"type": "string"}
        }
    })
}

/// The constraint CRD's schema for templates whose parameters take `shape`.
fn constraint_schema(shape: ParametersShape<'_>) -> Value {
    let mut spec = json!({
        "match": match_schema(),
        "enforcementAction": {"type": "string"},
        "scopedEnforcementActions": {"type": "array", "items": {"type": "object", "properties": {
            "action": {"type": "string"},
            "enforcementPoints": {"type": "array", "items": {"type": "object", "properties": {
                "name": {"type": "string"}
            }}}
        }}}
    });
    let parameters = match shape {
        ParametersShape::Anything => Some(json!({"x-kubernetes-preserve-unknown-fields": true})),
        ParametersShape::Schema(schema) => Some(schema.clone()),
        ParametersShape::Absent => None,
    };
    if let (Some(p), Some(props)) = (parameters, spec.as_object_mut()) {
        props.insert("parameters".into(), p);
    }
    json!({
        "type": "object",
        "properties": {
            // The root's apiVersion, kind and metadata are never pruned.
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"x-kubernetes-preserve-unknown-fields": true},
            "spec": {"type": "object", "properties": spec},
            "status": {"x-kubernetes-preserve-unknown-fields": true}
        }
    })
}

/// The paths of the fields of `constraint` that its CRD does not describe, sorted as gator
/// lists them (`spec.match.kinds[0].apiGroup`).
pub fn unknown_fields(constraint: &Value, shape: ParametersShape<'_>) -> Vec<String> {
    let mut out = Vec::new();
    walk(constraint, &constraint_schema(shape), "", &mut out);
    out.sort();
    out
}

fn preserves(schema: &Value) -> bool {
    schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true))
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn walk(value: &Value, schema: &Value, path: &str, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties");
            let embedded = schema.get("x-kubernetes-embedded-resource") == Some(&Value::Bool(true));
            for (key, child) in map {
                let child_path = join(path, key);
                if let Some(child_schema) = properties.and_then(|p| p.get(key)) {
                    walk(child, child_schema, &child_path, out);
                } else if let Some(additional) = additional {
                    match additional {
                        Value::Object(_) => walk(child, additional, &child_path, out),
                        Value::Bool(false) => out.push(child_path),
                        _ => {}
                    }
                } else if preserves(schema)
                    || (embedded && matches!(key.as_str(), "apiVersion" | "kind" | "metadata"))
                {
                    continue;
                } else {
                    out.push(child_path);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items").filter(|s| s.is_object()) {
                for (i, item) in items.iter().enumerate() {
                    walk(item, item_schema, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn typos_are_found_where_gator_finds_them() {
        let schema = json!({"type": "object", "properties": {"runtimeClassNames": {"type": "array", "items": {"type": "string"}}}});
        let constraint = json!({
            "apiVersion": "constraints.gatekeeper.sh/v1beta1", "kind": "K", "top": 1,
            "metadata": {"name": "m", "labels": {"a": "b"}, "foo": "bar"},
            "spec": {
                "enforcmentAction": "deny",
                "match": {
                    "kinds": [{"apiGroup": [""], "kinds": ["Pod"]}],
                    "namespace": ["logistics"],
                    "labelSelector": {"matchLabelz": {"a": "b"}, "matchLabels": {"x": "y"}},
                    "namespaceSelector": {"matchExpressions": [{"key": "a", "operator": "In", "values": ["b"], "extra": 1}]}
                },
                "parameters": {"runtimeClassNames": ["wasmedge"], "zzz": 1, "aaa": {"b": 1}}
            },
            "status": {"anything": 1}
        });
        // gator v3.23.0 on the same constraint.
        assert_eq!(
            unknown_fields(&constraint, ParametersShape::Schema(&schema)),
            [
                "spec.enforcmentAction",
                "spec.match.kinds[0].apiGroup",
                "spec.match.labelSelector.matchLabelz",
                "spec.match.namespace",
                "spec.match.namespaceSelector.matchExpressions[0].extra",
                "spec.parameters.aaa",
                "spec.parameters.zzz",
                "top",
            ]
        );
        let params = json!({"spec": {"parameters": {"x": {"deep": 1}}}});
        assert!(unknown_fields(&params, ParametersShape::Anything).is_empty());
        assert_eq!(
            unknown_fields(&params, ParametersShape::Absent),
            ["spec.parameters"]
        );
    }
}
