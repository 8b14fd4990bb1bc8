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
}

/// Runs the suites; exit 1 when any case fails or a path cannot be read.
pub fn run(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let VerifyArgs {
        paths,
        run,
        verbose,
        format,
        evaluator,
    } = args;
    let filter = match verify::Filter::new(&run) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("Error: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    let mut suites = Vec::new();
    for p in &paths {
        match verify::discover(p) {
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
    let failed = results.iter().any(|r| r.is_failure());
    if failed {
        // gator's command ends a failing run with this line on stderr.
        eprintln!("Error: FAIL");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
