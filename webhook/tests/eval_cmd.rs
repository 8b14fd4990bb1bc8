//! `tollgate eval` through the built binary, on the embedded tracker pack: the reference pod and
//! the fixed seed Deployment are admitted with exactly one warning; every single-change variant
//! is denied by exactly the constraint responsible for it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests assert by unwrapping

use std::path::{Path, PathBuf};

use assert_cmd::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn tollgate() -> Command {
    let mut cmd = Command::cargo_bin("tollgate").unwrap();
    cmd.current_dir(root());
    cmd
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn eval(args: &[&str]) -> Run {
    let out = tollgate().arg("eval").args(args).output().unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

fn lines_with<'a>(text: &'a str, needle: &str) -> Vec<&'a str> {
    text.lines().filter(|l| l.contains(needle)).collect()
}

const SAMPLES: &str = "constraints/k8srequiredruntimeclass/samples/tracker";

#[test]
fn reference_pod_is_admitted_with_exactly_the_latest_tag_warning() {
    let run = eval(&["-f", &format!("{SAMPLES}/example_allowed.yaml")]);
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{}", run.stdout);
    assert!(
        lines[0].starts_with(
            "v1/Pod logistics/logistics-tracker: [\"tracker-image-tag\"] (warn) Message: "
        ),
        "{}",
        lines[0]
    );
}

#[test]
fn fixed_seed_deployment_is_admitted_with_exactly_one_warning_through_expansion() {
    let run = eval(&["-f", &format!("{SAMPLES}/example_allowed_deployment.yaml")]);
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{}", run.stdout);
    assert!(
        lines[0].starts_with("apps/v1/Deployment logistics/logistics-tracker: [\"tracker-image-tag\"] (warn) Message: \"[Implied by expand-workloads] "),
        "{}",
        lines[0]
    );
}

/// The constraint a policy directory's samples are about: `metadata.name` of its tracker
/// constraint (a simple file, read line by line).
fn constraint_name(policy_dir: &Path) -> String {
    let text = std::fs::read_to_string(policy_dir.join("samples/tracker/constraint.yaml")).unwrap();
    text.lines()
        .skip_while(|l| !l.starts_with("metadata:"))
        .find_map(|l| l.trim().strip_prefix("name:"))
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn every_variant_is_denied_by_exactly_its_constraint() {
    let mut checked = 0;
    let mut failures = Vec::new();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root().join("constraints"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    for dir in dirs {
        let responsible = constraint_name(&dir);
        let samples = dir.join("samples/tracker");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&samples)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("example_disallowed_")
            })
            .collect();
        files.sort();
        for file in files {
            let rel = file.strip_prefix(root()).unwrap().display().to_string();
            let run = eval(&["-f", &rel]);
            let denying = lines_with(&run.stdout, "(deny)");
            let others: Vec<&&str> = denying
                .iter()
                .filter(|l| !l.contains(&format!("[\"{responsible}\"]")))
                .collect();
            // tracker-image-tag is a warn constraint: its variants are warnings, not denials.
            let expect_deny = responsible != "tracker-image-tag";
            let ok = if expect_deny {
                run.code == Some(1) && !denying.is_empty() && others.is_empty()
            } else {
                run.code == Some(0)
                    && denying.is_empty()
                    && !lines_with(&run.stdout, &format!("[\"{responsible}\"] (warn)")).is_empty()
            };
            if !ok {
                failures.push(format!(
                    "{rel} (expected {responsible}): exit {:?}\n{}",
                    run.code, run.stdout
                ));
            }
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} variants found");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn standard_input_and_json_output() {
    let pod = std::fs::read_to_string(
        root()
            .join(SAMPLES)
            .join("example_disallowed_runtimeclass_runc.yaml"),
    )
    .unwrap();
    let out = tollgate()
        .args(["eval", "-f", "-", "--format", "json"])
        .write_stdin(pod)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["allowed"], false);
    let denied: Vec<&serde_json::Value> = doc["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["enforcementActions"][0] == "deny")
        .collect();
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0]["constraint"]["name"], "tracker-runtime-class");
    assert_eq!(denied[0]["object"]["file"], "-");
}

#[test]
fn no_expand_leaves_workloads_unchecked() {
    let file = format!("{SAMPLES}/example_disallowed_deployment_runc.yaml");
    assert_eq!(eval(&["-f", &file]).code, Some(1));
    let run = eval(&["-f", &file, "--no-expand"]);
    assert_eq!(run.code, Some(0), "{}", run.stdout);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
}

#[test]
fn bad_input_exits_2_naming_file_document_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: v1\nkind: Pod\n---\nmetadata: {name: [x\n",
    )
    .unwrap();
    let run = eval(&["-f", bad.to_str().unwrap()]);
    assert_eq!(run.code, Some(2));
    assert!(
        run.stderr
            .contains(&format!("{}: document 2: line 4, column", bad.display())),
        "{}",
        run.stderr
    );
}

#[test]
fn own_policies_replace_the_embedded_pack() {
    let run = eval(&[
        "-f",
        "webhook/tests/fixtures/verify_failing/pod.yaml",
        "--policies",
        "webhook/tests/fixtures/verify_failing/template.yaml",
        "--policies",
        "webhook/tests/fixtures/verify_failing/constraint.yaml",
    ]);
    assert_eq!(run.code, Some(1), "{}{}", run.stdout, run.stderr);
    assert_eq!(
        lines_with(&run.stdout, "[\"must-have-owner\"] (deny)").len(),
        2,
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("tracker-"), "{}", run.stdout);
}

#[test]
fn broken_policy_exits_2_with_its_location() {
    let run = eval(&[
        "-f",
        "webhook/tests/fixtures/verify_failing/pod.yaml",
        "--policies",
        "engine/tests/fixtures/load/parameters_wrong_type.yaml",
    ]);
    assert_eq!(run.code, Some(2));
    assert!(
        run.stderr.contains("parameters_wrong_type.yaml: document 2 (K8sRequiredRuntimeClass \"tracker-runtime-class\"): spec.parameters.runtimeClassNames: expected array, got string"),
        "{}",
        run.stderr
    );
}

/// The objects given to `eval` are its inventory too (as `gator test`'s are), for templates
/// that read `data.inventory`.
#[test]
fn objects_are_the_inventory_of_templates_that_read_it() {
    let dir = "tests/suites/inventory";
    let run = eval(&[
        "--policies",
        &format!("{dir}/template_v1.yaml"),
        "--policies",
        &format!("{dir}/constraint_v1.yaml"),
        "-f",
        &format!("{dir}/configmap.yaml"),
        "-f",
        &format!("{dir}/inventory_configmaps.yaml"),
    ]);
    assert_eq!(run.code, Some(1), "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains(
            "v1/ConfigMap team-a/new-cm: [\"inventory-refs\"] (deny) Message: \"data.key shared already used by configmap team-a/existing\""
        ),
        "{}",
        run.stdout
    );
    assert_eq!(
        lines_with(
            &run.stdout,
            "inventory has 2 namespaces and 0 cluster groupVersions"
        )
        .len(),
        4,
        "{}",
        run.stdout
    );
}

/// A typo in a constraint never widens it: `spec.match.namespace` (for `namespaces`) is an
/// unknown field, as in gator and the API server, reported with file and line.
#[test]
fn a_constraint_with_unknown_fields_is_refused_with_gators_wording() {
    let run = eval(&[
        "-f",
        "tests/strictness/pod.yaml",
        "--policies",
        "tests/strictness/template-v1.yaml",
        "--policies",
        "tests/strictness/constraint-c-namespace.yaml",
    ]);
    assert_eq!(run.code, Some(2), "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains(
            "tests/strictness/constraint-c-namespace.yaml:1 (K8sRequiredRuntimeClass \"typo\"): invalid Constraint: unknown fields: [spec.match.namespace]"
        ),
        "{}",
        run.stderr
    );
}

/// The samples hold five ExpansionTemplates named expand-deployments: gator keeps the last, and
/// the built-in expansion steps aside for Deployments, so each result is printed once.
#[test]
fn same_named_expansions_count_once_and_the_builtin_steps_aside() {
    let run = eval(&[
        "-f",
        "constraints/k8srequiredruntimeclass/samples/tracker/example_allowed_deployment.yaml",
        "--policies",
        "constraints/",
    ]);
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    assert_eq!(run.stdout.lines().count(), 1, "{}", run.stdout);
    assert!(
        run.stdout.contains("[Implied by expand-deployments]"),
        "{}",
        run.stdout
    );
    assert_eq!(
        lines_with(
            &run.stderr,
            "ExpansionTemplate \"expand-deployments\"): not used: "
        )
        .len(),
        4,
        "{}",
        run.stderr
    );
}

/// A Rego syntax error inside template.yaml is a parse error at the YAML file's own line and
/// column, with no follow-on errors about the constraints of that template.
#[test]
fn a_rego_syntax_error_points_at_the_template_file_line() {
    let dir = tempfile::tempdir().unwrap();
    let template =
        std::fs::read_to_string(root().join("constraints/k8srequiredruntimeclass/template.yaml"))
            .unwrap()
            .replace(
                "          _pod := input.review.object\n",
                "          _pod := input.review.object\n          broken := [\n",
            );
    let broken_line = template
        .lines()
        .position(|l| l.contains("violation contains"))
        .unwrap()
        + 1;
    std::fs::write(dir.path().join("template.yaml"), template).unwrap();
    std::fs::copy(
        root().join("constraints/k8srequiredruntimeclass/samples/tracker/constraint.yaml"),
        dir.path().join("constraint.yaml"),
    )
    .unwrap();
    let policies = dir.path().display().to_string();
    let run = eval(&["-f", "tests/strictness/pod.yaml", "--policies", &policies]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    let location = format!("--> {policies}/template.yaml:{broken_line}:21");
    assert!(
        run.stderr.contains(&location),
        "{location} not in:\n{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("error: expecting `]`"),
        "{}",
        run.stderr
    );
    for noise in [
        "no ConstraintTemplate defines kind",
        "missing required rule",
    ] {
        assert!(!run.stderr.contains(noise), "{noise}: {}", run.stderr);
    }
}
