//! The webhook's HTTP contract, in process (no registry needed): what the API server sends,
//! what it gets back, and bad input. Registry outcomes are covered in tests/e2e_*.rs.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use pullcheck::policy::Mode;
use pullcheck::registry::RegistrySettings;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

use crate::common::inprocess;
use crate::common::review::{Review, Workload};

const LIMIT: usize = 1 << 20;

/// The uid every review here carries, so [`response`] can check it comes back.
const UID: &str = "705ab4f5-6393-11e8-b7cc-42010a800002";

fn app(mode: Mode) -> axum::Router {
    let engine = inprocess::engine_with(
        &RegistrySettings {
            address_policy: crate::common::loopback_allowed(),
            connect_timeout: Duration::from_millis(500),
            ..RegistrySettings::default()
        },
        Duration::from_secs(2),
    );
    pullcheck::webhook::router(Arc::new(inprocess::admission(engine)), mode, LIMIT)
}

async fn post(app: axum::Router, path: &str, body: Vec<u8>) -> (StatusCode, Vec<u8>) {
    let resp = app
        .oneshot(
            Request::post(path)
                .header("content-type", "application/json")
                .body(Body::from(body))
                .expect("request"),
        )
        .await
        .expect("response");
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .expect("body");
    (status, bytes.to_vec())
}

/// `review` as a request body, with the uid [`response`] expects back.
fn as_body(review: Review) -> Vec<u8> {
    review.with_uid(UID).body()
}

fn pod(containers: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "prod"},
           "spec": {"containers": containers}})
}

fn response(body: &[u8]) -> Value {
    let v: Value = serde_json::from_slice(body).expect("review JSON");
    assert_eq!(v["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(v["kind"], "AdmissionReview");
    assert_eq!(v["response"]["uid"], UID);
    v["response"].clone()
}

#[tokio::test]
async fn denies_an_invalid_reference_with_the_parser_reason() {
    let body = as_body(Review::create(
        Workload::Pod,
        pod(json!([{"name": "app", "image": "Nginx:1.27", "imagePullPolicy": "IfNotPresent"}])),
    ));
    let (status, bytes) = post(app(Mode::Enforce), "/validate", body).await;
    assert_eq!(status, StatusCode::OK);
    let r = response(&bytes);
    assert_eq!(r["allowed"], false);
    assert_eq!(r["status"]["code"], 403);
    let msg = r["status"]["message"].as_str().expect("message");
    assert!(msg.contains("container \"app\""), "{msg}");
    assert!(
        msg.contains("repository name (library/Nginx) must be lowercase"),
        "{msg}"
    );
    assert!(msg.contains("InvalidImageName"), "{msg}");
}

#[tokio::test]
async fn warn_mode_admits_with_the_same_finding_as_a_warning() {
    let body = as_body(Review::create(
        Workload::Pod,
        pod(json!([{"name": "app", "image": "Nginx:1.27"}])),
    ));
    let (status, bytes) = post(app(Mode::Enforce), "/validate/warn", body).await;
    assert_eq!(status, StatusCode::OK);
    let r = response(&bytes);
    assert_eq!(r["allowed"], true);
    let warnings = r["warnings"].as_array().expect("warnings");
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0]
        .as_str()
        .unwrap_or_default()
        .contains("must be lowercase"));
}

#[tokio::test]
async fn reports_every_failing_image_naming_each_container() {
    let body = as_body(Review::create(
        Workload::Pod,
        json!({"spec": {
            "initContainers": [{"name": "migrate", "image": "Foo:1"}],
            "containers": [{"name": "app", "image": "bad image"}, {"name": "side", "image": "x:-bad"}]}}),
    ));
    let (_, bytes) = post(app(Mode::Enforce), "/validate", body).await;
    let r = response(&bytes);
    let msg = r["status"]["message"].as_str().expect("message");
    assert!(msg.contains("3 images cannot be pulled"), "{msg}");
    for name in [
        "init container \"migrate\"",
        "container \"app\"",
        "container \"side\"",
    ] {
        assert!(msg.contains(name), "{msg} lacks {name}");
    }
}

#[tokio::test]
async fn never_pull_policy_and_delete_are_not_checked() {
    // 127.0.0.1:1 refuses connections: any check would produce a finding.
    let never = as_body(Review::create(
        Workload::Pod,
        pod(json!([{"name": "app", "image": "127.0.0.1:1/app:v1", "imagePullPolicy": "Never"}])),
    ));
    let (_, bytes) = post(app(Mode::Enforce), "/validate", never).await;
    let r = response(&bytes);
    assert_eq!(r["allowed"], true);
    assert!(r.get("warnings").is_none(), "{r}");

    let delete = as_body(Review::delete(
        Workload::Pod,
        pod(json!([{"name": "app", "image": "Nope"}])),
    ));
    let (_, bytes) = post(app(Mode::Enforce), "/validate", delete).await;
    let r = response(&bytes);
    assert_eq!(r["allowed"], true);
    assert!(r.get("warnings").is_none(), "{r}");
}

#[tokio::test]
async fn update_checks_only_new_images() {
    let old = pod(json!([{"name": "app", "image": "Bad:1"}]));
    let mut relabeled = old.clone();
    relabeled["metadata"]["labels"] = json!({"tier": "web"});
    let (_, bytes) = post(
        app(Mode::Enforce),
        "/validate",
        as_body(Review::update(Workload::Pod, old.clone(), relabeled)),
    )
    .await;
    assert_eq!(
        response(&bytes)["allowed"],
        true,
        "an unchanged image is not re-checked"
    );

    let changed = pod(json!([{"name": "app", "image": "Bad:2"}]));
    let (_, bytes) = post(
        app(Mode::Enforce),
        "/validate",
        as_body(Review::update(Workload::Pod, old, changed)),
    )
    .await;
    let r = response(&bytes);
    assert_eq!(r["allowed"], false);
    assert!(r["status"]["message"]
        .as_str()
        .unwrap_or_default()
        .contains("Bad:2"));
}

#[tokio::test]
async fn unknown_kinds_are_admitted_with_a_note() {
    let body = as_body(Review::create_other(
        ("example.com", "v1", "Widget", "widgets"),
        json!({"spec": {"image": "x"}}),
    ));
    let (status, bytes) = post(app(Mode::Enforce), "/validate", body).await;
    assert_eq!(status, StatusCode::OK);
    let r = response(&bytes);
    assert_eq!(r["allowed"], true);
    let w = r["warnings"][0].as_str().unwrap_or_default();
    assert!(w.contains("example.com/v1/Widget"), "{w}");
}

#[tokio::test]
async fn bodies_that_are_not_reviews_get_400_with_a_reason() {
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"{not json".to_vec(), "not valid JSON"),
        (b"".to_vec(), "not valid JSON"),
        (
            br#"{"apiVersion":"v1","kind":"Pod"}"#.to_vec(),
            "expected apiVersion admission.k8s.io/v1",
        ),
        (
            br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#.to_vec(),
            "has no request",
        ),
        (
            br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":5}}"#
                .to_vec(),
            "not valid JSON",
        ),
    ];
    let app = app(Mode::Enforce);
    for (body, want) in cases {
        let (status, bytes) = post(app.clone(), "/validate", body.clone()).await;
        let text = String::from_utf8_lossy(&bytes);
        assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
        assert!(
            text.contains(want),
            "{:?} gave {text}",
            String::from_utf8_lossy(&body)
        );
    }
}

#[tokio::test]
async fn a_review_about_another_namespace_than_its_object_is_refused() {
    // kube-apiserver never sends one: only a forger asking about another namespace's secrets.
    let mut forged = Review::create(Workload::Pod, pod(json!([{"name": "a", "image": "nginx"}])))
        .with_uid(UID)
        .json();
    forged["request"]["namespace"] = json!("kube-system");
    let (status, bytes) = post(
        app(Mode::Enforce),
        "/validate",
        serde_json::to_vec(&forged).expect("json"),
    )
    .await;
    let text = String::from_utf8_lossy(&bytes);
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    assert!(
        text.contains(r#"namespace "prod" is not the request's namespace "kube-system""#),
        "{text}"
    );
}

#[tokio::test]
async fn a_body_over_the_limit_gets_413_and_the_server_keeps_serving() {
    let app = app(Mode::Enforce);
    let huge = vec![b' '; 10 * 1024 * 1024];
    let (status, bytes) = post(app.clone(), "/validate", huge).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(String::from_utf8_lossy(&bytes).contains("larger than"));
    let ok = as_body(Review::create(
        Workload::Pod,
        pod(json!([{"name": "a", "image": "Bad"}])),
    ));
    let (status, _) = post(app, "/validate", ok).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn an_unknown_mode_path_is_404() {
    let (status, bytes) = post(app(Mode::Enforce), "/validate/strict", b"{}".to_vec()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(String::from_utf8_lossy(&bytes).contains("/validate/enforce"));
}

#[tokio::test]
async fn a_pod_with_500_containers_is_answered() {
    let containers: Vec<Value> = (0..500)
        .map(|i| json!({"name": format!("c{i}"), "image": format!("Bad{}:1", i % 7)}))
        .collect();
    let (status, bytes) = post(
        app(Mode::Enforce),
        "/validate",
        as_body(Review::create(Workload::Pod, pod(Value::Array(containers)))),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let r = response(&bytes);
    assert_eq!(r["allowed"], false);
    assert!(r["status"]["message"]
        .as_str()
        .unwrap_or_default()
        .contains("500 images cannot be pulled"));
}

#[tokio::test]
async fn metrics_count_reviews_by_decision() {
    let app = app(Mode::Enforce);
    let body = as_body(Review::create(
        Workload::Pod,
        pod(json!([{"name": "a", "image": "Bad"}])),
    ));
    post(app.clone(), "/validate", body).await;
    let resp = app
        .oneshot(Request::get("/metrics").body(Body::empty()).expect("req"))
        .await
        .expect("resp");
    let text = String::from_utf8(
        axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .expect("body")
            .to_vec(),
    )
    .expect("utf8");
    assert!(
        text.contains(
            r#"pullcheck_reviews_total{operation="CREATE",decision="denied",mode="enforce"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"pullcheck_image_checks_total{reason="invalid_reference"} 1"#),
        "{text}"
    );
}

#[tokio::test]
async fn update_rechecks_every_image_when_secrets_or_placement_change() {
    let old = pod(json!([{"name": "app", "image": "Bad:1"}]));
    for (field, value) in [
        ("imagePullSecrets", json!([{"name": "regcred"}])),
        ("serviceAccountName", json!("builder")),
        ("nodeSelector", json!({"kubernetes.io/arch": "arm64"})),
        ("tolerations", json!([{"operator": "Exists"}])),
    ] {
        let mut new = old.clone();
        new["spec"][field] = value;
        let (_, bytes) = post(
            app(Mode::Enforce),
            "/validate",
            as_body(Review::update(Workload::Pod, old.clone(), new)),
        )
        .await;
        let r = response(&bytes);
        assert_eq!(r["allowed"], false, "changing {field} re-checks the images");
    }
}

#[tokio::test]
async fn mirror_pods_are_not_checked() {
    let mut mirror = pod(json!([{"name": "etcd", "image": "Bad:1"}]));
    mirror["metadata"]["annotations"] = json!({"kubernetes.io/config.mirror": "5f2b3c"});
    let (_, bytes) = post(
        app(Mode::Enforce),
        "/validate",
        as_body(Review::create(Workload::Pod, mirror)),
    )
    .await;
    let r = response(&bytes);
    assert_eq!(r["allowed"], true);
    assert!(r.get("warnings").is_none(), "{r}");
}

#[tokio::test]
async fn only_pods_can_be_mirror_pods() {
    let mut deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "prod", "annotations": {"kubernetes.io/config.mirror": "x"}},
        "spec": {"selector": {}, "template": {"spec": {"containers": [{"name": "app", "image": "Bad:1"}]}}}});
    deployment["spec"]["selector"] = json!({"matchLabels": {"app": "web"}});
    let (_, bytes) = post(
        app(Mode::Enforce),
        "/validate",
        as_body(Review::create(Workload::Deployment, deployment)),
    )
    .await;
    assert_eq!(response(&bytes)["allowed"], false);
}
