//! End to end through the real binary: `pullcheck serve` as a child process, reached over HTTPS
//! with its CA pinned (as kube-apiserver reaches a webhook through `caBundle`), checking images
//! on a real registry (Debian's docker-registry: open, htpasswd, token auth), on the fake
//! registry (429, 5xx, stalls, garbage) and on a closed port.
//!
//! Every test starts its own binary and its own registries, so tests run in parallel and a
//! cache or a log never carries over from one test to another.

use crate::common;

use std::time::{Duration, Instant};

use crate::common::review::{
    container, container_with_policy, ephemeral_container, pod_spec, Review, Workload,
};
use crate::common::webhook::{post_json, Answer, Webhook, WebhookOptions};
use crate::common::{
    eventually, FakeRegistry, Fixtures, RegistryAuth, Reply, TestRegistry, TokenRules, TokenService,
};
use serde_json::{json, Value};

const NS: &str = "shop";

/// A tag that no fixture has.
const MISSING_TAG: &str = "v9.9.9-missing";

/// A well-formed digest that no fixture has.
const MISSING_DIGEST: &str =
    "sha256:0000000000000000000000000000000000000000000000000000000000000000";

fn pod(name: &str, containers: Vec<Value>) -> Value {
    Workload::Pod.object(name, NS, pod_spec(containers))
}

/// A CREATE of Pod "web" whose one container, "web", runs `image`.
fn web_pod(image: &str) -> Review {
    Review::create(Workload::Pod, pod("web", vec![container("web", image)]))
}

/// `kind` holding a pod (template) spec with `containers`, restart policy fitting the kind.
fn workload(kind: Workload, name: &str, containers: Vec<Value>) -> Value {
    let mut spec = pod_spec(containers);
    spec["restartPolicy"] = json!(kind.restart_policy());
    kind.object(name, NS, spec)
}

async fn open_registry() -> (TestRegistry, Fixtures) {
    let registry = TestRegistry::start(RegistryAuth::None).await;
    let fixtures = Fixtures::seed(&registry).await;
    (registry, fixtures)
}

/// HEAD requests for `repository:reference` in the registry's access log.
fn heads(registry: &TestRegistry, repository: &str, reference: &str) -> usize {
    registry.count_requests("HEAD", &format!("/v2/{repository}/manifests/{reference}"))
}

/// Requests in the access log after the first `since`.
fn requests_since(registry: &TestRegistry, since: usize) -> Vec<common::AccessLogEntry> {
    registry.access_log().split_off(since)
}

/// Reviews at `path`; returns the answer and the registry requests the review caused.
async fn review_with_requests(
    webhook: &Webhook,
    registry: &TestRegistry,
    path: &str,
    review: &Review,
) -> (Answer, Vec<common::AccessLogEntry>) {
    let before = registry.access_log().len();
    let answer = webhook.review_at(path, review).await;
    (answer, requests_since(registry, before))
}

/// Reviews at `path`; asserts a clean admission that cost no registry request.
async fn assert_clean_without_requests(
    webhook: &Webhook,
    registry: &TestRegistry,
    path: &str,
    review: &Review,
    what: &str,
) -> Answer {
    let (answer, after) = review_with_requests(webhook, registry, path, review).await;
    assert_clean(&answer);
    assert!(after.is_empty(), "{what}: registry requests {after:?}");
    answer
}

fn assert_contains(haystack: &str, needles: &[&str], context: &Answer) {
    for needle in needles {
        assert!(
            haystack.contains(needle),
            "{needle:?} missing from {haystack:?}\nwhole answer: {}",
            context.describe()
        );
    }
}

/// Denied in enforce mode as kubectl shows it: 403 and the message.
fn assert_denied(answer: &Answer, needles: &[&str]) {
    assert!(
        !answer.allowed(),
        "expected a denial: {}",
        answer.describe()
    );
    assert_eq!(answer.code(), 403, "{}", answer.describe());
    let message = answer.message();
    assert!(message.starts_with("pullcheck: "), "{message}");
    assert_contains(&message, needles, answer);
}

/// Admitted with exactly one warning holding every needle.
fn assert_warned(answer: &Answer, needles: &[&str]) {
    assert!(
        answer.allowed(),
        "expected admission: {}",
        answer.describe()
    );
    let warnings = answer.warnings();
    assert_eq!(warnings.len(), 1, "{}", answer.describe());
    assert_contains(&warnings[0], needles, answer);
}

/// Admitted with nothing to say.
fn assert_clean(answer: &Answer) {
    assert!(
        answer.allowed(),
        "expected admission: {}",
        answer.describe()
    );
    assert!(answer.warnings().is_empty(), "{}", answer.describe());
    assert_eq!(answer.message(), "", "{}", answer.describe());
}

fn assert_no_panic(webhook: &Webhook) {
    let log = webhook.log();
    assert!(!log.contains("panicked"), "the binary panicked:\n{log}");
}

// ---------------------------------------------------------------------------------------------
// Outcomes on a real registry
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn allows_existing_images_and_records_each_resolved_digest() {
    let (registry, fx) = open_registry().await;
    let webhook = Webhook::start_default().await;
    let addr = registry.addr();
    let object = pod(
        "web",
        vec![
            container("tag", &registry.image(Fixtures::APP, "v1.4.1")),
            container(
                "digest",
                &format!("{addr}/{}@{}", Fixtures::APP, fx.app_v1_4_0),
            ),
            container("index", &registry.image(Fixtures::MULTI, "v1")),
            container("list", &registry.image(Fixtures::LIST, "v1")),
            container("docker", &registry.image(Fixtures::DOCKER, "v1")),
        ],
    );
    let answer = webhook.review(&Review::create(Workload::Pod, object)).await;
    assert_clean(&answer);
    let expected = [
        ("container \"tag\"", &fx.app_v1_4_1),
        ("container \"digest\"", &fx.app_v1_4_0),
        ("container \"index\"", &fx.multi.digest),
        ("container \"list\"", &fx.list.digest),
        ("container \"docker\"", &fx.docker),
    ];
    let resolved = answer
        .resolved_images()
        .expect("resolved-images annotation");
    assert_eq!(
        resolved.as_object().map(|m| m.len()),
        Some(expected.len()),
        "{resolved}"
    );
    for (location, digest) in expected {
        assert_eq!(
            answer.resolved_digest(location).as_deref(),
            Some(digest.as_str()),
            "{location} in {resolved}"
        );
    }
}

#[tokio::test]
async fn denies_a_missing_tag_naming_the_container_and_suggesting_the_nearest_tag() {
    let (registry, _fx) = open_registry().await;
    let webhook = Webhook::start_default().await;
    let image = registry.image(Fixtures::APP, "v1.4.l");
    let object = pod("web", vec![container("web", &image)]);
    let needles = [
        &format!("container \"web\" image \"{image}\"") as &str,
        &format!(
            "not found: repository public/app on {} has no tag \"v1.4.l\" (manifest unknown)",
            registry.addr()
        ),
        "did you mean \"v1.4.1\"?",
        "ErrImagePull",
    ];

    let denied = webhook
        .review(&Review::create(Workload::Pod, object.clone()))
        .await;
    assert_denied(&denied, &needles);
    assert_eq!(denied.response()["status"]["reason"], "Forbidden");
    assert!(denied.warnings().is_empty(), "{}", denied.describe());
    assert!(denied.resolved_images().is_none(), "{}", denied.describe());

    let warned = webhook
        .review_at(
            "/validate/warn",
            &Review::create(Workload::Pod, object.clone()),
        )
        .await;
    assert_warned(&warned, &needles);
    assert_eq!(warned.message(), "", "{}", warned.describe());

    // Off checks nothing: not even a new image costs a registry request.
    let unseen = pod(
        "web",
        vec![container("web", &registry.image(Fixtures::APP, "v0.0.1"))],
    );
    assert_clean_without_requests(
        &webhook,
        &registry,
        "/validate/off",
        &Review::create(Workload::Pod, unseen),
        "off mode",
    )
    .await;
}

/// The whole denial, word for word, as the README documents it and kubectl prints it after
/// `denied the request: `.
#[tokio::test]
async fn denial_of_a_missing_tag_reads_exactly_as_documented() {
    let (registry, _fx) = open_registry().await;
    let webhook = Webhook::start_default().await;
    let image = registry.image(Fixtures::APP, "v1.4.l");
    let answer = webhook.review(&web_pod(&image)).await;
    assert_eq!(
        answer.message(),
        format!(
            "pullcheck: container \"web\" image \"{image}\": not found: repository public/app \
             on {} has no tag \"v1.4.l\" (manifest unknown); did you mean \"v1.4.1\"? The pull \
             would fail with ErrImagePull; push the image or fix the reference",
            registry.addr()
        )
    );
}

#[tokio::test]
async fn warn_mode_flag_admits_on_validate_with_the_finding_as_a_warning() {
    let (registry, _fx) = open_registry().await;
    let webhook = WebhookOptions::default().mode("warn").start().await;
    let object = pod(
        "web",
        vec![
            container("ok", &registry.image(Fixtures::APP, "v1.4.1")),
            container("typo", &registry.image(Fixtures::APP, "v1.4.l")),
        ],
    );
    let warned = webhook
        .review(&Review::create(Workload::Pod, object.clone()))
        .await;
    assert_warned(
        &warned,
        &[
            "container \"typo\"",
            "has no tag \"v1.4.l\"",
            "did you mean",
        ],
    );
    assert!(warned.resolved_digest("container \"ok\"").is_some());
    // The per-mode path still enforces whatever the default is.
    let denied = webhook
        .review_at("/validate/enforce", &Review::create(Workload::Pod, object))
        .await;
    assert_denied(&denied, &["container \"typo\""]);
}

#[tokio::test]
async fn denies_a_repository_that_does_not_exist() {
    let (registry, _fx) = open_registry().await;
    let webhook = Webhook::start_default().await;
    let object = pod(
        "web",
        vec![container("web", &registry.image("public/nope", "v1"))],
    );
    let answer = webhook.review(&Review::create(Workload::Pod, object)).await;
    assert_denied(
        &answer,
        &[
            "container \"web\"",
            &format!(
                "repository public/nope does not exist on {} (name unknown)",
                registry.addr()
            ),
        ],
    );
}

#[tokio::test]
async fn denies_a_missing_digest_and_checks_the_digest_when_tag_and_digest_are_given() {
    let (registry, fx) = open_registry().await;
    let webhook = Webhook::start_default().await;
    let addr = registry.addr();
    let app = Fixtures::APP;

    // A digest nobody pushed; and, as containerd pulls the digest and ignores the tag, an
    // existing tag does not save a missing digest...
    for image in [
        format!("{addr}/{app}@{MISSING_DIGEST}"),
        format!("{addr}/{app}:v1.4.1@{MISSING_DIGEST}"),
    ] {
        let answer = webhook.review(&web_pod(&image)).await;
        assert_denied(
            &answer,
            &[&format!("has no manifest with digest {MISSING_DIGEST}")],
        );
    }

    // ...and a missing tag does not sink an existing digest, which is what gets recorded.
    let answer = webhook
        .review(&web_pod(&format!(
            "{addr}/{app}:no-such-tag@{}",
            fx.app_v1_5_0
        )))
        .await;
    assert_clean(&answer);
    assert_eq!(
        answer.resolved_digest("container \"web\"").as_deref(),
        Some(fx.app_v1_5_0.as_str())
    );
    let log = registry.access_log();
    assert!(
        !log.iter()
            .any(|e| e.method == "HEAD" && e.path().ends_with("/manifests/no-such-tag")),
        "the tag of tag@digest was asked for: {log:?}"
    );
}

#[tokio::test]
async fn denies_an_anonymous_pull_from_an_htpasswd_registry() {
    let registry = TestRegistry::start(RegistryAuth::htpasswd(&[("alice", "wonderland")])).await;
    registry
        .push_image(Fixtures::APP, "v1", common::Platform::linux_amd64())
        .await;
    let webhook = Webhook::start_default().await;
    let image = registry.image(Fixtures::APP, "v1");
    let answer = webhook.review(&web_pod(&image)).await;
    assert_denied(
        &answer,
        &[
            &format!("container \"web\" image \"{image}\""),
            &format!(
                "unauthorized: {} refused an anonymous pull of public/app",
                registry.addr()
            ),
            "imagePullSecret",
        ],
    );
    assert!(
        registry.count_requests("HEAD", "/v2/public/app/manifests/v1") >= 1,
        "the registry was not asked"
    );
}

#[tokio::test]
async fn follows_token_auth_anonymously_allowing_public_and_denying_private_repositories() {
    // The default rules: anonymous may pull public/*, nothing else.
    let service = TokenService::start(TokenRules::default());
    let registry = TestRegistry::start(RegistryAuth::Token { service }).await;
    let fx = Fixtures::seed(&registry).await;
    let webhook = Webhook::start_default().await;
    let public = registry.image(Fixtures::APP, "v1.4.1");
    let private = registry.image(Fixtures::PRIVATE, "v1");

    let answer = webhook.review(&web_pod(&public)).await;
    assert_clean(&answer);
    assert_eq!(
        answer.resolved_digest("container \"web\"").as_deref(),
        Some(fx.app_v1_4_1.as_str())
    );

    let answer = webhook.review(&web_pod(&private)).await;
    assert_denied(
        &answer,
        &[
            &format!("container \"web\" image \"{private}\""),
            &format!(
                "unauthorized: {} refused an anonymous pull of private/app",
                registry.addr()
            ),
        ],
    );
    let tokens = registry.token_service().expect("token service");
    assert!(
        tokens.count_for(None, "repository:private/app:pull") >= 1,
        "no anonymous token request for private/app: {:?}",
        tokens.requests()
    );
}

#[tokio::test]
async fn denies_invalid_references_with_the_parsers_words_and_asks_no_registry() {
    let webhook = Webhook::start_default().await;
    let invalid = [
        ("upper", "Nginx:1.27"),
        ("spaced", "nginx :1.27"),
        ("dashtag", "nginx:-1"),
        (
            "hexdigest",
            "nginx@sha256:ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789",
        ),
    ];
    let containers = invalid
        .iter()
        .map(|(name, image)| container_with_policy(name, image, "IfNotPresent"))
        .collect();
    let answer = webhook
        .review(&Review::create(Workload::Pod, pod("web", containers)))
        .await;
    assert_denied(&answer, &["4 images cannot be pulled", "InvalidImageName"]);
    let message = answer.message();
    for (name, image) in invalid {
        let words = pullcheck::reference::ImageRef::parse_normalized(image)
            .expect_err(image)
            .to_string();
        assert_contains(
            &message,
            &[&format!(
                "container \"{name}\" image {image:?}: not a valid image reference ({words})"
            )],
            &answer,
        );
    }
    // An image the parser accepts is checked; ones it rejects never are, so the review is
    // fast and has nothing to resolve.
    assert!(answer.resolved_images().is_none(), "{}", answer.describe());
}

// ---------------------------------------------------------------------------------------------
// Registry failures (the fake registry and a closed port)
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn admits_with_a_warning_mentioning_retry_after_when_rate_limited() {
    let fake = FakeRegistry::always(Reply::too_many_requests_secs(30));
    let webhook = Webhook::start_default().await;
    let image = fake.image("library/app", "v1");
    let answer = webhook.review(&web_pod(&image)).await;
    assert_warned(
        &answer,
        &[
            &format!("container \"web\" image \"{image}\""),
            &format!(
                "rate limited: {} answered 429 Too Many Requests",
                fake.addr()
            ),
            "(retry after 30s)",
        ],
    );
    assert!(fake.count("HEAD", "/v2/library/app/manifests/v1") >= 1);
}

#[tokio::test]
async fn admits_with_a_warning_on_a_registry_server_error() {
    let fake = FakeRegistry::always(Reply::registry_error(500, "UNKNOWN", "storage on fire"));
    let webhook = Webhook::start_default().await;
    let answer = webhook
        .review(&web_pod(&fake.image("library/app", "v1")))
        .await;
    assert_warned(
        &answer,
        &[&format!(
            "registry error: {} answered HTTP 500",
            fake.addr()
        )],
    );
}

#[tokio::test]
async fn denies_on_a_registry_server_error_when_registry_failure_is_deny() {
    let fake = FakeRegistry::always(Reply::registry_error(500, "UNKNOWN", "storage on fire"));
    let webhook = WebhookOptions::default()
        .config("registryFailure: deny\n")
        .start()
        .await;
    let answer = webhook
        .review(&web_pod(&fake.image("library/app", "v1")))
        .await;
    assert_denied(
        &answer,
        &[
            "container \"web\"",
            &format!("{} answered HTTP 500", fake.addr()),
        ],
    );
}

#[tokio::test]
async fn admits_within_the_budget_when_the_registry_stalls() {
    let fake = FakeRegistry::always(Reply::Stall);
    let webhook = WebhookOptions::default().timeout("1s").start().await;
    let review = web_pod(&fake.image("library/app", "v1"));
    let started = Instant::now();
    let answer = webhook.review(&review).await;
    let took = started.elapsed();
    assert_warned(
        &answer,
        &[&format!(
            "registry {} did not answer in time (the check had 1s in all)",
            fake.addr()
        )],
    );
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(2500),
        "the review took {took:?} with a 1s budget"
    );
}

#[tokio::test]
async fn admits_a_registry_that_answers_garbage_with_200() {
    let fake = FakeRegistry::always(Reply::garbage_ok());
    let webhook = Webhook::start_default().await;
    let answer = webhook
        .review(&web_pod(&fake.image("library/app", "v1")))
        .await;
    assert!(answer.allowed(), "{}", answer.describe());
    assert_eq!(answer.message(), "", "{}", answer.describe());
    assert_no_panic(&webhook);
}

#[tokio::test]
async fn warns_naming_connection_refused_when_the_registry_port_is_closed() {
    // Bound but not listening: the port stays ours for the whole test (no other test's server
    // can take it), and a connection to it is refused.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind("127.0.0.1:0".parse().expect("address"))
        .expect("bind");
    let closed = socket.local_addr().expect("local address").to_string();
    let webhook = Webhook::start_default().await;
    let answer = webhook.review(&web_pod(&format!("{closed}/app:v1"))).await;
    assert_warned(
        &answer,
        &[
            &format!("registry {closed} is unreachable: connection refused"),
            "check the registry host and port",
        ],
    );
}

#[tokio::test]
async fn warns_about_a_registry_certificate_from_an_untrusted_ca() {
    let fake = FakeRegistry::always(Reply::manifest(common::OCI_MANIFEST, b"{}"));
    let webhook = WebhookOptions::default()
        .without_registry_ca()
        .start()
        .await;
    let answer = webhook
        .review(&web_pod(&fake.image("library/app", "v1")))
        .await;
    assert_warned(
        &answer,
        &[
            &format!(
                "registry {} is unreachable: TLS handshake failed",
                fake.addr()
            ),
            "--registry-ca",
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// Every object kind, every image field
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn checks_every_workload_kind_and_names_the_failing_container() {
    let (registry, fx) = open_registry().await;
    let webhook = Webhook::start_default().await;
    let good = registry.image(Fixtures::APP, "v1.4.1");
    let bad = registry.image(Fixtures::APP, MISSING_TAG);
    for kind in Workload::ALL {
        let lower = kind.kind().to_lowercase();
        let (good_name, bad_name) = (format!("good-{lower}"), format!("bad-{lower}"));
        let object = workload(
            kind,
            &format!("web-{lower}"),
            vec![container(&good_name, &good), container(&bad_name, &bad)],
        );
        let answer = webhook.review(&Review::create(kind, object)).await;
        let bad_location = format!("container \"{bad_name}\" image \"{bad}\"");
        assert_denied(
            &answer,
            &[&bad_location, &format!("has no tag \"{MISSING_TAG}\"")],
        );
        assert!(
            !answer.message().contains(&good_name),
            "{kind:?}: the good container is blamed: {}",
            answer.message()
        );
        assert_eq!(
            answer
                .resolved_digest(&format!("container \"{good_name}\""))
                .as_deref(),
            Some(fx.app_v1_4_1.as_str()),
            "{kind:?}: {}",
            answer.describe()
        );
    }

    // `kubectl debug`: pods/ephemeralcontainers, an UPDATE carrying the whole Pod. Only the
    // new ephemeral container is checked; the running containers were checked at creation.
    let running = registry.image(Fixtures::APP, "v1.4.0");
    let old = pod("web", vec![container("app", &running)]);
    let mut with_debugger = old.clone();
    with_debugger["spec"]["ephemeralContainers"] =
        json!([ephemeral_container("debugger", &bad, "app")]);
    let answer = webhook
        .review(&Review::ephemeral_containers(old.clone(), with_debugger))
        .await;
    assert_denied(
        &answer,
        &[&format!("ephemeral container \"debugger\" image \"{bad}\"")],
    );
    let mut good_debugger = old.clone();
    good_debugger["spec"]["ephemeralContainers"] =
        json!([ephemeral_container("debugger", &good, "app")]);
    let answer = webhook
        .review(&Review::ephemeral_containers(old, good_debugger))
        .await;
    assert_clean(&answer);
    assert_eq!(
        answer
            .resolved_digest("ephemeral container \"debugger\"")
            .as_deref(),
        Some(fx.app_v1_4_1.as_str())
    );
    assert_eq!(
        heads(&registry, Fixtures::APP, "v1.4.0"),
        0,
        "the running container's unchanged image was checked again"
    );
}

#[tokio::test]
async fn checks_init_containers_and_image_volumes() {
    let (registry, fx) = open_registry().await;
    let webhook = Webhook::start_default().await;
    let missing_init = registry.image(Fixtures::APP, MISSING_TAG);
    let missing_model = registry.image("models/llm", "v1");
    let mut spec = pod_spec(vec![container(
        "app",
        &registry.image(Fixtures::APP, "v1.4.1"),
    )]);
    spec["initContainers"] = json!([
        container("migrate", &missing_init),
        container("warmup", &registry.image(Fixtures::APP, "v1.4.0")),
    ]);
    spec["volumes"] = json!([
        {"name": "config", "configMap": {"name": "web-config", "defaultMode": 420}},
        {"name": "models", "image": {"reference": missing_model, "pullPolicy": "IfNotPresent"}},
        {"name": "tokenizer", "image": {"reference": registry.image(Fixtures::DOCKER, "v1"),
                                        "pullPolicy": "IfNotPresent"}},
    ]);
    spec["containers"][0]["volumeMounts"] = json!([
        {"name": "models", "mountPath": "/models", "readOnly": true},
        {"name": "tokenizer", "mountPath": "/tokenizer", "readOnly": true},
    ]);
    let answer = webhook
        .review(&Review::create(
            Workload::Pod,
            Workload::Pod.object("web", NS, spec),
        ))
        .await;
    assert_denied(
        &answer,
        &[
            "2 images cannot be pulled",
            &format!("init container \"migrate\" image \"{missing_init}\""),
            &format!("image volume \"models\" image \"{missing_model}\""),
            "repository models/llm does not exist",
        ],
    );
    for location in [
        "container \"app\"",
        "init container \"warmup\"",
        "image volume \"tokenizer\"",
    ] {
        assert!(
            !answer.message().contains(location),
            "{location} blamed: {}",
            answer.message()
        );
    }
    assert_eq!(
        answer
            .resolved_digest("init container \"warmup\"")
            .as_deref(),
        Some(fx.app_v1_4_0.as_str())
    );
    assert_eq!(
        answer
            .resolved_digest("image volume \"tokenizer\"")
            .as_deref(),
        Some(fx.docker.as_str())
    );
}

// ---------------------------------------------------------------------------------------------
// What costs a registry request and what does not
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn update_with_only_a_label_change_makes_no_registry_request() {
    let (registry, _fx) = open_registry().await;
    let webhook = Webhook::start_default().await;
    // Even an image that is missing today: it was admitted before, and a label edit or a scale
    // must not start failing because of it.
    let old = workload(
        Workload::Deployment,
        "web",
        vec![
            container("web", &registry.image(Fixtures::APP, "v1.4.1")),
            container("gone", &registry.image(Fixtures::APP, MISSING_TAG)),
        ],
    );
    let mut new = old.clone();
    new["metadata"]["labels"]["team"] = json!("checkout");
    new["spec"]["replicas"] = json!(5);
    new["metadata"]["generation"] = json!(2);
    assert_clean_without_requests(
        &webhook,
        &registry,
        "/validate",
        &Review::update(Workload::Deployment, old, new),
        "a label edit",
    )
    .await;
}

#[tokio::test]
async fn update_with_a_changed_image_checks_only_that_image() {
    let (registry, fx) = open_registry().await;
    let webhook = Webhook::start_default().await;
    let old = workload(
        Workload::Deployment,
        "web",
        vec![
            container("web", &registry.image(Fixtures::APP, "v1.4.0")),
            container("sidecar", &registry.image(Fixtures::DOCKER, "v1")),
        ],
    );
    let mut new = old.clone();
    new["spec"]["template"]["spec"]["containers"][0]["image"] =
        json!(registry.image(Fixtures::APP, "v1.5.0"));
    let (answer, after) = review_with_requests(
        &webhook,
        &registry,
        "/validate",
        &Review::update(Workload::Deployment, old, new),
    )
    .await;
    assert_clean(&answer);
    assert_eq!(
        answer.resolved_digest("container \"web\"").as_deref(),
        Some(fx.app_v1_5_0.as_str())
    );
    assert!(
        answer.resolved_digest("container \"sidecar\"").is_none(),
        "{}",
        answer.describe()
    );
    let expected = format!("/v2/{}/manifests/v1.5.0", Fixtures::APP);
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(
        (after[0].method.as_str(), after[0].path()),
        ("HEAD", expected.as_str())
    );
}

#[tokio::test]
async fn delete_is_allowed_untouched() {
    let (registry, _fx) = open_registry().await;
    let webhook = Webhook::start_default().await;
    let old = pod(
        "web",
        vec![container(
            "web",
            &registry.image(Fixtures::APP, MISSING_TAG),
        )],
    );
    let answer = assert_clean_without_requests(
        &webhook,
        &registry,
        "/validate",
        &Review::delete(Workload::Pod, old),
        "a deletion",
    )
    .await;
    assert!(answer.resolved_images().is_none(), "{}", answer.describe());
}

#[tokio::test]
async fn image_pull_policy_never_is_not_checked_until_an_update_lets_it_pull() {
    let (registry, _fx) = open_registry().await;
    let webhook = Webhook::start_default().await;
    // Preloaded on the nodes, never pulled: the kubelet fails with ErrImageNeverPull if absent,
    // which no registry answer can change.
    let preloaded = registry.image(Fixtures::APP, MISSING_TAG);
    let old = workload(
        Workload::Deployment,
        "web",
        vec![container_with_policy("web", &preloaded, "Never")],
    );
    assert_clean_without_requests(
        &webhook,
        &registry,
        "/validate",
        &Review::create(Workload::Deployment, old.clone()),
        "imagePullPolicy Never",
    )
    .await;

    // The same image switched to IfNotPresent will now be pulled: it is checked, although the
    // image string did not change.
    let mut new = old.clone();
    new["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = json!("IfNotPresent");
    let answer = webhook
        .review(&Review::update(Workload::Deployment, old, new))
        .await;
    assert_denied(
        &answer,
        &[&format!("container \"web\" image \"{preloaded}\"")],
    );
    assert_eq!(heads(&registry, Fixtures::APP, MISSING_TAG), 1);
}

#[tokio::test]
async fn dry_run_gets_the_same_answer() {
    let (registry, _fx) = open_registry().await;
    let webhook = Webhook::start_default().await;
    let object = pod(
        "web",
        vec![
            container("ok", &registry.image(Fixtures::APP, "v1.4.1")),
            container("typo", &registry.image(Fixtures::APP, "v1.4.l")),
        ],
    );
    let real = webhook
        .review(&Review::create(Workload::Pod, object.clone()))
        .await;
    let dry = webhook
        .review(&Review::create(Workload::Pod, object).dry_run(true))
        .await;
    assert_denied(&dry, &["container \"typo\"", "did you mean \"v1.4.1\"?"]);
    let strip_uid = |a: &Answer| {
        let mut response = a.response().clone();
        response["uid"] = Value::Null;
        response
    };
    assert_eq!(strip_uid(&dry), strip_uid(&real));
}

#[tokio::test]
async fn checks_each_distinct_image_once_and_serves_a_repeat_from_cache() {
    let (registry, fx) = open_registry().await;
    let webhook = Webhook::start_default().await;
    let image = registry.image(Fixtures::APP, "v1.4.1");
    let object = pod(
        "web",
        vec![
            container("a", &image),
            container("b", &image),
            container("c", &image),
        ],
    );
    let first = webhook
        .review(&Review::create(Workload::Pod, object.clone()))
        .await;
    assert_clean(&first);
    for name in ["a", "b", "c"] {
        assert_eq!(
            first
                .resolved_digest(&format!("container \"{name}\""))
                .as_deref(),
            Some(fx.app_v1_4_1.as_str())
        );
    }
    assert_eq!(heads(&registry, Fixtures::APP, "v1.4.1"), 1);

    let second = assert_clean_without_requests(
        &webhook,
        &registry,
        "/validate",
        &Review::create(Workload::Pod, object),
        "the repeat",
    )
    .await;
    assert_eq!(second.resolved_images(), first.resolved_images());
}

#[tokio::test]
async fn advises_pinning_a_mutable_latest_tag_pulled_if_not_present() {
    let (registry, fx) = open_registry().await;
    let webhook = Webhook::start_default().await;
    let latest = registry.image(Fixtures::APP, "latest");
    let answer = webhook
        .review(&Review::create(
            Workload::Pod,
            pod(
                "web",
                vec![container_with_policy("web", &latest, "IfNotPresent")],
            ),
        ))
        .await;
    assert_warned(
        &answer,
        &[
            &format!("container \"web\" image \"{latest}\""),
            "the tag \"latest\" is mutable with imagePullPolicy IfNotPresent",
            &format!("{}/{}@{}", registry.addr(), Fixtures::APP, fx.app_latest),
        ],
    );
    assert_eq!(
        answer.resolved_digest("container \"web\"").as_deref(),
        Some(fx.app_latest.as_str())
    );

    // With the API server's default for :latest (Always) every start pulls: no advice.
    let answer = webhook.review(&web_pod(&latest)).await;
    assert_clean(&answer);
}

// ---------------------------------------------------------------------------------------------
// Bad input, logging, shutdown
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn answers_bad_input_clearly_and_keeps_serving() {
    let (registry, _fx) = open_registry().await;
    let webhook = Webhook::start_default().await;
    // Not one of the images of the 500-container pod below, whose registry requests are counted.
    let good = web_pod(&registry.image(Fixtures::MULTI, "v1"));
    let still_serves = |answer: Answer| {
        assert_clean(&answer);
    };

    // Bodies that are not an AdmissionReview: HTTP 400 with the reason in words.
    let pod_object =
        serde_json::to_vec(&pod("web", vec![container("web", "nginx:1.27")])).expect("pod JSON");
    let no_request = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#.to_vec();
    let mut v1beta1 = good.json();
    v1beta1["apiVersion"] = json!("admission.k8s.io/v1beta1");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "malformed JSON",
            br#"{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionRev"#.to_vec(),
            "not valid JSON",
        ),
        ("empty body", Vec::new(), "not valid JSON"),
        (
            "a Pod, not a review",
            pod_object,
            "expected apiVersion admission.k8s.io/v1 and kind AdmissionReview",
        ),
        ("a review without request", no_request, "has no request"),
        (
            "v1beta1",
            serde_json::to_vec(&v1beta1).expect("json"),
            "admission.k8s.io/v1beta1",
        ),
    ];
    for (what, body, words) in cases {
        let answer = webhook.post("/validate", body).await;
        assert_eq!(answer.status, 400, "{what}: {}", answer.text);
        assert!(answer.text.contains(words), "{what}: {}", answer.text);
        still_serves(webhook.review(&good).await);
    }

    // An unknown mode in the path.
    let answer = webhook.post("/validate/strict", good.body()).await;
    assert_eq!(answer.status, 404, "{}", answer.text);
    assert!(
        answer.text.contains("unknown mode \"strict\""),
        "{}",
        answer.text
    );

    // A kind pullcheck does not know: admitted, saying its images were not checked.
    let config_map = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": NS}, "data": {"image": "nginx:latests"}});
    let answer = webhook
        .review(&Review::create_other(
            ("", "v1", "ConfigMap", "configmaps"),
            config_map,
        ))
        .await;
    assert_warned(&answer, &["v1/ConfigMap", "not checked"]);
    still_serves(webhook.review(&good).await);

    // A pod whose containers field is not a list: admitted, saying what could not be read.
    let mut broken = pod("web", vec![]);
    broken["spec"]["containers"] = json!("nginx:1.27");
    let answer = webhook.review(&Review::create(Workload::Pod, broken)).await;
    assert_warned(&answer, &["could not read the images", "spec.containers"]);
    still_serves(webhook.review(&good).await);

    // 10 MB: over maxBodyBytes (6 MiB).
    let mut huge =
        b"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"pad\":\"".to_vec();
    huge.resize(10 * 1024 * 1024, b'a');
    huge.extend_from_slice(b"\"}");
    let answer = webhook.post("/validate", huge).await;
    assert_eq!(answer.status, 413, "{}", answer.text);
    assert!(answer.text.contains("maxBodyBytes"), "{}", answer.text);
    still_serves(webhook.review(&good).await);

    // 500 containers over 4 distinct images, one of them missing: one answer counting the
    // 125 failing containers and naming as many as fit kube-apiserver's limits, and one
    // registry request per distinct image.
    let tags = ["v1.4.0", "v1.4.1", "v1.5.0", MISSING_TAG];
    let containers = (0..500)
        .map(|i| {
            container(
                &format!("c{i:03}"),
                &registry.image(Fixtures::APP, tags[i % tags.len()]),
            )
        })
        .collect();
    let before = registry.access_log().len();
    let started = Instant::now();
    let answer = webhook
        .review(&Review::create(Workload::Pod, pod("huge", containers)))
        .await;
    let took = started.elapsed();
    assert_denied(
        &answer,
        &[
            "125 images cannot be pulled",
            "container \"c003\"",
            "container \"c007\"",
        ],
    );
    let message = answer.message();
    assert!(message.chars().count() < 5000, "{} runes", message.len());
    let named = message.matches("container \"c").count();
    assert!(
        message.ends_with(&format!("and {} more", 125 - named)),
        "{message}"
    );
    assert!(
        !answer.message().contains("container \"c000\""),
        "{}",
        answer.message()
    );
    assert!(
        took < Duration::from_secs(5),
        "500 containers took {took:?}"
    );
    let heads_sent = requests_since(&registry, before)
        .iter()
        .filter(|e| e.method == "HEAD")
        .count();
    assert_eq!(heads_sent, 4, "one HEAD per distinct image");
    still_serves(webhook.review(&good).await);

    assert_no_panic(&webhook);
    let (status, _) = webhook.get("/healthz").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn logs_one_json_line_per_review() {
    let (registry, _fx) = open_registry().await;
    let webhook = Webhook::start_default().await;
    let allowed = web_pod(&registry.image(Fixtures::APP, "v1.4.1"));
    let denied = Review::create(
        Workload::Deployment,
        workload(
            Workload::Deployment,
            "api",
            vec![container(
                "api",
                &registry.image(Fixtures::APP, MISSING_TAG),
            )],
        ),
    );
    let deleted = Review::delete(
        Workload::StatefulSet,
        workload(
            Workload::StatefulSet,
            "db",
            vec![container("db", &registry.image(Fixtures::APP, "v1.4.0"))],
        ),
    );
    let warned = Review::create(
        Workload::Job,
        workload(
            Workload::Job,
            "batch",
            vec![container(
                "batch",
                &registry.image(Fixtures::APP, MISSING_TAG),
            )],
        ),
    );
    let reviews = [
        (&allowed, "/validate", "allowed"),
        (&denied, "/validate", "denied"),
        (&deleted, "/validate", "allowed"),
        (&warned, "/validate/warn", "warned"),
    ];
    for (review, path, _) in &reviews {
        webhook.review_at(path, review).await;
    }
    // The line is written before the answer is sent, so it is there by now.
    let lines = webhook.review_log_lines();
    assert_eq!(lines.len(), reviews.len(), "{}", webhook.log());
    for (review, _, verdict) in reviews {
        let mine: Vec<&Value> = lines.iter().filter(|l| l["uid"] == review.uid()).collect();
        assert_eq!(mine.len(), 1, "uid {}: {lines:?}", review.uid());
        let line = mine[0];
        assert_eq!(line["namespace"], review.namespace(), "{line}");
        assert_eq!(line["kind"], review.kind(), "{line}");
        assert_eq!(line["name"], review.name(), "{line}");
        assert_eq!(line["operation"], review.operation(), "{line}");
        assert_eq!(line["verdict"], verdict, "{line}");
        let ms = line["duration_ms"]
            .as_f64()
            .expect("duration_ms is a number");
        assert!((0.0..5000.0).contains(&ms), "{line}");
        assert_eq!(line["level"], "INFO", "{line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_review_in_flight_finish_then_exits_zero() {
    let fake = FakeRegistry::always(Reply::Stall);
    let mut webhook = WebhookOptions::default().timeout("3s").start().await;
    let review = web_pod(&fake.image("library/app", "v1"));
    let client = webhook.client().clone();
    let url = webhook.url("/validate");
    let body = review.body();
    let started = Instant::now();
    let in_flight = tokio::spawn(async move { post_json(&client, &url, body).await });

    // The review is in flight once the registry has been asked.
    assert!(
        eventually(Duration::from_secs(5), async || fake.total() > 0).await,
        "the registry was never asked"
    );
    webhook.signal("-TERM");

    // No new connections while draining.
    let addr = webhook.addr();
    assert!(
        eventually(Duration::from_secs(2), async || {
            tokio::net::TcpStream::connect(addr).await.is_err()
        })
        .await,
        "still accepting connections after SIGTERM"
    );
    assert!(
        webhook.try_exit().is_none(),
        "exited with a review in flight: {}",
        webhook.log()
    );

    let answer = in_flight.await.expect("review task").unwrap_or_else(|e| {
        panic!(
            "the in-flight review got no answer: {e:?}\n{}",
            webhook.log()
        )
    });
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.response()["uid"], review.uid());
    assert_warned(
        &answer,
        &["did not answer in time (the check had 3s in all)"],
    );
    assert!(
        started.elapsed() >= Duration::from_millis(2900),
        "answered before the budget ran out: {:?}",
        started.elapsed()
    );

    let status = webhook
        .wait_exit(Duration::from_secs(5))
        .await
        .unwrap_or_else(|| panic!("still running 5 s after the drain:\n{}", webhook.log()));
    assert_eq!(status.code(), Some(0), "{}", webhook.log());
    assert_no_panic(&webhook);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sigterm_cuts_the_drain_short_and_exits_143() {
    let fake = FakeRegistry::always(Reply::Stall);
    let mut webhook = WebhookOptions::default().timeout("10s").start().await;
    let review = web_pod(&fake.image("library/app", "v1"));
    let client = webhook.client().clone();
    let url = webhook.url("/validate");
    let body = serde_json::to_vec(&review.json()).expect("review JSON");
    let _in_flight = tokio::spawn(async move { post_json(&client, &url, body).await });
    assert!(
        eventually(Duration::from_secs(5), async || fake.total() > 0).await,
        "the registry was never asked"
    );
    webhook.signal("-TERM");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        webhook.try_exit().is_none(),
        "exited with a review in flight: {}",
        webhook.log()
    );
    let signalled = Instant::now();
    webhook.signal("-TERM");
    let status = webhook
        .wait_exit(Duration::from_secs(3))
        .await
        .unwrap_or_else(|| panic!("still draining after a second SIGTERM:\n{}", webhook.log()));
    assert_eq!(status.code(), Some(143), "{}", webhook.log());
    assert!(signalled.elapsed() < Duration::from_secs(3));
    assert_no_panic(&webhook);
}
