//! What request handlers share: the live policy set and data snapshot (each swapped whole),
//! readiness and metrics.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::{ArcSwap, ArcSwapOption};
use tollgate_engine::{DataSnapshot, PolicySet};

use super::config::{EvaluateOn, Exemptions};
use super::metrics::Metrics;

/// Shared server state. Cheap to clone (everything is behind `Arc`).
#[derive(Clone, Debug)]
pub struct AppState {
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
    tls_bound: Arc<AtomicBool>,
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
        AppState {
            policies: Arc::new(ArcSwapOption::empty()),
            data: Arc::new(ArcSwap::from_pointee(DataSnapshot::default())),
            metrics,
            admission: Arc::new(admission),
            policy_report: Arc::new(ArcSwap::from_pointee(PolicyReport {
                waiting_for: vec!["the first policy set".into()],
                problems: Vec::new(),
            })),
            tls_bound: Arc::new(AtomicBool::new(false)),
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
