//! regorus's RVM against its interpreter (OPA's semantics, checked against gator in
//! `suites.rs`): every template and object of the gator corpora (`tests/suites/`,
//! `constraints/`), evaluated both ways, compared violation by violation (message, details,
//! actions, errors).
//!
//! regorus 0.14.1's RVM differs in exactly the cases pinned in [`KNOWN_DIFFERENCES`]: an
//! assignment from a missing reference succeeds (the hoisting suites and the pack's invalid
//! quantity case), and conflicting outputs are no error. That is why tollgate evaluates on the
//! interpreter (see `engine/src/rvm.rs`). A regorus upgrade that changes this list fails here:
//! then the RVM can be reconsidered as the default.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests assert by unwrapping

use std::path::{Path, PathBuf};

use tollgate_engine::document::parse_stream;
use tollgate_engine::harness::verify;
use tollgate_engine::policy_set::BuildOptions;
use tollgate_engine::rvm::Evaluator;
use tollgate_engine::{Context, PolicySet, Review, Source, Sources, enforcement_point};

fn docs(dir: &Path, file: &str) -> Vec<tollgate_engine::document::Document> {
    if file.is_empty() {
        return Vec::new();
    }
    let path = dir.join(file);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Vec::new();
    };
    parse_stream(&path.display().to_string(), &text).unwrap_or_default()
}

fn build(sources: &Sources, evaluator: Evaluator) -> Option<PolicySet> {
    let options = BuildOptions {
        accept_unknown_actions: true,
        evaluator,
        ..BuildOptions::default()
    };
    PolicySet::build_with(sources, options).ok()
}

/// Each violation as comparable text.
fn outcome(set: &PolicySet, object: &serde_json::Value) -> Vec<String> {
    let ctx = Context {
        enforcement_point: enforcement_point::GATOR,
        inventory: None,
        namespaces: None,
        expand: true,
        observe: None,
    };
    let review = Review::of_object(object.clone(), Source::Original);
    match tollgate_engine::evaluate::review(set, &review, &ctx) {
        Ok(o) => o
            .violations
            .iter()
            .map(|v| {
                format!(
                    "{}/{} {:?} error={} {} {}",
                    v.constraint.constraint.kind,
                    v.constraint.constraint.name,
                    v.actions,
                    v.is_error,
                    v.msg,
                    v.details
                )
            })
            .collect(),
        Err(e) => vec![format!("review error: {e}")],
    }
}

#[test]
fn the_rvm_differs_from_the_interpreter_only_where_known() {
    let mut compared = 0;
    let mut fast_templates = std::collections::BTreeSet::new();
    let mut all_templates = std::collections::BTreeSet::new();
    let mut differences = Vec::new();
    for argument in ["../tests/suites/...", "../constraints/..."] {
        for suite in verify::discover(argument).unwrap() {
            let dir = suite.file.parent().unwrap().to_path_buf();
            for test in &suite.suite.tests {
                let mut sources = Sources::default();
                sources
                    .templates
                    .extend(docs(&dir, &test.template).into_iter().take(1));
                sources
                    .constraints
                    .extend(docs(&dir, &test.constraint).into_iter().take(1));
                sources.expansions.extend(docs(&dir, &test.expansion));
                let (Some(fast), Some(slow)) = (
                    build(&sources, Evaluator::Rvm),
                    build(&sources, Evaluator::Interpreter),
                ) else {
                    continue;
                };
                for t in fast.templates() {
                    all_templates.insert(t.kind().to_string());
                    if t.on_fast_path() {
                        fast_templates.insert(t.kind().to_string());
                    }
                }
                assert!(slow.templates().all(|t| !t.on_fast_path()));
                for case in &test.cases {
                    for object in docs(&dir, &case.object) {
                        let (a, b) = (outcome(&fast, &object.value), outcome(&slow, &object.value));
                        compared += 1;
                        if a != b {
                            let at = format!("{} / {} / {}", suite.display, test.name, case.name);
                            eprintln!("{at}:\n  rvm:         {a:?}\n  interpreter: {b:?}");
                            differences.push(at);
                        }
                    }
                }
            }
        }
    }
    eprintln!(
        "{compared} objects compared; {} of {} templates on the fast path; not on it: {:?}",
        fast_templates.len(),
        all_templates.len(),
        all_templates
            .difference(&fast_templates)
            .collect::<Vec<_>>()
    );
    assert!(compared > 100, "only {compared} objects compared");
    assert!(
        fast_templates.len() * 10 >= all_templates.len() * 9,
        "the RVM compiled only {} of {} templates",
        fast_templates.len(),
        all_templates.len()
    );
    assert_eq!(
        differences, KNOWN_DIFFERENCES,
        "the cases where the RVM and the interpreter differ changed (details above)"
    );
}

/// Where regorus 0.14.1's RVM and interpreter differ, in corpus order.
const KNOWN_DIFFERENCES: &[&str] = &[
    "../tests/suites/hoisting/suite.yaml / negation-hoisting-rego-v0 / spec-missing-is-undefined",
    "../tests/suites/hoisting/suite.yaml / negation-hoisting-rego-v0 / spec-missing-is-empty-array",
    "../tests/suites/hoisting/suite.yaml / negation-hoisting-rego-v0 / spec-missing-is-negative-number",
    "../tests/suites/hoisting/suite.yaml / negation-hoisting-rego-v1 / spec-missing-is-undefined",
    "../tests/suites/hoisting/suite.yaml / negation-hoisting-rego-v1 / spec-missing-is-empty-array",
    "../tests/suites/hoisting/suite.yaml / negation-hoisting-rego-v1 / spec-missing-is-negative-number",
    "../tests/suites/runtime-error/suite.yaml / complete-rule-conflict-rego-v0 / conflict-becomes-the-only-violation",
    "../tests/suites/runtime-error/suite.yaml / complete-rule-conflict-rego-v1 / conflict-becomes-the-only-violation",
    "../tests/suites/runtime-error/suite.yaml / function-conflict / two-outputs-for-same-input",
    "../tests/suites/runtime-error/suite.yaml / object-rule-key-conflict / same-key-two-values",
    "../constraints/k8sedgeresources/suite.yaml / tracker / edgeresources/disallowed-invalid-quantity",
];

/// Every template of the tracker pack compiles to the RVM (what the benchmark measures).
#[test]
fn the_tracker_pack_compiles_to_the_rvm() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../constraints");
    let mut sources = Sources::default();
    for entry in std::fs::read_dir(&root).unwrap() {
        let template = entry.unwrap().path().join("template.yaml");
        if template.is_file() {
            sources.add_path(&template).unwrap();
        }
    }
    let set = build(&sources, Evaluator::Rvm).unwrap();
    assert_eq!(set.templates().count(), 5);
    let slow: Vec<_> = set
        .templates()
        .filter(|t| !t.on_fast_path())
        .map(|t| t.kind().to_string())
        .collect();
    assert!(slow.is_empty(), "on the interpreter: {slow:?}");
}
