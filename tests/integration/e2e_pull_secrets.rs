//! Pull secrets through the real binary: the API server is the fake one (KUBECONFIG), the
//! registries are real (htpasswd and token auth), and nothing secret reaches the log even at
//! the most verbose level.

use crate::common::apiserver::FakeApiServer;
use crate::common::review::{container, pod_spec, Review, Workload};
use crate::common::webhook::WebhookOptions;
use crate::common::{Fixtures, RegistryAuth, TestRegistry, TokenRules, TokenService};
use base64::Engine as _;
use serde_json::{json, Value};

const BASIC_PASSWORD: &str = "htpasswd-S3cret-value";
const TOKEN_PASSWORD: &str = "token-S3cret-value";

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn put_pull_secret(api: &FakeApiServer, namespace: &str, name: &str, auths: Value) {
    api.put(json!({
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
        "metadata": {"name": name, "namespace": namespace},
        "data": {".dockerconfigjson": b64(&json!({"auths": auths}).to_string())},
    }));
}

fn pod(namespace: &str, images: &[String], secrets: &[&str]) -> Review {
    let containers = images
        .iter()
        .enumerate()
        .map(|(i, image)| container(&format!("c{i}"), image))
        .collect();
    let mut spec = pod_spec(containers);
    spec["imagePullSecrets"] = Value::Array(secrets.iter().map(|s| json!({"name": s})).collect());
    Review::create(Workload::Pod, Workload::Pod.object("web", namespace, spec))
}

#[tokio::test]
async fn checks_with_the_pods_secrets_and_never_logs_a_credential_even_at_trace() {
    let basic = TestRegistry::start(RegistryAuth::htpasswd(&[("alice", BASIC_PASSWORD)])).await;
    Fixtures::seed(&basic).await;
    let rules = TokenRules::default().user("bob", TOKEN_PASSWORD, &["private/*"]);
    let token = TestRegistry::start(RegistryAuth::Token {
        service: TokenService::start(rules),
    })
    .await;
    Fixtures::seed(&token).await;

    let api = FakeApiServer::start();
    put_pull_secret(
        &api,
        "prod",
        "regcred",
        json!({
            basic.addr(): {"username": "alice", "password": BASIC_PASSWORD, "auth": b64(&format!("alice:{BASIC_PASSWORD}"))},
            token.addr(): {"auth": b64(&format!("bob:{TOKEN_PASSWORD}"))},
        }),
    );
    put_pull_secret(
        &api,
        "prod",
        "stale",
        json!({basic.addr(): {"auth": b64(&format!("alice:{BASIC_PASSWORD}-old"))}}),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = api.kubeconfig(dir.path());
    let webhook = WebhookOptions::default()
        .env("KUBECONFIG", &kubeconfig.display().to_string())
        .arg("--log=trace")
        .start()
        .await;

    let images = [
        basic.image(Fixtures::PRIVATE, "v1"),
        token.image(Fixtures::PRIVATE, "v1"),
    ];
    let ok = webhook.review(&pod("prod", &images, &["regcred"])).await;
    assert!(ok.allowed(), "{}", ok.describe());
    let audit = ok.resolved_images().expect("audit annotation").to_string();
    assert!(audit.contains("secret prod/regcred"), "{audit}");

    // Same pod, another namespace without the secret: denied, with the reason.
    let other = webhook.review(&pod("dev", &images, &["regcred"])).await;
    assert!(!other.allowed());
    assert!(
        other
            .message()
            .contains("does not exist in namespace \"dev\""),
        "{}",
        other.message()
    );

    // Rejected credentials.
    let stale = webhook.review(&pod("prod", &images[..1], &["stale"])).await;
    assert!(!stale.allowed());
    assert!(
        stale
            .message()
            .contains("rejected the credentials (credentials from secret prod/stale)"),
        "{}",
        stale.message()
    );

    let (_, metrics) = webhook.get("/metrics").await;
    let log = webhook.log();
    assert!(
        log.contains("TRACE") || log.contains("\"level\":\"TRACE\""),
        "the log must really be at trace level"
    );
    let answers = [
        ok.text.clone(),
        other.text.clone(),
        stale.text.clone(),
        metrics,
    ];
    let secrets = [
        BASIC_PASSWORD.to_string(),
        TOKEN_PASSWORD.to_string(),
        b64(&format!("alice:{BASIC_PASSWORD}")),
        b64(&format!("bob:{TOKEN_PASSWORD}")),
        b64(&format!("alice:{BASIC_PASSWORD}-old")),
    ];
    for haystack in answers.iter().chain(std::iter::once(&log)) {
        for secret in &secrets {
            assert!(
                !haystack.contains(secret.as_str()),
                "a credential leaked: {secret}"
            );
        }
        // Registry tokens are JWTs, whose base64 header always starts with eyJ.
        assert!(!haystack.contains("Bearer eyJ"), "a bearer token leaked");
        assert!(
            !haystack.contains("\"token\":\"eyJ"),
            "a token answer leaked"
        );
    }
}
