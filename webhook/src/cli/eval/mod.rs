//! `tollgate eval -f FILE`: reviews every object in the inputs, like `gator test`, and every
//! AdmissionReview's request, like the webhook.

mod inputs;
mod scope;

use std::process::ExitCode;

use anyhow::Context as _;
use serde_json::{Value, json};
use tollgate_engine::gatekeeper::Gvk;
use tollgate_engine::policy_set::BuildOptions;
use tollgate_engine::{
    Context, DataSnapshot, Decision, PolicySet, Review, Source, Sources, enforcement_point,
};

use super::EvaluatorFlag;
use crate::pack;
use inputs::Subject;
use scope::{DEFAULT_NAMESPACE, Placement};

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
}

/// How many subjects were reviewed, and how they fared.
#[derive(Debug, Default)]
struct Tally {
    objects: usize,
    denied: usize,
    warned: usize,
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
    } = args;
    let listing = inputs::list(&files, recursive)?;
    let mut inputs = Sources::default();
    for input in &listing.inputs {
        inputs.add(inputs::read(input)?);
    }
    let placement = Placement::new(namespace, &inputs.objects);
    let subjects = std::mem::take(&mut inputs.objects)
        .into_iter()
        .map(|doc| Subject::of(doc, &placement))
        .collect::<Result<Vec<_>, _>>()?;
    let mut sources = if policies.is_empty() {
        pack::sources()?
    } else {
        Sources::from_paths(&policies)?
    };
    sources.templates.extend(inputs.templates.iter().cloned());
    sources
        .constraints
        .extend(inputs.constraints.iter().cloned());
    sources.expansions.extend(inputs.expansions.iter().cloned());
    let options = BuildOptions {
        evaluator: evaluator.into(),
        builtin_expansions: !no_expand,
        ..BuildOptions::default()
    };
    let (set, warnings) = PolicySet::build_warning(&sources, options)?;
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    // Every input object is synced, as `gator test` does; `data.inventory` is only built if a
    // template reads it. An AdmissionReview is a request, not cluster state: not synced.
    let mut data = DataSnapshot::default();
    for subject in &subjects {
        if let Subject::Object(doc) = subject {
            data.sync(doc.value.clone())
                .with_context(|| doc.origin.to_string())?;
        }
    }
    // gator knows the `default` Namespace without being given it (an object with no labels),
    // and objects without a namespace land there.
    if data.namespace(DEFAULT_NAMESPACE).is_none() {
        data.set_namespace(json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": DEFAULT_NAMESPACE}}));
    }
    let ctx = Context {
        enforcement_point: enforcement_point::GATOR,
        data: Some(&data),
        expand: !no_expand,
        builtin_expansions: true,
        observe: None,
    };
    let mut tally = Tally::default();
    let mut report = Vec::new();
    let mut human = String::new();
    for subject in &subjects {
        let of_object;
        let review = match subject {
            Subject::Object(doc) => {
                of_object = Review::of_object(doc.value.clone(), Source::Original);
                &of_object
            }
            Subject::Request { review, .. } => review,
        };
        let outcome = tollgate_engine::evaluate::review(&set, review, &ctx)
            .with_context(|| format!("{}: reviewing {}", subject.origin(), describe(subject)))?;
        for line in &outcome.prints {
            eprintln!("{line}");
        }
        let decision = Decision::from_violations(outcome.violations);
        tally.objects += 1;
        tally.denied += usize::from(!decision.allowed);
        tally.warned += usize::from(!decision.warnings.is_empty());
        for v in &decision.violations {
            let actions: Vec<&str> = v.actions.iter().map(|a| a.as_str()).collect();
            human.push_str(&format!(
                "{}: [{:?}] ({}) Message: {:?}\n",
                describe(subject),
                v.constraint.constraint.name,
                actions.join(","),
                v.msg
            ));
            let gvk = Gvk::of(subject.object());
            let mut object = json!({
                "apiVersion": gvk.api_version(),
                "kind": gvk.kind,
                "namespace": subject.namespace(),
                "name": subject.name(),
                "file": subject.origin().file,
                "document": subject.origin().document,
            });
            if let (Some(operation), Value::Object(o)) = (subject.operation(), &mut object) {
                o.insert("operation".into(), json!(operation));
            }
            report.push(json!({
                "object": object,
                "constraint": {"kind": v.constraint.constraint.kind, "name": v.constraint.constraint.name},
                "enforcementActions": actions,
                "message": v.msg,
                "details": v.details,
                "impliedBy": v.implied_by,
            }));
        }
    }
    let denied = tally.denied > 0;
    match format {
        EvalFormat::Human => print!("{human}"),
        EvalFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "allowed": !denied,
                "results": report,
                "summary": {"objects": tally.objects, "denied": tally.denied, "warned": tally.warned},
            }))?
        ),
    }
    eprintln!(
        "{} {}, {} denied, {} warned",
        tally.objects,
        if tally.objects == 1 {
            "object"
        } else {
            "objects"
        },
        tally.denied,
        tally.warned
    );
    if tally.objects == 0
        && let Some(dir) = listing.unread_directories.first()
    {
        eprintln!(
            "note: subdirectories such as {} are read only with -R",
            dir.display()
        );
    }
    Ok(if denied {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `apiVersion/Kind namespace/name`, as gator test prints objects.
fn describe(subject: &Subject) -> String {
    let gvk = Gvk::of(subject.object());
    let (ns, name) = (subject.namespace(), subject.name());
    if ns.is_empty() {
        format!("{}/{} {name}", gvk.api_version(), gvk.kind)
    } else {
        format!("{}/{} {ns}/{name}", gvk.api_version(), gvk.kind)
    }
}
