//! Sets `TOLLGATE_RVM_FINGERPRINT`: what identifies the Rego compiler a precompiled program
//! came from (`src/precompiled.rs`). It hashes the vendored regorus sources and tollgate's Rego
//! normalisation, so that a binary never runs programs another compiler wrote: their bytes
//! could decode into instructions that mean something else. FNV-1a, not std's hasher, whose
//! algorithm may change between Rust releases and with it every fingerprint.

use std::path::{Path, PathBuf};

fn main() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let roots = [
        workspace.join("vendor/regorus/src"),
        workspace.join("vendor/regorus/Cargo.toml"),
        workspace.join("engine/src/rego"),
    ];
    let mut files = Vec::new();
    for root in &roots {
        println!("cargo:rerun-if-changed={}", root.display());
        collect(&workspace, root, &mut files);
    }
    files.sort();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    };
    for (rel, path) in &files {
        feed(rel.as_bytes());
        feed(&[0]);
        if let Ok(bytes) = std::fs::read(path) {
            feed(&bytes);
        }
        feed(&[0]);
    }
    println!("cargo:rustc-env=TOLLGATE_RVM_FINGERPRINT={hash:016x}");
}

/// Every file under `path`, with its path relative to the workspace (`/`-separated, so the hash
/// is the same wherever the checkout is).
fn collect(workspace: &Path, path: &Path, out: &mut Vec<(String, PathBuf)>) {
    if path.is_file() {
        let rel = path.strip_prefix(workspace).unwrap_or(path);
        let rel = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/");
        out.push((rel, path.to_path_buf()));
        return;
    }
    if let Ok(entries) = std::fs::read_dir(path) {
        for entry in entries.flatten() {
            collect(workspace, &entry.path(), out);
        }
    }
}
