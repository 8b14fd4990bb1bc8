//! The server's validated configuration ([`ServeConfig`]); the flags that produce it are in
//! `cli/serve.rs`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tollgate_engine::rvm::Evaluator;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Where a review is evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EvaluateOn {
    /// The request's own task, with every template limited to `--inline-budget`; a review
    /// that runs past it is evaluated again on the blocking pool with the full budget. Ordinary
    /// reviews skip the thread hand-off, and a runaway template holds a runtime worker for the
    /// inline budget at most.
    RequestTaskThenPool,
    /// tokio's blocking pool: a slow or runaway template holds a pool thread, never one of the
    /// runtime's workers, so other requests keep being accepted and answered meanwhile.
    BlockingPool,
    /// The request's own task: no thread hand-off, but a runaway template holds a runtime
    /// worker until the evaluation budget stops it.
    RequestTask,
}

/// Where the serving certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSource {
    /// PEM files, reloaded when their content changes.
    Files {
        /// Certificate chain.
        cert: PathBuf,
        /// Private key.
        key: PathBuf,
    },
    /// A generated CA and serving certificate; the CA is written to this file.
    Generated {
        /// CA output file.
        ca_file: PathBuf,
    },
}

/// Which requests skip evaluation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exemptions {
    /// The webhook's own identity (`system:serviceaccount:<ns>:<name>`).
    pub service_account: Option<String>,
    /// Exact namespaces.
    pub namespaces: Vec<String>,
    /// Namespace prefixes.
    pub prefixes: Vec<String>,
    /// Namespace suffixes.
    pub suffixes: Vec<String>,
}

impl Exemptions {
    /// True when a namespace is exempt.
    pub fn namespace_exempt(&self, ns: &str) -> bool {
        !ns.is_empty()
            && (self.namespaces.iter().any(|n| n == ns)
                || self.prefixes.iter().any(|p| ns.starts_with(p.as_str()))
                || self.suffixes.iter().any(|s| ns.ends_with(s.as_str())))
    }
}

/// Validated configuration of the server.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// HTTPS address.
    pub listen: SocketAddr,
    /// Probe address.
    pub probe_listen: SocketAddr,
    /// Policy paths; empty = embedded pack.
    pub policies: Vec<PathBuf>,
    /// Also load the embedded pack when `policies` is not empty.
    pub with_embedded_pack: bool,
    /// Certificate source.
    pub tls: TlsSource,
    /// Client CA for mutual TLS.
    pub client_ca: Option<PathBuf>,
    /// Who and what is exempt.
    pub exemptions: Exemptions,
    /// Admit on evaluation errors.
    pub fail_open: bool,
    /// Expand workloads.
    pub expand: bool,
    /// Poll interval for policy and TLS files.
    pub reload_interval: Duration,
    /// Per-evaluation budget.
    pub eval_budget: Duration,
    /// Where reviews are evaluated.
    pub evaluate_on: EvaluateOn,
    /// How long a template may run on the request's task (`RequestTaskThenPool`).
    pub inline_budget: Duration,
    /// Which evaluator runs the templates.
    pub evaluator: Evaluator,
    /// Header-read and request timeout.
    pub request_timeout: Duration,
    /// Drain time on shutdown.
    pub shutdown_grace: Duration,
    /// Log format.
    pub log_format: LogFormat,
    /// Read Namespaces (and, later, policies and data) from the API server.
    pub cluster: Option<crate::cluster::ClusterConfig>,
}

/// A flag combination that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A duration that must be positive is zero.
    #[error("--{0} must be greater than zero")]
    ZeroDuration(&'static str),
    /// An empty exemption pattern would exempt everything.
    #[error("--{0} must not be empty")]
    EmptyExemption(&'static str),
    /// `--cluster` without tollgate's own namespace.
    #[error(
        "--cluster needs tollgate's namespace: set POD_NAMESPACE (the chart does) or --namespace"
    )]
    NoNamespace,
}
