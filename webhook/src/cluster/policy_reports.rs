//! The audit's results as `wgpolicyk8s.io/v1alpha2` PolicyReports (namespaced objects) and
//! ClusterPolicyReports (cluster-scoped ones), the format Kyverno and Kubewarden write and
//! Policy Reporter reads. Complete where a constraint's status is capped: one report per
//! namespace and constraint, split into parts so each object stays well under etcd's 1 MiB.
//! Reports of earlier passes that no longer have results are deleted.

use std::collections::{BTreeMap, BTreeSet};

use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::core::DynamicObject;
use serde_json::{Value, json};

use super::audit::PassResults;
use super::watch as watched;

/// Label on every report tollgate writes (and the only ones it deletes).
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by=tollgate";
/// Bytes of results per report object: etcd refuses objects over 1.5 MiB and the API server
/// requests over 3 MiB; Policy Reporter users expect reports under 1 MiB.
const REPORT_BYTES: usize = 768 * 1024;

fn result_of(action: &str) -> &'static str {
    match action {
        "deny" => "fail",
        // warn and dryrun admit; the report keeps the action in its properties.
        _ => "warn",
    }
}

/// The reports of one pass, by (namespace, name); namespace empty for ClusterPolicyReports.
pub fn reports(
    results: &PassResults,
    actions: &BTreeMap<(String, String), String>,
    seconds: i64,
) -> BTreeMap<(String, String), Value> {
    let mut out = BTreeMap::new();
    for ((kind, name), r) in results {
        let action = actions
            .get(&(kind.clone(), name.clone()))
            .map_or("deny", String::as_str);
        let mut by_namespace: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for v in r.sorted() {
            let namespace = v["namespace"].as_str().unwrap_or("").to_string();
            let api_version = match v["group"].as_str().unwrap_or("") {
                "" => v["version"].as_str().unwrap_or("").to_string(),
                g => format!("{g}/{}", v["version"].as_str().unwrap_or("")),
            };
            let mut resource = json!({
                "apiVersion": api_version,
                "kind": v["kind"],
                "name": v["name"],
            });
            if !namespace.is_empty() {
                resource["namespace"] = json!(namespace);
            }
            let effective = v["enforcementAction"].as_str().unwrap_or(action);
            by_namespace.entry(namespace).or_default().push(json!({
                "policy": name,
                "rule": kind,
                "source": "tollgate",
                "category": "Gatekeeper",
                "result": result_of(effective),
                "scored": true,
                "message": v["message"],
                "timestamp": {"seconds": seconds, "nanos": 0},
                "resources": [resource],
                "properties": {"enforcementAction": effective},
            }));
        }
        for (namespace, items) in by_namespace {
            let base = format!("tollgate-{}-{}", kind.to_lowercase(), name);
            let mut parts: Vec<Vec<Value>> = vec![Vec::new()];
            let mut bytes = 0;
            for item in items {
                let size = item.to_string().len();
                if bytes + size > REPORT_BYTES && !parts.last().is_none_or(Vec::is_empty) {
                    parts.push(Vec::new());
                    bytes = 0;
                }
                bytes += size;
                if let Some(part) = parts.last_mut() {
                    part.push(item);
                }
            }
            for (i, part) in parts.into_iter().enumerate() {
                let report_name = if i == 0 {
                    base.clone()
                } else {
                    format!("{base}-{i}")
                };
                let fails = part.iter().filter(|r| r["result"] == "fail").count();
                let warns = part.len() - fails;
                let kind_name = if namespace.is_empty() {
                    "ClusterPolicyReport"
                } else {
                    "PolicyReport"
                };
                let mut metadata = json!({
                    "name": report_name,
                    "labels": {
                        "app.kubernetes.io/managed-by": "tollgate",
                        "tollgate.dev/constraint-kind": kind,
                        "tollgate.dev/constraint-name": name,
                    },
                });
                if !namespace.is_empty() {
                    metadata["namespace"] = json!(namespace);
                }
                out.insert(
                    (namespace.clone(), report_name),
                    json!({
                        "apiVersion": "wgpolicyk8s.io/v1alpha2",
                        "kind": kind_name,
                        "metadata": metadata,
                        "summary": {"pass": 0, "fail": fails, "warn": warns, "error": 0, "skip": 0},
                        "results": part,
                    }),
                );
            }
        }
    }
    out
}

/// Applies this pass's reports and deletes tollgate's reports that it no longer has.
pub async fn write(
    client: &kube::Client,
    manager: &str,
    reports: &BTreeMap<(String, String), Value>,
) {
    let apply = PatchParams::apply(manager).force();
    let namespaced = watched::resource(
        "wgpolicyk8s.io",
        "v1alpha2",
        "PolicyReport",
        "policyreports",
    );
    let cluster = watched::resource(
        "wgpolicyk8s.io",
        "v1alpha2",
        "ClusterPolicyReport",
        "clusterpolicyreports",
    );
    for ((namespace, name), report) in reports {
        let api: Api<DynamicObject> = if namespace.is_empty() {
            Api::all_with(client.clone(), &cluster)
        } else {
            Api::namespaced_with(client.clone(), namespace, &namespaced)
        };
        if let Err(e) = api.patch(name, &apply, &Patch::Apply(report)).await {
            tracing::warn!(report = %format!("{namespace}/{name}"), error = %e, "cannot write a policy report");
        }
    }
    let wanted: BTreeSet<&(String, String)> = reports.keys().collect();
    for resource in [&namespaced, &cluster] {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), resource);
        let Ok(existing) = api.list(&ListParams::default().labels(MANAGED_BY)).await else {
            continue;
        };
        for report in existing.items {
            let key = (
                report.metadata.namespace.clone().unwrap_or_default(),
                report.metadata.name.clone().unwrap_or_default(),
            );
            if wanted.contains(&key) {
                continue;
            }
            let api: Api<DynamicObject> = if key.0.is_empty() {
                Api::all_with(client.clone(), resource)
            } else {
                Api::namespaced_with(client.clone(), &key.0, resource)
            };
            if let Err(e) = api.delete(&key.1, &DeleteParams::default()).await {
                tracing::warn!(report = %format!("{}/{}", key.0, key.1), error = %e, "cannot delete a stale policy report");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::audit::{ConstraintResults, StatusViolation};

    #[test]
    fn one_report_per_namespace_and_constraint_split_under_the_size_limit() {
        let mut results = PassResults::new();
        let mut r = ConstraintResults::default();
        // 3,000 long messages in one namespace: more than one part.
        for i in 0..3000 {
            r.add(
                StatusViolation::new(
                    "",
                    "v1",
                    "Pod",
                    "team-a",
                    &format!("p{i:05}"),
                    &"m".repeat(250),
                    "deny",
                ),
                usize::MAX,
            );
        }
        r.add(
            StatusViolation::new("", "v1", "Node", "", "n1", "node message", "deny"),
            usize::MAX,
        );
        results.insert(("K8sX".into(), "c".into()), r);
        let reports = reports(&results, &BTreeMap::new(), 1);
        let team_a: Vec<&Value> = reports
            .iter()
            .filter(|((ns, _), _)| ns == "team-a")
            .map(|(_, v)| v)
            .collect();
        assert!(team_a.len() > 1, "split into parts");
        let total: usize = team_a
            .iter()
            .map(|r| r["results"].as_array().unwrap().len())
            .sum();
        assert_eq!(total, 3000, "complete, not capped");
        for r in &team_a {
            assert!(r.to_string().len() < 1024 * 1024);
            assert_eq!(r["kind"], "PolicyReport");
        }
        let cluster = &reports[&(String::new(), "tollgate-k8sx-c".to_string())];
        assert_eq!(cluster["kind"], "ClusterPolicyReport");
        assert_eq!(cluster["summary"]["fail"], 1);
        assert_eq!(
            cluster["results"][0]["resources"][0],
            json!({"apiVersion": "v1", "kind": "Node", "name": "n1"})
        );
    }
}
