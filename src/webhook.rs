//! The webhook's HTTP routes: thin handlers over `admission::Admission`.

use crate::admission::{Admission, BadReview};
use crate::policy::Mode;
use axum::body::{to_bytes, Body};
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;

#[derive(Clone)]
struct AppState {
    admission: Arc<Admission>,
    default_mode: Mode,
    max_body_bytes: usize,
}

/// `POST /validate` uses the configured default mode. `POST /validate/{enforce,warn,off}` let
/// one webhook entry per mode select namespaces by their `pullcheck.io/mode` label with a
/// `namespaceSelector`, so the label needs no API call.
pub fn router(admission: Arc<Admission>, default_mode: Mode, max_body_bytes: usize) -> Router {
    let state = AppState {
        admission,
        default_mode,
        max_body_bytes,
    };
    Router::new()
        .route("/validate", post(validate_default))
        .route("/validate/{mode}", post(validate_mode))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn validate_default(State(state): State<AppState>, body: Body) -> Response {
    let mode = state.default_mode;
    validate(state, mode, body).await
}

async fn validate_mode(
    State(state): State<AppState>,
    Path(mode): Path<String>,
    body: Body,
) -> Response {
    let mode = match mode.as_str() {
        "enforce" => Mode::Enforce,
        "warn" => Mode::Warn,
        "off" => Mode::Off,
        other => {
            return bad_request(
                StatusCode::NOT_FOUND,
                &format!("unknown mode {other:?} in the path: use /validate/enforce, /validate/warn or /validate/off"),
            )
        }
    };
    validate(state, mode, body).await
}

async fn validate(state: AppState, mode: Mode, body: Body) -> Response {
    let bytes = match to_bytes(body, state.max_body_bytes).await {
        Ok(b) => b,
        Err(_) => {
            return bad_request(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!(
                    "the request body is larger than {} bytes (maxBodyBytes); an AdmissionReview is never that large",
                    state.max_body_bytes
                ),
            )
        }
    };
    match state.admission.review(&bytes, mode).await {
        Ok(review) => axum::Json(review).into_response(),
        Err(
            e @ (BadReview::Json(_)
            | BadReview::NoRequest
            | BadReview::WrongType { .. }
            | BadReview::NamespaceMismatch { .. }),
        ) => {
            tracing::warn!(error = %e, "rejected a body that is not a review kube-apiserver sends");
            bad_request(StatusCode::BAD_REQUEST, &e.to_string())
        }
    }
}

fn bad_request(status: StatusCode, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{message}\n"),
    )
        .into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.admission.engine().metrics().encode(),
    )
        .into_response()
}
