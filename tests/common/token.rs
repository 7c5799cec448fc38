//! A token service for the real registry's `auth.token` mode (the distribution token spec,
//! docs/spec/auth/token.md): `GET /token?service=..&scope=repository:NAME:pull` with optional
//! Basic auth, answered with an ES256 JWT that distribution 2.8.2 verifies offline.
//!
//! What distribution checks (registry/auth/token): `iss` equals the configured issuer, `aud`
//! contains the configured service, `exp`/`nbf` (with a minute of leeway), the signature, and that
//! the key comes from a certificate chain (`x5c`, first entry the signer) that verifies against
//! `rootcertbundle`. Measured on 2.8.2: a self-signed signing certificate placed in the bundle is
//! accepted, so there is no separate token CA.
//!
//! Access is granted as an intersection, like Docker Hub: a known user (or anonymous) asking for a
//! repository they may not read still gets HTTP 200 and a token with empty `access`; the registry
//! then answers 401 `insufficient_scope`. Only a wrong password (or unknown user) is a 401 here.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::json;

use super::server::ServerThread;
use super::timefmt;

/// The `service` every test registry is configured with (`aud` of the tokens).
pub const SERVICE: &str = "pullcheck-test-registry";
/// The `iss` of the tokens.
pub const ISSUER: &str = "pullcheck-test-token-issuer";

/// Who may pull what. Patterns are `*` (everything), `prefix/*` (everything under the prefix) or
/// an exact repository name.
#[derive(Clone, Debug)]
pub struct TokenRules {
    users: Vec<(String, String)>,
    grants: Vec<(Option<String>, String)>,
    expires_in: u64,
}

impl Default for TokenRules {
    /// Anonymous may pull `public/*`; no users; tokens live 300 s.
    fn default() -> Self {
        TokenRules {
            users: Vec::new(),
            grants: vec![(None, "public/*".to_string())],
            expires_in: 300,
        }
    }
}

impl TokenRules {
    /// Adds a user with a password who may pull the repositories matching `patterns`.
    pub fn user(mut self, name: &str, password: &str, patterns: &[&str]) -> Self {
        self.users.push((name.to_string(), password.to_string()));
        for pattern in patterns {
            self.grants
                .push((Some(name.to_string()), (*pattern).to_string()));
        }
        self
    }

    /// Lets anonymous clients pull the repositories matching `patterns` too.
    pub fn anonymous(mut self, patterns: &[&str]) -> Self {
        for pattern in patterns {
            self.grants.push((None, (*pattern).to_string()));
        }
        self
    }

    fn may_pull(&self, user: Option<&str>, repository: &str) -> bool {
        self.grants
            .iter()
            .any(|(who, pattern)| who.as_deref() == user && pattern_matches(pattern, repository))
    }
}

fn pattern_matches(pattern: &str, repository: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    match pattern.strip_suffix("/*") {
        Some(prefix) => repository
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/')),
        None => pattern == repository,
    }
}

/// One request to the token endpoint, as recorded. The password is never recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRequest {
    pub method: String,
    /// The Basic-auth user name, `None` for anonymous.
    pub user: Option<String>,
    pub service: Option<String>,
    /// Every `scope` parameter, verbatim, in order.
    pub scopes: Vec<String>,
    /// The status answered.
    pub status: u16,
    /// The scopes granted, as `repository:NAME:pull`.
    pub granted: Vec<String>,
}

struct Signer {
    key: EcdsaKeyPair,
    rng: SystemRandom,
    cert_der_b64: String,
    cert_pem: String,
}

impl Signer {
    fn new() -> Signer {
        let certified =
            rcgen::generate_simple_self_signed(vec!["pullcheck-test-token-signer".to_string()])
                .expect("generate the token signing certificate");
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &certified.signing_key.serialize_der(),
            &rng,
        )
        .expect("load the token signing key into ring");
        Signer {
            key,
            rng,
            cert_der_b64: STANDARD.encode(certified.cert.der()),
            cert_pem: certified.cert.pem(),
        }
    }

    /// A compact JWS: base64url(header).base64url(claims).base64url(r || s).
    fn sign(&self, claims: &serde_json::Value) -> String {
        let header = json!({"typ": "JWT", "alg": "ES256", "x5c": [self.cert_der_b64]});
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self
            .key
            .sign(&self.rng, signing_input.as_bytes())
            .expect("ECDSA signing");
        format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.as_ref())
        )
    }
}

struct Inner {
    rules: Mutex<TokenRules>,
    failure: Mutex<Option<u16>>,
    log: Mutex<Vec<TokenRequest>>,
    signer: Signer,
    next_jti: AtomicU64,
}

impl Inner {
    fn token(&self, subject: &str, access: &[(String, Vec<String>)], expires_in: u64) -> String {
        let now = SystemTime::now();
        let iat = timefmt::unix(now);
        let access: Vec<_> = access
            .iter()
            .map(|(name, actions)| json!({"type": "repository", "name": name, "actions": actions}))
            .collect();
        let claims = json!({
            "iss": ISSUER,
            "sub": subject,
            "aud": SERVICE,
            "exp": iat + expires_in,
            "nbf": iat,
            "iat": iat,
            "jti": format!("pullcheck-test-{}", self.next_jti.fetch_add(1, Ordering::Relaxed)),
            "access": access,
        });
        self.signer.sign(&claims)
    }
}

/// See the module documentation. Runs until dropped; hand it to [`super::RegistryAuth::Token`].
pub struct TokenService {
    inner: Arc<Inner>,
    server: ServerThread,
}

impl TokenService {
    /// Starts an HTTPS token service (shared test CA) on a free 127.0.0.1 port.
    pub fn start(rules: TokenRules) -> TokenService {
        let inner = Arc::new(Inner {
            rules: Mutex::new(rules),
            failure: Mutex::new(None),
            log: Mutex::new(Vec::new()),
            signer: Signer::new(),
            next_jti: AtomicU64::new(1),
        });
        let router = axum::Router::new()
            .route("/token", axum::routing::any(token_endpoint))
            .with_state(inner.clone());
        let server = ServerThread::spawn("token", router, true);
        TokenService { inner, server }
    }

    /// `https://127.0.0.1:PORT/token`, the `auth.token.realm` of the registry.
    pub fn realm(&self) -> String {
        format!("{}/token", self.server.base_url())
    }

    pub fn service(&self) -> &'static str {
        SERVICE
    }

    pub fn issuer(&self) -> &'static str {
        ISSUER
    }

    /// PEM of the certificate that signs the tokens (the registry's `rootcertbundle`).
    pub fn signing_cert_pem(&self) -> &str {
        &self.inner.signer.cert_pem
    }

    /// The users and passwords the rules know, in the order they were added.
    pub fn users(&self) -> Vec<(String, String)> {
        self.inner.rules.lock().expect("rules lock").users.clone()
    }

    /// Makes every following request fail with `status` (and an error body), or stops doing so.
    pub fn fail_with(&self, status: Option<u16>) {
        *self.inner.failure.lock().expect("failure lock") = status;
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.inner.log.lock().expect("log lock").clone()
    }

    pub fn request_count(&self) -> usize {
        self.inner.log.lock().expect("log lock").len()
    }

    /// How many requests `user` (`None`: anonymous) made that asked for `scope` (e.g.
    /// `repository:private/app:pull`) among their scopes.
    pub fn count_for(&self, user: Option<&str>, scope: &str) -> usize {
        self.inner
            .log
            .lock()
            .expect("log lock")
            .iter()
            .filter(|r| r.user.as_deref() == user && r.scopes.iter().any(|s| s == scope))
            .count()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.inner.log.lock().expect("log lock").clear();
    }

    /// A token minted in-process (no request recorded), e.g. `mint("admin", "x/y", &["pull",
    /// "push"])` for the harness's own pushes. Valid for 10 minutes.
    pub fn mint(&self, subject: &str, repository: &str, actions: &[&str]) -> String {
        let actions = actions.iter().map(|a| (*a).to_string()).collect();
        self.inner
            .token(subject, &[(repository.to_string(), actions)], 600)
    }
}

fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({"errors": [{"code": code, "message": message}]});
    (
        status,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// `Some(Ok(user, password))` for a Basic header, `Some(Err(()))` for a malformed one, `None` when
/// absent.
fn basic_credentials(headers: &HeaderMap) -> Option<Result<(String, String), ()>> {
    let value = headers.get(http::header::AUTHORIZATION)?;
    let parsed = (|| {
        let value = value.to_str().ok()?;
        let (scheme, encoded) = value.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
        let (user, password) = decoded.split_once(':')?;
        Some((user.to_string(), password.to_string()))
    })();
    Some(parsed.ok_or(()))
}

/// `repository:NAME:ACTIONS` -> (NAME, actions). NAME may itself contain a colon (`host:port`), so
/// the type ends at the first colon and the actions start after the last one (scope.md).
fn parse_scope(scope: &str) -> Option<(String, Vec<String>)> {
    let (kind, rest) = scope.split_once(':')?;
    let (name, actions) = rest.rsplit_once(':')?;
    if kind != "repository" || name.is_empty() {
        return None;
    }
    Some((
        name.to_string(),
        actions.split(',').map(str::to_string).collect(),
    ))
}

async fn token_endpoint(
    State(inner): State<Arc<Inner>>,
    method: Method,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let mut service = None;
    let mut scopes = Vec::new();
    for (key, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match key.as_ref() {
            "service" => service = Some(value.into_owned()),
            "scope" => scopes.push(value.into_owned()),
            _ => {}
        }
    }
    let credentials = basic_credentials(&headers);
    let mut record = TokenRequest {
        method: method.to_string(),
        user: match &credentials {
            Some(Ok((user, _))) => Some(user.clone()),
            _ => None,
        },
        service: service.clone(),
        scopes: scopes.clone(),
        status: 0,
        granted: Vec::new(),
    };
    let response = answer(
        &inner,
        &method,
        service.as_deref(),
        &scopes,
        credentials,
        &mut record,
    );
    record.status = response.status().as_u16();
    inner.log.lock().expect("log lock").push(record);
    response
}

fn answer(
    inner: &Inner,
    method: &Method,
    service: Option<&str>,
    scopes: &[String],
    credentials: Option<Result<(String, String), ()>>,
    record: &mut TokenRequest,
) -> Response {
    if let Some(status) = *inner.failure.lock().expect("failure lock") {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return error_response(status, "UNKNOWN", "token service told to fail");
    }
    if method != Method::GET {
        // No OAuth2 POST endpoint: the answer containerd falls back to GET on.
        return error_response(StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED", "only GET");
    }
    if service != Some(SERVICE) {
        return error_response(
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
            "unknown service",
        );
    }
    let rules = inner.rules.lock().expect("rules lock").clone();
    let user = match credentials {
        None => None,
        Some(Err(())) => {
            return unauthorized();
        }
        Some(Ok((user, password))) => {
            let known = rules
                .users
                .iter()
                .any(|(u, p)| *u == user && *p == password);
            if !known {
                return unauthorized();
            }
            Some(user)
        }
    };
    let mut access = Vec::new();
    for scope in scopes {
        let Some((name, actions)) = parse_scope(scope) else {
            continue;
        };
        if actions.iter().any(|a| a == "pull") && rules.may_pull(user.as_deref(), &name) {
            record.granted.push(format!("repository:{name}:pull"));
            access.push((name, vec!["pull".to_string()]));
        }
    }
    let token = inner.token(user.as_deref().unwrap_or(""), &access, rules.expires_in);
    let body = json!({
        "token": token,
        "access_token": token,
        "expires_in": rules.expires_in,
        "issued_at": timefmt::rfc3339(SystemTime::now()),
    });
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn unauthorized() -> Response {
    let mut response = error_response(
        StatusCode::UNAUTHORIZED,
        "UNAUTHORIZED",
        "authentication required",
    );
    response.headers_mut().insert(
        http::header::WWW_AUTHENTICATE,
        http::HeaderValue::from_static("Basic realm=\"pullcheck-test-token\""),
    );
    response
}
