//! `tollgate eval -f FILE`: reviews every object in the inputs, like `gator test`, and every
//! AdmissionReview's request, like the webhook.
//!
//! Two ways through, with the same output: [`streamed`] reads the inputs one document at a
//! time when no constraint's template reads `data.inventory` (memory bounded by the output, not
//! the inputs); [`loaded`] holds every object first, as `gator test` does, when one does, and
//! whenever the streamed way meets anything it cannot settle. Both review on one worker per
//! core ([`ordered`]) and report in input order ([`report`]).
//!
//! `tollgate audit -f` goes the same way ([`audit_files`]): the same reviews, gathered by
//! constraint as the audit gathers them.

mod inputs;
mod loaded;
mod ordered;
pub mod report;
mod scope;
mod streamed;
mod world;

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::json;
use tollgate_engine::document::DocumentError;
use tollgate_engine::policy_set::BuildOptions;
use tollgate_engine::{Context, DataSnapshot, PolicyErrors, PolicySet, Sources, enforcement_point};

use super::EvaluatorFlag;
use crate::pack;
use scope::DEFAULT_NAMESPACE;

/// Output formats of `eval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EvalFormat {
    /// One line per violation.
    Human,
    /// One JSON document.
    Json,
}

/// Arguments of `eval`.
#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// Files or directories of objects to evaluate (YAML or JSON streams; AdmissionReviews are
    /// reviewed as their request); `-` reads standard input. A directory contributes its
    /// `.json`, `.yaml` and `.yml` files, as with kubectl. Templates, constraints and
    /// ExpansionTemplates among them are loaded as policies.
    #[arg(short = 'f', long = "filename", required = true)]
    files: Vec<String>,
    /// Read the directories given with `-f` recursively.
    #[arg(short = 'R', long)]
    recursive: bool,
    /// Namespace of the namespaced objects that name none (default: `default`, as with
    /// kubectl); when given, an object naming another namespace is an error.
    #[arg(short = 'n', long, value_parser = clap::builder::NonEmptyStringValueParser::new())]
    namespace: Option<String>,
    /// Policy files or directories; without any, the embedded tracker pack is used.
    #[arg(long = "policies")]
    policies: Vec<std::path::PathBuf>,
    /// Do not expand workloads (Deployment, CronJob, ...) into the Pods they create.
    #[arg(long)]
    no_expand: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = EvalFormat::Human)]
    format: EvalFormat,
    /// Which evaluator runs the templates.
    #[arg(long, value_enum, default_value_t = EvaluatorFlag::Rvm)]
    evaluator: EvaluatorFlag,
    /// Review on N threads (default: one per core this process may use). The output is the
    /// same for any N.
    #[arg(short = 'j', long, value_name = "N")]
    jobs: Option<NonZeroUsize>,
}

/// What the reviews are rendered for: `eval`'s output, or `audit -f`'s results by constraint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rendering {
    Eval(EvalFormat),
    Audit,
}

/// How `eval` was asked to review, for either way through.
#[derive(Debug)]
struct Settings {
    namespace: Option<String>,
    policies: Vec<PathBuf>,
    no_expand: bool,
    rendering: Rendering,
    evaluator: EvaluatorFlag,
    jobs: NonZeroUsize,
}

impl Settings {
    /// The policies given with `--policies`, else the embedded pack.
    fn policy_sources(&self) -> Result<Sources, DocumentError> {
        if self.policies.is_empty() {
            pack::sources()
        } else {
            Sources::from_paths(&self.policies)
        }
    }

    /// Builds `base` with the policies found among the inputs after it; also the warnings.
    fn build(
        &self,
        mut base: Sources,
        inputs: &Sources,
    ) -> Result<(PolicySet, Vec<String>), PolicyErrors> {
        base.templates.extend(inputs.templates.iter().cloned());
        base.constraints.extend(inputs.constraints.iter().cloned());
        base.expansions.extend(inputs.expansions.iter().cloned());
        let options = BuildOptions {
            evaluator: self.evaluator.into(),
            builtin_expansions: !self.no_expand,
            precompiled: crate::pack::precompiled(),
            ..BuildOptions::default()
        };
        PolicySet::build_warning(&base, options)
    }

    /// How every subject is reviewed: as gator does, with `data`; for `audit -f`, at the
    /// audit's enforcement point (which only scoped constraints tell apart).
    fn context<'a>(&self, data: &'a DataSnapshot) -> Context<'a> {
        Context {
            enforcement_point: match self.rendering {
                Rendering::Eval(_) => enforcement_point::GATOR,
                Rendering::Audit => enforcement_point::AUDIT,
            },
            data: Some(data),
            expand: !self.no_expand,
            builtin_expansions: true,
            observe: None,
        }
    }
}

/// gator knows the `default` Namespace without being given it (an object with no labels), and
/// objects without a namespace land there.
fn add_default_namespace(data: &mut DataSnapshot) {
    if data.namespace(DEFAULT_NAMESPACE).is_none() {
        data.set_namespace(json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": DEFAULT_NAMESPACE}}));
    }
}

/// Exit 0 when nothing denies, 1 when something denies, 2 on bad inputs or policies. The last
/// line on stderr counts what was reviewed, so that "nothing matched" reads differently from
/// "nothing was read".
pub fn run(args: EvalArgs) -> anyhow::Result<ExitCode> {
    let EvalArgs {
        files,
        recursive,
        namespace,
        policies,
        no_expand,
        format,
        evaluator,
        jobs,
    } = args;
    let mut listing = inputs::list(&files, recursive)?;
    inputs::keep_unrepeatable(&mut listing.inputs);
    let settings = Settings {
        namespace,
        policies,
        no_expand,
        rendering: Rendering::Eval(format),
        evaluator,
        jobs: ordered::jobs(jobs),
    };
    let report = match streamed::run(&settings, &listing.inputs) {
        Some(report) => report,
        None => loaded::run(&settings, &listing.inputs)?,
    };
    let unread = listing.unread_directories.first().map(PathBuf::as_path);
    Ok(report.print(format, unread))
}

/// The files `tollgate audit -f` audits, and how: `eval`'s arguments without its output.
#[derive(Debug)]
pub struct AuditFiles {
    pub files: Vec<String>,
    pub recursive: bool,
    pub policies: Vec<PathBuf>,
    pub no_expand: bool,
    pub evaluator: EvaluatorFlag,
    pub jobs: Option<NonZeroUsize>,
}

/// `tollgate audit -f`: every object reviewed as `eval` reviews it (objects naming no
/// namespace land in `default`), the results gathered by constraint.
pub fn audit_files(args: AuditFiles) -> anyhow::Result<report::Audited> {
    let mut listing = inputs::list(&args.files, args.recursive)?;
    inputs::keep_unrepeatable(&mut listing.inputs);
    let settings = Settings {
        namespace: None,
        policies: args.policies,
        no_expand: args.no_expand,
        rendering: Rendering::Audit,
        evaluator: args.evaluator,
        jobs: ordered::jobs(args.jobs),
    };
    let report = match streamed::run(&settings, &listing.inputs) {
        Some(report) => report,
        None => loaded::run(&settings, &listing.inputs)?,
    };
    Ok(report.into_audited())
}
