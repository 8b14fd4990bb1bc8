//! `tollgate`: Gatekeeper-compatible admission webhook and policy toolkit.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = tollgate::cli::Cli::parse();
    match cli.run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::from(2)
        }
    }
}
