//! ExpansionTemplate (`expansion.gatekeeper.sh/v1beta1`, also `v1alpha1`).

use serde_json::Value;

use super::fields::{FieldError, Fields};
use super::{EXPANSION_GROUP, Gvk, split_api_version};

/// One `applyTo` entry: every list must contain the parent's value (no wildcards, as in
/// Gatekeeper's `ApplyTo.Matches`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyTo {
    /// Groups.
    pub groups: Vec<String>,
    /// Versions.
    pub versions: Vec<String>,
    /// Kinds.
    pub kinds: Vec<String>,
}

impl ApplyTo {
    /// True when the entry names this GVK.
    pub fn matches(&self, gvk: &Gvk) -> bool {
        self.groups.contains(&gvk.group)
            && self.versions.contains(&gvk.version)
            && self.kinds.contains(&gvk.kind)
    }
}

/// An ExpansionTemplate: how to derive a resource (usually a Pod) from a generator.
#[derive(Debug, Clone)]
pub struct ExpansionTemplate {
    /// `metadata.name`, used in the `[Implied by <name>]` prefix.
    pub name: String,
    /// `spec.applyTo`.
    pub apply_to: Vec<ApplyTo>,
    /// `spec.templateSource`, a dotted path such as `spec.template`.
    pub template_source: String,
    /// `spec.generatedGVK`.
    pub generated: Gvk,
    /// `spec.enforcementAction`, overriding the actions of results on generated objects.
    pub enforcement_action: Option<String>,
}

impl ExpansionTemplate {
    /// True when `value` is an ExpansionTemplate.
    pub fn is_expansion(value: &Value) -> bool {
        let api_version = value
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        split_api_version(api_version).0 == EXPANSION_GROUP
            && value.get("kind").and_then(Value::as_str) == Some("ExpansionTemplate")
    }

    /// Reads and validates an ExpansionTemplate as Gatekeeper's `ValidateTemplate` does.
    pub fn from_value(value: &Value) -> Result<Self, FieldError> {
        let root = Fields::new(Some(value), "")?;
        let name = root.child("metadata")?.req_str("name")?.to_string();
        if name.len() >= 64 {
            return Err(FieldError::new(
                "metadata.name",
                "ExpansionTemplate name must be less than 64 characters",
            ));
        }
        let spec = root.child("spec")?;
        let template_source = spec.req_str("templateSource")?.to_string();
        let gvk = spec.child("generatedGVK")?;
        let generated = Gvk {
            group: gvk.opt_str("group")?.unwrap_or("").to_string(),
            version: gvk.opt_str("version")?.unwrap_or("").to_string(),
            kind: gvk.opt_str("kind")?.unwrap_or("").to_string(),
        };
        if generated == Gvk::default() {
            return Err(FieldError::new(
                "spec.generatedGVK",
                format!("ExpansionTemplate {name} has empty generatedGVK field"),
            ));
        }
        let mut apply_to = Vec::new();
        for (i, entry) in spec.array("applyTo")?.iter().enumerate() {
            let entry = Fields::new(Some(entry), format!("spec.applyTo[{i}]"))?;
            apply_to.push(ApplyTo {
                groups: entry.strings("groups")?,
                versions: entry.strings("versions")?,
                kinds: entry.strings("kinds")?,
            });
        }
        if apply_to.is_empty() {
            return Err(FieldError::new(
                "spec.applyTo",
                format!("ExpansionTemplate {name} must specify ApplyTo"),
            ));
        }
        if apply_to.iter().any(|a| a.matches(&generated)) {
            return Err(FieldError::new(
                "spec.applyTo",
                format!("ExpansionTemplate {name} generates a kind it also applies to"),
            ));
        }
        Ok(ExpansionTemplate {
            name,
            apply_to,
            template_source,
            generated,
            enforcement_action: spec
                .opt_str("enforcementAction")?
                .filter(|s| !s.is_empty())
                .map(str::to_string),
        })
    }
}
