//! `tollgate eval -f FILE`: reviews every object in the inputs, like `gator test`.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use serde_json::{Value, json};
use tollgate_engine::document;
use tollgate_engine::gatekeeper::{Gvk, object_name, object_namespace};
use tollgate_engine::policy_set::BuildOptions;
use tollgate_engine::{
    Context, DataSnapshot, Decision, PolicySet, Review, Source, Sources, enforcement_point,
};

use super::EvaluatorFlag;
use crate::pack;

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
    /// Files of objects to evaluate (YAML or JSON streams); `-` reads standard input.
    /// Templates, constraints and ExpansionTemplates among them are loaded as policies.
    #[arg(short = 'f', long = "filename", required = true)]
    files: Vec<String>,
    /// Policy files or directories; without any, the embedded tracker pack is used.
    #[arg(long = "policies")]
    policies: Vec<PathBuf>,
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

/// Exit 0 when nothing denies, 1 when something denies, 2 on bad inputs or policies.
pub fn run(args: EvalArgs) -> anyhow::Result<ExitCode> {
    let EvalArgs {
        files,
        policies,
        no_expand,
        format,
        evaluator,
    } = args;
    let mut inputs = Sources::default();
    for f in &files {
        let docs = if f == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("failed to read standard input")?;
            document::parse_stream("-", &text)?
        } else {
            document::read_file(std::path::Path::new(f))?
        };
        inputs.add(docs);
    }
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
    // template reads it.
    let mut data = DataSnapshot::default();
    for doc in &inputs.objects {
        data.sync(doc.value.clone())
            .with_context(|| doc.origin.to_string())?;
    }
    let ctx = Context {
        enforcement_point: enforcement_point::GATOR,
        data: Some(&data),
        expand: !no_expand,
        observe: None,
    };
    let mut denied = false;
    let mut report = Vec::new();
    let mut human = String::new();
    for doc in &inputs.objects {
        let review = Review::of_object(doc.value.clone(), Source::Original);
        let outcome = tollgate_engine::evaluate::review(&set, &review, &ctx)
            .with_context(|| format!("{}: reviewing {}", doc.origin, describe(&doc.value)))?;
        for line in &outcome.prints {
            eprintln!("{line}");
        }
        let decision = Decision::from_violations(outcome.violations);
        denied |= !decision.allowed;
        for v in &decision.violations {
            let actions: Vec<&str> = v.actions.iter().map(|a| a.as_str()).collect();
            human.push_str(&format!(
                "{}: [{:?}] ({}) Message: {:?}\n",
                describe(&doc.value),
                v.constraint.constraint.name,
                actions.join(","),
                v.msg
            ));
            report.push(json!({
                "object": {
                    "apiVersion": Gvk::of(&doc.value).api_version(),
                    "kind": Gvk::of(&doc.value).kind,
                    "namespace": object_namespace(&doc.value),
                    "name": object_name(&doc.value),
                    "file": doc.origin.file,
                    "document": doc.origin.document,
                },
                "constraint": {"kind": v.constraint.constraint.kind, "name": v.constraint.constraint.name},
                "enforcementActions": actions,
                "message": v.msg,
                "details": v.details,
                "impliedBy": v.implied_by,
            }));
        }
    }
    match format {
        EvalFormat::Human => print!("{human}"),
        EvalFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&json!({"allowed": !denied, "results": report}))?
        ),
    }
    Ok(if denied {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `apiVersion/Kind namespace/name`, as gator test prints objects.
fn describe(object: &Value) -> String {
    let gvk = Gvk::of(object);
    let ns = object_namespace(object);
    let name = object_name(object);
    if ns.is_empty() {
        format!("{}/{} {name}", gvk.api_version(), gvk.kind)
    } else {
        format!("{}/{} {ns}/{name}", gvk.api_version(), gvk.kind)
    }
}
