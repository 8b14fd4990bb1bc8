//! `tollgate build [POLICIES_DIR] [--out CONSTRAINTS_DIR] [--check]`: writes each
//! `<out>/<p>/template.yaml` from `<policies>/<p>/src.rego`, or with `--check` writes nothing
//! and reports every template that differs from what would be generated. It also writes the
//! templates' RVM programs, compiled ahead of time, to `<out>/programs.rvm`
//! (`tollgate_engine::precompiled`), which the binary embeds with the pack.
//!
//! Exit codes: 0 written or in sync; 1 when `--check` finds drift; 2 for errors (unreadable
//! files, a bad `# METADATA` block, a generated template that does not compile: a bad schema,
//! Rego that does not parse or calls an undefined function), which name the file and line.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use tollgate_engine::policy_set::BuildOptions;
use tollgate_engine::precompiled::{self, Precompiled};
use tollgate_engine::{PolicySet, Sources, pack_build};

/// Arguments of `build`.
#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// Directory with one `<p>/src.rego` per policy.
    #[arg(default_value = "policies")]
    policies: PathBuf,
    /// Directory the templates go to, as `<out>/<p>/template.yaml`.
    #[arg(long, default_value = "constraints")]
    out: PathBuf,
    /// Write nothing; exit 1 with a diff when a committed template is out of date.
    #[arg(long)]
    check: bool,
}

/// Writes to stdout, ignoring a closed pipe (`tollgate build --check | head`).
fn say(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// Generates (or checks) the templates.
pub fn run(args: BuildArgs) -> anyhow::Result<ExitCode> {
    let BuildArgs {
        policies,
        out,
        check,
    } = args;
    let templates = pack_build::generate(&policies, &out)?;
    if templates.is_empty() {
        anyhow::bail!(
            "no policies found: {} has no <policy>/src.rego",
            policies.display()
        );
    }
    // What is written must be a template Gatekeeper would accept: compile each one (schema,
    // Rego, undefined functions) before anything is written or called up to date.
    let mut broken = Vec::new();
    for t in &templates {
        let mut sources = Sources::default();
        let compiled = sources
            .add_text(&t.target.display().to_string(), &t.content)
            .map_err(|e| e.to_string())
            .and_then(|()| PolicySet::build(&sources).map_err(|e| e.to_string()));
        if let Err(e) = compiled {
            broken.push(format!("{e}\n  (generated from {})", t.source.display()));
        }
    }
    if !broken.is_empty() {
        anyhow::bail!(
            "{} generated template(s) do not compile; nothing was written:\n{}",
            broken.len(),
            broken.join("\n")
        );
    }
    let mut stale = 0;
    for t in &templates {
        let target = t.target.display().to_string();
        let current = match std::fs::read_to_string(&t.target) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e).with_context(|| format!("failed to read {target}")),
        };
        if current.as_deref() == Some(t.content.as_str()) {
            if !check {
                say(&format!("{target}: up to date\n"));
            }
            continue;
        }
        stale += 1;
        if check {
            match &current {
                Some(old) => {
                    let diff = pack_build::unified_diff(
                        old,
                        &t.content,
                        &format!("{target} (committed)"),
                        &format!("{target} (generated from {})", t.source.display()),
                    )
                    .unwrap_or_default();
                    say(&diff);
                }
                None => say(&format!(
                    "{target}: missing (generated from {})\n",
                    t.source.display()
                )),
            }
        } else {
            if let Some(dir) = t.target.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("failed to create {}", dir.display()))?;
            }
            std::fs::write(&t.target, &t.content)
                .with_context(|| format!("failed to write {target}"))?;
            say(&format!("{target}: written\n"));
        }
    }
    let programs_stale = programs(&templates, &out, check)?;
    if check {
        if stale > 0 {
            eprintln!(
                "{stale} of {} templates out of date: run `tollgate build` and commit the result",
                templates.len()
            );
        }
        if programs_stale {
            eprintln!(
                "{} out of date: run `tollgate build` and commit the result",
                out.join(precompiled::FILE_NAME).display()
            );
        }
        if stale > 0 || programs_stale {
            return Ok(ExitCode::from(1));
        }
        let n = templates.len();
        let plural = if n == 1 { "" } else { "s" };
        say(&format!("{n} template{plural} up to date\n"));
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes (or with `check` compares) `<out>/programs.rvm`: the generated templates compiled
/// by this build. Returns whether it is (or was) out of date.
///
/// A committed artifact rather than one `build.rs` generates: `build.rs` would compile regorus
/// and the engine a second time for the host on every clean build and in CI, for bytes that
/// change only with the pack's Rego or the compiler, and that this check already keeps in sync.
fn programs(templates: &[pack_build::Template], out: &Path, check: bool) -> anyhow::Result<bool> {
    let mut sources = Sources::default();
    for t in templates {
        sources.add_text(&t.target.display().to_string(), &t.content)?;
    }
    let set = PolicySet::build_with(&sources, BuildOptions::default())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let fresh = Precompiled::of_templates(set.templates().map(AsRef::as_ref))
        .map_err(|e| anyhow::anyhow!(e))?;
    let bytes = fresh.to_bytes();
    let target = out.join(precompiled::FILE_NAME);
    let shown = target.display().to_string();
    let current = match std::fs::read(&target) {
        Ok(bytes) => Some(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("failed to read {shown}")),
    };
    if current.as_deref() == Some(bytes.as_slice()) {
        if !check {
            say(&format!("{shown}: up to date\n"));
        }
        return Ok(false);
    }
    if check {
        match &current {
            Some(old) => {
                let lines = precompiled::differences(old, &fresh);
                let lines = if lines.is_empty() {
                    vec!["the bytes differ (the fingerprint or the layout)".to_string()]
                } else {
                    lines
                };
                say(&format!(
                    "{shown}: out of date:\n  {}\n",
                    lines.join("\n  ")
                ));
            }
            None => say(&format!("{shown}: missing\n")),
        }
    } else {
        std::fs::create_dir_all(out)
            .with_context(|| format!("failed to create {}", out.display()))?;
        std::fs::write(&target, &bytes).with_context(|| format!("failed to write {shown}"))?;
        say(&format!("{shown}: written\n"));
    }
    Ok(true)
}
