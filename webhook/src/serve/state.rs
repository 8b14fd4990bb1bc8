//! What request handlers share: the live policy set (swapped whole), readiness and metrics.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;
use tollgate_engine::PolicySet;

use super::config::{EvaluateOn, Exemptions};
use super::metrics::Metrics;

/// Shared server state. Cheap to clone (everything is behind `Arc`).
#[derive(Clone, Debug)]
pub struct AppState {
    /// The active policies; readers load, the reloader stores a new set whole.
    pub policies: Arc<ArcSwap<PolicySet>>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Request handling settings.
    pub admission: Arc<AdmissionSettings>,
    policies_loaded: Arc<AtomicBool>,
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

impl AppState {
    /// State with an initial policy set (readiness still closed until the listener is bound).
    pub fn new(policies: PolicySet, admission: AdmissionSettings, metrics: Arc<Metrics>) -> Self {
        AppState {
            policies: Arc::new(ArcSwap::from_pointee(policies)),
            metrics,
            admission: Arc::new(admission),
            policies_loaded: Arc::new(AtomicBool::new(true)),
            tls_bound: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Marks the HTTPS listener as bound.
    pub fn set_tls_bound(&self) {
        self.tls_bound.store(true, Ordering::Release);
    }

    /// Ready: policies are loaded and the HTTPS listener is bound.
    pub fn is_ready(&self) -> bool {
        self.policies_loaded.load(Ordering::Acquire) && self.tls_bound.load(Ordering::Acquire)
    }
}
