//! Printers for `verify` results: gator's Go-test style, JSON and JUnit XML.

use std::fmt::Write;
use std::time::Duration;

use super::verify::{CaseResult, SuiteResult, TestResult};

/// gator's duration format: seconds with three decimals.
fn secs(d: Duration) -> String {
    format!("{:.3}s", d.as_secs_f64())
}

/// Prints results exactly as `gator verify` does (`=== RUN`, `--- FAIL: name\t(0.012s)`,
/// `ok\tpath\t0.034s`, a final `PASS`/`FAIL`). On a failed assertion, tollgate adds the case's
/// location, every returned message on its own line, and a command that reruns just that case.
pub fn human(results: &[SuiteResult], verbose: bool, program: &str) -> String {
    let mut out = String::new();
    for suite in results {
        for test in &suite.tests {
            print_test(&mut out, suite, test, verbose, program);
        }
        let status = if suite.is_failure() { "FAIL" } else { "ok" };
        let _ = writeln!(out, "{status}\t{}\t{}", suite.path, secs(suite.runtime));
    }
    let fail = results.iter().any(SuiteResult::is_failure);
    out.push_str(if fail { "FAIL\n" } else { "PASS\n" });
    out
}

fn print_test(
    out: &mut String,
    suite: &SuiteResult,
    test: &TestResult,
    verbose: bool,
    program: &str,
) {
    if verbose {
        if test.skipped {
            let _ = writeln!(out, "=== SKIP  {}", test.name);
            return;
        }
        let _ = writeln!(out, "=== RUN   {}", test.name);
    }
    for case in &test.cases {
        print_case(out, suite, test, case, verbose, program);
    }
    if test.is_failure() {
        let _ = writeln!(out, "--- FAIL: {}\t({})", test.name, secs(test.runtime));
        if let Some(e) = &test.error {
            let _ = writeln!(out, "  {e}");
            if let Some(loc) = &test.location {
                let _ = writeln!(out, "  at {loc}");
            }
            let _ = writeln!(
                out,
                "  rerun: {program} verify {} --run '^{}$'",
                suite.file.display(),
                regex::escape(&test.name)
            );
        }
    } else if verbose {
        let _ = writeln!(out, "--- PASS: {}\t({})", test.name, secs(test.runtime));
    }
}

fn print_case(
    out: &mut String,
    suite: &SuiteResult,
    test: &TestResult,
    case: &CaseResult,
    verbose: bool,
    program: &str,
) {
    if verbose {
        if case.skipped {
            let _ = writeln!(out, "    === SKIP  {}", case.name);
            return;
        }
        let _ = writeln!(out, "    === RUN   {}", case.name);
        if !case.prints.is_empty() {
            out.push_str("        === PRINT ===\n");
            for line in case.prints.join("\n").trim_end_matches('\n').split('\n') {
                let _ = writeln!(out, "        {line}");
            }
        }
    }
    if let Some(e) = &case.error {
        let _ = writeln!(
            out,
            "    --- FAIL: {}\t({})\n        {e}",
            case.name,
            secs(case.runtime)
        );
        for line in case_failure_details(case) {
            let _ = writeln!(out, "        {line}");
        }
        let _ = writeln!(
            out,
            "        rerun: {program} verify {} --run '^{}$//^{}$'",
            suite.file.display(),
            regex::escape(&test.name),
            regex::escape(&case.name)
        );
    } else if verbose {
        let _ = writeln!(out, "    --- PASS: {}\t({})", case.name, secs(case.runtime));
    }
}

/// What tollgate adds to gator's report of a failed case: where the case is, and, for a failed
/// assertion, what it wanted and every message the review returned.
fn case_failure_details(case: &CaseResult) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(loc) = &case.location {
        lines.push(format!("at {loc}"));
    }
    if let Some(a) = &case.failed_assertion {
        let pattern = a
            .message
            .as_deref()
            .map(|m| format!(" matching /{m}/"))
            .unwrap_or_default();
        lines.push(format!(
            "want violations: {}{pattern}; matched {}; all {} returned:",
            a.violations,
            a.matched,
            case.messages.len()
        ));
        lines.extend(case.messages.iter().map(|m| format!("  - {m}")));
    }
    lines
}

/// Results as one JSON document.
pub fn json(results: &[SuiteResult]) -> String {
    let fail = results.iter().any(SuiteResult::is_failure);
    let doc = serde_json::json!({"pass": !fail, "suites": results});
    serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
}

/// Text for an XML attribute or element: the five entities escaped, control characters other than
/// whitespace (which XML 1.0 forbids) replaced by a space.
pub fn xml_escape(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '&' => "&amp;".to_string(),
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '"' => "&quot;".to_string(),
            '\'' => "&apos;".to_string(),
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\t' | '\r') => " ".to_string(),
            c => c.to_string(),
        })
        .collect()
}

/// ` file="…" line="…"` for a `suite.yaml:line` location, so CI can point at the case.
fn location_attributes(location: Option<&str>) -> String {
    match location.and_then(|l| l.rsplit_once(':')) {
        Some((file, line)) => format!(
            " file=\"{}\" line=\"{}\"",
            xml_escape(file),
            xml_escape(line)
        ),
        None => String::new(),
    }
}

/// Results as JUnit XML: a `<testsuite>` per gator test, a `<testcase>` per case, totals on
/// `<testsuites>`. A failure's message is gator's; its text says where the case is and what
/// the review returned.
pub fn junit(results: &[SuiteResult]) -> String {
    let mut body = String::new();
    let (mut tests, mut failures, mut skipped, mut time) = (0, 0, 0, 0.0);
    for suite in results {
        for test in &suite.tests {
            let test_failures = test.cases.iter().filter(|c| c.is_failure()).count()
                + usize::from(test.error.is_some());
            let test_skipped =
                test.cases.iter().filter(|c| c.skipped).count() + usize::from(test.skipped);
            let test_cases = test.cases.len().max(1);
            tests += test_cases;
            failures += test_failures;
            skipped += test_skipped;
            time += test.runtime.as_secs_f64();
            let _ = writeln!(
                body,
                "  <testsuite name=\"{}\" tests=\"{test_cases}\" failures=\"{test_failures}\" skipped=\"{test_skipped}\" time=\"{:.3}\" file=\"{}\">",
                xml_escape(&format!("{}/{}", suite.path, test.name)),
                test.runtime.as_secs_f64(),
                xml_escape(&suite.file.display().to_string()),
            );
            if let Some(e) = &test.error {
                let text = test
                    .location
                    .as_deref()
                    .map(|l| format!("at {l}"))
                    .unwrap_or_default();
                let _ = writeln!(
                    body,
                    "    <testcase name=\"{}\" classname=\"{}\"{}><failure message=\"{}\">{}</failure></testcase>",
                    xml_escape(&test.name),
                    xml_escape(&suite.path),
                    location_attributes(test.location.as_deref()),
                    xml_escape(e),
                    xml_escape(&text)
                );
            }
            for case in &test.cases {
                let _ = write!(
                    body,
                    "    <testcase name=\"{}\" classname=\"{}\" time=\"{:.3}\"{}",
                    xml_escape(&case.name),
                    xml_escape(&format!("{}/{}", suite.path, test.name)),
                    case.runtime.as_secs_f64(),
                    location_attributes(case.location.as_deref()),
                );
                if case.skipped || test.skipped {
                    body.push_str("><skipped/></testcase>\n");
                } else if let Some(e) = &case.error {
                    let _ = writeln!(
                        body,
                        "><failure message=\"{}\">{}</failure></testcase>",
                        xml_escape(e),
                        xml_escape(&case_failure_details(case).join("\n"))
                    );
                } else {
                    body.push_str("/>\n");
                }
            }
            if test.cases.is_empty() && test.error.is_none() {
                let _ = writeln!(
                    body,
                    "    <testcase name=\"{}\" classname=\"{}\"{}",
                    xml_escape(&test.name),
                    xml_escape(&suite.path),
                    if test.skipped {
                        "><skipped/></testcase>"
                    } else {
                        "/>"
                    }
                );
            }
            body.push_str("  </testsuite>\n");
        }
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"tollgate verify\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{time:.3}\">\n{body}</testsuites>\n"
    )
}
