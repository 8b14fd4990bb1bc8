//! The hardened TLS defaults, checked from outside with the `openssl` CLI against a server
//! started in-process: TLS 1.0/1.1 are refused with a `protocol_version` alert even when the
//! client allows everything (`-cipher 'DEFAULT:@SECLEVEL=0'`), TLS 1.2 without forward secrecy
//! is refused, and TLS 1.2 (ECDHE) and 1.3 complete. Skips with a message when `openssl` is not
//! installed.
//!
//! rustls alone would answer `handshake_failure` (it checks a TLS 1.0/1.1 ClientHello's missing
//! signature_algorithms before its version); `serve::legacy_hello` answers those itself.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests assert by unwrapping

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tollgate::serve::config::ServeConfig;
use tollgate::serve::server::Server;

fn config(dir: &Path) -> ServeConfig {
    common::loopback_config(dir)
}

fn openssl_present() -> bool {
    let found = Command::new("openssl")
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found || std::env::var_os("TOLLGATE_REQUIRE_ORACLES").is_none(),
        "the openssl CLI is required (TOLLGATE_REQUIRE_ORACLES) but was not found"
    );
    found
}

/// `openssl s_client` against `addr` with `args`; returns (exit success, stdout + stderr).
fn s_client(addr: SocketAddr, args: &[&str]) -> (bool, String) {
    let mut child = Command::new("openssl")
        .arg("s_client")
        .arg("-connect")
        .arg(addr.to_string())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("openssl s_client {args:?} did not finish");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

struct Running {
    addr: SocketAddr,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

async fn start() -> Running {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::bind(config(dir.path())).await.unwrap();
    let addr = server.https_addr().unwrap();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(server.run(shutdown.clone()));
    Running {
        addr,
        shutdown,
        task,
        _dir: dir,
    }
}

impl Running {
    /// Runs `check` (blocking: it calls openssl) against the server, then stops the server.
    async fn check(self, check: fn(SocketAddr) -> Vec<String>) {
        let addr = self.addr;
        let failures = tokio::task::spawn_blocking(move || check(addr))
            .await
            .unwrap();
        self.shutdown.cancel();
        self.task.await.unwrap().unwrap();
        assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    }
}

/// The check, exactly: `openssl s_client -tls1_1 -cipher 'DEFAULT:@SECLEVEL=0'` (and
/// `-tls1`) must get a `protocol_version` alert (70), and no session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls10_and_tls11_get_a_protocol_version_alert() {
    if !openssl_present() {
        eprintln!("skipping: the openssl CLI is not installed");
        return;
    }
    start()
        .await
        .check(|addr| {
            let mut failures = Vec::new();
            for old in ["-tls1_1", "-tls1"] {
                let (ok, out) = s_client(addr, &[old, "-cipher", "DEFAULT:@SECLEVEL=0"]);
                if ok
                    || !out.to_lowercase().contains("alert protocol version")
                    || out.contains("New, TLSv1")
                {
                    failures.push(format!(
                        "{old}: expected a protocol_version alert (70) and no session, got:\n{out}"
                    ));
                }
            }
            failures
        })
        .await;
}

/// TLS 1.2 without forward secrecy finds no cipher suite in common; TLS 1.2 (ECDHE) and
/// TLS 1.3 complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_tls12_and_tls13_complete_a_handshake() {
    if !openssl_present() {
        eprintln!("skipping: the openssl CLI is not installed");
        return;
    }
    start()
        .await
        .check(|addr| {
            let mut failures = Vec::new();
            let (ok, out) = s_client(addr, &["-tls1_2", "-cipher", "AES128-SHA:@SECLEVEL=0"]);
            if ok || !out.to_lowercase().contains("alert handshake failure") {
                failures.push(format!(
                    "-tls1_2 AES128-SHA: expected a handshake_failure alert, got:\n{out}"
                ));
            }
            for (flag, version) in [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")] {
                let (ok, out) = s_client(addr, &[flag]);
                if !ok || !out.contains(&format!("New, {version}, Cipher is")) {
                    failures.push(format!("{flag}: expected a {version} session, got:\n{out}"));
                }
            }
            failures
        })
        .await;
}

/// A TLS 1.1 ClientHello that arrives in pieces still gets the `protocol_version` alert: the
/// server waits for the whole record prefix instead of passing a fragment to rustls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_tls11_hello_gets_the_alert_too() {
    use std::io::{Read, Write};
    start()
        .await
        .check(|addr| {
            // Record (TLS 1.0 framing), ClientHello for TLS 1.1: random, no session id, one
            // cipher suite (TLS_RSA_WITH_AES_128_CBC_SHA), null compression.
            let mut body = vec![0x03, 0x02];
            body.extend([0x11; 32]);
            body.extend([0x00, 0x00, 0x02, 0x00, 0x2f, 0x01, 0x00]);
            let mut hello = vec![0x01, 0x00, 0x00, body.len() as u8];
            hello.extend(&body);
            let mut record = vec![0x16, 0x03, 0x01, 0x00, hello.len() as u8];
            record.extend(&hello);
            let mut tcp = std::net::TcpStream::connect(addr).unwrap();
            tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            for piece in [&record[..3], &record[3..8], &record[8..]] {
                tcp.write_all(piece).unwrap();
                std::thread::sleep(Duration::from_millis(40));
            }
            let mut answer = Vec::new();
            let _ = tcp.read_to_end(&mut answer);
            if answer == [0x15, 0x03, 0x02, 0x00, 0x02, 0x02, 70] {
                Vec::new()
            } else {
                vec![format!(
                    "expected a protocol_version alert, got {answer:02x?}"
                )]
            }
        })
        .await;
}
