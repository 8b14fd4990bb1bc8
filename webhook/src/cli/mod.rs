//! Command-line interface: argument parsing and dispatch. Each command lives in its own module.

mod audit;
mod build;
mod eval;
pub mod serve;
mod test;
mod verify;

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{CommandFactory as _, Parser, Subcommand};

/// `tollgate --version`: the package version and the commit it was built from (`build.rs`).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("TOLLGATE_COMMIT"),
    ")"
);

/// Gatekeeper-compatible admission policy toolkit.
#[derive(Debug, Parser)]
#[command(name = "tollgate", version = VERSION, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run gator `verify` Suites (templates, constraints and cases) and report like gator.
    Verify(verify::VerifyArgs),
    /// Evaluate objects against policies, like `gator test`.
    Eval(eval::EvalArgs),
    /// One audit pass over the cluster of the current kubeconfig, with its policies.
    Audit(audit::AuditArgs),
    /// Serve the validating admission webhook over HTTPS.
    Serve(Box<serve::ServeArgs>),
    /// Run Rego unit tests (`test_*` rules) and report like `opa test`.
    Test(test::TestArgs),
    /// Generate constraints/<p>/template.yaml from policies/<p>/src.rego (`--check`: fail on drift).
    Build(build::BuildArgs),
    /// Print a shell completion script (e.g. `source <(tollgate completion bash)`).
    Completion {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
}

impl Cli {
    /// Runs the chosen command; the exit code follows each command's contract.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        match self.command {
            Command::Verify(args) => verify::run(args),
            Command::Eval(args) => eval::run(args),
            Command::Audit(args) => audit::run(args),
            Command::Serve(args) => serve::run(*args),
            Command::Test(args) => test::run(args),
            Command::Build(args) => build::run(args),
            Command::Completion { shell } => {
                // Generated into memory first: clap_complete panics on a failed write (a closed
                // pipe), and a CLI reports that as an error instead.
                let mut script = Vec::new();
                clap_complete::generate(shell, &mut Cli::command(), "tollgate", &mut script);
                std::io::stdout()
                    .write_all(&script)
                    .context("failed to write the completion script")?;
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}

/// Which evaluator runs templates (`--evaluator`), shared by `serve`, `eval` and `verify`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum EvaluatorFlag {
    /// regorus's RVM wherever a template compiles to it, the interpreter elsewhere.
    #[default]
    Rvm,
    /// regorus's interpreter for every template.
    Interpreter,
}

impl From<EvaluatorFlag> for tollgate_engine::rvm::Evaluator {
    fn from(flag: EvaluatorFlag) -> Self {
        match flag {
            EvaluatorFlag::Rvm => Self::Rvm,
            EvaluatorFlag::Interpreter => Self::Interpreter,
        }
    }
}

/// Output formats shared by the reporting commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Text for a terminal and CI logs.
    Human,
    /// One JSON document.
    Json,
    /// JUnit XML.
    Junit,
}
