//! `tollgate audit`: one audit pass for a terminal or CI against the cluster of the current
//! kubeconfig, with the cluster's ConstraintTemplates, constraints and ExpansionTemplates, its
//! Namespaces and (with `--namespace`) the data its Gatekeeper `Config` and SyncSets sync. The
//! same pass as the in-cluster audit (`cluster::audit::collect`), but every violation is kept
//! and printed; read-only unless `--write-status`.
//!
//! With `-f`, files take the cluster's place: their objects are reviewed as `tollgate eval`
//! reviews them (`cli::eval::audit_files`), at the audit's enforcement point, and reported the
//! same way.

use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use kube::Api;
use kube::api::ListParams;
use kube::core::DynamicObject;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tollgate_engine::document::{Document, Origin};
use tollgate_engine::ingest::{Ingester, Layer};
use tollgate_engine::policy_set::BuildOptions;
use tollgate_engine::{DataSnapshot, PolicySet, Sources};

use super::EvaluatorFlag;
use super::eval::{AuditFiles, audit_files};
use crate::cluster::audit::{self, ApiResource, PassResults};
use crate::cluster::sync::{CONFIG_NAME, SyncPlan};
use crate::cluster::{ClusterConfig, crd, policies, watch};

/// Output formats of `audit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuditFormat {
    /// One line per violation, grouped by constraint.
    Human,
    /// One JSON document.
    Json,
    /// JUnit XML: a test case per constraint, failing when it has `deny` violations.
    Junit,
}

/// Arguments of `audit`.
#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = AuditFormat::Human)]
    format: AuditFormat,
    /// Audit the objects in these files or directories instead of a cluster, each reviewed
    /// as `tollgate eval` reviews it (`-` reads standard input; templates, constraints and
    /// ExpansionTemplates among them are loaded as policies).
    #[arg(short = 'f', long = "filename", value_name = "FILE|DIR|-",
        conflicts_with_all = ["write_status", "constraint_violations_limit", "chunk_size", "match_kind_only"])]
    files: Vec<String>,
    /// With `-f`: read directories recursively.
    #[arg(short = 'R', long, requires = "files")]
    recursive: bool,
    /// With `-f`: policy files or directories; without any, the embedded tracker pack.
    #[arg(long = "policies", requires = "files")]
    policies: Vec<PathBuf>,
    /// With `-f`: do not expand workloads into the Pods they create.
    #[arg(long, requires = "files")]
    no_expand: bool,
    /// With `-f`: review on N threads (default: one per core).
    #[arg(short = 'j', long, value_name = "N", requires = "files")]
    jobs: Option<NonZeroUsize>,
    /// Which evaluator runs the templates.
    #[arg(long, value_enum, default_value_t = EvaluatorFlag::Rvm)]
    evaluator: EvaluatorFlag,
    /// Write each constraint's totalViolations, violations and auditTimestamp, as the
    /// in-cluster audit does (otherwise nothing in the cluster is changed).
    #[arg(long)]
    write_status: bool,
    /// With `--write-status`: violations kept in each constraint's status.
    #[arg(long, default_value_t = 20)]
    constraint_violations_limit: usize,
    /// Objects per list request.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..))]
    chunk_size: u32,
    /// Audit only the kinds the constraints name.
    #[arg(long)]
    match_kind_only: bool,
    /// The namespace of the Gatekeeper `Config` (named `config`) whose sync and audit
    /// exclusions apply, as in the cluster (tollgate's or Gatekeeper's namespace).
    #[arg(long, env = "POD_NAMESPACE")]
    namespace: Option<String>,
}

/// Exit 0 without `deny` violations, 1 with some, 2 when the pass cannot run.
pub fn run(args: AuditArgs) -> anyhow::Result<ExitCode> {
    if !args.files.is_empty() {
        return audit_from_files(args);
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    runtime.block_on(audit(args))
}

async fn list_all(client: &kube::Client, resource: &ApiResource) -> anyhow::Result<Vec<Value>> {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), resource);
    let list = api
        .list(&ListParams::default())
        .await
        .with_context(|| format!("cannot list {}", resource.plural))?;
    Ok(list
        .items
        .into_iter()
        .filter_map(|o| watch::to_value(o, resource))
        .collect())
}

/// The cluster's policies, as the in-cluster policy source would publish them.
async fn load_policies(
    client: &kube::Client,
    evaluator: EvaluatorFlag,
) -> anyhow::Result<PolicySet> {
    let templates = list_all(
        client,
        &watch::resource(
            "templates.gatekeeper.sh",
            "v1beta1",
            "ConstraintTemplate",
            "constrainttemplates",
        ),
    )
    .await?;
    let expansions = list_all(
        client,
        &watch::resource(
            "expansion.gatekeeper.sh",
            "v1beta1",
            "ExpansionTemplate",
            "expansiontemplate",
        ),
    )
    .await
    .unwrap_or_default();
    let mut documents = Vec::new();
    for template in &templates {
        let Some(kind) = policies::template_kind(template) else {
            continue;
        };
        let resource = watch::resource(crd::GROUP, "v1beta1", kind, &kind.to_lowercase());
        // A template without a CRD yet has no constraints.
        documents.extend(list_all(client, &resource).await.unwrap_or_default());
    }
    documents.extend(templates);
    documents.extend(expansions);
    let mut sources = Sources::default();
    sources.add(
        documents
            .into_iter()
            .map(|value| Document {
                origin: Origin {
                    file: format!(
                        "cluster:{}/{}",
                        value
                            .get("kind")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_lowercase(),
                        tollgate_engine::gatekeeper::object_name(&value)
                    ),
                    document: 1,
                    line: 1,
                },
                value,
                text: None,
            })
            .collect(),
    );
    let mut ingester = Ingester::new(BuildOptions {
        accept_unknown_actions: false,
        eval_budget: Some(Duration::from_millis(500)),
        evaluator: evaluator.into(),
        builtin_expansions: true,
        precompiled: None,
    });
    let ingested = ingester.ingest(&[Layer {
        source: policies::SOURCE,
        documents: &sources,
    }]);
    for problem in &ingested.problems {
        eprintln!("warning: not enforced as written: {}", problem.error);
    }
    Ok(ingested.set)
}

/// Namespaces, and what the Config and SyncSets sync, in one snapshot.
async fn load_data(
    client: &kube::Client,
    namespace: Option<&str>,
) -> anyhow::Result<(DataSnapshot, Vec<String>)> {
    let mut data = DataSnapshot::default();
    for ns in list_all(
        client,
        &watch::resource("", "v1", "Namespace", "namespaces"),
    )
    .await?
    {
        data.set_namespace(ns);
    }
    let Some(namespace) = namespace else {
        return Ok((data, Vec::new()));
    };
    let configs: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        namespace,
        &watch::resource("config.gatekeeper.sh", "v1alpha1", "Config", "configs"),
    );
    let config = configs
        .get_opt(CONFIG_NAME)
        .await
        .ok()
        .flatten()
        .and_then(|c| serde_json::to_value(c).ok());
    let syncsets = list_all(
        client,
        &watch::resource("syncset.gatekeeper.sh", "v1alpha1", "SyncSet", "syncsets"),
    )
    .await
    .unwrap_or_default();
    let plan = SyncPlan::of(config.as_ref(), syncsets.iter());
    for gvk in &plan.kinds {
        let wanted = kube::core::GroupVersionKind::gvk(&gvk.group, &gvk.version, &gvk.kind);
        let (resource, _) = kube::discovery::pinned_kind(client, &wanted)
            .await
            .with_context(|| format!("the Config syncs {}, which is not served", gvk.kind))?;
        for object in list_all(client, &resource).await? {
            let ns = tollgate_engine::gatekeeper::object_namespace(&object);
            if !plan
                .sync_excluded
                .iter()
                .any(|p| tollgate_engine::matching::wildcard_matches(p, ns))
            {
                let _ = data.sync(object);
            }
        }
    }
    Ok((data, plan.audit_excluded))
}

async fn audit(args: AuditArgs) -> anyhow::Result<ExitCode> {
    let client = crate::cluster::client().await?;
    let started = Instant::now();
    let timestamp = audit::rfc3339(SystemTime::now());
    let set = Arc::new(load_policies(&client, args.evaluator).await?);
    let (data, excluded) = load_data(&client, args.namespace.as_deref()).await?;
    let terminal = std::io::stderr().is_terminal();
    let mut progress = |resource: &ApiResource, objects: usize| {
        if terminal {
            eprint!(
                "\r\x1b[Kauditing {}/{} ({objects} objects so far)",
                resource.api_version, resource.plural
            );
        }
    };
    let collected = audit::collect(
        &client,
        Arc::clone(&set),
        Arc::new(data),
        &excluded,
        args.chunk_size,
        args.match_kind_only,
        usize::MAX,
        &mut progress,
        &CancellationToken::new(),
    )
    .await?;
    if terminal {
        eprint!("\r\x1b[K");
    }
    if args.write_status {
        let config = ClusterConfig {
            namespace: args.namespace.clone().unwrap_or_default(),
            pod_name: "audit-cli".into(),
            sync_managed_fields: false,
            audit: audit::AuditSettings {
                interval: Duration::ZERO,
                chunk_size: args.chunk_size,
                violations_limit: args.constraint_violations_limit,
                match_kind_only: args.match_kind_only,
                policy_reports: false,
            },
        };
        audit::write_status(
            &client,
            &config,
            &set,
            &collected.results,
            args.constraint_violations_limit,
            &timestamp,
        )
        .await;
    }
    let constraints = audit::constraint_actions(&set);
    for unlisted in &collected.unlisted {
        eprintln!("warning: not audited: {unlisted}");
    }
    let found = Found {
        constraints: &constraints,
        results: &collected.results,
        objects: collected.objects,
        timestamp: &timestamp,
        started,
    };
    Ok(found.print(args.format))
}

/// `audit -f`: the files' objects, reviewed as `eval` reviews them.
fn audit_from_files(args: AuditArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let timestamp = audit::rfc3339(SystemTime::now());
    let audited = audit_files(AuditFiles {
        files: args.files,
        recursive: args.recursive,
        policies: args.policies,
        no_expand: args.no_expand,
        evaluator: args.evaluator,
        jobs: args.jobs,
    })?;
    let found = Found {
        constraints: &audited.constraints,
        results: &audited.results,
        objects: audited.objects,
        timestamp: &timestamp,
        started,
    };
    Ok(found.print(args.format))
}

/// What a pass found, from a cluster or files, ready to print.
struct Found<'a> {
    /// Every constraint: kind, name and enforcement action.
    constraints: &'a [(String, String, String)],
    results: &'a PassResults,
    objects: usize,
    timestamp: &'a str,
    started: Instant,
}

impl Found<'_> {
    /// Prints the report on standard output and the count on standard error; exit 1 on a
    /// `deny` violation.
    fn print(&self, format: AuditFormat) -> ExitCode {
        let report = Report::new(self.constraints, self.results);
        let text = match format {
            AuditFormat::Human => report.human(),
            AuditFormat::Json => report.json(self.timestamp, self.objects),
            AuditFormat::Junit => report.junit(),
        };
        print!("{text}");
        let by_action = audit::violations_by_action(self.results);
        let count = |a: &str| by_action.get(a).copied().unwrap_or(0);
        eprintln!(
            "audited {} objects against {} constraints in {:.1}s: {} violations ({} deny, {} warn, {} dryrun)",
            self.objects,
            self.constraints.len(),
            self.started.elapsed().as_secs_f64(),
            by_action.values().sum::<i64>(),
            count("deny"),
            count("warn"),
            count("dryrun"),
        );
        if report.denies() {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        }
    }
}

/// One constraint's results as printed.
#[derive(Debug)]
struct ConstraintReport {
    kind: String,
    name: String,
    action: String,
    total: u64,
    violations: Vec<Value>,
}

/// What the pass found, per constraint, in the set's order.
#[derive(Debug)]
pub struct Report(Vec<ConstraintReport>);

impl Report {
    /// Every constraint (kind, name, action) with its violations (all of them, Gatekeeper's
    /// order).
    pub fn new(constraints: &[(String, String, String)], results: &PassResults) -> Report {
        let mut by_constraint: BTreeMap<(String, String), ConstraintReport> = BTreeMap::new();
        for (kind, name, action) in constraints {
            let key = (kind.clone(), name.clone());
            let r = results.get(&key);
            by_constraint.insert(
                key,
                ConstraintReport {
                    kind: kind.clone(),
                    name: name.clone(),
                    action: action.clone(),
                    total: r.map_or(0, |r| r.total),
                    violations: r.map(|r| r.sorted()).unwrap_or_default(),
                },
            );
        }
        Report(by_constraint.into_values().collect())
    }

    /// True when a violation's action is `deny` (directly, or at the audit point of a scoped
    /// constraint).
    pub fn denies(&self) -> bool {
        self.0.iter().any(|c| {
            c.violations.iter().any(|v| {
                v["enforcementAction"] == "deny"
                    || v["enforcementActions"]
                        .as_array()
                        .is_some_and(|a| a.iter().any(|x| x == "deny"))
            })
        })
    }

    /// `[<constraint>] <Kind> <namespace>/<name>: <message>` lines, per constraint with
    /// violations, after a header with its kind, action and count.
    pub fn human(&self) -> String {
        let mut out = String::new();
        for c in self.0.iter().filter(|c| c.total > 0) {
            out.push_str(&format!(
                "{}/{} ({}): {} violation{}\n",
                c.kind,
                c.name,
                c.action,
                c.total,
                if c.total == 1 { "" } else { "s" }
            ));
            for v in &c.violations {
                let at = match v["namespace"].as_str() {
                    Some(ns) => format!("{ns}/{}", v["name"].as_str().unwrap_or("")),
                    None => v["name"].as_str().unwrap_or("").to_string(),
                };
                out.push_str(&format!(
                    "  [{}] {} {at}: {}\n",
                    c.name,
                    v["kind"].as_str().unwrap_or(""),
                    v["message"].as_str().unwrap_or("")
                ));
            }
        }
        out
    }

    /// `{"auditTimestamp", "objects", "constraints": [...]}`, each constraint as its status
    /// would hold it but uncapped.
    pub fn json(&self, timestamp: &str, objects: usize) -> String {
        let constraints: Vec<Value> = self
            .0
            .iter()
            .map(|c| {
                json!({
                    "kind": c.kind,
                    "name": c.name,
                    "enforcementAction": c.action,
                    "totalViolations": c.total,
                    "violations": c.violations,
                })
            })
            .collect();
        let doc =
            json!({"auditTimestamp": timestamp, "objects": objects, "constraints": constraints});
        serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
    }

    /// JUnit XML: one test case per constraint; a constraint with `deny` violations fails, others
    /// list what they found in `system-out`.
    pub fn junit(&self) -> String {
        use tollgate_engine::harness::printer::xml_escape;
        let failures = self
            .0
            .iter()
            .filter(|c| c.action == "deny" && c.total > 0)
            .count();
        let mut out = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"tollgate audit\" tests=\"{}\" failures=\"{failures}\">\n  <testsuite name=\"audit\" tests=\"{}\" failures=\"{failures}\">\n",
            self.0.len(),
            self.0.len()
        );
        for c in &self.0 {
            let lines: Vec<String> = c
                .violations
                .iter()
                .map(|v| {
                    format!(
                        "{} {}{}: {}",
                        v["kind"].as_str().unwrap_or(""),
                        v["namespace"]
                            .as_str()
                            .map(|ns| format!("{ns}/"))
                            .unwrap_or_default(),
                        v["name"].as_str().unwrap_or(""),
                        v["message"].as_str().unwrap_or("")
                    )
                })
                .collect();
            out.push_str(&format!(
                "    <testcase classname=\"{}\" name=\"{}\">\n",
                xml_escape(&c.kind),
                xml_escape(&c.name)
            ));
            if c.action == "deny" && c.total > 0 {
                out.push_str(&format!(
                    "      <failure message=\"{} violation(s)\">{}</failure>\n",
                    c.total,
                    xml_escape(&lines.join("\n"))
                ));
            } else if c.total > 0 {
                out.push_str(&format!(
                    "      <system-out>{} ({}): {}</system-out>\n",
                    c.total,
                    xml_escape(&c.action),
                    xml_escape(&lines.join("\n"))
                ));
            }
            out.push_str("    </testcase>\n");
        }
        out.push_str("  </testsuite>\n</testsuites>\n");
        out
    }
}
