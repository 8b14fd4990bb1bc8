//! The plain-HTTP probe router: `/healthz`, `/readyz` and `/metrics`.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use super::state::AppState;

/// Routes for the probe port.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// 503 with the reason until ready; then 200, listing what is not enforced as written (a bad
/// template must not take a replica out of the Service).
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if let Some(why) = state.not_ready_because() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        );
    }
    let report = state.policy_report.load();
    let mut body = String::from("ready\n");
    if !report.problems.is_empty() {
        body.push_str(&format!(
            "{} policy problem(s); everything else is enforced:\n",
            report.problems.len()
        ));
        for p in &report.problems {
            body.push_str(&format!("- {p}\n"));
        }
    }
    (StatusCode::OK, body)
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}
