//! The constraint CRD of a ConstraintTemplate, as Gatekeeper's generator makes it
//! (open-policy-agent/frameworks `constraint/pkg/client/crds`: `CreateSchema` + `CreateCRD`,
//! with Gatekeeper's Kubernetes validation target for `spec.match`). Users' tooling reads these
//! CRDs (`kubectl get constraints`, printer columns, schema validation of constraints), so they
//! must be the same objects Gatekeeper would have created.

use std::sync::OnceLock;

use serde_json::{Map, Value, json};

/// The group of every constraint kind.
pub const GROUP: &str = "constraints.gatekeeper.sh";

/// The CRD's name for a constraint kind: the lower-cased kind (Gatekeeper does not pluralise)
/// and the group.
pub fn crd_name(kind: &str) -> String {
    format!("{}.{GROUP}", kind.to_lowercase())
}

/// Gatekeeper's match schema, `embeddedMatch` of the CRD in `pkg/target/matchcrd_constant.go`.
fn match_schema() -> Result<&'static Value, String> {
    static SCHEMA: OnceLock<Result<Value, String>> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let docs = tollgate_engine::document::parse_stream(
                "match_crd.yaml",
                include_str!("match_crd.yaml"),
            )
            .map_err(|e| e.to_string())?;
            docs.into_iter()
                .next()
                .and_then(|d| {
                    d.value
                        .pointer("/spec/versions/0/schema/openAPIV3Schema/properties/embeddedMatch")
                        .cloned()
                })
                .ok_or_else(|| "match_crd.yaml has no embeddedMatch schema".to_string())
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Why a template gets no CRD.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CrdError {
    /// `spec.crd.spec.names.kind` is missing.
    #[error("ConstraintTemplate {0:?} does not specify CRD Kind")]
    NoKind(String),
    /// The template's name is not the lower-cased kind (frameworks' `validateTemplateMetadata`).
    #[error(
        "the ConstraintTemplate's name {name:?} is not equal to the lowercase of CRD's Kind: {lower:?}"
    )]
    NameMismatch {
        /// The template's name.
        name: String,
        /// The lower-cased kind.
        lower: String,
    },
    /// The parameters schema cannot be made structural (frameworks' `AddPreserveUnknownFields`).
    #[error("{0}")]
    Schema(String),
}

/// The apiextensions.k8s.io/v1 CRD for `template` (any of templates.gatekeeper.sh v1, v1beta1,
/// v1alpha1), without an owner: the caller adds the ownerReference to the live template.
pub fn constraint_crd(template: &Value) -> Result<Value, CrdError> {
    let name = template
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let names = template.pointer("/spec/crd/spec/names");
    let kind = names
        .and_then(|n| n.get("kind"))
        .and_then(Value::as_str)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| CrdError::NoKind(name.to_string()))?;
    let lower = kind.to_lowercase();
    if !name.eq_ignore_ascii_case(kind) {
        return Err(CrdError::NameMismatch {
            name: name.to_string(),
            lower,
        });
    }
    let schema = openapi_schema(template)?;
    let mut names_out = json!({
        "kind": kind,
        "listKind": format!("{kind}List"),
        "plural": lower,
        "singular": lower,
        "categories": ["constraint", "constraints"],
    });
    if let Some(short) = names
        .and_then(|n| n.get("shortNames"))
        .and_then(Value::as_array)
        .filter(|s| !s.is_empty())
    {
        names_out["shortNames"] = Value::Array(short.clone());
    }
    let version = |name: &str, storage: bool| {
        json!({
            "name": name,
            "served": true,
            "storage": storage,
            "schema": {"openAPIV3Schema": schema},
            "subresources": {"status": {}},
            "additionalPrinterColumns": [
                {
                    "name": "enforcement-action",
                    "type": "string",
                    "description": "Type of enforcement action",
                    "jsonPath": ".spec.enforcementAction",
                },
                {
                    "name": "total-violations",
                    "type": "integer",
                    "description": "Total number of violations",
                    "jsonPath": ".status.totalViolations",
                },
            ],
        })
    };
    let mut labels = template
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    labels.insert("gatekeeper.sh/constraint".into(), json!("yes"));
    Ok(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": crd_name(kind), "labels": labels},
        "spec": {
            "group": GROUP,
            "names": names_out,
            "scope": "Cluster",
            "versions": [version("v1beta1", true), version("v1alpha1", false)],
            "conversion": {"strategy": "None"},
            "preserveUnknownFields": false,
        },
    }))
}

/// `CreateSchema`: metadata.name of at most 63 characters (it becomes a label value in audit
/// results), the match, the enforcement action defaulting to `deny`, the scoped actions, and the
/// template's parameters.
fn openapi_schema(template: &Value) -> Result<Value, CrdError> {
    let match_schema = match_schema().map_err(CrdError::Schema)?;
    let mut spec = Map::new();
    spec.insert("match".into(), match_schema.clone());
    spec.insert(
        "enforcementAction".into(),
        json!({"type": "string", "default": "deny"}),
    );
    spec.insert(
        "scopedEnforcementActions".into(),
        json!({
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "action": {"type": "string"},
                    "enforcementPoints": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {"name": {"type": "string"}},
                        },
                    },
                },
            },
        }),
    );
    if let Some(parameters) = parameters_schema(template)? {
        spec.insert("parameters".into(), parameters);
    }
    Ok(json!({
        "type": "object",
        "properties": {
            "metadata": {
                "type": "object",
                "properties": {"name": {"type": "string", "maxLength": 63}},
            },
            "spec": {"type": "object", "properties": spec},
            "status": {"x-kubernetes-preserve-unknown-fields": true},
        },
    }))
}

/// The template's `openAPIV3Schema`; with `legacySchema` (the default of v1beta1 and v1alpha1,
/// as the API server fills it in) every object in it keeps unknown fields, and a missing schema
/// becomes "anything" (frameworks' template conversion).
fn parameters_schema(template: &Value) -> Result<Option<Value>, CrdError> {
    let validation = template.pointer("/spec/crd/spec/validation");
    let legacy = validation
        .and_then(|v| v.get("legacySchema"))
        .and_then(Value::as_bool)
        .unwrap_or_else(|| !is_v1(template));
    let schema = validation
        .and_then(|v| v.get("openAPIV3Schema"))
        .filter(|s| !s.is_null());
    match (schema, legacy) {
        (None, false) => Ok(None),
        (None, true) => Ok(Some(json!({"x-kubernetes-preserve-unknown-fields": true}))),
        (Some(schema), false) => Ok(Some(schema.clone())),
        (Some(schema), true) => {
            let mut schema = schema.clone();
            add_preserve_unknown_fields(&mut schema)?;
            Ok(Some(schema))
        }
    }
}

fn is_v1(template: &Value) -> bool {
    template.get("apiVersion").and_then(Value::as_str) == Some("templates.gatekeeper.sh/v1")
}

/// frameworks' `schema.AddPreserveUnknownFields`.
fn add_preserve_unknown_fields(schema: &mut Value) -> Result<(), CrdError> {
    let Some(object) = schema.as_object_mut() else {
        return Ok(());
    };
    match object.get("type").and_then(Value::as_str).unwrap_or("") {
        "" | "object" => {
            object.insert("x-kubernetes-preserve-unknown-fields".into(), json!(true));
        }
        "array" => {
            let has_items = object.get("items").is_some_and(|i| !i.is_null());
            if !has_items {
                object.insert(
                    "items".into(),
                    json!({"x-kubernetes-preserve-unknown-fields": true}),
                );
            }
        }
        _ => {}
    }
    if let Some(properties) = object.get_mut("properties").and_then(Value::as_object_mut) {
        for property in properties.values_mut() {
            add_preserve_unknown_fields(property)?;
        }
    }
    match object.get_mut("items") {
        Some(Value::Array(_)) => {
            return Err(CrdError::Schema(
                "non-nil JSONSchemas encountered, multiple schemas are not supported".into(),
            ));
        }
        Some(items @ Value::Object(_)) => add_preserve_unknown_fields(items)?,
        _ => {}
    }
    if let Some(additional @ Value::Object(_)) = object.get_mut("additionalProperties") {
        add_preserve_unknown_fields(additional)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(api: &str, validation: Value) -> Value {
        json!({
            "apiVersion": format!("templates.gatekeeper.sh/{api}"),
            "kind": "ConstraintTemplate",
            "metadata": {"name": "k8srequiredlabels", "labels": {"team": "a"}},
            "spec": {
                "crd": {"spec": {"names": {"kind": "K8sRequiredLabels", "shortNames": ["rl"]},
                                  "validation": validation}},
                "targets": [{"target": "admission.k8s.gatekeeper.sh", "rego": "package x"}],
            },
        })
    }

    #[test]
    fn names_are_the_lower_cased_kind_not_an_english_plural() {
        let crd = constraint_crd(&template("v1", json!({}))).unwrap();
        assert_eq!(
            crd["metadata"]["name"],
            "k8srequiredlabels.constraints.gatekeeper.sh"
        );
        let names = &crd["spec"]["names"];
        assert_eq!(names["plural"], "k8srequiredlabels");
        assert_eq!(names["singular"], "k8srequiredlabels");
        assert_eq!(names["listKind"], "K8sRequiredLabelsList");
        assert_eq!(names["shortNames"], json!(["rl"]));
        assert_eq!(crd["metadata"]["labels"]["gatekeeper.sh/constraint"], "yes");
        assert_eq!(crd["metadata"]["labels"]["team"], "a");
        let versions = crd["spec"]["versions"].as_array().unwrap();
        assert_eq!(versions[0]["name"], "v1beta1");
        assert_eq!(versions[0]["storage"], true);
        assert_eq!(versions[1]["name"], "v1alpha1");
        assert_eq!(versions[1]["storage"], false);
        let spec = &versions[0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"];
        assert_eq!(spec["enforcementAction"]["default"], "deny");
        assert!(spec["match"]["properties"]["namespaceSelector"].is_object());
        assert!(spec.get("parameters").is_none(), "v1 without a schema");
    }

    #[test]
    fn legacy_schema_keeps_unknown_parameters_as_frameworks_does() {
        let schema = json!({"openAPIV3Schema": {"type": "object", "properties": {
            "labels": {"type": "array"},
            "nested": {"type": "object", "properties": {"n": {"type": "integer"}}},
        }}});
        let crd = constraint_crd(&template("v1beta1", schema.clone())).unwrap();
        let params = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
            ["properties"]["parameters"];
        assert_eq!(params["x-kubernetes-preserve-unknown-fields"], true);
        assert_eq!(
            params["properties"]["labels"]["items"],
            json!({"x-kubernetes-preserve-unknown-fields": true})
        );
        assert_eq!(
            params["properties"]["nested"]["x-kubernetes-preserve-unknown-fields"],
            true
        );
        assert!(
            params["properties"]["nested"]["properties"]["n"]
                .get("x-kubernetes-preserve-unknown-fields")
                .is_none()
        );
        // v1 defaults legacySchema to false: the schema is used as written.
        let crd = constraint_crd(&template("v1", schema)).unwrap();
        let params = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
            ["properties"]["parameters"];
        assert!(params.get("x-kubernetes-preserve-unknown-fields").is_none());
        // v1beta1 without a schema: any parameters.
        let crd = constraint_crd(&template("v1beta1", json!({}))).unwrap();
        let params = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
            ["properties"]["parameters"];
        assert_eq!(
            params,
            &json!({"x-kubernetes-preserve-unknown-fields": true})
        );
    }

    #[test]
    fn a_name_that_is_not_the_kind_gets_gatekeepers_error() {
        let mut t = template("v1", json!({}));
        t["metadata"]["name"] = json!("required-labels");
        assert_eq!(
            constraint_crd(&t).unwrap_err().to_string(),
            "the ConstraintTemplate's name \"required-labels\" is not equal to the lowercase of CRD's Kind: \"k8srequiredlabels\""
        );
        t["spec"]["crd"]["spec"]["names"] = json!({});
        assert!(matches!(constraint_crd(&t), Err(CrdError::NoKind(_))));
    }

    /// The copy of Gatekeeper's match schema is the pinned module's, when the module is here
    /// (`go mod download`, as tests/e2e/install-tools.sh does).
    #[test]
    fn match_schema_is_gatekeepers() {
        let Some(constant) = gatekeeper_file("pkg/target/matchcrd_constant.go") else {
            assert!(
                std::env::var_os("TOLLGATE_REQUIRE_ORACLES").is_none(),
                "the Gatekeeper v3.23.0 module is required (TOLLGATE_REQUIRE_ORACLES)"
            );
            return;
        };
        let start = constant.find("const matchYAML = `\n").unwrap() + 20;
        // The raw string ends with a backtick alone on its line; backticks inside it are
        // spliced in as `+"`"+`, which the copy keeps verbatim.
        let end = start + constant[start..].find("\n`").unwrap() + 1;
        let ours = include_str!("match_crd.yaml");
        let ours = &ours[ours.find("---").unwrap()..];
        assert_eq!(ours, &constant[start..end]);
    }

    fn gatekeeper_file(path: &str) -> Option<String> {
        let modcache = std::process::Command::new("go")
            .args(["env", "GOMODCACHE"])
            .output()
            .ok()?;
        let root = String::from_utf8(modcache.stdout).ok()?;
        std::fs::read_to_string(
            std::path::Path::new(root.trim())
                .join("github.com/open-policy-agent/gatekeeper/v3@v3.23.0")
                .join(path),
        )
        .ok()
    }
}
