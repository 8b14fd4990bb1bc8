//! Run with `cargo bench -p tollgate-engine --bench decision`.
//!
//! Costs on the admission path and around it, on the tracker pack from `constraints/`: compiling
//! the pack, one decision (all five constraints) on the reference pod and on a denied variant,
//! each template alone, a 20-container pod, expanding a Deployment, and `verify` of the pack's
//! suites. Everything runs on the default evaluator (regorus's RVM, falling back to the
//! interpreter); the reference pod and the denied variant are also measured on the interpreter
//! alone, for comparison.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)] // benchmark setup

use std::path::PathBuf;

use divan::{Bencher, black_box};
use serde_json::{Value, json};
use tollgate_engine::expand::{builtin_templates, expand};
use tollgate_engine::harness::verify;
use tollgate_engine::policy_set::BuildOptions;
use tollgate_engine::precompiled::Precompiled;
use tollgate_engine::rvm::Evaluator;
use tollgate_engine::{Context, Decision, PolicySet, Review, Source, Sources, enforcement_point};

// The allocator the binary ships with (webhook/src/main.rs), so that a decision is measured as
// it runs in the server: its allocations and frees are part of its cost.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    divan::main();
}

fn constraints_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../constraints")
}

/// The pack's template and tracker constraint files, template first for each package.
fn pack_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(constraints_dir()).unwrap() {
        let dir = entry.unwrap().path();
        // Beside the templates: `programs.rvm`.
        if dir.is_dir() {
            files.push(dir.join("template.yaml"));
            files.push(dir.join("samples/tracker/constraint.yaml"));
        }
    }
    files
}

fn pack_sources() -> Sources {
    let mut sources = Sources::default();
    for file in pack_files() {
        sources.add_path(&file).unwrap();
    }
    sources
}

fn pack() -> PolicySet {
    pack_on(Evaluator::default())
}

fn evaluator(name: &str) -> Evaluator {
    match name {
        "rvm" => Evaluator::Rvm,
        _ => Evaluator::Interpreter,
    }
}

fn pack_on(evaluator: Evaluator) -> PolicySet {
    let options = BuildOptions {
        evaluator,
        builtin_expansions: true,
        ..BuildOptions::default()
    };
    PolicySet::build_with(&pack_sources(), options).unwrap()
}

fn container(name: &str) -> Value {
    json!({
        "name": name,
        "image": "registry.example.com/logistics-tracker:latest",
        "resources": {
            "requests": {"cpu": "200m", "memory": "256Mi"},
            "limits": {"cpu": "1000m", "memory": "1Gi"}
        },
        "ports": [{"containerPort": 8080, "name": "http"}]
    })
}

fn pod(containers: Vec<Value>, runtime_class: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "logistics-tracker", "namespace": "logistics"},
        "spec": {
            "runtimeClassName": runtime_class,
            "nodeSelector": {"node-type": "edge"},
            "containers": containers
        }
    })
}

fn request(object: Value) -> Review {
    Review::of_request(json!({
        "uid": "b", "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "namespace": "logistics", "operation": "CREATE",
        "userInfo": {"username": "alice"}, "object": object
    }))
    .unwrap()
}

fn decide(set: &PolicySet, review: &Review) -> Decision {
    let ctx = Context {
        enforcement_point: enforcement_point::WEBHOOK,
        data: None,
        expand: true,
        builtin_expansions: true,
        observe: None,
    };
    Decision::from_violations(
        tollgate_engine::evaluate::review(set, review, &ctx)
            .unwrap()
            .violations,
    )
}

/// Compiling the pack: templates, constraints and (on the RVM) each template's bytecode.
#[divan::bench(sample_count = 20, args = ["rvm", "interpreter"])]
fn compile_pack(bencher: Bencher, on: &str) {
    let sources = pack_sources();
    let options = BuildOptions {
        evaluator: evaluator(on),
        ..BuildOptions::default()
    };
    bencher.bench(|| PolicySet::build_with(black_box(&sources), options).unwrap());
}

/// The pack's YAML read into documents (templates with their Rego, and constraints), as every
/// start of `tollgate serve` reads its policies.
#[divan::bench(sample_count = 200)]
fn parse_pack(bencher: Bencher) {
    let files: Vec<(String, String)> = pack_files()
        .into_iter()
        .map(|file| {
            (
                file.display().to_string(),
                std::fs::read_to_string(&file).unwrap(),
            )
        })
        .collect();
    bencher.bench(|| {
        let mut sources = Sources::default();
        for (path, text) in &files {
            sources.add_text(path, black_box(text)).unwrap();
        }
        sources
    });
}

/// Loading the pack from programs compiled ahead of time (`tollgate_engine::precompiled`), as
/// `serve` does with the embedded pack: what remains of a cold start's policy work.
#[divan::bench(sample_count = 20)]
fn load_pack_precompiled(bencher: Bencher) {
    let sources = pack_sources();
    let set = PolicySet::build(&sources).unwrap();
    let artifact = Precompiled::of_templates(set.templates().map(AsRef::as_ref)).unwrap();
    let bytes = artifact.to_bytes();
    let read: &'static Precompiled = Box::leak(Box::new(Precompiled::from_bytes(&bytes).unwrap()));
    let options = BuildOptions {
        precompiled: Some(read),
        ..BuildOptions::default()
    };
    bencher.bench(|| PolicySet::build_with(black_box(&sources), options).unwrap());
}

/// Reading the artifact's bytes (checksums included), once per process.
#[divan::bench(sample_count = 20)]
fn read_precompiled_artifact(bencher: Bencher) {
    let set = PolicySet::build(&pack_sources()).unwrap();
    let bytes = Precompiled::of_templates(set.templates().map(AsRef::as_ref))
        .unwrap()
        .to_bytes();
    bencher.bench(|| Precompiled::from_bytes(black_box(&bytes)).unwrap());
}

/// The reference pod on the RVM (the default) and on the interpreter alone.
#[divan::bench(args = ["rvm", "interpreter"])]
fn decision_reference_pod(bencher: Bencher, on: &str) {
    let set = pack_on(evaluator(on));
    let review = request(pod(vec![container("logistics-tracker")], "wasmedge"));
    assert!(decide(&set, &review).allowed);
    bencher.bench(|| decide(&set, black_box(&review)));
}

#[divan::bench(args = ["rvm", "interpreter"])]
fn decision_denied_variant(bencher: Bencher, on: &str) {
    let set = pack_on(evaluator(on));
    let review = request(pod(vec![container("logistics-tracker")], "runc"));
    assert!(!decide(&set, &review).allowed);
    bencher.bench(|| decide(&set, black_box(&review)));
}

#[divan::bench]
fn decision_twenty_container_pod(bencher: Bencher) {
    let set = pack();
    let containers = (0..20).map(|i| container(&format!("c{i}"))).collect();
    let review = request(pod(containers, "wasmedge"));
    bencher.bench(|| decide(&set, black_box(&review)));
}

#[divan::bench(args = ["K8sAllowedRegistries", "K8sEdgeResources", "K8sImageTagPolicy", "K8sRequiredNodeSelector", "K8sRequiredRuntimeClass"])]
fn per_template(bencher: Bencher, kind: &str) {
    let full = pack_sources();
    let mut sources = Sources::default();
    for t in &full.templates {
        if t.value["spec"]["crd"]["spec"]["names"]["kind"] == kind {
            sources.templates.push(t.clone());
        }
    }
    for c in &full.constraints {
        if c.value["kind"] == kind {
            sources.constraints.push(c.clone());
        }
    }
    let set = PolicySet::build(&sources).unwrap();
    let review = request(pod(vec![container("logistics-tracker")], "wasmedge"));
    bencher.bench(|| decide(&set, black_box(&review)));
}

#[divan::bench]
fn expand_deployment(bencher: Bencher) {
    let templates = builtin_templates();
    let mut template = pod(vec![container("logistics-tracker")], "wasmedge");
    template.as_object_mut().unwrap().remove("apiVersion");
    template.as_object_mut().unwrap().remove("kind");
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "logistics-tracker", "namespace": "logistics"},
        "spec": {"replicas": 400, "selector": {"matchLabels": {"app": "logistics-tracker"}},
                 "template": template}
    });
    bencher.bench(|| expand(&templates, black_box(&deployment), Some("logistics")).unwrap());
}

#[divan::bench]
fn decision_fixed_seed_deployment(bencher: Bencher) {
    let set = pack();
    let mut template = pod(vec![container("logistics-tracker")], "wasmedge");
    template.as_object_mut().unwrap().remove("apiVersion");
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "logistics-tracker", "namespace": "logistics"},
        "spec": {"replicas": 400, "selector": {"matchLabels": {"app": "logistics-tracker"}},
                 "template": template}
    });
    let review = Review::of_object(deployment, Source::Original);
    bencher.bench(|| decide(&set, black_box(&review)));
}

#[divan::bench(sample_count = 10)]
fn verify_pack_suites(bencher: Bencher) {
    let arg = format!("{}/...", constraints_dir().display());
    let suites = verify::discover(&arg).unwrap();
    let filter = verify::Filter::new("").unwrap();
    bencher.bench(|| {
        for s in &suites {
            assert!(!verify::run_suite(s, &filter).is_failure());
        }
    });
}

// The steps of one decision, each alone, on the reference pod: what `evaluate::review` does per
// review (conversion, matching) and per constraint (input assembly, evaluation, decoding).
mod step {
    use super::*;
    use regorus::Value as RegoValue;
    use serde::Deserialize as _;

    fn reference() -> (PolicySet, Review) {
        let set = pack();
        let review = request(pod(vec![container("logistics-tracker")], "wasmedge"));
        (set, review)
    }

    fn input(review: RegoValue, parameters: &RegoValue) -> RegoValue {
        let mut input = RegoValue::new_object();
        if let Ok(map) = input.as_object_mut() {
            map.insert(RegoValue::from("review"), review);
            map.insert(RegoValue::from("parameters"), parameters.clone());
        }
        input
    }

    /// `input.review` as regorus's value, from the parsed request: regorus's serde conversion
    /// and tollgate's direct one (what a decision runs).
    #[divan::bench(args = ["serde", "direct"])]
    fn review_to_value(bencher: Bencher, how: &str) {
        let (_, review) = reference();
        match how {
            "serde" => {
                bencher.bench(|| RegoValue::deserialize(black_box(&review.request)).unwrap())
            }
            _ => bencher.bench(|| tollgate_engine::rego::to_rego(black_box(&review.request))),
        }
    }

    /// Every constraint's match against the review, its objects read once, as a decision
    /// matches.
    #[divan::bench]
    fn match_all(bencher: Bencher) {
        let (set, review) = reference();
        bencher.bench(|| {
            let targets = tollgate_engine::matching::ReviewTargets::of(black_box(&review));
            set.constraints()
                .iter()
                .filter(|c| targets.matches(&c.constraint.matcher).unwrap_or(false))
                .count()
        });
    }

    /// `{"review", "parameters"}` for every constraint, the review value shared.
    #[divan::bench]
    fn input_assembly(bencher: Bencher) {
        let (set, review) = reference();
        let value = RegoValue::deserialize(&review.request).unwrap();
        bencher.bench(|| {
            set.constraints()
                .iter()
                .map(|c| input(black_box(&value).clone(), &c.parameters))
                .collect::<Vec<_>>()
        });
    }

    /// Each template's `violation` on its prepared input, nothing else.
    #[divan::bench(args = ["K8sAllowedRegistries", "K8sEdgeResources", "K8sImageTagPolicy", "K8sRequiredNodeSelector", "K8sRequiredRuntimeClass"])]
    fn template_eval(bencher: Bencher, kind: &str) {
        let (set, review) = reference();
        let value = RegoValue::deserialize(&review.request).unwrap();
        let c = set
            .constraints()
            .iter()
            .find(|c| c.constraint.kind == kind)
            .unwrap();
        let template = set.template(kind).unwrap();
        let prepared = input(value, &c.parameters);
        assert!(template.evaluate(prepared.clone(), None).result.is_ok());
        bencher.bench(|| template.evaluate(black_box(prepared.clone()), None));
    }

    /// The result sets of all five templates on the denied variant, decoded to messages.
    #[divan::bench]
    fn decode_results(bencher: Bencher) {
        let set = pack();
        let review = request(pod(vec![container("logistics-tracker")], "runc"));
        let value = RegoValue::deserialize(&review.request).unwrap();
        let results = set
            .constraints()
            .iter()
            .map(|c| {
                let template = set.template(&c.constraint.kind).unwrap();
                template
                    .evaluate(input(value.clone(), &c.parameters), None)
                    .result
                    .unwrap()
            })
            .collect::<Vec<_>>();
        bencher.bench(|| {
            results
                .iter()
                .map(|r| tollgate_engine::evaluate::decode_results(black_box(r)).len())
                .sum::<usize>()
        });
    }
}
