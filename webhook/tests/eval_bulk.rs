//! `tollgate eval` on many documents: whatever `--jobs`, and whether it streams its inputs or
//! holds them all (it holds them when a constraint's template reads `data.inventory`), its
//! output is the same, byte for byte, and so is its exit code. The inputs are generated: Pods
//! that pass, warn or break the pack's rules, Deployments, objects without a namespace,
//! AdmissionReviews, Lists, ConfigMaps whose template prints, policies and Namespaces placed
//! after the objects they judge, a CustomResourceDefinition after its objects, and match errors.
//! `tollgate audit -f` finds on them what `eval` finds.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests assert by unwrapping

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use assert_cmd::Command;

#[derive(Debug, PartialEq, Eq)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn eval(args: &[&str]) -> Run {
    tollgate("eval", args)
}

fn tollgate(command: &str, args: &[&str]) -> Run {
    let mut cmd = Command::cargo_bin("tollgate").unwrap();
    cmd.current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."));
    let out = cmd.arg(command).args(args).output().unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

fn write(dir: &Path, rel: &str, text: &str) -> PathBuf {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, text).unwrap();
    path
}

/// A small deterministic generator (no dependency for randomness).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

fn container(image: &str, cpu: &str) -> String {
    format!(
        "  - name: app\n    image: {image}\n    resources:\n      requests:\n        cpu: 200m\n        memory: 256Mi\n      limits:\n        cpu: {cpu}\n        memory: 1Gi\n"
    )
}

fn pod(name: &str, namespace: Option<&str>, labels: &str, spec: &str) -> String {
    let ns = namespace.map_or(String::new(), |n| format!("  namespace: {n}\n"));
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n{ns}  labels:\n    app: tracker\n{labels}spec:\n{spec}"
    )
}

fn pod_spec(runtime: &str, node_selector: bool, image: &str, cpu: &str) -> String {
    let selector = if node_selector {
        "  nodeSelector:\n    node-type: edge\n"
    } else {
        ""
    };
    format!(
        "  runtimeClassName: {runtime}\n{selector}  containers:\n{}",
        container(image, cpu)
    )
}

const GOOD_IMAGE: &str = "registry.example.com/logistics-tracker:1.4.2";

/// One generated document (a YAML stream's part, without `---`).
fn document(i: usize, rng: &mut Lcg) -> String {
    let name = format!("obj-{i:05}");
    let good = pod_spec("wasmedge", true, GOOD_IMAGE, "1000m");
    match rng.below(16) {
        0 => pod(
            &name,
            Some("logistics"),
            "",
            &pod_spec(
                "wasmedge",
                true,
                "registry.example.com/logistics-tracker:latest",
                "1000m",
            ),
        ),
        1 => pod(
            &name,
            Some("logistics"),
            "",
            &pod_spec("runc", true, GOOD_IMAGE, "1000m"),
        ),
        2 => pod(
            &name,
            Some("logistics"),
            "",
            &pod_spec("wasmedge", false, GOOD_IMAGE, "1000m"),
        ),
        3 => pod(
            &name,
            Some("logistics"),
            "    team: a\n",
            &pod_spec("wasmedge", true, "docker.io/library/nginx:1.27", "4"),
        ),
        // Placed in `default` (or `-n`).
        4 => pod(&name, None, "", &good),
        // Judged by the namespaceSelector through a Namespace read later.
        5 => pod(&name, Some(&format!("audited-{}", i % 3)), "", &good),
        // A Namespace no input holds: the namespaceSelector's match error is its result.
        6 => pod(&name, Some(&format!("unknown-{}", i % 2)), "", &good),
        7 => format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: logistics\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {{app: tracker}}\n  template:\n    metadata:\n      labels: {{app: tracker}}\n    spec:\n{}",
            pod_spec("runc", true, GOOD_IMAGE, "1000m")
                .lines()
                .map(|l| format!("    {l}\n"))
                .collect::<String>()
        ),
        8 => format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: logistics\ndata:\n  bad: \"{}\"\n",
            i.is_multiple_of(2)
        ),
        9 | 10 => {
            let op = if rng.below(2) == 0 {
                "CREATE"
            } else {
                "DELETE"
            };
            let field = if op == "DELETE" {
                "oldObject"
            } else {
                "object"
            };
            format!(
                "apiVersion: admission.k8s.io/v1\nkind: AdmissionReview\nrequest:\n  uid: u-{i}\n  kind: {{group: \"\", version: v1, kind: Pod}}\n  resource: {{group: \"\", version: v1, resource: pods}}\n  namespace: logistics\n  operation: {op}\n  userInfo: {{username: alice}}\n  {field}:\n{}",
                pod(
                    &name,
                    Some("logistics"),
                    "",
                    &pod_spec("runc", true, GOOD_IMAGE, "1000m")
                )
                .lines()
                .map(|l| format!("    {l}\n"))
                .collect::<String>()
            )
        }
        11 => format!(
            "apiVersion: v1\nkind: List\nitems:\n{}{}",
            indent_item(&pod(
                &format!("{name}-a"),
                Some("logistics"),
                "",
                &pod_spec("runc", true, GOOD_IMAGE, "1000m")
            )),
            indent_item(&pod(&format!("{name}-b"), Some("audited-1"), "", &good)),
        ),
        // Cluster-scoped by a CustomResourceDefinition read after it: no namespace added.
        12 => format!("apiVersion: example.com/v1\nkind: Fleet\nmetadata:\n  name: {name}\n"),
        // Words that make the world scan parse it, though it shapes nothing.
        13 => format!(
            "# not a Namespace, not gatekeeper.sh!\n{}",
            pod(
                &name,
                Some("logistics"),
                "    note: \"tab\\there\"\n",
                &good
            )
        ),
        _ => pod(&name, Some("logistics"), "", &good),
    }
}

fn indent_item(doc: &str) -> String {
    let mut out = String::new();
    for (i, line) in doc.lines().enumerate() {
        let prefix = if i == 0 { "- " } else { "  " };
        writeln!(out, "{prefix}{line}").unwrap();
    }
    out
}

/// Templates and constraints among the inputs, read after objects they judge: one requires a
/// `team` label in Namespaces labelled `audit: "on"`, one prints for ConfigMaps.
const INPUT_POLICIES: &str = r#"apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: k8sbulkteam
spec:
  crd:
    spec:
      names:
        kind: K8sBulkTeam
  targets:
    - target: admission.k8s.gatekeeper.sh
      rego: |
        package k8sbulkteam
        violation[{"msg": msg}] {
          not input.review.object.metadata.labels.team
          ns := object.get(input.review.namespaceObject.metadata, "name", "?")
          msg := sprintf("%v needs a team label in %v", [input.review.object.metadata.name, ns])
        }
---
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: K8sBulkTeam
metadata:
  name: bulk-team
spec:
  match:
    kinds: [{apiGroups: [""], kinds: ["Pod"]}]
    namespaceSelector:
      matchLabels: {audit: "on"}
---
apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: k8sbulkprint
spec:
  crd:
    spec:
      names:
        kind: K8sBulkPrint
  targets:
    - target: admission.k8s.gatekeeper.sh
      rego: |
        package k8sbulkprint
        violation[{"msg": msg}] {
          print("config map", input.review.object.metadata.name)
          input.review.object.data.bad == "true"
          msg := "bad config"
        }
---
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: K8sBulkPrint
metadata:
  name: bulk-print
spec:
  enforcementAction: warn
  match:
    kinds: [{apiGroups: [""], kinds: ["ConfigMap"]}]
"#;

/// A template that reads `data.inventory`, with a constraint that matches nothing: adding it
/// changes no result, only how `eval` reads its inputs (all of them first).
const INVENTORY_POLICY: &str = r#"apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: k8sbulkinventory
spec:
  crd:
    spec:
      names:
        kind: K8sBulkInventory
  targets:
    - target: admission.k8s.gatekeeper.sh
      rego: |
        package k8sbulkinventory
        violation[{"msg": "seen"}] {
          data.inventory.namespace[_]
        }
---
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: K8sBulkInventory
metadata:
  name: bulk-inventory
spec:
  match:
    kinds: [{apiGroups: ["nothing.example.com"], kinds: ["Nothing"]}]
"#;

const NAMESPACES: &str = "apiVersion: v1
kind: Namespace
metadata:
  name: audited-0
  labels: {audit: \"on\"}
---
apiVersion: v1
kind: Namespace
metadata:
  name: audited-1
  labels: {audit: \"on\"}
---
apiVersion: v1
kind: Namespace
metadata:
  name: audited-2
  labels: {audit: \"off\"}
---
apiVersion: v1
kind: Namespace
metadata:
  name: logistics
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: fleets.example.com
spec:
  group: example.com
  names: {kind: Fleet, plural: fleets}
  scope: Cluster
";

/// Writes `documents` generated documents over several files of a directory (one nested, one
/// JSON), then the policies and Namespaces after them; returns the directory and the number of
/// objects to review in it.
fn generated_inputs(dir: &Path, documents: usize) -> (PathBuf, usize) {
    let inputs = dir.join("inputs");
    let mut rng = Lcg(20_000);
    let per_file = documents / 4;
    // The JSON Pods, the Namespaces and the CustomResourceDefinition.
    let mut objects = 20 + 5;
    for (f, rel) in ["a.yaml", "b.yml", "nested/c.yaml", "nested/deeper/d.yaml"]
        .iter()
        .enumerate()
    {
        let mut text = String::new();
        for i in f * per_file..(f + 1) * per_file {
            let doc = document(i, &mut rng);
            objects += if doc.contains("kind: List\n") { 2 } else { 1 };
            text.push_str("---\n");
            text.push_str(&doc);
        }
        write(&inputs, rel, &text);
    }
    let json: Vec<String> = (0..20)
        .map(|i| {
            format!(
                r#"{{"apiVersion": "v1", "kind": "Pod", "metadata": {{"name": "json-{i}", "namespace": "logistics"}}, "spec": {{"runtimeClassName": "{}", "nodeSelector": {{"node-type": "edge"}}, "containers": [{{"name": "c", "image": "{GOOD_IMAGE}"}}]}}}}"#,
                if i % 3 == 0 { "runc" } else { "wasmedge" }
            )
        })
        .collect();
    write(&inputs, "nested/e.json", &json.join("\n"));
    write(&inputs, "nested/z-policies.yaml", INPUT_POLICIES);
    write(&inputs, "z-namespaces.yaml", NAMESPACES);
    (inputs, objects)
}

/// Runs `args` with `--jobs 1` and `--jobs 3`, then again with the inventory policy added
/// (every input held before the first review) with both, and requires the same run of all four.
fn same_whatever_the_way(dir: &Path, args: &[&str]) -> Run {
    let inventory = write(dir, "inventory-policy.yaml", INVENTORY_POLICY);
    let inventory = inventory.to_str().unwrap();
    let with = |extra: &[&str]| {
        let mut all = args.to_vec();
        all.extend_from_slice(extra);
        eval(&all)
    };
    let reference = with(&["--jobs", "1", "-f", inventory]);
    for extra in [
        &["--jobs", "3", "-f", inventory][..],
        &["--jobs", "1"],
        &["--jobs", "3"],
    ] {
        let run = with(extra);
        assert!(
            run == reference,
            "{extra:?} differs from one job, inputs held:\n--- code {:?} vs {:?}\n--- stderr\n{}\n--- reference stderr\n{}",
            run.code,
            reference.code,
            tail(&run.stderr),
            tail(&reference.stderr)
        );
    }
    reference
}

fn tail(text: &str) -> &str {
    &text[text.len().saturating_sub(2000)..]
}

#[test]
fn output_is_byte_identical_whatever_the_jobs_and_whether_inputs_are_streamed() {
    let dir = tempfile::tempdir().unwrap();
    let (inputs, objects) = generated_inputs(dir.path(), 2000);
    let inputs = inputs.to_str().unwrap();
    let human = same_whatever_the_way(dir.path(), &["-R", "-f", inputs]);
    assert_eq!(human.code, Some(1), "{}", tail(&human.stderr));
    let out = &human.stdout;
    for expected in [
        "[\"tracker-runtime-class\"] (deny)",
        "[\"tracker-image-tag\"] (warn)",
        "[\"tracker-allowed-registries\"] (deny)",
        "[Implied by expand-workloads]",
        "needs a team label in audited-0",
        "needs a team label in audited-1",
        "unable to match constraints",
        "[\"bulk-print\"] (warn) Message: \"bad config\"",
        "v1/Pod logistics/json-0:",
    ] {
        assert!(out.contains(expected), "{expected} missing from the output");
    }
    assert!(!out.contains("needs a team label in audited-2"));
    // The Fleets stay without a namespace (the CustomResourceDefinition comes last).
    assert!(!out.contains("example.com/v1/Fleet default/"));
    assert!(human.stderr.contains("config map obj-"), "print() output");
    let summary = human.stderr.lines().last().unwrap();
    assert!(
        summary.starts_with(&format!("{objects} objects, ")),
        "{summary}"
    );

    let json = same_whatever_the_way(dir.path(), &["-R", "-f", inputs, "--format", "json"]);
    assert_eq!(json.code, Some(1));
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(doc["summary"]["objects"], objects);
    assert!(doc["results"].as_array().unwrap().len() > 1000);
}

#[test]
fn standard_input_is_read_once_and_streamed_like_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let (inputs, _) = generated_inputs(dir.path(), 400);
    let file = inputs.join("a.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    let from_stdin = |jobs: &str| {
        let mut cmd = Command::cargo_bin("tollgate").unwrap();
        let out = cmd
            .args(["eval", "--jobs", jobs, "-f", "-", "-f", "-"])
            .write_stdin(text.clone())
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8(out.stdout).unwrap())
    };
    let from_file = eval(&["-f", file.to_str().unwrap()]);
    for jobs in ["1", "2"] {
        let (code, stdout) = from_stdin(jobs);
        assert_eq!(code, from_file.code);
        // The same documents, named `-` instead of the file.
        assert_eq!(stdout, from_file.stdout);
    }
}

/// A pipe (`-f <(...)`) can be read only once: it is read first and kept, like standard input.
#[test]
fn a_pipe_is_read_once_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (inputs, _) = generated_inputs(dir.path(), 400);
    let files = [
        inputs.join("a.yaml"),
        inputs.join("nested/z-policies.yaml"),
        inputs.join("z-namespaces.yaml"),
    ];
    let mut args = Vec::new();
    for f in &files {
        args.extend(["-f", f.to_str().unwrap()]);
    }
    let from_files = eval(&args);
    assert!(from_files.stdout.contains("needs a team label in audited-"));
    let bin = assert_cmd::cargo::cargo_bin("tollgate");
    for jobs in ["1", "2"] {
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!(
                "exec \"$0\" eval --jobs {jobs} -f <(cat \"$1\") -f <(cat \"$2\") -f <(cat \"$3\")"
            ))
            .arg(&bin)
            .args(&files)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), from_files.code);
        assert_eq!(String::from_utf8(out.stdout).unwrap(), from_files.stdout);
    }
}

#[test]
fn bad_inputs_exit_2_with_the_same_error_whatever_the_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let (inputs, _) = generated_inputs(dir.path(), 800);
    let inputs = inputs.to_str().unwrap();
    // A document that is not an object early on, a syntax error in a later file: the syntax
    // error is reported, as every input is read before any is checked.
    write(
        Path::new(inputs),
        "a.yaml",
        "---\n- just\n- a list\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: p}\n",
    );
    write(Path::new(inputs), "nested/deeper/d.yaml", "a: [1,\n");
    let run = same_whatever_the_way(dir.path(), &["-R", "-f", inputs]);
    assert_eq!(run.code, Some(2));
    assert_eq!(run.stdout, "");
    assert!(
        run.stderr.contains("d.yaml: document 1: line"),
        "{}",
        run.stderr
    );

    std::fs::remove_file(Path::new(inputs).join("nested/deeper/d.yaml")).unwrap();
    let run = same_whatever_the_way(dir.path(), &["-R", "-f", inputs]);
    assert_eq!(run.code, Some(2));
    assert_eq!(run.stdout, "");
    assert!(
        run.stderr
            .contains("a.yaml: document 2: not a Kubernetes object"),
        "{}",
        run.stderr
    );
}

/// An object in another namespace than `-n` is refused, unless a CustomResourceDefinition read
/// after it makes its kind cluster-scoped.
#[test]
fn placement_follows_definitions_read_after_the_objects() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("inputs");
    let mut pods = String::new();
    for i in 0..500 {
        pods.push_str("---\n");
        pods.push_str(&pod(
            &format!("p-{i}"),
            if i % 2 == 0 { Some("logistics") } else { None },
            "",
            &pod_spec("runc", true, GOOD_IMAGE, "1000m"),
        ));
    }
    write(&inputs, "b.yaml", &pods);
    let definition = NAMESPACES.split("---\n").last().unwrap();
    write(&inputs, "z.yaml", definition);
    let args = ["-R", "-f", inputs.to_str().unwrap(), "-n", "logistics"];
    write(
        &inputs,
        "a.yaml",
        "apiVersion: example.com/v1\nkind: Fleet\nmetadata: {name: f, namespace: elsewhere}\n",
    );
    let run = same_whatever_the_way(dir.path(), &args);
    assert_eq!(run.code, Some(1), "{}", tail(&run.stderr));
    assert_eq!(
        run.stderr.lines().last(),
        Some("502 objects, 500 denied, 0 warned")
    );
    write(
        &inputs,
        "a.yaml",
        "apiVersion: example.com/v1\nkind: Tracker\nmetadata: {name: t, namespace: elsewhere}\n",
    );
    let run = same_whatever_the_way(dir.path(), &args);
    assert_eq!(run.code, Some(2));
    assert!(
        run.stderr
            .contains("a.yaml: document 1: the namespace from the provided object \"elsewhere\""),
        "{}",
        run.stderr
    );
}

#[test]
fn allowed_inputs_exit_0_whatever_the_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::new();
    for i in 0..300 {
        text.push_str("---\n");
        text.push_str(&pod(
            &format!("p-{i}"),
            Some("logistics"),
            "",
            &pod_spec("wasmedge", true, GOOD_IMAGE, "1000m"),
        ));
    }
    let file = write(dir.path(), "pods.yaml", &text);
    let run = same_whatever_the_way(dir.path(), &["-f", file.to_str().unwrap()]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.stdout, "");
    assert_eq!(run.stderr, "300 objects, 0 denied, 0 warned\n");
}

/// With a template that reads `data.inventory`, every object is read before the first review,
/// so an object is judged against objects that come after it in the inputs.
#[test]
fn a_template_that_reads_the_inventory_sees_objects_read_after_the_reviewed_one() {
    let dir = tempfile::tempdir().unwrap();
    let configmap = |name: &str, key: &str| {
        format!(
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: team-a\ndata:\n  key: {key}\n"
        )
    };
    let mut text = configmap("first", "shared");
    for i in 0..1500 {
        text.push_str("---\n");
        text.push_str(&pod(
            &format!("p-{i}"),
            Some("logistics"),
            "",
            &pod_spec("wasmedge", true, GOOD_IMAGE, "1000m"),
        ));
    }
    text.push_str(&configmap("last", "shared"));
    let file = write(dir.path(), "objects.yaml", &text);
    let suite = "tests/suites/inventory";
    for jobs in ["1", "2"] {
        let run = eval(&[
            "--jobs",
            jobs,
            "--policies",
            &format!("{suite}/template_v1.yaml"),
            "--policies",
            &format!("{suite}/constraint_v1.yaml"),
            "-f",
            file.to_str().unwrap(),
        ]);
        assert_eq!(run.code, Some(1), "{}", run.stderr);
        assert!(
            run.stdout.contains(
                "v1/ConfigMap team-a/first: [\"inventory-refs\"] (deny) Message: \"data.key shared already used by configmap team-a/last\""
            ),
            "{}",
            run.stdout
        );
        assert!(run.stdout.contains("inventory has 2 namespaces"));
    }
}

#[test]
fn jobs_must_be_a_positive_number() {
    let run = eval(&["--jobs", "0", "-f", "-"]);
    assert_eq!(run.code, Some(2));
    assert!(run.stderr.contains("--jobs"), "{}", run.stderr);
}

/// Each result of `eval --format json` as `audit` records it: constraint, then the object's
/// group, version, kind, namespace and name, the message and the action.
fn eval_results(stdout: &str) -> Vec<[String; 9]> {
    let doc: serde_json::Value = serde_json::from_str(stdout).unwrap();
    let mut found: Vec<[String; 9]> = doc["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let o = &r["object"];
            let api_version = o["apiVersion"].as_str().unwrap();
            let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
            let actions: Vec<&str> = r["enforcementActions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap())
                .collect();
            [
                r["constraint"]["kind"].as_str().unwrap().to_string(),
                r["constraint"]["name"].as_str().unwrap().to_string(),
                group.to_string(),
                version.to_string(),
                o["kind"].as_str().unwrap().to_string(),
                o["namespace"].as_str().unwrap().to_string(),
                o["name"].as_str().unwrap().to_string(),
                r["message"].as_str().unwrap().to_string(),
                actions.join(","),
            ]
        })
        .collect();
    found.sort();
    found
}

/// The same from `audit --format json`, and the number of objects it says it audited.
fn audit_results(stdout: &str) -> (Vec<[String; 9]>, u64) {
    let doc: serde_json::Value = serde_json::from_str(stdout).unwrap();
    let s = |v: &serde_json::Value| v.as_str().unwrap_or("").to_string();
    let mut found = Vec::new();
    for c in doc["constraints"].as_array().unwrap() {
        let violations = c["violations"].as_array().unwrap();
        assert_eq!(c["totalViolations"].as_u64(), Some(violations.len() as u64));
        for v in violations {
            found.push([
                s(&c["kind"]),
                s(&c["name"]),
                s(&v["group"]),
                s(&v["version"]),
                s(&v["kind"]),
                s(&v["namespace"]),
                s(&v["name"]),
                s(&v["message"]),
                s(&v["enforcementAction"]),
            ]);
        }
    }
    found.sort();
    (found, doc["objects"].as_u64().unwrap())
}

#[test]
fn audit_from_files_finds_what_eval_finds() {
    let dir = tempfile::tempdir().unwrap();
    let (inputs, objects) = generated_inputs(dir.path(), 400);
    let inputs = inputs.to_str().unwrap();
    let inventory = write(dir.path(), "inventory-policy.yaml", INVENTORY_POLICY);
    // Streamed, then with every input held first.
    for extra in [&[][..], &["-f", inventory.to_str().unwrap()]] {
        let args: Vec<&str> = ["-R", "-f", inputs, "--format", "json"]
            .into_iter()
            .chain(extra.iter().copied())
            .collect();
        let evaluated = eval(&args);
        let audited = tollgate("audit", &args);
        assert_eq!(evaluated.code, Some(1), "{}", tail(&evaluated.stderr));
        assert_eq!(audited.code, evaluated.code, "{}", tail(&audited.stderr));
        let expected = eval_results(&evaluated.stdout);
        let (found, audited_objects) = audit_results(&audited.stdout);
        assert!(
            expected.len() > 50,
            "too few results to compare: {}",
            expected.len()
        );
        assert!(
            expected.iter().all(|r| r[7].len() <= 256),
            "a message longer than the audit keeps"
        );
        assert_eq!(found, expected);
        assert_eq!(audited_objects as usize, objects);
        assert!(
            audited
                .stderr
                .contains(&format!("audited {objects} objects against")),
            "{}",
            tail(&audited.stderr)
        );
    }
    // The human report: a header per constraint with its count, a line per violation.
    let human = tollgate("audit", &["-R", "-f", inputs]);
    assert_eq!(human.code, Some(1));
    let header = human
        .stdout
        .lines()
        .find(|l| l.starts_with("K8sRequiredRuntimeClass/tracker-runtime-class (deny): "))
        .unwrap_or_else(|| panic!("no header for tracker-runtime-class:\n{}", human.stdout));
    let lines = human
        .stdout
        .lines()
        .filter(|l| l.starts_with("  [tracker-runtime-class] "))
        .count();
    assert_eq!(
        header,
        format!("K8sRequiredRuntimeClass/tracker-runtime-class (deny): {lines} violations")
    );
    // JUnit: the denying constraints fail.
    let junit = tollgate("audit", &["-R", "-f", inputs, "--format", "junit"]);
    assert_eq!(junit.code, Some(1));
    assert!(junit.stdout.contains("<testcase classname=\"K8sRequiredRuntimeClass\" name=\"tracker-runtime-class\">\n      <failure message=\""));
}

/// A scoped constraint that acts only at the audit point: `eval` (gator's point) lets the
/// object through, `audit -f` denies it.
#[test]
fn audit_from_files_acts_at_the_audit_enforcement_point() {
    let dir = tempfile::tempdir().unwrap();
    let policy = write(
        dir.path(),
        "scoped.yaml",
        &INPUT_POLICIES
            .split("---\n")
            .take(2)
            .collect::<Vec<_>>()
            .join("---\n")
            .replace(
                "spec:\n  match:\n    kinds: [{apiGroups: [\"\"], kinds: [\"Pod\"]}]\n    namespaceSelector:\n      matchLabels: {audit: \"on\"}\n",
                "spec:\n  enforcementAction: scoped\n  scopedEnforcementActions:\n  - action: deny\n    enforcementPoints:\n    - name: audit.gatekeeper.sh\n  match:\n    kinds: [{apiGroups: [\"\"], kinds: [\"Pod\"]}]\n",
            ),
    );
    let pod = write(
        dir.path(),
        "pod.yaml",
        &format!(
            "{}---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: logistics}}\n",
            pod(
                "p",
                Some("logistics"),
                "",
                &pod_spec("wasmedge", true, GOOD_IMAGE, "1000m")
            )
        ),
    );
    let args = [
        "--policies",
        policy.to_str().unwrap(),
        "-f",
        pod.to_str().unwrap(),
        "--format",
        "json",
    ];
    let evaluated = eval(&args);
    assert_eq!(evaluated.code, Some(0), "{}", evaluated.stderr);
    assert!(eval_results(&evaluated.stdout).is_empty());
    let audited = tollgate("audit", &args);
    assert_eq!(audited.code, Some(1), "{}", audited.stderr);
    let doc: serde_json::Value = serde_json::from_str(&audited.stdout).unwrap();
    let violations = &doc["constraints"][0]["violations"];
    assert_eq!(violations[0]["enforcementAction"], "scoped");
    assert_eq!(
        violations[0]["enforcementActions"],
        serde_json::json!(["deny"])
    );
    assert_eq!(
        violations[0]["message"],
        "p needs a team label in logistics"
    );
}

#[test]
fn audit_from_files_refuses_the_cluster_only_flags() {
    for flag in [
        &["--write-status"][..],
        &["--chunk-size", "10"],
        &["--match-kind-only"],
    ] {
        let args: Vec<&str> = ["-f", "-"]
            .into_iter()
            .chain(flag.iter().copied())
            .collect();
        let run = tollgate("audit", &args);
        assert_eq!(run.code, Some(2), "{flag:?}: {}", run.stderr);
        assert!(run.stderr.contains("cannot be used with"), "{}", run.stderr);
    }
    let run = tollgate("audit", &["--no-expand"]);
    assert_eq!(run.code, Some(2));
    assert!(run.stderr.contains("--filename"), "{}", run.stderr);
}
