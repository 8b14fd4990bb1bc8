//! The fuzz harness: one function per fuzz target, each taking the raw input bytes.
//!
//! Shared by the libFuzzer binaries in `fuzz_targets/` and by the replay test
//! (`webhook/tests/fuzz_regressions.rs` compiles this file as a module), so a reproducer runs
//! through exactly the same code under `cargo test` as under the fuzzer. Each function panics
//! only when an invariant of tollgate is broken; anything the input makes tollgate refuse is an
//! ordinary outcome.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::Value;
use tollgate::serve::admission::admit;
use tollgate::serve::config::{EvaluateOn, Exemptions};
use tollgate::serve::metrics::Metrics;
use tollgate::serve::state::{AdmissionSettings, AppState};
use tollgate_engine::block_yaml;
use tollgate_engine::document::{parse_stream, parse_yaml_fully};
use tollgate_engine::gatekeeper::Suite;
use tollgate_engine::policy_set::BuildOptions;
use tollgate_engine::rvm::Evaluator;
use tollgate_engine::{Context, Decision, PolicySet, Review, Source, Sources, rego};

/// The evaluation budget the harness compiles templates with: a runaway template must end as
/// an error result, well inside libFuzzer's `-timeout`.
const EVAL_BUDGET: Duration = Duration::from_millis(500);

// === admission_review ===

struct Admission {
    runtime: tokio::runtime::Runtime,
    state: AppState,
}

/// The webhook's state as `tollgate serve` builds it with no flags: the embedded tracker pack,
/// fail-closed, workloads expanded, kube-system exempt.
static ADMISSION: LazyLock<Admission> = LazyLock::new(|| {
    let sources = tollgate::pack::sources().expect("the embedded pack parses");
    let options = BuildOptions {
        eval_budget: Some(EVAL_BUDGET),
        builtin_expansions: true,
        ..BuildOptions::default()
    };
    let policies = PolicySet::build_with(&sources, options).expect("the embedded pack compiles");
    let settings = AdmissionSettings {
        exemptions: Exemptions {
            service_account: Some("system:serviceaccount:tollgate-system:tollgate".into()),
            namespaces: vec!["kube-system".into(), "tollgate-system".into()],
            ..Exemptions::default()
        },
        fail_open: false,
        expand: true,
        evaluate_on: EvaluateOn::RequestTaskThenPool,
        inline_budget: std::time::Duration::from_millis(5),
    };
    Admission {
        runtime: tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a tokio runtime"),
        state: AppState::with_policies(policies, settings, Arc::new(Metrics::new())),
    }
});

/// An AdmissionReview body through the webhook's own handler (`POST /v1/admit`, minus HTTP):
/// a body that is not JSON gets 400; any JSON gets 200 with an AdmissionReview whose response
/// echoes the uid and says `allowed`, and a refusal always says why.
pub fn admission_review(data: &[u8]) {
    let a = &*ADMISSION;
    let response = a
        .runtime
        .block_on(admit(State(a.state.clone()), Bytes::copy_from_slice(data)));
    let status = response.status();
    let body = a
        .runtime
        .block_on(axum::body::to_bytes(response.into_body(), usize::MAX))
        .expect("the response body is in memory");
    let Ok(review) = serde_json::from_slice::<Value>(data) else {
        assert_eq!(status, StatusCode::BAD_REQUEST, "non-JSON body");
        return;
    };
    assert_eq!(
        status,
        StatusCode::OK,
        "JSON body: {}",
        String::from_utf8_lossy(&body)
    );
    let out: Value = serde_json::from_slice(&body).expect("the answer is JSON");
    assert_eq!(out["kind"], "AdmissionReview");
    let response = &out["response"];
    let allowed = response["allowed"]
        .as_bool()
        .expect("response.allowed is a boolean");
    let uid = review
        .pointer("/request/uid")
        .and_then(Value::as_str)
        .unwrap_or("");
    assert_eq!(response["uid"], uid, "the uid is echoed");
    if !allowed {
        assert!(
            response["status"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "a refusal says why: {out}"
        );
    }
}

// === load_policies ===

/// A YAML (or JSON) stream loaded as `verify`, `eval` and the policy reloader load it: parsed,
/// suites read, templates, constraints and ExpansionTemplates compiled, and the other objects
/// (at most four) reviewed against whatever compiled, as `tollgate eval` does.
pub fn load_policies(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(docs) = parse_stream("fuzz.yaml", text) else {
        return;
    };
    for doc in &docs {
        if Suite::is_suite(&doc.value) {
            let _ = Suite::from_value(&doc.value, "fuzz.yaml");
        }
    }
    let mut sources = Sources::default();
    sources.add(docs);
    let options = BuildOptions {
        accept_unknown_actions: true,
        eval_budget: Some(EVAL_BUDGET),
        ..BuildOptions::default()
    };
    let Ok(set) = PolicySet::build_with(&sources, options) else {
        return;
    };
    let ctx = Context::gator();
    for doc in sources.objects.iter().take(4) {
        let review = Review::of_object(doc.value.clone(), Source::Original);
        if let Ok(outcome) = tollgate_engine::evaluate::review(&set, &review, &ctx) {
            let decision = Decision::from_violations(outcome.violations);
            let _ = decision.denial_message();
        }
    }
}

// === rego_rewrite ===

/// Rego source through tollgate's own source handling (first byte: bit 0 = Rego v1, bit 1 =
/// also compile the rewritten source with regorus). `normalize` must keep every line where it
/// was, since regorus's error locations are reported against the author's source.
pub fn rego_rewrite(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let Ok(src) = std::str::from_utf8(rest) else {
        return;
    };
    let v1 = flags & 1 == 1;
    let normalized = rego::normalize(src, v1);
    assert_eq!(
        src.matches('\n').count(),
        normalized.matches('\n').count(),
        "normalize moved lines:\n{normalized}"
    );
    let _ = rego::check_refs(src);
    let _ = rego::rule_is_defined(src, "violation");
    let mut libraries = rego::KnownFunctions::default();
    libraries.add_library(src);
    let _ = rego::undefined_function(src, &libraries, &["sprintf"]);
    // As compile does: modules nested past the limit never reach regorus's parser.
    if flags & 2 == 2
        && rego::check_nesting(src).is_ok()
        && let Ok(mut engine) = rego::opa_compatible_engine(v1)
    {
        let _ = engine.add_policy("fuzz.rego".into(), normalized);
    }
}

// === go_sprintf ===

/// `sprintf` as templates call it: the input is `format`, optionally followed by a NUL byte and
/// a JSON array of arguments (else a fixed mix of argument types is used).
pub fn go_sprintf(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (format, args) = text.split_once('\0').unwrap_or((text, ""));
    let args: Vec<regorus::Value> = match serde_json::from_str::<Value>(args) {
        Ok(Value::Array(items)) => items.into_iter().map(regorus::Value::from).collect(),
        _ => serde_json::json!([
            1, -7, 12345678901234567890u64, 1.5, 1e300, "s", "", true, null, [1, "a"], {"k": [2]}
        ])
        .as_array()
        .map(|a| a.iter().cloned().map(regorus::Value::from).collect())
        .unwrap_or_default(),
    };
    let _ = rego::go_sprintf(format, &args);
    let _ = rego::go_quote_str(format);
}

// === rvm_differential ===

/// The embedded pack compiled for each evaluator, and on the RVM programs the binary carries
/// (`constraints/programs.rvm`, deserialized), as `serve` and `eval` run it.
static BOTH_EVALUATORS: LazyLock<[PolicySet; 3]> = LazyLock::new(|| {
    let sources = tollgate::pack::sources().expect("the embedded pack parses");
    let precompiled =
        tollgate::pack::precompiled().expect("the binary carries the pack's programs");
    [
        (Evaluator::Rvm, None),
        (Evaluator::Interpreter, None),
        (Evaluator::Rvm, Some(precompiled)),
    ]
    .map(|(evaluator, precompiled)| {
        let options = BuildOptions {
            eval_budget: Some(EVAL_BUDGET),
            evaluator,
            precompiled,
            ..BuildOptions::default()
        };
        PolicySet::build_with(&sources, options).expect("the embedded pack compiles")
    })
});

/// A JSON object as a Pod in `logistics` (the namespace every tracker constraint matches; kind
/// and namespace forced, everything else as given), reviewed by the embedded pack on the RVM,
/// on the interpreter and on the deserialized programs: all give the same violations, or the
/// same failure.
pub fn rvm_differential(data: &[u8]) {
    let Ok(Value::Object(mut pod)) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    pod.insert("apiVersion".into(), Value::from("v1"));
    pod.insert("kind".into(), Value::from("Pod"));
    let metadata = pod
        .entry("metadata")
        .or_insert_with(|| Value::Object(Default::default()));
    if !metadata.is_object() {
        *metadata = Value::Object(Default::default());
    }
    if let Some(m) = metadata.as_object_mut() {
        m.insert("namespace".into(), Value::from("logistics"));
    }
    let review = Review::of_object(Value::Object(pod), Source::Original);
    let ctx = Context::gator();
    let [fast, slow, loaded] = &*BOTH_EVALUATORS;
    let outcome = |set: &PolicySet| match tollgate_engine::evaluate::review(set, &review, &ctx) {
        Ok(o) => o
            .violations
            .iter()
            .map(|v| {
                // A time-out depends on the machine, not on the evaluator.
                if v.is_error && v.msg.contains("exceeded time limit") {
                    return format!("{}: timed out", v.constraint.constraint.name);
                }
                format!(
                    "{} {:?} error={} {} {}",
                    v.constraint.constraint.name, v.actions, v.is_error, v.msg, v.details
                )
            })
            .collect::<Vec<_>>(),
        Err(e) => vec![format!("review failed: {e}")],
    };
    let (a, b) = (outcome(fast), outcome(slow));
    assert_eq!(a, b, "the RVM (left) and the interpreter (right) disagree");
    assert_eq!(
        a,
        outcome(loaded),
        "programs compiled now (left) and deserialized (right) disagree"
    );
}

// === block_yaml ===

/// A document read by the block-YAML shortcut: wherever the shortcut answers, the full parser
/// reads the same value (the shortcut must never change what a document means).
pub fn block_yaml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Some(fast) = block_yaml::parse(text) else {
        return;
    };
    match parse_yaml_fully(text) {
        Ok(Some(full)) if full == fast => {}
        other => panic!(
            "the shortcut read {text:?} as {fast:?}, the full parser as {:?}",
            other.map_err(|e| e.to_string())
        ),
    }
}
