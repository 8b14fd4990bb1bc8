//! The immutable snapshot of compiled policies that every decision reads.
//!
//! Built by [`crate::ingest`] from [`Sources`]; there is no way to change a set after it is
//! built, so a new set is published whole.

use std::collections::BTreeMap;
use std::sync::Arc;

use regorus::Value as RegoValue;
use serde_json::Value;

use crate::compile::CompiledTemplate;
use crate::document::{Document, Origin};
use crate::error::{PolicyError, PolicyErrors};
use crate::gatekeeper::{Constraint, ExpansionTemplate, FieldError, unknown_fields};
use crate::ingest::{Ingester, Layer, subject};
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
    pub(crate) templates: BTreeMap<String, Arc<CompiledTemplate>>,
    pub(crate) constraints: Vec<Arc<CompiledConstraint>>,
    pub(crate) expansions: Vec<ExpansionTemplate>,
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
    /// Add tollgate's built-in workload expansion (`expand-workloads`) after the sources' own
    /// ExpansionTemplates.
    pub builtin_expansions: bool,
    /// Templates compiled ahead of time ([`crate::precompiled`]): a template whose Rego has a
    /// usable program there runs it, with no parsing or analysis until the interpreter is
    /// needed; any other compiles as usual.
    pub precompiled: Option<&'static crate::precompiled::Precompiled>,
}

impl PolicySet {
    /// Compiles all sources for enforcement. Fails with every error found, so an author sees
    /// them all at once.
    pub fn build(sources: &Sources) -> Result<PolicySet, PolicyErrors> {
        Self::build_with(sources, BuildOptions::default())
    }

    /// Compiles all sources with explicit options; any problem fails the build (the CLI
    /// tools' rule; the webhook ingests with [`Ingester`] and keeps what compiles).
    pub fn build_with(sources: &Sources, options: BuildOptions) -> Result<PolicySet, PolicyErrors> {
        Self::build_warning(sources, options).map(|(set, _)| set)
    }

    /// [`Self::build_with`], also returning the warnings (objects of the same kind and name,
    /// of which the last is used).
    pub fn build_warning(
        sources: &Sources,
        options: BuildOptions,
    ) -> Result<(PolicySet, Vec<String>), PolicyErrors> {
        let ingested = Ingester::new(options).ingest(&[Layer {
            source: "",
            documents: sources,
        }]);
        if ingested.problems.is_empty() {
            Ok((ingested.set, ingested.warnings))
        } else {
            Err(PolicyErrors(
                ingested.problems.into_iter().map(|p| p.error).collect(),
            ))
        }
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
        // Checked after the schema, as gator does: a schema error is the one to report.
        let unknown = unknown_fields(&doc.value, template.template.parameters_shape());
        if !unknown.is_empty() {
            return Err(PolicyError::UnknownFields {
                subject: subj,
                fields: unknown,
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

    /// Whether some constraint's template reads `data.inventory`: only then does a review need
    /// every synced object (`eval` streams its inputs otherwise).
    pub fn reads_inventory(&self) -> bool {
        self.constraints.iter().any(|c| {
            self.template(&c.constraint.kind)
                .is_some_and(|t| t.uses_inventory())
        })
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
}
