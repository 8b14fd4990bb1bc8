//! Turns violations into an admission decision, in Gatekeeper's webhook format.

use crate::evaluate::Violation;
use crate::gatekeeper::EnforcementAction;

/// The outcome of a review.
#[derive(Debug, Clone)]
pub struct Decision {
    /// False when any result denies.
    pub allowed: bool,
    /// `[<constraint>] <msg>` for each denying result, in constraint order.
    pub denials: Vec<String>,
    /// `[<constraint>] <msg>` for each warning result.
    pub warnings: Vec<String>,
    /// `[<constraint>] <msg>` for each dry-run result (logged and counted, never enforced).
    pub dryruns: Vec<String>,
    /// Every result, for printers and metrics.
    pub violations: Vec<Violation>,
}

impl Decision {
    /// Decides from a review's violations.
    pub fn from_violations(violations: Vec<Violation>) -> Decision {
        let mut denials = Vec::new();
        let mut warnings = Vec::new();
        let mut dryruns = Vec::new();
        for v in &violations {
            for action in &v.actions {
                let list = match action {
                    EnforcementAction::Deny => &mut denials,
                    EnforcementAction::Warn => &mut warnings,
                    EnforcementAction::Dryrun => &mut dryruns,
                    // Gatekeeper's webhook logs and skips actions it does not know.
                    EnforcementAction::Unrecognized => continue,
                };
                list.push(v.display_message());
            }
        }
        Decision {
            allowed: denials.is_empty(),
            denials,
            warnings,
            dryruns,
            violations,
        }
    }

    /// The denial message Gatekeeper sends: one line per denying result.
    pub fn denial_message(&self) -> String {
        self.denials.join("\n")
    }
}
