//! `tollgate verify PATH...`: gator verify.

use std::process::ExitCode;

use tollgate_engine::harness::{printer, verify};

use super::{EvaluatorFlag, Format};

/// Arguments of `verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// Suite files or directories; `dir/...` searches recursively.
    #[arg(required = true)]
    paths: Vec<String>,
    /// Only run tests (and cases) matching this regex; `test//case` filters both.
    #[arg(short, long, default_value = "")]
    run: String,
    /// Print every test and case, not only failures.
    #[arg(short, long)]
    verbose: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
    /// Which evaluator runs the templates.
    #[arg(long, value_enum, default_value_t = EvaluatorFlag::Rvm)]
    evaluator: EvaluatorFlag,
    /// Fail (exit 1) when a path holds no Suite, or when no case ran (all skipped or filtered
    /// out by `--run`); gator passes such a run.
    #[arg(long)]
    fail_on_empty: bool,
}

/// Runs the suites; exit 1 when any case fails or a path cannot be read.
pub fn run(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let VerifyArgs {
        paths,
        run,
        verbose,
        format,
        evaluator,
        fail_on_empty,
    } = args;
    let filter = match verify::Filter::new(&run) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("Error: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    let mut suites = Vec::new();
    let mut empty_paths = Vec::new();
    for p in &paths {
        match verify::discover(p) {
            Ok(found) if found.is_empty() => empty_paths.push(p.as_str()),
            Ok(found) => suites.extend(found),
            Err(e) => {
                eprintln!("Error: {e}");
                return Ok(ExitCode::from(1));
            }
        }
    }
    let results: Vec<_> = suites
        .iter()
        .map(|s| verify::run_suite_with(s, &filter, evaluator.into()))
        .collect();
    let program = std::env::args().next().unwrap_or_else(|| "tollgate".into());
    let program = if program.contains('/') {
        "tollgate".to_string()
    } else {
        program
    };
    let text = match format {
        Format::Human => printer::human(&results, verbose, &program) + "\n",
        Format::Json => printer::json(&results),
        Format::Junit => printer::junit(&results),
    };
    print!("{text}");
    // stdout stays gator's; what gator passes silently is said on stderr.
    for p in &empty_paths {
        eprintln!("{}", no_suite_note(p));
    }
    let failed = results.iter().any(|r| r.is_failure());
    if failed {
        // gator's command ends a failing run with this line on stderr.
        eprintln!("Error: FAIL");
        return Ok(ExitCode::from(1));
    }
    if fail_on_empty {
        if !empty_paths.is_empty() {
            eprintln!(
                "Error: --fail-on-empty: no Suite found in {}",
                empty_paths.join(", ")
            );
            return Ok(ExitCode::from(1));
        }
        if !results.iter().any(ran_a_case) {
            eprintln!(
                "Error: --fail-on-empty: no case ran: every test and case was skipped or filtered out by --run"
            );
            return Ok(ExitCode::from(1));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Says that a path held no Suite, with the hint a directory without `/...` needs.
fn no_suite_note(path: &str) -> String {
    let recursive = path.ends_with("...");
    let dir = std::path::Path::new(path).is_dir();
    if dir && !recursive {
        format!(
            "note: no Suite found in {path} (its subdirectories are searched with {}/...)",
            path.trim_end_matches('/')
        )
    } else {
        format!("note: no Suite found in {path}")
    }
}

/// True when some case ran, or some test without cases ran its template and constraint checks
/// (`invalid: true` tests have no cases).
fn ran_a_case(suite: &verify::SuiteResult) -> bool {
    suite
        .tests
        .iter()
        .any(|t| !t.skipped && (t.cases.is_empty() || t.cases.iter().any(|c| !c.skipped)))
}
