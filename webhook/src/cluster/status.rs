//! What this replica reports about the cluster's policies after each publication, in
//! Gatekeeper's shapes: a ConstraintTemplatePodStatus per template and a ConstraintPodStatus
//! per constraint (`status.gatekeeper.sh/v1beta1`, in tollgate's namespace, named and labelled
//! as Gatekeeper names them), and, for each template that compiled, its constraint CRD.
//!
//! Each replica writes only its own objects, with its own field manager; the leader
//! (`leader.rs`) folds them into the templates' and constraints' `status.byPod`. Objects are
//! written only when their content changes, so a converged cluster sees no writes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::core::{ApiResource, DynamicObject};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::policies::{SOURCE, template_kind};
use super::{ClusterConfig, crd, watch as watched};
use crate::serve::publisher::{ObjectProblem, Outcome};
use tollgate_engine::gatekeeper::Gvk;

/// Gatekeeper's status labels (`apis/status/v1beta1/labels.go`).
pub const POD_LABEL: &str = "internal.gatekeeper.sh/pod";
/// The template a status object is about.
pub const TEMPLATE_LABEL: &str = "internal.gatekeeper.sh/constrainttemplate-name";
/// The constraint's name.
pub const CONSTRAINT_NAME_LABEL: &str = "internal.gatekeeper.sh/constraint-name";
/// The constraint's kind.
pub const CONSTRAINT_KIND_LABEL: &str = "internal.gatekeeper.sh/constraint-kind";

/// The code of the note on a cluster template that overrides a file or pack template. It is
/// not a failure: `created` stays true (see `leader.rs`).
pub const SHADOWS_CODE: &str = "overrides_local_template";

/// The code of the note on a template whose `metadata.gatekeeper.sh/requires-sync-data` names
/// data no Config or SyncSet syncs: its referential rules see an empty inventory. A note, not a
/// failure: enforcement, `created` and readiness are unaffected.
pub const MISSING_SYNC_CODE: &str = "requires_sync_data_not_synced";

/// Codes of status entries that inform rather than fail (`created` stays true).
pub const NOTE_CODES: [&str; 2] = [SHADOWS_CODE, MISSING_SYNC_CODE];

/// Gatekeeper's annotation of the data a referential template reads.
const SYNC_ANNOTATION: &str = "metadata.gatekeeper.sh/requires-sync-data";

/// Why a template's `requires-sync-data` is not met by `synced`, if it is not. Gatekeeper's
/// format (`pkg/cachemanager/parser`): a JSON list of equivalence sets, each a list of
/// `{groups, versions, kinds}` clauses; every set needs one of its kinds synced.
pub fn missing_sync_data(template: &Value, synced: &BTreeSet<Gvk>) -> Option<String> {
    let annotation = template
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(SYNC_ANNOTATION))
        .and_then(Value::as_str)?;
    let text = annotation.trim_matches(|c| c == '\n' || c == '"');
    let sets: Vec<Vec<Value>> = match serde_json::from_str(text) {
        Ok(sets) => sets,
        Err(e) => return Some(format!("{SYNC_ANNOTATION} cannot be read: {e}")),
    };
    use super::strings;
    let mut missing = Vec::new();
    for set in sets {
        let mut wanted = Vec::new();
        for clause in &set {
            for group in strings(clause, "groups") {
                for version in strings(clause, "versions") {
                    for kind in strings(clause, "kinds") {
                        wanted.push(Gvk {
                            group: group.clone(),
                            version: version.clone(),
                            kind,
                        });
                    }
                }
            }
        }
        if !wanted.iter().any(|g| synced.contains(g)) {
            let names: Vec<String> = wanted
                .iter()
                .map(|g| format!("{}/{}", g.api_version(), g.kind))
                .collect();
            missing.push(format!("one of [{}]", names.join(", ")));
        }
    }
    (!missing.is_empty()).then(|| {
        format!(
            "the template reads synced data that no Config or SyncSet syncs: {}; its rules see an empty data.inventory for it",
            missing.join(" and ")
        )
    })
}

/// What this replica does, in Gatekeeper's `operations` vocabulary.
const OPERATIONS: [&str; 2] = ["status", "webhook"];

/// ConstraintTemplatePodStatus.
pub fn template_status_resource() -> ApiResource {
    watched::resource(
        "status.gatekeeper.sh",
        "v1beta1",
        "ConstraintTemplatePodStatus",
        "constrainttemplatepodstatuses",
    )
}

/// ConstraintPodStatus.
pub fn constraint_status_resource() -> ApiResource {
    watched::resource(
        "status.gatekeeper.sh",
        "v1beta1",
        "ConstraintPodStatus",
        "constraintpodstatuses",
    )
}

/// Gatekeeper's `DashPacker`: values joined by `-`, their own dashes doubled. `None` for an
/// empty value or one that starts or ends with a dash (Gatekeeper refuses those too).
pub fn dash_pack(values: &[&str]) -> Option<String> {
    if values
        .iter()
        .any(|v| v.is_empty() || v.starts_with('-') || v.ends_with('-'))
    {
        return None;
    }
    Some(
        values
            .iter()
            .map(|v| v.replace('-', "--"))
            .collect::<Vec<_>>()
            .join("-"),
    )
}

/// The field manager of this replica: each writes its own fields.
pub fn field_manager(config: &ClusterConfig) -> String {
    format!("tollgate-{}", config.pod_name)
}

fn errors_of<'a>(problems: impl Iterator<Item = &'a ObjectProblem>) -> Vec<Value> {
    problems
        .map(|p| {
            let mut error = json!({"code": p.code, "message": p.message});
            if let Some(location) = &p.location {
                error["location"] = json!(location);
            }
            error
        })
        .collect()
}

fn meta<'a>(object: &'a Value, field: &str) -> Option<&'a Value> {
    object.get("metadata").and_then(|m| m.get(field))
}

/// The status objects this replica should have after `outcome`, by name, and the CRDs the
/// cluster's templates should have.
#[derive(Debug, Default, PartialEq)]
pub struct Desired {
    /// ConstraintTemplatePodStatus objects.
    pub templates: BTreeMap<String, Value>,
    /// ConstraintPodStatus objects.
    pub constraints: BTreeMap<String, Value>,
    /// Constraint CRDs of templates that compiled, by CRD name, with their owner template.
    pub crds: BTreeMap<String, Value>,
}

/// Computes [`Desired`] from a publication.
pub fn desired(
    outcome: &Outcome,
    config: &ClusterConfig,
    owner: Option<&Value>,
    synced: &BTreeSet<Gvk>,
) -> Desired {
    let mut out = Desired::default();
    let Some((_, snapshot)) = outcome.sources.iter().find(|(name, _)| name == SOURCE) else {
        return out;
    };
    let pod = config.pod_name.as_str();
    let problems_of = |kind: &str, name: &str| -> Vec<&ObjectProblem> {
        outcome
            .problems
            .iter()
            .filter(|p| p.source == SOURCE && p.kind == kind && p.name == name)
            .collect()
    };
    let enforced: BTreeSet<(&str, &str)> = outcome
        .set
        .constraints()
        .iter()
        .map(|c| (c.constraint.kind.as_str(), c.constraint.name.as_str()))
        .collect();
    let object = |kind: &str, name: String, labels: Value, status: Value| {
        let mut object = json!({
            "apiVersion": "status.gatekeeper.sh/v1beta1",
            "kind": kind,
            "metadata": {"name": name, "namespace": config.namespace, "labels": labels},
            "status": status,
        });
        if let Some(owner) = owner {
            object["metadata"]["ownerReferences"] = json!([owner]);
        }
        object
    };
    for doc in &snapshot.documents.templates {
        let template = &doc.value;
        let name = tollgate_engine::gatekeeper::object_name(template);
        let Some(key) = dash_pack(&[pod, name]) else {
            continue;
        };
        let mut errors = errors_of(problems_of("ConstraintTemplate", name).into_iter());
        // A file or pack template of the same name loses to this one: said here too, so the
        // conflict is seen from kubectl as well as in tollgate's log.
        for shadowed in outcome.problems.iter().filter(|p| {
            p.kind == "ConstraintTemplate"
                && p.name == name
                && p.shadowed_by.as_deref() == Some(SOURCE)
        }) {
            errors.push(json!({
                "code": SHADOWS_CODE,
                "message": format!(
                    "{} also defines ConstraintTemplate {name:?} ({}); this one, from the cluster, is enforced instead",
                    shadowed.source, shadowed.origin
                ),
            }));
        }
        match crd::constraint_crd(template) {
            Err(e) => errors.push(json!({"code": "create_error", "message": e.to_string()})),
            Ok(mut crd) if errors.iter().all(|e| e["code"] == SHADOWS_CODE) => {
                crd["metadata"]["ownerReferences"] = json!([{
                    "apiVersion": template.get("apiVersion").cloned().unwrap_or(json!("templates.gatekeeper.sh/v1beta1")),
                    "kind": "ConstraintTemplate",
                    "name": name,
                    "uid": meta(template, "uid").cloned().unwrap_or_default(),
                    "controller": true,
                    "blockOwnerDeletion": true,
                }]);
                let crd_name =
                    crate::cluster::crd::crd_name(template_kind(template).unwrap_or(name));
                out.crds.insert(crd_name, crd);
            }
            // A broken version keeps its last good one, and that one's CRD.
            Ok(_) => {}
        }
        if let Some(message) = missing_sync_data(template, synced) {
            errors.push(json!({"code": MISSING_SYNC_CODE, "message": message}));
        }
        let mut status = json!({
            "id": pod,
            "operations": OPERATIONS,
            "observedGeneration": meta(template, "generation").cloned().unwrap_or(json!(0)),
        });
        if let Some(uid) = meta(template, "uid") {
            status["templateUID"] = uid.clone();
        }
        if !errors.is_empty() {
            status["errors"] = json!(errors);
        }
        out.templates.insert(
            key.clone(),
            object(
                "ConstraintTemplatePodStatus",
                key,
                json!({TEMPLATE_LABEL: name, POD_LABEL: pod}),
                status,
            ),
        );
    }
    for doc in &snapshot.documents.constraints {
        let constraint = &doc.value;
        let kind = constraint
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let name = tollgate_engine::gatekeeper::object_name(constraint);
        let lower = kind.to_lowercase();
        let Some(key) = dash_pack(&[pod, &lower, name]) else {
            continue;
        };
        let errors = errors_of(problems_of(kind, name).into_iter());
        let mut status = json!({
            "id": pod,
            "operations": OPERATIONS,
            "observedGeneration": meta(constraint, "generation").cloned().unwrap_or(json!(0)),
        });
        if let Some(uid) = meta(constraint, "uid") {
            status["constraintUID"] = uid.clone();
        }
        // Gatekeeper omits `enforced: false` (omitempty).
        if errors.is_empty() && enforced.contains(&(kind, name)) {
            status["enforced"] = json!(true);
        }
        if !errors.is_empty() {
            status["errors"] = json!(errors);
        }
        out.constraints.insert(
            key.clone(),
            object(
                "ConstraintPodStatus",
                key,
                json!({
                    CONSTRAINT_NAME_LABEL: name,
                    CONSTRAINT_KIND_LABEL: kind,
                    POD_LABEL: pod,
                    TEMPLATE_LABEL: lower,
                }),
                status,
            ),
        );
    }
    out
}

/// Writes what [`desired`] says after each publication, until `shutdown`.
pub async fn run(
    client: kube::Client,
    config: ClusterConfig,
    mut outcomes: watch::Receiver<Option<Arc<Outcome>>>,
    synced: Arc<arc_swap::ArcSwap<BTreeSet<Gvk>>>,
    shutdown: CancellationToken,
) {
    let manager = field_manager(&config);
    let apply = PatchParams::apply(&manager).force();
    let templates: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &config.namespace,
        &template_status_resource(),
    );
    let constraints: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &config.namespace,
        &constraint_status_resource(),
    );
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(client.clone());
    let owner = pod_owner(&client, &config).await;
    // What was last written (or found at start), so unchanged objects are not written again.
    let mut written: [BTreeMap<String, Value>; 2] = [BTreeMap::new(), BTreeMap::new()];
    let mut written_crds: BTreeMap<String, Value> = BTreeMap::new();
    let mut listed = false;
    let mut retry = tokio::time::interval(std::time::Duration::from_secs(5));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            changed = outcomes.changed() => if changed.is_err() { return },
            // Failed writes are retried: the desired state is recomputed and compared.
            _ = retry.tick() => {}
        }
        let Some(outcome) = outcomes.borrow_and_update().clone() else {
            continue;
        };
        if !listed {
            // Objects left by this pod's earlier life: kept when still right, else replaced
            // or deleted below.
            let selector =
                ListParams::default().labels(&format!("{POD_LABEL}={}", config.pod_name));
            match (
                templates.list(&selector).await,
                constraints.list(&selector).await,
            ) {
                (Ok(t), Ok(c)) => {
                    for (slot, list) in written.iter_mut().zip([t, c]) {
                        for object in list.items {
                            if let (Some(name), Ok(value)) =
                                (object.metadata.name.clone(), serde_json::to_value(&object))
                            {
                                slot.insert(name, comparable(&value));
                            }
                        }
                    }
                    listed = true;
                }
                (Err(e), _) | (_, Err(e)) => {
                    tracing::warn!(error = %e, "cannot list this pod's status objects; retrying");
                    continue;
                }
            }
        }
        let desired = desired(&outcome, &config, owner.as_ref(), &synced.load());
        for (name, crd) in &desired.crds {
            if written_crds.get(name) == Some(crd) {
                continue;
            }
            match crds.patch(name, &apply, &Patch::Apply(crd)).await {
                Ok(_) => {
                    tracing::info!(crd = name, "constraint CRD applied");
                    written_crds.insert(name.clone(), crd.clone());
                }
                Err(e) => {
                    tracing::error!(crd = name, error = %e, "cannot apply the constraint CRD")
                }
            }
        }
        written_crds.retain(|name, _| desired.crds.contains_key(name));
        for ((api, slot), want) in [&templates, &constraints]
            .into_iter()
            .zip(written.iter_mut())
            .zip([&desired.templates, &desired.constraints])
        {
            for (name, object) in want {
                if slot.get(name) == Some(&comparable(object)) {
                    continue;
                }
                match api.patch(name, &apply, &Patch::Apply(object)).await {
                    Ok(_) => {
                        slot.insert(name.clone(), comparable(object));
                    }
                    Err(e) => {
                        tracing::warn!(status = name, error = %e, "cannot write a status object")
                    }
                }
            }
            let stale: Vec<String> = slot
                .keys()
                .filter(|name| !want.contains_key(*name))
                .cloned()
                .collect();
            for name in stale {
                match api.delete(&name, &DeleteParams::default()).await {
                    Ok(_) | Err(kube::Error::Api(kube::core::ErrorResponse { code: 404, .. })) => {
                        slot.remove(&name);
                    }
                    Err(e) => {
                        tracing::warn!(status = name, error = %e, "cannot delete a status object")
                    }
                }
            }
        }
    }
}

/// The parts of a status object this replica sets (what the API server adds is left out).
fn comparable(object: &Value) -> Value {
    json!({
        "labels": meta(object, "labels"),
        "ownerReferences": meta(object, "ownerReferences"),
        "status": object.get("status"),
    })
}

/// This pod as the owner of its status objects, so they go when it goes (as Gatekeeper's do);
/// none when the pod cannot be read (tollgate running outside a pod).
async fn pod_owner(client: &kube::Client, config: &ClusterConfig) -> Option<Value> {
    let pods: Api<k8s_openapi::api::core::v1::Pod> =
        Api::namespaced(client.clone(), &config.namespace);
    match pods.get_opt(&config.pod_name).await {
        Ok(Some(pod)) => Some(json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "name": config.pod_name,
            "uid": pod.metadata.uid?,
        })),
        Ok(None) => {
            tracing::info!(
                pod = config.pod_name,
                "no such pod: status objects get no owner"
            );
            None
        }
        Err(e) => {
            tracing::info!(pod = config.pod_name, error = %e, "cannot read this pod: status objects get no owner");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requires_sync_data_is_read_as_gatekeeper_writes_it() {
        let template = json!({"metadata": {"annotations": {SYNC_ANNOTATION:
            "\"[\n  [\n    {\"groups\": [\"networking.k8s.io\", \"extensions\"], \"versions\": [\"v1\", \"v1beta1\"], \"kinds\": [\"Ingress\"]}\n  ]\n]\"\n"}}});
        let none = BTreeSet::new();
        let missing = missing_sync_data(&template, &none).unwrap();
        assert!(
            missing.contains("networking.k8s.io/v1/Ingress"),
            "{missing}"
        );
        let synced = BTreeSet::from([Gvk {
            group: "extensions".into(),
            version: "v1beta1".into(),
            kind: "Ingress".into(),
        }]);
        assert_eq!(
            missing_sync_data(&template, &synced),
            None,
            "one of the set is enough"
        );
        assert_eq!(missing_sync_data(&json!({"metadata": {}}), &none), None);
        let broken = json!({"metadata": {"annotations": {SYNC_ANNOTATION: "[[{\"group\": 1}]"}}});
        assert!(
            missing_sync_data(&broken, &none)
                .unwrap()
                .contains("cannot be read")
        );
    }

    #[test]
    fn dash_pack_is_gatekeepers() {
        assert_eq!(
            dash_pack(&["gatekeeper-audit-1", "k8srequiredlabels"]).as_deref(),
            Some("gatekeeper--audit--1-k8srequiredlabels")
        );
        assert_eq!(dash_pack(&["a", "-b"]), None);
        assert_eq!(dash_pack(&["a", ""]), None);
    }
}
