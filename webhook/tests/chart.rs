//! The Helm chart's default and cluster-mode renders, snapshotted with insta (generated
//! certificates masked). The chart's deeper checks (kubeconform, security assertions, the CRDs and
//! webhook rules against Gatekeeper's chart, server-side dry run) are in
//! `tests/e2e/chart-check.sh` and `tests/e2e/run.sh`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests assert by unwrapping

use std::path::{Path, PathBuf};
use std::process::Command;

/// The pinned helm: on PATH or in the tools cache; required when oracles are required.
fn helm() -> Option<PathBuf> {
    let from_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("helm"))
            .find(|p| p.is_file())
    });
    let cached = std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".cache/tollgate-tools/bin/helm"))
        .filter(|p| p.is_file());
    let found = from_path.or(cached);
    if found.is_none() && std::env::var_os("TOLLGATE_REQUIRE_ORACLES").is_some() {
        panic!("helm is required (TOLLGATE_REQUIRE_ORACLES): run tests/e2e/install-tools.sh");
    }
    found
}

fn render(values: &[&str]) -> Option<String> {
    let helm = helm()?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut cmd = Command::new(helm);
    cmd.current_dir(&root).args([
        "template",
        "tollgate",
        "charts/tollgate",
        "--namespace",
        "tollgate-system",
    ]);
    for v in values {
        cmd.args(["--values", v]);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).unwrap())
}

fn masked_snapshot(name: &str, yaml: &str) {
    insta::with_settings!({filters => vec![
        (r"(caBundle|tls\.crt|tls\.key|ca\.crt): [A-Za-z0-9+/=]{40,}", "$1: <generated>"),
        (r"checksum/[a-z]+: [0-9a-f]{64}", "checksum: <generated>"),
    ]}, {
        insta::assert_snapshot!(name, yaml);
    });
}

#[test]
fn default_render() {
    let Some(yaml) = render(&[]) else {
        eprintln!("helm not installed; chart snapshot skipped (CI installs it)");
        return;
    };
    masked_snapshot("chart_default", &yaml);
}

/// Cluster mode (`tests/e2e/values/cluster.yaml`): Gatekeeper's CRDs, the RBAC of `--cluster`,
/// Gatekeeper's webhook rule and the matchCondition for tollgate's own ServiceAccount.
#[test]
fn cluster_render() {
    let Some(yaml) = render(&["tests/e2e/values/cluster.yaml"]) else {
        eprintln!("helm not installed; chart snapshot skipped (CI installs it)");
        return;
    };
    masked_snapshot("chart_cluster", &yaml);
}

#[test]
fn extra_policies_keep_the_tracker_pack_unless_told_otherwise() {
    let Some(with_pack) = render(&["tests/e2e/values/single.yaml"]) else {
        return;
    };
    assert!(with_pack.contains("- --policies=/policies"), "{with_pack}");
    assert!(with_pack.contains("- --with-embedded-pack"), "{with_pack}");
    let dir = tempfile::tempdir().unwrap();
    let off = dir.path().join("off.yaml");
    std::fs::write(&off, "trackerPack: false\n").unwrap();
    let replaced = render(&["tests/e2e/values/single.yaml", off.to_str().unwrap()]).unwrap();
    assert!(replaced.contains("- --policies=/policies"));
    assert!(!replaced.contains("--with-embedded-pack"));
}
