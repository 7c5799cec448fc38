//! A scripted registry for what a real one cannot be made to do on demand: rate limits, server
//! errors, stalls, malformed answers and odd challenges. It records every request.

use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use axum::Extension;

use super::server::{RecordedRequest, ServerThread};
use super::{timefmt, Digest};

/// What the fake answers to one request.
#[derive(Clone, Debug)]
pub enum Reply {
    Respond {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Accept the request and never answer (for timeout tests). The connection stays open until
    /// the client gives up or the fake is dropped.
    Stall,
}

impl Reply {
    /// `status` with an empty body.
    pub fn status(status: u16) -> Reply {
        Reply::Respond {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Adds a header (builder style; no effect on [`Reply::Stall`]).
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        if let Reply::Respond { headers, .. } = &mut self {
            headers.push((name.to_string(), value.to_string()));
        }
        self
    }

    /// Replaces the body (builder style).
    pub fn body(mut self, bytes: impl Into<Vec<u8>>) -> Reply {
        if let Reply::Respond { body, .. } = &mut self {
            *body = bytes.into();
        }
        self
    }

    /// 200 for a manifest: `Content-Type`, `Docker-Content-Digest` (computed) and the body (hyper
    /// sends no body to a HEAD but keeps `Content-Length`).
    pub fn manifest(media_type: &str, body: &[u8]) -> Reply {
        Reply::status(200)
            .header("content-type", media_type)
            .header("docker-content-digest", Digest::of(body).as_str())
            .body(body.to_vec())
    }

    /// A distribution error body `{"errors":[{"code","message"}]}` with `status`.
    pub fn registry_error(status: u16, code: &str, message: &str) -> Reply {
        let body =
            serde_json::json!({"errors": [{"code": code, "message": message, "detail": null}]});
        Reply::status(status)
            .header("content-type", "application/json")
            .body(body.to_string())
    }

    /// 429 with `Retry-After: <value>` verbatim (`"30"`, an HTTP-date, or something broken).
    pub fn too_many_requests(retry_after: &str) -> Reply {
        Reply::registry_error(429, "TOOMANYREQUESTS", "too many requests")
            .header("retry-after", retry_after)
    }

    /// 429 with `Retry-After: <seconds>`.
    pub fn too_many_requests_secs(seconds: u64) -> Reply {
        Reply::too_many_requests(&seconds.to_string())
    }

    /// 429 with `Retry-After` as an HTTP-date (IMF-fixdate).
    pub fn too_many_requests_until(at: SystemTime) -> Reply {
        Reply::too_many_requests(&timefmt::http_date(at))
    }

    /// 429 with no `Retry-After` and a plain-text body, like Docker Hub's abuse limit.
    pub fn too_many_requests_plain() -> Reply {
        Reply::status(429)
            .header("content-type", "text/plain")
            .body("Too Many Requests")
    }

    /// 200 without `Docker-Content-Digest` and with a body that is not JSON.
    pub fn garbage_ok() -> Reply {
        Reply::status(200)
            .header("content-type", "text/plain")
            .body("this is <not> a manifest")
    }

    /// 404 with an HTML page, as a proxy or a web server in front of nothing answers.
    pub fn html_not_found() -> Reply {
        Reply::status(404)
            .header("content-type", "text/html")
            .body("<html><body><h1>404 Not Found</h1></body></html>")
    }

    /// 401 with `WWW-Authenticate: <challenge>` verbatim.
    pub fn unauthorized(challenge: &str) -> Reply {
        Reply::registry_error(401, "UNAUTHORIZED", "authentication required")
            .header("www-authenticate", challenge)
    }

    /// 401 with a `WWW-Authenticate` that no parser can make sense of (unterminated quote, no
    /// realm value).
    pub fn malformed_challenge() -> Reply {
        Reply::unauthorized("Bearer realm=\"https://127.0.0.1:1/token,service=")
    }

    /// A token endpoint's answer: `{"token": t, "access_token": t, "expires_in": 300}`.
    pub fn token(token: &str) -> Reply {
        let body = serde_json::json!({"token": token, "access_token": token, "expires_in": 300});
        Reply::status(200)
            .header("content-type", "application/json")
            .body(body.to_string())
    }
}

/// What the fake registry reads from a request, besides what every test server does.
impl RecordedRequest {
    /// 401 with a Bearer challenge pointing at this fake's own `/token`, service `fake-registry`.
    pub fn bearer_challenge(&self, scope: &str) -> Reply {
        Reply::unauthorized(&format!(
            "Bearer realm=\"{}/token\",service=\"fake-registry\",scope=\"{scope}\"",
            self.base_url
        ))
    }

    /// `/v2/<name>/manifests/<reference>` -> (name, reference).
    pub fn manifest_target(&self) -> Option<(&str, &str)> {
        let rest = self.path.strip_prefix("/v2/")?;
        let (name, reference) = rest.rsplit_once("/manifests/")?;
        Some((name, reference))
    }
}

type Handler = dyn Fn(&RecordedRequest) -> Reply + Send + Sync;

/// An HTTPS server (shared test CA) on a free 127.0.0.1 port whose every answer comes from a
/// handler. Runs until dropped.
pub struct FakeRegistry {
    server: ServerThread,
}

impl FakeRegistry {
    /// Answers every request with `handler(request)`.
    pub fn start(
        handler: impl Fn(&RecordedRequest) -> Reply + Send + Sync + 'static,
    ) -> FakeRegistry {
        Self::spawn(Box::new(handler), true)
    }

    /// Like [`Self::start`] over plain HTTP.
    pub fn start_plain_http(
        handler: impl Fn(&RecordedRequest) -> Reply + Send + Sync + 'static,
    ) -> FakeRegistry {
        Self::spawn(Box::new(handler), false)
    }

    /// Answers every request with the same reply.
    pub fn always(reply: Reply) -> FakeRegistry {
        Self::start(move |_| reply.clone())
    }

    /// Answers the n-th request with `replies[n]`, and every later one with the last reply.
    pub fn script(replies: Vec<Reply>) -> FakeRegistry {
        assert!(!replies.is_empty(), "a script needs at least one reply");
        Self::start(move |request| replies[request.sequence.min(replies.len() - 1)].clone())
    }

    fn spawn(handler: Box<Handler>, tls: bool) -> FakeRegistry {
        let router = axum::Router::new()
            .fallback(handle)
            .with_state(Arc::<Handler>::from(handler));
        FakeRegistry {
            server: ServerThread::spawn("fake", router, tls),
        }
    }

    /// `127.0.0.1:PORT`: the registry host as it appears in an image reference.
    pub fn addr(&self) -> String {
        self.server.addr().to_string()
    }

    /// `https://127.0.0.1:PORT` (`http://` for a plain fake).
    pub fn url(&self) -> String {
        self.server.base_url()
    }

    /// `127.0.0.1:PORT/<repository>:<tag>`.
    pub fn image(&self, repository: &str, tag: &str) -> String {
        format!("{}/{repository}:{tag}", self.addr())
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.server.requests()
    }

    /// How many requests so far.
    pub fn total(&self) -> usize {
        self.server.count_requests(|_| true)
    }

    /// How many `method` requests (e.g. "HEAD") to exactly `path` (no query) so far.
    pub fn count(&self, method: &str, path: &str) -> usize {
        self.server
            .count_requests(|r| r.method == method && r.path == path)
    }

    /// How many `method` requests so far, any path.
    pub fn count_method(&self, method: &str) -> usize {
        self.server.count_requests(|r| r.method == method)
    }
}

async fn handle(
    State(handler): State<Arc<Handler>>,
    Extension(request): Extension<RecordedRequest>,
) -> Response {
    match handler(&request) {
        Reply::Stall => std::future::pending().await,
        Reply::Respond {
            status,
            headers,
            body,
        } => {
            let mut response = Response::builder().status(status);
            for (name, value) in headers {
                response = response.header(name, value);
            }
            response
                .body(Body::from(body))
                .unwrap_or_else(|e| panic!("fake reply is not a valid response: {e}"))
        }
    }
}
