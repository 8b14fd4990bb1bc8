//! Prometheus metrics with Gatekeeper's names and labels where the meaning is the same
//! (`gatekeeper_validation_request_count_total`, `gatekeeper_validation_request_duration_seconds`,
//! `gatekeeper_constraint_templates`, `gatekeeper_constraints`), plus tollgate's own
//! per-constraint evaluation time and reload counters.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::{Arc, Weak};

use arc_swap::ArcSwapOption;
use tollgate_engine::PolicySet;
use tollgate_engine::policy_set::CompiledConstraint;

/// Gatekeeper's validation duration buckets (`pkg/webhook/stats_reporter.go`), reaching 10 s,
/// beyond any webhook timeout.
const REQUEST_BUCKETS: [f64; 46] = [
    0.001, 0.002, 0.003, 0.004, 0.005, 0.006, 0.007, 0.008, 0.009, 0.01, 0.02, 0.03, 0.04, 0.05,
    0.06, 0.07, 0.08, 0.09, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.5, 2.0, 2.5, 3.0,
    3.5, 4.0, 4.5, 5.0, 5.5, 6.0, 6.5, 7.0, 7.5, 8.0, 8.5, 9.0, 9.5, 10.0,
];

/// Labels of the request counter. Static strings: every request builds one, and a `String`
/// would be an allocation per request for a value from a fixed set.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// `allow`, `deny` or `error`, as Gatekeeper reports them.
    pub admission_status: &'static str,
    /// `true` for dry-run requests, else `false`.
    pub admission_dryrun: &'static str,
}

/// Labels of the request duration histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    /// `allow`, `deny` or `error`.
    pub admission_status: &'static str,
}

/// Labels of template gauges.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TemplateLabels {
    /// `active` or `error`.
    pub status: String,
}

/// Labels of constraint gauges.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConstraintLabels {
    /// `deny`, `warn`, `dryrun` or `scoped`.
    pub enforcement_action: String,
    /// `active`.
    pub status: String,
}

/// Labels of per-constraint metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConstraintId {
    /// Constraint kind.
    pub kind: String,
    /// Constraint name.
    pub name: String,
}

/// Labels of violation counts.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ViolationLabels {
    /// Constraint name.
    pub constraint: String,
    /// The action taken.
    pub enforcement_action: String,
}

/// Labels of template ingestion metrics (Gatekeeper's).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct IngestionLabels {
    /// `active` (compiled) or `error`.
    pub status: String,
}

/// Labels of the policy problem gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProblemLabels {
    /// `last-good`: the object's previous version is still enforced; `nothing`: nothing of it
    /// is.
    pub enforced: String,
}

/// Labels of watch metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WatchLabels {
    /// The watched resource (`namespaces`).
    pub resource: String,
}

/// Labels of reload counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    /// `success` or `failure`.
    pub result: String,
}

/// Labels of the audit's violation gauge (Gatekeeper's `gatekeeper_violations`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AuditViolationLabels {
    /// deny, warn, dryrun or scoped.
    pub enforcement_action: String,
}

/// Labels of the oversized request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OversizedLabels {
    /// `drained`: the rest of the body was read and thrown away, the connection kept; `unread`:
    /// refused without reading it to its end (an HTTP/1.x connection is closed).
    pub body: String,
}

/// Every metric the server exports.
pub struct Metrics {
    registry: Registry,
    /// Admission requests by outcome.
    pub requests: Family<RequestLabels, Counter>,
    /// Admission request duration by outcome.
    pub request_duration: Family<StatusLabels, Histogram>,
    /// Templates by status.
    pub templates: Family<TemplateLabels, Gauge>,
    /// Constraints by enforcement action.
    pub constraints: Family<ConstraintLabels, Gauge>,
    /// Time of one template evaluation, per constraint.
    pub constraint_eval: Family<ConstraintId, Histogram>,
    /// Results by constraint and action (dry-run results are only counted here).
    pub violations: Family<ViolationLabels, Counter>,
    /// Policy set reloads.
    pub policy_reloads: Family<ReloadLabels, Counter>,
    /// Template compilations by result.
    pub ingestions: Family<IngestionLabels, Counter>,
    /// Template compilation time by result.
    pub ingestion_duration: Family<IngestionLabels, Histogram>,
    /// Objects of the sources not enforced as written, now.
    pub problems: Family<ProblemLabels, Gauge>,
    /// Watches of the API server that failed and were started again.
    pub watch_restarts: Family<WatchLabels, Counter>,
    /// Certificate reloads.
    pub tls_reloads: Family<ReloadLabels, Counter>,
    /// Reviews that ran past the inline budget and were evaluated again on the blocking pool.
    pub moved_to_pool: Counter,
    /// Requests refused with 413 because the body is over the limit.
    pub oversized: Family<OversizedLabels, Counter>,
    /// Violations found by the last audit pass, by enforcement action.
    pub audit_violations: Family<AuditViolationLabels, Gauge>,
    /// `constraint_eval`'s series for the live policy set, resolved once per set.
    constraint_timers: ArcSwapOption<ConstraintTimers>,
    /// Duration of audit passes.
    pub audit_duration: Histogram,
    /// Start of the last audit pass (Unix seconds).
    pub audit_last_run: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// End of the last audit pass (Unix seconds).
    pub audit_last_run_end: Gauge<f64, std::sync::atomic::AtomicU64>,
}

/// One policy set's per-constraint evaluation histograms, found by the constraint's address.
///
/// The set is held weakly, and compared by address: while this exists the set's allocation
/// does, so a newer set cannot have the same address.
pub struct ConstraintTimers {
    set: Weak<PolicySet>,
    by_address: Vec<(usize, Histogram)>,
}

impl ConstraintTimers {
    /// Records one evaluation of the constraint at `at` ([`address`]), one of the set's own.
    pub fn observe(&self, at: usize, took: std::time::Duration) {
        if let Ok(i) = self.by_address.binary_search_by_key(&at, |(a, _)| *a)
            && let Some((_, histogram)) = self.by_address.get(i)
        {
            histogram.observe(took.as_secs_f64());
        }
    }
}

/// Where a constraint of a set lives: what [`ConstraintTimers`] finds it by.
pub fn address(constraint: &CompiledConstraint) -> usize {
    std::ptr::from_ref(constraint) as usize
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "gatekeeper_validation_request_count",
            "The number of requests that are routed to validation webhook",
            requests.clone(),
        );
        let request_duration =
            Family::<StatusLabels, Histogram>::new_with_constructor(|| -> Histogram {
                Histogram::new(REQUEST_BUCKETS)
            });
        registry.register(
            "gatekeeper_validation_request_duration_seconds",
            "The response time in seconds",
            request_duration.clone(),
        );
        let templates = Family::<TemplateLabels, Gauge>::default();
        registry.register(
            "gatekeeper_constraint_templates",
            "Number of observed constraint templates",
            templates.clone(),
        );
        let constraints = Family::<ConstraintLabels, Gauge>::default();
        registry.register(
            "gatekeeper_constraints",
            "Current number of known constraints",
            constraints.clone(),
        );
        let constraint_eval =
            Family::<ConstraintId, Histogram>::new_with_constructor(|| -> Histogram {
                Histogram::new([
                    0.000_005, 0.00001, 0.000_025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
                    0.005, 0.01, 0.05, 0.1, 0.5, 1.0,
                ])
            });
        registry.register(
            "tollgate_constraint_evaluation_duration_seconds",
            "Time of one template evaluation for a constraint",
            constraint_eval.clone(),
        );
        let violations = Family::<ViolationLabels, Counter>::default();
        registry.register(
            "tollgate_violations",
            "Admission results by constraint and enforcement action",
            violations.clone(),
        );
        let policy_reloads = Family::<ReloadLabels, Counter>::default();
        registry.register(
            "tollgate_policy_reloads",
            "Policy set reloads by result; a failed reload keeps the previous set",
            policy_reloads.clone(),
        );
        for result in ["success", "failure"] {
            policy_reloads
                .get_or_create(&ReloadLabels {
                    result: result.into(),
                })
                .get();
        }
        let ingestions = Family::<IngestionLabels, Counter>::default();
        registry.register(
            "gatekeeper_constraint_template_ingestion_count",
            "Total number of constraint template ingestion actions",
            ingestions.clone(),
        );
        let ingestion_duration =
            Family::<IngestionLabels, Histogram>::new_with_constructor(|| -> Histogram {
                Histogram::new([
                    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
                ])
            });
        registry.register(
            "gatekeeper_constraint_template_ingestion_duration_seconds",
            "Distribution of how long it took to ingest a constraint template in seconds",
            ingestion_duration.clone(),
        );
        let problems = Family::<ProblemLabels, Gauge>::default();
        registry.register(
            "tollgate_policy_problems",
            "Policy objects not enforced as written: a template or constraint that does not compile, a file that does not parse, an object shadowed by a higher-ranked source",
            problems.clone(),
        );
        let watch_restarts = Family::<WatchLabels, Counter>::default();
        registry.register(
            "tollgate_watch_restarts",
            "Watches of the Kubernetes API server that failed and were retried (with backoff)",
            watch_restarts.clone(),
        );
        let tls_reloads = Family::<ReloadLabels, Counter>::default();
        registry.register(
            "tollgate_tls_reloads",
            "Serving certificate reloads by result",
            tls_reloads.clone(),
        );
        let moved_to_pool = Counter::default();
        registry.register(
            "tollgate_reviews_moved_to_blocking_pool",
            "Reviews that ran past --inline-budget on the request task and were evaluated again on the blocking pool",
            moved_to_pool.clone(),
        );
        let oversized = Family::<OversizedLabels, Counter>::default();
        registry.register(
            "tollgate_oversized_requests",
            "Admission requests refused with 413 because the body is over the limit, by whether the rest of the body was read to its end (drained) or not (unread, connection closed)",
            oversized.clone(),
        );
        // The audit's metrics, with Gatekeeper's names (`pkg/audit/stats_reporter.go`).
        let audit_violations = Family::<AuditViolationLabels, Gauge>::default();
        registry.register(
            "gatekeeper_violations",
            "Total number of audited violations, by enforcement action, in the last audit pass",
            audit_violations.clone(),
        );
        let audit_duration = Histogram::new([1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0]);
        registry.register(
            "gatekeeper_audit_duration_seconds",
            "Latency of audit operation in seconds",
            audit_duration.clone(),
        );
        let audit_last_run = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "gatekeeper_audit_last_run_time",
            "Timestamp of last audit run starting time",
            audit_last_run.clone(),
        );
        let audit_last_run_end = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "gatekeeper_audit_last_run_end_time",
            "Timestamp of last audit run ending time",
            audit_last_run_end.clone(),
        );
        for body in ["drained", "unread"] {
            oversized
                .get_or_create(&OversizedLabels { body: body.into() })
                .get();
        }
        Metrics {
            registry,
            moved_to_pool,
            oversized,
            requests,
            request_duration,
            templates,
            constraints,
            constraint_eval,
            violations,
            policy_reloads,
            ingestions,
            ingestion_duration,
            problems,
            watch_restarts,
            tls_reloads,
            audit_violations,
            audit_duration,
            audit_last_run,
            audit_last_run_end,
            constraint_timers: ArcSwapOption::empty(),
        }
    }

    /// The evaluation-time histograms of `set`'s constraints. Resolved on the first request
    /// after a set is published, so that a request observes its evaluations without building
    /// label strings or hashing them (ten allocations and five map lookups a review of the
    /// pack, otherwise).
    pub fn constraint_timers(&self, set: &Arc<PolicySet>) -> Arc<ConstraintTimers> {
        if let Some(timers) = self.constraint_timers.load_full()
            && std::ptr::eq(timers.set.as_ptr(), Arc::as_ptr(set))
        {
            return timers;
        }
        let mut by_address: Vec<(usize, Histogram)> = set
            .constraints()
            .iter()
            .map(|c| {
                let id = ConstraintId {
                    kind: c.constraint.kind.clone(),
                    name: c.constraint.name.clone(),
                };
                (address(c), self.constraint_eval.get_or_create_owned(&id))
            })
            .collect();
        by_address.sort_by_key(|(a, _)| *a);
        let timers = Arc::new(ConstraintTimers {
            set: Arc::downgrade(set),
            by_address,
        });
        self.constraint_timers.store(Some(Arc::clone(&timers)));
        timers
    }

    /// Counts a failed watch of `resource` (the watcher starts it again).
    pub fn watch_restarted(&self, resource: &str) {
        self.watch_restarts
            .get_or_create(&WatchLabels {
                resource: resource.into(),
            })
            .inc();
    }

    /// Counts one template compilation.
    pub fn template_ingested(&self, ok: bool, took: std::time::Duration) {
        let labels = IngestionLabels {
            status: if ok { "active" } else { "error" }.into(),
        };
        self.ingestions.get_or_create(&labels).inc();
        self.ingestion_duration
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }

    /// Sets the policy problem gauge.
    pub fn set_problems(&self, last_good: usize, nothing: usize) {
        for (enforced, n) in [("last-good", last_good), ("nothing", nothing)] {
            self.problems
                .get_or_create(&ProblemLabels {
                    enforced: enforced.into(),
                })
                .set(n as i64);
        }
    }

    /// Counts a reload of the policies: a success when nothing in the sources had a problem.
    pub fn policy_reloaded(&self, ok: bool) {
        Self::reload(&self.policy_reloads, ok);
    }

    /// Updates the template and constraint gauges for a newly active set.
    pub fn set_policies(&self, set: &PolicySet, failed_templates: usize) {
        self.templates
            .get_or_create(&TemplateLabels {
                status: "active".into(),
            })
            .set(set.templates().count() as i64);
        self.templates
            .get_or_create(&TemplateLabels {
                status: "error".into(),
            })
            .set(failed_templates as i64);
        self.constraints.clear();
        for c in set.constraints() {
            self.constraints
                .get_or_create(&ConstraintLabels {
                    enforcement_action: c.constraint.enforcement_action.clone(),
                    status: "active".into(),
                })
                .inc();
        }
    }

    /// Counts a reload.
    pub fn reload(family: &Family<ReloadLabels, Counter>, ok: bool) {
        family
            .get_or_create(&ReloadLabels {
                result: if ok { "success" } else { "failure" }.into(),
            })
            .inc();
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
