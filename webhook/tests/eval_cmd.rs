//! `tollgate eval` through the built binary, on the embedded tracker pack: the reference pod and
//! the fixed seed Deployment are admitted with exactly one warning; every single-change variant
//! is denied by exactly the constraint responsible for it. Then its inputs: directories (`-R`),
//! the namespace of objects without one (`-n`), AdmissionReviews, documents that are not
//! objects, and the summary line.
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

fn write(dir: &Path, rel: &str, text: &str) -> PathBuf {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, text).unwrap();
    path
}

/// A tracker Pod named `name` in `logistics` with `runtimeClassName: runc`: one denial.
fn runc_pod(name: &str) -> String {
    let text = std::fs::read_to_string(
        root()
            .join(SAMPLES)
            .join("example_disallowed_runtimeclass_runc.yaml"),
    )
    .unwrap();
    text.replace("name: logistics-tracker\n", &format!("name: {name}\n"))
}

/// The last line on stderr: `eval`'s summary.
fn summary(run: &Run) -> &str {
    run.stderr.lines().last().unwrap_or_default()
}

/// The object names of the denial lines, in output order.
fn denied_names(stdout: &str) -> Vec<String> {
    lines_with(stdout, "(deny)")
        .iter()
        .map(|l| {
            let subject = l.split(": [").next().unwrap();
            subject.rsplit('/').next().unwrap().to_string()
        })
        .collect()
}

#[test]
fn directories_are_read_as_kubectl_reads_them_and_recursively_with_r() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "b.yaml", &runc_pod("from-b"));
    write(dir.path(), "a.yml", &runc_pod("from-a"));
    write(dir.path(), "sub/c.yaml", &runc_pod("from-sub"));
    // Neither a manifest extension nor a manifest: skipped in a directory, as kubectl skips it.
    write(dir.path(), "notes.txt", "not: [a manifest\n");
    let d = dir.path().to_str().unwrap();

    let run = eval(&["-f", d]);
    assert_eq!(run.code, Some(1), "{}{}", run.stdout, run.stderr);
    assert_eq!(
        denied_names(&run.stdout),
        ["from-a", "from-b"],
        "{}",
        run.stdout
    );
    assert_eq!(
        summary(&run),
        "2 objects, 2 denied, 2 warned",
        "{}",
        run.stderr
    );

    let run = eval(&["-f", d, "-R"]);
    assert_eq!(
        denied_names(&run.stdout),
        ["from-a", "from-b", "from-sub"],
        "{}",
        run.stdout
    );
    assert_eq!(
        summary(&run),
        "3 objects, 3 denied, 3 warned",
        "{}",
        run.stderr
    );

    // A file named explicitly is read whatever its extension.
    let manifest = write(dir.path(), "pod.manifest", &runc_pod("explicit"));
    let run = eval(&["-f", manifest.to_str().unwrap()]);
    assert_eq!(denied_names(&run.stdout), ["explicit"], "{}", run.stdout);
}

#[test]
fn the_summary_tells_nothing_read_from_nothing_matched() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "only/in/subdirectories.yaml", &runc_pod("deep"));
    let run = eval(&["-f", dir.path().to_str().unwrap()]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert!(
        run.stderr
            .contains("0 objects, 0 denied, 0 warned\nnote: subdirectories such as "),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("are read only with -R"),
        "{}",
        run.stderr
    );

    let comments = write(dir.path(), "empty.yaml", "# nothing here\n---\n");
    let run = eval(&["-f", comments.to_str().unwrap()]);
    assert_eq!(run.stderr, "0 objects, 0 denied, 0 warned\n");

    // Read, and nothing matched: a ConfigMap is no tracker constraint's kind.
    let cm = write(
        dir.path(),
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, namespace: logistics}\n",
    );
    let run = eval(&["-f", cm.to_str().unwrap(), "--format", "json"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.stderr, "1 object, 0 denied, 0 warned\n");
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        doc["summary"],
        serde_json::json!({"objects": 1, "denied": 0, "warned": 0})
    );
}

/// A warn-only constraint on every kind whose message says which namespace the template saw.
const SHOW_NAMESPACE: &str = r#"apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: k8sshownamespace
spec:
  crd:
    spec:
      names:
        kind: K8sShowNamespace
  targets:
  - target: admission.k8s.gatekeeper.sh
    rego: |
      package k8sshownamespace
      violation[{"msg": msg}] {
        ns := object.get(input.review.object.metadata, "namespace", "none")
        msg := sprintf("namespace %v", [ns])
      }
---
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: K8sShowNamespace
metadata:
  name: show-namespace
spec:
  enforcementAction: warn
"#;

const MIXED_SCOPES: &str = r#"apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
---
apiVersion: v1
kind: Namespace
metadata: {name: team-a}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: reader}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: fleets.example.com}
spec:
  group: example.com
  scope: Cluster
  names: {kind: Fleet, plural: fleets}
---
apiVersion: example.com/v1
kind: Fleet
metadata: {name: north}
---
apiVersion: example.com/v1
kind: Tracker
metadata: {name: t1}
"#;

#[test]
fn objects_without_a_namespace_follow_kubectls_rule() {
    let dir = tempfile::tempdir().unwrap();
    let policies = write(dir.path(), "policies.yaml", SHOW_NAMESPACE);
    let objects = write(dir.path(), "objects.yaml", MIXED_SCOPES);
    let (policies, objects) = (policies.to_str().unwrap(), objects.to_str().unwrap());
    let seen = |extra: &[&str]| {
        let mut args = vec!["--policies", policies, "-f", objects];
        args.extend_from_slice(extra);
        let run = eval(&args);
        assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
        run.stdout
            .lines()
            .map(|l| {
                let (subject, rest) = l.split_once(": [").unwrap();
                let seen = rest.rsplit_once("Message: ").unwrap().1;
                format!("{subject} -> {seen}")
            })
            .collect::<Vec<_>>()
    };
    // Namespaced kinds (a custom kind no input describes counts as one) land in `default`;
    // cluster-scoped kinds (built-in, or by their CustomResourceDefinition) get no namespace.
    assert_eq!(
        seen(&[]),
        [
            "v1/ConfigMap default/settings -> \"namespace default\"",
            "v1/Namespace team-a -> \"namespace none\"",
            "rbac.authorization.k8s.io/v1/ClusterRole reader -> \"namespace none\"",
            "apiextensions.k8s.io/v1/CustomResourceDefinition fleets.example.com -> \"namespace none\"",
            "example.com/v1/Fleet north -> \"namespace none\"",
            "example.com/v1/Tracker default/t1 -> \"namespace default\"",
        ]
    );
    let with_n = seen(&["-n", "team-a"]);
    assert_eq!(
        with_n[0],
        "v1/ConfigMap team-a/settings -> \"namespace team-a\""
    );
    assert_eq!(with_n[1], "v1/Namespace team-a -> \"namespace none\"");
    assert_eq!(
        with_n[5],
        "example.com/v1/Tracker team-a/t1 -> \"namespace team-a\""
    );
}

#[test]
fn a_pod_without_a_namespace_is_judged_in_the_namespace_it_would_land_in() {
    let dir = tempfile::tempdir().unwrap();
    let pod = write(
        dir.path(),
        "pod.yaml",
        &runc_pod("no-namespace").replace("  namespace: logistics\n", ""),
    );
    let pod = pod.to_str().unwrap();
    // `kubectl apply -f` puts it in `default`, outside the tracker constraints'
    // `namespaces: [logistics]`.
    let run = eval(&["-f", pod]);
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert_eq!(summary(&run), "1 object, 0 denied, 0 warned");

    let run = eval(&["-f", pod, "--namespace", "logistics"]);
    assert_eq!(run.code, Some(1), "{}{}", run.stdout, run.stderr);
    assert_eq!(
        lines_with(&run.stdout, "(deny)"),
        [
            "v1/Pod logistics/no-namespace: [\"tracker-runtime-class\"] (deny) Message: \"pod \\\"no-namespace\\\" must set runtimeClassName to one of [\\\"wasmedge\\\"], found \\\"runc\\\"\""
        ]
    );
}

#[test]
fn an_object_in_another_namespace_than_an_explicit_one_is_refused() {
    let file = format!("{SAMPLES}/example_allowed.yaml");
    let run = eval(&["-f", &file, "-n", "other"]);
    assert_eq!(run.code, Some(2));
    assert_eq!(
        run.stderr,
        format!(
            "Error: {file}: document 1: the namespace from the provided object \"logistics\" does not match the namespace \"other\": pass --namespace=logistics to review it\n"
        )
    );
    // The same namespace is fine.
    assert_eq!(eval(&["-f", &file, "-n", "logistics"]).code, Some(0));
}

#[test]
fn admission_reviews_are_reviewed_as_their_request() {
    let run = eval(&["-f", "examples/review-denied.json", "--format", "json"]);
    assert_eq!(run.code, Some(1), "{}{}", run.stdout, run.stderr);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let results = doc["results"].as_array().unwrap();
    assert_eq!(results.len(), 1, "{}", run.stdout);
    assert_eq!(results[0]["constraint"]["name"], "tracker-runtime-class");
    assert_eq!(
        results[0]["object"],
        serde_json::json!({"apiVersion": "v1", "kind": "Pod", "namespace": "logistics",
            "name": "logistics-tracker", "file": "examples/review-denied.json", "document": 1,
            "operation": "CREATE"})
    );

    // A DELETE carries only oldObject; Gatekeeper reviews it as the object.
    let dir = tempfile::tempdir().unwrap();
    let mut delete: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("examples/review-denied.json")).unwrap(),
    )
    .unwrap();
    let request = &mut delete["request"];
    request["operation"] = "DELETE".into();
    request["oldObject"] = request["object"].take();
    let file = write(dir.path(), "delete.json", &delete.to_string());
    let run = eval(&["-f", file.to_str().unwrap()]);
    assert_eq!(run.code, Some(1), "{}{}", run.stdout, run.stderr);
    assert_eq!(lines_with(&run.stdout, "(deny)").len(), 1, "{}", run.stdout);
    assert!(
        run.stdout
            .starts_with("v1/Pod logistics/logistics-tracker: [\"tracker-runtime-class\"]"),
        "{}",
        run.stdout
    );
}

#[test]
fn documents_that_cannot_be_reviewed_are_refused_naming_file_document_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ok}\n---\njust a sentence\n",
            "document 2: not a Kubernetes object: expected a mapping with apiVersion and kind, got a string",
        ),
        (
            "kind: Pod\nmetadata: {name: p}\n",
            "document 1: not a Kubernetes object: apiVersion: missing",
        ),
        (
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: {replicas: 3}}\n",
            "document 1: not a Kubernetes object: metadata.labels.replicas: expected a string, got integer",
        ),
        (
            "apiVersion: admission.k8s.io/v1\nkind: AdmissionReview\n",
            "document 1: invalid AdmissionReview: request: missing: nothing to review",
        ),
        (
            "apiVersion: admission.k8s.io/v1\nkind: AdmissionReview\nrequest: {uid: x, operation: CREATE}\n",
            "document 1: invalid AdmissionReview: request: no object or oldObject found to review",
        ),
        (
            "apiVersion: admission.k8s.io/v1\nkind: AdmissionReview\nrequest: {object: {apiVersion: v1, metadata: {name: p}}}\n",
            "document 1: invalid AdmissionReview: request.object.kind: missing",
        ),
    ];
    for (i, (text, expected)) in cases.iter().enumerate() {
        let file = write(dir.path(), &format!("bad{i}.yaml"), text);
        let run = eval(&["-f", file.to_str().unwrap()]);
        assert_eq!(run.code, Some(2), "{text}");
        assert_eq!(
            run.stderr,
            format!("Error: {}: {expected}\n", file.display()),
            "{text}"
        );
        assert!(run.stdout.is_empty(), "{}", run.stdout);
    }
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

/// A CEL-only template (`engine: K8sNativeValidation`, Gatekeeper's own bats template) is
/// evaluated, not refused: the labelled Namespace is admitted, the other two denied with the
/// template's messages.
#[test]
fn cel_only_templates_are_evaluated() {
    let dir = "tests/suites/cel-native";
    let run = eval(&[
        "--policies",
        &format!("{dir}/k8srequiredlabels_template_vap.yaml"),
        "--policies",
        &format!("{dir}/requiredlabels_owner.yaml"),
        "-f",
        &format!("{dir}/ns_owned.yaml"),
        "-f",
        &format!("{dir}/ns_unlabelled.yaml"),
        "-f",
        &format!("{dir}/ns_bad_owner.yaml"),
    ]);
    assert_eq!(run.code, Some(1), "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains(
            "v1/Namespace unlabelled: [\"all-must-have-label\"] (deny) Message: \"missing required label, requires all of: owner\""
        ),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(
            "v1/Namespace bad-owner: [\"all-must-have-label\"] (deny) Message: \"regex mismatch\""
        ),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("owned:"), "{}", run.stdout);
    assert_eq!(run.stderr, "3 objects, 2 denied, 0 warned\n");

    // An expression that does not compile is said when the template is read, and denies as
    // in Gatekeeper.
    let run = eval(&[
        "--policies",
        &format!("{dir}/celbroken_template.yaml"),
        "--policies",
        &format!("{dir}/celbroken_constraint.yaml"),
        "-f",
        &format!("{dir}/cm_nolabels.yaml"),
    ]);
    assert_eq!(run.code, Some(1), "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains(
            "spec.targets[0].code[0].source.validations[1].expression: does not compile, so every review it runs in gets this error as its result (as in Gatekeeper): compilation failed: ERROR: <input>:1:1: undeclared reference to 'undefinedvar'"
        ),
        "{}",
        run.stderr
    );
    assert!(
        run.stdout
            .contains("(deny) Message: \"compilation error: must evaluate to bool but got dyn\""),
        "{}",
        run.stdout
    );
}
