//! What request handlers share: the live policy set and data snapshot (each swapped whole),
//! readiness and metrics.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::{ArcSwap, ArcSwapOption};
use serde_json::Value;
use tollgate_engine::{DataSnapshot, PolicySet};

use super::config::{EvaluateOn, Exemptions};
use super::metrics::Metrics;

/// Shared server state: one `Arc`, so that the clone axum makes for every request (and for
/// each layer that takes the state) is one reference count, not one per field.
#[derive(Clone, Debug)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] shares.
#[derive(Clone, Debug)]
pub struct Shared {
    /// The active policies: none until the publisher's first set; then swapped whole.
    pub policies: Arc<ArcSwapOption<PolicySet>>,
    /// Namespaces and synced objects; a request reads one snapshot.
    pub data: Arc<ArcSwap<DataSnapshot>>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Request handling settings.
    pub admission: Arc<AdmissionSettings>,
    /// What the publisher last reported.
    pub policy_report: Arc<ArcSwap<PolicyReport>>,
    /// Reads a Namespace from the API server when `data` does not have it (cluster mode).
    pub namespace_reader: Option<NamespaceReader>,
    /// Namespace patterns the cluster's Gatekeeper `Config` excludes from the webhook.
    pub config_excluded: Arc<ArcSwap<Vec<String>>>,
    /// Namespace patterns the cluster's Gatekeeper `Config` excludes from the audit.
    pub config_audit_excluded: Arc<ArcSwap<Vec<String>>>,
    /// The kinds the Config and SyncSets sync into `data.inventory`.
    pub synced_kinds: Arc<ArcSwap<std::collections::BTreeSet<tollgate_engine::gatekeeper::Gvk>>>,
    tls_bound: Arc<AtomicBool>,
    /// Other things readiness waits for (the cluster's first Namespace list).
    holds: Arc<Mutex<Vec<String>>>,
}

/// What a live Namespace read returns: the object, `None` when the API server says it does not
/// exist, or the error's text.
pub type NamespaceRead = Pin<Box<dyn Future<Output = Result<Option<Value>, String>> + Send>>;

/// A live Namespace read by name, bypassing the cache (Gatekeeper's `h.reader`).
#[derive(Clone)]
pub struct NamespaceReader(pub Arc<dyn Fn(String) -> NamespaceRead + Send + Sync>);

impl std::fmt::Debug for NamespaceReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NamespaceReader")
    }
}

/// Keeps readiness closed until released.
#[derive(Debug)]
pub struct ReadinessHold {
    holds: Arc<Mutex<Vec<String>>>,
    what: String,
}

impl ReadinessHold {
    /// What was waited for is there: stop holding readiness.
    pub fn release(self) {
        if let Ok(mut holds) = self.holds.lock()
            && let Some(i) = holds.iter().position(|h| *h == self.what)
        {
            holds.remove(i);
        }
    }
}

/// Settings the admission handler reads.
#[derive(Debug, Clone)]
pub struct AdmissionSettings {
    /// Who and what skips evaluation.
    pub exemptions: Exemptions,
    /// Admit when evaluation fails.
    pub fail_open: bool,
    /// Expand workloads to Pods.
    pub expand: bool,
    /// Where reviews are evaluated.
    pub evaluate_on: EvaluateOn,
    /// How long a template may run on the request's task (`RequestTaskThenPool`).
    pub inline_budget: std::time::Duration,
}

/// The state of the published policies, as `/readyz` tells it.
#[derive(Debug, Clone, Default)]
pub struct PolicyReport {
    /// Policy sources that have not delivered their first snapshot yet.
    pub waiting_for: Vec<String>,
    /// What is not enforced as written (each line names the source, object and error).
    pub problems: Vec<String>,
}

impl AppState {
    /// State with no policy set yet: readiness stays closed until the publisher has published
    /// what every source gave, and the HTTPS listener is bound.
    pub fn new(admission: AdmissionSettings, metrics: Arc<Metrics>) -> Self {
        AppState(Arc::new(Shared {
            policies: Arc::new(ArcSwapOption::empty()),
            data: Arc::new(ArcSwap::from_pointee(DataSnapshot::default())),
            metrics,
            admission: Arc::new(admission),
            policy_report: Arc::new(ArcSwap::from_pointee(PolicyReport {
                waiting_for: vec!["the first policy set".into()],
                problems: Vec::new(),
            })),
            namespace_reader: None,
            config_excluded: Arc::default(),
            config_audit_excluded: Arc::default(),
            synced_kinds: Arc::default(),
            tls_bound: Arc::new(AtomicBool::new(false)),
            holds: Arc::new(Mutex::new(Vec::new())),
        }))
    }

    /// Reads Namespaces missing from `data` live (cluster mode). Set it before the state is
    /// shared: clones made earlier keep the state they were made from.
    pub fn set_namespace_reader(&mut self, reader: NamespaceReader) {
        Arc::make_mut(&mut self.0).namespace_reader = Some(reader);
    }

    /// Keeps the server unready until the hold is released.
    pub fn hold_readiness(&self, what: &str) -> ReadinessHold {
        if let Ok(mut holds) = self.holds.lock() {
            holds.push(what.to_string());
        }
        ReadinessHold {
            holds: Arc::clone(&self.holds),
            what: what.to_string(),
        }
    }

    /// State serving a set built elsewhere (the fuzz targets), policies counted as published.
    pub fn with_policies(
        policies: PolicySet,
        admission: AdmissionSettings,
        metrics: Arc<Metrics>,
    ) -> Self {
        let state = Self::new(admission, metrics);
        state.policies.store(Some(Arc::new(policies)));
        state.policy_report.store(Arc::new(PolicyReport::default()));
        state
    }

    /// Marks the HTTPS listener as bound.
    pub fn set_tls_bound(&self) {
        self.tls_bound.store(true, Ordering::Release);
    }

    /// Why the server is not ready, or `None` when it is: every policy source has delivered
    /// and its policies are published, and the HTTPS listener is bound.
    pub fn not_ready_because(&self) -> Option<String> {
        let report = self.policy_report.load();
        if !report.waiting_for.is_empty() {
            return Some(format!("waiting for {}", report.waiting_for.join(", ")));
        }
        if self.policies.load().is_none() {
            return Some("no policy set is published yet".into());
        }
        if let Ok(holds) = self.holds.lock()
            && !holds.is_empty()
        {
            return Some(format!("waiting for {}", holds.join(", ")));
        }
        if !self.tls_bound.load(Ordering::Acquire) {
            return Some("the HTTPS listener is not bound yet".into());
        }
        None
    }

    /// Ready to answer admission reviews.
    pub fn is_ready(&self) -> bool {
        self.not_ready_because().is_none()
    }
}
