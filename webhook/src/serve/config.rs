//! Command-line flags of `serve` and their validation into a [`ServeConfig`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tollgate_engine::rvm::Evaluator;

use crate::cli::EvaluatorFlag;

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

/// Flags of `tollgate serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// HTTPS address for admission reviews (`POST /v1/admit`).
    #[arg(long, env = "TOLLGATE_LISTEN", default_value = "0.0.0.0:8443")]
    pub listen: SocketAddr,
    /// Plain-HTTP address for `/healthz`, `/readyz` and `/metrics`.
    #[arg(long, env = "TOLLGATE_PROBE_LISTEN", default_value = "0.0.0.0:9090")]
    pub probe_listen: SocketAddr,
    /// Policy files or directories (repeatable), reloaded on change; the embedded tracker pack
    /// when none is given.
    #[arg(long = "policies", env = "TOLLGATE_POLICIES", value_delimiter = ',')]
    pub policies: Vec<PathBuf>,
    /// Load the embedded tracker pack as well as `--policies` (extra templates and constraints
    /// beside the pack).
    #[arg(long, env = "TOLLGATE_WITH_EMBEDDED_PACK")]
    pub with_embedded_pack: bool,
    /// PEM certificate chain; without it a self-signed CA and certificate are generated.
    #[arg(long, env = "TOLLGATE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `--tls-cert`.
    #[arg(long, env = "TOLLGATE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA bundle: when set, clients (the API server) must present a certificate it signed.
    #[arg(long, env = "TOLLGATE_CLIENT_CA")]
    pub client_ca: Option<PathBuf>,
    /// Where to write the generated CA certificate when no `--tls-cert` is given.
    #[arg(long, default_value = "tollgate-dev-ca.pem")]
    pub dev_ca_file: PathBuf,
    /// Requests from this user are allowed without evaluation; defaults to
    /// `system:serviceaccount:$POD_NAMESPACE:$SERVICE_ACCOUNT_NAME` when both are set.
    #[arg(long, env = "TOLLGATE_SERVICE_ACCOUNT")]
    pub service_account: Option<String>,
    /// Namespace whose requests are allowed without evaluation (repeatable).
    #[arg(long = "exempt-namespace")]
    pub exempt_namespace: Vec<String>,
    /// Namespace prefix whose requests are allowed without evaluation (repeatable).
    #[arg(long = "exempt-namespace-prefix")]
    pub exempt_namespace_prefix: Vec<String>,
    /// Namespace suffix whose requests are allowed without evaluation (repeatable).
    #[arg(long = "exempt-namespace-suffix")]
    pub exempt_namespace_suffix: Vec<String>,
    /// Admit requests whose evaluation fails (default: refuse them).
    #[arg(long)]
    pub fail_open: bool,
    /// Do not expand workloads into the Pods they create.
    #[arg(long)]
    pub no_expand: bool,
    /// How often policy files and TLS files are checked for changes.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub reload_interval: Duration,
    /// Budget of one template evaluation; beyond it the constraint reports an error.
    #[arg(long, default_value = "500ms", value_parser = humantime::parse_duration)]
    pub eval_budget: Duration,
    /// Where reviews are evaluated.
    #[arg(long, value_enum, default_value_t = EvaluateOn::RequestTaskThenPool)]
    pub evaluate_on: EvaluateOn,
    /// With `--evaluate-on request-task-then-pool`: how long a template may run on the
    /// request's task before the review moves to the blocking pool.
    #[arg(long, default_value = "5ms", value_parser = humantime::parse_duration)]
    pub inline_budget: Duration,
    /// Which evaluator runs the templates.
    #[arg(long, env = "TOLLGATE_EVALUATOR", value_enum, default_value_t = EvaluatorFlag::Rvm)]
    pub evaluator: EvaluatorFlag,
    /// Limit for reading a request's headers and for handling one request.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,
    /// How long in-flight requests may finish after SIGTERM.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
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
}

impl TryFrom<ServeArgs> for ServeConfig {
    type Error = ConfigError;

    fn try_from(args: ServeArgs) -> Result<Self, Self::Error> {
        let ServeArgs {
            listen,
            probe_listen,
            policies,
            with_embedded_pack,
            tls_cert,
            tls_key,
            client_ca,
            dev_ca_file,
            service_account,
            exempt_namespace,
            exempt_namespace_prefix,
            exempt_namespace_suffix,
            fail_open,
            no_expand,
            reload_interval,
            eval_budget,
            evaluate_on,
            inline_budget,
            evaluator,
            request_timeout,
            shutdown_grace,
            log_format,
        } = args;
        for (name, d) in [
            ("reload-interval", reload_interval),
            ("eval-budget", eval_budget),
            ("inline-budget", inline_budget),
            ("request-timeout", request_timeout),
        ] {
            if d.is_zero() {
                return Err(ConfigError::ZeroDuration(name));
            }
        }
        for (name, list) in [
            ("exempt-namespace-prefix", &exempt_namespace_prefix),
            ("exempt-namespace-suffix", &exempt_namespace_suffix),
        ] {
            if list.iter().any(String::is_empty) {
                return Err(ConfigError::EmptyExemption(name));
            }
        }
        // clap's `requires` guarantees cert and key come together.
        let tls = match (tls_cert, tls_key) {
            (Some(cert), Some(key)) => TlsSource::Files { cert, key },
            _ => TlsSource::Generated {
                ca_file: dev_ca_file,
            },
        };
        let service_account = service_account.or_else(|| {
            let ns = std::env::var("POD_NAMESPACE")
                .ok()
                .filter(|s| !s.is_empty())?;
            let sa = std::env::var("SERVICE_ACCOUNT_NAME")
                .ok()
                .filter(|s| !s.is_empty())?;
            Some(format!("system:serviceaccount:{ns}:{sa}"))
        });
        Ok(ServeConfig {
            listen,
            probe_listen,
            policies,
            with_embedded_pack,
            tls,
            client_ca,
            exemptions: Exemptions {
                service_account,
                namespaces: exempt_namespace,
                prefixes: exempt_namespace_prefix,
                suffixes: exempt_namespace_suffix,
            },
            fail_open,
            expand: !no_expand,
            reload_interval,
            eval_budget,
            evaluate_on,
            inline_budget,
            evaluator: evaluator.into(),
            request_timeout,
            shutdown_grace,
            log_format,
        })
    }
}
