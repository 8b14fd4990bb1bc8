//! The cluster as a policy source: ConstraintTemplates, their constraints and
//! ExpansionTemplates, watched and sent to the publisher as one snapshot, which ranks above
//! files and the embedded pack.
//!
//! Constraints of a kind are watched while the cluster has its template and the constraint CRD
//! is Established (the status writer creates the CRD once the template compiles). Nothing is
//! sent before templates, ExpansionTemplates and CRDs have been listed once, and a relist
//! replaces what was known only when it is complete, so a dropped watch never publishes an
//! empty set and a deletion missed during an outage is applied on reconnect.
//!
//! Readiness, as Gatekeeper's tracker: held until the templates listed at start are published
//! with their constraints (a template that fails to compile is not waited for), and the
//! ExpansionTemplates listed at start too. Once released it stays released.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kube::Api;
use kube::core::DynamicObject;
use kube::runtime::watcher;
use serde_json::Value;
use tokio::sync::{mpsc, watch as latest};
use tokio_util::sync::CancellationToken;
use tollgate_engine::Sources;
use tollgate_engine::document::{Document, Origin};

use super::crd;
use super::watch::{self, Change, Watched};
use crate::serve::publisher::{Feed, Outcome, SourceSnapshot};
use crate::serve::state::{AppState, ReadinessHold};

/// The publisher's name for this source.
pub const SOURCE: &str = "cluster";

/// Constraints of one kind, and the watch that keeps them.
#[derive(Debug)]
struct KindWatch {
    stop: CancellationToken,
    listed: bool,
    objects: BTreeMap<String, Value>,
}

/// What the watches have seen.
#[derive(Debug, Default)]
struct Known {
    templates: Option<BTreeMap<String, Value>>,
    expansions: Option<BTreeMap<String, Value>>,
    /// Kinds whose constraint CRD is Established; `None` until the CRDs are listed.
    established: Option<BTreeSet<String>>,
    constraints: BTreeMap<String, KindWatch>,
}

/// The constraint kind a template defines.
pub fn template_kind(template: &Value) -> Option<&str> {
    template
        .pointer("/spec/crd/spec/names/kind")
        .and_then(Value::as_str)
        .filter(|k| !k.is_empty())
}

fn name_of(object: &Value) -> &str {
    tollgate_engine::gatekeeper::object_name(object)
}

/// What the engine is given: no status (the status writer changes it, and policies never read
/// it), no bookkeeping that changes on every write. The uid and generation stay: status
/// objects report them.
fn policy_object(mut object: Value) -> Value {
    if let Some(map) = object.as_object_mut() {
        map.remove("status");
    }
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
        meta.remove("resourceVersion");
    }
    object
}

fn apply_to(map: &mut BTreeMap<String, Value>, change: Change) {
    match change {
        Change::Listed(_, objects) => {
            *map = objects
                .into_iter()
                .map(|o| (name_of(&o).to_string(), policy_object(o)))
                .collect();
        }
        Change::Applied(_, object) => {
            map.insert(name_of(&object).to_string(), policy_object(object));
        }
        Change::Deleted(_, object) => {
            map.remove(name_of(&object));
        }
    }
}

fn established_kind(crd: &Value) -> Option<String> {
    if crd.pointer("/spec/group").and_then(Value::as_str) != Some(crd::GROUP) {
        return None;
    }
    let established = crd
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|conditions| {
            conditions.iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some("Established")
                    && c.get("status").and_then(Value::as_str) == Some("True")
            })
        });
    established
        .then(|| crd.pointer("/spec/names/kind").and_then(Value::as_str))
        .flatten()
        .map(str::to_string)
}

impl Known {
    fn update(&mut self, change: Change) {
        let what = match &change {
            Change::Listed(w, _) | Change::Applied(w, _) | Change::Deleted(w, _) => w.clone(),
        };
        match what {
            Watched::Templates => apply_to(self.templates.get_or_insert_default(), change),
            Watched::Expansions => apply_to(self.expansions.get_or_insert_default(), change),
            Watched::ConstraintCrds => {
                let established = self.established.get_or_insert_default();
                match change {
                    Change::Listed(_, crds) => {
                        *established = crds.iter().filter_map(established_kind).collect();
                    }
                    Change::Applied(_, crd) => {
                        let kind = crd.pointer("/spec/names/kind").and_then(Value::as_str);
                        match (established_kind(&crd), kind) {
                            (Some(kind), _) => {
                                established.insert(kind);
                            }
                            (None, Some(kind)) => {
                                established.remove(kind);
                            }
                            (None, None) => {}
                        }
                    }
                    Change::Deleted(_, crd) => {
                        let name = name_of(&crd);
                        established.retain(|kind| crd::crd_name(kind) != name);
                    }
                }
            }
            Watched::Constraints(kind) => {
                if let Some(watch) = self.constraints.get_mut(&kind) {
                    if matches!(change, Change::Listed(..)) {
                        watch.listed = true;
                    }
                    apply_to(&mut watch.objects, change);
                }
            }
            Watched::GatekeeperConfig | Watched::SyncSets | Watched::Synced(_) => {}
        }
    }

    /// Kinds whose constraints should be watched now.
    fn wanted_kinds(&self) -> BTreeSet<String> {
        let (Some(templates), Some(established)) = (&self.templates, &self.established) else {
            return BTreeSet::new();
        };
        templates
            .values()
            .filter_map(template_kind)
            .filter(|k| established.contains(*k))
            .map(str::to_string)
            .collect()
    }

    /// The snapshot for the publisher, once the first lists are in.
    fn snapshot(&self) -> Option<Sources> {
        let templates = self.templates.as_ref()?;
        let expansions = self.expansions.as_ref()?;
        self.established.as_ref()?;
        let mut sources = Sources::default();
        let doc = |resource: &str, object: &Value| Document {
            origin: Origin {
                file: format!("cluster:{resource}/{}", name_of(object)),
                document: 1,
                line: 1,
            },
            value: object.clone(),
            text: None,
        };
        let mut docs: Vec<Document> = templates
            .values()
            .map(|t| doc("constrainttemplates", t))
            .collect();
        docs.extend(expansions.values().map(|e| doc("expansiontemplates", e)));
        for (kind, watch) in &self.constraints {
            let resource = kind.to_lowercase();
            docs.extend(watch.objects.values().map(|c| doc(&resource, c)));
        }
        sources.add(docs);
        Some(sources)
    }
}

/// Keeps the publisher's cluster source in step with the cluster until `shutdown`.
pub async fn run(
    client: kube::Client,
    state: AppState,
    feed: Feed,
    hold: ReadinessHold,
    mut outcomes: latest::Receiver<Option<Arc<Outcome>>>,
    shutdown: CancellationToken,
) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let spawn_watch = |resource: kube::core::ApiResource, config: watcher::Config, what| {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        let stop = shutdown.child_token();
        tokio::spawn(watch::run(
            api,
            resource,
            config,
            what,
            tx.clone(),
            Arc::clone(&state.metrics),
            stop.clone(),
        ));
        stop
    };
    spawn_watch(
        watch::resource(
            "templates.gatekeeper.sh",
            "v1beta1",
            "ConstraintTemplate",
            "constrainttemplates",
        ),
        watcher::Config::default(),
        Watched::Templates,
    );
    spawn_watch(
        watch::resource(
            "expansion.gatekeeper.sh",
            "v1beta1",
            "ExpansionTemplate",
            // Not a typo: Gatekeeper's plural is the singular.
            "expansiontemplate",
        ),
        watcher::Config::default(),
        Watched::Expansions,
    );
    spawn_watch(
        watch::resource(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
        ),
        watcher::Config::default().labels("gatekeeper.sh/constraint=yes"),
        Watched::ConstraintCrds,
    );

    let mut known = Known::default();
    let mut hold = Some(hold);
    // The kinds of the templates listed at start: readiness waits for their constraints.
    let mut expected: Option<BTreeSet<String>> = None;
    let mut sent: Option<Sources> = None;
    let mut revision = 0u64;
    // The revision that had everything readiness waits for.
    let mut complete_at: Option<u64> = None;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            change = rx.recv() => {
                let Some(change) = change else { return };
                known.update(change);
                while let Ok(change) = rx.try_recv() {
                    known.update(change);
                }
            }
            changed = outcomes.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
        // Constraint watches follow the templates and their CRDs.
        let wanted = known.wanted_kinds();
        known.constraints.retain(|kind, watch| {
            let keep = wanted.contains(kind);
            if !keep {
                watch.stop.cancel();
            }
            keep
        });
        for kind in wanted {
            if known.constraints.contains_key(&kind) {
                continue;
            }
            let resource = watch::resource(crd::GROUP, "v1beta1", &kind, &kind.to_lowercase());
            let stop = spawn_watch(
                resource,
                watcher::Config::default(),
                Watched::Constraints(kind.clone()),
            );
            known.constraints.insert(
                kind,
                KindWatch {
                    stop,
                    listed: false,
                    objects: BTreeMap::new(),
                },
            );
        }
        if expected.is_none()
            && let Some(templates) = &known.templates
        {
            expected = Some(
                templates
                    .values()
                    .filter_map(template_kind)
                    .map(str::to_string)
                    .collect(),
            );
        }
        let Some(snapshot) = known.snapshot() else {
            continue;
        };
        if sent.as_ref().is_none_or(|s| !same(s, &snapshot)) {
            revision += 1;
            feed.send(SourceSnapshot {
                documents: snapshot.clone(),
                problems: Vec::new(),
                revision,
            });
            sent = Some(snapshot);
        }
        if hold.is_some() && complete_at.is_none() {
            let outcome = outcomes.borrow().clone();
            let failed = failed_templates(outcome.as_deref());
            let waiting: Vec<&String> = expected
                .iter()
                .flatten()
                .filter(|kind| {
                    // A template that does not compile, or gets no CRD, has no constraints to
                    // wait for.
                    let template_failed =
                        known.templates.iter().flat_map(|t| t.values()).any(|t| {
                            template_kind(t) == Some(kind)
                                && (failed.contains(name_of(t)) || crd::constraint_crd(t).is_err())
                        });
                    let still_there = known
                        .templates
                        .iter()
                        .flat_map(|t| t.values())
                        .any(|t| template_kind(t) == Some(kind));
                    let listed = known.constraints.get(*kind).is_some_and(|w| w.listed);
                    still_there && !template_failed && !listed
                })
                .collect();
            if waiting.is_empty() {
                complete_at = Some(revision);
            } else {
                tracing::debug!(?waiting, "waiting for constraints listed at start");
            }
        }
        if let (Some(at), Some(_)) = (complete_at, &hold) {
            let published = outcomes.borrow().as_deref().is_some_and(|o| {
                o.sources
                    .iter()
                    .any(|(name, s)| name == SOURCE && s.revision >= at)
            });
            if published && let Some(hold) = hold.take() {
                tracing::info!(
                    "the cluster's templates, constraints and ExpansionTemplates are ingested"
                );
                hold.release();
            }
        }
    }
}

/// Templates from this source that never compiled (not those keeping a last good version).
fn failed_templates(outcome: Option<&Outcome>) -> BTreeSet<String> {
    outcome
        .into_iter()
        .flat_map(|o| &o.problems)
        .filter(|p| p.source == SOURCE && p.kind == "ConstraintTemplate" && !p.kept_last_good)
        .map(|p| p.name.clone())
        .collect()
}

fn same(a: &Sources, b: &Sources) -> bool {
    let values = |s: &Sources| -> Vec<Value> {
        s.templates
            .iter()
            .chain(&s.constraints)
            .chain(&s.expansions)
            .map(|d| d.value.clone())
            .collect()
    };
    values(a) == values(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn template(name: &str, kind: &str) -> Value {
        json!({
            "apiVersion": "templates.gatekeeper.sh/v1beta1",
            "kind": "ConstraintTemplate",
            "metadata": {"name": name, "uid": format!("uid-{name}"), "generation": 1,
                         "resourceVersion": "1", "managedFields": [{"manager": "kubectl"}]},
            "spec": {"crd": {"spec": {"names": {"kind": kind}}},
                     "targets": [{"target": "admission.k8s.gatekeeper.sh", "rego": "package x"}]},
        })
    }

    fn crd(kind: &str, established: bool) -> Value {
        json!({
            "metadata": {"name": crd::crd_name(kind)},
            "spec": {"group": crd::GROUP, "names": {"kind": kind}},
            "status": {"conditions": [{"type": "Established",
                                       "status": if established { "True" } else { "False" }}]},
        })
    }

    fn listed() -> Known {
        let mut known = Known::default();
        known.update(Change::Listed(
            Watched::Templates,
            vec![template("k8sa", "K8sA"), template("k8sb", "K8sB")],
        ));
        known.update(Change::Listed(Watched::Expansions, vec![]));
        known.update(Change::Listed(
            Watched::ConstraintCrds,
            vec![crd("K8sA", true), crd("K8sB", false)],
        ));
        known
    }

    fn template_names(known: &Known) -> Vec<String> {
        known
            .snapshot()
            .map(|s| {
                s.templates
                    .iter()
                    .map(|d| name_of(&d.value).to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn nothing_is_sent_before_templates_expansions_and_crds_are_listed() {
        let mut known = Known::default();
        known.update(Change::Listed(
            Watched::Templates,
            vec![template("k8sa", "K8sA")],
        ));
        assert!(known.snapshot().is_none());
        known.update(Change::Listed(Watched::Expansions, vec![]));
        assert!(known.snapshot().is_none(), "CRDs not listed yet");
        known.update(Change::Listed(Watched::ConstraintCrds, vec![]));
        assert_eq!(template_names(&known), ["k8sa"]);
    }

    #[test]
    fn a_relist_replaces_what_was_known_so_deletions_missed_in_an_outage_apply() {
        let mut known = listed();
        assert_eq!(template_names(&known), ["k8sa", "k8sb"]);
        known.update(Change::Listed(
            Watched::Templates,
            vec![template("k8sa", "K8sA")],
        ));
        assert_eq!(template_names(&known), ["k8sa"]);
    }

    #[test]
    fn status_and_bookkeeping_changes_leave_the_snapshot_unchanged() {
        let mut known = listed();
        let before = known.snapshot().unwrap();
        let mut changed = template("k8sa", "K8sA");
        changed["metadata"]["resourceVersion"] = json!("2");
        changed["status"] = json!({"created": true});
        known.update(Change::Applied(Watched::Templates, changed));
        let after = known.snapshot().unwrap();
        assert!(same(&before, &after));
        let value = &after.templates[0].value;
        assert!(value.get("status").is_none());
        assert!(value["metadata"].get("managedFields").is_none());
        assert_eq!(
            value["metadata"]["uid"], "uid-k8sa",
            "status objects report the uid"
        );
    }

    #[test]
    fn constraints_are_watched_for_templates_whose_crd_is_established() {
        let mut known = listed();
        assert_eq!(known.wanted_kinds(), BTreeSet::from(["K8sA".to_string()]));
        known.update(Change::Applied(Watched::ConstraintCrds, crd("K8sB", true)));
        assert_eq!(known.wanted_kinds().len(), 2);
        // The template goes: its constraints are no longer watched, whatever the CRD.
        known.update(Change::Deleted(
            Watched::Templates,
            template("k8sb", "K8sB"),
        ));
        assert_eq!(known.wanted_kinds(), BTreeSet::from(["K8sA".to_string()]));
        // The CRD goes (garbage collection): same.
        known.update(Change::Deleted(Watched::ConstraintCrds, crd("K8sA", true)));
        assert!(known.wanted_kinds().is_empty());
    }

    #[test]
    fn constraints_are_in_the_snapshot_once_their_watch_lists_them() {
        let mut known = listed();
        known.constraints.insert(
            "K8sA".into(),
            KindWatch {
                stop: CancellationToken::new(),
                listed: false,
                objects: BTreeMap::new(),
            },
        );
        let constraint = json!({"apiVersion": "constraints.gatekeeper.sh/v1beta1",
                                "kind": "K8sA", "metadata": {"name": "c1"}, "spec": {}});
        known.update(Change::Listed(
            Watched::Constraints("K8sA".into()),
            vec![constraint],
        ));
        assert!(known.constraints["K8sA"].listed);
        let snapshot = known.snapshot().unwrap();
        assert_eq!(snapshot.constraints.len(), 1);
        assert_eq!(
            snapshot.constraints[0].origin.file, "cluster:k8sa/c1",
            "the origin names the object"
        );
    }
}
