//! Referential data, as Gatekeeper syncs it: the `Config` named `config` in tollgate's
//! namespace (`spec.sync.syncOnly`, `spec.match[]`) and every `SyncSet` (`spec.gvks`) say which
//! kinds are watched into `data.inventory`; `spec.match[].excludedNamespaces` keeps namespaces
//! out of the sync and, for the `webhook` process, out of admission.
//!
//! Each synced kind has its own watch; a relist replaces that kind's objects, other changes
//! are applied one object at a time to the server's data snapshot (no rebuild per event).
//! Readiness waits for the Config, the SyncSets and the first list of each synced kind, so a
//! referential template cannot admit a duplicate right after a restart.
//!
//! Synced objects lose `metadata.managedFields` unless `--sync-managed-fields` is given: it is
//! most of an object's bytes and no policy reads it (Gatekeeper keeps it).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use kube::Api;
use kube::api::DynamicObject;
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::watcher;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tollgate_engine::data::{InventoryKey, SyncedObject};
use tollgate_engine::gatekeeper::{Gvk, object_name, object_namespace};
use tollgate_engine::matching::wildcard_matches;

use super::ClusterConfig;
use super::watch::{self, Change, Watched};
use crate::serve::state::{AppState, ReadinessHold};

/// The `Config` object tollgate reads, as Gatekeeper does.
pub const CONFIG_NAME: &str = "config";

/// What the Config and SyncSets ask for.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncPlan {
    /// Kinds to sync into `data.inventory`.
    pub kinds: BTreeSet<Gvk>,
    /// Namespace patterns excluded from the sync.
    pub sync_excluded: Vec<String>,
    /// Namespace patterns excluded from the webhook.
    pub webhook_excluded: Vec<String>,
    /// Namespace patterns excluded from the audit.
    pub audit_excluded: Vec<String>,
}

fn gvk_of(entry: &Value) -> Option<Gvk> {
    let field = |name: &str| {
        entry
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let gvk = Gvk {
        group: field("group"),
        version: field("version"),
        kind: field("kind"),
    };
    (!gvk.version.is_empty() && !gvk.kind.is_empty()).then_some(gvk)
}

impl SyncPlan {
    /// The plan of a Config (if any) and the SyncSets.
    pub fn of<'a>(config: Option<&Value>, syncsets: impl Iterator<Item = &'a Value>) -> Self {
        let mut plan = SyncPlan::default();
        if let Some(config) = config {
            let sync_only = config
                .pointer("/spec/sync/syncOnly")
                .and_then(Value::as_array);
            plan.kinds
                .extend(sync_only.into_iter().flatten().filter_map(gvk_of));
            for entry in config
                .pointer("/spec/match")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let namespaces = super::strings(entry, "excludedNamespaces");
                for process in super::strings(entry, "processes") {
                    if process == "*" || process == "sync" {
                        plan.sync_excluded.extend(namespaces.iter().cloned());
                    }
                    if process == "*" || process == "webhook" {
                        plan.webhook_excluded.extend(namespaces.iter().cloned());
                    }
                    if process == "*" || process == "audit" {
                        plan.audit_excluded.extend(namespaces.iter().cloned());
                    }
                }
            }
        }
        for syncset in syncsets {
            let gvks = syncset.pointer("/spec/gvks").and_then(Value::as_array);
            plan.kinds
                .extend(gvks.into_iter().flatten().filter_map(gvk_of));
        }
        plan.sync_excluded.sort();
        plan.sync_excluded.dedup();
        plan.webhook_excluded.sort();
        plan.webhook_excluded.dedup();
        plan.audit_excluded.sort();
        plan.audit_excluded.dedup();
        plan
    }

    fn excludes(&self, namespace: &str) -> bool {
        self.sync_excluded
            .iter()
            .any(|pattern| wildcard_matches(pattern, namespace))
    }
}

/// The object as it goes into `data.inventory`.
fn synced_object(mut object: Value, keep_managed_fields: bool) -> Value {
    if !keep_managed_fields
        && let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut)
    {
        meta.remove("managedFields");
    }
    object
}

/// One synced kind's watch and the objects it put in the snapshot.
#[derive(Debug)]
struct KindSync {
    stop: CancellationToken,
    listed: bool,
    keys: BTreeSet<InventoryKey>,
}

/// Keeps `data.inventory` and the webhook's Config exclusions in step with the cluster.
pub async fn run(
    client: kube::Client,
    config: ClusterConfig,
    state: AppState,
    hold: ReadinessHold,
    keep_managed_fields: bool,
    shutdown: CancellationToken,
) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let spawn = |resource: ApiResource, namespace: Option<&str>, cfg: watcher::Config, what| {
        let api: Api<DynamicObject> = match namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
            None => Api::all_with(client.clone(), &resource),
        };
        let stop = shutdown.child_token();
        tokio::spawn(watch::run(
            api,
            resource,
            cfg,
            what,
            tx.clone(),
            Arc::clone(&state.metrics),
            stop.clone(),
        ));
        stop
    };
    let configs = watch::resource("config.gatekeeper.sh", "v1alpha1", "Config", "configs");
    spawn(
        configs,
        Some(&config.namespace),
        watcher::Config::default().fields(&format!("metadata.name={CONFIG_NAME}")),
        Watched::GatekeeperConfig,
    );
    let syncsets = watch::resource("syncset.gatekeeper.sh", "v1alpha1", "SyncSet", "syncsets");
    spawn(
        syncsets,
        None,
        watcher::Config::default(),
        Watched::SyncSets,
    );

    let mut config_object: Option<Option<Value>> = None;
    let mut syncset_objects: Option<BTreeMap<String, Value>> = None;
    let mut plan = SyncPlan::default();
    let mut kinds: BTreeMap<Gvk, KindSync> = BTreeMap::new();
    // Kinds the API server does not serve (yet): retried on each tick.
    let mut unresolved: BTreeSet<Gvk> = BTreeSet::new();
    let mut hold = Some(hold);
    let mut retry = tokio::time::interval(Duration::from_secs(10));
    loop {
        let mut changes = Vec::new();
        tokio::select! {
            () = shutdown.cancelled() => return,
            change = rx.recv() => {
                let Some(change) = change else { return };
                changes.push(change);
                while let Ok(change) = rx.try_recv() {
                    changes.push(change);
                }
            }
            _ = retry.tick() => {}
        }
        let mut inventory_changes: Vec<(Gvk, Change)> = Vec::new();
        for change in changes {
            let what = match &change {
                Change::Listed(w, _) | Change::Applied(w, _) | Change::Deleted(w, _) => w.clone(),
            };
            match (what, change) {
                (Watched::GatekeeperConfig, Change::Listed(_, objects)) => {
                    config_object = Some(objects.into_iter().next());
                }
                (Watched::GatekeeperConfig, Change::Applied(_, object)) => {
                    config_object = Some(Some(object));
                }
                (Watched::GatekeeperConfig, Change::Deleted(..)) => config_object = Some(None),
                (Watched::SyncSets, Change::Listed(_, objects)) => {
                    syncset_objects = Some(
                        objects
                            .into_iter()
                            .map(|o| (object_name(&o).to_string(), o))
                            .collect(),
                    );
                }
                (Watched::SyncSets, Change::Applied(_, object)) => {
                    syncset_objects
                        .get_or_insert_default()
                        .insert(object_name(&object).to_string(), object);
                }
                (Watched::SyncSets, Change::Deleted(_, object)) => {
                    syncset_objects
                        .get_or_insert_default()
                        .remove(object_name(&object));
                }
                (Watched::Synced(gvk), change) => inventory_changes.push((gvk, change)),
                _ => {}
            }
        }
        let (Some(config_now), Some(syncsets_now)) = (&config_object, &syncset_objects) else {
            continue;
        };
        let next = SyncPlan::of(config_now.as_ref(), syncsets_now.values());
        if next != plan {
            tracing::info!(
                kinds = ?next.kinds.iter().map(|g| format!("{}/{}", g.api_version(), g.kind)).collect::<Vec<_>>(),
                sync_excluded = ?next.sync_excluded,
                webhook_excluded = ?next.webhook_excluded,
                "sync plan from the Config and SyncSets"
            );
            state
                .config_excluded
                .store(Arc::new(next.webhook_excluded.clone()));
            state
                .config_audit_excluded
                .store(Arc::new(next.audit_excluded.clone()));
            state.synced_kinds.store(Arc::new(next.kinds.clone()));
            // Kinds no longer asked for, and every kind when the exclusions change (their
            // objects are listed again under the new exclusions).
            let relist_all = next.sync_excluded != plan.sync_excluded;
            let dropped: Vec<Gvk> = kinds
                .keys()
                .filter(|g| relist_all || !next.kinds.contains(*g))
                .cloned()
                .collect();
            for gvk in dropped {
                if let Some(kind) = kinds.remove(&gvk) {
                    kind.stop.cancel();
                    unsync_all(&state, &kind.keys);
                }
            }
            unresolved.retain(|g| next.kinds.contains(g));
            unresolved.extend(
                next.kinds
                    .iter()
                    .filter(|g| !kinds.contains_key(*g))
                    .cloned(),
            );
            plan = next;
        }
        // Start the watches of kinds whose resource the API server now serves.
        for gvk in std::mem::take(&mut unresolved) {
            let wanted = GroupVersionKind::gvk(&gvk.group, &gvk.version, &gvk.kind);
            match kube::discovery::pinned_kind(&client, &wanted).await {
                Ok((resource, _)) => {
                    let stop = spawn(
                        resource,
                        None,
                        watcher::Config::default(),
                        Watched::Synced(gvk.clone()),
                    );
                    kinds.insert(
                        gvk,
                        KindSync {
                            stop,
                            listed: false,
                            keys: BTreeSet::new(),
                        },
                    );
                }
                Err(e) => {
                    tracing::warn!(kind = %format!("{}/{}", gvk.api_version(), gvk.kind), error = %e,
                        "a kind to sync is not served by the API server; retrying");
                    unresolved.insert(gvk);
                }
            }
        }
        for (gvk, change) in inventory_changes {
            let Some(kind) = kinds.get_mut(&gvk) else {
                continue;
            };
            apply(&state, &plan, kind, change, keep_managed_fields);
        }
        if unresolved.is_empty()
            && kinds.values().all(|k| k.listed)
            && let Some(hold) = hold.take()
        {
            tracing::info!(
                objects = state.data.load().inventory_len(),
                "the Config, SyncSets and every synced kind are listed"
            );
            hold.release();
        }
    }
}

fn unsync_all(state: &AppState, keys: &BTreeSet<InventoryKey>) {
    if keys.is_empty() {
        return;
    }
    state.data.rcu(|current| {
        let mut next = (**current).clone();
        for key in keys {
            next.unsync(key);
        }
        next
    });
}

/// Applies one watch change of a synced kind to the snapshot.
fn apply(
    state: &AppState,
    plan: &SyncPlan,
    kind: &mut KindSync,
    change: Change,
    keep_managed_fields: bool,
) {
    let included = |object: &Value| !plan.excludes(object_namespace(object));
    match change {
        Change::Listed(_, objects) => {
            // Converted once, outside the update (which may run more than once under contention)
            // and one at a time, so each JSON object is freed as soon as it is converted.
            let objects: Vec<SyncedObject> = objects
                .into_iter()
                .filter(|o| included(o))
                .filter_map(|o| SyncedObject::new(synced_object(o, keep_managed_fields)).ok())
                .collect();
            let keys: BTreeSet<InventoryKey> = objects.iter().map(|o| o.key().clone()).collect();
            let gone: Vec<&InventoryKey> = kind.keys.difference(&keys).collect();
            state.data.rcu(|current| {
                let mut next = (**current).clone();
                for key in &gone {
                    next.unsync(key);
                }
                for object in &objects {
                    next.sync_object(object);
                }
                next
            });
            kind.keys = keys;
            kind.listed = true;
        }
        Change::Applied(_, object) => {
            if !included(&object) {
                return;
            }
            let Ok(object) = SyncedObject::new(synced_object(object, keep_managed_fields)) else {
                return;
            };
            state.data.rcu(|current| {
                let mut next = (**current).clone();
                next.sync_object(&object);
                next
            });
            kind.keys.insert(object.key().clone());
        }
        Change::Deleted(_, object) => {
            let Ok(key) = InventoryKey::of(&object) else {
                return;
            };
            if kind.keys.remove(&key) {
                state.data.rcu(|current| {
                    let mut next = (**current).clone();
                    next.unsync(&key);
                    next
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_plan_joins_config_and_syncsets_and_splits_exclusions_by_process() {
        let config = json!({"spec": {
            "sync": {"syncOnly": [{"group": "", "version": "v1", "kind": "Namespace"},
                                  {"group": "networking.k8s.io", "version": "v1", "kind": "Ingress"}]},
            "match": [
                {"excludedNamespaces": ["kube-*"], "processes": ["*"]},
                {"excludedNamespaces": ["audit-only"], "processes": ["audit"]},
                {"excludedNamespaces": ["no-webhook"], "processes": ["webhook"]},
            ],
        }});
        let syncset = json!({"spec": {"gvks": [{"group": "", "version": "v1", "kind": "Service"},
                                               {"group": "", "version": "v1", "kind": "Namespace"}]}});
        let plan = SyncPlan::of(Some(&config), [&syncset].into_iter());
        let kinds: Vec<String> = plan.kinds.iter().map(|g| g.kind.clone()).collect();
        assert_eq!(kinds, ["Namespace", "Service", "Ingress"]);
        assert_eq!(plan.sync_excluded, ["kube-*"]);
        assert_eq!(plan.webhook_excluded, ["kube-*", "no-webhook"]);
        assert_eq!(plan.audit_excluded, ["audit-only", "kube-*"]);
        assert!(plan.excludes("kube-system"));
        assert!(!plan.excludes("audit-only"));
    }

    #[test]
    fn no_config_and_no_syncsets_sync_nothing() {
        assert_eq!(SyncPlan::of(None, std::iter::empty()), SyncPlan::default());
    }

    #[test]
    fn managed_fields_are_dropped_unless_kept() {
        let object = json!({"metadata": {"name": "a", "managedFields": [{"manager": "kubectl"}]}});
        assert!(
            synced_object(object.clone(), false)["metadata"]
                .get("managedFields")
                .is_none()
        );
        assert!(synced_object(object, true)["metadata"]["managedFields"].is_array());
    }
}
