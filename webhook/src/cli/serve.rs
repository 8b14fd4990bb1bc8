//! `tollgate serve`: its flags, their validation into a [`ServeConfig`], and running the
//! admission webhook until SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use super::EvaluatorFlag;
use crate::cluster::ClusterConfig;
use crate::serve::config::{
    ConfigError, EvaluateOn, Exemptions, LogFormat, ServeConfig, TlsSource,
};
use crate::serve::server::Server;

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
    /// Read Namespaces from the Kubernetes API server (in-cluster service account, or
    /// KUBECONFIG): `namespaceSelector` and `input.review.namespaceObject` then work as in
    /// Gatekeeper's webhook.
    #[arg(long, env = "TOLLGATE_CLUSTER")]
    pub cluster: bool,
    /// Tollgate's own namespace in cluster mode.
    #[arg(long, env = "POD_NAMESPACE")]
    pub namespace: Option<String>,
    /// In cluster mode, keep `metadata.managedFields` of the objects synced into
    /// `data.inventory` (dropped by default: most of their bytes, read by no policy).
    #[arg(long, requires = "cluster")]
    pub sync_managed_fields: bool,
    /// In cluster mode, time between audit passes (run by the replica holding the status
    /// Lease); 0 disables the audit.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub audit_interval: Duration,
    /// Objects per list request of the audit.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..))]
    pub audit_chunk_size: u32,
    /// Violations kept in each constraint's `status.violations` (all are counted in
    /// `status.totalViolations`).
    #[arg(long, default_value_t = 20)]
    pub constraint_violations_limit: usize,
    /// Audit only the kinds the constraints name (every listable kind when a constraint names
    /// none).
    #[arg(long)]
    pub audit_match_kind_only: bool,
    /// Also write each audit pass as `wgpolicyk8s.io/v1alpha2` PolicyReports and
    /// ClusterPolicyReports, with every violation (the constraints' status is capped).
    #[arg(long)]
    pub policy_reports: bool,
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
            cluster,
            namespace,
            sync_managed_fields,
            audit_interval,
            audit_chunk_size,
            constraint_violations_limit,
            audit_match_kind_only,
            policy_reports,
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
            cluster: if cluster {
                Some(ClusterConfig {
                    namespace: namespace
                        .filter(|n| !n.is_empty())
                        .ok_or(ConfigError::NoNamespace)?,
                    pod_name: std::env::var("POD_NAME").unwrap_or_else(|_| "tollgate".into()),
                    sync_managed_fields,
                    audit: crate::cluster::audit::AuditSettings {
                        interval: audit_interval,
                        chunk_size: audit_chunk_size,
                        violations_limit: constraint_violations_limit,
                        match_kind_only: audit_match_kind_only,
                        policy_reports,
                    },
                })
            } else {
                None
            },
        })
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        // A closed stderr must not turn every log line into a panic in a request handler.
        .log_internal_errors(false)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Starts the server; exit 0 after a clean shutdown, 2 when it cannot start.
pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = ServeConfig::try_from(args)?;
    init_logging(config.log_format);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    runtime.block_on(async move {
        let server = Server::bind(config).await?;
        let shutdown = CancellationToken::new();
        tokio::spawn(stop_on_signal(shutdown.clone()));
        server.run(shutdown).await
    })?;
    Ok(ExitCode::SUCCESS)
}

async fn stop_on_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    shutdown.cancel();
}
