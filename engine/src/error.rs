//! Errors of loading and compiling policies, each with the place it happened.

use std::fmt;

use crate::document::{DocumentError, Origin};
use crate::gatekeeper::FieldError;

/// The object an error is about: where it was read and what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// File and document.
    pub origin: Origin,
    /// Kind of the object (`ConstraintTemplate`, a constraint kind, ...).
    pub kind: String,
    /// Its `metadata.name` (may be empty).
    pub name: String,
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({} {:?})", self.origin, self.kind, self.name)
    }
}

/// Why a policy could not be loaded or compiled.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file could not be read or parsed.
    #[error(transparent)]
    Document(#[from] DocumentError),
    /// A field is missing or malformed.
    #[error("{subject}: {error}")]
    Invalid {
        /// The object.
        subject: Box<Subject>,
        /// The field and problem.
        error: FieldError,
    },
    /// A template's parameters schema the API server would refuse (a `type` it does not know).
    #[error("{subject}: {field}: {message}")]
    TemplateSchema {
        /// The template.
        subject: Box<Subject>,
        /// The field in the template.
        field: String,
        /// The field as the API server names it in the generated CRD.
        crd_field: String,
        /// What is wrong.
        message: String,
    },
    /// A constraint does not satisfy its CRD schema (parameters or match): gator's `ErrSchema`.
    #[error("{subject}: {error}")]
    Schema {
        /// The constraint.
        subject: Box<Subject>,
        /// The field and problem.
        error: FieldError,
    },
    /// The Rego does not parse, breaks Gatekeeper's rules or does not compile.
    #[error("{subject}: {field}: failed to compile Rego: {message}")]
    Rego {
        /// The template.
        subject: Box<Subject>,
        /// Field holding the Rego (`spec.targets[0].code[0].source.rego`).
        field: String,
        /// regorus's or tollgate's message (with `--> file:line:col` where regorus gives one).
        message: String,
    },
    /// A constraint whose kind no loaded template defines.
    #[error("{subject}: no ConstraintTemplate defines kind {kind:?}")]
    UnknownKind {
        /// The constraint.
        subject: Box<Subject>,
        /// Its kind.
        kind: String,
    },
    /// Two objects of the same kind and name.
    #[error("{subject}: duplicate of the object at {first}")]
    Duplicate {
        /// The second object.
        subject: Box<Subject>,
        /// Where the first one is.
        first: Origin,
    },
    /// Fields the constraint's CRD does not describe (gator's `invalid Constraint: unknown
    /// fields`); the API server would refuse or drop them, so the constraint is not enforced
    /// rather than enforced wider than written.
    #[error("{}:{} ({} {:?}): {}", subject.origin.file, subject.origin.line, subject.kind, subject.name, unknown_fields_message(fields))]
    UnknownFields {
        /// The constraint.
        subject: Box<Subject>,
        /// The fields' paths, sorted (`spec.match.namespace`).
        fields: Vec<String>,
    },
    /// An object of the same kind and name from a source that ranks higher (the cluster over
    /// files, files over the embedded pack) is enforced instead.
    #[error(
        "{subject}: not enforced: {by_source} defines the same {what} at {by}, which takes precedence"
    )]
    Shadowed {
        /// The object left out.
        subject: Box<Subject>,
        /// `constraint kind` or `constraint`/`ExpansionTemplate`.
        what: &'static str,
        /// The source that wins (`files`, `cluster`).
        by_source: String,
        /// Where the winning object is.
        by: Origin,
    },
}

impl PolicyError {
    /// True when the error is about a ConstraintTemplate (rather than a constraint).
    pub fn is_about_template(&self) -> bool {
        match self {
            PolicyError::Invalid { subject, .. }
            | PolicyError::Rego { subject, .. }
            | PolicyError::Duplicate { subject, .. }
            | PolicyError::Shadowed { subject, .. } => subject.kind == "ConstraintTemplate",
            PolicyError::TemplateSchema { .. } => true,
            _ => false,
        }
    }

    /// The object the error is about, when it is about one object (not a whole file).
    pub fn subject(&self) -> Option<&Subject> {
        match self {
            PolicyError::Document(_) => None,
            PolicyError::Invalid { subject, .. }
            | PolicyError::Schema { subject, .. }
            | PolicyError::Rego { subject, .. }
            | PolicyError::UnknownKind { subject, .. }
            | PolicyError::Duplicate { subject, .. }
            | PolicyError::UnknownFields { subject, .. }
            | PolicyError::TemplateSchema { subject, .. }
            | PolicyError::Shadowed { subject, .. } => Some(subject),
        }
    }

    /// The test error as `gator verify` words it, without tollgate's location prefix, where the
    /// two differ.
    pub fn gator_message(&self) -> Option<String> {
        match self {
            PolicyError::UnknownFields { fields, .. } => Some(unknown_fields_message(fields)),
            PolicyError::TemplateSchema {
                crd_field, message, ..
            } => Some(format!(
                "adding template: invalid ConstraintTemplate: {crd_field}: {message}"
            )),
            _ => None,
        }
    }

    /// True for errors gator reports as `ErrSchema` (what `invalid: true` tests expect).
    pub fn is_schema_error(&self) -> bool {
        matches!(self, PolicyError::Schema { .. })
    }
}

fn unknown_fields_message(fields: &[String]) -> String {
    format!("invalid Constraint: unknown fields: [{}]", fields.join(" "))
}

/// Several errors, reported together.
#[derive(Debug)]
pub struct PolicyErrors(pub Vec<PolicyError>);

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for PolicyErrors {}

impl From<PolicyError> for PolicyErrors {
    fn from(e: PolicyError) -> Self {
        PolicyErrors(vec![e])
    }
}
