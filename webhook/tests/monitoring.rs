//! The chart's monitoring assets against what tollgate exports: every metric an alerting rule
//! (charts/tollgate/templates/prometheusrule.yaml, rendered with helm) or a Grafana dashboard query
//! (charts/tollgate/dashboards/tollgate.json) names must be one a running tollgate serves on
//! `/metrics`, and every label such a query selects on or groups by must be one of that metric's
//! labels or one Prometheus adds to each target. A renamed metric, a typo or a `_total` too many
//! or too few fails here instead of leaving an alert that never fires or an empty panel.
//!
//! Prometheus only shows a labelled family once it has a sample (prometheus-client leaves an
//! empty family out entirely, `# HELP` and `# TYPE` included), so the server under test first
//! answers an allowed, a denied and a malformed review, with a template that does not compile
//! beside the embedded pack.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests assert by unwrapping

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use regex::Regex;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tollgate::serve::metrics::{AuditViolationLabels, Metrics};
use tollgate::serve::server::Server;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Labels Prometheus puts on every series of a target the ServiceMonitor scrapes (the `endpoints`
/// role and the operator's relabelling), and `le` of histogram buckets.
const TARGET_LABELS: [&str; 8] = [
    "job",
    "namespace",
    "pod",
    "instance",
    "service",
    "endpoint",
    "container",
    "le",
];

/// Sample names and the labels seen on each, from a text exposition.
#[derive(Debug, Default)]
struct Exported {
    samples: BTreeMap<String, BTreeSet<String>>,
}

impl Exported {
    fn read(&mut self, text: &str) {
        let sample = Regex::new(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? ").unwrap();
        let label = Regex::new(r#"([a-zA-Z_][a-zA-Z0-9_]*)="(?:[^"\\]|\\.)*""#).unwrap();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some(c) = sample.captures(line) else {
                continue;
            };
            let labels = self.samples.entry(c[1].to_string()).or_default();
            if let Some(set) = c.get(2) {
                labels.extend(label.captures_iter(set.as_str()).map(|l| l[1].to_string()));
            }
        }
    }
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn review(pod: Value) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "name": pod["metadata"]["name"],
            "namespace": pod["metadata"]["namespace"],
            "operation": "CREATE",
            "userInfo": {"username": "alice", "groups": ["system:authenticated"]},
            "object": pod,
            "dryRun": false
        }
    })
}

fn pod(runtime_class: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "logistics-tracker", "namespace": "logistics"},
        "spec": {
            "runtimeClassName": runtime_class,
            "nodeSelector": {"node-type": "edge"},
            "containers": [{
                "name": "logistics-tracker",
                "image": "registry.example.com/logistics-tracker:1.4.2",
                "resources": {
                    "requests": {"cpu": "200m", "memory": "256Mi"},
                    "limits": {"cpu": "1000m", "memory": "1Gi"}
                }
            }]
        }
    })
}

/// What a running tollgate (file mode, the embedded pack plus a template that does not compile)
/// serves on `/metrics` once it has answered an allowed, a denied and a malformed review.
async fn served_by_a_running_tollgate() -> String {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    write(
        &policies.join("broken-template.yaml"),
        "apiVersion: templates.gatekeeper.sh/v1\nkind: ConstraintTemplate\nmetadata:\n  name: k8sbroken\nspec:\n  crd:\n    spec:\n      names:\n        kind: K8sBroken\n  targets:\n  - target: admission.k8s.gatekeeper.sh\n    rego: |\n      package k8sbroken\n      violation[{\"msg\": msg}] {\n        msg := \"unterminated\n      }\n",
    );
    let mut config = common::loopback_config(dir.path());
    config.policies = vec![policies];
    config.with_embedded_pack = true;
    let server = Server::bind(config).await.unwrap();
    let https = server.https_addr().unwrap();
    let probes = server.probe_addr().unwrap();
    let ca = server.dev_ca_pem().unwrap().to_string();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(server.run(shutdown.clone()));
    let probe = |path: &'static str| async move {
        let resp = reqwest::get(format!("http://{probes}{path}"))
            .await
            .unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    };
    let mut ready = false;
    for _ in 0..250 {
        if probe("/readyz").await.0 == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ready, "tollgate never became ready");
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca.as_bytes()).unwrap()])
        .build()
        .unwrap();
    let admit = |body: Vec<u8>| {
        let client = client.clone();
        async move {
            let resp = client
                .post(format!("https://localhost:{}/v1/admit", https.port()))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            (resp.status().as_u16(), resp.text().await.unwrap())
        }
    };
    let (_, allowed) = admit(serde_json::to_vec(&review(pod("wasmedge"))).unwrap()).await;
    assert!(allowed.contains("\"allowed\":true"), "{allowed}");
    let (_, denied) = admit(serde_json::to_vec(&review(pod("runc"))).unwrap()).await;
    assert!(denied.contains("\"allowed\":false"), "{denied}");
    let (_, malformed) =
        admit(br#"{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}"#.to_vec())
            .await;
    assert!(malformed.contains("request: missing"), "{malformed}");
    let (status, text) = probe("/metrics").await;
    assert_eq!(status, 200, "{text}");
    for needle in [
        "gatekeeper_validation_request_count_total{admission_status=\"error\"",
        "gatekeeper_constraint_templates{status=\"error\"} 1",
        "tollgate_violations_total{",
    ] {
        assert!(text.contains(needle), "{needle} not in:\n{text}");
    }
    shutdown.cancel();
    task.await.unwrap().unwrap();
    text
}

/// Families whose samples come only from events a file-mode server in a test does not meet: a
/// failed watch of the API server and a certificate reload (cluster mode, a kubelet rotating the
/// Secret), the audit's violation counts (the replica holding the status Lease, after a pass).
/// Recorded here through the same `Metrics` the server registers, so their names are still the
/// product's own.
fn served_after_cluster_events() -> String {
    let metrics = Metrics::new();
    metrics.watch_restarted("namespaces");
    Metrics::reload(&metrics.tls_reloads, true);
    metrics
        .audit_violations
        .get_or_create(&AuditViolationLabels {
            enforcement_action: "deny".into(),
        })
        .set(1);
    metrics.audit_duration.observe(1.0);
    metrics.audit_last_run.set(1.0);
    metrics.encode()
}

/// The pinned helm, as `webhook/tests/chart.rs` finds it.
fn helm() -> Option<PathBuf> {
    let from_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("helm"))
            .find(|p| p.is_file())
    });
    let cached = std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".cache/tollgate-tools/bin/helm"))
        .filter(|p| p.is_file());
    let found = from_path.or(cached);
    if found.is_none() && std::env::var_os("TOLLGATE_REQUIRE_ORACLES").is_some() {
        panic!("helm is required (TOLLGATE_REQUIRE_ORACLES): run tests/e2e/install-tools.sh");
    }
    found
}

/// A query and where it comes from.
struct Query {
    at: String,
    expr: String,
}

/// The alert expressions of the chart rendered with `tests/e2e/values/full.yaml` (cluster mode
/// with the audit: every alert), and the dashboard that render ships.
fn rendered_queries(helm: &Path) -> (Vec<Query>, Value) {
    let out = Command::new(helm)
        .current_dir(root())
        .args([
            "template",
            "tollgate",
            "charts/tollgate",
            "--namespace",
            "tollgate-system",
            "--values",
            "tests/e2e/values/full.yaml",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let docs = tollgate_engine::document::parse_stream("helm template", &text).unwrap();
    let mut rules = Vec::new();
    let mut dashboard = None;
    for doc in docs {
        match doc.value["kind"].as_str() {
            Some("PrometheusRule") => {
                for group in doc.value["spec"]["groups"].as_array().unwrap() {
                    for rule in group["rules"].as_array().unwrap() {
                        rules.push(Query {
                            at: format!("alert {}", rule["alert"].as_str().unwrap()),
                            expr: rule["expr"].as_str().unwrap().to_string(),
                        });
                    }
                }
            }
            Some("ConfigMap") if doc.value["data"]["tollgate.json"].is_string() => {
                dashboard = Some(
                    serde_json::from_str(doc.value["data"]["tollgate.json"].as_str().unwrap())
                        .unwrap(),
                );
            }
            _ => {}
        }
    }
    assert!(rules.len() >= 9, "the full values render every alert");
    (
        rules,
        dashboard.expect("the full values render the dashboard"),
    )
}

fn dashboard_queries(dashboard: &Value) -> Vec<Query> {
    let mut out = Vec::new();
    fn walk(panels: &Value, out: &mut Vec<Query>) {
        for panel in panels.as_array().into_iter().flatten() {
            for target in panel["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = target["expr"].as_str() {
                    out.push(Query {
                        at: format!(
                            "panel {:?} query {}",
                            panel["title"].as_str().unwrap_or_default(),
                            target["refId"].as_str().unwrap_or_default()
                        ),
                        expr: expr.to_string(),
                    });
                }
            }
            walk(&panel["panels"], out);
        }
    }
    walk(&dashboard["panels"], &mut out);
    for variable in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let Some(query) = variable["query"]["query"].as_str() {
            out.push(Query {
                at: format!("variable {}", variable["name"].as_str().unwrap_or_default()),
                expr: query.to_string(),
            });
        }
    }
    out
}

/// A metric and the labels one query names for it.
#[derive(Debug, Default, PartialEq)]
struct Named {
    /// Metric names (`gatekeeper_*`, `tollgate_*`), with the label names each selector matches on.
    metrics: BTreeMap<String, BTreeSet<String>>,
    /// Labels of `by (...)`/`without (...)` clauses and of Grafana's `label_values(_, label)`.
    grouping: BTreeSet<String>,
}

/// The metric and label names a PromQL query (or Grafana variable query) names. String literals
/// (label values, Grafana's `$namespace` among them) are blanked first, so only identifiers count.
fn names_in(expr: &str) -> Named {
    let strings = Regex::new(r#""(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`"#).unwrap();
    let bare = strings.replace_all(expr, "\"\"");
    let metric =
        Regex::new(r"(?:^|[^a-zA-Z0-9_:])((?:gatekeeper|tollgate)_[a-zA-Z0-9_:]*)\s*(\{[^}]*\})?")
            .unwrap();
    let matcher = Regex::new(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)").unwrap();
    let grouping = Regex::new(r"\b(?:by|without)\s*\(([^)]*)\)").unwrap();
    let label_values = Regex::new(r",\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*$").unwrap();
    let mut named = Named::default();
    for c in metric.captures_iter(&bare) {
        let labels = named.metrics.entry(c[1].to_string()).or_default();
        if let Some(selector) = c.get(2) {
            labels.extend(
                matcher
                    .captures_iter(selector.as_str())
                    .map(|m| m[1].to_string()),
            );
        }
    }
    for c in grouping.captures_iter(&bare) {
        named.grouping.extend(
            c[1].split(',')
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from),
        );
    }
    if bare.trim_start().starts_with("label_values(")
        && let Some(c) = label_values.captures(&bare)
    {
        named.grouping.insert(c[1].to_string());
    }
    named
}

#[test]
fn names_in_reads_metrics_selectors_and_grouping() {
    let named = names_in(
        r#"sum by (namespace, job) (rate(gatekeeper_validation_request_count_total{job="tollgate_x",admission_status="error"}[5m])) / on() tollgate_policy_problems"#,
    );
    assert_eq!(
        named.metrics,
        BTreeMap::from([
            (
                "gatekeeper_validation_request_count_total".to_string(),
                BTreeSet::from(["admission_status".to_string(), "job".to_string()])
            ),
            ("tollgate_policy_problems".to_string(), BTreeSet::new()),
        ]),
        "a name inside a label value is not a metric"
    );
    assert_eq!(
        named.grouping,
        BTreeSet::from(["namespace".to_string(), "job".to_string()])
    );
    let variable =
        names_in(r#"label_values(tollgate_policy_reloads_total{namespace="$namespace"}, job)"#);
    assert!(
        variable
            .metrics
            .contains_key("tollgate_policy_reloads_total")
    );
    assert_eq!(variable.grouping, BTreeSet::from(["job".to_string()]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_and_dashboard_name_only_metrics_tollgate_exports() {
    let mut exported = Exported::default();
    exported.read(&served_by_a_running_tollgate().await);
    exported.read(&served_after_cluster_events());

    let file: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("charts/tollgate/dashboards/tollgate.json")).unwrap(),
    )
    .unwrap();
    let mut queries = dashboard_queries(&file);
    match helm() {
        Some(helm) => {
            let (rules, rendered) = rendered_queries(&helm);
            assert_eq!(
                rendered, file,
                "the chart ships dashboards/tollgate.json unchanged"
            );
            queries.extend(rules);
        }
        None => eprintln!("helm not installed: alert expressions not checked (CI installs it)"),
    }
    assert!(queries.len() > 20, "{} queries", queries.len());

    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for q in &queries {
        let named = names_in(&q.expr);
        if named.metrics.is_empty() && !q.expr.contains("up{") {
            problems.push(format!("{}: names no metric: {}", q.at, q.expr));
        }
        let mut labels_here: BTreeSet<&str> = TARGET_LABELS.into_iter().collect();
        for (metric, selected) in &named.metrics {
            seen.insert(metric.clone());
            let Some(labels) = exported.samples.get(metric) else {
                problems.push(format!(
                    "{}: {metric} is not a metric tollgate exports: {}",
                    q.at, q.expr
                ));
                continue;
            };
            labels_here.extend(labels.iter().map(String::as_str));
            for label in selected {
                if !labels.contains(label) && !TARGET_LABELS.contains(&label.as_str()) {
                    problems.push(format!(
                        "{}: {metric} has no label {label} (it has {labels:?})",
                        q.at
                    ));
                }
            }
        }
        for label in &named.grouping {
            if !labels_here.contains(label.as_str()) {
                problems.push(format!(
                    "{}: groups by {label}, which no metric of the query has: {}",
                    q.at, q.expr
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{}\n\nexported: {:?}",
        problems.join("\n"),
        exported.samples.keys().collect::<Vec<_>>()
    );
    // The assets cover the metrics an operator needs (the issue's list).
    for needed in [
        "gatekeeper_validation_request_count_total",
        "gatekeeper_validation_request_duration_seconds_bucket",
        "gatekeeper_constraint_templates",
        "gatekeeper_constraints",
        "gatekeeper_constraint_template_ingestion_count_total",
        "tollgate_violations_total",
        "tollgate_policy_problems",
        "tollgate_watch_restarts_total",
        "gatekeeper_audit_last_run_time",
        "gatekeeper_audit_duration_seconds_bucket",
        "gatekeeper_violations",
    ] {
        assert!(seen.contains(needed), "no alert or panel uses {needed}");
    }
    eprintln!(
        "{} queries name {} metrics, every one exported: {:?}",
        queries.len(),
        seen.len(),
        seen
    );
}
