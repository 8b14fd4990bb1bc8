//! Refuses TLS 1.0/1.1 clients with the alert the TLS specification asks for.
//!
//! rustls never negotiates below TLS 1.2, but it checks a ClientHello's extensions before its
//! version, so an old client hears `handshake_failure` and cannot tell that it should upgrade.
//! This acceptor runs before rustls: it peeks (does not consume) the first record, and when it
//! is a ClientHello whose highest version is below TLS 1.2 it answers a fatal
//! `protocol_version` alert (RFC 8446 §4.2.1, RFC 5246 §E.1) and closes. Everything else,
//! including garbage, goes to rustls untouched.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::time::Duration;

use axum_server::accept::Accept;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Record header (5 bytes), handshake type and length (4), client_version (2).
const HELLO_PREFIX: usize = 11;
const HANDSHAKE: u8 = 0x16;
const CLIENT_HELLO: u8 = 0x01;
const ALERT: u8 = 0x15;
const FATAL: u8 = 2;
const PROTOCOL_VERSION: u8 = 70;
const TLS12: u16 = 0x0303;

/// The client_version of a ClientHello offering nothing newer than TLS 1.1, read from the start
/// of a connection; `None` for anything else (a TLS 1.2/1.3 hello keeps 0x0303 there).
pub fn legacy_hello_version(prefix: &[u8]) -> Option<u16> {
    if prefix.len() < HELLO_PREFIX || prefix[0] != HANDSHAKE || prefix[5] != CLIENT_HELLO {
        return None;
    }
    let version = u16::from_be_bytes([prefix[9], prefix[10]]);
    (prefix[9] == 3 && version < TLS12).then_some(version)
}

/// The fatal `protocol_version` alert record, in the client's own record version.
pub fn protocol_version_alert(version: u16) -> [u8; 7] {
    let [major, minor] = version.to_be_bytes();
    [ALERT, major, minor, 0, 2, FATAL, PROTOCOL_VERSION]
}

/// The acceptor: put it inside the rustls acceptor (`RustlsAcceptor::acceptor`).
#[derive(Debug, Clone, Copy)]
pub struct RefuseLegacyHello {
    /// How long the first bytes may take to arrive (the handshake timeout's job, which only
    /// starts after this acceptor).
    pub first_bytes_timeout: Duration,
}

impl<S: Send + 'static> Accept<TcpStream, S> for RefuseLegacyHello {
    type Stream = TcpStream;
    type Service = S;
    type Future = Pin<Box<dyn Future<Output = io::Result<(TcpStream, S)>> + Send>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let limit = self.first_bytes_timeout;
        Box::pin(async move {
            let prefix = tokio::time::timeout(limit, peek_prefix(&stream))
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no ClientHello"))??;
            if let Some(version) = legacy_hello_version(&prefix) {
                refuse(stream, version).await;
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionRefused,
                    format!(
                        "ClientHello offers at most version {version:#06x}; TLS 1.2 is the minimum"
                    ),
                ));
            }
            Ok((stream, service))
        })
    }
}

/// Peeks until the hello prefix is there, the peer stops sending, or the bytes cannot be a
/// handshake record. A hello arrives in one segment in practice; the sleeps only cover a client
/// that trickles it, and they double (up to 256 ms) so that one stalling on purpose costs a few
/// dozen wake-ups until the timeout, not thousands.
async fn peek_prefix(stream: &TcpStream) -> io::Result<Vec<u8>> {
    let mut buf = [0u8; HELLO_PREFIX];
    let mut pause = Duration::from_millis(2);
    loop {
        let n = stream.peek(&mut buf).await?;
        if n == 0 || n >= HELLO_PREFIX || buf[0] != HANDSHAKE {
            return Ok(buf[..n].to_vec());
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(256));
    }
}

async fn refuse(mut stream: TcpStream, version: u16) {
    // Best effort: the peer may already be gone, and the connection is closed either way.
    let _ = stream.write_all(&protocol_version_alert(version)).await;
    let _ = stream.shutdown().await;
    tracing::debug!(
        version = format!("{version:#06x}"),
        "refused a pre-TLS 1.2 ClientHello"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(record: u16, client: u16) -> Vec<u8> {
        let [rm, rn] = record.to_be_bytes();
        let [cm, cn] = client.to_be_bytes();
        vec![
            HANDSHAKE,
            rm,
            rn,
            0,
            200,
            CLIENT_HELLO,
            0,
            0,
            196,
            cm,
            cn,
            0xaa,
        ]
    }

    #[test]
    fn only_hellos_below_tls12_are_legacy() {
        assert_eq!(legacy_hello_version(&hello(0x0301, 0x0302)), Some(0x0302));
        assert_eq!(legacy_hello_version(&hello(0x0301, 0x0301)), Some(0x0301));
        assert_eq!(legacy_hello_version(&hello(0x0300, 0x0300)), Some(0x0300));
        // TLS 1.2, and TLS 1.3 (which keeps 0x0303 and puts 1.3 in supported_versions).
        assert_eq!(legacy_hello_version(&hello(0x0301, 0x0303)), None);
        // Not a hello, too short, or not TLS at all: rustls answers those.
        let mut not_hello = hello(0x0301, 0x0302);
        not_hello[5] = 2;
        assert_eq!(legacy_hello_version(&not_hello), None);
        assert_eq!(legacy_hello_version(&hello(0x0301, 0x0302)[..10]), None);
        assert_eq!(legacy_hello_version(b"GET / HTTP/1.1\r\n"), None);
    }

    #[test]
    fn the_alert_is_a_fatal_protocol_version_in_the_clients_version() {
        assert_eq!(protocol_version_alert(0x0302), [0x15, 3, 2, 0, 2, 2, 70]);
    }
}
