//! ConstraintTemplate (`templates.gatekeeper.sh/v1`, `v1beta1`, `v1alpha1`).

use serde_json::Value;

use super::fields::{FieldError, Fields};
use super::{ADMISSION_TARGET, TEMPLATES_GROUP, split_api_version};

/// The Rego a template runs, chosen by Gatekeeper's precedence rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegoCode {
    /// The template module.
    pub rego: String,
    /// Library modules (`package lib.…`).
    pub libs: Vec<String>,
    /// True when the source says `version: "v1"`; everything else is Rego v0.
    pub v1: bool,
    /// Where the Rego was found, for error messages (`spec.targets[0].rego` or
    /// `spec.targets[0].code[1].source.rego`).
    pub field: String,
}

/// A ConstraintTemplate, reduced to what tollgate uses.
#[derive(Debug, Clone)]
pub struct ConstraintTemplate {
    /// `metadata.name`.
    pub name: String,
    /// `spec.crd.spec.names.kind`: the kind of its constraints.
    pub kind: String,
    /// `spec.crd.spec.validation.openAPIV3Schema`, the schema of constraint parameters.
    pub parameters_schema: Option<Value>,
    /// `spec.crd.spec.validation.legacySchema`: parameters the schema does not describe are
    /// kept. Defaults to false for `v1` templates and to true for `v1beta1` and `v1alpha1`
    /// (the frameworks' CRD defaults).
    pub legacy_schema: bool,
    /// The Rego to run.
    pub code: RegoCode,
}

impl ConstraintTemplate {
    /// True when `value` looks like a ConstraintTemplate (any served version).
    pub fn is_template(value: &Value) -> bool {
        let api_version = value
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        split_api_version(api_version).0 == TEMPLATES_GROUP
            && value.get("kind").and_then(Value::as_str) == Some("ConstraintTemplate")
    }

    /// Reads a ConstraintTemplate, applying Gatekeeper's validation and engine precedence:
    /// `targets[].rego` wins over `code[]`; a Rego entry in `code[]` is used even when a CEL entry
    /// sits beside it; a CEL-only template is rejected because tollgate has no CEL engine.
    pub fn from_value(value: &Value) -> Result<Self, FieldError> {
        let api_version = value
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        let (group, version) = split_api_version(api_version);
        if group != TEMPLATES_GROUP || !matches!(version, "v1" | "v1beta1" | "v1alpha1") {
            return Err(FieldError::new(
                "apiVersion",
                format!("expected {TEMPLATES_GROUP}/v1, v1beta1 or v1alpha1, got {api_version:?}"),
            ));
        }
        let root = Fields::new(Some(value), "")?;
        let name = root.child("metadata")?.req_str("name")?.to_string();
        let spec = root.child("spec")?;
        let crd_spec = spec.child("crd")?.child("spec")?;
        let kind = crd_spec.child("names")?.req_str("kind")?.to_string();
        if name != kind.to_lowercase() {
            return Err(FieldError::new(
                "metadata.name",
                format!(
                    "the ConstraintTemplate's name {name:?} is not equal to the lowercase of CRD's Kind: {:?}",
                    kind.to_lowercase()
                ),
            ));
        }
        let validation = crd_spec.child("validation")?;
        let parameters_schema = validation.get("openAPIV3Schema").cloned();
        let legacy_schema = match validation.get("legacySchema") {
            None | Some(Value::Null) => version != "v1",
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(FieldError::new(
                    "spec.crd.spec.validation.legacySchema",
                    format!("expected boolean, got {}", super::fields_type_name(other)),
                ));
            }
        };
        let targets = spec.array("targets")?;
        if targets.len() != 1 {
            return Err(FieldError::new(
                "spec.targets",
                format!("expected exactly 1 target, got {}", targets.len()),
            ));
        }
        let target = Fields::new(targets.first(), "spec.targets[0]")?;
        let target_name = target.req_str("target")?;
        if target_name != ADMISSION_TARGET {
            return Err(FieldError::new(
                "spec.targets[0].target",
                format!("unknown target {target_name:?}, expected {ADMISSION_TARGET:?}"),
            ));
        }
        let code = choose_code(&target)?;
        Ok(ConstraintTemplate {
            name,
            kind,
            parameters_schema,
            legacy_schema,
            code,
        })
    }
}

fn choose_code(target: &Fields<'_>) -> Result<RegoCode, FieldError> {
    if let Some(rego) = target.opt_str("rego")?.filter(|r| !r.trim().is_empty()) {
        return Ok(RegoCode {
            rego: rego.to_string(),
            libs: target.strings("libs")?,
            v1: false,
            field: target.path_of("rego"),
        });
    }
    let mut engines = Vec::new();
    for (i, entry) in target.array("code")?.iter().enumerate() {
        let entry = Fields::new(Some(entry), format!("{}[{i}]", target.path_of("code")))?;
        let engine = entry.req_str("engine")?;
        if engine != "Rego" {
            engines.push(engine.to_string());
            continue;
        }
        let source = entry.child("source")?;
        let rego = source.req_str("rego")?;
        return Ok(RegoCode {
            rego: rego.to_string(),
            libs: source.strings("libs")?,
            v1: source.opt_str("version")? == Some("v1"),
            field: source.path_of("rego"),
        });
    }
    if engines.is_empty() {
        Err(FieldError::new(
            target.path_of("rego"),
            "the template has no Rego: set targets[].rego or a code[] entry with engine: Rego",
        ))
    } else {
        Err(FieldError::new(
            target.path_of("code"),
            format!(
                "only {} code is present; tollgate evaluates Rego and has no CEL engine: add a code[] entry with engine: Rego",
                engines.join(", ")
            ),
        ))
    }
}

impl ConstraintTemplate {
    /// How the constraint CRD this template generates describes `spec.parameters`.
    pub fn parameters_shape(&self) -> super::ParametersShape<'_> {
        match (&self.parameters_schema, self.legacy_schema) {
            (_, true) => super::ParametersShape::Anything,
            (Some(schema), false) => super::ParametersShape::Schema(schema),
            (None, false) => super::ParametersShape::Absent,
        }
    }
}
