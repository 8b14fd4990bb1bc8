//! `examples/` cannot rot: every AdmissionReview there gets the answer its name promises
//! (`review-allowed`, `review-warned`, `review-denied`), from `tollgate eval` and from
//! `tollgate serve` at the address, with the CA and the file that serve's startup hint names;
//! and the development CA that `serve` writes by default is ignored by git.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests assert by unwrapping

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Answer {
    Allowed,
    Warned,
    Denied,
}

/// Every `examples/*.json`, with the answer its name promises; a file named otherwise fails.
fn examples() -> Vec<(String, Answer)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(root().join("examples")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().to_string();
        if !name.ends_with(".json") {
            continue;
        }
        let answer = match name.trim_end_matches(".json").split('-').nth(1) {
            Some("allowed") => Answer::Allowed,
            Some("warned") => Answer::Warned,
            Some("denied") => Answer::Denied,
            _ => panic!("examples/{name}: name it review-<allowed|warned|denied>[-what].json"),
        };
        out.push((format!("examples/{name}"), answer));
    }
    out.sort();
    assert!(out.len() >= 3, "{out:?}");
    out
}

#[test]
fn every_example_gets_its_answer_from_eval() {
    for (file, answer) in examples() {
        let out = assert_cmd::Command::cargo_bin("tollgate")
            .unwrap()
            .current_dir(root())
            .args(["eval", "-f", &file, "--format", "json"])
            .output()
            .unwrap();
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        let actions: Vec<&str> = doc["results"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r["enforcementActions"].as_array().unwrap())
            .map(|a| a.as_str().unwrap())
            .collect();
        let (code, expected): (i32, &[&str]) = match answer {
            Answer::Allowed => (0, &[]),
            Answer::Warned => (0, &["warn"]),
            Answer::Denied => (1, &["deny"]),
        };
        assert_eq!(out.status.code(), Some(code), "{file}: {doc}");
        assert_eq!(actions, expected, "{file}: {doc}");
    }
}

struct Server(Child);

impl Drop for Server {
    /// A failing test must not leave a server running.
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The pieces of `try: curl --cacert CA -H '...' --data @FILE URL`.
struct Hint {
    ca: PathBuf,
    file: String,
    url: String,
}

fn parse_hint(line: &str) -> Hint {
    let words: Vec<&str> = line.split_whitespace().collect();
    let after = |flag: &str| {
        let i = words.iter().position(|w| *w == flag).unwrap();
        words[i + 1]
    };
    assert_eq!(words[..2], ["try:", "curl"], "{line}");
    Hint {
        ca: PathBuf::from(after("--cacert")),
        file: after("--data").strip_prefix('@').unwrap().to_string(),
        url: words.last().unwrap().to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_startup_hint_names_an_example_and_the_server_answers_every_example() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    // Run from the checkout's root, as the README says; the CA goes to a scratch directory.
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("tollgate"))
        .current_dir(root())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--probe-listen",
            "127.0.0.1:0",
        ])
        .arg("--dev-ca-file")
        .arg(dir.path().join("ca.pem"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let server = Server(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("serve printed no startup hint");
    let hint = parse_hint(&line);
    assert!(
        root().join(&hint.file).is_file(),
        "the hint names {}, which is not in the checkout",
        hint.file
    );
    let denied = examples()
        .into_iter()
        .find(|(f, _)| *f == hint.file)
        .unwrap_or_else(|| panic!("the hint names {}, not an example", hint.file));
    assert_eq!(denied.1, Answer::Denied, "the hint should show a denial");

    let client = reqwest::Client::builder()
        .tls_certs_only([
            reqwest::Certificate::from_pem(&std::fs::read(&hint.ca).unwrap()).unwrap(),
        ])
        .build()
        .unwrap();
    // The hint is printed once the listener is bound; the policies may still be loading.
    let deadline = Instant::now() + Duration::from_secs(30);
    for (file, answer) in examples() {
        let body = std::fs::read(root().join(&file)).unwrap();
        let review = loop {
            let resp: Value = client
                .post(&hint.url)
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let not_ready = resp["response"]["status"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("has not published its policies"));
            if !not_ready || Instant::now() > deadline {
                break resp;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let response = &review["response"];
        let warnings = response["warnings"].as_array().map_or(0, Vec::len);
        let got = match (response["allowed"].as_bool(), warnings) {
            (Some(false), _) => Answer::Denied,
            (Some(true), 0) => Answer::Allowed,
            (Some(true), _) => Answer::Warned,
            (None, _) => panic!("{file}: {review}"),
        };
        assert_eq!(got, answer, "{file}: {review}");
        let sent: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(response["uid"], sent["request"]["uid"], "{file}");
    }
    drop(server);
}

/// `tollgate serve` without `--dev-ca-file` writes `tollgate-dev-ca.pem` to the current
/// directory, usually the checkout: git must not see it.
#[test]
fn the_default_dev_ca_file_is_ignored_by_git() {
    let help = assert_cmd::Command::cargo_bin("tollgate")
        .unwrap()
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    let default = regex::Regex::new(r"--dev-ca-file <[A-Z_]+>\s+[^\[]*\[default: ([^\]]+)\]")
        .unwrap()
        .captures(&help)
        .unwrap_or_else(|| panic!("no default for --dev-ca-file in:\n{help}"))[1]
        .to_string();
    assert!(
        !default.contains('/'),
        "written to the current directory: {default}"
    );
    if !root().join(".git").exists() {
        eprintln!("not a git checkout (a source tarball): nothing to dirty");
        return;
    }
    let status = Command::new("git")
        .current_dir(root())
        .args(["check-ignore", "--quiet", "--no-index", &default])
        .status()
        .unwrap();
    assert!(status.success(), "{default} is not ignored by .gitignore");
}
