//! Embeds the tracker pack: every `constraints/*/template.yaml` and every
//! `constraints/*/samples/tracker/constraint.yaml`, as `(path, contents)` pairs, and the pack's
//! precompiled programs (`constraints/programs.rvm`, see `engine/src/precompiled.rs`); and sets
//! `TOLLGATE_COMMIT`, the commit `tollgate --version` reports.

use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    println!("cargo:rustc-env=TOLLGATE_COMMIT={}", commit(&workspace));
    embed_pack(&workspace);
    // image/build.sh links the binary with this file (cargo rustc arguments, which cargo
    // does not read): a new order must relink it.
    println!(
        "cargo:rerun-if-changed={}",
        workspace.join("image/symbol-order.txt").display()
    );
}

/// `TOLLGATE_COMMIT` when set (an image built from a context without `.git`), else `git
/// rev-parse --short HEAD` of this checkout, else `unknown` (a source tarball, or no git).
fn commit(workspace: &Path) -> String {
    println!("cargo:rerun-if-env-changed=TOLLGATE_COMMIT");
    if let Ok(commit) = std::env::var("TOLLGATE_COMMIT")
        && !commit.trim().is_empty()
    {
        return commit.trim().to_string();
    }
    let git = |args: &[&str]| -> Option<String> {
        let out = Command::new("git")
            .args(args)
            .current_dir(workspace)
            .output()
            .ok()?;
        let text = String::from_utf8(out.stdout).ok()?;
        out.status.success().then(|| text.trim().to_string())
    };
    // A tarball unpacked inside some other repository must not report that repository's commit.
    let own = git(&["rev-parse", "--show-toplevel"])
        .and_then(|top| std::fs::canonicalize(top).ok())
        .zip(std::fs::canonicalize(workspace).ok())
        .is_some_and(|(top, workspace)| top == workspace);
    if !own {
        return "unknown".into();
    }
    // Rebuild when HEAD moves: HEAD itself (another branch checked out), the branch it names (a
    // commit on it) and packed-refs (where a branch lives after `git pack-refs`). Only files
    // that exist: cargo treats a missing one as always changed, which would rebuild every time.
    let mut watched = vec![git(&["rev-parse", "--git-path", "HEAD"])];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.push(git(&["rev-parse", "--git-path", &branch]));
    }
    watched.push(git(&["rev-parse", "--git-path", "packed-refs"]));
    for path in watched.into_iter().flatten() {
        // `--git-path` answers relative to the directory git ran in (absolute in a worktree).
        let path: PathBuf = workspace.join(path);
        if path.is_file() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into())
}

fn embed_pack(workspace: &Path) {
    let root = workspace.join("constraints");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut files = Vec::new();
    if let Ok(entries) = std::fs::read_dir(&root) {
        for entry in entries.flatten() {
            let dir = entry.path();
            println!("cargo:rerun-if-changed={}", dir.display());
            for rel in ["template.yaml", "samples/tracker/constraint.yaml"] {
                let file = dir.join(rel);
                if file.is_file() {
                    println!("cargo:rerun-if-changed={}", file.display());
                    files.push(file);
                }
            }
        }
    }
    // An empty pack would build a binary whose `serve` and `eval` enforce nothing, silently.
    if !files.iter().any(|f| f.ends_with("template.yaml")) {
        eprintln!(
            "error: no tracker pack to embed: {} holds no <template>/template.yaml",
            root.display()
        );
        std::process::exit(1);
    }
    files.sort();
    let mut out = String::from(
        "/// The embedded tracker pack: (path under constraints/, contents).\npub const FILES: &[(&str, &str)] = &[\n",
    );
    for f in &files {
        let rel = f
            .strip_prefix(&root)
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "    ({rel:?}, include_str!({:?})),",
            f.display().to_string()
        );
    }
    out.push_str("];\n");
    // `tollgate build` writes it beside the templates; a checkout without it builds a binary
    // that compiles the pack at start.
    let programs = root.join("programs.rvm");
    println!("cargo:rerun-if-changed={}", programs.display());
    if programs.is_file() {
        let _ = writeln!(
            out,
            "/// The pack's RVM programs, compiled ahead of time.\npub const PROGRAMS: &[u8] = include_bytes!({:?});",
            programs.display().to_string()
        );
    } else {
        out.push_str(
            "/// No precompiled programs in this checkout.\npub const PROGRAMS: &[u8] = &[];\n",
        );
    }
    let dest = Path::new(&std::env::var("OUT_DIR").unwrap_or_default()).join("pack.rs");
    if let Err(e) = std::fs::write(&dest, out) {
        println!("cargo:warning=failed to write {}: {e}", dest.display());
    }
}
