//! Binding, serving and draining: the HTTPS admission listener, the probe listener and the
//! background reloaders, stopped together by one cancellation token.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::post;
use axum::serve::ListenerExt as _;
use axum_server::Handle;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use tokio_util::sync::CancellationToken;
use tollgate_engine::policy_set::BuildOptions;
use tower_http::timeout::TimeoutLayer;

use super::admission;
use super::body;
use super::config::{ServeConfig, TlsSource};
use super::files::PolicyFiles;
use super::legacy_hello::RefuseLegacyHello;
use super::metrics::Metrics;
use super::nodelay::NoDelay;
use super::probes;
use super::publisher::{Feed, Publisher, SourceSnapshot};
use super::state::{AdmissionSettings, AppState, ReadinessHold};
use super::tls;
use crate::cluster::namespaces;

/// Largest review body accepted: controller-runtime's limit for a review that carries both
/// `object` and `oldObject`.
pub const MAX_BODY_BYTES: usize = 7 * 1024 * 1024;

/// Most of an oversized body read (and thrown away) so that its client hears the 413 (see
/// [`body`]). Past it the connection is closed under the client instead: reading costs TLS
/// decryption only, nothing is kept, and no honest client comes near it.
pub const MAX_READ_BYTES: usize = 4 * MAX_BODY_BYTES;

/// The admission routes, testable with `oneshot`.
pub fn router(state: AppState, request_timeout: Duration) -> Router {
    Router::new()
        .route("/v1/admit", post(admission::admit))
        // The body arrives read whole (within MAX_BODY_BYTES); the extractor's own limit must
        // not be lower.
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            body::read_whole,
        ))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            request_timeout,
        ))
        .with_state(state)
}

/// The HTTPS acceptor chain, outermost first: rustls, the refusal of pre-TLS 1.2 hellos, and
/// `TCP_NODELAY` on the raw connection.
pub fn https_acceptor(
    tls: RustlsConfig,
    first_bytes_timeout: Duration,
) -> RustlsAcceptor<NoDelay<RefuseLegacyHello>> {
    RustlsAcceptor::new(tls).acceptor(NoDelay(RefuseLegacyHello {
        first_bytes_timeout,
    }))
}

/// What `--cluster` runs: the client, the readiness it holds, and its policy source's feed.
struct ClusterParts {
    client: kube::Client,
    config: crate::cluster::ClusterConfig,
    namespaces_listed: ReadinessHold,
    policies_listed: ReadinessHold,
    synced: ReadinessHold,
    feed: Feed,
}

/// A server whose listeners are bound; its policy sources start delivering in [`Server::run`].
pub struct Server {
    config: ServeConfig,
    state: AppState,
    cluster: Option<ClusterParts>,
    publisher: Publisher,
    pack: Option<Feed>,
    files: Option<Feed>,
    https: std::net::TcpListener,
    probes: tokio::net::TcpListener,
    tls: RustlsConfig,
    /// PEM of the generated CA, when the certificate was generated.
    dev_ca: Option<String>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("https", &self.https.local_addr().ok())
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Loads TLS material and binds both listeners (port 0 picks a free port). Fails fast,
    /// naming the file, on bad certificates. Policies never stop a start: what does not
    /// compile is reported and left out (see [`Publisher`]).
    pub async fn bind(config: ServeConfig) -> anyhow::Result<Server> {
        let metrics = Arc::new(Metrics::new());
        let mut state = AppState::new(
            AdmissionSettings {
                exemptions: config.exemptions.clone(),
                fail_open: config.fail_open,
                expand: config.expand,
                evaluate_on: config.evaluate_on,
                inline_budget: config.inline_budget,
            },
            Arc::clone(&metrics),
        );
        let cluster_client = match &config.cluster {
            None => None,
            Some(_) => {
                let client = crate::cluster::client().await?;
                state.set_namespace_reader(namespaces::live_reader(client.clone()));
                Some(client)
            }
        };
        let mut publisher = Publisher::new(
            state.clone(),
            BuildOptions {
                accept_unknown_actions: false,
                eval_budget: Some(config.eval_budget),
                evaluator: config.evaluator,
                builtin_expansions: config.expand,
                // Keyed by the exact Rego: a file or cluster template with the pack's Rego runs
                // the same program.
                precompiled: crate::pack::precompiled(),
            },
        );
        // Ranked lowest first: files override the embedded pack.
        let pack = (config.policies.is_empty() || config.with_embedded_pack)
            .then(|| publisher.feed("pack"));
        let files = (!config.policies.is_empty()).then(|| publisher.feed("files"));
        // The cluster ranks highest: a template applied with kubectl wins over a file's.
        let cluster = match (cluster_client, &config.cluster) {
            (Some(client), Some(cluster_config)) => Some(ClusterParts {
                client,
                config: cluster_config.clone(),
                namespaces_listed: state.hold_readiness("the cluster's Namespaces"),
                policies_listed: state.hold_readiness(
                    "the cluster's ConstraintTemplates, constraints and ExpansionTemplates",
                ),
                synced: state
                    .hold_readiness("the cluster's Config, SyncSets and the kinds they sync"),
                feed: publisher.feed(crate::cluster::policies::SOURCE),
            }),
            _ => None,
        };
        let (server_config, dev_ca) = match &config.tls {
            TlsSource::Files { cert, key } => (
                tls::load_files(cert, key, config.client_ca.as_deref())?,
                None,
            ),
            TlsSource::Generated { ca_file } => {
                let dev = tls::generate_dev_certificate(&[])?;
                std::fs::write(ca_file, &dev.ca_pem).with_context(|| {
                    format!(
                        "failed to write the development CA to {}",
                        ca_file.display()
                    )
                })?;
                let client_ca = config
                    .client_ca
                    .as_deref()
                    .map(std::fs::read)
                    .transpose()
                    .context("failed to read the client CA")?;
                let cfg = tls::server_config(
                    dev.cert_pem.as_bytes(),
                    dev.key_pem.as_bytes(),
                    client_ca.as_deref(),
                )?;
                (cfg, Some(dev.ca_pem))
            }
        };
        let https = std::net::TcpListener::bind(config.listen)
            .with_context(|| format!("failed to bind {}", config.listen))?;
        https.set_nonblocking(true)?;
        let probes = tokio::net::TcpListener::bind(config.probe_listen)
            .await
            .with_context(|| format!("failed to bind {}", config.probe_listen))?;
        Ok(Server {
            config,
            state,
            cluster,
            publisher,
            pack,
            files,
            https,
            probes,
            tls: RustlsConfig::from_config(Arc::new(server_config)),
            dev_ca,
        })
    }

    /// The bound HTTPS address.
    pub fn https_addr(&self) -> std::io::Result<SocketAddr> {
        self.https.local_addr()
    }

    /// The bound probe address.
    pub fn probe_addr(&self) -> std::io::Result<SocketAddr> {
        self.probes.local_addr()
    }

    /// PEM of the generated CA (development mode only).
    pub fn dev_ca_pem(&self) -> Option<&str> {
        self.dev_ca.as_deref()
    }

    /// Shared state (tests read metrics and readiness through the probe port instead).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Registers one more policy source, ranked above those before it (the cluster source
    /// registers here). Readiness waits for its first snapshot.
    pub fn add_source(&mut self, name: &str) -> Feed {
        self.publisher.feed(name)
    }

    /// Serves until `shutdown` is cancelled, then stops accepting, lets in-flight requests
    /// finish within the grace period, and returns.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let Server {
            config,
            state,
            cluster,
            mut publisher,
            pack,
            files,
            https,
            probes,
            tls,
            dev_ca,
        } = self;
        let outcomes = publisher.outcomes();
        if let Some(feed) = pack {
            feed.send(match crate::pack::sources() {
                Ok(documents) => SourceSnapshot {
                    documents,
                    problems: Vec::new(),
                    revision: 0,
                },
                Err(e) => SourceSnapshot {
                    documents: Default::default(),
                    problems: vec![e.to_string()],
                    revision: 0,
                },
            });
        }
        if let Some(feed) = files {
            let files = PolicyFiles::new(config.policies.clone()).first_read(&feed);
            tokio::spawn(files.watch(feed, config.reload_interval, shutdown.clone()));
        }
        let mut leader = None;
        if let Some(parts) = cluster {
            let ClusterParts {
                client,
                config: cluster_config,
                namespaces_listed,
                policies_listed,
                synced,
                feed,
            } = parts;
            tokio::spawn(crate::cluster::sync::run(
                client.clone(),
                cluster_config.clone(),
                state.clone(),
                synced,
                cluster_config.sync_managed_fields,
                shutdown.clone(),
            ));
            tokio::spawn(namespaces::watch(
                client.clone(),
                state.clone(),
                namespaces_listed,
                shutdown.clone(),
            ));
            tokio::spawn(crate::cluster::policies::run(
                client.clone(),
                state.clone(),
                feed,
                policies_listed,
                outcomes.clone(),
                shutdown.clone(),
            ));
            tokio::spawn(crate::cluster::status::run(
                client.clone(),
                cluster_config.clone(),
                outcomes,
                Arc::clone(&state.synced_kinds),
                shutdown.clone(),
            ));
            let (leading, leading_rx) = tokio::sync::watch::channel(false);
            let audit = tokio::spawn(crate::cluster::audit::run(
                client.clone(),
                cluster_config.clone(),
                state.clone(),
                cluster_config.audit.clone(),
                leading_rx,
                shutdown.clone(),
            ));
            leader = Some(tokio::spawn(crate::cluster::leader::run(
                client,
                cluster_config,
                leading,
                vec![audit],
                shutdown.clone(),
            )));
        }
        let https_addr = https.local_addr()?;
        let handle: Handle<SocketAddr> = Handle::new();
        let acceptor = https_acceptor(tls.clone(), config.request_timeout);
        let mut server = axum_server::from_tcp(https)?
            .acceptor(acceptor)
            .handle(handle.clone());
        server
            .http_builder()
            .http1()
            .header_read_timeout(config.request_timeout);
        let app = router(state.clone(), config.request_timeout);
        let https_task = tokio::spawn(server.serve(app.into_make_service()));

        let probe_addr = probes.local_addr()?;
        let probe_shutdown = shutdown.clone();
        let probe_app = probes::router(state.clone());
        // Nagle off here too, for the same reason as on the admission port (see `nodelay`).
        let probes = probes.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "could not set TCP_NODELAY on a probe connection");
            }
        });
        let probe_task = tokio::spawn(async move {
            axum::serve(probes, probe_app)
                .with_graceful_shutdown(probe_shutdown.cancelled_owned())
                .await
        });

        // What the pack and the files sent compiles here while the listeners start; readiness
        // waits for both (see `Publisher::publish_sent`).
        publisher.publish_sent();
        tokio::spawn(publisher.run(shutdown.clone()));

        if handle.listening().await.is_none() {
            anyhow::bail!("the HTTPS listener on {https_addr} failed to start");
        }
        state.set_tls_bound();
        tracing::info!(address = %probe_addr, "serving probes and metrics on http://{probe_addr}");
        tracing::info!(address = %https_addr, "serving admission reviews on https://{https_addr}/v1/admit");
        if let (Some(_), TlsSource::Generated { ca_file }) = (&dev_ca, &config.tls) {
            let ca = std::fs::canonicalize(ca_file).unwrap_or_else(|_| ca_file.clone());
            tracing::info!(ca = %ca.display(), "generated a development CA; clients must trust this file");
            let port = https_addr.port();
            println!(
                "try: curl --cacert {} -H 'Content-Type: application/json' --data @examples/review-denied.json https://localhost:{port}/v1/admit",
                ca.display()
            );
        }

        if let TlsSource::Files { cert, key } = &config.tls {
            tokio::spawn(tls::watch(
                tls,
                cert.clone(),
                key.clone(),
                config.client_ca.clone(),
                config.reload_interval,
                Arc::clone(&state.metrics),
                shutdown.clone(),
            ));
        }

        shutdown.cancelled().await;
        tracing::info!("shutting down: draining in-flight requests");
        handle.graceful_shutdown(Some(config.shutdown_grace));
        let served = https_task.await.context("HTTPS server task failed")?;
        served.context("HTTPS server failed")?;
        if let Ok(Err(e)) = probe_task.await {
            tracing::warn!(error = %e, "probe server stopped with an error");
        }
        // The status leader gives its Lease up, so another replica takes over at once.
        if let Some(leader) = leader
            && tokio::time::timeout(Duration::from_secs(5), leader)
                .await
                .is_err()
        {
            tracing::warn!("the status Lease was not given up in time; it will expire");
        }
        tracing::info!("stopped");
        Ok(())
    }
}
