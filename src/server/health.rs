//! Liveness and readiness endpoints.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;

/// Readiness flag: false at start, true once listening, false again when shutdown begins.
///
/// Turning false on shutdown lets the kubelet's readiness probe take the pod out of the Service endpoints
/// while in-flight reviews drain, so the API server stops sending new ones here.
#[derive(Clone, Default, Debug)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// A flag that starts not ready.
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    pub fn set_ready(&self, ready: bool) {
        self.0.store(ready, Ordering::Release);
    }
}

/// Routes `/healthz` (liveness: 200 "ok" while the process serves) and `/readyz` (200 when ready, 503
/// otherwise).
pub fn health_routes(readiness: Readiness) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let ready = readiness.is_ready();
                async move {
                    if ready {
                        (StatusCode::OK, "ready")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
                    }
                }
            }),
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    async fn get_path(router: &Router, path: &str) -> (StatusCode, String) {
        let response = router
            .clone()
            .oneshot(Request::get(path).body(Body::empty()).expect("request"))
            .await
            .expect("infallible");
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (status, String::from_utf8(body.to_vec()).expect("utf8"))
    }

    #[tokio::test]
    async fn healthz_is_ok_whatever_the_readiness() {
        let readiness = Readiness::new();
        let router = health_routes(readiness.clone());
        assert_eq!(
            get_path(&router, "/healthz").await,
            (StatusCode::OK, "ok".into())
        );
        readiness.set_ready(true);
        assert_eq!(
            get_path(&router, "/healthz").await,
            (StatusCode::OK, "ok".into())
        );
    }

    #[tokio::test]
    async fn readyz_follows_the_flag() {
        let readiness = Readiness::new();
        let router = health_routes(readiness.clone());
        assert_eq!(
            get_path(&router, "/readyz").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        readiness.set_ready(true);
        assert_eq!(
            get_path(&router, "/readyz").await,
            (StatusCode::OK, "ready".into())
        );
        readiness.set_ready(false);
        assert_eq!(
            get_path(&router, "/readyz").await,
            (StatusCode::SERVICE_UNAVAILABLE, "not ready".into())
        );
    }

    #[test]
    fn readiness_starts_false_and_clones_share_state() {
        let a = Readiness::default();
        let b = a.clone();
        assert!(!a.is_ready());
        b.set_ready(true);
        assert!(a.is_ready());
    }
}
