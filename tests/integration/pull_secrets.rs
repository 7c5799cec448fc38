//! Pull secrets end to end in process: AdmissionReviews through `Admission::review`, secrets and
//! service accounts served by the fake API server in Kubernetes' wire format, images on a real
//! registry with htpasswd auth.

use crate::common::apiserver::FakeApiServer;
use crate::common::inprocess::{self, check};
use crate::common::review::Workload;
use crate::common::{Fixtures, RegistryAuth, TestRegistry};
use base64::Engine as _;
use pullcheck::admission::Admission;
use pullcheck::credentials::cluster::{ClusterReader, ClusterSettings};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const USER: &str = "alice";
const PASSWORD: &str = "wonderland";

struct World {
    registry: TestRegistry,
    api: FakeApiServer,
}

impl World {
    async fn start() -> World {
        let registry = TestRegistry::start(RegistryAuth::htpasswd(&[(USER, PASSWORD)])).await;
        Fixtures::seed(&registry).await;
        World {
            registry,
            api: FakeApiServer::start(),
        }
    }

    async fn checker(&self) -> Admission {
        let mut config = self.api.kube_config().await;
        config.default_retry = false;
        let client = kube::Client::try_from(config).expect("kube client");
        inprocess::admission(
            inprocess::engine(&self.registry, Duration::from_secs(3)).with_cluster(
                ClusterReader::new(
                    client,
                    ClusterSettings {
                        request_timeout: Duration::from_millis(500),
                        ..ClusterSettings::default()
                    },
                ),
            ),
        )
    }

    fn private_image(&self) -> String {
        self.registry.image(Fixtures::PRIVATE, "v1")
    }

    /// A kubernetes.io/dockerconfigjson secret for `key` as `kubectl create secret docker-registry` makes it.
    fn put_pull_secret(&self, namespace: &str, name: &str, key: &str, user: &str, password: &str) {
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        let config =
            json!({"auths": {key: {"username": user, "password": password, "auth": auth}}});
        self.put_secret(
            namespace,
            name,
            "kubernetes.io/dockerconfigjson",
            ".dockerconfigjson",
            config.to_string().as_bytes(),
        );
    }

    fn put_secret(&self, namespace: &str, name: &str, type_: &str, key: &str, payload: &[u8]) {
        let data = base64::engine::general_purpose::STANDARD.encode(payload);
        self.api.put(json!({
            "apiVersion": "v1", "kind": "Secret", "type": type_,
            "metadata": {"name": name, "namespace": namespace},
            "data": {key: data},
        }));
    }

    fn put_service_account(&self, namespace: &str, name: &str, secrets: &[&str]) {
        let refs: Vec<Value> = secrets.iter().map(|s| json!({"name": s})).collect();
        self.api.put(json!({
            "apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": name, "namespace": namespace},
            "imagePullSecrets": refs,
        }));
    }
}

fn pod_review(namespace: &str, images: &[&str], secrets: &[&str]) -> Vec<u8> {
    let containers: Vec<Value> = images
        .iter()
        .enumerate()
        .map(|(i, image)| json!({"name": format!("c{i}"), "image": image, "imagePullPolicy": "IfNotPresent"}))
        .collect();
    let refs: Vec<Value> = secrets.iter().map(|s| json!({"name": s})).collect();
    inprocess::review(
        Workload::Pod,
        namespace,
        json!({"containers": containers, "imagePullSecrets": refs, "serviceAccountName": "default"}),
    )
}

fn deployment_review(
    namespace: &str,
    image: &str,
    account: Option<&str>,
    secrets: &[&str],
) -> Vec<u8> {
    let mut spec =
        json!({"containers": [{"name": "app", "image": image, "imagePullPolicy": "IfNotPresent"}]});
    if let Some(a) = account {
        spec["serviceAccountName"] = json!(a);
    }
    if !secrets.is_empty() {
        spec["imagePullSecrets"] =
            Value::Array(secrets.iter().map(|s| json!({"name": s})).collect());
    }
    inprocess::review(Workload::Deployment, namespace, spec)
}

#[tokio::test]
async fn a_secret_in_one_namespace_never_answers_for_another() {
    let world = World::start().await;
    world.put_pull_secret("team-a", "regcred", world.registry.addr(), USER, PASSWORD);
    let image = world.private_image();

    // Warm: A first, then B right after A's answer was cached.
    let checker = world.checker().await;
    let a = check(&checker, pod_review("team-a", &[&image], &["regcred"])).await;
    assert!(a.allowed, "{}", a.message);
    assert!(a.audit.contains("secret team-a/regcred"), "{}", a.audit);
    let b = check(&checker, pod_review("team-b", &[&image], &["regcred"])).await;
    assert!(
        !b.allowed,
        "namespace B must not borrow A's secret or A's cached answer"
    );
    assert!(b.message.contains("unauthorized"), "{}", b.message);
    assert!(
        b.message
            .contains(r#"the secret "regcred" it references does not exist in namespace "team-b""#),
        "{}",
        b.message
    );
    assert!(
        b.warnings
            .iter()
            .any(|w| w.contains("secrets do not cross namespaces")),
        "{:?}",
        b.warnings
    );

    // Cold: B first.
    let checker = world.checker().await;
    let b = check(&checker, pod_review("team-b", &[&image], &[])).await;
    assert!(!b.allowed);
    let a = check(&checker, pod_review("team-a", &[&image], &["regcred"])).await;
    assert!(a.allowed, "{}", a.message);
}

#[tokio::test]
async fn templates_use_their_service_accounts_secrets_and_never_merge() {
    let world = World::start().await;
    world.put_pull_secret("prod", "regcred", world.registry.addr(), USER, PASSWORD);
    world.put_service_account("prod", "builder", &["regcred"]);
    let checker = world.checker().await;
    let image = world.private_image();

    let via_account = check(
        &checker,
        deployment_review("prod", &image, Some("builder"), &[]),
    )
    .await;
    assert!(via_account.allowed, "{}", via_account.message);

    // The template lists its own secret: the account's are not added (the plugin replaces).
    let own = check(
        &checker,
        deployment_review("prod", &image, Some("builder"), &["other"]),
    )
    .await;
    assert!(!own.allowed);
    assert!(
        own.warnings
            .iter()
            .any(|w| w.contains(r#""other""#) && w.contains("does not exist")),
        "{:?}",
        own.warnings
    );

    // `default` when no account is named, and it has no secrets here.
    world.put_service_account("prod", "default", &[]);
    let default = check(&checker, deployment_review("prod", &image, None, &[])).await;
    assert!(!default.allowed, "{}", default.message);

    // A missing account is named.
    let missing = check(
        &checker,
        deployment_review("prod", &image, Some("ghost"), &[]),
    )
    .await;
    assert!(
        missing
            .warnings
            .iter()
            .any(|w| w.contains(r#"service account "ghost" does not exist"#)),
        "{:?}",
        missing.warnings
    );
}

#[tokio::test]
async fn names_a_key_whose_port_does_not_match_the_image() {
    let world = World::start().await;
    // The image is pulled from 127.0.0.1:PORT; the secret's key has no port.
    world.put_pull_secret("prod", "regcred", "127.0.0.1", USER, PASSWORD);
    let checker = world.checker().await;
    let v = check(
        &checker,
        pod_review("prod", &[&world.private_image()], &["regcred"]),
    )
    .await;
    assert!(!v.allowed);
    let want = format!(
        "secret prod/regcred has credentials for 127.0.0.1 but the image is pulled from {}",
        world.registry.addr()
    );
    assert!(v.message.contains(&want), "{}", v.message);
    assert!(v.message.contains("port"), "{}", v.message);
}

#[tokio::test]
async fn rejected_credentials_name_their_secret_and_every_match_is_tried_in_order() {
    let world = World::start().await;
    let addr = world.registry.addr().to_string();
    world.put_pull_secret("prod", "stale", &addr, USER, "old-password");
    world.put_pull_secret("prod", "fresh", &addr, USER, PASSWORD);
    let checker = world.checker().await;
    let image = world.private_image();

    let stale_only = check(&checker, pod_review("prod", &[&image], &["stale"])).await;
    assert!(!stale_only.allowed);
    assert!(
        stale_only
            .message
            .contains("rejected the credentials (credentials from secret prod/stale)"),
        "{}",
        stale_only.message
    );

    // Both match the same key: the kubelet tries them in pod order and the first success wins.
    let both = check(&checker, pod_review("prod", &[&image], &["stale", "fresh"])).await;
    assert!(both.allowed, "{}", both.message);
    assert!(both.audit.contains("secret prod/fresh"), "{}", both.audit);
}

#[tokio::test]
async fn opaque_secrets_are_ignored_and_malformed_ones_fail_every_image() {
    let world = World::start().await;
    let open = TestRegistry::start(RegistryAuth::None).await;
    Fixtures::seed(&open).await;
    let auth = json!({"auths": {world.registry.addr(): {"auth": base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))}}});
    world.put_secret(
        "prod",
        "opaque",
        "Opaque",
        ".dockerconfigjson",
        auth.to_string().as_bytes(),
    );
    // `auth` without a colon: the kubelet's keyring cannot be built at all.
    let broken = json!({"auths": {"ghcr.io": {"auth": base64::engine::general_purpose::STANDARD.encode("no-colon")}}});
    world.put_secret(
        "prod",
        "broken",
        "kubernetes.io/dockerconfigjson",
        ".dockerconfigjson",
        broken.to_string().as_bytes(),
    );
    let checker = world.checker().await;

    let ignored = check(
        &checker,
        pod_review("prod", &[&world.private_image()], &["opaque"]),
    )
    .await;
    assert!(!ignored.allowed);
    assert!(
        ignored
            .warnings
            .iter()
            .any(|w| w.contains(r#"the secret "opaque""#) && w.contains("not a pull secret")),
        "{:?}",
        ignored.warnings
    );

    // Even an image on an open registry fails: the kubelet fails the whole pod.
    let public = open.image(Fixtures::APP, "v1.4.1");
    let v = check(&checker, pod_review("prod", &[&public], &["broken"])).await;
    assert!(!v.allowed);
    assert!(
        v.message
            .contains(r#"pull secret "broken" cannot be parsed"#),
        "{}",
        v.message
    );
    assert!(
        v.message.contains("every image pull of this pod"),
        "{}",
        v.message
    );
    // Said once for the pod, however many containers it has.
    let other = open.image(Fixtures::APP, "v1.5.0");
    let v = check(
        &checker,
        pod_review("prod", &[&public, &other], &["broken"]),
    )
    .await;
    assert!(!v.allowed);
    assert_eq!(
        v.message.matches("cannot be parsed").count(),
        1,
        "{}",
        v.message
    );
}

#[tokio::test]
async fn secrets_are_read_once_not_per_review() {
    let world = World::start().await;
    world.put_pull_secret("prod", "regcred", world.registry.addr(), USER, PASSWORD);
    let checker = world.checker().await;
    world.api.clear_requests();
    for _ in 0..5 {
        let v = check(
            &checker,
            pod_review("prod", &[&world.private_image()], &["regcred"]),
        )
        .await;
        assert!(v.allowed, "{}", v.message);
    }
    assert_eq!(
        world
            .api
            .count("GET", "/api/v1/namespaces/prod/secrets/regcred"),
        1
    );
}

#[tokio::test]
async fn an_unavailable_api_server_is_could_not_tell_within_the_budget() {
    let world = World::start().await;
    let checker = world.checker().await;
    let image = world.private_image();

    world.api.set_down(Some(503));
    let started = Instant::now();
    let down = check(&checker, pod_review("prod", &[&image], &["regcred"])).await;
    assert!(
        down.allowed,
        "could-not-tell admits by default: {}",
        down.message
    );
    assert!(
        down.warnings.iter().any(
            |w| w.contains("could not tell which pull credentials apply") && w.contains("503")
        ),
        "{:?}",
        down.warnings
    );
    assert!(started.elapsed() < Duration::from_secs(3));

    world.api.set_down(None);
    world.api.set_stall(true);
    let started = Instant::now();
    let stalled = check(
        &checker,
        deployment_review("prod", &image, Some("builder"), &[]),
    )
    .await;
    assert!(stalled.allowed);
    assert!(
        stalled
            .warnings
            .iter()
            .any(|w| w.contains("did not answer")),
        "{:?}",
        stalled.warnings
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}
