//! `tollgate verify` through the built binary: exit codes, gator's output, JSON and JUnit.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests assert by unwrapping

use assert_cmd::Command;

fn tollgate() -> Command {
    let mut cmd = Command::cargo_bin("tollgate").unwrap();
    cmd.current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    cmd
}

const FAILING: &str = "webhook/tests/fixtures/verify_failing/suite.yaml";

#[test]
fn contract_corpus_passes_and_prints_like_gator() {
    let out = tollgate()
        .args(["verify", "tests/suites/..."])
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("ok\ttests/suites/basic/suite.yaml\t"),
        "{stdout}"
    );
    assert!(stdout.ends_with("PASS\n\n"), "{stdout:?}");
}

#[test]
fn failures_exit_1_with_expected_pattern_all_messages_and_rerun_command() {
    let out = tollgate().args(["verify", FAILING]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("    --- FAIL: wrong-count\t("), "{stdout}");
    assert!(
        stdout.contains(
            "unexpected number of violations: got 2 violations but want exactly 1: got messages [missing label owner missing label team]"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("at webhook/tests/fixtures/verify_failing/suite.yaml:14"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "want violations: yes matching /missing label cost-center/; matched 0; all 2 returned:"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("          - missing label team\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("rerun: tollgate verify webhook/tests/fixtures/verify_failing/suite.yaml --run '^required\\-labels$//^wrong\\-count$'"),
        "{stdout}"
    );
    assert!(!stdout.contains("--- FAIL: passes"), "{stdout}");
    assert!(stdout.contains("--- FAIL: required-labels\t("), "{stdout}");
    assert!(stdout.ends_with("FAIL\n\n"), "{stdout:?}");
    assert_eq!(String::from_utf8(out.stderr).unwrap(), "Error: FAIL\n");
}

#[test]
fn run_filter_selects_test_and_case() {
    let out = tollgate()
        .args([
            "verify",
            FAILING,
            "--run",
            "required-labels//^passes$",
            "-v",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("    --- PASS: passes\t("), "{stdout}");
    assert!(stdout.contains("    === SKIP  wrong-count\n"), "{stdout}");
}

#[test]
fn junit_is_well_formed_and_counts_failures() {
    let out = tollgate()
        .args(["verify", FAILING, "--format", "junit"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let xml = String::from_utf8(out.stdout).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let suite = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite"))
        .unwrap();
    assert_eq!(suite.attribute("tests"), Some("3"));
    assert_eq!(suite.attribute("failures"), Some("2"));
    let totals = doc.root_element();
    assert_eq!(totals.tag_name().name(), "testsuites");
    assert_eq!(totals.attribute("tests"), Some("3"));
    assert_eq!(totals.attribute("failures"), Some("2"));
    assert_eq!(totals.attribute("errors"), Some("0"));
    assert_eq!(totals.attribute("skipped"), Some("0"));
    let failed: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("failure"))
        .map(|n| {
            let case = n.parent().unwrap();
            (
                case.attribute("name").unwrap().to_string(),
                case.attribute("file").unwrap().to_string(),
                case.attribute("line").unwrap().to_string(),
                n.text().unwrap().lines().next().unwrap().to_string(),
            )
        })
        .collect();
    let at = |line: &str| {
        (
            FAILING.to_string(),
            line.to_string(),
            format!("at {FAILING}:{line}"),
        )
    };
    let expected: Vec<_> = [("wrong-count", at("14")), ("wrong-message", at("18"))]
        .into_iter()
        .map(|(name, (file, line, text))| (name.to_string(), file, line, text))
        .collect();
    assert_eq!(failed, expected);
    let text = doc
        .descendants()
        .find(|n| n.has_tag_name("failure"))
        .and_then(|n| n.text())
        .unwrap();
    assert!(text.contains("\n  - missing label team"), "{text}");
}

/// Totals on `<testsuites>` are the sums over its `<testsuite>`s, skipped tests and cases
/// included, over many suite files.
#[test]
fn junit_totals_add_up_over_the_corpus() {
    let out = tollgate()
        .args(["verify", "tests/suites/...", "--format", "junit"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let xml = String::from_utf8(out.stdout).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let sum = |attr: &str| -> u64 {
        doc.descendants()
            .filter(|n| n.has_tag_name("testsuite"))
            .map(|n| n.attribute(attr).unwrap().parse::<u64>().unwrap())
            .sum()
    };
    let totals = doc.root_element();
    for attr in ["tests", "failures", "skipped"] {
        assert_eq!(
            totals.attribute(attr).unwrap().parse::<u64>().unwrap(),
            sum(attr),
            "{attr}"
        );
    }
    assert!(sum("tests") > 150, "{}", sum("tests"));
    assert!(sum("skipped") > 0);
    assert!(totals.attribute("time").unwrap().parse::<f64>().unwrap() >= 0.0);
}

/// A test that fails as a whole (its template is missing) is located too, in the human report
/// (with a rerun line) and in JUnit; a case named like its test is located at the case.
#[test]
fn failures_are_located_in_both_reports() {
    let dir = tempfile::tempdir().unwrap();
    let suite = dir.path().join("suite.yaml");
    let fixture = |f: &str| {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/verify_failing")
            .join(f)
            .display()
            .to_string()
    };
    std::fs::write(
        &suite,
        format!(
            "apiVersion: test.gatekeeper.sh/v1alpha1\nkind: Suite\ntests:\n- name: fine\n  skip: true\n\
             - name: broken\n  template: missing.yaml\n  constraint: missing.yaml\n  cases:\n\
             \x20 - name: broken\n    object: missing.yaml\n    assertions: [{{violations: no}}]\n\
             - name: required-labels\n  template: {}\n  constraint: {}\n  cases:\n\
             \x20 - name: required-labels\n    object: {}\n    assertions: [{{violations: 1}}]\n",
            fixture("template.yaml"),
            fixture("constraint.yaml"),
            fixture("pod.yaml"),
        ),
    )
    .unwrap();
    let suite = suite.to_str().unwrap();
    let out = tollgate().args(["verify", suite]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let broken = stdout.split("--- FAIL: broken\t(").nth(1).unwrap();
    let broken: Vec<&str> = broken.lines().take(4).collect();
    assert!(broken[1].contains("missing.yaml"), "{stdout}");
    assert_eq!(broken[2], format!("  at {suite}:6"), "{stdout}");
    assert_eq!(
        broken[3],
        format!("  rerun: tollgate verify {suite} --run '^broken$'"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("        at {suite}:17\n")),
        "{stdout}"
    );

    let out = tollgate()
        .args(["verify", suite, "--format", "junit"])
        .output()
        .unwrap();
    let xml = String::from_utf8(out.stdout).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let failures: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("failure"))
        .map(|f| {
            let case = f.parent().unwrap();
            assert_eq!(case.attribute("file"), Some(suite));
            (
                case.attribute("name").unwrap(),
                case.attribute("line").unwrap(),
                f.text().unwrap().lines().next().unwrap(),
            )
        })
        .collect();
    let (at6, at17) = (format!("at {suite}:6"), format!("at {suite}:17"));
    assert_eq!(
        failures,
        [
            ("broken", "6", at6.as_str()),
            ("required-labels", "17", at17.as_str())
        ]
    );
    let totals = doc.root_element();
    assert_eq!(totals.attribute("tests"), Some("3"));
    assert_eq!(totals.attribute("failures"), Some("2"));
    assert_eq!(totals.attribute("skipped"), Some("1"));
}

#[test]
fn fail_on_empty_fails_when_no_suite_or_no_case_ran() {
    let run = |args: &[&str]| {
        let out = tollgate().arg("verify").args(args).output().unwrap();
        (
            out.status.code(),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    // gator passes a directory without suites of its own; tollgate says so on stderr.
    let (code, stdout, stderr) = run(&["constraints"]);
    assert_eq!(code, Some(0));
    assert_eq!(stdout, "PASS\n\n");
    assert_eq!(
        stderr,
        "note: no Suite found in constraints (its subdirectories are searched with constraints/...)\n"
    );

    let (code, _, stderr) = run(&["constraints", "--fail-on-empty"]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.ends_with("Error: --fail-on-empty: no Suite found in constraints\n"),
        "{stderr}"
    );

    // Suites found, but the filter selects no case.
    let (code, _, stderr) = run(&[
        "constraints/...",
        "--run",
        "^no-such-test$",
        "--fail-on-empty",
    ]);
    assert_eq!(code, Some(1));
    assert_eq!(
        stderr,
        "Error: --fail-on-empty: no case ran: every test and case was skipped or filtered out by --run\n"
    );
    let (code, _, stderr) = run(&[
        FAILING,
        "--run",
        "required-labels//^none$",
        "--fail-on-empty",
    ]);
    assert_eq!(code, Some(1), "{stderr}");

    let (code, stdout, stderr) = run(&["constraints/...", "--fail-on-empty"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
}

#[test]
fn json_reports_every_case() {
    let out = tollgate()
        .args(["verify", FAILING, "--format", "json"])
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["pass"], false);
    let cases = &doc["suites"][0]["tests"][0]["cases"];
    assert_eq!(cases.as_array().unwrap().len(), 3);
    assert_eq!(cases[1]["name"], "wrong-count");
    assert_eq!(cases[1]["messages"][1], "missing label team");
    assert!(cases[0]["error"].is_null());
}

#[test]
fn missing_path_is_an_error() {
    let out = tollgate()
        .args(["verify", "no/such/dir/..."])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("listing test files")
    );
}

/// Each line of a verify run without its timing (gator ends suite and test lines with a tab
/// and a duration: `\t0.012s` or `\t(0.001s)`).
fn without_timings(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .map(|l| match l.rsplit_once('\t') {
            Some((head, tail))
                if tail.trim_matches(['(', ')']).ends_with('s')
                    && tail.trim_matches(['(', ')', 's']).parse::<f64>().is_ok() =>
            {
                head.to_string()
            }
            _ => l.to_string(),
        })
        .collect()
}

#[test]
fn both_evaluators_verify_every_suite_alike() {
    let run = |evaluator: &str| {
        let out = tollgate()
            .args([
                "verify",
                "tests/suites/...",
                "constraints/...",
                "-v",
                "--evaluator",
                evaluator,
            ])
            .output()
            .unwrap();
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert!(out.status.success(), "--evaluator {evaluator}:\n{stdout}");
        without_timings(&stdout)
    };
    let (rvm, interpreter) = (run("rvm"), run("interpreter"));
    assert!(rvm.len() > 300, "{} lines", rvm.len());
    assert_eq!(rvm, interpreter);
}

#[test]
fn an_unknown_evaluator_is_refused_with_the_choices() {
    let out = tollgate()
        .args(["verify", "tests/suites/...", "--evaluator", "wasm"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("invalid value 'wasm' for '--evaluator")
            && stderr.contains("rvm")
            && stderr.contains("interpreter"),
        "{stderr}"
    );
}
