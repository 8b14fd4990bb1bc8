//! Embeds the tracker pack: every `constraints/*/template.yaml` and every
//! `constraints/*/samples/tracker/constraint.yaml`, as `(path, contents)` pairs.

use std::fmt::Write;
use std::path::Path;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("constraints");
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
    let dest = Path::new(&std::env::var("OUT_DIR").unwrap_or_default()).join("pack.rs");
    if let Err(e) = std::fs::write(&dest, out) {
        println!("cargo:warning=failed to write {}: {e}", dest.display());
    }
}
