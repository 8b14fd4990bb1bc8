//! `tollgate serve` as a process: the zero-flag development mode answers over HTTPS with the CA
//! it wrote, keeps answering when its log pipe is closed, SIGTERM drains and exits 0, and the
//! process runs without transparent huge pages.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests assert by unwrapping

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;

use serde_json::{Value, json};

struct Process {
    child: Child,
    port: String,
    ca: Vec<u8>,
    log: Receiver<String>,
    seen: Vec<String>,
    _dir: tempfile::TempDir,
}

fn start() -> Process {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("tollgate"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--probe-listen",
            "127.0.0.1:0",
        ])
        .arg("--dev-ca-file")
        .arg(&ca_file)
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let (tx, log) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let port_re = regex::Regex::new(r"https://127\.0\.0\.1:(\d+)/v1/admit").unwrap();
    let mut port = None;
    let mut seen = Vec::new();
    while let Ok(line) = log.recv_timeout(std::time::Duration::from_secs(30)) {
        if let Some(c) = port_re.captures(&line) {
            port = Some(c[1].to_string());
        }
        seen.push(line);
        let probes = seen.iter().any(|l| l.contains("serving probes"));
        let ca = seen
            .iter()
            .any(|l| l.contains("generated a development CA"));
        let published = seen.iter().any(|l| l.contains("policy set published"));
        if port.is_some() && probes && ca && published {
            break;
        }
    }
    let port = port.unwrap_or_else(|| panic!("no listening line in:\n{}", seen.join("\n")));
    let ca = std::fs::read(&ca_file).unwrap();
    Process {
        child,
        port,
        ca,
        log,
        seen,
        _dir: dir,
    }
}

impl Drop for Process {
    /// A failing test must not leave a server running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Process {
    async fn admit_runc_pod(&self) -> Value {
        let client = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&self.ca).unwrap()])
            .build()
            .unwrap();
        let review = json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {"uid": "cli", "operation": "CREATE", "namespace": "logistics",
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "object": {"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": "p", "namespace": "logistics"},
                    "spec": {"runtimeClassName": "runc", "containers": []}}}
        });
        client
            .post(format!("https://localhost:{}/v1/admit", self.port))
            .json(&review)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    fn wait_for_log(&mut self, needle: &str) -> String {
        while let Ok(line) = self.log.recv_timeout(std::time::Duration::from_secs(30)) {
            self.seen.push(line.clone());
            if line.contains(needle) {
                return line;
            }
        }
        panic!("no log line with {needle:?} in:\n{}", self.seen.join("\n"));
    }

    fn terminate(&mut self) -> (Option<i32>, String) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = self.child.wait().unwrap();
        let stdout = std::io::read_to_string(self.child.stdout.take().unwrap()).unwrap();
        (exit.code(), stdout)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn development_mode_serves_the_embedded_pack_and_stops_cleanly_on_sigterm() {
    let mut server = start();
    assert!(
        server
            .seen
            .iter()
            .any(|l| l.contains("generated a development CA") && l.contains("ca.pem")),
        "{}",
        server.seen.join("\n")
    );
    // Startup says what is enforced.
    let published = server
        .seen
        .iter()
        .find(|l| l.contains("policy set published"))
        .unwrap();
    assert!(
        published.contains("\"K8sRequiredRuntimeClass\"")
            && published.contains("\"K8sRequiredRuntimeClass/tracker-runtime-class\"")
            && published.contains("problems=0"),
        "{published}"
    );
    let resp = server.admit_runc_pod().await;
    assert_eq!(resp["response"]["allowed"], false, "{resp}");
    // A CREATE has no request.name: the denial log names the object.
    let denial = server.wait_for_log("denied admission");
    assert!(
        denial.contains("namespace=\"logistics\" name=\"p\""),
        "{denial}"
    );
    let (code, stdout) = server.terminate();
    assert_eq!(code, Some(0));
    assert!(stdout.starts_with("try: curl --cacert "), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_log_pipe_does_not_break_request_handling() {
    let mut server = start();
    // Close the read end of stderr: every later log line fails to write.
    let (_, dead) = std::sync::mpsc::channel();
    drop(std::mem::replace(&mut server.log, dead));
    for _ in 0..3 {
        let resp = server.admit_runc_pod().await;
        assert_eq!(resp["response"]["allowed"], false, "{resp}");
    }
    let (code, _) = server.terminate();
    assert_eq!(code, Some(0));
}

/// mimalloc's heap on transparent huge pages cost 15 MiB of RSS at idle (webhook/src/main.rs):
/// the process turns them off for itself, whatever the system's setting.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_runs_without_transparent_huge_pages() {
    let server = start();
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.child.id())).unwrap();
    let thp = status
        .lines()
        .find_map(|l| l.strip_prefix("THP_enabled:"))
        .unwrap_or_else(|| panic!("no THP_enabled line (Linux 5.0 or later) in:\n{status}"));
    assert_eq!(thp.trim(), "0", "{status}");
    // Still serving with the flag set.
    let resp = server.admit_runc_pod().await;
    assert_eq!(resp["response"]["allowed"], false, "{resp}");
}
