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

/// The `K8sNativeValidation` (CEL) source of a template, as Gatekeeper's k8scel driver reads it
/// (`pkg/drivers/k8scel/schema`): unknown keys are ignored, as its unstructured conversion does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CelSource {
    /// `validations[]`, in order.
    pub validations: Vec<CelValidation>,
    /// `matchCondition[]` (Gatekeeper's JSON name is singular; a `matchConditions` key is
    /// ignored by Gatekeeper and so by tollgate): `(name, expression)`.
    pub match_conditions: Vec<(String, String)>,
    /// `variables[]`: `(name, expression)`, in order.
    pub variables: Vec<(String, String)>,
    /// `failurePolicy: Ignore` (errors admit); absent or `Fail` means errors deny.
    pub ignore_failures: bool,
    /// Where the source is, e.g. `spec.targets[0].code[0].source`.
    pub field: String,
}

/// One `validations[]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CelValidation {
    /// `expression` (empty when absent, which fails to compile as in Gatekeeper).
    pub expression: String,
    /// `message`.
    pub message: String,
    /// `messageExpression`.
    pub message_expression: String,
}

/// The code a template runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateCode {
    /// Rego (`targets[].rego` or a `code[]` entry with `engine: Rego`).
    Rego(RegoCode),
    /// CEL, for a template whose only engine tollgate knows is `K8sNativeValidation`.
    Cel(CelSource),
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
    /// The code to run.
    pub code: TemplateCode,
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

    /// Reads a ConstraintTemplate, applying Gatekeeper's validation and tollgate's engine choice:
    /// `targets[].rego` wins over `code[]`; a Rego entry in `code[]` is used even when a CEL entry
    /// sits beside it (Gatekeeper, whose k8scel driver is registered first, would run the CEL
    /// one: see the README); a template whose only known engine is `K8sNativeValidation` runs
    /// its CEL.
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

fn choose_code(target: &Fields<'_>) -> Result<TemplateCode, FieldError> {
    if let Some(rego) = target.opt_str("rego")?.filter(|r| !r.trim().is_empty()) {
        return Ok(TemplateCode::Rego(RegoCode {
            rego: rego.to_string(),
            libs: target.strings("libs")?,
            v1: false,
            field: target.path_of("rego"),
        }));
    }
    let mut engines = Vec::new();
    let mut cel = None;
    for (i, entry) in target.array("code")?.iter().enumerate() {
        let entry = Fields::new(Some(entry), format!("{}[{i}]", target.path_of("code")))?;
        let engine = entry.req_str("engine")?;
        if engine == CEL_ENGINE {
            // The first K8sNativeValidation entry is the one Gatekeeper's driver reads.
            if cel.is_none() {
                cel = Some(cel_source(&entry)?);
            }
            continue;
        }
        if engine != "Rego" {
            engines.push(engine.to_string());
            continue;
        }
        let source = entry.child("source")?;
        let rego = source.req_str("rego")?;
        return Ok(TemplateCode::Rego(RegoCode {
            rego: rego.to_string(),
            libs: source.strings("libs")?,
            v1: source.opt_str("version")? == Some("v1"),
            field: source.path_of("rego"),
        }));
    }
    if let Some(cel) = cel {
        return Ok(TemplateCode::Cel(cel));
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
                "only {} code is present; tollgate evaluates Rego and K8sNativeValidation (CEL)",
                engines.join(", ")
            ),
        ))
    }
}

/// The engine name of Gatekeeper's CEL driver.
pub const CEL_ENGINE: &str = "K8sNativeValidation";

/// Gatekeeper's reserved prefix for variable and match condition names.
const RESERVED_PREFIX: &str = "gatekeeper_internal_";

/// Reads a `K8sNativeValidation` entry's `source` with the k8scel driver's validation
/// (`Source.Validate`): reserved variable names and match condition prefixes, the failure policy.
fn cel_source(entry: &Fields<'_>) -> Result<CelSource, FieldError> {
    let field = entry.path_of("source");
    let source = match entry.get("source") {
        Some(v @ Value::Object(_)) => Fields::new(Some(v), field.clone())?,
        _ => {
            return Err(FieldError::new(
                field,
                "could not recognize the type: expected object",
            ));
        }
    };
    let named = |key: &str, what: &str| -> Result<Vec<(String, String)>, FieldError> {
        let mut out = Vec::new();
        for (i, item) in source.array(key)?.iter().enumerate() {
            let item = Fields::new(Some(item), format!("{}[{i}]", source.path_of(key)))?;
            let name = item.opt_str("name")?.unwrap_or("").to_string();
            if name.starts_with(RESERVED_PREFIX) {
                return Err(FieldError::new(
                    item.path_of("name"),
                    format!(
                        "invalid {what}: {name} is not a valid {what}; cannot have {RESERVED_PREFIX:?} as a prefix"
                    ),
                ));
            }
            out.push((name, item.opt_str("expression")?.unwrap_or("").to_string()));
        }
        Ok(out)
    };
    let match_conditions = named("matchCondition", "match condition")?;
    let variables = named("variables", "variable")?;
    for (i, (name, _)) in variables.iter().enumerate() {
        if name == "params" || name == "anyObject" {
            return Err(FieldError::new(
                format!("{}[{i}].name", source.path_of("variables")),
                format!(
                    "invalid variable definition: {name} an invalid variable name, {name:?} is a reserved keyword"
                ),
            ));
        }
    }
    let ignore_failures = match source.opt_str("failurePolicy")? {
        None | Some("Fail") => false,
        Some("Ignore") => true,
        Some(other) => {
            return Err(FieldError::new(
                source.path_of("failurePolicy"),
                format!("invalid failure policy: unrecognized failure policy: {other}"),
            ));
        }
    };
    let mut validations = Vec::new();
    for (i, item) in source.array("validations")?.iter().enumerate() {
        let item = Fields::new(
            Some(item),
            format!("{}[{i}]", source.path_of("validations")),
        )?;
        let text = |key: &str| -> Result<String, FieldError> {
            Ok(item.opt_str(key)?.unwrap_or("").to_string())
        };
        validations.push(CelValidation {
            expression: text("expression")?,
            message: text("message")?,
            message_expression: text("messageExpression")?,
        });
    }
    Ok(CelSource {
        validations,
        match_conditions,
        variables,
        ignore_failures,
        field,
    })
}

impl ConstraintTemplate {
    /// The Rego the template runs, when it runs Rego.
    pub fn rego(&self) -> Option<&RegoCode> {
        match &self.code {
            TemplateCode::Rego(code) => Some(code),
            TemplateCode::Cel(_) => None,
        }
    }

    /// How the constraint CRD this template generates describes `spec.parameters`.
    pub fn parameters_shape(&self) -> super::ParametersShape<'_> {
        match (&self.parameters_schema, self.legacy_schema) {
            (_, true) => super::ParametersShape::Anything,
            (Some(schema), false) => super::ParametersShape::Schema(schema),
            (None, false) => super::ParametersShape::Absent,
        }
    }
}
