//! The serving certificate: from PEM files (reloaded when their content changes, which survives
//! kubelet's `..data` symlink swap) or generated for development (a CA and a leaf signed by it).
//! TLS 1.2 and 1.3 only, ring as the only crypto provider, optional client certificates.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum_server::tls_rustls::RustlsConfig;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio_util::sync::CancellationToken;

use super::metrics::Metrics;

/// A certificate, key or CA that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("failed to read {path}: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// PEM content is not what was expected.
    #[error("failed to parse {what}: {message}")]
    Pem {
        /// `certificate`, `private key` or `client CA`.
        what: &'static str,
        /// The parser's message.
        message: String,
    },
    /// PEM content of a named file is not what was expected.
    #[error("failed to parse the {what} in {path}: {message}")]
    PemFile {
        /// `certificate`, `private key` or `client CA`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The parser's message, and a hint when the mistake is a likely one.
        message: String,
    },
    /// rustls refused the material.
    #[error("failed to build the TLS configuration: {0}")]
    Rustls(String),
    /// The development certificate could not be generated or written.
    #[error("failed to generate the development certificate: {0}")]
    Generate(String),
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds a server configuration from PEM bytes.
pub fn server_config(
    cert_pem: &[u8],
    key_pem: &[u8],
    client_ca_pem: Option<&[u8]>,
) -> Result<ServerConfig, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Pem {
            what: "certificate",
            message: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            what: "certificate",
            message: "no CERTIFICATE block found".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsError::Pem {
        what: "private key",
        message: e.to_string(),
    })?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    let builder = match client_ca_pem {
        None => builder.with_no_client_auth(),
        Some(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for ca in CertificateDer::pem_slice_iter(pem) {
                let ca = ca.map_err(|e| TlsError::Pem {
                    what: "client CA",
                    message: e.to_string(),
                })?;
                roots.add(ca).map_err(|e| TlsError::Rustls(e.to_string()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .map_err(|e| TlsError::Rustls(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|error| TlsError::Read {
        path: path.to_path_buf(),
        error,
    })
}

/// A generated development CA and serving certificate, as PEM.
#[derive(Debug, Clone)]
pub struct DevCertificate {
    /// The CA certificate clients should trust.
    pub ca_pem: String,
    /// The serving certificate.
    pub cert_pem: String,
    /// Its private key.
    pub key_pem: String,
}

/// Generates a CA and a serving certificate for `localhost`, `127.0.0.1`, `::1` and `hosts`.
pub fn generate_dev_certificate(hosts: &[String]) -> Result<DevCertificate, TlsError> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    let err = |e: rcgen::Error| TlsError::Generate(e.to_string());
    let ca_key = KeyPair::generate().map_err(err)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "tollgate development CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key).map_err(err)?;
    let issuer = Issuer::new(ca_params, ca_key);
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    names.extend(hosts.iter().cloned());
    let leaf_key = KeyPair::generate().map_err(err)?;
    let mut leaf = CertificateParams::new(names).map_err(err)?;
    leaf.distinguished_name
        .push(DnType::CommonName, "tollgate webhook");
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).map_err(err)?;
    Ok(DevCertificate {
        ca_pem: ca_cert.pem(),
        cert_pem: leaf_cert.pem(),
        key_pem: leaf_key.serialize_pem(),
    })
}

/// Reads the PEM files and builds the configuration.
pub fn load_files(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<ServerConfig, TlsError> {
    let ca = client_ca.map(read).transpose()?;
    let (cert_pem, key_pem) = (read(cert)?, read(key)?);
    server_config(&cert_pem, &key_pem, ca.as_deref()).map_err(|e| match e {
        TlsError::Pem { what, message } => {
            let path = match what {
                "certificate" => cert,
                "private key" => key,
                _ => client_ca.unwrap_or(cert),
            };
            let swapped = what == "private key"
                && String::from_utf8_lossy(&key_pem).contains("-----BEGIN CERTIFICATE-----");
            let hint = if swapped {
                " (the file holds a CERTIFICATE: are --tls-cert and --tls-key swapped?)"
            } else {
                ""
            };
            TlsError::PemFile {
                what,
                path: path.to_path_buf(),
                message: format!("{message}{hint}"),
            }
        }
        other => other,
    })
}

/// Polls the certificate and key files and swaps a new configuration in when their content
/// changes. A pair that does not load (a half-written rotation) is logged and retried; the
/// previous certificate keeps serving meanwhile.
pub async fn watch(
    config: RustlsConfig,
    cert: PathBuf,
    key: PathBuf,
    client_ca: Option<PathBuf>,
    interval: Duration,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let snapshot = |cert: &Path, key: &Path, ca: Option<&Path>| {
        (
            std::fs::read(cert).ok(),
            std::fs::read(key).ok(),
            ca.and_then(|c| std::fs::read(c).ok()),
        )
    };
    let mut last = snapshot(&cert, &key, client_ca.as_deref());
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
        let now = snapshot(&cert, &key, client_ca.as_deref());
        if now == last {
            continue;
        }
        match load_files(&cert, &key, client_ca.as_deref()) {
            Ok(new) => {
                config.reload_from_config(Arc::new(new));
                last = now;
                Metrics::reload(&metrics.tls_reloads, true);
                tracing::info!(cert = %cert.display(), "serving certificate reloaded");
            }
            Err(error) => {
                Metrics::reload(&metrics.tls_reloads, false);
                tracing::error!(%error, "certificate reload failed; the previous certificate stays in use");
                last = now;
            }
        }
    }
}
