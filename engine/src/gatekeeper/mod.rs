//! Typed views of the Gatekeeper objects tollgate reads: ConstraintTemplate, Constraint,
//! ExpansionTemplate, the `match` block and gator's Suite.
//!
//! Each type is read from a `serde_json::Value` by hand rather than by serde derive, so that every
//! error names the exact field (`spec.match.kinds[0].apiGroups: expected array, got string`).
//! Nothing here compiles Rego or evaluates anything.

mod constraint;
mod expansion;
mod fields;
mod match_spec;
mod suite;
mod template;
mod unknown_fields;

pub use constraint::{Constraint, EnforcementAction, ScopedAction};
pub use expansion::{ApplyTo, ExpansionTemplate};
pub use fields::{FieldError, type_name as fields_type_name};
pub use match_spec::{KindSelector, LabelSelector, Match, Requirement};
pub use suite::{Assertion, Case, Expectation, Suite, Test};
pub use template::{
    CEL_ENGINE, CelSource, CelValidation, ConstraintTemplate, RegoCode, TemplateCode,
};
pub use unknown_fields::{ParametersShape, unknown_fields};

/// Group of ConstraintTemplates.
pub const TEMPLATES_GROUP: &str = "templates.gatekeeper.sh";
/// Group of constraints.
pub const CONSTRAINTS_GROUP: &str = "constraints.gatekeeper.sh";
/// Group of ExpansionTemplates.
pub const EXPANSION_GROUP: &str = "expansion.gatekeeper.sh";
/// Group of gator Suites.
pub const SUITE_GROUP: &str = "test.gatekeeper.sh";
/// The only target tollgate (and Gatekeeper) evaluates.
pub const ADMISSION_TARGET: &str = "admission.k8s.gatekeeper.sh";

/// Splits an `apiVersion` into group and version (`v1` → (``, `v1`)).
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.rsplit_once('/') {
        Some((group, version)) => (group, version),
        None => ("", api_version),
    }
}

/// The group, version and kind of a Kubernetes object, read from `apiVersion` and `kind`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Gvk {
    /// API group, empty for the core group.
    pub group: String,
    /// API version.
    pub version: String,
    /// Kind.
    pub kind: String,
}

impl Gvk {
    /// Reads the GVK of an object; missing fields are empty.
    pub fn of(object: &serde_json::Value) -> Gvk {
        let api_version = object
            .get("apiVersion")
            .and_then(|v| v.as_str())
            .unwrap_or("");
        let (group, version) = split_api_version(api_version);
        Gvk {
            group: group.to_string(),
            version: version.to_string(),
            kind: object
                .get("kind")
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_string(),
        }
    }

    /// `group/version`, or just `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

/// `metadata.name` of an object, or "".
pub fn object_name(object: &serde_json::Value) -> &str {
    metadata_str(object, "name")
}

/// `metadata.namespace` of an object, or "".
pub fn object_namespace(object: &serde_json::Value) -> &str {
    metadata_str(object, "namespace")
}

/// `metadata.<field>` of an object as a string, or "". Plain lookups rather than
/// `Value::pointer`, which allocates for every path segment: matching calls this per constraint
/// on every decision.
pub fn metadata_str<'a>(object: &'a serde_json::Value, field: &str) -> &'a str {
    object
        .get("metadata")
        .and_then(|m| m.get(field))
        .and_then(serde_json::Value::as_str)
        .unwrap_or("")
}
