//! A fake kube-apiserver for the core/v1 objects pullcheck reads (Secrets, ServiceAccounts, Nodes,
//! Namespaces, plus ConfigMaps and Pods), speaking the real wire format so the real `kube` client
//! and `kube::runtime` watchers can run against it:
//!
//! * GET of one object, with kube-apiserver's `Status` body on 404 (`secrets "x" not found`);
//! * LIST (`{"kind":"SecretList","metadata":{"resourceVersion":"N"},"items":[...]}`, items without
//!   `kind`/`apiVersion` as the real server sends them), simple label and field selectors,
//!   `limit`/`continue` over a consistent snapshot;
//! * WATCH (newline-delimited `{"type","object"}` events replayed from a history log, then live),
//!   synthetic ADDED events for `resourceVersion=0` or `sendInitialEvents=true`, BOOKMARK events,
//!   and an ERROR event carrying a 410 `Expired` Status when the requested resourceVersion was
//!   compacted away, which is what makes a reflector relist;
//! * a global, monotonically increasing resourceVersion, and `uid`/`creationTimestamp` set on
//!   create and kept on update;
//! * switches for outages: every request answered with one status, every request stalled, or one
//!   path prefix answered with one status (e.g. 403 for missing RBAC).
//!
//! It records every request so tests can assert how often the code under test asked.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use axum::Extension;
use base64::Engine as _;
use bytes::Bytes;
use serde_json::{json, Map, Value};
use sha2::{Digest as _, Sha256};
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;

use super::server::{RecordedRequest, ServerThread};
use super::timefmt;

/// The bearer token of the user in [`FakeApiServer::kubeconfig`]. Dummy: the fake checks nothing.
pub const FAKE_TOKEN: &str = "fake-apiserver-token";

/// What the fake API server reads from a request, besides what every test server does.
impl RecordedRequest {
    /// Whether this is a WATCH (`watch=true` or `watch=1`).
    pub fn is_watch(&self) -> bool {
        matches!(self.param("watch").as_deref(), Some("true" | "1"))
    }
}

/// A resource the fake serves. All are in the core group (`/api/v1`).
struct Kind {
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    /// Field selectors the real server accepts besides `metadata.name` and `metadata.namespace`.
    fields: &'static [&'static str],
}

const KINDS: &[Kind] = &[
    Kind {
        kind: "Secret",
        plural: "secrets",
        namespaced: true,
        fields: &["type"],
    },
    Kind {
        kind: "ServiceAccount",
        plural: "serviceaccounts",
        namespaced: true,
        fields: &[],
    },
    Kind {
        kind: "Node",
        plural: "nodes",
        namespaced: false,
        fields: &["spec.unschedulable"],
    },
    Kind {
        kind: "Namespace",
        plural: "namespaces",
        namespaced: false,
        fields: &["status.phase"],
    },
    Kind {
        kind: "ConfigMap",
        plural: "configmaps",
        namespaced: true,
        fields: &[],
    },
    Kind {
        kind: "Pod",
        plural: "pods",
        namespaced: true,
        fields: &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
    },
];

fn kind_named(kind: &str) -> &'static Kind {
    KINDS
        .iter()
        .find(|k| k.kind == kind)
        .unwrap_or_else(|| panic!("the fake API server does not serve kind {kind:?}"))
}

fn kind_by_plural(plural: &str) -> Option<&'static Kind> {
    KINDS.iter().find(|k| k.plural == plural)
}

/// (kind, namespace or "" for cluster-scoped, name). BTreeMap order is etcd's key order, which is
/// the order LIST returns items in.
type Key = (&'static str, String, String);

/// One entry of the history log that WATCH replays.
#[derive(Clone)]
struct Change {
    rv: u64,
    kind: &'static str,
    event: &'static str,
    object: Value,
    /// The object before a MODIFIED, so selector-filtered watches can turn a change into an
    /// ADDED or DELETED as the real server does when an object enters or leaves the selection.
    old: Option<Value>,
}

struct Continuation {
    rv: u64,
    rest: Vec<Value>,
}

struct Store {
    /// The latest resourceVersion handed out.
    rv: u64,
    objects: BTreeMap<Key, Value>,
    history: Vec<Change>,
    /// Changes with rv <= this are gone from `history`; a WATCH from an older rv gets 410.
    compacted: u64,
    continuations: HashMap<String, Continuation>,
    next_continuation: u64,
}

struct Inner {
    store: Mutex<Store>,
    changed: Notify,
    down: Mutex<Option<u16>>,
    stall: AtomicBool,
    path_status: Mutex<Vec<(String, u16)>>,
    /// Bumped to end every open watch stream.
    watch_epoch: AtomicU64,
    active_watches: AtomicUsize,
    bookmark_interval: Mutex<Duration>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A fake kube-apiserver on a free 127.0.0.1 port, plain HTTP or HTTPS with the shared test CA.
/// Runs on its own thread until dropped (dropping it is how a test makes the API unreachable).
pub struct FakeApiServer {
    inner: Arc<Inner>,
    server: ServerThread,
}

impl FakeApiServer {
    /// Plain HTTP (`http://127.0.0.1:PORT`).
    pub fn start() -> FakeApiServer {
        Self::spawn(false)
    }

    /// HTTPS with the shared test PKI ([`super::ca_pem`]).
    pub fn start_https() -> FakeApiServer {
        Self::spawn(true)
    }

    fn spawn(tls: bool) -> FakeApiServer {
        let inner = Arc::new(Inner {
            store: Mutex::new(Store {
                rv: 1,
                objects: BTreeMap::new(),
                history: Vec::new(),
                compacted: 0,
                continuations: HashMap::new(),
                next_continuation: 1,
            }),
            changed: Notify::new(),
            down: Mutex::new(None),
            stall: AtomicBool::new(false),
            path_status: Mutex::new(Vec::new()),
            watch_epoch: AtomicU64::new(0),
            active_watches: AtomicUsize::new(0),
            bookmark_interval: Mutex::new(Duration::from_secs(1)),
        });
        let router = axum::Router::new()
            .fallback(handle)
            .with_state(inner.clone());
        let server = ServerThread::spawn("apiserver", router, tls);
        FakeApiServer { inner, server }
    }

    /// `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT`, no trailing slash.
    pub fn url(&self) -> String {
        self.server.base_url()
    }

    /// Creates or replaces an object. `kind` (Secret, ServiceAccount, Node, Namespace, ConfigMap,
    /// Pod) and `metadata.name` are required; a namespaced object without `metadata.namespace`
    /// goes to `default`. Like the API server: `apiVersion` becomes `v1`, a new resourceVersion is
    /// assigned, `uid` and `creationTimestamp` are set on create and kept on update, a Secret's
    /// `stringData` is folded into base64 `data` and `type` defaults to `Opaque`, a Namespace gets
    /// its `kubernetes.io/metadata.name` label and `Active` phase. Every call is a change (ADDED or
    /// MODIFIED) even if nothing differs. Returns the object as stored.
    pub fn put(&self, obj: Value) -> Value {
        let Value::Object(mut obj) = obj else {
            panic!("put needs a JSON object, got {obj}");
        };
        let kind_name = obj
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("put needs `kind`: {}", Value::Object(obj.clone())))
            .to_string();
        let kind = kind_named(&kind_name);
        obj.insert("apiVersion".into(), json!("v1"));
        let metadata = obj
            .entry("metadata")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("metadata is an object");
        let name = metadata
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .expect("put needs metadata.name")
            .to_string();
        let namespace = if kind.namespaced {
            let ns = metadata
                .get("namespace")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .unwrap_or("default")
                .to_string();
            metadata.insert("namespace".into(), json!(ns));
            ns
        } else {
            metadata.remove("namespace");
            String::new()
        };
        normalize(kind, &name, &mut obj);

        let mut store = lock(&self.inner.store);
        store.rv += 1;
        let rv = store.rv;
        let key: Key = (kind.kind, namespace.clone(), name.clone());
        let old = store.objects.get(&key).cloned();
        let metadata = obj
            .get_mut("metadata")
            .and_then(Value::as_object_mut)
            .expect("metadata is an object");
        metadata.insert("resourceVersion".into(), json!(rv.to_string()));
        match &old {
            Some(old) => {
                for field in ["uid", "creationTimestamp"] {
                    if let Some(v) = old["metadata"].get(field) {
                        metadata.insert(field.into(), v.clone());
                    }
                }
            }
            None => {
                metadata.insert("uid".into(), json!(new_uid(rv, kind.kind, &key.1, &name)));
                metadata.insert(
                    "creationTimestamp".into(),
                    json!(timefmt::rfc3339(SystemTime::now())),
                );
            }
        }
        let obj = Value::Object(obj);
        store.objects.insert(key, obj.clone());
        store.history.push(Change {
            rv,
            kind: kind.kind,
            event: if old.is_some() { "MODIFIED" } else { "ADDED" },
            object: obj.clone(),
            old,
        });
        drop(store);
        self.inner.changed.notify_waiters();
        obj
    }

    /// Deletes an object (`namespace` is ignored for cluster-scoped kinds). The DELETED event
    /// carries the last state with the deletion's resourceVersion, as the real server sends it.
    /// Returns that object, or None if there was nothing to delete.
    pub fn delete(&self, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        let kind = kind_named(kind);
        let ns = if kind.namespaced { namespace } else { "" };
        let key: Key = (kind.kind, ns.to_string(), name.to_string());
        let mut store = lock(&self.inner.store);
        let mut obj = store.objects.remove(&key)?;
        store.rv += 1;
        let rv = store.rv;
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        store.history.push(Change {
            rv,
            kind: kind.kind,
            event: "DELETED",
            object: obj.clone(),
            old: None,
        });
        drop(store);
        self.inner.changed.notify_waiters();
        Some(obj)
    }

    /// The latest resourceVersion handed out.
    pub fn resource_version(&self) -> u64 {
        lock(&self.inner.store).rv
    }

    /// Forgets the change history up to now, as etcd compaction does: a WATCH that resumes from
    /// an older resourceVersion gets an ERROR event with a 410 `Expired` Status, and pending
    /// `continue` tokens expire (410 on use). Open watches are not affected unless they lag.
    pub fn compact(&self) {
        let mut store = lock(&self.inner.store);
        store.compacted = store.rv;
        store.history.clear();
        store.continuations.clear();
        drop(store);
        self.inner.changed.notify_waiters();
    }

    /// Some(status): answer every request with `status` and a matching `Status` body (503
    /// `ServiceUnavailable`, 500 `InternalError`, 429 `TooManyRequests` with `Retry-After: 1`,
    /// 401, 403, 504, ...), and end every open watch stream, as an outage would. None: normal.
    pub fn set_down(&self, status: Option<u16>) {
        *lock(&self.inner.down) = status;
        if status.is_some() {
            self.drop_watches();
        }
    }

    /// true: accept every new request and never answer it (open watch streams carry on).
    pub fn set_stall(&self, stall: bool) {
        self.inner.stall.store(stall, Ordering::SeqCst);
    }

    /// Answers requests whose path is `path_prefix` or below it (segment-wise, see
    /// [`Self::count`]) with `status`, e.g. 403 with the real RBAC message for a GET of one secret
    /// (`secrets "x" is forbidden: User ... cannot get resource "secrets" ...`). None removes it.
    pub fn set_path_status(&self, path_prefix: &str, status: Option<u16>) {
        let mut rules = lock(&self.inner.path_status);
        rules.retain(|(p, _)| p != path_prefix);
        if let Some(status) = status {
            rules.push((path_prefix.to_string(), status));
        }
    }

    /// Ends every open watch stream cleanly, as when the API server restarts or a load balancer
    /// cuts long connections; watchers resume from their last resourceVersion.
    pub fn drop_watches(&self) {
        self.inner.watch_epoch.fetch_add(1, Ordering::SeqCst);
        self.inner.changed.notify_waiters();
    }

    /// How often an idle watch that asked for bookmarks gets one (default 1 s; applies to watches
    /// opened afterwards).
    pub fn set_bookmark_interval(&self, interval: Duration) {
        *lock(&self.inner.bookmark_interval) = interval;
    }

    /// Watch streams open right now.
    pub fn active_watches(&self) -> usize {
        self.inner.active_watches.load(Ordering::SeqCst)
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.server.requests()
    }

    /// Forgets the request log.
    pub fn clear_requests(&self) {
        self.server.clear_requests();
    }

    /// How many `method` requests went to `path_prefix` or below it, segment-wise:
    /// `count("GET", "/api/v1/nodes")` counts `/api/v1/nodes` and `/api/v1/nodes/a`, and
    /// `count("GET", ".../secrets/regcred")` does not count `.../secrets/regcred2`. LISTs and
    /// WATCHes of a collection are both GETs of its path; see [`Self::count_lists`].
    pub fn count(&self, method: &str, path_prefix: &str) -> usize {
        self.server
            .count_requests(|r| r.method == method && under(&r.path, path_prefix))
    }

    /// How many LIST requests (GET of a collection without `watch`) went to exactly `path`.
    pub fn count_lists(&self, path: &str) -> usize {
        self.server
            .count_requests(|r| r.method == "GET" && !r.is_watch() && r.path == path)
    }

    /// The text of a kubeconfig pointing at this fake: cluster `fake` (server URL, and for HTTPS
    /// the shared test CA as `certificate-authority-data`), user `fake` with bearer token
    /// [`FAKE_TOKEN`], context `fake` with namespace `default`, current.
    pub fn kubeconfig_yaml(&self) -> String {
        let ca = if self.url().starts_with("https://") {
            format!(
                "\n    certificate-authority-data: {}",
                base64::engine::general_purpose::STANDARD.encode(super::ca_pem())
            )
        } else {
            String::new()
        };
        format!(
            "apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster:
    server: {url}{ca}
users:
- name: fake
  user:
    token: {FAKE_TOKEN}
contexts:
- name: fake
  context:
    cluster: fake
    user: fake
    namespace: default
current-context: fake
",
            url = self.url()
        )
    }

    /// Writes [`Self::kubeconfig_yaml`] to `dir/kubeconfig` and returns that path (for
    /// `KUBECONFIG`).
    pub fn kubeconfig(&self, dir: &Path) -> PathBuf {
        let path = dir.join("kubeconfig");
        std::fs::write(&path, self.kubeconfig_yaml()).expect("write kubeconfig");
        path
    }

    /// A `kube::Config` loaded from [`Self::kubeconfig_yaml`] through kube's own kubeconfig
    /// loader (same path as `KUBECONFIG`).
    pub async fn kube_config(&self) -> kube::Config {
        let kubeconfig = kube::config::Kubeconfig::from_yaml(&self.kubeconfig_yaml())
            .expect("parse fake kubeconfig");
        kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .expect("kube config from fake kubeconfig")
    }

    /// A `kube::Client` for this fake (installs the ring provider; needs a tokio runtime).
    pub async fn client(&self) -> kube::Client {
        super::install_crypto_provider();
        kube::Client::try_from(self.kube_config().await).expect("kube client")
    }
}

/// Whether `path` is `prefix` or below it, by whole segments.
fn under(path: &str, prefix: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// What the API server's defaulting and strategies do to an object on write.
fn normalize(kind: &Kind, name: &str, obj: &mut Map<String, Value>) {
    match kind.kind {
        "Secret" => {
            // stringData is write-only: the server merges it into data (winning over data).
            if let Some(Value::Object(string_data)) = obj.remove("stringData") {
                let data = obj
                    .entry("data")
                    .or_insert_with(|| json!({}))
                    .as_object_mut()
                    .expect("Secret data is an object");
                for (k, v) in string_data {
                    let text = v.as_str().expect("stringData values are strings");
                    data.insert(
                        k,
                        json!(base64::engine::general_purpose::STANDARD.encode(text)),
                    );
                }
            }
            obj.entry("type").or_insert_with(|| json!("Opaque"));
        }
        "Namespace" => {
            let metadata = obj["metadata"].as_object_mut().expect("metadata");
            let labels = metadata
                .entry("labels")
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .expect("labels is an object");
            labels.insert("kubernetes.io/metadata.name".into(), json!(name));
            obj.entry("spec")
                .or_insert_with(|| json!({"finalizers": ["kubernetes"]}));
            obj.entry("status")
                .or_insert_with(|| json!({"phase": "Active"}));
        }
        _ => {}
    }
}

/// A version-4-shaped UUID that differs per object and per fake.
fn new_uid(rv: u64, kind: &str, namespace: &str, name: &str) -> String {
    static SALT: AtomicU64 = AtomicU64::new(0);
    let salt = SALT.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let hex = format!(
        "{:x}",
        Sha256::digest(format!("{salt}/{nanos}/{rv}/{kind}/{namespace}/{name}"))
    );
    format!(
        "{}-{}-4{}-8{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    )
}

// ---------------------------------------------------------------------------------------------
// Responses

fn json_response(status: u16, body: &Value) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("cache-control", "no-cache, private")
        .body(Body::from(body.to_string()))
        .unwrap_or_else(|e| panic!("fake apiserver response: {e}"))
}

fn status_object(code: u16, reason: &str, message: &str, details: Option<Value>) -> Value {
    let mut status = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    });
    if let Some(details) = details {
        status["details"] = details;
    }
    status
}

fn status_response(code: u16, reason: &str, message: &str, details: Option<Value>) -> Response {
    json_response(code, &status_object(code, reason, message, details))
}

/// The answer kube-apiserver gives with `code` for reasons other than a missing object.
fn failure(code: u16, target: Option<&Target>) -> Response {
    let (reason, message) = match code {
        400 => (
            "BadRequest",
            "the server rejected our request for an unknown reason".to_string(),
        ),
        401 => ("Unauthorized", "Unauthorized".to_string()),
        403 => ("Forbidden", forbidden_message(target)),
        404 => (
            "NotFound",
            "the server could not find the requested resource".to_string(),
        ),
        405 => (
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource".to_string(),
        ),
        410 => ("Expired", "the resource version is too old".to_string()),
        429 => (
            "TooManyRequests",
            "Too many requests, please try again later.".to_string(),
        ),
        500 => (
            "InternalError",
            "an error on the server (\"\") has prevented the request from succeeding".to_string(),
        ),
        503 => (
            "ServiceUnavailable",
            "the server is currently unable to handle the request".to_string(),
        ),
        504 => (
            "Timeout",
            "the server was unable to return a response in the time allotted, but may still be \
             processing the request"
                .to_string(),
        ),
        _ => (
            "",
            format!("the server responded with the status code {code}"),
        ),
    };
    let details = (code == 429).then(|| json!({"retryAfterSeconds": 1}));
    let mut response = status_response(code, reason, &message, details);
    if code == 429 {
        response
            .headers_mut()
            .insert("retry-after", http::HeaderValue::from_static("1"));
    }
    response
}

fn forbidden_message(target: Option<&Target>) -> String {
    const USER: &str = "system:serviceaccount:pullcheck:pullcheck";
    match target {
        Some(Target::Object {
            kind,
            namespace,
            name,
        }) => {
            let scope = match namespace {
                Some(ns) => format!("in the namespace \"{ns}\""),
                None => "at the cluster scope".to_string(),
            };
            format!(
                "{plural} \"{name}\" is forbidden: User \"{USER}\" cannot get resource \
                 \"{plural}\" in API group \"\" {scope}",
                plural = kind.plural
            )
        }
        Some(Target::Collection { kind, namespace }) => {
            let scope = match namespace {
                Some(ns) => format!("in the namespace \"{ns}\""),
                None => "at the cluster scope".to_string(),
            };
            format!(
                "{plural} is forbidden: User \"{USER}\" cannot list resource \"{plural}\" in API \
                 group \"\" {scope}",
                plural = kind.plural
            )
        }
        None => "forbidden".to_string(),
    }
}

fn not_found(kind: &Kind, name: &str) -> Response {
    status_response(
        404,
        "NotFound",
        &format!("{} \"{name}\" not found", kind.plural),
        Some(json!({"name": name, "kind": kind.plural})),
    )
}

fn bad_request(message: &str) -> Response {
    status_response(400, "BadRequest", message, None)
}

fn expired_status(message: &str) -> Value {
    status_object(410, "Expired", message, None)
}

// ---------------------------------------------------------------------------------------------
// Routing

enum Target {
    Collection {
        kind: &'static Kind,
        namespace: Option<String>,
    },
    Object {
        kind: &'static Kind,
        namespace: Option<String>,
        name: String,
    },
}

fn parse_target(path: &str) -> Option<Target> {
    let rest = path.strip_prefix("/api/v1/")?;
    let segments: Vec<&str> = rest.split('/').collect();
    if segments.iter().any(|s| s.is_empty()) {
        return None;
    }
    match segments.as_slice() {
        ["namespaces", ns, plural] => {
            let kind = kind_by_plural(plural).filter(|k| k.namespaced)?;
            Some(Target::Collection {
                kind,
                namespace: Some(ns.to_string()),
            })
        }
        ["namespaces", ns, plural, name] => {
            let kind = kind_by_plural(plural).filter(|k| k.namespaced)?;
            Some(Target::Object {
                kind,
                namespace: Some(ns.to_string()),
                name: name.to_string(),
            })
        }
        [plural] => Some(Target::Collection {
            kind: kind_by_plural(plural)?,
            namespace: None,
        }),
        [plural, name] => {
            let kind = kind_by_plural(plural).filter(|k| !k.namespaced)?;
            Some(Target::Object {
                kind,
                namespace: None,
                name: name.to_string(),
            })
        }
        _ => None,
    }
}

async fn handle(
    State(inner): State<Arc<Inner>>,
    Extension(recorded): Extension<RecordedRequest>,
) -> Response {
    if inner.stall.load(Ordering::SeqCst) {
        return std::future::pending().await;
    }
    let target = parse_target(&recorded.path);
    if let Some(code) = *lock(&inner.down) {
        return failure(code, target.as_ref());
    }
    let rule = lock(&inner.path_status)
        .iter()
        .find(|(prefix, _)| under(&recorded.path, prefix))
        .map(|(_, code)| *code);
    if let Some(code) = rule {
        return failure(code, target.as_ref());
    }

    let params: HashMap<String, String> = recorded
        .query
        .as_deref()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();

    match (recorded.method.as_str(), recorded.path.as_str()) {
        ("GET", "/version") => json_response(
            200,
            &json!({
                "major": "1", "minor": "33", "gitVersion": "v1.33.0",
                "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
                "buildDate": "2025-04-23T00:00:00Z", "goVersion": "go1.24.2",
                "compiler": "gc", "platform": "linux/amd64"
            }),
        ),
        ("GET", "/api") => json_response(
            200,
            &json!({
                "kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}]
            }),
        ),
        ("GET", "/apis") => json_response(
            200,
            &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": []}),
        ),
        ("GET", "/api/v1") => json_response(200, &resource_list()),
        ("GET", "/healthz" | "/livez" | "/readyz") => Response::builder()
            .status(200)
            .header("content-type", "text/plain; charset=utf-8")
            .body(Body::from("ok"))
            .unwrap_or_else(|e| panic!("fake apiserver response: {e}")),
        ("GET", _) => match target {
            Some(Target::Object {
                kind,
                namespace,
                name,
            }) => get_object(&inner, kind, namespace.as_deref(), &name),
            Some(Target::Collection { kind, namespace }) => {
                let filter = match Filter::parse(kind, namespace, &params) {
                    Ok(filter) => filter,
                    Err(message) => return bad_request(&message),
                };
                if recorded.is_watch() {
                    watch(&inner, kind, filter, &params)
                } else {
                    list(&inner, kind, &filter, &params)
                }
            }
            None => failure(404, None),
        },
        (_, _) if target.is_some() => failure(405, target.as_ref()),
        _ => failure(404, None),
    }
}

fn resource_list() -> Value {
    let resources: Vec<Value> = KINDS
        .iter()
        .map(|k| {
            json!({
                "name": k.plural,
                "singularName": k.kind.to_lowercase(),
                "namespaced": k.namespaced,
                "kind": k.kind,
                "verbs": ["get", "list", "watch"],
            })
        })
        .collect();
    json!({"kind": "APIResourceList", "groupVersion": "v1", "resources": resources})
}

fn get_object(inner: &Inner, kind: &'static Kind, namespace: Option<&str>, name: &str) -> Response {
    let key: Key = (
        kind.kind,
        namespace.unwrap_or_default().to_string(),
        name.to_string(),
    );
    match lock(&inner.store).objects.get(&key) {
        Some(obj) => json_response(200, obj),
        None => not_found(kind, name),
    }
}

/// A LIST item as the real server sends it: typed lists carry no per-item `kind`/`apiVersion`.
fn list_item(obj: &Value) -> Value {
    let mut item = obj.clone();
    if let Some(map) = item.as_object_mut() {
        map.remove("kind");
        map.remove("apiVersion");
    }
    item
}

fn list(
    inner: &Inner,
    kind: &'static Kind,
    filter: &Filter,
    params: &HashMap<String, String>,
) -> Response {
    let limit = match params.get("limit").map(|l| l.parse::<usize>()) {
        None => None,
        Some(Ok(0)) => None,
        Some(Ok(n)) => Some(n),
        Some(Err(_)) => return bad_request("limit: Invalid value: must be a non-negative integer"),
    };
    let mut store = lock(&inner.store);
    let (rv, items) =
        match params.get("continue").filter(|c| !c.is_empty()) {
            Some(token) => match store.continuations.remove(token) {
                Some(continuation) => (continuation.rv, continuation.rest),
                None => return json_response(
                    410,
                    &expired_status(
                        "The provided continue parameter is too old to display a consistent list \
                         result. You can start a new list without the continue parameter.",
                    ),
                ),
            },
            None => {
                let items = store
                    .objects
                    .iter()
                    .filter(|((k, _, _), obj)| *k == kind.kind && filter.matches(obj))
                    .map(|(_, obj)| list_item(obj))
                    .collect();
                (store.rv, items)
            }
        };
    let mut items: Vec<Value> = items;
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if let Some(limit) = limit.filter(|l| *l < items.len()) {
        let rest = items.split_off(limit);
        let token = base64::engine::general_purpose::STANDARD.encode(format!(
            "{{\"v\":\"fake\",\"rv\":{rv},\"n\":{}}}",
            store.next_continuation
        ));
        store.next_continuation += 1;
        metadata["continue"] = json!(token);
        metadata["remainingItemCount"] = json!(rest.len());
        store.continuations.insert(token, Continuation { rv, rest });
    }
    drop(store);
    json_response(
        200,
        &json!({
            "kind": format!("{}List", kind.kind),
            "apiVersion": "v1",
            "metadata": metadata,
            "items": items,
        }),
    )
}

// ---------------------------------------------------------------------------------------------
// Selectors

enum LabelRequirement {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
    NotExists(String),
}

struct FieldRequirement {
    path: String,
    value: String,
    negate: bool,
}

struct Filter {
    kind: &'static Kind,
    namespace: Option<String>,
    labels: Vec<LabelRequirement>,
    fields: Vec<FieldRequirement>,
}

impl Filter {
    /// Equality-based selectors only (`a=b`, `a==b`, `a!=b`, `a`, `!a`); set-based ones are
    /// refused so a test never silently gets a different answer from the real server's.
    fn parse(
        kind: &'static Kind,
        namespace: Option<String>,
        params: &HashMap<String, String>,
    ) -> Result<Filter, String> {
        let mut labels = Vec::new();
        for term in selector_terms(params, "labelSelector") {
            if term.contains('(') || term.contains(' ') {
                return Err(format!(
                    "the fake API server does not implement set-based label selectors: {term:?}"
                ));
            }
            let requirement = match equality(term) {
                Some((k, v, true)) => LabelRequirement::NotEquals(k.to_string(), v.to_string()),
                Some((k, v, false)) => LabelRequirement::Equals(k.to_string(), v.to_string()),
                None => match term.strip_prefix('!') {
                    Some(k) => LabelRequirement::NotExists(k.to_string()),
                    None => LabelRequirement::Exists(term.to_string()),
                },
            };
            labels.push(requirement);
        }
        let mut fields = Vec::new();
        for term in selector_terms(params, "fieldSelector") {
            let Some((path, value, negate)) = equality(term) else {
                return Err(format!(
                    "invalid selector: '{term}'; can't understand '{term}'"
                ));
            };
            let supported = path == "metadata.name"
                || path == "metadata.namespace"
                || kind.fields.contains(&path);
            if !supported {
                return Err(format!("field label not supported: {path}"));
            }
            fields.push(FieldRequirement {
                path: path.to_string(),
                value: value.to_string(),
                negate,
            });
        }
        Ok(Filter {
            kind,
            namespace,
            labels,
            fields,
        })
    }

    fn matches(&self, obj: &Value) -> bool {
        let metadata = &obj["metadata"];
        if let Some(ns) = &self.namespace {
            if metadata["namespace"].as_str() != Some(ns.as_str()) {
                return false;
            }
        }
        let label = |k: &str| metadata["labels"].get(k).and_then(Value::as_str);
        let labels_match = self.labels.iter().all(|r| match r {
            LabelRequirement::Equals(k, v) => label(k) == Some(v.as_str()),
            LabelRequirement::NotEquals(k, v) => label(k) != Some(v.as_str()),
            LabelRequirement::Exists(k) => label(k).is_some(),
            LabelRequirement::NotExists(k) => label(k).is_none(),
        });
        labels_match
            && self
                .fields
                .iter()
                .all(|r| (field_value(self.kind, obj, &r.path) == r.value) != r.negate)
    }
}

/// The comma-separated terms of selector parameter `name` (none when it is absent).
fn selector_terms<'a>(
    params: &'a HashMap<String, String>,
    name: &str,
) -> impl Iterator<Item = &'a str> {
    params
        .get(name)
        .map(String::as_str)
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// `k!=v` -> (k, v, negated); `k==v` and `k=v` -> (k, v, not negated).
fn equality(term: &str) -> Option<(&str, &str, bool)> {
    if let Some((k, v)) = term.split_once("!=") {
        Some((k, v, true))
    } else {
        let (k, v) = term.split_once("==").or_else(|| term.split_once('='))?;
        Some((k, v, false))
    }
}

/// A field as the server's field-selector index sees it: strings as-is, booleans and numbers as
/// text, and an unset `spec.unschedulable` as "false" (the Node field set is built from the Go
/// struct, whose zero value is false).
fn field_value(kind: &Kind, obj: &Value, path: &str) -> String {
    let pointer = format!("/{}", path.replace('.', "/"));
    match obj.pointer(&pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ if kind.kind == "Node" && path == "spec.unschedulable" => "false".to_string(),
        _ => String::new(),
    }
}

// ---------------------------------------------------------------------------------------------
// Watch

fn event_line(event: &str, object: &Value) -> Bytes {
    let mut line = json!({"type": event, "object": object}).to_string();
    line.push('\n');
    Bytes::from(line)
}

fn bookmark_line(kind: &Kind, rv: u64, initial_events_end: bool) -> Bytes {
    let mut metadata = json!({"resourceVersion": rv.to_string(), "creationTimestamp": null});
    if initial_events_end {
        metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    event_line(
        "BOOKMARK",
        &json!({"kind": kind.kind, "apiVersion": "v1", "metadata": metadata}),
    )
}

/// The event a selector-filtered watch sees for `change`, if any.
fn filtered_event(filter: &Filter, change: &Change) -> Option<Bytes> {
    if change.kind != filter.kind.kind {
        return None;
    }
    let now = filter.matches(&change.object);
    let before = change.old.as_ref().map(|old| filter.matches(old));
    let event = match (change.event, before, now) {
        ("MODIFIED", Some(true), true) => "MODIFIED",
        ("MODIFIED", Some(true), false) => "DELETED",
        ("MODIFIED", Some(false), true) => "ADDED",
        ("MODIFIED", _, _) => return None,
        (event, _, true) => event,
        _ => return None,
    };
    Some(event_line(event, &change.object))
}

fn watch(
    inner: &Arc<Inner>,
    kind: &'static Kind,
    filter: Filter,
    params: &HashMap<String, String>,
) -> Response {
    let bookmarks = params.get("allowWatchBookmarks").map(String::as_str) == Some("true");
    let send_initial = params.get("sendInitialEvents").map(String::as_str) == Some("true");
    let timeout = match params.get("timeoutSeconds").map(|t| t.parse::<u64>()) {
        None => None,
        Some(Ok(secs)) => Some(Duration::from_secs(secs)),
        Some(Err(_)) => return bad_request("timeoutSeconds: Invalid value: must be an integer"),
    };
    let requested = match params.get("resourceVersion").map(String::as_str) {
        None | Some("") => None,
        Some(rv) => match rv.parse::<u64>() {
            Ok(rv) => Some(rv),
            Err(_) => {
                return bad_request(&format!(
                    "resourceVersion: Invalid value: \"{rv}\": strconv.ParseUint: parsing \
                     \"{rv}\": invalid syntax"
                ))
            }
        },
    };

    let store = lock(&inner.store);
    let mut initial = Vec::new();
    let cursor = match requested {
        // Unset or "0" ("any"), or a streaming list: the current state as synthetic ADDED events.
        None | Some(0) => None,
        Some(_) if send_initial => None,
        // The watch cache answers a compacted resourceVersion with a 200 stream whose only event
        // is an ERROR carrying 410 Expired; this is what sends a reflector back to LIST.
        Some(rv) if rv < store.compacted => {
            let message = format!("too old resource version: {rv} ({})", store.compacted + 1);
            initial.push(event_line("ERROR", &expired_status(&message)));
            drop(store);
            return stream_response(inner, initial, None);
        }
        Some(rv) => Some(rv),
    };
    let cursor = cursor.unwrap_or_else(|| {
        initial.extend(
            store
                .objects
                .iter()
                .filter(|((k, _, _), obj)| *k == kind.kind && filter.matches(obj))
                .map(|(_, obj)| event_line("ADDED", obj)),
        );
        if send_initial && bookmarks {
            initial.push(bookmark_line(kind, store.rv, true));
        }
        store.rv
    });
    drop(store);

    let task = WatchTask {
        inner: inner.clone(),
        kind,
        filter,
        cursor,
        bookmarks,
        timeout,
        epoch: inner.watch_epoch.load(Ordering::SeqCst),
    };
    stream_response(inner, initial, Some(task))
}

fn stream_response(inner: &Arc<Inner>, initial: Vec<Bytes>, task: Option<WatchTask>) -> Response {
    let (tx, mut rx) = mpsc::channel::<Bytes>(64);
    let guard = ActiveWatch::new(inner.clone());
    tokio::spawn(async move {
        let _guard = guard;
        for line in initial {
            if tx.send(line).await.is_err() {
                return;
            }
        }
        if let Some(task) = task {
            task.run(tx).await;
        }
    });
    let body = futures::stream::poll_fn(move |cx| {
        rx.poll_recv(cx)
            .map(|line| line.map(Ok::<Bytes, Infallible>))
    });
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .header("cache-control", "no-cache, private")
        .body(Body::from_stream(body))
        .unwrap_or_else(|e| panic!("fake apiserver response: {e}"))
}

struct ActiveWatch(Arc<Inner>);

impl ActiveWatch {
    fn new(inner: Arc<Inner>) -> ActiveWatch {
        inner.active_watches.fetch_add(1, Ordering::SeqCst);
        ActiveWatch(inner)
    }
}

impl Drop for ActiveWatch {
    fn drop(&mut self) {
        self.0.active_watches.fetch_sub(1, Ordering::SeqCst);
    }
}

struct WatchTask {
    inner: Arc<Inner>,
    kind: &'static Kind,
    filter: Filter,
    /// Every change up to this resourceVersion has been considered for this stream.
    cursor: u64,
    bookmarks: bool,
    timeout: Option<Duration>,
    epoch: u64,
}

impl WatchTask {
    async fn run(mut self, tx: mpsc::Sender<Bytes>) {
        let far = Instant::now() + Duration::from_secs(86_400);
        let deadline = self.timeout.map_or(far, |t| Instant::now() + t);
        let interval = *lock(&self.inner.bookmark_interval);
        let mut next_bookmark = Instant::now() + interval;
        loop {
            let notified = self.inner.changed.notified();
            tokio::pin!(notified);
            // Registered before looking at the history, so a change made in between still wakes us.
            notified.as_mut().enable();
            if self.inner.watch_epoch.load(Ordering::SeqCst) != self.epoch {
                return;
            }
            let (lines, expired) = {
                let store = lock(&self.inner.store);
                if self.cursor < store.compacted {
                    // Changes this stream had not sent yet were compacted away.
                    let message = format!(
                        "too old resource version: {} ({})",
                        self.cursor,
                        store.compacted + 1
                    );
                    (vec![event_line("ERROR", &expired_status(&message))], true)
                } else {
                    let start = store.history.partition_point(|c| c.rv <= self.cursor);
                    let lines: Vec<Bytes> = store.history[start..]
                        .iter()
                        .filter_map(|c| filtered_event(&self.filter, c))
                        .collect();
                    self.cursor = store.rv;
                    (lines, false)
                }
            };
            for line in lines {
                if tx.send(line).await.is_err() {
                    return;
                }
            }
            if expired {
                return;
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = tx.closed() => return,
                _ = tokio::time::sleep_until(deadline) => return,
                _ = tokio::time::sleep_until(next_bookmark), if self.bookmarks => {
                    if tx.send(bookmark_line(self.kind, self.cursor, false)).await.is_err() {
                        return;
                    }
                    next_bookmark = Instant::now() + interval;
                }
            }
        }
    }
}
