//! The fake kube-apiserver answers the real `kube` client and `kube::runtime` watchers the way
//! kube-apiserver does: GET with 404 Status, LIST with resourceVersion, WATCH with replay, live
//! events, bookmarks and 410 on a compacted resourceVersion, and outages on demand.

use crate::common;

use std::collections::BTreeSet;
use std::time::Duration;

use crate::common::apiserver::{FakeApiServer, FAKE_TOKEN};
use crate::common::eventually;
use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::core::v1::{Namespace, Node, Secret, ServiceAccount};
use kube::api::{Api, ListParams, WatchEvent, WatchParams};
use kube::runtime::utils::Backoff;
use kube::runtime::{reflector, watcher, WatchStreamExt as _};
use serde_json::json;
use tokio::task::JoinHandle;

fn secret(namespace: &str, name: &str) -> serde_json::Value {
    json!({
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "type": "kubernetes.io/dockerconfigjson",
        "stringData": {".dockerconfigjson": "{\"auths\":{}}"},
    })
}

fn node(name: &str, arch: &str) -> serde_json::Value {
    json!({
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/arch": arch, "kubernetes.io/os": "linux"}},
        "status": {"nodeInfo": {"architecture": arch, "operatingSystem": "linux"}},
    })
}

fn api_status(error: kube::Error) -> Box<kube::core::Status> {
    match error {
        kube::Error::Api(status) => status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// A watcher backoff short enough for tests (kube's default starts at 800 ms).
struct QuickBackoff;

impl Iterator for QuickBackoff {
    type Item = Duration;
    fn next(&mut self) -> Option<Duration> {
        Some(Duration::from_millis(20))
    }
}

impl Backoff for QuickBackoff {
    fn reset(&mut self) {}
}

/// A reflector over every Node (with [`QuickBackoff`]), returned once its first list is in the
/// store; it runs until the task is aborted.
async fn node_reflector(fake: &FakeApiServer) -> (reflector::Store<Node>, JoinHandle<()>) {
    let nodes: Api<Node> = Api::all(fake.client().await);
    let (store, writer) = reflector::store::<Node>();
    let stream = reflector(writer, watcher(nodes, watcher::Config::default()))
        .backoff(QuickBackoff)
        .applied_objects();
    let task = tokio::spawn(stream.for_each(|_| async {}));
    tokio::time::timeout(Duration::from_secs(5), store.wait_until_ready())
        .await
        .expect("initial list within 5 s")
        .expect("writer alive");
    (store, task)
}

#[tokio::test]
async fn get_returns_stored_secret_with_server_set_metadata() {
    let fake = FakeApiServer::start();
    fake.put(secret("team-a", "regcred"));
    let client = fake.client().await;

    let got = Api::<Secret>::namespaced(client, "team-a")
        .get("regcred")
        .await
        .expect("get secret");

    let data = got.data.expect("stringData folded into data");
    assert_eq!(data[".dockerconfigjson"].0, b"{\"auths\":{}}");
    assert!(got.string_data.is_none());
    assert_eq!(got.type_.as_deref(), Some("kubernetes.io/dockerconfigjson"));
    let rv: u64 = got
        .metadata
        .resource_version
        .expect("rv")
        .parse()
        .expect("numeric rv");
    assert_eq!(rv, fake.resource_version());
    assert_eq!(got.metadata.uid.expect("uid").len(), 36);
    assert!(got.metadata.creation_timestamp.is_some());
    assert_eq!(
        fake.count("GET", "/api/v1/namespaces/team-a/secrets/regcred"),
        1
    );
}

#[tokio::test]
async fn missing_secret_is_kube_not_found_with_apiserver_message() {
    let fake = FakeApiServer::start();
    fake.put(secret("team-a", "regcred2"));
    let client = fake.client().await;

    let err = Api::<Secret>::namespaced(client, "team-a")
        .get("regcred")
        .await
        .expect_err("regcred does not exist");

    let status = api_status(err);
    assert_eq!(status.code, 404);
    assert_eq!(status.reason, "NotFound");
    assert_eq!(status.message, "secrets \"regcred\" not found");
    let details = status.details.expect("details");
    assert_eq!(
        (details.name.as_str(), details.kind.as_str()),
        ("regcred", "secrets")
    );
    // Segment-wise prefix: the request for regcred is not counted under regcred2.
    assert_eq!(
        fake.count("GET", "/api/v1/namespaces/team-a/secrets/regcred"),
        1
    );
    assert_eq!(
        fake.count("GET", "/api/v1/namespaces/team-a/secrets/regcred2"),
        0
    );
}

#[tokio::test]
async fn update_keeps_uid_and_creation_and_bumps_resource_version() {
    let fake = FakeApiServer::start();
    let first = fake.put(json!({"kind": "ServiceAccount", "metadata": {"name": "builder"}}));
    let second = fake.put(json!({
        "kind": "ServiceAccount",
        "metadata": {"name": "builder"},
        "imagePullSecrets": [{"name": "regcred"}],
    }));
    let client = fake.client().await;

    let got = Api::<ServiceAccount>::default_namespaced(client)
        .get("builder")
        .await
        .expect("get service account");

    assert_eq!(got.metadata.namespace.as_deref(), Some("default"));
    assert_eq!(
        got.metadata.uid.as_deref(),
        first["metadata"]["uid"].as_str()
    );
    assert_eq!(
        got.metadata.resource_version.as_deref(),
        second["metadata"]["resourceVersion"].as_str()
    );
    assert_ne!(
        first["metadata"]["resourceVersion"],
        second["metadata"]["resourceVersion"]
    );
    let pull_secrets = got.image_pull_secrets.expect("imagePullSecrets");
    assert_eq!(pull_secrets[0].name, "regcred");
}

#[tokio::test]
async fn list_nodes_returns_items_resource_version_and_honors_selectors() {
    let fake = FakeApiServer::start();
    fake.put(node("amd-1", "amd64"));
    fake.put(node("arm-1", "arm64"));
    fake.put(node("arm-2", "arm64"));
    let nodes: Api<Node> = Api::all(fake.client().await);

    let all = nodes
        .list(&ListParams::default())
        .await
        .expect("list nodes");
    let names: Vec<_> = all
        .items
        .iter()
        .map(|n| n.metadata.name.clone().unwrap_or_default())
        .collect();
    assert_eq!(names, ["amd-1", "arm-1", "arm-2"]);
    assert_eq!(
        all.metadata.resource_version,
        Some(fake.resource_version().to_string())
    );
    assert_eq!(all.types.kind, "NodeList");

    let arm = nodes
        .list(&ListParams::default().labels("kubernetes.io/arch=arm64"))
        .await
        .expect("list arm nodes");
    assert_eq!(arm.items.len(), 2);

    let one = nodes
        .list(&ListParams::default().fields("metadata.name=arm-2"))
        .await
        .expect("list by name");
    assert_eq!(one.items.len(), 1);
    assert_eq!(one.items[0].metadata.name.as_deref(), Some("arm-2"));

    let err = nodes
        .list(&ListParams::default().fields("spec.nope=x"))
        .await
        .expect_err("unsupported field selector");
    let status = api_status(err);
    assert_eq!((status.code, status.reason.as_str()), (400, "BadRequest"));
    assert_eq!(status.message, "field label not supported: spec.nope");
}

#[tokio::test]
async fn list_pages_with_limit_and_continue() {
    let fake = FakeApiServer::start();
    for name in ["a", "b", "c"] {
        fake.put(secret("ns1", name));
    }
    let secrets: Api<Secret> = Api::namespaced(fake.client().await, "ns1");

    let first = secrets
        .list(&ListParams::default().limit(2))
        .await
        .expect("page 1");
    assert_eq!(first.items.len(), 2);
    let token = first.metadata.continue_.clone().expect("continue token");
    // A change between pages must not show up: pages come from one snapshot.
    fake.put(secret("ns1", "d"));
    let second = secrets
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
        .expect("page 2");
    let names: Vec<_> = second
        .items
        .iter()
        .map(|s| s.metadata.name.clone().unwrap_or_default())
        .collect();
    assert_eq!(names, ["c"]);
    assert!(second.metadata.continue_.is_none());
    assert_eq!(
        second.metadata.resource_version,
        first.metadata.resource_version
    );
}

#[tokio::test]
async fn cluster_wide_list_spans_namespaces_and_namespaced_list_does_not() {
    let fake = FakeApiServer::start();
    fake.put(secret("ns1", "s"));
    fake.put(secret("ns2", "s"));
    fake.put(json!({"kind": "Namespace", "metadata": {"name": "ns1"}}));
    let client = fake.client().await;

    let all = Api::<Secret>::all(client.clone())
        .list(&ListParams::default())
        .await
        .expect("list all secrets");
    let in_ns2 = Api::<Secret>::namespaced(client.clone(), "ns2")
        .list(&ListParams::default())
        .await
        .expect("list secrets in ns2");
    let ns = Api::<Namespace>::all(client)
        .get("ns1")
        .await
        .expect("get namespace");

    assert_eq!(all.items.len(), 2);
    assert_eq!(in_ns2.items.len(), 1);
    assert_eq!(in_ns2.items[0].metadata.namespace.as_deref(), Some("ns2"));
    assert_eq!(
        ns.metadata.labels.expect("labels")["kubernetes.io/metadata.name"],
        "ns1"
    );
    assert_eq!(fake.count_lists("/api/v1/secrets"), 1);
    assert_eq!(fake.count_lists("/api/v1/namespaces/ns2/secrets"), 1);
}

#[tokio::test]
async fn reflector_lists_then_sees_add_modify_delete_within_a_second() {
    let fake = FakeApiServer::start();
    fake.put(node("n1", "amd64"));
    fake.put(node("n2", "arm64"));
    let (store, task) = node_reflector(&fake).await;

    assert_eq!(store.len(), 2);
    let list_rv = fake.resource_version().to_string();
    assert!(eventually(Duration::from_secs(1), async || fake.active_watches() == 1).await);
    let watch = fake
        .requests()
        .into_iter()
        .find(|r| r.is_watch())
        .expect("a watch request");
    assert_eq!(watch.path, "/api/v1/nodes");
    assert_eq!(watch.param("resourceVersion"), Some(list_rv));
    assert_eq!(fake.count_lists("/api/v1/nodes"), 1);

    let names = || -> BTreeSet<String> {
        store
            .state()
            .iter()
            .map(|n| n.metadata.name.clone().unwrap_or_default())
            .collect()
    };
    fake.put(node("n3", "arm64"));
    assert!(eventually(Duration::from_secs(1), async || names().contains("n3")).await);

    fake.put(node("n1", "arm64"));
    let arch_of_n1 = || {
        store
            .state()
            .iter()
            .find(|n| n.metadata.name.as_deref() == Some("n1"))
            .and_then(|n| {
                n.metadata
                    .labels
                    .as_ref()?
                    .get("kubernetes.io/arch")
                    .cloned()
            })
    };
    assert!(
        eventually(Duration::from_secs(1), async || arch_of_n1().as_deref()
            == Some("arm64"))
        .await
    );

    fake.delete("Node", "", "n2");
    assert!(eventually(Duration::from_secs(1), async || !names().contains("n2")).await);
    assert_eq!(
        names(),
        BTreeSet::from(["n1".to_string(), "n3".to_string()])
    );
    // Still one LIST: every change came over the open watch.
    assert_eq!(fake.count_lists("/api/v1/nodes"), 1);
    task.abort();
}

#[tokio::test]
async fn watch_replays_changes_after_resource_version_and_sends_bookmarks() {
    let fake = FakeApiServer::start();
    fake.set_bookmark_interval(Duration::from_millis(50));
    fake.put(node("n1", "amd64"));
    let from = fake.resource_version().to_string();
    fake.put(node("n2", "amd64"));
    fake.put(node("n1", "arm64"));
    fake.delete("Node", "", "n2");
    let nodes: Api<Node> = Api::all(fake.client().await);

    let mut events = nodes
        .watch(&WatchParams::default().timeout(10), &from)
        .await
        .expect("watch")
        .boxed();
    let mut seen = Vec::new();
    let bookmark_rv = loop {
        let event = tokio::time::timeout(Duration::from_secs(2), events.try_next())
            .await
            .expect("events keep coming (a bookmark at the latest)")
            .expect("a decodable event")
            .expect("the stream stays open");
        match event {
            WatchEvent::Added(n) => {
                seen.push(format!("ADDED {}", n.metadata.name.unwrap_or_default()))
            }
            WatchEvent::Modified(n) => {
                seen.push(format!("MODIFIED {}", n.metadata.name.unwrap_or_default()))
            }
            WatchEvent::Deleted(n) => {
                seen.push(format!("DELETED {}", n.metadata.name.unwrap_or_default()))
            }
            WatchEvent::Bookmark(b) => break b.metadata.resource_version,
            WatchEvent::Error(e) => panic!("unexpected error event {e:?}"),
        }
    };

    assert_eq!(seen, ["ADDED n2", "MODIFIED n1", "DELETED n2"]);
    assert_eq!(bookmark_rv, fake.resource_version().to_string());
}

#[tokio::test]
async fn watch_from_compacted_resource_version_gets_410_expired() {
    let fake = FakeApiServer::start();
    fake.put(node("n1", "amd64"));
    let old = fake.resource_version().to_string();
    fake.put(node("n2", "amd64"));
    fake.compact();
    let nodes: Api<Node> = Api::all(fake.client().await);

    let mut events = nodes
        .watch(&WatchParams::default(), &old)
        .await
        .expect("watch request itself succeeds")
        .boxed();
    let first = tokio::time::timeout(Duration::from_secs(2), events.try_next())
        .await
        .expect("an event in time")
        .expect("a decodable event")
        .expect("one event");

    match first {
        WatchEvent::Error(status) => {
            assert_eq!((status.code, status.reason.as_str()), (410, "Expired"));
            assert!(status.message.starts_with("too old resource version"));
        }
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }
}

#[tokio::test]
async fn reflector_relists_after_outage_when_its_resource_version_was_compacted() {
    let fake = FakeApiServer::start();
    fake.put(node("n1", "amd64"));
    let (store, task) = node_reflector(&fake).await;
    assert!(eventually(Duration::from_secs(1), async || fake.active_watches() == 1).await);

    // While the watch is cut and re-watches fail, a node arrives and history is compacted, so
    // the reflector's resourceVersion is too old when the API comes back.
    fake.set_down(Some(503));
    assert!(eventually(Duration::from_secs(1), async || fake.active_watches() == 0).await);
    fake.put(node("n2", "arm64"));
    fake.compact();
    fake.set_down(None);

    let has_n2 = || {
        store
            .state()
            .iter()
            .any(|n| n.metadata.name.as_deref() == Some("n2"))
    };
    assert!(eventually(Duration::from_secs(3), async || has_n2()).await);
    assert_eq!(
        fake.count_lists("/api/v1/nodes"),
        2,
        "a second LIST after the 410"
    );
    task.abort();
}

/// A client without kube's default retry layer (429/503/504 retried up to 15 times), so a 503
/// surfaces at once.
async fn client_without_retry(fake: &FakeApiServer) -> kube::Client {
    let mut config = fake.kube_config().await;
    config.default_retry = false;
    kube::Client::try_from(config).expect("kube client")
}

#[tokio::test]
async fn down_server_fails_with_503_and_recovers() {
    let fake = FakeApiServer::start();
    fake.put(secret("default", "regcred"));
    let secrets: Api<Secret> = Api::default_namespaced(client_without_retry(&fake).await);

    fake.set_down(Some(503));
    let status = api_status(secrets.get("regcred").await.expect_err("server is down"));
    assert_eq!(
        (status.code, status.reason.as_str()),
        (503, "ServiceUnavailable")
    );
    assert_eq!(
        fake.count("GET", "/api/v1/namespaces/default/secrets/regcred"),
        1
    );

    fake.set_down(None);
    let got = secrets.get("regcred").await.expect("server is back");
    assert_eq!(got.metadata.name.as_deref(), Some("regcred"));
}

#[tokio::test]
async fn default_kube_client_retries_a_short_503_outage_by_itself() {
    let fake = FakeApiServer::start();
    fake.put(secret("default", "regcred"));
    let secrets: Api<Secret> = Api::default_namespaced(fake.client().await);
    fake.set_down(Some(503));

    let pending = tokio::spawn(async move { secrets.get("regcred").await });
    let path = "/api/v1/namespaces/default/secrets/regcred";
    assert!(
        eventually(Duration::from_secs(2), async || fake.count("GET", path)
            >= 2)
        .await
    );
    fake.set_down(None);
    let got = tokio::time::timeout(Duration::from_secs(5), pending)
        .await
        .expect("retried within 5 s")
        .expect("task")
        .expect("get succeeds after the outage");

    assert_eq!(got.metadata.name.as_deref(), Some("regcred"));
    assert!(fake.count("GET", path) >= 3);
}

#[tokio::test]
async fn path_status_gives_rbac_forbidden_for_that_path_only() {
    let fake = FakeApiServer::start();
    fake.put(secret("default", "regcred"));
    fake.put(secret("default", "other"));
    fake.set_path_status("/api/v1/namespaces/default/secrets/regcred", Some(403));
    let secrets: Api<Secret> = Api::default_namespaced(fake.client().await);

    let status = api_status(secrets.get("regcred").await.expect_err("forbidden"));
    assert_eq!((status.code, status.reason.as_str()), (403, "Forbidden"));
    assert!(
        status
            .message
            .starts_with("secrets \"regcred\" is forbidden: User "),
        "{}",
        status.message
    );
    secrets.get("other").await.expect("other path unaffected");
}

#[tokio::test]
async fn stalled_server_makes_get_time_out() {
    let fake = FakeApiServer::start();
    fake.put(secret("default", "regcred"));
    let secrets: Api<Secret> = Api::default_namespaced(fake.client().await);
    fake.set_stall(true);

    let outcome = tokio::time::timeout(Duration::from_millis(300), secrets.get("regcred")).await;

    assert!(outcome.is_err(), "a stalled get must not complete");
    assert_eq!(
        fake.count("GET", "/api/v1/namespaces/default/secrets/regcred"),
        1
    );
    fake.set_stall(false);
    secrets
        .get("regcred")
        .await
        .expect("answers again once unstalled");
}

#[tokio::test]
async fn dropped_server_is_unreachable() {
    let fake = FakeApiServer::start();
    let client = fake.client().await;
    drop(fake);

    let err = tokio::time::timeout(
        Duration::from_secs(5),
        Api::<Secret>::default_namespaced(client).get("regcred"),
    )
    .await
    .expect("connection refused quickly")
    .expect_err("nothing listens");

    assert!(
        !matches!(err, kube::Error::Api(_)),
        "transport error, got {err:?}"
    );
}

#[tokio::test]
async fn kubeconfig_file_over_https_with_test_ca_reaches_the_fake_with_token() {
    common::install_crypto_provider();
    let fake = FakeApiServer::start_https();
    fake.put(secret("default", "regcred"));
    let dir = tempfile::tempdir().expect("temp dir");
    let path = fake.kubeconfig(dir.path());

    let kubeconfig = kube::config::Kubeconfig::read_from(&path).expect("read kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("config");
    assert_eq!(config.default_namespace, "default");
    let client = kube::Client::try_from(config).expect("client");
    let got = Api::<Secret>::default_namespaced(client)
        .get("regcred")
        .await
        .expect("get over HTTPS");

    assert_eq!(got.metadata.name.as_deref(), Some("regcred"));
    let request = fake.requests().pop().expect("one request");
    assert_eq!(
        request.header("authorization"),
        Some(format!("Bearer {FAKE_TOKEN}").as_str())
    );
}
