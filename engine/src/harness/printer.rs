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
        if let Some(loc) = &case.location {
            let _ = writeln!(out, "        at {loc}");
        }
        if let Some(a) = &case.failed_assertion {
            let pattern = a
                .message
                .as_deref()
                .map(|m| format!(" matching /{m}/"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "        want violations: {}{pattern}; matched {}; all {} returned:",
                a.violations,
                a.matched,
                case.messages.len()
            );
            for m in &case.messages {
                let _ = writeln!(out, "          - {m}");
            }
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

/// Results as one JSON document.
pub fn json(results: &[SuiteResult]) -> String {
    let fail = results.iter().any(SuiteResult::is_failure);
    let doc = serde_json::json!({"pass": !fail, "suites": results});
    serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
}

fn xml_escape(s: &str) -> String {
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

/// Results as JUnit XML: a `<testsuite>` per gator test, a `<testcase>` per case.
pub fn junit(results: &[SuiteResult]) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n");
    for suite in results {
        for test in &suite.tests {
            let failures = test.cases.iter().filter(|c| c.is_failure()).count()
                + usize::from(test.error.is_some());
            let skipped =
                test.cases.iter().filter(|c| c.skipped).count() + usize::from(test.skipped);
            let _ = writeln!(
                out,
                "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" skipped=\"{skipped}\" time=\"{:.3}\" file=\"{}\">",
                xml_escape(&format!("{}/{}", suite.path, test.name)),
                test.cases.len().max(1),
                test.runtime.as_secs_f64(),
                xml_escape(&suite.file.display().to_string()),
            );
            if let Some(e) = &test.error {
                let _ = writeln!(
                    out,
                    "    <testcase name=\"{}\" classname=\"{}\"><failure message=\"{}\"/></testcase>",
                    xml_escape(&test.name),
                    xml_escape(&suite.path),
                    xml_escape(e)
                );
            }
            for case in &test.cases {
                let _ = write!(
                    out,
                    "    <testcase name=\"{}\" classname=\"{}\" time=\"{:.3}\"",
                    xml_escape(&case.name),
                    xml_escape(&format!("{}/{}", suite.path, test.name)),
                    case.runtime.as_secs_f64()
                );
                if case.skipped || test.skipped {
                    out.push_str("><skipped/></testcase>\n");
                } else if let Some(e) = &case.error {
                    let body = case.messages.join("\n");
                    let _ = writeln!(
                        out,
                        "><failure message=\"{}\">{}</failure></testcase>",
                        xml_escape(e),
                        xml_escape(&body)
                    );
                } else {
                    out.push_str("/>\n");
                }
            }
            if test.cases.is_empty() && test.error.is_none() {
                let _ = writeln!(
                    out,
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
            out.push_str("  </testsuite>\n");
        }
    }
    out.push_str("</testsuites>\n");
    out
}
