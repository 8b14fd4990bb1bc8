//! Expansion: deriving the resources a generator (Deployment, CronJob, ...) would create, as
//! Gatekeeper's `pkg/expansion` does, plus tollgate's built-in `expand-workloads` templates.

use serde_json::{Map, Value, json};

use crate::gatekeeper::{ApplyTo, ExpansionTemplate, Gvk, object_name, object_namespace};

/// Name of the built-in workload expansion, used in `[Implied by expand-workloads]`.
pub const BUILTIN_EXPANSION: &str = "expand-workloads";

/// A resource derived from a generator.
#[derive(Debug, Clone)]
pub struct Resultant {
    /// The generated object.
    pub object: Value,
    /// The ExpansionTemplate that produced it.
    pub template_name: String,
    /// The template's enforcement action override, if any.
    pub enforcement_action: Option<String>,
}

/// Expansion failed (Gatekeeper reports these as review errors).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpandError {
    /// The template's source path is missing from the object.
    #[error("could not find source field {source_path:?} in resource {name}")]
    MissingSource {
        /// `templateSource`.
        source_path: String,
        /// The generator's name.
        name: String,
    },
    /// Expansion kept producing expandable objects.
    #[error("maximum recursion depth of {0} reached")]
    TooDeep(usize),
}

const MAX_DEPTH: usize = 30;

/// The built-in ExpansionTemplates: every workload kind to the Pod its template creates, and
/// CronJob through its Job template.
pub fn builtin_templates() -> Vec<ExpansionTemplate> {
    let pod = Gvk {
        group: String::new(),
        version: "v1".into(),
        kind: "Pod".into(),
    };
    let apply = |groups: &[&str], versions: &[&str], kinds: &[&str]| ApplyTo {
        groups: groups.iter().map(|s| s.to_string()).collect(),
        versions: versions.iter().map(|s| s.to_string()).collect(),
        kinds: kinds.iter().map(|s| s.to_string()).collect(),
    };
    vec![
        ExpansionTemplate {
            name: BUILTIN_EXPANSION.into(),
            apply_to: vec![
                apply(
                    &["apps"],
                    &["v1"],
                    &["Deployment", "ReplicaSet", "StatefulSet", "DaemonSet"],
                ),
                apply(&["batch"], &["v1"], &["Job"]),
                apply(&[""], &["v1"], &["ReplicationController"]),
            ],
            template_source: "spec.template".into(),
            generated: pod,
            enforcement_action: None,
        },
        ExpansionTemplate {
            name: BUILTIN_EXPANSION.into(),
            apply_to: vec![apply(&["batch"], &["v1"], &["CronJob"])],
            template_source: "spec.jobTemplate.spec.template".into(),
            generated: Gvk {
                group: String::new(),
                version: "v1".into(),
                kind: "Pod".into(),
            },
            enforcement_action: None,
        },
    ]
}

/// Expands an object with every template that applies to it, recursively (children first, as
/// Gatekeeper orders them). `namespace` is the parent's Namespace name when known.
pub fn expand(
    templates: &[ExpansionTemplate],
    object: &Value,
    namespace: Option<&str>,
) -> Result<Vec<Resultant>, ExpandError> {
    let mut out = Vec::new();
    expand_recursive(templates, object, namespace, 0, &mut out)?;
    Ok(out)
}

fn expand_recursive(
    templates: &[ExpansionTemplate],
    object: &Value,
    namespace: Option<&str>,
    depth: usize,
    out: &mut Vec<Resultant>,
) -> Result<(), ExpandError> {
    if depth >= MAX_DEPTH {
        return Err(ExpandError::TooDeep(MAX_DEPTH));
    }
    let gvk = Gvk::of(object);
    if gvk.kind.is_empty() || gvk.version.is_empty() {
        return Ok(());
    }
    let mut level = Vec::new();
    for t in templates
        .iter()
        .filter(|t| t.apply_to.iter().any(|a| a.matches(&gvk)))
    {
        level.push(Resultant {
            object: expand_one(object, namespace, t)?,
            template_name: t.name.clone(),
            enforcement_action: t.enforcement_action.clone(),
        });
    }
    for r in &level {
        expand_recursive(templates, &r.object, namespace, depth + 1, out)?;
    }
    out.extend(level);
    Ok(())
}

fn expand_one(
    parent: &Value,
    namespace: Option<&str>,
    template: &ExpansionTemplate,
) -> Result<Value, ExpandError> {
    let mut cursor = parent;
    for part in template.template_source.split('.') {
        cursor = cursor.get(part).ok_or_else(|| ExpandError::MissingSource {
            source_path: template.template_source.clone(),
            name: object_name(parent).to_string(),
        })?;
    }
    let Value::Object(source) = cursor else {
        return Err(ExpandError::MissingSource {
            source_path: template.template_source.clone(),
            name: object_name(parent).to_string(),
        });
    };
    let mut generated: Map<String, Value> = source.clone();
    generated.insert("apiVersion".into(), json!(template.generated.api_version()));
    generated.insert("kind".into(), json!(template.generated.kind));
    let metadata = generated
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !metadata.is_object() {
        *metadata = Value::Object(Map::new());
    }
    if let Value::Object(meta) = metadata {
        let ns = namespace
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| object_namespace(parent));
        if !ns.is_empty() {
            meta.insert("namespace".into(), json!(ns));
        }
        // Gatekeeper's mockNameForResource: "<parent>-<kind>", lower-cased.
        let name = format!("{}-{}", object_name(parent), template.generated.kind).to_lowercase();
        meta.insert("name".into(), json!(name));
        let parent_gvk = Gvk::of(parent);
        if !parent_gvk.kind.is_empty() && !object_name(parent).is_empty() {
            let owner = json!({
                "apiVersion": parent_gvk.api_version(),
                "kind": parent_gvk.kind,
                "name": object_name(parent),
            });
            let refs = meta
                .entry("ownerReferences")
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(refs) = refs {
                let present = refs.iter().any(|r| {
                    r.get("apiVersion") == owner.get("apiVersion")
                        && r.get("kind") == owner.get("kind")
                        && r.get("name") == owner.get("name")
                });
                if !present {
                    refs.push(owner);
                }
            }
        }
    }
    Ok(Value::Object(generated))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_expands_to_a_named_pod_in_its_namespace() {
        let deployment = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "Tracker", "namespace": "logistics"},
            "spec": {"template": {"metadata": {"labels": {"app": "t"}}, "spec": {"containers": []}}}
        });
        let out = expand(&builtin_templates(), &deployment, None).unwrap();
        assert_eq!(out.len(), 1);
        let pod = &out[0].object;
        assert_eq!(pod["kind"], "Pod");
        assert_eq!(pod["apiVersion"], "v1");
        assert_eq!(pod["metadata"]["name"], "tracker-pod");
        assert_eq!(pod["metadata"]["namespace"], "logistics");
        assert_eq!(pod["metadata"]["labels"]["app"], "t");
        assert_eq!(pod["metadata"]["ownerReferences"][0]["kind"], "Deployment");
    }

    #[test]
    fn cronjob_expands_through_its_job_template() {
        let cron = json!({
            "apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c"},
            "spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": []}}}}}
        });
        let out = expand(&builtin_templates(), &cron, None).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].object["metadata"]["name"], "c-pod");
    }

    #[test]
    fn missing_source_is_an_error() {
        let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {}});
        assert!(matches!(
            expand(&builtin_templates(), &d, None),
            Err(ExpandError::MissingSource { .. })
        ));
    }
}
