//! The RVM against regorus's interpreter (OPA's semantics, checked against gator in
//! `suites.rs`): every template and object of the gator corpora (`tests/suites/`,
//! `constraints/`), evaluated both ways and compared violation by violation (message, details,
//! actions, errors); and every suite run through `verify` both ways, compared case by case.
//!
//! Both also run on programs compiled ahead of time: serialized, read back and deserialized as
//! the binary does with its embedded pack (`tollgate_engine::precompiled`); those must decide
//! exactly as the programs compiled in the same process.
//!
//! regorus 0.14.1's RVM differed in eleven of these objects (an assignment from a missing
//! reference succeeded; conflicting outputs were no error). The vendored copy fixes both
//! (`vendor/regorus/TOLLGATE.md`), so no difference is allowed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests assert by unwrapping

use std::path::{Path, PathBuf};

use tollgate_engine::compile::PrecompiledUse;
use tollgate_engine::document::parse_stream;
use tollgate_engine::harness::verify;
use tollgate_engine::policy_set::BuildOptions;
use tollgate_engine::precompiled::Precompiled;
use tollgate_engine::rvm::Evaluator;
use tollgate_engine::{Context, PolicySet, Review, Source, Sources};

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

/// The set built again from `fast`'s programs, written to bytes and read back; and how many
/// templates run a deserialized program.
fn deserialized(sources: &Sources, fast: &PolicySet) -> (PolicySet, usize) {
    let artifact = Precompiled::of_templates(fast.templates().map(AsRef::as_ref)).unwrap();
    let read = Precompiled::from_bytes(&artifact.to_bytes()).unwrap();
    assert_eq!(read, artifact);
    let options = BuildOptions {
        accept_unknown_actions: true,
        precompiled: Some(Box::leak(Box::new(read))),
        ..BuildOptions::default()
    };
    let set = PolicySet::build_with(sources, options).unwrap();
    let used = set
        .templates()
        .filter(|t| t.precompiled() == &PrecompiledUse::Used)
        .count();
    let fast_count = fast.templates().filter(|t| t.on_fast_path()).count();
    assert_eq!(used, fast_count, "every fast template loads its program");
    (set, used)
}

/// Each violation as comparable text.
fn outcome(set: &PolicySet, object: &serde_json::Value) -> Vec<String> {
    let ctx = Context::gator();
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
    let mut deserialized_templates = 0;
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
                // CEL templates (K8sNativeValidation) have no Rego for either evaluator.
                for t in fast.templates().filter(|t| t.cel().is_none()) {
                    all_templates.insert(t.kind().to_string());
                    if t.on_fast_path() {
                        fast_templates.insert(t.kind().to_string());
                    }
                }
                assert!(slow.templates().all(|t| !t.on_fast_path()));
                let (loaded, used) = deserialized(&sources, &fast);
                deserialized_templates += used;
                for case in &test.cases {
                    for object in docs(&dir, &case.object) {
                        let (a, b) = (outcome(&fast, &object.value), outcome(&slow, &object.value));
                        let c = outcome(&loaded, &object.value);
                        compared += 1;
                        if a != b || a != c {
                            let at = format!("{} / {} / {}", suite.display, test.name, case.name);
                            eprintln!(
                                "{at}:\n  rvm:         {a:?}\n  interpreter: {b:?}\n  deserialized: {c:?}"
                            );
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
        deserialized_templates >= fast_templates.len(),
        "only {deserialized_templates} templates ran deserialized programs"
    );
    assert!(
        fast_templates.len() * 10 >= all_templates.len() * 9,
        "the RVM compiled only {} of {} templates",
        fast_templates.len(),
        all_templates.len()
    );
    assert!(
        differences.is_empty(),
        "the RVM and the interpreter differ (details above): {differences:#?}"
    );
}

/// Each case of a verify run as comparable text: pass, skip or the failure message.
fn verify_outcomes(evaluator: Evaluator) -> Vec<String> {
    let mut out = Vec::new();
    for argument in ["../tests/suites/...", "../constraints/..."] {
        for suite in verify::discover(argument).unwrap() {
            let result = verify::run_suite_with(&suite, &verify::Filter::default(), evaluator);
            for test in &result.tests {
                out.push(format!(
                    "{} / {}: skipped={} error={:?}",
                    result.path, test.name, test.skipped, test.error
                ));
                for case in &test.cases {
                    out.push(format!(
                        "{} / {} / {}: skipped={} error={:?} messages={:?}",
                        result.path, test.name, case.name, case.skipped, case.error, case.messages
                    ));
                }
            }
        }
    }
    out
}

#[test]
fn every_suite_verifies_the_same_on_both_evaluators() {
    let fast = verify_outcomes(Evaluator::Rvm);
    let slow = verify_outcomes(Evaluator::Interpreter);
    assert!(fast.len() > 300, "only {} outcomes", fast.len());
    let differing: Vec<_> = fast.iter().zip(&slow).filter(|(a, b)| a != b).collect();
    assert_eq!(fast.len(), slow.len());
    assert!(differing.is_empty(), "verify differs: {differing:#?}");
}

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

fn pack_sources() -> Sources {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../constraints");
    let mut sources = Sources::default();
    for entry in std::fs::read_dir(&root).unwrap() {
        let dir = entry.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        sources.add_path(&dir.join("template.yaml")).unwrap();
        sources
            .add_path(&dir.join("samples/tracker/constraint.yaml"))
            .unwrap();
    }
    sources
}

fn pack_on(evaluator: Evaluator) -> PolicySet {
    build(&pack_sources(), evaluator).unwrap()
}

/// The pack on deserialized programs, all five of them.
fn pack_deserialized() -> PolicySet {
    let sources = pack_sources();
    let (set, used) = deserialized(&sources, &pack_on(Evaluator::Rvm));
    assert_eq!(used, 5);
    set
}

mod generated_pods {
    //! Pods the corpus does not hold: fields missing, of the wrong type, or odd, in every
    //! place the pack reads.
    use proptest::prelude::*;
    use serde_json::{Value, json};

    fn maybe(value: impl Strategy<Value = Value>) -> impl Strategy<Value = Option<Value>> {
        prop::option::weighted(0.7, value)
    }

    fn quantity() -> impl Strategy<Value = Value> {
        prop_oneof![
            prop::sample::select(vec![
                "200m", "1", "4", "4001m", "1.5", "0.1", "256Mi", "1Gi", "8Gi", "9Gi", "8192Mi",
                "1e3", "1E9", "100k", "1Ki", "", "abc", "-1", "+2", "1m", "0", "5",
            ])
            .prop_map(Value::from),
            (0i64..10_000).prop_map(Value::from),
            (0.0f64..10.0).prop_map(Value::from),
            Just(Value::Null),
            Just(json!(["1"])),
        ]
    }

    /// An object of the fields that are present.
    fn object<const N: usize>(fields: [(&str, Option<Value>); N]) -> Value {
        Value::Object(
            fields
                .into_iter()
                .filter_map(|(k, v)| Some((k.to_string(), v?)))
                .collect(),
        )
    }

    fn cpu_and_memory() -> impl Strategy<Value = Value> {
        (maybe(quantity()), maybe(quantity()))
            .prop_map(|(cpu, memory)| object([("cpu", cpu), ("memory", memory)]))
    }

    fn resources() -> impl Strategy<Value = Value> {
        prop_oneof![
            4 => (maybe(cpu_and_memory()), maybe(cpu_and_memory()))
                .prop_map(|(requests, limits)| object([("requests", requests), ("limits", limits)])),
            1 => Just(Value::Null),
            1 => Just(json!("none")),
        ]
    }

    fn image() -> impl Strategy<Value = Value> {
        prop_oneof![
            prop::sample::select(vec![
                "registry.example.com/logistics-tracker:latest",
                "registry.example.com/logistics-tracker:1.4.2",
                "registry.example.com/logistics-tracker",
                "registry.example.com/logistics-tracker@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                "registry.example.com:5000/tracker:v1",
                "docker.io/library/nginx:1.27",
                "nginx",
                "evil.example.com/registry.example.com/x:1",
                "registry.example.com.evil.io/x:1",
                "REGISTRY.example.com/x:1",
                "",
                "ghcr.io/acme/tracker:latest",
            ])
            .prop_map(Value::from),
            Just(Value::Null),
            Just(json!(7)),
        ]
    }

    fn container() -> impl Strategy<Value = Value> {
        (
            prop::sample::select(vec!["logistics-tracker", "sidecar", ""]),
            maybe(image()),
            maybe(resources()),
        )
            .prop_map(|(name, image, resources)| {
                object([
                    ("name", Some(Value::from(name))),
                    ("image", image),
                    ("resources", resources),
                ])
            })
    }

    fn containers() -> impl Strategy<Value = Option<Value>> {
        maybe(prop_oneof![
            8 => prop::collection::vec(container(), 0..4).prop_map(Value::from),
            1 => Just(Value::Null),
            1 => Just(json!({"name": "not-a-list"})),
        ])
    }

    pub fn pod() -> impl Strategy<Value = Value> {
        (
            maybe(prop_oneof![
                prop::sample::select(vec!["wasmedge", "runc", "", "WasmEdge"])
                    .prop_map(Value::from),
                Just(Value::Null),
                Just(json!(1)),
            ]),
            maybe(prop_oneof![
                Just(json!({"node-type": "edge"})),
                Just(json!({"node-type": "cloud"})),
                Just(json!({"node-type": "edge", "zone": "a"})),
                Just(json!({})),
                Just(Value::Null),
                Just(json!(["node-type"])),
            ]),
            containers(),
            containers(),
            containers(),
            prop::sample::select(vec![Some("logistics"), Some("default"), None]),
        )
            .prop_map(
                |(class, selector, containers, init, ephemeral, namespace)| {
                    let spec = object([
                        ("runtimeClassName", class),
                        ("nodeSelector", selector),
                        ("containers", containers),
                        ("initContainers", init),
                        ("ephemeralContainers", ephemeral),
                    ]);
                    let mut metadata =
                        json!({"name": "tracker-7d9", "labels": {"app": "logistics-tracker"}});
                    if let Some(ns) = namespace {
                        metadata["namespace"] = Value::from(ns);
                    }
                    json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec})
                },
            )
    }
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config { cases: 768, ..Default::default() })]

    /// Generated pods get the same violations from the pack on both evaluators, and from its
    /// deserialized programs.
    #[test]
    fn generated_pods_get_the_same_violations_on_both_evaluators(pod in generated_pods::pod()) {
        use std::sync::OnceLock;
        static SETS: OnceLock<(PolicySet, PolicySet, PolicySet)> = OnceLock::new();
        let (fast, slow, loaded) = SETS.get_or_init(|| {
            (pack_on(Evaluator::Rvm), pack_on(Evaluator::Interpreter), pack_deserialized())
        });
        let expected = outcome(fast, &pod);
        proptest::prop_assert_eq!(&expected, &outcome(slow, &pod), "pod: {}", pod);
        proptest::prop_assert_eq!(&expected, &outcome(loaded, &pod), "deserialized, pod: {}", pod);
    }
}

/// The pack's templates with, beside the tracker's constraints, more constraints of each
/// template whose parameters differ (tighter, looser, invalid, absent): a template's machines
/// keep the values of parameter-only rules per constraint (`tollgate_engine::rvm`), and one
/// constraint's values must never answer for another's.
fn pack_with_more_constraints(evaluator: Evaluator) -> PolicySet {
    let mut sources = pack_sources();
    let constraint = |kind: &str, name: &str, parameters: serde_json::Value| {
        serde_json::json!({
            "apiVersion": "constraints.gatekeeper.sh/v1beta1",
            "kind": kind,
            "metadata": {"name": name},
            "spec": {"parameters": parameters},
        })
    };
    let more = [
        constraint(
            "K8sEdgeResources",
            "tight",
            serde_json::json!({
                "node": {"cpu": "2", "memory": "4Gi"},
                "reserved": {"cpu": "250m", "memory": "512Mi"},
                "maxContainerLimits": {"cpu": "500m", "memory": "512Mi"},
                "maxLimitRequestRatio": {"cpu": 2, "memory": 2},
            }),
        ),
        constraint(
            "K8sEdgeResources",
            "invalid",
            serde_json::json!({
                "node": {"cpu": "four", "memory": "8Gi"},
                "maxContainerLimits": {"cpu": "1", "memory": "1.5x"},
                "maxLimitRequestRatio": {"cpu": 0.5},
            }),
        ),
        constraint("K8sEdgeResources", "empty", serde_json::json!({})),
        constraint(
            "K8sAllowedRegistries",
            "other-registries",
            serde_json::json!({"registries": ["ghcr.io", "REGISTRY.EXAMPLE.COM", "docker.io"]}),
        ),
        constraint(
            "K8sAllowedRegistries",
            "with-repositories",
            serde_json::json!({"registries": ["registry.example.com"], "repositories": ["registry.example.com/logistics-tracker/"]}),
        ),
        constraint(
            "K8sImageTagPolicy",
            "pinned",
            serde_json::json!({"disallowedTags": ["1.4.2", "v1"], "requireDigest": true}),
        ),
        constraint(
            "K8sRequiredNodeSelector",
            "no-affinity",
            serde_json::json!({"nodeSelector": {"node-type": "edge", "zone": "a"}, "allowNodeAffinity": false}),
        ),
    ];
    for (i, c) in more.iter().enumerate() {
        let yaml = serde_json::to_string(c).unwrap();
        sources.add_text(&format!("more-{i}.yaml"), &yaml).unwrap();
    }
    let options = BuildOptions {
        evaluator,
        ..BuildOptions::default()
    };
    PolicySet::build_with(&sources, options).unwrap()
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config { cases: 384, ..Default::default() })]

    /// Generated pods under several constraints of each template get the same violations on
    /// both evaluators: the RVM's kept rule values follow each constraint's parameters.
    #[test]
    fn generated_pods_under_several_constraints_per_template(pod in generated_pods::pod()) {
        use std::sync::OnceLock;
        static SETS: OnceLock<(PolicySet, PolicySet)> = OnceLock::new();
        let (fast, slow) = SETS.get_or_init(|| {
            (
                pack_with_more_constraints(Evaluator::Rvm),
                pack_with_more_constraints(Evaluator::Interpreter),
            )
        });
        let expected = outcome(fast, &pod);
        proptest::prop_assert_eq!(&expected, &outcome(slow, &pod), "pod: {}", pod);
    }
}
