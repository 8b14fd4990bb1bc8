//! The one decision path: match every constraint against a review, evaluate the matching
//! templates, and do the same for every object the review's object expands to.
//!
//! The webhook, `eval`, `verify` and audit all call [`review`]; nothing else evaluates.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::sync::Arc;

use regorus::Value as RegoValue;
use serde_json::Value;

use crate::data::DataSnapshot;
use crate::expand::{self, ExpandError};
use crate::gatekeeper::{EnforcementAction, object_name};
use crate::matching;
use crate::policy_set::{CompiledConstraint, PolicySet};
use crate::review::{Review, Source};

/// Gatekeeper's enforcement point names.
pub mod enforcement_point {
    /// The admission webhook.
    pub const WEBHOOK: &str = "validation.gatekeeper.sh";
    /// Audit.
    pub const AUDIT: &str = "audit.gatekeeper.sh";
    /// gator (`verify`, `eval`).
    pub const GATOR: &str = "gator.gatekeeper.sh";
}

/// A callback told how long each template evaluation took.
pub type EvaluationObserver<'a> = dyn Fn(&CompiledConstraint, std::time::Duration) + Sync + 'a;

/// What a review needs besides the policies.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    /// Which enforcement point is asking (selects scoped actions).
    pub enforcement_point: &'a str,
    /// Namespaces and `data.inventory`: one immutable snapshot for the whole review.
    pub data: Option<&'a DataSnapshot>,
    /// Whether to expand the object with the set's ExpansionTemplates.
    pub expand: bool,
    /// Whether tollgate's built-in workload expansion (`expand-workloads`) takes part. The
    /// webhook and `eval` judge the Pods a workload would create before they exist; the audit
    /// leaves it out, as Gatekeeper has none: the Pods it would imply exist and are audited.
    pub builtin_expansions: bool,
    /// Called after each template evaluation with its constraint and duration (metrics).
    pub observe: Option<&'a EvaluationObserver<'a>>,
}

impl Context<'_> {
    /// How `gator test` reviews a plain object: no inventory, no Namespace objects, workloads
    /// expanded.
    pub fn gator() -> Self {
        Context {
            enforcement_point: enforcement_point::GATOR,
            data: None,
            expand: true,
            builtin_expansions: true,
            observe: None,
        }
    }
}

/// One result of one constraint on one object.
#[derive(Debug, Clone)]
pub struct Violation {
    /// The constraint that produced it.
    pub constraint: Arc<CompiledConstraint>,
    /// The message (prefixed with `[Implied by <template>]` for expanded objects).
    pub msg: String,
    /// `details`, `{}` when the template gave none.
    pub details: Value,
    /// The actions at this enforcement point.
    pub actions: Vec<EnforcementAction>,
    /// The ExpansionTemplate, when the result is about a generated object.
    pub implied_by: Option<String>,
    /// True when the result stands for an evaluation or match error (its message is the
    /// error), not a policy violation; `--fail-open` admits these.
    pub is_error: bool,
}

impl Violation {
    /// `[<constraint>] <msg>`, Gatekeeper's response format.
    pub fn display_message(&self) -> String {
        format!("[{}] {}", self.constraint.constraint.name, self.msg)
    }
}

/// A review that could not be completed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReviewFailure {
    /// [`review_within`] stopped at an evaluation that ran past its budget.
    #[error("constraint {constraint} ran past the inline budget of {budget:?}")]
    PastBudget {
        /// `<kind>/<name>` of the constraint whose evaluation was stopped.
        constraint: String,
        /// The budget.
        budget: std::time::Duration,
    },
    /// The object could not be expanded.
    #[error("expanding resource {name}: {error}")]
    Expand {
        /// The object's name.
        name: String,
        /// Why.
        error: ExpandError,
    },
}

/// Everything a review produced.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Results, in constraint order, expanded objects after their parent.
    pub violations: Vec<Violation>,
    /// `print()` output of the templates, in evaluation order.
    pub prints: Vec<String>,
}

/// Reviews a request against every constraint of the set, then every expanded object.
pub fn review(
    set: &PolicySet,
    review: &Review,
    ctx: &Context<'_>,
) -> Result<Outcome, ReviewFailure> {
    review_with(set, review, ctx, None)
}

/// [`review`] with every template evaluation limited to `budget` instead of its own budget;
/// the review stops at the first evaluation that runs past it
/// ([`ReviewFailure::PastBudget`]). The webhook evaluates on the request's own task this way,
/// and hands what does not finish in time to the blocking pool, with the full budget.
pub fn review_within(
    set: &PolicySet,
    review: &Review,
    ctx: &Context<'_>,
    budget: std::time::Duration,
) -> Result<Outcome, ReviewFailure> {
    review_with(set, review, ctx, Some(budget))
}

fn review_with(
    set: &PolicySet,
    review: &Review,
    ctx: &Context<'_>,
    budget: Option<std::time::Duration>,
) -> Result<Outcome, ReviewFailure> {
    let review = attach_namespace(review, ctx);
    let mut outcome = Outcome::default();
    evaluate_constraints(set, &review, ctx, budget, &mut outcome)?;
    if ctx.expand
        && !set.expansions().is_empty()
        && let Some(object) = review.object()
    {
        let ns = review.namespace_name().to_string();
        let own: Vec<crate::gatekeeper::ExpansionTemplate>;
        let expansions = if ctx.builtin_expansions {
            set.expansions()
        } else {
            own = set
                .expansions()
                .iter()
                .filter(|t| t.name != expand::BUILTIN_EXPANSION)
                .cloned()
                .collect();
            &own
        };
        let resultants = expand::expand(expansions, object, Some(&ns)).map_err(|error| {
            ReviewFailure::Expand {
                name: object_name(object).to_string(),
                error,
            }
        })?;
        for r in resultants {
            let child = Review::of_object(r.object, Source::Generated);
            let child = attach_namespace(&child, ctx);
            let override_action = r
                .enforcement_action
                .as_deref()
                .and_then(EnforcementAction::parse);
            let mut child_outcome = Outcome::default();
            evaluate_constraints(set, &child, ctx, budget, &mut child_outcome)?;
            for mut v in child_outcome.violations {
                v.msg = format!("[Implied by {}] {}", r.template_name, v.msg);
                if let Some(action) = override_action {
                    v.actions = vec![action];
                }
                v.implied_by = Some(r.template_name.clone());
                outcome.violations.push(v);
            }
            outcome.prints.extend(child_outcome.prints);
        }
    }
    Ok(outcome)
}

/// The review with its Namespace object when `ctx` knows it; borrowed (no copy of the request)
/// when there is nothing to attach.
fn attach_namespace<'r>(review: &'r Review, ctx: &Context<'_>) -> Cow<'r, Review> {
    if review.namespace.is_some() {
        return Cow::Borrowed(review);
    }
    let ns = ctx
        .data
        .and_then(|data| data.namespace(review.namespace_name()))
        .cloned();
    if ns.is_none()
        && review.request.get("namespaceObject") == Some(&Value::Object(Default::default()))
    {
        return Cow::Borrowed(review);
    }
    Cow::Owned(review.clone().with_namespace(ns))
}

fn evaluate_constraints(
    set: &PolicySet,
    review: &Review,
    ctx: &Context<'_>,
    budget: Option<std::time::Duration>,
    outcome: &mut Outcome,
) -> Result<(), ReviewFailure> {
    let mut review_value: Option<RegoValue> = None;
    // Read once, on the first constraint that matches against it.
    let mut targets: Option<matching::ReviewTargets<'_>> = None;
    for c in set.constraints() {
        let actions = c.constraint.actions_at(ctx.enforcement_point);
        if actions.is_empty() {
            continue;
        }
        let matched = match targets
            .get_or_insert_with(|| matching::ReviewTargets::of(review))
            .matches(&c.constraint.matcher)
        {
            Ok(m) => m,
            // The constraint framework reports a match failure as that constraint's result.
            Err(error) => {
                let name = review
                    .object()
                    .or(review.old_object())
                    .map(object_name)
                    .unwrap_or("");
                outcome.violations.push(Violation {
                    constraint: Arc::clone(c),
                    msg: format!(
                        "unable to match constraints: error matching the requested object: {name} :failed to run Match criteria: {error}"
                    ),
                    details: Value::Object(Default::default()),
                    actions: actions.clone(),
                    implied_by: None,
                    is_error: true,
                });
                continue;
            }
        };
        if !matched {
            continue;
        }
        let Some(template) = set.template(&c.constraint.kind) else {
            continue;
        };
        if let Some(cel) = template.cel() {
            // Gatekeeper's k8scel driver: no inventory, no print, no details; every failed
            // validation is one result.
            let started = std::time::Instant::now();
            let parameters = c
                .constraint
                .parameters
                .as_ref()
                .map(|_| serde_json::to_value(&c.parameters).unwrap_or(Value::Null));
            // The webhook and audit pass the cached Namespace to the driver (namespaceObject);
            // gator passes none, even for a Namespace in its inventory.
            let namespace = review
                .namespace
                .as_ref()
                .filter(|_| ctx.enforcement_point != enforcement_point::GATOR);
            let results = cel.evaluate(&crate::cel::Input {
                request: &review.request,
                namespace,
                parameters: parameters.as_ref(),
            });
            if let Some(observe) = ctx.observe {
                observe(c, started.elapsed());
            }
            for r in results {
                outcome.violations.push(Violation {
                    constraint: Arc::clone(c),
                    msg: r.msg,
                    details: Value::Object(Default::default()),
                    actions: actions.clone(),
                    implied_by: None,
                    is_error: r.is_error,
                });
            }
            continue;
        }
        // Converted once per review, straight from the parsed request (no copy of it), and
        // shared by every constraint's input.
        let review_value = review_value
            .get_or_insert_with(|| crate::rego::to_rego(&review.request))
            .clone();
        let mut input = RegoValue::new_object();
        if let Ok(map) = input.as_object_mut() {
            map.insert(RegoValue::from("review"), review_value);
            map.insert(RegoValue::from("parameters"), c.parameters.clone());
        }
        let started = std::time::Instant::now();
        // Built from the snapshot only when a template reads it.
        let inventory = ctx
            .data
            .filter(|_| template.uses_inventory())
            .and_then(DataSnapshot::inventory);
        let evaluation = template.evaluate_within(input, inventory, budget);
        if let Some(budget) = budget
            && evaluation.timed_out
        {
            return Err(ReviewFailure::PastBudget {
                constraint: format!("{}/{}", c.constraint.kind, c.constraint.name),
                budget,
            });
        }
        if let Some(observe) = ctx.observe {
            observe(c, started.elapsed());
        }
        outcome.prints.extend(evaluation.prints);
        let (results, is_error) = match evaluation.result {
            Ok(value) => (decode_results(&value), false),
            // Gatekeeper's driver turns an evaluation error into one result per constraint.
            Err(e) => (vec![(e, Value::Object(Default::default()))], true),
        };
        for (msg, details) in results {
            outcome.violations.push(Violation {
                constraint: Arc::clone(c),
                msg,
                details,
                actions: actions.clone(),
                implied_by: None,
                is_error,
            });
        }
    }
    Ok(())
}

/// The hook's projection: each result needs `msg`; `details` defaults to `{}`; results equal in
/// both count once. Public for the per-step benchmark (`engine/benches/decision.rs`).
pub fn decode_results(value: &RegoValue) -> Vec<(String, Value)> {
    let items: Vec<&RegoValue> = match value {
        RegoValue::Set(s) => s.iter().collect(),
        RegoValue::Array(a) => a.iter().collect(),
        _ => return Vec::new(),
    };
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for r in items {
        let RegoValue::Object(fields) = r else {
            continue;
        };
        let Some(msg) = fields.get(&RegoValue::from("msg")) else {
            continue;
        };
        let msg = match msg {
            RegoValue::String(s) => s.to_string(),
            RegoValue::Undefined => continue,
            other => serde_json::to_string(other).unwrap_or_default(),
        };
        let details = fields
            .get(&RegoValue::from("details"))
            .and_then(|d| serde_json::to_value(d).ok())
            .unwrap_or_else(|| Value::Object(Default::default()));
        let key = (msg.clone(), details.to_string());
        if seen.insert(key) {
            out.push((msg, details));
        }
    }
    out
}
