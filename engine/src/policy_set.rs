//! The immutable snapshot of compiled policies that every decision reads.
//!
//! Built whole from [`Sources`]: either every template, constraint and ExpansionTemplate
//! compiles, or the build returns all the errors and the caller keeps its previous set. There is
//! no way to change a set after it is built.

use std::collections::BTreeMap;
use std::sync::Arc;

use regorus::Value as RegoValue;
use serde_json::Value;

use crate::compile::CompiledTemplate;
use crate::document::{Document, Origin};
use crate::error::{PolicyError, PolicyErrors, Subject};
use crate::gatekeeper::{
    Constraint, ConstraintTemplate, ExpansionTemplate, FieldError, object_name,
};
use crate::load::Sources;

/// A constraint ready to match and evaluate.
#[derive(Debug)]
pub struct CompiledConstraint {
    /// The constraint as read.
    pub constraint: Constraint,
    /// `input.parameters`: validated, defaulted, `{}` when absent.
    pub parameters: RegoValue,
    /// Where it was read.
    pub origin: Origin,
}

/// Everything a decision needs, compiled.
#[derive(Debug, Default)]
pub struct PolicySet {
    templates: BTreeMap<String, Arc<CompiledTemplate>>,
    constraints: Vec<Arc<CompiledConstraint>>,
    expansions: Vec<ExpansionTemplate>,
}

fn subject(doc: &Document, default_kind: &str) -> Box<Subject> {
    Box::new(Subject {
        origin: doc.origin.clone(),
        kind: doc
            .value
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or(default_kind)
            .to_string(),
        name: object_name(&doc.value).to_string(),
    })
}

/// How strictly a set is built.
#[derive(Debug, Clone, Copy, Default)]
pub struct BuildOptions {
    /// Accept enforcement actions Gatekeeper does not know (gator does; the webhook would have
    /// refused such a constraint at creation).
    pub accept_unknown_actions: bool,
    /// Wall-clock budget of one template evaluation; a runaway template becomes an error
    /// result for its constraints instead of holding the caller.
    pub eval_budget: Option<std::time::Duration>,
    /// Which evaluator runs templates.
    pub evaluator: crate::rvm::Evaluator,
}

impl PolicySet {
    /// Compiles all sources for enforcement. Fails with every error found, so an author sees
    /// them all at once.
    pub fn build(sources: &Sources) -> Result<PolicySet, PolicyErrors> {
        Self::build_with(sources, BuildOptions::default())
    }

    /// Compiles all sources with explicit options.
    pub fn build_with(sources: &Sources, options: BuildOptions) -> Result<PolicySet, PolicyErrors> {
        let mut errors = Vec::new();
        let mut set = PolicySet::default();
        let mut template_origin: BTreeMap<String, Origin> = BTreeMap::new();
        for (doc, compiled) in sources
            .templates
            .iter()
            .zip(compile_templates(&sources.templates, options))
        {
            match compiled {
                Ok(t) => {
                    let kind = t.kind().to_string();
                    if let Some(first) = template_origin.get(&kind) {
                        errors.push(PolicyError::Duplicate {
                            subject: subject(doc, "ConstraintTemplate"),
                            first: first.clone(),
                        });
                        continue;
                    }
                    template_origin.insert(kind.clone(), doc.origin.clone());
                    set.templates.insert(kind, Arc::new(t));
                }
                Err(e) => errors.push(e),
            }
        }
        let mut seen: BTreeMap<(String, String), Origin> = BTreeMap::new();
        for doc in &sources.constraints {
            match set.compile_constraint(doc) {
                Ok(c)
                    if !options.accept_unknown_actions
                        && let Some(error) = c.constraint.unrecognized_action() =>
                {
                    errors.push(PolicyError::Invalid {
                        subject: subject(doc, ""),
                        error,
                    });
                }
                Ok(c) => {
                    let key = (c.constraint.kind.clone(), c.constraint.name.clone());
                    if let Some(first) = seen.get(&key) {
                        errors.push(PolicyError::Duplicate {
                            subject: subject(doc, ""),
                            first: first.clone(),
                        });
                        continue;
                    }
                    seen.insert(key, doc.origin.clone());
                    set.constraints.push(Arc::new(c));
                }
                Err(e) => errors.push(e),
            }
        }
        for doc in &sources.expansions {
            match ExpansionTemplate::from_value(&doc.value) {
                Ok(e) => set.expansions.push(e),
                Err(error) => errors.push(PolicyError::Invalid {
                    subject: subject(doc, "ExpansionTemplate"),
                    error,
                }),
            }
        }
        if !errors.is_empty() {
            return Err(PolicyErrors(errors));
        }
        set.constraints.sort_by(|a, b| {
            (&a.constraint.kind, &a.constraint.name).cmp(&(&b.constraint.kind, &b.constraint.name))
        });
        Ok(set)
    }

    /// Compiles one constraint against the templates already in this set.
    pub fn compile_constraint(&self, doc: &Document) -> Result<CompiledConstraint, PolicyError> {
        let subj = subject(doc, "");
        let constraint = Constraint::from_value(&doc.value).map_err(|error| {
            if error.field.starts_with("spec.match") {
                PolicyError::Schema {
                    subject: subj.clone(),
                    error,
                }
            } else {
                PolicyError::Invalid {
                    subject: subj.clone(),
                    error,
                }
            }
        })?;
        let template =
            self.templates
                .get(&constraint.kind)
                .ok_or_else(|| PolicyError::UnknownKind {
                    subject: subj.clone(),
                    kind: constraint.kind.clone(),
                })?;
        let parameters = match (&constraint.parameters, &template.schema) {
            (None, _) => Value::Object(Default::default()),
            (Some(p), Some(schema)) => {
                schema
                    .apply(p, "spec.parameters")
                    .map_err(|error| PolicyError::Schema {
                        subject: subj.clone(),
                        error,
                    })?
            }
            (Some(p), None) => p.clone(),
        };
        if !parameters.is_object() {
            return Err(PolicyError::Schema {
                subject: subj,
                error: FieldError::new("spec.parameters", "expected object"),
            });
        }
        Ok(CompiledConstraint {
            constraint,
            parameters: RegoValue::from(parameters),
            origin: doc.origin.clone(),
        })
    }

    /// The template for a constraint kind.
    pub fn template(&self, kind: &str) -> Option<&Arc<CompiledTemplate>> {
        self.templates.get(kind)
    }

    /// All templates, by kind.
    pub fn templates(&self) -> impl Iterator<Item = &Arc<CompiledTemplate>> {
        self.templates.values()
    }

    /// All constraints, sorted by kind and name.
    pub fn constraints(&self) -> &[Arc<CompiledConstraint>] {
        &self.constraints
    }

    /// ExpansionTemplates, in load order.
    pub fn expansions(&self) -> &[ExpansionTemplate] {
        &self.expansions
    }

    /// Adds ExpansionTemplates (the built-in workload expansion, or a suite's).
    pub fn with_expansions(mut self, more: impl IntoIterator<Item = ExpansionTemplate>) -> Self {
        self.expansions.extend(more);
        self
    }
}

/// Compiles every template, in order, on as many threads as the process may use (one on a
/// single core): parsing, analysis and RVM compilation dominate a cold start and a reload.
fn compile_templates(
    docs: &[Document],
    options: BuildOptions,
) -> Vec<Result<CompiledTemplate, PolicyError>> {
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .min(docs.len());
    if threads <= 1 {
        return docs.iter().map(|d| compile_template(d, options)).collect();
    }
    // Thread t compiles templates t, t + threads, ...; results go back in document order.
    let mut compiled: Vec<(usize, Result<CompiledTemplate, PolicyError>)> =
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    scope.spawn(move || {
                        docs.iter()
                            .enumerate()
                            .skip(t)
                            .step_by(threads)
                            .map(|(i, d)| (i, compile_template(d, options)))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        });
    compiled.sort_by_key(|(i, _)| *i);
    compiled.into_iter().map(|(_, result)| result).collect()
}

fn compile_template(
    doc: &Document,
    options: BuildOptions,
) -> Result<CompiledTemplate, PolicyError> {
    let subj = subject(doc, "ConstraintTemplate");
    let template =
        ConstraintTemplate::from_value(&doc.value).map_err(|error| PolicyError::Invalid {
            subject: subj.clone(),
            error,
        })?;
    CompiledTemplate::compile_with(template, options.eval_budget, options.evaluator).map_err(|f| {
        PolicyError::Rego {
            subject: subj,
            field: f.field,
            message: f.message,
        }
    })
}
