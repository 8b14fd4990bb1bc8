//! Printers for [`super::rego_test`] results: `opa test`'s pretty reporter, its JSON reporter,
//! its JSON coverage report and threshold error (v1.22.3, `tester/reporter.go`,
//! `cover/threshold_error.go`), plus JUnit XML and tollgate's one-line summary.
//!
//! Owns text only: it neither runs tests nor decides exit codes.

use std::fmt::Write;
use std::time::Duration;

use serde_json::{Value, json};

use super::rego_test::{Coverage, Outcome, Report, SubResult, Summary, TestResult};

/// Go's `time.Duration.String()`: `0s`, `850ns`, `1.5µs`, `12.345678ms`, `1.2s`, `1m2.5s`.
pub fn go_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns == 0 {
        return "0s".to_string();
    }
    fn frac(value: u128, unit: u128, digits: usize) -> String {
        let whole = value / unit;
        let rest = value % unit;
        if rest == 0 {
            return whole.to_string();
        }
        let f = format!("{rest:0digits$}");
        format!("{whole}.{}", f.trim_end_matches('0'))
    }
    if ns < 1_000 {
        return format!("{ns}ns");
    }
    if ns < 1_000_000 {
        return format!("{}µs", frac(ns, 1_000, 3));
    }
    if ns < 1_000_000_000 {
        return format!("{}ms", frac(ns, 1_000_000, 6));
    }
    let total_secs = ns / 1_000_000_000;
    let sub = ns % 1_000_000_000;
    let hours = total_secs / 3600;
    let minutes = (total_secs % 3600) / 60;
    let secs = frac((total_secs % 60) * 1_000_000_000 + sub, 1_000_000_000, 9);
    let mut out = String::new();
    if hours > 0 {
        let _ = write!(out, "{hours}h");
    }
    if hours > 0 || minutes > 0 {
        let _ = write!(out, "{minutes}m");
    }
    let _ = write!(out, "{secs}s");
    out
}

/// `data.pkg.test_x: FAIL (1.2ms)`, or `data.pkg.test_x: SKIPPED` (OPA's `Result.string`).
fn headline(r: &TestResult) -> String {
    let mut s = format!("{}.{}: {}", r.package, r.name, r.outcome.word());
    if r.outcome != Outcome::Skip {
        let _ = write!(s, " ({})", go_duration(r.duration));
    }
    s
}

fn indent(text: &str, by: usize) -> String {
    let pad = " ".repeat(by);
    text.lines()
        .map(|l| {
            if l.is_empty() {
                l.to_string()
            } else {
                format!("{pad}{l}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn sub_result_lines(out: &mut String, subs: &[SubResult], depth: usize, verbose: bool) {
    for s in subs {
        if s.fail || verbose {
            let word = if s.fail { "FAIL" } else { "PASS" };
            let _ = writeln!(out, "  {}{}: {word}", "  ".repeat(depth), s.name);
        }
        sub_result_lines(out, &s.sub_results, depth + 1, verbose);
    }
}

fn hl(out: &mut String) {
    out.push_str(&"-".repeat(80));
    out.push('\n');
}

/// `opa test`'s pretty report: every non-passing test (every test with `verbose`) under its
/// `file:line:`, `print()` output indented, errors below their test; with `verbose`, a FAILURES
/// section that shows where each failing test stopped; then the `----` rule and the
/// `PASS: n/total` … counts. tollgate's summary line ([`summary_line`]) is not included.
pub fn pretty(report: &Report, verbose: bool) -> String {
    let mut out = String::new();
    let mut dirty = false;
    let mut last_file = "";
    for r in &report.results {
        if verbose || !r.passed() {
            if !last_file.is_empty() && last_file != r.location.file {
                out.push('\n');
            }
            let _ = writeln!(out, "{}:{}:", r.location.file, r.location.row);
            last_file = &r.location.file;
            dirty = true;
            let _ = writeln!(out, "{}", headline(r));
            sub_result_lines(&mut out, &r.sub_results, 0, verbose);
            let printed = r.output.join("\n");
            let printed = printed.trim();
            if !printed.is_empty() {
                let _ = writeln!(out, "\n{}\n", indent(printed, 2));
            }
        }
        if let Some(e) = &r.error {
            let _ = writeln!(out, "{}", indent(e, 2));
        }
    }
    let summary = Summary::of(&report.results);
    if summary.fail > 0 && verbose {
        hl(&mut out);
        out.push_str("FAILURES\n");
        hl(&mut out);
        for r in report.results.iter().filter(|r| r.outcome == Outcome::Fail) {
            let _ = writeln!(out, "{}\n", headline(r));
            if let Some(at) = &r.failed_at {
                let _ = writeln!(out, "  {}:{}:", at.location.file, at.location.row);
                for line in at.text.lines() {
                    let _ = writeln!(out, "    {}", line.trim_end());
                }
                out.push('\n');
            }
            sub_result_lines(&mut out, &r.sub_results, 0, false);
        }
    }
    if dirty {
        hl(&mut out);
    }
    let total = summary.total();
    for (label, n) in [
        ("PASS", summary.pass),
        ("FAIL", summary.fail),
        ("SKIPPED", summary.skip),
        ("ERROR", summary.error),
    ] {
        if n != 0 {
            let _ = writeln!(out, "{label}: {n}/{total}");
        }
    }
    out
}

/// tollgate's last line: `N passed, N failed` (errors count as failed), with `, N skipped`
/// when tests were skipped.
pub fn summary_line(summary: &Summary) -> String {
    let mut s = format!(
        "{} passed, {} failed",
        summary.pass,
        summary.fail + summary.error
    );
    if summary.skip > 0 {
        let _ = write!(s, ", {} skipped", summary.skip);
    }
    s
}

/// Go's `encoding/json` escapes `<`, `>`, `&` and the line separators inside strings; outside
/// strings they cannot occur, so replacing them everywhere gives Go's bytes.
fn go_json(value: &Value) -> String {
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

/// Go's base64 of a `[]byte` field (standard alphabet, padded).
fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(A[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn location_json(file: &str, row: u32, col: u32) -> Value {
    json!({"file": file, "row": row, "col": col})
}

/// regorus errors read `--> file:line:col`, a source snippet and `error: message`; OPA's JSON
/// has `message` and `location` fields. The snippet is kept in `details`.
fn error_json(error: &str) -> Value {
    let mut location = None;
    let mut message = None;
    for line in error.lines() {
        let t = line.trim();
        if let Some(loc) = t.strip_prefix("--> ") {
            let mut parts = loc.rsplitn(3, ':');
            let col = parts.next().and_then(|c| c.parse::<u32>().ok());
            let row = parts.next().and_then(|r| r.parse::<u32>().ok());
            if let (Some(col), Some(row), Some(file)) = (col, row, parts.next()) {
                location = Some(location_json(file, row, col));
            }
        } else if let Some(m) = t.strip_prefix("error: ") {
            message = Some(m.to_string());
        }
    }
    let mut obj = serde_json::Map::new();
    obj.insert(
        "message".into(),
        Value::from(message.unwrap_or_else(|| error.to_string())),
    );
    if let Some(l) = location {
        obj.insert("location".into(), l);
        obj.insert("details".into(), Value::from(error));
    }
    Value::Object(obj)
}

fn sub_results_json(subs: &[SubResult]) -> Value {
    let mut map = serde_json::Map::new();
    for s in subs {
        let mut o = serde_json::Map::new();
        o.insert("name".into(), Value::from(s.name.clone()));
        if s.fail {
            o.insert("fail".into(), Value::Bool(true));
        }
        if !s.sub_results.is_empty() {
            o.insert("sub_results".into(), sub_results_json(&s.sub_results));
        }
        map.insert(s.name.clone(), Value::Object(o));
    }
    Value::Object(map)
}

fn result_json(r: &TestResult) -> Value {
    let mut o = serde_json::Map::new();
    o.insert(
        "location".into(),
        location_json(&r.location.file, r.location.row, r.location.col),
    );
    o.insert("package".into(), Value::from(r.package.clone()));
    o.insert("name".into(), Value::from(r.name.clone()));
    if r.outcome == Outcome::Fail {
        o.insert("fail".into(), Value::Bool(true));
    }
    if let Some(e) = &r.error {
        o.insert("error".into(), error_json(e));
    }
    if r.outcome == Outcome::Skip {
        o.insert("skip".into(), Value::Bool(true));
    }
    o.insert(
        "duration".into(),
        Value::from(u64::try_from(r.duration.as_nanos()).unwrap_or(u64::MAX)),
    );
    if !r.output.is_empty() {
        let mut bytes = String::new();
        for line in &r.output {
            bytes.push_str(line);
            bytes.push('\n');
        }
        o.insert("output".into(), Value::from(base64(bytes.as_bytes())));
    }
    if let Some(at) = &r.failed_at {
        o.insert(
            "failed_at".into(),
            json!({
                "location": location_json(&at.location.file, at.location.row, at.location.col),
                "text": at.text,
            }),
        );
    }
    if !r.sub_results.is_empty() {
        o.insert("sub_results".into(), sub_results_json(&r.sub_results));
    }
    Value::Object(o)
}

/// `opa test --format json`: an array of results, in OPA's field names (`duration` in
/// nanoseconds, `output` base64 as Go encodes `[]byte`).
pub fn json(report: &Report) -> String {
    let doc = Value::Array(report.results.iter().map(result_json).collect());
    go_json(&doc) + "\n"
}

/// A float as Go's `encoding/json` writes it (`100`, `87.5`, `83.33333333333333`).
fn go_float(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        Value::from(x as i64)
    } else {
        Value::from(x)
    }
}

fn ranges(lines: &std::collections::BTreeSet<u32>) -> Vec<(u32, u32)> {
    let mut out: Vec<(u32, u32)> = Vec::new();
    for &l in lines {
        match out.last_mut() {
            Some(last) if last.1 + 1 == l => last.1 = l,
            _ => out.push((l, l)),
        }
    }
    out
}

fn ranges_json(lines: &std::collections::BTreeSet<u32>) -> Value {
    Value::Array(
        ranges(lines)
            .into_iter()
            .map(|(a, b)| json!({"start": {"row": a}, "end": {"row": b}}))
            .collect(),
    )
}

/// `opa test --coverage`'s JSON report. Coverage is by line (regorus records lines), so ranges
/// carry rows only; OPA's also carry columns.
pub fn coverage_json(coverage: &Coverage) -> String {
    let mut files = serde_json::Map::new();
    for (name, f) in &coverage.files {
        let mut o = serde_json::Map::new();
        if !f.covered.is_empty() {
            o.insert("covered".into(), ranges_json(&f.covered));
        }
        if !f.not_covered.is_empty() {
            o.insert("not_covered".into(), ranges_json(&f.not_covered));
        }
        if !f.covered.is_empty() {
            o.insert("covered_lines".into(), Value::from(f.covered.len()));
        }
        if !f.not_covered.is_empty() {
            o.insert("not_covered_lines".into(), Value::from(f.not_covered.len()));
        }
        let pct = f.percent();
        if pct != 0.0 {
            o.insert("coverage".into(), go_float(pct));
        }
        files.insert(name.clone(), Value::Object(o));
    }
    let doc = json!({
        "files": files,
        "covered_lines": coverage.covered_lines(),
        "not_covered_lines": coverage.not_covered_lines(),
        "coverage": go_float(coverage.percent()),
    });
    go_json(&doc) + "\n"
}

/// OPA's `CoverageThresholdError`; with `verbose`, the lines not covered.
pub fn threshold_error(coverage: &Coverage, threshold: f64, verbose: bool) -> String {
    let mut s = format!(
        "Code coverage threshold not met: got {:.2} instead of {:.2}",
        coverage.percent(),
        threshold
    );
    if verbose && !coverage.files.is_empty() {
        s.push_str("\nLines not covered:");
        for (file, f) in &coverage.files {
            for (a, b) in ranges(&f.not_covered) {
                if a == b {
                    let _ = write!(s, "\n\t{file}:{a}");
                } else {
                    let _ = write!(s, "\n\t{file}:{a}-{b}");
                }
            }
        }
    }
    s
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\t' => out.push_str("&#9;"),
            c if (c as u32) < 0x20 => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Element text keeps its line breaks; only markup characters are escaped.
fn xml_text(s: &str) -> String {
    xml_escape(s).replace("&#10;", "\n").replace("&#9;", "\t")
}

/// JUnit XML: one `<testsuite>` per package (in order of appearance), one `<testcase>` per test
/// with its file and line; `<failure>` says where a failing test stopped, `<error>` carries the
/// evaluation error, `<skipped/>` marks `todo_test_` rules, `<system-out>` the `print()` output.
pub fn junit(report: &Report) -> String {
    let mut packages: Vec<(&str, Vec<&TestResult>)> = Vec::new();
    for r in &report.results {
        match packages.iter_mut().find(|(p, _)| *p == r.package) {
            Some((_, v)) => v.push(r),
            None => packages.push((&r.package, vec![r])),
        }
    }
    let count = |rs: &[&TestResult], o: Outcome| rs.iter().filter(|r| r.outcome == o).count();
    let secs = |rs: &[&TestResult]| rs.iter().map(|r| r.duration.as_secs_f64()).sum::<f64>();
    let all: Vec<&TestResult> = report.results.iter().collect();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"tollgate test\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{:.6}\">",
        all.len(),
        count(&all, Outcome::Fail),
        count(&all, Outcome::Error),
        count(&all, Outcome::Skip),
        secs(&all)
    );
    for (package, rs) in &packages {
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{:.6}\">",
            xml_escape(package),
            rs.len(),
            count(rs, Outcome::Fail),
            count(rs, Outcome::Error),
            count(rs, Outcome::Skip),
            secs(rs)
        );
        for r in rs {
            let _ = write!(
                out,
                "    <testcase name=\"{}\" classname=\"{}\" file=\"{}\" line=\"{}\" time=\"{:.6}\"",
                xml_escape(&r.name),
                xml_escape(&r.package),
                xml_escape(&r.location.file),
                r.location.row,
                r.duration.as_secs_f64()
            );
            let mut body = String::new();
            match r.outcome {
                Outcome::Pass => {}
                Outcome::Skip => body.push_str("      <skipped/>\n"),
                Outcome::Fail => {
                    let mut detail =
                        format!("{}:{}: {}", r.location.file, r.location.row, headline(r));
                    if let Some(at) = &r.failed_at {
                        let _ = write!(
                            detail,
                            "\nstopped at {}:{}: {}",
                            at.location.file, at.location.row, at.text
                        );
                    }
                    let mut subs = String::new();
                    sub_result_lines(&mut subs, &r.sub_results, 0, false);
                    if !subs.is_empty() {
                        detail.push('\n');
                        detail.push_str(subs.trim_end());
                    }
                    let _ = writeln!(
                        body,
                        "      <failure message=\"{}\" type=\"FAIL\">{}</failure>",
                        xml_escape(&format!("{}.{}: FAIL", r.package, r.name)),
                        xml_text(&detail)
                    );
                }
                Outcome::Error => {
                    let e = r.error.as_deref().unwrap_or_default();
                    let first = e.lines().find(|l| l.trim().starts_with("error: "));
                    let message = first.map_or(e, |l| l.trim().trim_start_matches("error: "));
                    let _ = writeln!(
                        body,
                        "      <error message=\"{}\" type=\"ERROR\">{}</error>",
                        xml_escape(message),
                        xml_text(e)
                    );
                }
            }
            if !r.output.is_empty() {
                let _ = writeln!(
                    body,
                    "      <system-out>{}</system-out>",
                    xml_text(&r.output.join("\n"))
                );
            }
            if body.is_empty() {
                out.push_str("/>\n");
            } else {
                out.push_str(">\n");
                out.push_str(&body);
                out.push_str("    </testcase>\n");
            }
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_as_go_prints_them() {
        for (ns, want) in [
            (0u64, "0s"),
            (850, "850ns"),
            (1_500, "1.5µs"),
            (943_068, "943.068µs"),
            (65_903_503, "65.903503ms"),
            (2_000_000, "2ms"),
            (1_200_000_000, "1.2s"),
            (62_500_000_000, "1m2.5s"),
            (3_600_000_000_000, "1h0m0s"),
        ] {
            assert_eq!(go_duration(Duration::from_nanos(ns)), want);
        }
    }

    #[test]
    fn base64_matches_go() {
        assert_eq!(base64(b"limit is 3\n"), "bGltaXQgaXMgMwo=");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"abc"), "YWJj");
        assert_eq!(base64(b""), "");
    }

    #[test]
    fn floats_print_as_go_prints_them() {
        assert_eq!(go_float(100.0).to_string(), "100");
        assert_eq!(go_float(87.5).to_string(), "87.5");
        assert_eq!(go_float(500.0 / 6.0).to_string(), "83.33333333333333");
    }

    #[test]
    fn summary_line_counts_errors_as_failed() {
        let s = Summary {
            pass: 3,
            fail: 1,
            skip: 0,
            error: 1,
        };
        assert_eq!(summary_line(&s), "3 passed, 2 failed");
        let s = Summary { skip: 2, ..s };
        assert_eq!(summary_line(&s), "3 passed, 2 failed, 2 skipped");
    }

    #[test]
    fn regorus_errors_become_message_and_location() {
        let e = "--> a.rego:4:3\n  |\n4 |   x\n  |   ^\nerror: boom";
        let v = error_json(e);
        assert_eq!(v["message"], "boom");
        assert_eq!(v["location"]["row"], 4);
        assert_eq!(v["location"]["file"], "a.rego");
    }
}
