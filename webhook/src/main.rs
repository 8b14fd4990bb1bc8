//! `tollgate`: Gatekeeper-compatible policy toolkit — `verify` gator suites and `eval` objects
//! against ConstraintTemplates and constraints, with regorus as the Rego engine.

mod cli;
mod pack;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cli.run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::from(2)
        }
    }
}
