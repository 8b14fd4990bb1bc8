//! `tollgate test [PATH]...`: Rego unit tests, as `opa test` runs and reports them (v1.22.3,
//! `cmd/test.go`), with one addition: the last line is always `N passed, N failed`.
//!
//! Exit codes are OPA's: 0 when every test passed, 2 when any failed, errored or was skipped
//! (unless `--exit-zero-on-skipped`) and when coverage is below `--threshold`, 1 for load,
//! parse and compile errors, a bad `--run` regex, and failures in `--coverage` mode.

use std::io::Write;
use std::process::ExitCode;

use tollgate_engine::harness::rego_test::{self, Options, Outcome, Report, Summary};
use tollgate_engine::harness::rego_test_printer as printer;

/// Output formats of `test`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TestFormat {
    /// `opa test`'s pretty reporter.
    Pretty,
    /// `opa test --format json`.
    Json,
    /// JUnit XML.
    Junit,
}

/// Arguments of `test`.
#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// Files or directories to load: `.rego` modules and `.json`/`.yaml` data, recursively.
    #[arg(default_value = ".")]
    paths: Vec<String>,
    /// Only run tests whose full name (`data.pkg.test_x`) matches this regex.
    #[arg(short, long)]
    run: Option<String>,
    /// List every test, with its `print()` output, and show where failing tests stopped.
    #[arg(short, long)]
    verbose: bool,
    /// Parse modules as Rego v0 (modules that `import rego.v1` stay v1).
    #[arg(long)]
    v0_compatible: bool,
    /// Report line coverage as JSON instead of test results.
    #[arg(short, long)]
    coverage: bool,
    /// Exit 2 when coverage is below this percentage (implies `--coverage`).
    #[arg(long, default_value_t = 0.0)]
    threshold: f64,
    /// Output format (ignored with `--coverage`, which prints the coverage report).
    #[arg(long, value_enum, default_value_t = TestFormat::Pretty)]
    format: TestFormat,
    /// Skipped (`todo_test_`) tests do not make the exit code non-zero.
    #[arg(short = 'z', long)]
    exit_zero_on_skipped: bool,
    /// Exit 1 when no test ran.
    #[arg(long)]
    fail_on_empty: bool,
    /// File and directory names (globs such as `.*`) to skip while loading.
    #[arg(long, value_delimiter = ',')]
    ignore: Vec<String>,
}

/// Writes the result text: the report to stdout and tollgate's summary as the last line (on
/// stdout for the pretty format; on stderr when stdout holds a JSON or XML document, which must
/// stay parseable).
fn finish(
    stdout: &str,
    stderr: &str,
    summary: &Summary,
    summary_on_stdout: bool,
    code: u8,
) -> ExitCode {
    // Write errors (a closed pipe: `tollgate test | head`) are ignored rather than panicking,
    // so the exit code still says how the tests went.
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr().lock();
    let _ = out.write_all(stdout.as_bytes());
    if !stderr.is_empty() {
        let _ = writeln!(err, "{}", stderr.trim_end());
    }
    let line = printer::summary_line(summary);
    let _ = if summary_on_stdout {
        writeln!(out, "{line}")
    } else {
        writeln!(err, "{line}")
    };
    let _ = out.flush();
    ExitCode::from(code)
}

/// Runs the tests and prints the report.
pub fn run(args: TestArgs) -> anyhow::Result<ExitCode> {
    let TestArgs {
        paths,
        run,
        verbose,
        v0_compatible,
        coverage,
        threshold,
        format,
        exit_zero_on_skipped,
        fail_on_empty,
        ignore,
    } = args;
    if !(0.0..=100.0).contains(&threshold) {
        eprintln!("Code coverage threshold must be between 0 and 100");
        return Ok(ExitCode::from(1));
    }
    let options = Options {
        v0_compatible,
        run,
        coverage: coverage || threshold > 0.0,
        ignore,
    };
    let report = match rego_test::run(&paths, &options) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            let text = e.to_string();
            if !v0_compatible
                && ["`if` keyword is required", "`contains` keyword is required"]
                    .iter()
                    .any(|m| text.contains(m))
            {
                // Gatekeeper templates without `version: "v1"` are Rego v0, as is most
                // library code: the parser's complaint does not say so.
                eprintln!(
                    "hint: this is Rego v0 syntax (what a template without version: \"v1\" holds); run with --v0-compatible"
                );
            }
            return Ok(ExitCode::from(1));
        }
    };
    let summary = report.summary();
    let counts_against = |outcome: Outcome| match outcome {
        Outcome::Pass => false,
        Outcome::Skip => !exit_zero_on_skipped,
        Outcome::Fail | Outcome::Error => true,
    };
    let code = if report.results.iter().any(|r| counts_against(r.outcome)) {
        2
    } else {
        0
    };
    if report.results.is_empty() && fail_on_empty {
        return Ok(finish("", "no tests were run", &summary, false, 1));
    }
    if let Some(cov) = &report.coverage {
        return Ok(coverage_mode(
            &report, cov, threshold, verbose, &summary, code,
        ));
    }
    let (text, on_stdout) = match format {
        TestFormat::Pretty => (printer::pretty(&report, verbose), true),
        TestFormat::Json => (printer::json(&report), false),
        TestFormat::Junit => (printer::junit(&report), false),
    };
    Ok(finish(&text, "", &summary, on_stdout, code))
}

/// `--coverage`, as OPA's JSON coverage reporter behaves: the first evaluation error, or the
/// failures (pretty, then the first on stderr), exit 1; coverage below the threshold exits 2
/// with the threshold error; otherwise the report.
fn coverage_mode(
    report: &Report,
    coverage: &rego_test::Coverage,
    threshold: f64,
    verbose: bool,
    summary: &Summary,
    code: u8,
) -> ExitCode {
    if let Some(e) = report.results.iter().find_map(|r| r.error.as_deref()) {
        return finish("", e, summary, false, 1);
    }
    let failures: Vec<_> = report
        .results
        .iter()
        .filter(|r| r.outcome == Outcome::Fail)
        .cloned()
        .collect();
    if let Some(first) = failures.first() {
        let first_line = format!(
            "{}.{}: FAIL ({})",
            first.package,
            first.name,
            printer::go_duration(first.duration)
        );
        let failed = Report {
            results: failures.clone(),
            coverage: None,
        };
        return finish(
            &printer::pretty(&failed, verbose),
            &first_line,
            summary,
            false,
            1,
        );
    }
    if coverage.percent() < threshold {
        let e = printer::threshold_error(coverage, threshold, verbose);
        return finish("", &e, summary, false, 2);
    }
    finish(&printer::coverage_json(coverage), "", summary, false, code)
}
