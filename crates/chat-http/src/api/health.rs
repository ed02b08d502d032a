//! `GET /healthz` (the process answers) and `GET /readyz` (its stores answer).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chat_domain::HealthCheck;
use serde_json::json;

use crate::shutdown::Shutdown;

/// How long a store may take to answer a readiness probe.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Alive: always 200.
pub(super) async fn healthz() -> Response {
    axum::Json(json!({ "status": "ok" })).into_response()
}

/// Ready: 200 only when every store answers within two seconds and the
/// server is not shutting down; otherwise 503 naming what failed.
pub(super) async fn readyz(
    State(checks): State<Arc<[Arc<dyn HealthCheck>]>>,
    State(shutdown): State<Shutdown>,
) -> Response {
    let results = futures::future::join_all(checks.iter().map(|c| async move {
        let ok = match tokio::time::timeout(CHECK_TIMEOUT, c.check()).await {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                tracing::warn!(component = c.component(), error = %e, "readiness check failed");
                false
            }
            Err(_) => {
                tracing::warn!(component = c.component(), "readiness check timed out");
                false
            }
        };
        (c.component(), ok)
    }))
    .await;
    let mut failed: Vec<&str> = results
        .iter()
        .filter(|(_, ok)| !ok)
        .map(|(name, _)| *name)
        .collect();
    if shutdown.is_triggered() {
        failed.push("shutting-down");
    }
    let checks: serde_json::Map<String, serde_json::Value> = results
        .iter()
        .map(|(name, ok)| ((*name).to_owned(), json!(if *ok { "ok" } else { "failed" })))
        .collect();
    if failed.is_empty() {
        (
            StatusCode::OK,
            axum::Json(json!({ "status": "ready", "checks": checks })),
        )
            .into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({
                "status": "unavailable",
                "failed": failed,
                "checks": checks,
                "error": {
                    "code": "unavailable",
                    "message": format!("not ready: {}", failed.join(", ")),
                },
            })),
        )
            .into_response()
    }
}
