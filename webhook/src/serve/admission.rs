//! `POST /v1/admit`: AdmissionReview (v1 or v1beta1) in, AdmissionReview out, in the version
//! asked, through the engine's one review path.
//!
//! A body that is not JSON is the only HTTP error (400; an oversized body never gets here: it
//! gets 413 from [`super::body`]). Anything that parses gets HTTP 200: a malformed review gets a refusing
//! response that says what is wrong, with the uid echoed when there is one.

use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use tollgate_engine::evaluate::ReviewFailure;
use tollgate_engine::gatekeeper::{EnforcementAction, object_name};
use tollgate_engine::policy_set::CompiledConstraint;
use tollgate_engine::{Context, Decision, Review, enforcement_point};

use super::config::EvaluateOn;
use super::metrics::{RequestLabels, StatusLabels, ViolationLabels, address};
use super::state::AppState;

const VERSIONS: [&str; 2] = ["admission.k8s.io/v1", "admission.k8s.io/v1beta1"];

/// How a request ended, for metrics (Gatekeeper's `admission_status` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Allow,
    Deny,
    Error,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Allow => "allow",
            Status::Deny => "deny",
            Status::Error => "error",
        }
    }
}

/// The answer to one review.
struct Answer {
    response: Value,
    status: Status,
}

fn answer(uid: &str, allowed: bool, status: Option<Value>, warnings: Vec<String>) -> Value {
    let mut r = Map::new();
    r.insert("uid".into(), json!(uid));
    r.insert("allowed".into(), json!(allowed));
    if let Some(s) = status {
        r.insert("status".into(), s);
    }
    if !warnings.is_empty() {
        r.insert("warnings".into(), json!(warnings));
    }
    Value::Object(r)
}

fn refuse(uid: &str, code: u16, message: String) -> Answer {
    Answer {
        response: answer(
            uid,
            false,
            Some(json!({"metadata": {}, "code": code, "message": message})),
            Vec::new(),
        ),
        status: Status::Error,
    }
}

/// Gatekeeper's `httpStatusWarning` (`pkg/webhook/policy.go`): the code of an allowed answer that
/// carries warnings.
const CODE_ALLOWED_WITH_WARNINGS: u16 = 299;

fn allow(uid: &str, warnings: Vec<String>) -> Answer {
    let code = if warnings.is_empty() {
        200
    } else {
        CODE_ALLOWED_WITH_WARNINGS
    };
    Answer {
        response: answer(
            uid,
            true,
            Some(json!({"metadata": {}, "code": code})),
            warnings,
        ),
        status: Status::Allow,
    }
}

/// Handles `POST /v1/admit`.
pub async fn admit(State(state): State<AppState>, body: Bytes) -> Response {
    let started = Instant::now();
    let review: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            record(&state, Status::Error, false, started);
            return (
                StatusCode::BAD_REQUEST,
                format!("request body is not a valid JSON AdmissionReview: {e}\n"),
            )
                .into_response();
        }
    };
    let api_version = review
        .get("apiVersion")
        .and_then(Value::as_str)
        .filter(|v| VERSIONS.contains(v))
        .unwrap_or(VERSIONS[0])
        .to_string();
    let dry_run = review
        .pointer("/request/dryRun")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let uid = review
        .pointer("/request/uid")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let span = tracing::debug_span!("admission_review", uid, api_version);
    let prepared = match span.in_scope(|| prepare(&state, review)) {
        Ok(prepared) => read_namespace(&state, prepared).await,
        Err(answered) => Err(answered),
    };
    let answer = match prepared {
        Err(answered) => answered,
        Ok(prepared) => match state.admission.evaluate_on {
            EvaluateOn::RequestTask => {
                on_request_task(&prepared, || span.in_scope(|| judge(&state, &prepared)))
            }
            EvaluateOn::BlockingPool => on_blocking_pool(&state, &span, prepared).await,
            EvaluateOn::RequestTaskThenPool => {
                let inline = state.admission.inline_budget;
                let attempt = || span.in_scope(|| judge_within(&state, &prepared, inline));
                match on_request_task(&prepared, attempt) {
                    Some(answer) => answer,
                    None => {
                        tracing::debug!(parent: &span, ?inline, "past the inline budget: evaluating on the blocking pool");
                        state.metrics.moved_to_pool.inc();
                        on_blocking_pool(&state, &span, prepared).await
                    }
                }
            }
        },
    };
    tracing::debug!(
        parent: &span,
        status = answer.status.label(),
        elapsed_us = started.elapsed().as_micros() as u64,
        "answered"
    );
    record(&state, answer.status, dry_run, started);
    Json(json!({
        "apiVersion": api_version,
        "kind": "AdmissionReview",
        "response": answer.response,
    }))
    .into_response()
}

/// Runs an evaluation on the request's own task. A panic in the engine is a bug; like one on
/// the blocking pool, it becomes a clear refusal instead of a dropped connection.
fn on_request_task<T: From<Answer>>(prepared: &Prepared, evaluate: impl FnOnce() -> T) -> T {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(evaluate)).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        T::from(refuse(
            &prepared.uid,
            500,
            format!("internal error while evaluating: {what}"),
        ))
    })
}

/// Evaluates on tokio's blocking pool, with each template's full budget.
async fn on_blocking_pool(state: &AppState, span: &tracing::Span, prepared: Prepared) -> Answer {
    let uid = prepared.uid.clone();
    let (state, span) = (state.clone(), span.clone());
    match tokio::task::spawn_blocking(move || span.in_scope(|| judge(&state, &prepared))).await {
        Ok(answer) => answer,
        // A panic in the engine is a bug; the request still gets a clear refusal.
        Err(e) => refuse(&uid, 500, format!("internal error while evaluating: {e}")),
    }
}

fn record(state: &AppState, status: Status, dry_run: bool, started: Instant) {
    state
        .metrics
        .requests
        .get_or_create(&RequestLabels {
            admission_status: status.label(),
            admission_dryrun: if dry_run { "true" } else { "false" },
        })
        .inc();
    state
        .metrics
        .request_duration
        .get_or_create(&StatusLabels {
            admission_status: status.label(),
        })
        .observe(started.elapsed().as_secs_f64());
}

/// Checks the shape Kubernetes guarantees, naming the first field that is wrong.
fn check_shape(review: &Value) -> Result<&Map<String, Value>, String> {
    let api_version = review
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !VERSIONS.contains(&api_version) {
        return Err(format!(
            "unsupported AdmissionReview apiVersion {api_version:?}: expected admission.k8s.io/v1 or admission.k8s.io/v1beta1"
        ));
    }
    if review.get("kind").and_then(Value::as_str) != Some("AdmissionReview") {
        return Err("kind: expected \"AdmissionReview\"".into());
    }
    let request = match review.get("request") {
        Some(Value::Object(r)) => r,
        None | Some(Value::Null) => return Err("request: missing; nothing to review".into()),
        Some(_) => return Err("request: expected an object".into()),
    };
    let typed = |field: &str, ok: fn(&Value) -> bool, what: &str| -> Result<(), String> {
        match request.get(field) {
            Some(v) if !v.is_null() && !ok(v) => Err(format!("request.{field}: expected {what}")),
            _ => Ok(()),
        }
    };
    for field in ["uid", "operation", "name", "namespace", "subResource"] {
        typed(field, Value::is_string, "a string")?;
    }
    for field in ["object", "oldObject", "userInfo", "kind", "resource"] {
        typed(field, Value::is_object, "an object")?;
    }
    typed("dryRun", Value::is_boolean, "a boolean")?;
    Ok(request)
}

/// A review that passed the shape checks and is not exempt: what evaluation needs.
struct Prepared {
    uid: String,
    review: Review,
}

/// Checks the review and its exemptions; `Err` is the answer when nothing is to be evaluated.
fn prepare(state: &AppState, mut review: Value) -> Result<Prepared, Answer> {
    let uid = review
        .pointer("/request/uid")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let settings = &state.admission;
    let request = check_shape(&review).map_err(|message| refuse(&uid, 400, message))?;
    let user = request
        .get("userInfo")
        .and_then(|u| u.get("username"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let namespace = request_namespace(request);
    if settings
        .exemptions
        .service_account
        .as_deref()
        .is_some_and(|sa| sa == user)
        || settings.exemptions.namespace_exempt(namespace)
    {
        return Err(allow(&uid, Vec::new()));
    }
    // The cluster's Gatekeeper `Config` (`spec.match[].excludedNamespaces` for the webhook).
    if state
        .config_excluded
        .load()
        .iter()
        .any(|pattern| tollgate_engine::matching::wildcard_matches(pattern, namespace))
    {
        let mut answered = allow(&uid, Vec::new());
        answered.response["status"]["message"] =
            json!("Namespace is set to be ignored by Gatekeeper config");
        return Err(answered);
    }
    // The request moves into the review: no copy of the object.
    let request = review
        .get_mut("request")
        .map(Value::take)
        .unwrap_or_default();
    let review = Review::of_request(request).map_err(|e| refuse(&uid, 400, e.to_string()))?;
    Ok(Prepared { uid, review })
}

/// In cluster mode, a namespaced request whose Namespace the cache does not have reads it from
/// the API server (it may have been created a moment ago). As in Gatekeeper's webhook, a
/// Namespace that does not exist, or cannot be read, refuses the request whatever the
/// constraints: `failed to create augmentedReview: namespaces "x" not found`, code 500.
async fn read_namespace(state: &AppState, mut prepared: Prepared) -> Result<Prepared, Answer> {
    let Some(reader) = &state.namespace_reader else {
        return Ok(prepared);
    };
    let request = &prepared.review.request;
    let is_namespace = request.pointer("/kind/kind") == Some(&json!("Namespace"))
        && request
            .pointer("/kind/group")
            .and_then(Value::as_str)
            .unwrap_or("")
            .is_empty();
    let name = request
        .get("namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    if is_namespace || name.is_empty() || state.data.load().namespace(name).is_some() {
        return Ok(prepared);
    }
    let failure = match (reader.0)(name.to_string()).await {
        Ok(Some(namespace)) => {
            prepared.review = prepared.review.with_namespace(Some(namespace));
            return Ok(prepared);
        }
        Ok(None) => format!("namespaces {name:?} not found"),
        Err(e) => e,
    };
    let message = format!("failed to create augmentedReview: {failure}");
    tracing::warn!(uid = prepared.uid, %message, "cannot read the request's Namespace");
    Err(if state.admission.fail_open {
        allow(
            &prepared.uid,
            vec![format!(
                "tollgate could not evaluate this request: {message}"
            )],
        )
    } else {
        refuse(&prepared.uid, 500, message)
    })
}

/// Evaluates with each template's own budget.
fn judge(state: &AppState, prepared: &Prepared) -> Answer {
    evaluate_prepared(state, prepared, None).unwrap_or_else(|| {
        // Only a review with an inline budget stops early.
        refuse(
            &prepared.uid,
            500,
            "internal error: evaluation ended without an answer".into(),
        )
    })
}

/// Evaluates with every template limited to `budget`; `None` when one ran past it.
fn judge_within(state: &AppState, prepared: &Prepared, budget: Duration) -> Option<Answer> {
    evaluate_prepared(state, prepared, Some(budget))
}

fn evaluate_prepared(
    state: &AppState,
    prepared: &Prepared,
    budget: Option<Duration>,
) -> Option<Answer> {
    let settings = &state.admission;
    let Prepared { uid, review } = prepared;
    let Some(policies) = state.policies.load_full() else {
        // Not ready: the API server should not be sending yet. Fail closed unless told not to.
        let message = "tollgate has not published its policies yet".to_string();
        return Some(if settings.fail_open {
            allow(
                uid,
                vec![format!(
                    "tollgate could not evaluate this request: {message}"
                )],
            )
        } else {
            refuse(uid, 500, message)
        });
    };
    let data = state.data.load();
    let metrics = &state.metrics;
    // Recorded once the review is answered here: a review that moves to the blocking pool is
    // evaluated again there, and its evaluations count once.
    let timers = metrics.constraint_timers(&policies);
    let timings = std::sync::Mutex::new(Vec::new());
    let observe = |c: &CompiledConstraint, d: std::time::Duration| {
        if let Ok(mut t) = timings.lock() {
            t.push((address(c), d));
        }
    };
    let ctx = Context {
        enforcement_point: enforcement_point::WEBHOOK,
        data: Some(&data),
        expand: settings.expand,
        builtin_expansions: true,
        observe: Some(&observe),
    };
    let result = match budget {
        Some(budget) => tollgate_engine::evaluate::review_within(&policies, review, &ctx, budget),
        None => tollgate_engine::evaluate::review(&policies, review, &ctx),
    };
    if let Err(ReviewFailure::PastBudget { .. }) = result
        && budget.is_some()
    {
        return None;
    }
    for (at, d) in timings.into_inner().unwrap_or_default() {
        timers.observe(at, d);
    }
    let outcome = match result {
        Ok(o) => o,
        Err(e) if settings.fail_open => {
            tracing::warn!(uid, error = %e, "evaluation failed; admitting (fail-open)");
            return Some(allow(
                uid,
                vec![format!("tollgate could not evaluate this request: {e}")],
            ));
        }
        Err(e) => {
            tracing::warn!(uid, error = %e, "evaluation failed; refusing");
            return Some(refuse(uid, 500, e.to_string()));
        }
    };
    let (failed, violations): (Vec<_>, Vec<_>) = outcome
        .violations
        .into_iter()
        .partition(|v| v.is_error && settings.fail_open);
    let mut decision = Decision::from_violations(violations);
    for v in &failed {
        tracing::warn!(uid, constraint = %v.constraint.constraint.name, error = %v.msg, "evaluation failed; admitting (fail-open)");
        decision.warnings.push(format!(
            "[{}] not evaluated (fail-open): {}",
            v.constraint.constraint.name, v.msg
        ));
    }
    for v in &decision.violations {
        for action in &v.actions {
            metrics
                .violations
                .get_or_create(&ViolationLabels {
                    constraint: v.constraint.constraint.name.clone(),
                    enforcement_action: action.as_str().into(),
                })
                .inc();
        }
    }
    if !decision.dryruns.is_empty() {
        tracing::info!(uid, dryrun = ?decision.dryruns, "dry-run violations");
    }
    if decision.allowed {
        return Some(allow(uid, decision.warnings));
    }
    let constraints: Vec<&str> = decision
        .violations
        .iter()
        .filter(|v| v.actions.contains(&EnforcementAction::Deny))
        .map(|v| v.constraint.constraint.name.as_str())
        .collect();
    let request = &review.request;
    let kind = request
        .pointer("/kind/kind")
        .and_then(Value::as_str)
        .unwrap_or("");
    // A CREATE carries no `request.name`; the object has it (or its generateName).
    let name = request
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .or_else(|| review.object().map(object_name).filter(|n| !n.is_empty()))
        .or_else(|| {
            review
                .object()
                .and_then(|o| o.pointer("/metadata/generateName"))
                .and_then(Value::as_str)
        })
        .unwrap_or("");
    let namespace = request.as_object().map(request_namespace).unwrap_or("");
    tracing::info!(uid, kind, namespace, name, ?constraints, "denied admission");
    Some(Answer {
        response: answer(
            uid,
            false,
            Some(json!({
                "metadata": {},
                "code": 403,
                "reason": "Forbidden",
                "message": decision.denial_message(),
            })),
            decision.warnings,
        ),
        status: Status::Deny,
    })
}

/// The namespace exemptions apply to: the request's namespace, or a Namespace's own name.
fn request_namespace(request: &Map<String, Value>) -> &str {
    let ns = request
        .get("namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !ns.is_empty() {
        return ns;
    }
    let is_namespace = request.get("kind").is_some_and(|k| {
        k.get("kind") == Some(&json!("Namespace"))
            && k.get("group")
                .and_then(Value::as_str)
                .unwrap_or("")
                .is_empty()
    });
    if is_namespace {
        request.get("name").and_then(Value::as_str).unwrap_or("")
    } else {
        ""
    }
}
