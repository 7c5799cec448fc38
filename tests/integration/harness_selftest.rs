//! The test harness itself, checked against the real registry (distribution 2.8.2) and the fake:
//! if these fail, every registry test built on tests/common is suspect.

use crate::common;

use std::time::{Duration, SystemTime};

use crate::common::{
    basic_auth_value, FakeRegistry, Fixtures, Platform, RegistryAuth, Reply, TestRegistry,
    TokenRules, TokenService, MANIFEST_ACCEPT,
};

/// HEAD `/v2/<repo>/manifests/<reference>` with the four manifest types and an optional
/// `Authorization` value.
async fn head(
    registry: &TestRegistry,
    repository: &str,
    reference: &str,
    authorization: Option<&str>,
) -> reqwest::Response {
    let url = format!("{}/v2/{repository}/manifests/{reference}", registry.url());
    let mut request = registry
        .client()
        .head(url)
        .header(reqwest::header::ACCEPT, MANIFEST_ACCEPT);
    if let Some(value) = authorization {
        request = request.header(reqwest::header::AUTHORIZATION, value);
    }
    request.send().await.expect("HEAD manifest")
}

fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().expect("ASCII header").to_string())
        .unwrap_or_default()
}

/// Fetches a token from `realm` for `scope`, with Basic credentials when given.
async fn fetch_token(
    realm: &str,
    service: &str,
    scope: &str,
    credentials: Option<(&str, &str)>,
) -> reqwest::Response {
    let mut url = url::Url::parse(realm).expect("realm URL");
    url.query_pairs_mut()
        .append_pair("service", service)
        .append_pair("scope", scope);
    let mut request = common::client().get(url);
    if let Some((user, password)) = credentials {
        request = request.header(
            reqwest::header::AUTHORIZATION,
            basic_auth_value(user, password),
        );
    }
    request.send().await.expect("token request")
}

async fn token_from(response: reqwest::Response) -> String {
    assert_eq!(response.status().as_u16(), 200, "token status");
    let body: serde_json::Value = response.json().await.expect("token JSON");
    assert_eq!(body["token"], body["access_token"]);
    body["token"].as_str().expect("token string").to_string()
}

/// `Bearer <token>` with a token that `tokens` issued for `scope`.
async fn bearer(tokens: &TokenService, scope: &str, credentials: Option<(&str, &str)>) -> String {
    let response = fetch_token(&tokens.realm(), tokens.service(), scope, credentials).await;
    format!("Bearer {}", token_from(response).await)
}

#[tokio::test]
async fn head_with_all_manifest_types_answers_each_fixture_digest_and_type() {
    let registry = TestRegistry::start(RegistryAuth::None).await;
    let fixtures = Fixtures::seed(&registry).await;

    for image in fixtures.all() {
        let response = head(&registry, image.repository, image.tag, None).await;
        let name = format!("{}:{}", image.repository, image.tag);
        assert_eq!(response.status().as_u16(), 200, "{name}");
        assert_eq!(
            header(&response, "docker-content-digest"),
            image.digest.as_str(),
            "{name}"
        );
        assert_eq!(
            header(&response, "content-type"),
            image.media_type,
            "{name}"
        );
    }
    assert_eq!(fixtures.app_latest, fixtures.app_v1_5_0);
    assert_ne!(fixtures.app_v1_4_0, fixtures.app_v1_4_1);
}

#[tokio::test]
async fn head_of_a_missing_tag_is_404() {
    let registry = TestRegistry::start(RegistryAuth::None).await;
    registry
        .push_image("public/app", "v1", Platform::linux_amd64())
        .await;

    assert_eq!(
        head(&registry, "public/app", "v2", None)
            .await
            .status()
            .as_u16(),
        404
    );
    assert_eq!(
        head(&registry, "no/such", "v1", None)
            .await
            .status()
            .as_u16(),
        404
    );
    assert!(registry.tag_exists("public/app", "v1").await);
    assert!(!registry.tag_exists("public/app", "v2").await);
}

#[tokio::test]
async fn plain_http_registry_serves_pushed_images() {
    let registry = TestRegistry::start_plain_http(RegistryAuth::None).await;
    assert!(registry.url().starts_with("http://"));
    let digest = registry
        .push_docker_manifest("plain/app", "v1", Platform::linux_arm64())
        .await;
    let response = head(&registry, "plain/app", "v1", None).await;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(header(&response, "docker-content-digest"), digest.as_str());
    assert_eq!(header(&response, "content-type"), common::DOCKER_MANIFEST);
}

#[tokio::test]
async fn oci_index_carries_platforms_and_an_attestation_entry() {
    let registry = TestRegistry::start(RegistryAuth::None).await;
    let fixtures = Fixtures::seed(&registry).await;

    let url = format!(
        "{}/v2/{}/manifests/{}",
        registry.url(),
        Fixtures::MULTI,
        fixtures.multi.digest
    );
    let index: serde_json::Value = registry
        .client()
        .get(url)
        .header(reqwest::header::ACCEPT, MANIFEST_ACCEPT)
        .send()
        .await
        .expect("GET index")
        .json()
        .await
        .expect("index JSON");
    let platforms: Vec<String> = index["manifests"]
        .as_array()
        .expect("manifests array")
        .iter()
        .map(|entry| {
            let p = &entry["platform"];
            let mut text = format!(
                "{}/{}",
                p["os"].as_str().unwrap_or(""),
                p["architecture"].as_str().unwrap_or("")
            );
            if let Some(variant) = p["variant"].as_str() {
                text.push('/');
                text.push_str(variant);
            }
            text
        })
        .collect();
    assert_eq!(
        platforms,
        ["linux/amd64", "linux/arm64/v8", "unknown/unknown"]
    );
    assert_eq!(
        index["manifests"][2]["annotations"]["vnd.docker.reference.digest"],
        fixtures.multi.child(&Platform::linux_amd64()).as_str()
    );

    // Children are reachable by digest and are image manifests.
    for (platform, digest) in &fixtures.multi.children {
        let (found, media_type) = registry
            .head_manifest(Fixtures::MULTI, digest.as_str())
            .await
            .unwrap_or_else(|| panic!("{platform} child missing"));
        assert_eq!(&found, digest);
        assert_eq!(media_type, common::OCI_MANIFEST);
    }
    let arm = &fixtures.arm_only.children;
    assert_eq!(arm.len(), 1);
    assert_eq!(arm[0].0, Platform::linux_arm64());
}

#[tokio::test]
async fn htpasswd_registry_challenges_anonymous_with_basic_and_accepts_its_users() {
    let registry = TestRegistry::start(RegistryAuth::htpasswd(&[("alice", "alice-pw")])).await;
    let fixtures = Fixtures::seed(&registry).await;

    let anonymous = head(&registry, Fixtures::PRIVATE, "v1", None).await;
    assert_eq!(anonymous.status().as_u16(), 401);
    assert_eq!(
        header(&anonymous, "www-authenticate"),
        "Basic realm=\"pullcheck-test\""
    );

    let wrong = basic_auth_value("alice", "not-her-password");
    let response = head(&registry, Fixtures::PRIVATE, "v1", Some(&wrong)).await;
    assert_eq!(response.status().as_u16(), 401);

    let (user, password) = registry.first_user();
    let right = basic_auth_value(user, password);
    for image in fixtures.all() {
        let response = head(&registry, image.repository, image.tag, Some(&right)).await;
        assert_eq!(
            response.status().as_u16(),
            200,
            "{}:{}",
            image.repository,
            image.tag
        );
        assert_eq!(
            header(&response, "docker-content-digest"),
            image.digest.as_str()
        );
    }
}

#[tokio::test]
async fn token_registry_accepts_tokens_only_for_granted_repositories() {
    let rules = TokenRules::default()
        .user("alice", "alice-pw", &["private/*"])
        .user("bob", "bob-pw", &["team/*"]);
    let service = TokenService::start(rules);
    let registry = TestRegistry::start(RegistryAuth::Token { service }).await;
    let fixtures = Fixtures::seed(&registry).await;
    let tokens = registry.token_service().expect("token registry");
    let realm = tokens.realm();
    let private_scope = "repository:private/app:pull";

    // Anonymous: a Bearer challenge naming the realm, service and scope.
    let anonymous = head(&registry, Fixtures::PRIVATE, "v1", None).await;
    assert_eq!(anonymous.status().as_u16(), 401);
    assert_eq!(
        header(&anonymous, "www-authenticate"),
        format!(
            "Bearer realm=\"{realm}\",service=\"{}\",scope=\"{private_scope}\"",
            tokens.service()
        )
    );

    // alice may pull private/app: her token opens it, with the pushed digest.
    let alice = bearer(tokens, private_scope, Some(("alice", "alice-pw"))).await;
    let response = head(&registry, Fixtures::PRIVATE, "v1", Some(&alice)).await;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        header(&response, "docker-content-digest"),
        fixtures.private_app.as_str()
    );

    // bob may not: the token is issued (intersection), the registry refuses it.
    let bob = bearer(tokens, private_scope, Some(("bob", "bob-pw"))).await;
    let response = head(&registry, Fixtures::PRIVATE, "v1", Some(&bob)).await;
    assert!(
        [401, 403].contains(&response.status().as_u16()),
        "bob got {}",
        response.status()
    );
    assert!(header(&response, "www-authenticate").contains("insufficient_scope"));

    // A token for one repository does not open another.
    let response = head(&registry, Fixtures::APP, "v1.4.0", Some(&alice)).await;
    assert_eq!(response.status().as_u16(), 401);

    // Anonymous may pull public/*.
    let public_scope = "repository:public/app:pull";
    let anon = bearer(tokens, public_scope, None).await;
    let response = head(&registry, Fixtures::APP, "v1.4.0", Some(&anon)).await;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        header(&response, "docker-content-digest"),
        fixtures.app_v1_4_0.as_str()
    );

    // A wrong password is refused by the token service itself.
    let wrong = fetch_token(
        &realm,
        tokens.service(),
        private_scope,
        Some(("alice", "nope")),
    )
    .await;
    assert_eq!(wrong.status().as_u16(), 401);

    // The harness's own pushes never went through the endpoint; every request was recorded.
    assert_eq!(tokens.request_count(), 4);
    assert_eq!(tokens.count_for(Some("alice"), private_scope), 2);
    assert_eq!(tokens.count_for(Some("bob"), private_scope), 1);
    assert_eq!(tokens.count_for(None, public_scope), 1);
    let bob_request = tokens
        .requests()
        .into_iter()
        .find(|r| r.user.as_deref() == Some("bob"))
        .expect("bob's request");
    assert!(bob_request.granted.is_empty());
    assert_eq!(bob_request.status, 200);
}

#[tokio::test]
async fn token_registry_rejects_tokens_from_a_signer_it_does_not_trust() {
    let trusted = TokenService::start(TokenRules::default());
    let registry = TestRegistry::start(RegistryAuth::Token { service: trusted }).await;
    registry
        .push_image("public/app", "v1", Platform::linux_amd64())
        .await;
    // Same service and issuer names, different signing certificate.
    let stranger = TokenService::start(TokenRules::default());
    let forged = format!(
        "Bearer {}",
        stranger.mint("someone", "public/app", &["pull"])
    );
    let response = head(&registry, "public/app", "v1", Some(&forged)).await;
    assert_eq!(response.status().as_u16(), 401);

    let tokens = registry.token_service().expect("token registry");
    let genuine = format!("Bearer {}", tokens.mint("someone", "public/app", &["pull"]));
    let response = head(&registry, "public/app", "v1", Some(&genuine)).await;
    assert_eq!(response.status().as_u16(), 200);
}

#[tokio::test]
async fn token_service_can_be_told_to_fail() {
    let service = TokenService::start(TokenRules::default());
    for (fail_with, status) in [(Some(503), 503), (None, 200)] {
        service.fail_with(fail_with);
        let response = fetch_token(
            &service.realm(),
            service.service(),
            "repository:public/x:pull",
            None,
        )
        .await;
        assert_eq!(response.status().as_u16(), status);
    }
    let wrong_service =
        fetch_token(&service.realm(), "other", "repository:public/x:pull", None).await;
    assert_eq!(wrong_service.status().as_u16(), 400);
}

#[tokio::test]
async fn access_log_counts_requests_per_method_and_path() {
    let registry = TestRegistry::start(RegistryAuth::None).await;
    registry
        .push_image("public/app", "v1", Platform::linux_amd64())
        .await;
    head(&registry, "public/app", "v1", None).await;
    head(&registry, "public/app", "v1", None).await;

    assert_eq!(
        registry.count_requests("HEAD", "/v2/public/app/manifests/v1"),
        2
    );
    assert_eq!(
        registry.count_requests("GET", "/v2/public/app/manifests/v1"),
        0
    );
}

#[tokio::test]
async fn dropped_registry_stops_answering() {
    let registry = TestRegistry::start(RegistryAuth::None).await;
    let addr = registry.addr().to_string();
    assert!(std::net::TcpStream::connect(&addr).is_ok());
    drop(registry);
    assert!(
        std::net::TcpStream::connect(&addr).is_err(),
        "still listening on {addr}"
    );
}

#[tokio::test]
async fn registries_started_together_get_their_own_ports() {
    let (a, b, c) = tokio::join!(
        TestRegistry::start(RegistryAuth::None),
        TestRegistry::start(RegistryAuth::None),
        TestRegistry::start(RegistryAuth::None),
    );
    let a_digest = a.push_image("x/y", "v1", Platform::linux_amd64()).await;
    assert_ne!(a.addr(), b.addr());
    assert_ne!(b.addr(), c.addr());
    assert!(a.tag_exists("x/y", "v1").await);
    assert!(!b.tag_exists("x/y", "v1").await);
    assert!(!c.tag_exists("x/y", "v1").await);
    assert!(a_digest.as_str().starts_with("sha256:"));
}

#[tokio::test]
async fn fake_answers_429_with_retry_after_and_counts_requests() {
    let until = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
    let fake = FakeRegistry::script(vec![
        Reply::too_many_requests_secs(30),
        Reply::too_many_requests_until(until),
        Reply::manifest(common::OCI_MANIFEST, b"{}"),
    ]);
    let url = format!("{}/v2/a/b/manifests/v1", fake.url());
    let client = common::client();

    let first = client.head(&url).send().await.expect("first HEAD");
    assert_eq!(first.status().as_u16(), 429);
    assert_eq!(header(&first, "retry-after"), "30");

    let second = client.head(&url).send().await.expect("second HEAD");
    assert_eq!(second.status().as_u16(), 429);
    assert_eq!(
        header(&second, "retry-after"),
        "Sun, 06 Nov 1994 08:49:37 GMT"
    );

    let third = client.head(&url).send().await.expect("third HEAD");
    assert_eq!(third.status().as_u16(), 200);
    assert_eq!(
        header(&third, "docker-content-digest"),
        common::Digest::of(b"{}").as_str()
    );

    assert_eq!(fake.count("HEAD", "/v2/a/b/manifests/v1"), 3);
    assert_eq!(fake.count("GET", "/v2/a/b/manifests/v1"), 0);
    assert_eq!(fake.total(), 3);
}

#[tokio::test]
async fn fake_bearer_challenge_points_at_its_own_token_endpoint() {
    let fake = FakeRegistry::start(|request| match request.path.as_str() {
        "/token" => Reply::token("fake-token"),
        _ if request.bearer() == Some("fake-token") => Reply::manifest(common::OCI_MANIFEST, b"{}"),
        _ => request.bearer_challenge("repository:a/b:pull"),
    });
    let client = common::client();
    let url = format!("{}/v2/a/b/manifests/v1", fake.url());

    let challenged = client.head(&url).send().await.expect("HEAD");
    assert_eq!(challenged.status().as_u16(), 401);
    let challenge = header(&challenged, "www-authenticate");
    assert!(
        challenge.starts_with(&format!("Bearer realm=\"{}/token\"", fake.url())),
        "{challenge}"
    );
    let token = token_from(
        client
            .get(format!("{}/token", fake.url()))
            .send()
            .await
            .expect("token"),
    )
    .await;
    let ok = client
        .head(&url)
        .bearer_auth(token)
        .send()
        .await
        .expect("HEAD with token");
    assert_eq!(ok.status().as_u16(), 200);
    assert_eq!(fake.count("GET", "/token"), 1);
}

#[tokio::test]
async fn fake_stall_never_answers() {
    let fake = FakeRegistry::always(Reply::Stall);
    let client = common::client_builder()
        .timeout(Duration::from_millis(200))
        .build()
        .expect("client");
    let error = client
        .head(format!("{}/v2/", fake.url()))
        .send()
        .await
        .expect_err("a stalled request must time out");
    assert!(error.is_timeout(), "{error}");
    assert_eq!(fake.total(), 1);
}

#[tokio::test]
async fn fake_garbage_replies_are_what_they_claim() {
    let fake = FakeRegistry::start(|request| match request.path.as_str() {
        "/garbage" => Reply::garbage_ok(),
        "/html" => Reply::html_not_found(),
        _ => Reply::malformed_challenge(),
    });
    let client = common::client();

    let garbage = client
        .get(format!("{}/garbage", fake.url()))
        .send()
        .await
        .expect("GET");
    assert_eq!(garbage.status().as_u16(), 200);
    assert!(garbage.headers().get("docker-content-digest").is_none());
    let body = garbage.bytes().await.expect("body");
    assert!(serde_json::from_slice::<serde_json::Value>(&body).is_err());

    let html = client
        .get(format!("{}/html", fake.url()))
        .send()
        .await
        .expect("GET");
    assert_eq!(html.status().as_u16(), 404);
    assert_eq!(header(&html, "content-type"), "text/html");

    let malformed = client
        .get(format!("{}/v2/", fake.url()))
        .send()
        .await
        .expect("GET");
    assert_eq!(malformed.status().as_u16(), 401);
    assert!(header(&malformed, "www-authenticate").starts_with("Bearer realm=\"https"));
}
