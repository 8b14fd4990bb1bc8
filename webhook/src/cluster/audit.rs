//! Audit, as Gatekeeper's (`pkg/audit/manager.go`): every `--audit-interval` the holder of the
//! status Lease lists what the constraints can match and evaluates every object through the one
//! review path, at the audit enforcement point, then writes on each constraint of the cluster
//! `status.totalViolations`, `status.violations[]` (at most `--constraint-violations-limit`,
//! Gatekeeper's choice and order, messages cut at 256 bytes) and `status.auditTimestamp`.
//!
//! Beyond Gatekeeper: objects are listed in chunks and reviewed chunk by chunk, so memory holds
//! one chunk plus the kept violations whatever the cluster's size; the reviews run on the
//! blocking pool, off the threads that answer admission requests.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
pub use kube::core::ApiResource;
use kube::core::DynamicObject;
use kube::discovery::{Discovery, verbs};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tollgate_engine::gatekeeper::object_namespace;
use tollgate_engine::matching::wildcard_matches;
use tollgate_engine::{Context, PolicySet, Review, Source, enforcement_point};

use super::status::field_manager;
use super::{ClusterConfig, crd, watch as watched};
use crate::serve::metrics::AuditViolationLabels;
use crate::serve::state::AppState;

/// How the audit runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditSettings {
    /// Time between passes; zero disables the audit.
    pub interval: Duration,
    /// Objects per list request.
    pub chunk_size: u32,
    /// Violations kept in each constraint's status.
    pub violations_limit: usize,
    /// List only the kinds the constraints name (all listable kinds when one names none).
    pub match_kind_only: bool,
    /// Also write PolicyReports and ClusterPolicyReports, with every violation.
    pub policy_reports: bool,
}

/// Gatekeeper's `msgSize`.
const MESSAGE_LIMIT: usize = 256;

/// One entry of `status.violations`, ordered as Gatekeeper orders them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct StatusViolation {
    group: String,
    version: String,
    kind: String,
    namespace: String,
    name: String,
    message: String,
    enforcement_action: String,
    enforcement_actions: Vec<String>,
}

impl StatusViolation {
    /// A violation of a non-scoped constraint (tests and reports build these).
    pub fn new(
        group: &str,
        version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
        message: &str,
        enforcement_action: &str,
    ) -> Self {
        StatusViolation {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
            namespace: namespace.into(),
            name: name.into(),
            message: message.into(),
            enforcement_action: enforcement_action.into(),
            enforcement_actions: Vec::new(),
        }
    }

    fn to_json(&self) -> Value {
        let mut v = json!({
            "group": self.group,
            "version": self.version,
            "kind": self.kind,
            "name": self.name,
            "message": self.message,
            "enforcementAction": self.enforcement_action,
        });
        if !self.namespace.is_empty() {
            v["namespace"] = json!(self.namespace);
        }
        if !self.enforcement_actions.is_empty() {
            v["enforcementActions"] = json!(self.enforcement_actions);
        }
        v
    }
}

/// Gatekeeper's `truncateString`: the first 253 bytes and "...". Go slices bytes, so a
/// character cut in two leaves invalid UTF-8, which Go's JSON encoder writes as one U+FFFD per
/// invalid byte; the same is done here, so the status reads the same.
pub fn truncate(message: &str) -> String {
    if message.len() <= MESSAGE_LIMIT {
        return message.to_string();
    }
    let mut rest = &message.as_bytes()[..MESSAGE_LIMIT - 3];
    let mut out = String::with_capacity(MESSAGE_LIMIT + 3);
    loop {
        match std::str::from_utf8(rest) {
            Ok(valid) => {
                out.push_str(valid);
                break;
            }
            Err(e) => {
                let (valid, after) = rest.split_at(e.valid_up_to());
                out.push_str(std::str::from_utf8(valid).unwrap_or_default());
                // Go's decoder takes one invalid byte at a time.
                out.push('\u{FFFD}');
                rest = &after[1..];
            }
        }
    }
    out.push_str("...");
    out
}

/// A constraint's results of one pass: the count and the kept violations.
#[derive(Debug, Default)]
pub struct ConstraintResults {
    /// Every violation found.
    pub total: u64,
    /// Every violation found, by its own enforcement action (an ExpansionTemplate's overrides
    /// the constraint's): `gatekeeper_violations` counts these.
    pub by_action: BTreeMap<String, u64>,
    /// Gatekeeper's LimitQueue keeps the `limit` smallest in its order.
    kept: BTreeSet<StatusViolation>,
}

impl ConstraintResults {
    /// Counts a violation and keeps it when it is among the `limit` smallest.
    pub fn add(&mut self, violation: StatusViolation, limit: usize) {
        self.total += 1;
        *self
            .by_action
            .entry(violation.enforcement_action.clone())
            .or_default() += 1;
        self.kept.insert(violation);
        while self.kept.len() > limit {
            self.kept.pop_last();
        }
    }

    /// The status list of at most `limit`: Gatekeeper pops its max-heap, so the kept
    /// violations come largest first.
    pub fn violations(&self, limit: usize) -> Vec<Value> {
        let mut kept: Vec<Value> = self
            .kept
            .iter()
            .take(limit)
            .map(StatusViolation::to_json)
            .collect();
        kept.reverse();
        kept
    }

    /// Every kept violation, in Gatekeeper's sort order (smallest first).
    pub fn sorted(&self) -> Vec<Value> {
        self.kept.iter().map(StatusViolation::to_json).collect()
    }
}

/// Every constraint of a set as a report lists it: kind, name and enforcement action.
pub fn constraint_actions(set: &PolicySet) -> Vec<(String, String, String)> {
    set.constraints()
        .iter()
        .map(|c| {
            let c = &c.constraint;
            (c.kind.clone(), c.name.clone(), c.enforcement_action.clone())
        })
        .collect()
}

/// Results of one pass by constraint (kind, name).
pub type PassResults = BTreeMap<(String, String), ConstraintResults>;

/// Threads the audit reviews a chunk on: every core the process may use but one, which stays
/// for admission (whose reviews run on the request tasks and never wait for the audit).
fn audit_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get().saturating_sub(1))
        .unwrap_or(1)
        .max(1)
}

/// Merges one thread's results into the pass's.
fn merge(into: &mut PassResults, from: PassResults, limit: usize) {
    for (key, r) in from {
        let target = into.entry(key).or_default();
        target.total += r.total;
        for (action, n) in r.by_action {
            *target.by_action.entry(action).or_default() += n;
        }
        target.kept.extend(r.kept);
        while target.kept.len() > limit {
            target.kept.pop_last();
        }
    }
}

/// Reviews one chunk of objects, split over [`audit_threads`] threads, and adds the results;
/// what is kept does not depend on the split (the kept set is ordered).
pub fn review_chunk(
    set: &PolicySet,
    data: &tollgate_engine::DataSnapshot,
    objects: Vec<Value>,
    limit: usize,
    results: &mut PassResults,
) {
    let threads = audit_threads().min(objects.len().max(1));
    if threads <= 1 {
        review_objects(set, data, objects, limit, results);
        return;
    }
    let per_thread = objects.len().div_ceil(threads);
    let mut parts: Vec<Vec<Value>> = Vec::with_capacity(threads);
    let mut objects = objects.into_iter();
    for _ in 0..threads {
        parts.push(objects.by_ref().take(per_thread).collect());
    }
    let found: Vec<PassResults> = std::thread::scope(|scope| {
        let handles: Vec<_> = parts
            .into_iter()
            .map(|part| {
                scope.spawn(move || {
                    let mut mine = PassResults::new();
                    review_objects(set, data, part, limit, &mut mine);
                    mine
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    for mine in found {
        merge(results, mine, limit);
    }
}

/// Reviews objects one after the other and adds the results.
fn review_objects(
    set: &PolicySet,
    data: &tollgate_engine::DataSnapshot,
    objects: Vec<Value>,
    limit: usize,
    results: &mut PassResults,
) {
    let ctx = Context {
        enforcement_point: enforcement_point::AUDIT,
        data: Some(data),
        expand: true,
        builtin_expansions: false,
        observe: None,
    };
    for object in objects {
        let gvk = tollgate_engine::gatekeeper::Gvk::of(&object);
        let namespace = object_namespace(&object).to_string();
        let name = tollgate_engine::gatekeeper::object_name(&object).to_string();
        let namespace_object = data.namespace(&namespace).cloned();
        let review = Review::of_object(object, Source::Original).with_namespace(namespace_object);
        let Ok(outcome) = tollgate_engine::evaluate::review(set, &review, &ctx) else {
            continue;
        };
        for v in &outcome.violations {
            if let Some(violation) = status_violation(set, &gvk, &namespace, &name, v) {
                let c = &v.constraint.constraint;
                results
                    .entry((c.kind.clone(), c.name.clone()))
                    .or_default()
                    .add(violation, limit);
            }
        }
    }
}

/// A result as the audit records it: `None` for a scoped constraint with no action at the
/// audit point. Shared with `tollgate audit -f`, so both record the same thing.
pub fn status_violation(
    set: &PolicySet,
    gvk: &tollgate_engine::gatekeeper::Gvk,
    namespace: &str,
    name: &str,
    v: &tollgate_engine::evaluate::Violation,
) -> Option<StatusViolation> {
    let c = &v.constraint.constraint;
    let scoped = c.enforcement_action == "scoped";
    if scoped && v.actions.is_empty() {
        return None;
    }
    // An ExpansionTemplate's enforcementAction replaces the constraint's on the results of the
    // objects it generates (Gatekeeper's OverrideEnforcementAction).
    let action = v
        .implied_by
        .as_ref()
        .and_then(|t| set.expansions().iter().find(|e| &e.name == t))
        .and_then(|e| e.enforcement_action.clone())
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| c.enforcement_action.clone());
    Some(StatusViolation {
        group: gvk.group.clone(),
        version: gvk.version.clone(),
        kind: gvk.kind.clone(),
        namespace: namespace.to_string(),
        name: name.to_string(),
        message: truncate(&v.msg),
        enforcement_action: action,
        enforcement_actions: if scoped {
            v.actions.iter().map(|a| a.as_str().to_string()).collect()
        } else {
            Vec::new()
        },
    })
}

/// The kinds a pass lists: every listable resource (preferred versions), or with
/// `match_kind_only` those the constraints name.
async fn resources(
    client: &kube::Client,
    set: &PolicySet,
    match_kind_only: bool,
) -> Result<Vec<ApiResource>, kube::Error> {
    let discovery = Discovery::new(client.clone()).run().await?;
    let mut named: BTreeSet<(String, String)> = BTreeSet::new();
    let mut any_kind = !match_kind_only;
    if match_kind_only {
        for c in set.constraints() {
            let kinds = &c.constraint.matcher.kinds;
            if kinds.is_empty() {
                any_kind = true;
            }
            let any = || vec!["*".to_string()];
            for k in kinds {
                // An empty list matches anything, as `*` does.
                let groups = if k.api_groups.is_empty() {
                    any()
                } else {
                    k.api_groups.clone()
                };
                let names = if k.kinds.is_empty() {
                    any()
                } else {
                    k.kinds.clone()
                };
                for group in &groups {
                    for kind in &names {
                        named.insert((group.clone(), kind.clone()));
                    }
                }
            }
        }
    }
    let wanted = |group: &str, kind: &str| {
        any_kind
            || named
                .iter()
                .any(|(g, k)| (g == "*" || g == group) && (k == "*" || k == kind))
    };
    let mut out = Vec::new();
    for group in discovery.groups() {
        for (resource, caps) in group.recommended_resources() {
            if !caps.supports_operation(verbs::LIST) || resource.plural.contains('/') {
                continue;
            }
            if wanted(&resource.group, &resource.kind) {
                out.push(resource);
            }
        }
    }
    Ok(out)
}

/// Runs a pass every interval while this replica leads, until `shutdown`. A pass is dropped
/// where it stands when leadership is lost or at shutdown: only the Lease holder may write
/// status and reports, and the leader gives the Lease up only after this task has ended.
///
/// The passes run on a runtime of their own, on a thread of their own: parsing each listed
/// chunk and turning it into reviews is CPU work that must never sit on the worker threads
/// that answer admission requests.
pub async fn run(
    client: kube::Client,
    config: ClusterConfig,
    state: AppState,
    settings: AuditSettings,
    leading: watch::Receiver<bool>,
    shutdown: CancellationToken,
) {
    if settings.interval.is_zero() {
        return;
    }
    let (ended, ended_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("audit".into())
        .spawn(move || {
            background_priority();
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .on_thread_start(background_priority)
                .build()
            {
                Ok(runtime) => {
                    runtime.block_on(passes(client, config, state, settings, leading, shutdown))
                }
                Err(e) => tracing::error!(error = %e, "cannot start the audit's runtime; no audit"),
            }
            let _ = ended.send(());
        });
    match thread {
        // The sender is dropped with the thread, whatever way it ends.
        Ok(_) => {
            let _ = ended_rx.await;
        }
        Err(e) => tracing::error!(error = %e, "cannot start the audit's thread; no audit"),
    }
}

/// Puts the calling thread (and the threads it starts, which inherit it) under `SCHED_IDLE`: it
/// runs only on CPU time that nothing else wants, so an audit never delays an admission review
/// on a busy node. No privilege is needed to lower one's own priority.
fn background_priority() {
    use thread_priority::{
        NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy,
        set_thread_priority_and_policy, thread_native_id,
    };
    if let Err(e) = set_thread_priority_and_policy(
        thread_native_id(),
        ThreadPriority::Min,
        ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle),
    ) {
        tracing::warn!(error = ?e, "cannot lower the audit's thread priority; it competes with admission");
    }
}

/// The audit loop, on the audit's own runtime.
async fn passes(
    client: kube::Client,
    config: ClusterConfig,
    state: AppState,
    settings: AuditSettings,
    mut leading: watch::Receiver<bool>,
    shutdown: CancellationToken,
) {
    let mut ticks = tokio::time::interval(settings.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
            changed = leading.changed() => {
                if changed.is_err() { return; }
                continue;
            }
        }
        if !*leading.borrow() {
            continue;
        }
        tracing::info!("audit pass started");
        tokio::select! {
            done = pass(&client, &config, &state, &settings, &shutdown) => {
                if let Err(e) = done {
                    tracing::warn!(error = %e, "audit pass failed; the next one runs at the next interval");
                }
            }
            () = shutdown.cancelled() => {
                tracing::info!("audit pass stopped unfinished: shutting down");
                return;
            }
            () = lost(&mut leading) => {
                tracing::info!("audit pass stopped unfinished: status leadership lost");
            }
        }
    }
}

/// Resolves when this replica stops leading (or the leader task is gone).
async fn lost(leading: &mut watch::Receiver<bool>) {
    loop {
        if leading.changed().await.is_err() || !*leading.borrow() {
            return;
        }
    }
}

/// What one pass saw.
#[derive(Debug, Default)]
pub struct Collected {
    /// Results by constraint.
    pub results: PassResults,
    /// Objects reviewed.
    pub objects: usize,
    /// Resources that could not be listed, with why.
    pub unlisted: Vec<String>,
}

/// Lists every resource a pass covers in chunks and reviews each chunk on the blocking pool;
/// `progress` is told each resource and the objects reviewed so far.
#[allow(clippy::too_many_arguments)]
pub async fn collect(
    client: &kube::Client,
    set: Arc<PolicySet>,
    data: Arc<tollgate_engine::DataSnapshot>,
    excluded: &[String],
    chunk_size: u32,
    match_kind_only: bool,
    limit: usize,
    progress: &mut (dyn FnMut(&ApiResource, usize) + Send),
    stop: &CancellationToken,
) -> Result<Collected, kube::Error> {
    let mut out = Collected::default();
    for resource in resources(client, &set, match_kind_only).await? {
        progress(&resource, out.objects);
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        let mut params = ListParams::default().limit(chunk_size);
        loop {
            if stop.is_cancelled() {
                return Ok(out);
            }
            let list = match api.list(&params).await {
                Ok(list) => list,
                Err(e) => {
                    let what = format!("{}/{}", resource.api_version, resource.plural);
                    tracing::warn!(resource = %what, error = %e, "audit cannot list a resource; skipped");
                    out.unlisted.push(format!("{what}: {e}"));
                    break;
                }
            };
            let next = list.metadata.continue_.clone().filter(|c| !c.is_empty());
            let chunk: Vec<Value> = list
                .items
                .into_iter()
                .filter_map(|o| watched::to_value(o, &resource))
                .filter(|o| {
                    !excluded
                        .iter()
                        .any(|p| wildcard_matches(p, audited_namespace(o, &resource.kind)))
                })
                .collect();
            out.objects += chunk.len();
            let set = Arc::clone(&set);
            let data = Arc::clone(&data);
            let mut results = std::mem::take(&mut out.results);
            results = tokio::task::spawn_blocking(move || {
                review_chunk(&set, &data, chunk, limit, &mut results);
                results
            })
            .await
            .unwrap_or_default();
            out.results = results;
            match next {
                Some(token) => params = params.continue_token(&token),
                None => break,
            }
        }
    }
    Ok(out)
}

async fn pass(
    client: &kube::Client,
    config: &ClusterConfig,
    state: &AppState,
    settings: &AuditSettings,
    shutdown: &CancellationToken,
) -> Result<(), kube::Error> {
    let Some(set) = state.policies.load_full() else {
        return Ok(());
    };
    let started = Instant::now();
    let started_at = SystemTime::now();
    let timestamp = rfc3339(started_at);
    state.metrics.audit_last_run.set(unix_seconds(started_at));
    let excluded = state.config_audit_excluded.load_full();
    // Reports are complete: then every violation is kept, and the status takes its share.
    let keep = if settings.policy_reports {
        usize::MAX
    } else {
        settings.violations_limit
    };
    let collected = collect(
        client,
        Arc::clone(&set),
        state.data.load_full(),
        &excluded,
        settings.chunk_size,
        settings.match_kind_only,
        keep,
        &mut |_, _| {},
        shutdown,
    )
    .await?;
    if shutdown.is_cancelled() {
        return Ok(());
    }
    let by_action = violations_by_action(&collected.results);
    write_status(
        client,
        config,
        &set,
        &collected.results,
        settings.violations_limit,
        &timestamp,
    )
    .await;
    if settings.policy_reports {
        let actions = set
            .constraints()
            .iter()
            .map(|c| {
                (
                    (c.constraint.kind.clone(), c.constraint.name.clone()),
                    c.constraint.enforcement_action.clone(),
                )
            })
            .collect();
        let seconds = unix_seconds(started_at) as i64;
        let reports = super::policy_reports::reports(&collected.results, &actions, seconds);
        super::policy_reports::write(client, &field_manager(config), &reports).await;
    }
    state.metrics.audit_violations.clear();
    for (action, count) in by_action {
        state
            .metrics
            .audit_violations
            .get_or_create(&AuditViolationLabels {
                enforcement_action: action,
            })
            .set(count);
    }
    state
        .metrics
        .audit_duration
        .observe(started.elapsed().as_secs_f64());
    state
        .metrics
        .audit_last_run_end
        .set(unix_seconds(SystemTime::now()));
    tracing::info!(
        objects = collected.objects,
        constraints_with_violations = collected.results.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "audit pass done"
    );
    Ok(())
}

/// Gatekeeper's timestamp format (RFC 3339, seconds, UTC).
pub fn rfc3339(t: SystemTime) -> String {
    k8s_openapi::chrono::DateTime::<k8s_openapi::chrono::Utc>::from(t)
        .to_rfc3339_opts(k8s_openapi::chrono::SecondsFormat::Secs, true)
}

/// Violations by their enforcement action (the `gatekeeper_violations` gauge), with every
/// action Gatekeeper knows present, as it reports them.
pub fn violations_by_action(results: &PassResults) -> BTreeMap<String, i64> {
    let mut by_action: BTreeMap<String, i64> = ["deny", "dryrun", "warn", "scoped", "unrecognized"]
        .into_iter()
        .map(|a| (a.to_string(), 0))
        .collect();
    for r in results.values() {
        for (action, n) in &r.by_action {
            *by_action.entry(action.clone()).or_default() += *n as i64;
        }
    }
    by_action
}

/// The namespace the Config's audit exclusions apply to: a Namespace's own name, else the
/// object's namespace (Gatekeeper's `IsNamespaceExcluded`).
fn audited_namespace<'a>(object: &'a Value, kind: &str) -> &'a str {
    if kind == "Namespace" {
        tollgate_engine::gatekeeper::object_name(object)
    } else {
        object_namespace(object)
    }
}

fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Writes each cluster constraint's audit status (at most `limit` violations).
pub async fn write_status(
    client: &kube::Client,
    config: &ClusterConfig,
    set: &PolicySet,
    results: &PassResults,
    limit: usize,
    timestamp: &str,
) {
    let params = PatchParams {
        field_manager: Some(field_manager(config)),
        ..PatchParams::default()
    };
    let kinds: BTreeSet<&str> = set
        .constraints()
        .iter()
        .map(|c| c.constraint.kind.as_str())
        .collect();
    for kind in kinds {
        let resource = watched::resource(crd::GROUP, "v1beta1", kind, &kind.to_lowercase());
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        let Ok(live) = api.list(&ListParams::default()).await else {
            // A kind from files or the pack has no CRD: its results are in the metrics only.
            continue;
        };
        for constraint in live.items {
            let Some(name) = constraint.metadata.name.clone() else {
                continue;
            };
            let results = results.get(&(kind.to_string(), name.clone()));
            let violations = results.map(|r| r.violations(limit)).unwrap_or_default();
            let patch = json!({"status": {
                "auditTimestamp": timestamp,
                "totalViolations": results.map_or(0, |r| r.total),
                // Gatekeeper removes the list when there is nothing to show.
                "violations": if violations.is_empty() { Value::Null } else { json!(violations) },
            }});
            if let Err(e) = api
                .patch_status(&name, &params, &Patch::Merge(&patch))
                .await
            {
                tracing::warn!(constraint = %format!("{kind}/{name}"), error = %e, "cannot write audit status");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_audit_threads_and_those_they_start_run_under_sched_idle() {
        use thread_priority::{
            NormalThreadSchedulePolicy, ThreadSchedulePolicy, thread_schedule_policy,
        };
        let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
        let (own, child) = std::thread::spawn(|| {
            background_priority();
            let child = std::thread::spawn(thread_schedule_policy).join().unwrap();
            (thread_schedule_policy(), child)
        })
        .join()
        .unwrap();
        assert_eq!(own.unwrap(), idle);
        assert_eq!(child.unwrap(), idle);
        // Admission's threads keep the normal policy.
        assert_ne!(thread_schedule_policy().unwrap(), idle);
    }

    fn v(ns: &str, name: &str) -> StatusViolation {
        StatusViolation {
            group: String::new(),
            version: "v1".into(),
            kind: "Pod".into(),
            namespace: ns.into(),
            name: name.into(),
            message: "m".into(),
            enforcement_action: "deny".into(),
            enforcement_actions: Vec::new(),
        }
    }

    #[test]
    fn keeps_the_smallest_and_lists_them_largest_first_as_gatekeepers_heap_does() {
        let mut r = ConstraintResults::default();
        for name in ["e", "a", "d", "b", "c"] {
            r.add(v("ns", name), 3);
        }
        assert_eq!(r.total, 5);
        let names: Vec<String> = r
            .violations(3)
            .iter()
            .map(|v| v["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(names, ["c", "b", "a"]);
    }

    #[test]
    fn messages_are_cut_at_256_bytes_with_dots() {
        let long = "x".repeat(300);
        let cut = truncate(&long);
        assert_eq!(cut.len(), 256);
        assert!(cut.ends_with("..."));
        assert_eq!(truncate("short"), "short");
        // A character cut in two: one U+FFFD per invalid byte, as Go's JSON encoder writes it.
        let tricky = format!("{}é{}", "x".repeat(252), "y".repeat(10));
        assert_eq!(truncate(&tricky), format!("{}\u{FFFD}...", "x".repeat(252)));
        let three = format!("{}€{}", "x".repeat(251), "y".repeat(10));
        assert_eq!(
            truncate(&three),
            format!("{}\u{FFFD}\u{FFFD}...", "x".repeat(251))
        );
    }

    #[test]
    fn a_violation_without_namespace_omits_it() {
        let json = v("", "node-1").to_json();
        assert!(json.get("namespace").is_none());
        assert_eq!(json["enforcementAction"], "deny");
    }
}

#[cfg(test)]
mod merge_tests {
    use super::*;

    #[test]
    fn merging_threads_keeps_what_one_thread_would() {
        let names: Vec<String> = (0..50).map(|i| format!("p{:02}", (i * 37) % 50)).collect();
        let key = ("K".to_string(), "c".to_string());
        let mut one = PassResults::new();
        for n in &names {
            one.entry(key.clone()).or_default().add(
                StatusViolation::new("", "v1", "Pod", "ns", n, "m", "deny"),
                7,
            );
        }
        let mut merged = PassResults::new();
        for part in names.chunks(13) {
            let mut mine = PassResults::new();
            for n in part {
                mine.entry(key.clone()).or_default().add(
                    StatusViolation::new("", "v1", "Pod", "ns", n, "m", "deny"),
                    7,
                );
            }
            merge(&mut merged, mine, 7);
        }
        assert_eq!(merged[&key].total, 50);
        assert_eq!(merged[&key].violations(7), one[&key].violations(7));
    }
}
