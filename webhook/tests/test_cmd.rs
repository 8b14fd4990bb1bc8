//! `tollgate test` through the built binary: outcomes, `with`, `print`, `--run`, coverage,
//! formats, load errors, and the counts and exit codes of the real `opa test` where it is
//! installed.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests assert by unwrapping

use std::path::PathBuf;
use std::process::{Command as StdCommand, Output};

use assert_cmd::Command;
use serde_json::Value;

const FIXTURES: &str = "webhook/tests/fixtures/rego_test";

fn tollgate() -> Command {
    let mut cmd = Command::cargo_bin("tollgate").unwrap();
    cmd.current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    cmd
}

fn test_cmd(args: &[&str]) -> (Option<i32>, String, String) {
    let out = tollgate().arg("test").args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn fixture(name: &str) -> String {
    format!("{FIXTURES}/{name}")
}

fn last_line(text: &str) -> &str {
    text.trim_end_matches('\n')
        .lines()
        .last()
        .unwrap_or_default()
}

#[test]
fn passing_tests_with_input_data_function_mocks_and_go_sprintf() {
    let (code, stdout, _) = test_cmd(&["-v", "-z", &fixture("pass")]);
    assert_eq!(code, Some(0), "{stdout}");
    for name in [
        "data.tollgate.example_test.test_admin_allowed: PASS (",
        "data.tollgate.example_test.test_other_user_denied: PASS (",
        "data.tollgate.example_test.test_with_data: PASS (",
        "data.tollgate.example_test.test_with_builtin: PASS (",
        "data.tollgate.example_test.test_go_sprintf: PASS (",
        "data.tollgate.example_test.test_prints: PASS (",
        "data.tollgate.example.test_with_function_value: PASS (",
        "data.tollgate.example.test_with_function_replacement: PASS (",
    ] {
        assert!(stdout.contains(name), "{name} missing:\n{stdout}");
    }
    // Verbose lists each test under its file:line, with its print() output indented.
    assert!(
        stdout.contains(
            "webhook/tests/fixtures/rego_test/pass/policy_test.rego:25:\ndata.tollgate.example_test.test_prints: PASS ("
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("\n\n  checking deny for carol\n\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("data.tollgate.example_test.todo_test_not_written_yet: SKIPPED\n"),
        "{stdout}"
    );
    assert!(stdout.contains("\nPASS: 8/9\nSKIPPED: 1/9\n"), "{stdout}");
    assert_eq!(last_line(&stdout), "8 passed, 0 failed, 1 skipped");
}

#[test]
fn skipped_tests_exit_2_like_opa_unless_exit_zero_on_skipped() {
    let (code, stdout, _) = test_cmd(&[&fixture("pass")]);
    assert_eq!(code, Some(2), "{stdout}");
    // Without -v only the non-passing tests are listed.
    assert!(!stdout.contains(": PASS ("), "{stdout}");
    assert!(
        stdout.starts_with(
            "webhook/tests/fixtures/rego_test/pass/policy_test.rego:31:\ndata.tollgate.example_test.todo_test_not_written_yet: SKIPPED\n"
        ),
        "{stdout}"
    );
}

#[test]
fn failures_and_errors_exit_2_with_file_line_output_and_counts() {
    let (code, stdout, _) = test_cmd(&[&fixture("fail")]);
    assert_eq!(code, Some(2), "{stdout}");
    assert!(
        stdout.contains(
            "webhook/tests/fixtures/rego_test/fail/fail_test.rego:9:\ndata.tollgate.failing.test_wrong_limit: FAIL ("
        ),
        "{stdout}"
    );
    // A failing test's print() output is shown even without -v.
    assert!(stdout.contains("\n\n  limit is 3\n\n"), "{stdout}");
    // A non-boolean value fails.
    assert!(
        stdout.contains("data.tollgate.failing.test_not_boolean: FAIL ("),
        "{stdout}"
    );
    // An evaluation error is ERROR, with regorus's location and snippet under it.
    assert!(
        stdout.contains("data.tollgate.failing.test_errors: ERROR ("),
        "{stdout}"
    );
    assert!(
        stdout.contains("  --> webhook/tests/fixtures/rego_test/fail/fail_test.rego:18:1\n"),
        "{stdout}"
    );
    assert!(!stdout.contains("test_passes"), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "{}\nPASS: 1/4\nFAIL: 2/4\nERROR: 1/4\n",
            "-".repeat(80)
        )),
        "{stdout}"
    );
    assert_eq!(last_line(&stdout), "1 passed, 3 failed");
}

#[test]
fn verbose_failures_show_where_the_test_stopped() {
    let (code, stdout, _) = test_cmd(&["-v", &fixture("fail")]);
    assert_eq!(code, Some(2));
    let failures = stdout.split("FAILURES\n").nth(1).expect("FAILURES section");
    assert!(
        failures.contains("data.tollgate.failing.test_wrong_limit: FAIL (",),
        "{failures}"
    );
    assert!(
        failures
            .contains("\n  webhook/tests/fixtures/rego_test/fail/fail_test.rego:12:\n    x == 5\n"),
        "{failures}"
    );
    assert!(
        stdout.contains("data.tollgate.failing.test_passes: PASS ("),
        "{stdout}"
    );
}

#[test]
fn run_filters_on_the_full_test_name() {
    let (code, stdout, _) = test_cmd(&[
        "-r",
        r"^data\.tollgate\.failing\.test_wrong_limit$",
        &fixture("fail"),
    ]);
    assert_eq!(code, Some(2));
    assert!(stdout.contains("FAIL: 1/1\n"), "{stdout}");
    assert_eq!(last_line(&stdout), "0 passed, 1 failed");

    // The package is part of the name: this selects only the example_test package.
    let (code, stdout, _) = test_cmd(&["-r", r"example_test\.test_with", &fixture("pass")]);
    assert_eq!(code, Some(0), "{stdout}");
    assert_eq!(stdout, "PASS: 2/2\n2 passed, 0 failed\n");

    let (code, _, stderr) = test_cmd(&["-r", "(", &fixture("pass")]);
    assert_eq!(code, Some(1));
    assert!(stderr.starts_with("error parsing regexp: "), "{stderr}");
}

#[test]
fn object_tests_report_each_case_and_duplicates_are_numbered() {
    let (code, stdout, _) = test_cmd(&["-v", &fixture("objects")]);
    assert_eq!(code, Some(2));
    assert!(
        stdout.contains("data.dup.test_cases: PASS (")
            && stdout.contains("  one: PASS\n  two: PASS\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("data.dup.test_bad_cases: FAIL (")
            && stdout.contains("  one: PASS\n  two: FAIL\n"),
        "{stdout}"
    );
    assert!(stdout.contains("data.dup.test_a: PASS ("), "{stdout}");
    assert!(
        stdout.contains("cases_test.rego:5:\ndata.dup.test_a#01: FAIL ("),
        "{stdout}"
    );
    assert!(stdout.contains("\nPASS: 4/6\nFAIL: 2/6\n"), "{stdout}");
    assert_eq!(last_line(&stdout), "4 passed, 2 failed");
}

#[test]
fn coverage_report_and_threshold() {
    let (code, stdout, stderr) = test_cmd(&["--coverage", &fixture("coverage")]);
    assert_eq!(code, Some(0), "{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["coverage"], 87.5);
    let policy = &report["files"]["webhook/tests/fixtures/rego_test/coverage/policy.rego"];
    assert_eq!(
        policy["not_covered"],
        serde_json::json!([{"start": {"row": 10}, "end": {"row": 10}}])
    );
    assert_eq!(last_line(&stderr), "2 passed, 0 failed");

    let (code, stdout, stderr) = test_cmd(&["--threshold", "90", "-v", &fixture("coverage")]);
    assert_eq!(code, Some(2), "{stdout}");
    assert_eq!(stdout, "");
    assert!(
        stderr.starts_with(
            "Code coverage threshold not met: got 87.50 instead of 90.00\nLines not covered:\n\twebhook/tests/fixtures/rego_test/coverage/policy.rego:10\n"
        ),
        "{stderr}"
    );

    let (code, _, stderr) = test_cmd(&["--threshold", "87.5", &fixture("coverage")]);
    assert_eq!(code, Some(0), "{stderr}");

    let (code, _, stderr) = test_cmd(&["--threshold", "101", &fixture("coverage")]);
    assert_eq!(code, Some(1));
    assert_eq!(
        stderr,
        "Code coverage threshold must be between 0 and 100\n"
    );

    // Failures in coverage mode: reported, exit 1, no coverage report.
    let (code, stdout, stderr) = test_cmd(&["--coverage", "-r", "limit", &fixture("fail")]);
    assert_eq!(code, Some(1));
    assert!(stdout.contains("test_wrong_limit: FAIL ("), "{stdout}");
    assert!(
        stderr.starts_with("data.tollgate.failing.test_wrong_limit: FAIL ("),
        "{stderr}"
    );
}

#[test]
fn json_format_is_opa_shaped_and_the_summary_goes_to_stderr() {
    let (code, stdout, stderr) = test_cmd(&["--format", "json", &fixture("fail")]);
    assert_eq!(code, Some(2));
    let results: Vec<Value> = serde_json::from_str(&stdout).unwrap();
    assert_eq!(results.len(), 4);
    let by_name = |n: &str| results.iter().find(|r| r["name"] == n).unwrap().clone();
    let wrong = by_name("test_wrong_limit");
    assert_eq!(wrong["package"], "data.tollgate.failing");
    assert_eq!(wrong["fail"], true);
    assert_eq!(wrong["location"]["row"], 9);
    // Go encodes []byte as base64: "limit is 3\n".
    assert_eq!(wrong["output"], "bGltaXQgaXMgMwo=");
    assert!(wrong["duration"].as_u64().unwrap() > 0);
    let passed = by_name("test_passes");
    assert!(passed.get("fail").is_none(), "{passed}");
    let errored = by_name("test_errors");
    assert_eq!(errored["error"]["location"]["row"], 18);
    assert_eq!(last_line(&stderr), "1 passed, 3 failed");
}

#[test]
fn junit_is_well_formed_with_failures_errors_and_skips() {
    let (code, stdout, stderr) =
        test_cmd(&["--format", "junit", &fixture("fail"), &fixture("pass")]);
    assert_eq!(code, Some(2));
    let doc = roxmltree::Document::parse(&stdout).unwrap();
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    assert_eq!(root.attribute("tests"), Some("13"));
    assert_eq!(root.attribute("failures"), Some("2"));
    assert_eq!(root.attribute("errors"), Some("1"));
    assert_eq!(root.attribute("skipped"), Some("1"));
    let suites: Vec<_> = root.children().filter(|n| n.is_element()).collect();
    let names: Vec<_> = suites.iter().filter_map(|s| s.attribute("name")).collect();
    assert_eq!(
        names,
        [
            "data.tollgate.failing",
            "data.tollgate.example",
            "data.tollgate.example_test"
        ]
    );
    let case = |name: &str| {
        doc.descendants()
            .find(|n| n.has_tag_name("testcase") && n.attribute("name") == Some(name))
            .unwrap()
    };
    let wrong = case("test_wrong_limit");
    assert_eq!(wrong.attribute("line"), Some("9"));
    let failure = wrong
        .children()
        .find(|n| n.has_tag_name("failure"))
        .unwrap();
    assert!(failure.text().unwrap().contains("x == 5"), "{stdout}");
    let out = wrong
        .children()
        .find(|n| n.has_tag_name("system-out"))
        .unwrap();
    assert_eq!(out.text(), Some("limit is 3"));
    assert!(
        case("test_errors")
            .children()
            .any(|n| n.has_tag_name("error"))
    );
    assert!(
        case("todo_test_not_written_yet")
            .children()
            .any(|n| n.has_tag_name("skipped"))
    );
    assert_eq!(case("test_passes").children().count(), 0);
    assert_eq!(last_line(&stderr), "9 passed, 3 failed, 1 skipped");
}

#[test]
fn parse_errors_name_file_line_column_with_the_source_line() {
    let (code, stdout, stderr) = test_cmd(&[&fixture("parse_error")]);
    assert_eq!(code, Some(1));
    assert_eq!(stdout, "");
    assert!(
        stderr.starts_with(
            "1 error occurred during loading:\n--> webhook/tests/fixtures/rego_test/parse_error/broken.rego:4:7\n"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("4 | \tx := [1, 2\n"), "{stderr}");

    let (code, _, stderr) = test_cmd(&[&fixture("compile_error")]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("--> webhook/tests/fixtures/rego_test/compile_error/policy.rego:4:"),
        "{stderr}"
    );
    assert!(stderr.contains("x == y"), "{stderr}");

    let (code, _, stderr) = test_cmd(&["webhook/tests/fixtures/rego_test/no-such-dir"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("no-such-dir"), "{stderr}");
}

#[test]
fn v0_modules_need_v0_compatible() {
    let (code, stdout, _) = test_cmd(&["--v0-compatible", &fixture("v0")]);
    assert_eq!(code, Some(0), "{stdout}");
    assert_eq!(stdout, "PASS: 2/2\n2 passed, 0 failed\n");
    let (code, _, stderr) = test_cmd(&[&fixture("v0")]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("v0/policy.rego:3:"), "{stderr}");
    assert!(
        stderr.ends_with("hint: this is Rego v0 syntax (what a template without version: \"v1\" holds); run with --v0-compatible\n"),
        "{stderr}"
    );
}

/// The pinned `opa`: on PATH (CI puts it there) or in the tools cache.
fn opa() -> Option<PathBuf> {
    let from_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("opa"))
            .find(|p| p.is_file())
    });
    let cached = std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".cache/tollgate-tools/bin/opa"))
        .filter(|p| p.is_file());
    let found = from_path.or(cached);
    assert!(
        found.is_some() || std::env::var_os("TOLLGATE_REQUIRE_ORACLES").is_none(),
        "opa is required (TOLLGATE_REQUIRE_ORACLES) but was not found: run tests/tools/install.sh"
    );
    found
}

/// The count lines (`PASS: n/t`, `FAIL: …`, `SKIPPED: …`, `ERROR: …`) of a pretty report.
fn counts(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter(|l| {
            ["PASS: ", "FAIL: ", "SKIPPED: ", "ERROR: "]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .map(str::to_string)
        .collect()
}

fn run_opa(opa: &PathBuf, args: &[&str]) -> Output {
    StdCommand::new(opa)
        .arg("test")
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .unwrap()
}

#[test]
fn policies_pass_with_the_same_count_as_opa() {
    let (code, stdout, stderr) = test_cmd(&["policies/"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let pass = counts(&stdout);
    assert_eq!(pass.len(), 1, "{stdout}");
    let n: usize = pass[0]
        .trim_start_matches("PASS: ")
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(n > 100, "{stdout}");
    assert_eq!(last_line(&stdout), format!("{n} passed, 0 failed"));
    let Some(opa) = opa() else {
        eprintln!("opa not installed; oracle comparison skipped (CI installs it)");
        return;
    };
    let out = run_opa(&opa, &["policies/"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(counts(&String::from_utf8(out.stdout).unwrap()), pass);
}

/// Every fixture gives the counts and exit code `opa test` gives.
#[test]
fn fixtures_match_opa_counts_and_exit_codes() {
    let Some(opa) = opa() else {
        eprintln!("opa not installed; oracle comparison skipped (CI installs it)");
        return;
    };
    for (dir, extra) in [
        ("pass", None),
        ("fail", None),
        ("objects", None),
        ("coverage", None),
        ("v0", Some("--v0-compatible")),
        ("parse_error", None),
        ("compile_error", None),
    ] {
        let path = fixture(dir);
        let mut args: Vec<&str> = extra.into_iter().collect();
        args.push(&path);
        let ours = tollgate().arg("test").args(&args).output().unwrap();
        let theirs = run_opa(&opa, &args);
        assert_eq!(ours.status.code(), theirs.status.code(), "{dir}");
        assert_eq!(
            counts(&String::from_utf8(ours.stdout).unwrap()),
            counts(&String::from_utf8(theirs.stdout).unwrap()),
            "{dir}"
        );
    }
    // Coverage percentages agree on the coverage fixture.
    let ours = tollgate()
        .args(["test", "--coverage", &fixture("coverage")])
        .output()
        .unwrap();
    let theirs = run_opa(&opa, &["--coverage", &fixture("coverage")]);
    let pct = |o: &Output| serde_json::from_slice::<Value>(&o.stdout).unwrap()["coverage"].clone();
    assert_eq!(pct(&ours), pct(&theirs));
}
