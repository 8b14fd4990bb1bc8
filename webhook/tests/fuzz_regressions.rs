//! Replays every committed fuzz input through the fuzz harness (`fuzz/src/lib.rs`, compiled here
//! as a module): the seed corpus `fuzz/corpus/<target>/` and the crash reproducers
//! `fuzz/regressions/<target>/`, so a crash once found stays fixed without nightly or libFuzzer.
//!
//! A panic is reported with its file, and so is an input that runs longer than
//! `TOLLGATE_FUZZ_REPLAY_SECONDS` (default 20). An abort (an allocation failure) kills the test
//! binary instead; rerun with `TOLLGATE_FUZZ_REPLAY_VERBOSE=1` to see each file before it runs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests assert by unwrapping

use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

#[path = "../../fuzz/src/lib.rs"]
mod harness;

fn inputs(target: &str) -> Vec<PathBuf> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut files = Vec::new();
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(dir).join(target)) else {
            continue;
        };
        files.extend(
            entries
                .map(|e| e.unwrap().path())
                .filter(|p| p.is_file())
                .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.')),
        );
    }
    files.sort();
    files
}

/// How long one input may take (libFuzzer's `-timeout` in `fuzz/run.sh` is 10s on a release
/// build; this is a debug build).
fn budget() -> Duration {
    let secs = std::env::var("TOLLGATE_FUZZ_REPLAY_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    Duration::from_secs(secs)
}

fn replay(target: &str, run: fn(&[u8])) {
    let files = inputs(target);
    assert!(
        !files.is_empty(),
        "no seed corpus for {target} under fuzz/corpus/{target}"
    );
    let verbose = std::env::var_os("TOLLGATE_FUZZ_REPLAY_VERBOSE").is_some();
    let mut failures = Vec::new();
    for file in &files {
        if verbose {
            // Straight to stderr: libtest's capture would lose it if the process aborts.
            let _ = writeln!(std::io::stderr(), "replaying {}", file.display());
        }
        let data = std::fs::read(file).unwrap();
        // On a thread, so that an input that never finishes (a timeout reproducer) fails the
        // test after the budget instead of hanging it; the thread is left to the process exit.
        let (done, finished) = mpsc::channel();
        std::thread::spawn(move || {
            let outcome = catch_unwind(AssertUnwindSafe(|| run(&data)));
            let _ = done.send(outcome.is_ok());
        });
        match finished.recv_timeout(budget()) {
            Ok(true) => {}
            Ok(false) => failures.push(format!("{}: panicked (message above)", file.display())),
            Err(_) => failures.push(format!(
                "{}: did not finish within {:?}",
                file.display(),
                budget()
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{target}: {} of {} inputs failed: {failures:#?}",
        failures.len(),
        files.len()
    );
}

#[test]
fn admission_review() {
    replay("admission_review", harness::admission_review);
}

#[test]
fn load_policies() {
    replay("load_policies", harness::load_policies);
}

#[test]
fn rego_rewrite() {
    replay("rego_rewrite", harness::rego_rewrite);
}

#[test]
fn go_sprintf() {
    replay("go_sprintf", harness::go_sprintf);
}

#[test]
fn rvm_differential() {
    replay("rvm_differential", harness::rvm_differential);
}

#[test]
fn block_yaml() {
    replay("block_yaml", harness::block_yaml);
}
