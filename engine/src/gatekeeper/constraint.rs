//! Constraints (`constraints.gatekeeper.sh/v1beta1`, any kind a template defines).

use std::fmt;

use serde_json::Value;

use super::fields::{FieldError, Fields};
use super::match_spec::Match;
use super::{CONSTRAINTS_GROUP, split_api_version};

/// What a constraint's results do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EnforcementAction {
    /// Reject the request.
    Deny,
    /// Admit it with a warning.
    Warn,
    /// Record only.
    Dryrun,
    /// An action Gatekeeper does not know. gator still reports the results; the webhook skips
    /// them. Policy sets built for enforcement reject constraints that use one.
    Unrecognized,
}

impl EnforcementAction {
    /// Parses `deny`, `warn` or `dryrun`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "deny" => Some(Self::Deny),
            "warn" => Some(Self::Warn),
            "dryrun" => Some(Self::Dryrun),
            _ => None,
        }
    }

    /// The lower-case name Gatekeeper uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deny => "deny",
            Self::Warn => "warn",
            Self::Dryrun => "dryrun",
            Self::Unrecognized => "unrecognized",
        }
    }
}

impl fmt::Display for EnforcementAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of `spec.scopedEnforcementActions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopedAction {
    /// The action.
    pub action: EnforcementAction,
    /// Enforcement point names it applies to (`*` = all).
    pub enforcement_points: Vec<String>,
}

/// A constraint: an instance of a template's kind.
#[derive(Debug, Clone)]
pub struct Constraint {
    /// The template kind.
    pub kind: String,
    /// `metadata.name`.
    pub name: String,
    /// `spec.enforcementAction` as written (`deny` when absent); `scoped` keeps `scoped`.
    pub enforcement_action: String,
    /// `spec.scopedEnforcementActions`, used only when the action is `scoped`.
    pub scoped_actions: Vec<ScopedAction>,
    /// `spec.match`.
    pub matcher: Match,
    /// `spec.parameters` as written (before schema defaulting), if any.
    pub parameters: Option<Value>,
}

impl Constraint {
    /// True when `value` is in the constraints group.
    pub fn is_constraint(value: &Value) -> bool {
        let api_version = value
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        split_api_version(api_version).0 == CONSTRAINTS_GROUP
    }

    /// Reads a constraint and validates its match block and enforcement action.
    pub fn from_value(value: &Value) -> Result<Self, FieldError> {
        let root = Fields::new(Some(value), "")?;
        let kind = root.req_str("kind")?.to_string();
        let name = root.child("metadata")?.req_str("name")?.to_string();
        let spec = root.child("spec")?;
        let enforcement_action = spec
            .opt_str("enforcementAction")?
            .filter(|s| !s.is_empty())
            .unwrap_or("deny")
            .to_string();
        let mut scoped_actions = Vec::new();
        for (i, entry) in spec.array("scopedEnforcementActions")?.iter().enumerate() {
            let path = format!("spec.scopedEnforcementActions[{i}]");
            let entry = Fields::new(Some(entry), path.clone())?;
            let action_name = entry.req_str("action")?;
            let action =
                EnforcementAction::parse(action_name).unwrap_or(EnforcementAction::Unrecognized);
            let mut enforcement_points = Vec::new();
            for (j, point) in entry.array("enforcementPoints")?.iter().enumerate() {
                let point = Fields::new(Some(point), format!("{path}.enforcementPoints[{j}]"))?;
                enforcement_points.push(point.req_str("name")?.to_string());
            }
            scoped_actions.push(ScopedAction {
                action,
                enforcement_points,
            });
        }
        if enforcement_action == "scoped" && scoped_actions.is_empty() {
            return Err(FieldError::new(
                "spec.scopedEnforcementActions",
                "enforcementAction is scoped but no scopedEnforcementActions are set",
            ));
        }
        let matcher = Match::from_value(spec.get("match"), "spec.match")?;
        Ok(Constraint {
            kind,
            name,
            enforcement_action,
            scoped_actions,
            matcher,
            parameters: spec.get("parameters").cloned(),
        })
    }

    /// The first enforcement action Gatekeeper's admission webhook would refuse, as a field
    /// error (`spec.enforcementAction` or `spec.scopedEnforcementActions[i].action`).
    pub fn unrecognized_action(&self) -> Option<FieldError> {
        if self.enforcement_action != "scoped"
            && EnforcementAction::parse(&self.enforcement_action).is_none()
        {
            return Some(FieldError::new(
                "spec.enforcementAction",
                format!(
                    "invalid enforcementAction {:?}: expected deny, dryrun, warn or scoped",
                    self.enforcement_action
                ),
            ));
        }
        self.scoped_actions
            .iter()
            .position(|s| s.action == EnforcementAction::Unrecognized)
            .map(|i| {
                FieldError::new(
                    format!("spec.scopedEnforcementActions[{i}].action"),
                    "invalid action: expected deny, dryrun or warn",
                )
            })
    }

    /// The actions this constraint takes at an enforcement point (empty: not enforced there).
    /// Non-scoped actions apply everywhere, as in Gatekeeper.
    pub fn actions_at(&self, enforcement_point: &str) -> Vec<EnforcementAction> {
        if self.enforcement_action != "scoped" {
            return vec![
                EnforcementAction::parse(&self.enforcement_action)
                    .unwrap_or(EnforcementAction::Unrecognized),
            ];
        }
        let mut out: Vec<EnforcementAction> = self
            .scoped_actions
            .iter()
            .filter(|s| {
                s.enforcement_points
                    .iter()
                    .any(|p| p == "*" || p == enforcement_point)
            })
            .map(|s| s.action)
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scoped_actions_apply_only_at_their_enforcement_points() {
        let c = Constraint::from_value(&json!({
            "apiVersion": "constraints.gatekeeper.sh/v1beta1", "kind": "K", "metadata": {"name": "c"},
            "spec": {"enforcementAction": "scoped", "scopedEnforcementActions": [
                {"action": "deny", "enforcementPoints": [{"name": "validation.gatekeeper.sh"}]},
                {"action": "warn", "enforcementPoints": [{"name": "*"}]}]}
        }))
        .unwrap();
        assert_eq!(
            c.actions_at("validation.gatekeeper.sh"),
            vec![EnforcementAction::Deny, EnforcementAction::Warn]
        );
        assert_eq!(
            c.actions_at("audit.gatekeeper.sh"),
            vec![EnforcementAction::Warn]
        );
    }

    #[test]
    fn unknown_enforcement_action_is_read_but_reported() {
        let c = Constraint::from_value(&json!({
            "kind": "K", "metadata": {"name": "c"}, "spec": {"enforcementAction": "block"}
        }))
        .unwrap();
        assert_eq!(
            c.unrecognized_action().unwrap().field,
            "spec.enforcementAction"
        );
        assert_eq!(c.actions_at("x"), vec![EnforcementAction::Unrecognized]);
    }
}
