//! The gator-format corpora run through the public `verify` API, and compared with the real
//! `gator verify` output when the pinned gator is installed (always in CI).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests assert by unwrapping

use std::path::PathBuf;
use std::process::Command;

use tollgate_engine::harness::{printer, verify};

fn run_all(argument: &str) -> Vec<verify::SuiteResult> {
    let suites = verify::discover(argument).expect("discover suites");
    assert!(!suites.is_empty(), "no suites under {argument}");
    let filter = verify::Filter::new("").unwrap();
    suites
        .iter()
        .map(|s| verify::run_suite(s, &filter))
        .collect()
}

fn assert_all_pass(argument: &str) {
    let results = run_all(argument);
    let cases: usize = results
        .iter()
        .flat_map(|s| &s.tests)
        .map(|t| t.cases.len())
        .sum();
    assert!(cases > 0, "no cases ran under {argument}");
    let failed = results.iter().any(|r| r.is_failure());
    assert!(!failed, "{}", printer::human(&results, false, "tollgate"));
}

#[test]
fn contract_corpus_passes() {
    assert_all_pass("../tests/suites/...");
}

#[test]
fn tracker_pack_suites_pass() {
    assert_all_pass("../constraints/...");
}

/// The pinned gator: on PATH (CI puts it there) or in the tools cache.
fn gator() -> Option<PathBuf> {
    let from_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("gator"))
            .find(|p| p.is_file())
    });
    let cached = std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".cache/tollgate-tools/bin/gator"))
        .filter(|p| p.is_file());
    let found = from_path.or(cached);
    if found.is_none() && std::env::var_os("TOLLGATE_REQUIRE_ORACLES").is_some() {
        panic!(
            "gator is required (TOLLGATE_REQUIRE_ORACLES) but was not found: run tests/tools/install.sh"
        );
    }
    found
}

fn without_timings(text: &str) -> String {
    let re = regex::Regex::new(r"\(\d+\.\d{3}s\)|\t\d+\.\d{3}s$").unwrap();
    text.lines()
        .map(|l| re.replace_all(l, "T").to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Byte-for-byte the same `-v` output as gator (timings aside), suite by suite and case by case.
#[test]
fn verbose_output_matches_gator() {
    let Some(gator) = gator() else {
        eprintln!("gator not installed; oracle comparison skipped (CI installs it)");
        return;
    };
    for argument in ["../tests/suites/...", "../constraints/..."] {
        let out = Command::new(&gator)
            .args(["verify", "-v", argument])
            .output()
            .expect("run gator");
        assert!(out.status.success(), "gator failed on {argument}");
        let gator_text = String::from_utf8_lossy(&out.stdout).to_string();
        let ours = printer::human(&run_all(argument), true, "tollgate") + "\n";
        let (g, o) = (without_timings(&gator_text), without_timings(&ours));
        if g != o {
            let diff: Vec<String> = g
                .lines()
                .zip(o.lines())
                .filter(|(a, b)| a != b)
                .take(10)
                .map(|(a, b)| format!("gator: {a}\nours:  {b}"))
                .collect();
            panic!(
                "output differs from gator for {argument} ({} vs {} lines):\n{}",
                g.lines().count(),
                o.lines().count(),
                diff.join("\n")
            );
        }
    }
}

/// Constraints with fields their CRD does not describe fail exactly as under gator, and
/// legacySchema keeps unknown parameters exactly where gator keeps them.
#[test]
fn unknown_constraint_fields_fail_as_under_gator() {
    let results = run_all("../tests/strictness/...");
    let ours = printer::human(&results, true, "tollgate") + "\n";
    for expected in [
        "  invalid Constraint: unknown fields: [spec.match.namespace]",
        "  invalid Constraint: unknown fields: [spec.parameters]",
        "--- PASS: v1beta1-defaults-to-legacy-schema",
    ] {
        assert!(ours.contains(expected), "{expected} missing from:\n{ours}");
    }
    let Some(gator) = gator() else {
        eprintln!("gator not installed; oracle comparison skipped (CI installs it)");
        return;
    };
    let out = Command::new(&gator)
        .args(["verify", "-v", "../tests/strictness/..."])
        .output()
        .expect("run gator");
    assert!(
        !out.status.success(),
        "these suites fail under gator by design"
    );
    let gator_text = String::from_utf8_lossy(&out.stdout).to_string();
    // tollgate's report is gator's plus where each failure is and how to rerun it.
    let gator_lines: Vec<&str> = gator_text.lines().collect();
    let ours_lines: Vec<String> = ours
        .lines()
        .filter(|l| !l.starts_with("  at ") && !l.starts_with("  rerun: "))
        .map(str::to_string)
        .collect();
    assert_eq!(
        without_timings(&gator_lines.join("\n")),
        without_timings(&ours_lines.join("\n"))
    );
}

/// K8sNativeValidation messages, byte for byte: `tests/cel-messages` fails by design so that
/// both tools print every message (defaults, message expressions, compile and evaluation
/// errors, variables that fail, DELETE with a null object, failurePolicy Ignore).
#[test]
fn cel_messages_are_gators() {
    let results = run_all("../tests/cel-messages/...");
    assert!(results.iter().any(|r| r.is_failure()));
    let ours = printer::human(&results, true, "tollgate") + "\n";
    assert!(ours.contains("got messages [regex mismatch]"), "{ours}");
    let Some(gator) = gator() else {
        eprintln!("gator not installed; oracle comparison skipped (CI installs it)");
        return;
    };
    let out = Command::new(&gator)
        .args(["verify", "-v", "../tests/cel-messages/..."])
        .output()
        .expect("run gator");
    assert!(
        !out.status.success(),
        "this suite fails under gator by design"
    );
    let gator_text = String::from_utf8_lossy(&out.stdout).to_string();
    // tollgate's report is gator's plus, for each failed assertion, where it is, what it wanted
    // and how to rerun it.
    let mut ours_lines: Vec<&str> = Vec::new();
    let mut in_extra = false;
    for l in ours.lines() {
        let t = l.trim_start();
        if t.starts_with("want violations") {
            in_extra = true;
        }
        if !in_extra && !t.starts_with("at ") {
            ours_lines.push(l);
        }
        if t.starts_with("rerun: ") {
            in_extra = false;
        }
    }
    let gator_lines: Vec<&str> = gator_text.lines().collect();
    let (g, o) = (
        without_timings(&gator_lines.join("\n")),
        without_timings(&ours_lines.join("\n")),
    );
    if g != o {
        let diff: Vec<String> = g
            .lines()
            .zip(o.lines())
            .filter(|(a, b)| a != b)
            .take(10)
            .map(|(a, b)| format!("gator: {a}\nours:  {b}"))
            .collect();
        panic!(
            "CEL messages differ from gator's ({} vs {} lines):\n{}\n\nours:\n{ours}",
            g.lines().count(),
            o.lines().count(),
            diff.join("\n")
        );
    }
}
