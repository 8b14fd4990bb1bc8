//! One replica, the holder of a `coordination.k8s.io/v1` Lease in tollgate's namespace, folds
//! every replica's status objects into the templates' and constraints' `status`: `byPod` (the
//! pod statuses for the object's current uid, sorted by pod) and, for templates, `created`
//! (true when at least one pod reports no error), as Gatekeeper's status controllers do.
//! `byPod` is an atomic list, so a single writer is what keeps replicas from overwriting each
//! other.
//!
//! The fold is level-triggered: each round lists the status objects and the policies and writes
//! only the statuses that differ, so a converged cluster sees no writes and a new leader
//! repairs whatever the last one left.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::core::DynamicObject;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::status::{
    CONSTRAINT_KIND_LABEL, CONSTRAINT_NAME_LABEL, NOTE_CODES, TEMPLATE_LABEL,
    constraint_status_resource, field_manager, template_status_resource,
};
use super::{ClusterConfig, crd, policies::template_kind, watch as watched};

/// The Lease's name.
pub const LEASE: &str = "tollgate-status";
/// How long a Lease lasts without renewal.
const LEASE_SECONDS: i32 = 15;
/// How often the holder renews and folds, and others check the Lease.
const ROUND: Duration = Duration::from_secs(3);
/// A holder that has not renewed for this long stops leading: two rounds before the Lease
/// expires, so it has stopped writing before another replica may take the Lease.
const RENEW_DEADLINE: Duration = Duration::from_secs(LEASE_SECONDS as u64 - 2 * 3);

/// Tries to hold the Lease and, while holding it, folds status each round, until `shutdown`;
/// then waits for `writers` (the tasks that write as the leader, which stop at `shutdown`) and
/// gives the Lease up so another replica takes over at once, never while one of them writes.
pub async fn run(
    client: kube::Client,
    config: ClusterConfig,
    leading_now: tokio::sync::watch::Sender<bool>,
    writers: Vec<tokio::task::JoinHandle<()>>,
    shutdown: CancellationToken,
) {
    let leases: Api<Lease> = Api::namespaced(client.clone(), &config.namespace);
    let mut leading = false;
    let mut renewed = tokio::time::Instant::now();
    let mut ticks = tokio::time::interval(ROUND);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = ticks.tick() => {}
        }
        match hold(&leases, &config.pod_name).await {
            Ok(now) => {
                if now {
                    renewed = tokio::time::Instant::now();
                }
                if now != leading {
                    tracing::info!(
                        lease = LEASE,
                        leader = now,
                        "status leadership {}",
                        if now { "taken" } else { "lost" }
                    );
                }
                leading = now;
                leading_now.send_replace(now);
            }
            Err(e) => {
                tracing::warn!(error = %e, lease = LEASE, "cannot read or renew the Lease");
                // Step down before the Lease can expire and another replica take it, as
                // client-go's renew deadline does: two leaders must never write at once.
                if leading && renewed.elapsed() >= RENEW_DEADLINE {
                    tracing::info!(
                        lease = LEASE,
                        leader = false,
                        "status leadership lost: not renewed in time"
                    );
                    leading = false;
                    leading_now.send_replace(false);
                }
                continue;
            }
        }
        if leading && let Err(e) = fold(&client, &config).await {
            tracing::warn!(error = %e, "cannot fold status; retrying next round");
        }
    }
    for writer in writers {
        let _ = writer.await;
    }
    if leading {
        release(&leases, &config.pod_name).await;
    }
}

fn now() -> MicroTime {
    MicroTime(k8s_openapi::chrono::Utc::now())
}

/// Takes or renews the Lease; true when this replica holds it afterwards. A write conflict
/// (another replica won the race) is "not holding".
async fn hold(leases: &Api<Lease>, me: &str) -> Result<bool, kube::Error> {
    let Some(mut lease) = leases.get_opt(LEASE).await? else {
        let lease: Lease = serde_json::from_value(json!({
            "metadata": {"name": LEASE},
            "spec": {
                "holderIdentity": me,
                "leaseDurationSeconds": LEASE_SECONDS,
                "acquireTime": now(),
                "renewTime": now(),
                "leaseTransitions": 0,
            },
        }))
        .map_err(kube::Error::SerdeError)?;
        return match leases.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        };
    };
    let spec = lease.spec.get_or_insert_default();
    let holder = spec.holder_identity.clone().unwrap_or_default();
    let expired = match (&spec.renew_time, spec.lease_duration_seconds) {
        (Some(renewed), Some(seconds)) => {
            renewed.0 + k8s_openapi::chrono::Duration::seconds(i64::from(seconds))
                < k8s_openapi::chrono::Utc::now()
        }
        _ => true,
    };
    if holder != me && !holder.is_empty() && !expired {
        return Ok(false);
    }
    if holder != me {
        spec.holder_identity = Some(me.to_string());
        spec.acquire_time = Some(now());
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        spec.lease_duration_seconds = Some(LEASE_SECONDS);
    }
    spec.renew_time = Some(now());
    // The resourceVersion read above makes this a compare-and-swap.
    match leases.replace(LEASE, &PostParams::default(), &lease).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Gives the Lease up (holder cleared) so the next replica need not wait for it to expire.
async fn release(leases: &Api<Lease>, me: &str) {
    let Ok(Some(mut lease)) = leases.get_opt(LEASE).await else {
        return;
    };
    let spec = lease.spec.get_or_insert_default();
    if spec.holder_identity.as_deref() != Some(me) {
        return;
    }
    spec.holder_identity = None;
    spec.renew_time = None;
    spec.acquire_time = None;
    match leases.replace(LEASE, &PostParams::default(), &lease).await {
        Ok(_) => tracing::info!(lease = LEASE, "status leadership given up"),
        Err(e) => tracing::warn!(error = %e, lease = LEASE, "cannot give up the Lease"),
    }
}

fn label<'a>(object: &'a DynamicObject, key: &str) -> Option<&'a str> {
    object
        .metadata
        .labels
        .as_ref()?
        .get(key)
        .map(String::as_str)
}

/// The `byPod` list for an object with `uid`, from status objects already grouped for it.
fn by_pod(statuses: &[&DynamicObject], uid_field: &str, uid: Option<&str>) -> Vec<Value> {
    let mut entries: Vec<Value> = statuses
        .iter()
        .filter_map(|s| s.data.get("status"))
        .filter(|s| s.get(uid_field).and_then(Value::as_str) == uid)
        .cloned()
        .collect();
    entries.sort_by(|a, b| {
        let id = |v: &Value| {
            v.get("id")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        id(a).cmp(&id(b))
    });
    entries
}

/// One round: every template's and constraint's status from the pod status objects.
async fn fold(client: &kube::Client, config: &ClusterConfig) -> Result<(), kube::Error> {
    let params = PatchParams {
        field_manager: Some(field_manager(config)),
        ..PatchParams::default()
    };
    let template_statuses: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &config.namespace,
        &template_status_resource(),
    );
    let constraint_statuses: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &config.namespace,
        &constraint_status_resource(),
    );
    let all = ListParams::default();
    let template_statuses = template_statuses.list(&all).await?.items;
    let constraint_statuses = constraint_statuses.list(&all).await?.items;
    let templates_api: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &watched::resource(
            "templates.gatekeeper.sh",
            "v1beta1",
            "ConstraintTemplate",
            "constrainttemplates",
        ),
    );
    let templates = templates_api.list(&all).await?.items;

    let mut by_template: BTreeMap<&str, Vec<&DynamicObject>> = BTreeMap::new();
    for s in &template_statuses {
        if let Some(t) = label(s, TEMPLATE_LABEL) {
            by_template.entry(t).or_default().push(s);
        }
    }
    let mut by_constraint: BTreeMap<(&str, &str), Vec<&DynamicObject>> = BTreeMap::new();
    for s in &constraint_statuses {
        if let (Some(k), Some(n)) = (
            label(s, CONSTRAINT_KIND_LABEL),
            label(s, CONSTRAINT_NAME_LABEL),
        ) {
            by_constraint.entry((k, n)).or_default().push(s);
        }
    }

    for template in &templates {
        let name = template.metadata.name.as_deref().unwrap_or_default();
        let statuses = by_template.get(name).map(Vec::as_slice).unwrap_or_default();
        let entries = by_pod(statuses, "templateUID", template.metadata.uid.as_deref());
        // Gatekeeper: created when one pod reports no error. Overriding a local template is
        // tollgate's note, not an error.
        let created = entries.iter().any(|e| {
            e.get("errors")
                .and_then(Value::as_array)
                .is_none_or(|errors| {
                    errors
                        .iter()
                        .all(|e| NOTE_CODES.iter().any(|code| e["code"] == *code))
                })
        });
        let current = template.data.get("status");
        let want_by_pod = json!(entries);
        if current.and_then(|s| s.get("byPod")).unwrap_or(&json!([])) != &want_by_pod
            || current.and_then(|s| s.get("created")) != Some(&json!(created))
        {
            let patch = json!({"status": {"byPod": want_by_pod, "created": created}});
            templates_api
                .patch_status(name, &params, &Patch::Merge(&patch))
                .await?;
        }

        // The template's constraints, when its CRD serves them.
        let template_value = serde_json::to_value(template).unwrap_or_default();
        let Some(kind) = template_kind(&template_value) else {
            continue;
        };
        let resource = watched::resource(crd::GROUP, "v1beta1", kind, &kind.to_lowercase());
        let constraints_api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        let constraints = match constraints_api.list(&all).await {
            Ok(list) => list.items,
            // No CRD (yet): nothing to fold.
            Err(kube::Error::Api(e)) if e.code == 404 => continue,
            Err(e) => return Err(e),
        };
        for constraint in &constraints {
            let cname = constraint.metadata.name.as_deref().unwrap_or_default();
            let statuses = by_constraint
                .get(&(kind, cname))
                .map(Vec::as_slice)
                .unwrap_or_default();
            let entries = json!(by_pod(
                statuses,
                "constraintUID",
                constraint.metadata.uid.as_deref()
            ));
            let current = constraint
                .data
                .get("status")
                .and_then(|s| s.get("byPod"))
                .unwrap_or(&json!([]))
                .clone();
            if current != entries {
                let patch = json!({"status": {"byPod": entries}});
                constraints_api
                    .patch_status(cname, &params, &Patch::Merge(&patch))
                    .await?;
            }
        }
    }
    Ok(())
}
