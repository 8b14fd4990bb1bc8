//! `tollgate build` through the built binary: regeneration, `--check` drift detection, metadata
//! errors, and that the committed pack is in sync.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests assert by unwrapping

use std::path::Path;

use assert_cmd::Command;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/build");

fn tollgate(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("tollgate").unwrap();
    cmd.current_dir(dir);
    cmd
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A scratch copy of the fixture pack: `policies/` and `constraints/` as committed.
fn scratch() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(
        &Path::new(FIXTURES).join("policies"),
        &dir.path().join("policies"),
    );
    copy_dir(
        &Path::new(FIXTURES).join("constraints"),
        &dir.path().join("constraints"),
    );
    dir
}

const TEMPLATE: &str = "constraints/k8sdemolabels/template.yaml";
const PROGRAMS: &str = "constraints/programs.rvm";

#[test]
fn build_regenerates_the_committed_template_byte_for_byte() {
    let dir = scratch();
    std::fs::remove_file(dir.path().join(TEMPLATE)).unwrap();
    let out = tollgate(dir.path()).arg("build").output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        stdout,
        format!("{TEMPLATE}: written\n{PROGRAMS}: up to date\n")
    );
    let committed = std::fs::read_to_string(
        Path::new(FIXTURES).join("constraints/k8sdemolabels/template.yaml"),
    )
    .unwrap();
    let generated = std::fs::read_to_string(dir.path().join(TEMPLATE)).unwrap();
    assert_eq!(generated, committed);

    // A second run changes nothing.
    let out = tollgate(dir.path()).arg("build").output().unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("{TEMPLATE}: up to date\n{PROGRAMS}: up to date\n")
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join(TEMPLATE)).unwrap(),
        committed
    );
}

#[test]
fn generated_template_embeds_the_rego_as_a_literal_block_and_verifies() {
    let committed = std::fs::read_to_string(
        Path::new(FIXTURES).join("constraints/k8sdemolabels/template.yaml"),
    )
    .unwrap();
    let rego = std::fs::read_to_string(Path::new(FIXTURES).join("policies/k8sdemolabels/src.rego"))
        .unwrap();
    let (_, block) = committed.split_once("        rego: |\n").unwrap();
    let embedded: String = block
        .lines()
        .map(|l| format!("{}\n", l.strip_prefix("          ").unwrap_or(l)))
        .collect();
    assert_eq!(embedded, rego);
    assert!(
        committed.contains("\n  name: k8sdemolabels\n"),
        "{committed}"
    );
    assert!(
        committed.contains("\n        kind: K8sDemoLabels\n"),
        "{committed}"
    );
    assert!(
        committed.contains("\n    metadata.gatekeeper.sh/version: 0.1.0\n"),
        "{committed}"
    );
    assert!(
        committed.contains("\n              - 'yes'\n"),
        "{committed}"
    );

    // The template is a working Gatekeeper template: its gator suite passes.
    let out = tollgate(Path::new(FIXTURES))
        .args(["verify", "constraints/k8sdemolabels/suite.yaml"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    // And the policy's unit tests run as they would under opa test.
    let out = tollgate(Path::new(FIXTURES))
        .args(["test", "policies"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn check_passes_when_in_sync_and_writes_nothing() {
    let dir = scratch();
    let out = tollgate(dir.path())
        .args(["build", "--check"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "1 template up to date\n"
    );
}

#[test]
fn check_reports_drift_as_a_diff_and_exits_1() {
    let dir = scratch();
    let src = dir.path().join("policies/k8sdemolabels/src.rego");
    let rego = std::fs::read_to_string(&src).unwrap();
    std::fs::write(
        &src,
        rego.replace("missing label %v", "label %v is required"),
    )
    .unwrap();
    let before = std::fs::read_to_string(dir.path().join(TEMPLATE)).unwrap();
    let out = tollgate(dir.path())
        .args(["build", "--check"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.starts_with(&format!(
            "--- {TEMPLATE} (committed)\n+++ {TEMPLATE} (generated from policies/k8sdemolabels/src.rego)\n@@ -58,5 +58,5 @@\n"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "\n-          \tmsg := sprintf(\"missing label %v\", [label])\n+          \tmsg := sprintf(\"label %v is required\", [label])\n"
        ),
        "{stdout}"
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("1 of 1 templates out of date"), "{stderr}");
    // --check writes nothing.
    assert_eq!(
        std::fs::read_to_string(dir.path().join(TEMPLATE)).unwrap(),
        before
    );

    // A missing template is drift too.
    std::fs::remove_file(dir.path().join(TEMPLATE)).unwrap();
    let out = tollgate(dir.path())
        .args(["build", "--check"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("{TEMPLATE}: missing")),
        "{out:?}"
    );
    assert!(!dir.path().join(TEMPLATE).exists());
}

/// The precompiled programs are part of what `build` writes and `--check` keeps in sync.
#[test]
fn check_reports_stale_programs_and_build_rewrites_them_byte_for_byte() {
    let dir = scratch();
    let committed = std::fs::read(Path::new(FIXTURES).join(PROGRAMS)).unwrap();
    let mut damaged = committed.clone();
    let last = damaged.len() - 1;
    damaged[last] ^= 1;
    for (what, bytes) in [("damaged", Some(damaged)), ("missing", None)] {
        match &bytes {
            Some(b) => std::fs::write(dir.path().join(PROGRAMS), b).unwrap(),
            None => std::fs::remove_file(dir.path().join(PROGRAMS)).unwrap(),
        }
        let out = tollgate(dir.path())
            .args(["build", "--check"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{what}: {out:?}");
        let stdout = String::from_utf8(out.stdout).unwrap();
        let expected = match what {
            "missing" => format!("{PROGRAMS}: missing\n"),
            _ => format!(
                "{PROGRAMS}: out of date:\n  the committed artifact is not used by this build: "
            ),
        };
        assert!(stdout.starts_with(&expected), "{what}: {stdout}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(
            stderr.contains(&format!("{PROGRAMS} out of date")),
            "{stderr}"
        );
        // --check writes nothing.
        assert_eq!(
            std::fs::read(dir.path().join(PROGRAMS)).ok(),
            bytes,
            "{what}"
        );
    }
    let out = tollgate(dir.path()).arg("build").output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("{TEMPLATE}: up to date\n{PROGRAMS}: written\n")
    );
    assert_eq!(std::fs::read(dir.path().join(PROGRAMS)).unwrap(), committed);
}

#[test]
fn bad_metadata_names_the_file_and_line() {
    let fixtures = Path::new(FIXTURES);
    let out = tollgate(fixtures)
        .args(["build", "bad_metadata", "--out", "unused", "--check"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.starts_with("Error: bad_metadata/k8sbad/src.rego:5: invalid METADATA: "),
        "{stderr}"
    );

    let out = tollgate(fixtures)
        .args(["build", "missing_kind", "--out", "unused", "--check"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.starts_with("Error: missing_kind/k8snokind/src.rego:5: METADATA has no custom.kind"),
        "{stderr}"
    );
    assert!(!fixtures.join("unused").exists());
}

/// CI's drift check: the repository's templates are what `tollgate build` generates.
#[test]
fn repository_pack_is_in_sync() {
    let repo = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let out = tollgate(repo).args(["build", "--check"]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "constraints/ is out of date: run `tollgate build`\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// `build` compiles what it would write: a schema type the API server refuses, or Rego that
/// calls an undefined function, fails `build` and `build --check` and writes nothing.
#[test]
fn templates_that_do_not_compile_are_never_written_or_passed() {
    for (what, from, to, expected) in [
        (
            "schema",
            "#           type: string",
            "#           type: strng",
            "openAPIV3Schema.properties.labels.items.type: Unsupported value: \"strng\"",
        ),
        (
            "function",
            "package k8sdemolabels",
            "package k8sdemolabels\n\nboom if no_such_function(1)",
            "no_such_function",
        ),
    ] {
        let dir = scratch();
        let src = dir.path().join("policies/k8sdemolabels/src.rego");
        let text = std::fs::read_to_string(&src).unwrap();
        assert!(text.contains(from), "{what}: fixture lacks {from:?}");
        std::fs::write(&src, text.replacen(from, to, 1)).unwrap();
        let before = std::fs::read_to_string(dir.path().join(TEMPLATE)).unwrap();
        for args in [&["build"][..], &["build", "--check"][..]] {
            let out = tollgate(dir.path()).args(args).output().unwrap();
            let stderr = String::from_utf8(out.stderr).unwrap();
            assert_eq!(out.status.code(), Some(2), "{what} {args:?}: {stderr}");
            assert!(
                stderr.contains("generated template(s) do not compile; nothing was written")
                    && stderr.contains(expected)
                    && stderr.contains("(generated from policies/k8sdemolabels/src.rego)"),
                "{what} {args:?}: {stderr}"
            );
        }
        let after = std::fs::read_to_string(dir.path().join(TEMPLATE)).unwrap();
        assert_eq!(before, after, "{what}: the template was rewritten");
    }
}
