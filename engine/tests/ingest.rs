//! Ingestion's failure rule, through the engine's public API: each template, constraint and
//! ExpansionTemplate fails alone and keeps its last good version; unchanged templates are not
//! compiled again; a higher-ranked source wins an object of the same kind and name.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests assert by unwrapping

use std::sync::Arc;

use tollgate_engine::Sources;
use tollgate_engine::error::PolicyError;
use tollgate_engine::ingest::{Ingested, Ingester, Layer};
use tollgate_engine::policy_set::BuildOptions;

fn template(kind: &str, message: &str) -> String {
    let name = kind.to_lowercase();
    format!(
        "apiVersion: templates.gatekeeper.sh/v1\nkind: ConstraintTemplate\nmetadata:\n  name: {name}\nspec:\n  crd:\n    spec:\n      names:\n        kind: {kind}\n      validation:\n        openAPIV3Schema:\n          type: object\n          properties:\n            label:\n              type: string\n  targets:\n  - target: admission.k8s.gatekeeper.sh\n    rego: |\n      package {name}\n      violation[{{\"msg\": \"{message}\"}}] {{\n        true\n      }}\n"
    )
}

fn broken_template(kind: &str) -> String {
    template(kind, "x").replace("true\n", "broken := [\n")
}

fn constraint(kind: &str, name: &str, label: &str) -> String {
    format!(
        "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: {kind}\nmetadata:\n  name: {name}\nspec:\n  parameters:\n    label: {label}\n"
    )
}

fn sources(files: &[(&str, &str)]) -> Sources {
    let mut s = Sources::default();
    for (name, text) in files {
        s.add_text(name, text).unwrap();
    }
    s
}

fn ingest(ingester: &mut Ingester, layers: &[(&str, &Sources)]) -> Ingested {
    let layers: Vec<Layer<'_>> = layers
        .iter()
        .map(|(source, documents)| Layer { source, documents })
        .collect();
    ingester.ingest(&layers)
}

fn kinds(ingested: &Ingested) -> Vec<String> {
    ingested
        .set
        .templates()
        .map(|t| t.kind().to_string())
        .collect()
}

fn problems(ingested: &Ingested) -> Vec<String> {
    ingested.problems.iter().map(ToString::to_string).collect()
}

#[test]
fn a_template_that_never_compiled_is_left_out_and_the_others_work() {
    let mut ingester = Ingester::new(BuildOptions::default());
    let files = sources(&[
        ("a.yaml", &template("K8sA", "a")),
        ("b.yaml", &broken_template("K8sB")),
        ("c.yaml", &constraint("K8sA", "ca", "x")),
        ("d.yaml", &constraint("K8sB", "cb", "x")),
    ]);
    let out = ingest(&mut ingester, &[("files", &files)]);
    assert_eq!(kinds(&out), ["K8sA"]);
    assert_eq!(out.set.constraints().len(), 1);
    // One problem: the constraint of the broken template is no second one.
    let p = problems(&out);
    assert_eq!(p.len(), 1, "{p:#?}");
    assert!(
        p[0].starts_with("b.yaml: document 1 (ConstraintTemplate \"k8sb\"): spec.targets[0].rego: failed to compile Rego"),
        "{p:#?}"
    );
    assert!(out.problems.iter().all(|p| !p.kept_last_good));
    assert_eq!(out.compiled.len(), 2);
    assert_eq!(out.compiled.iter().filter(|c| c.ok).count(), 1);
    // A constraint whose kind no template declares is one.
    let orphan = sources(&[("e.yaml", &constraint("K8sC", "cc", "x"))]);
    let out = ingest(&mut ingester, &[("files", &files), ("more", &orphan)]);
    assert_eq!(
        problems(&out)[1],
        "e.yaml: document 1 (K8sC \"cc\"): no ConstraintTemplate defines kind \"K8sC\""
    );
}

#[test]
fn a_broken_new_version_keeps_the_last_good_one_and_a_fix_replaces_it() {
    let mut ingester = Ingester::new(BuildOptions::default());
    let good = sources(&[
        ("a.yaml", &template("K8sA", "first")),
        ("c.yaml", &constraint("K8sA", "ca", "x")),
    ]);
    let first = ingest(&mut ingester, &[("files", &good)]);
    assert!(first.problems.is_empty());
    let first_template = Arc::clone(first.set.template("K8sA").unwrap());

    // The template breaks and the constraint's parameters no longer fit the schema.
    let broken = sources(&[
        ("a.yaml", &broken_template("K8sA")),
        ("c.yaml", &constraint("K8sA", "ca", "[1, 2]")),
    ]);
    let out = ingest(&mut ingester, &[("files", &broken)]);
    assert!(Arc::ptr_eq(
        out.set.template("K8sA").unwrap(),
        &first_template
    ));
    assert_eq!(
        out.set.constraints().len(),
        1,
        "the constraint's last good version stays"
    );
    assert_eq!(out.problems.len(), 2, "{:#?}", problems(&out));
    assert!(out.problems.iter().all(|p| p.kept_last_good));
    assert!(problems(&out)[0].ends_with("(the last good version stays enforced)"));

    let fixed = sources(&[
        ("a.yaml", &template("K8sA", "second")),
        ("c.yaml", &constraint("K8sA", "ca", "y")),
    ]);
    let out = ingest(&mut ingester, &[("files", &fixed)]);
    assert!(out.problems.is_empty(), "{:#?}", problems(&out));
    assert!(!Arc::ptr_eq(
        out.set.template("K8sA").unwrap(),
        &first_template
    ));

    // Deleted: nothing of it stays, and a broken version after that has nothing to fall back on.
    let out = ingest(&mut ingester, &[("files", &Sources::default())]);
    assert!(kinds(&out).is_empty());
    let out = ingest(
        &mut ingester,
        &[("files", &sources(&[("a.yaml", &broken_template("K8sA"))]))],
    );
    assert!(kinds(&out).is_empty());
    assert!(!out.problems[0].kept_last_good);
}

#[test]
fn changing_a_constraint_does_not_compile_any_template_again() {
    let mut ingester = Ingester::new(BuildOptions::default());
    let before = sources(&[
        ("a.yaml", &template("K8sA", "a")),
        ("b.yaml", &template("K8sB", "b")),
        ("c.yaml", &constraint("K8sA", "ca", "x")),
    ]);
    let first = ingest(&mut ingester, &[("files", &before)]);
    assert_eq!(first.compiled.len(), 2);
    let after = sources(&[
        ("a.yaml", &template("K8sA", "a")),
        ("b.yaml", &template("K8sB", "b")),
        ("c.yaml", &constraint("K8sA", "ca", "y")),
        ("d.yaml", &constraint("K8sB", "cb", "y")),
    ]);
    let second = ingest(&mut ingester, &[("files", &after)]);
    assert!(second.compiled.is_empty(), "{:?}", second.compiled);
    for kind in ["K8sA", "K8sB"] {
        assert!(Arc::ptr_eq(
            first.set.template(kind).unwrap(),
            second.set.template(kind).unwrap()
        ));
    }
    assert_eq!(second.set.constraints().len(), 2);
    assert_eq!(
        second.set.constraints()[0].parameters,
        regorus::Value::from(serde_json::json!({"label": "y"}))
    );
}

#[test]
fn a_higher_ranked_source_wins_the_same_kind_and_the_conflict_is_reported() {
    let mut ingester = Ingester::new(BuildOptions::default());
    let files = sources(&[
        ("a.yaml", &template("K8sA", "from files")),
        ("c.yaml", &constraint("K8sA", "ca", "x")),
    ]);
    let cluster = sources(&[
        ("cluster/a", &template("K8sA", "from the cluster")),
        ("cluster/c", &constraint("K8sA", "ca", "z")),
    ]);
    let out = ingest(&mut ingester, &[("files", &files), ("cluster", &cluster)]);
    assert_eq!(out.set.constraints().len(), 1);
    assert_eq!(
        out.set.constraints()[0].parameters,
        regorus::Value::from(serde_json::json!({"label": "z"}))
    );
    let p = problems(&out);
    assert_eq!(
        p,
        [
            "a.yaml: document 1 (ConstraintTemplate \"k8sa\"): not enforced: cluster defines the same constraint kind at cluster/a: document 1, which takes precedence",
            "c.yaml: document 1 (K8sA \"ca\"): not enforced: cluster defines the same constraint at cluster/c: document 1, which takes precedence",
        ]
    );
    assert!(out.problems.iter().all(|p| p.source == "files"));
    assert!(matches!(
        out.problems[0].error,
        PolicyError::Shadowed { .. }
    ));
}

#[test]
fn strict_builds_fail_on_any_problem() {
    let files = sources(&[
        ("a.yaml", &template("K8sA", "a")),
        ("b.yaml", &broken_template("K8sB")),
    ]);
    let errors = tollgate_engine::PolicySet::build(&files).unwrap_err();
    assert_eq!(errors.0.len(), 1);
    assert!(errors.0[0].is_about_template());
}

#[test]
fn a_constraint_with_unknown_fields_is_reported_and_never_enforced_wider() {
    let mut ingester = Ingester::new(BuildOptions::default());
    let typo = "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: K8sA\nmetadata:\n  name: typo\nspec:\n  match:\n    namespace: [logistics]\n";
    let files = sources(&[("a.yaml", &template("K8sA", "a")), ("c.yaml", typo)]);
    let out = ingest(&mut ingester, &[("files", &files)]);
    assert!(out.set.constraints().is_empty());
    assert_eq!(
        problems(&out),
        ["c.yaml:1 (K8sA \"typo\"): invalid Constraint: unknown fields: [spec.match.namespace]"]
    );
}

#[test]
fn the_last_of_two_same_named_objects_is_used_and_the_builtin_expansion_steps_aside() {
    let expansion = |name: &str, kinds: &str| {
        format!(
            "apiVersion: expansion.gatekeeper.sh/v1beta1\nkind: ExpansionTemplate\nmetadata:\n  name: {name}\nspec:\n  applyTo:\n  - groups: [apps]\n    versions: [v1]\n    kinds: [{kinds}]\n  templateSource: spec.template\n  generatedGVK: {{kind: Pod, group: \"\", version: v1}}\n"
        )
    };
    let files = sources(&[
        ("a.yaml", &template("K8sA", "first")),
        ("b.yaml", &template("K8sA", "second")),
        ("c.yaml", &constraint("K8sA", "ca", "x")),
        ("d.yaml", &constraint("K8sA", "ca", "y")),
        ("e1.yaml", &expansion("expand-deployments", "Deployment")),
        ("e2.yaml", &expansion("expand-deployments", "Deployment")),
    ]);
    let options = BuildOptions {
        builtin_expansions: true,
        ..BuildOptions::default()
    };
    let out = ingest(&mut Ingester::new(options), &[("files", &files)]);
    assert!(out.problems.is_empty(), "{:?}", problems(&out));
    assert_eq!(out.warnings.len(), 3, "{:#?}", out.warnings);
    assert!(out.warnings[0].starts_with("a.yaml: document 1 (ConstraintTemplate \"k8sa\"): not used: b.yaml: document 1 has the same kind and name"));
    assert_eq!(
        out.set.constraints()[0].parameters,
        regorus::Value::from(serde_json::json!({"label": "y"}))
    );
    // One expand-deployments; the built-in one keeps every kind but Deployment.
    let expansions = out.set.expansions();
    assert_eq!(
        expansions
            .iter()
            .filter(|e| e.name == "expand-deployments")
            .count(),
        1
    );
    let deployment = tollgate_engine::gatekeeper::Gvk {
        group: "apps".into(),
        version: "v1".into(),
        kind: "Deployment".into(),
    };
    let builtin: Vec<_> = expansions
        .iter()
        .filter(|e| e.name == "expand-workloads")
        .collect();
    assert!(!builtin.is_empty());
    assert!(
        builtin
            .iter()
            .all(|e| !e.apply_to.iter().any(|a| a.matches(&deployment)))
    );
    let statefulset = tollgate_engine::gatekeeper::Gvk {
        kind: "StatefulSet".into(),
        ..deployment
    };
    assert!(
        builtin
            .iter()
            .any(|e| e.apply_to.iter().any(|a| a.matches(&statefulset)))
    );
}
