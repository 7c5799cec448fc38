//! Registry behaviour a real registry cannot be made to show, on the fake: mixed anonymous and
//! Basic repositories, a token service that moves, absurd token lifetimes, lying digests.

use crate::common;

use crate::common::{FakeRegistry, RecordedRequest, Reply};
use pullcheck::credentials::Credential;
use pullcheck::reference::ImageRef;
use pullcheck::registry::{RegistryClient, RegistryError, RegistrySettings};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

fn client() -> RegistryClient {
    common::install_crypto_provider();
    RegistryClient::new(&RegistrySettings {
        address_policy: crate::common::loopback_allowed(),
        extra_ca_files: vec![common::ca_file().to_path_buf()],
        request_timeout: Duration::from_secs(3),
        ..RegistrySettings::default()
    })
    .expect("client")
}

fn image(fake: &FakeRegistry, repo: &str) -> ImageRef {
    ImageRef::parse_normalized(&fake.image(repo, "v1")).expect("reference")
}

/// A HEAD answer with exactly this digest header.
fn answer_with_digest(digest: &str) -> Reply {
    Reply::status(200)
        .header("content-type", MANIFEST)
        .header("docker-content-digest", digest)
}

fn ok(digest_char: char) -> Reply {
    answer_with_digest(&format!("sha256:{}", digest_char.to_string().repeat(64)))
}

fn has_basic(req: &RecordedRequest) -> bool {
    req.header("authorization")
        .is_some_and(|a| a.starts_with("Basic "))
}

#[tokio::test]
async fn a_basic_challenge_for_one_repository_does_not_refuse_anonymous_reads_of_another() {
    // Anonymous may read public/*; private/* needs Basic.
    let fake = FakeRegistry::start(|req| match req.manifest_target() {
        Some(("public/app", _)) => ok('a'),
        Some(_) if has_basic(req) => ok('b'),
        _ => Reply::unauthorized("Basic realm=\"corp\""),
    });
    let client = client();
    let public = image(&fake, "public/app");
    let private = image(&fake, "private/app");
    assert!(client.resolve(&public, None).await.is_ok());
    assert!(matches!(
        client.resolve(&private, None).await,
        Err(RegistryError::Unauthorized {
            with_credentials: false,
            ..
        })
    ));
    // The Basic challenge is now known for the host; anonymous public reads still work.
    assert!(client.resolve(&public, None).await.is_ok());
    let user = Credential::new("u", "p", "secret ns/x");
    assert!(client.resolve(&private, Some(&user)).await.is_ok());
}

#[tokio::test]
async fn follows_a_token_service_that_moved() {
    let moved = Arc::new(AtomicBool::new(false));
    let now = moved.clone();
    let fake = FakeRegistry::start(move |req| {
        let realm = if now.load(Ordering::SeqCst) {
            "/token-b"
        } else {
            "/token-a"
        };
        if req.path == "/token-a" || req.path == "/token-b" {
            return Reply::token(&format!("tok{}", req.path.trim_start_matches("/token-")));
        }
        let expected = format!("Bearer tok{}", &realm[7..]);
        if req.header("authorization") == Some(expected.as_str()) {
            ok('c')
        } else {
            Reply::unauthorized(&format!(
                "Bearer realm=\"{}{realm}\",service=\"fake\",scope=\"repository:lib/app:pull\"",
                req.base_url
            ))
        }
    });
    let client = client();
    let reference = image(&fake, "lib/app");
    let user = Credential::new("u", "p", "secret ns/x");
    assert!(client.resolve(&reference, Some(&user)).await.is_ok());
    moved.store(true, Ordering::SeqCst);
    let got = client.resolve(&reference, Some(&user)).await;
    assert!(got.is_ok(), "{got:?}");
    assert!(fake.count("GET", "/token-b") >= 1);
}

#[tokio::test]
async fn an_absurd_token_lifetime_is_bounded_not_a_panic() {
    let fake = FakeRegistry::start(|req| {
        if req.path == "/token" {
            Reply::status(200)
                .header("content-type", "application/json")
                .body(r#"{"token":"t","expires_in":18446744073709551615}"#)
        } else if req.bearer() == Some("t") {
            ok('d')
        } else {
            req.bearer_challenge("repository:lib/app:pull")
        }
    });
    let client = client();
    assert!(client.resolve(&image(&fake, "lib/app"), None).await.is_ok());
}

#[tokio::test]
async fn a_malformed_or_lying_digest_is_a_registry_error() {
    let fake = FakeRegistry::always(answer_with_digest("sha256:../../etc"));
    let got = client().resolve(&image(&fake, "lib/app"), None).await;
    assert!(
        matches!(got, Err(RegistryError::Protocol { .. })),
        "{got:?}"
    );

    let fake = FakeRegistry::always(ok('e'));
    let asked = format!("{}/lib/app@sha256:{}", fake.addr(), "f".repeat(64));
    let got = client()
        .resolve(&ImageRef::parse_normalized(&asked).expect("ref"), None)
        .await;
    assert!(
        matches!(got, Err(RegistryError::Protocol { .. })),
        "{got:?}"
    );
}

#[tokio::test]
async fn suggestions_follow_a_paginated_tag_list() {
    let fake = FakeRegistry::start(|req| {
        let tags_page = |tags: &str| {
            Reply::status(200)
                .header("content-type", "application/json")
                .body(format!(r#"{{"name":"lib/app","tags":[{tags}]}}"#))
        };
        match (req.path.as_str(), req.query.as_deref()) {
            ("/v2/lib/app/tags/list", None) => tags_page(r#""v0.1","v0.2""#).header(
                "link",
                r#"</v2/lib/app/tags/list?last=v0.2&n=2>; rel="next""#,
            ),
            ("/v2/lib/app/tags/list", Some(_)) => tags_page(r#""v2.0.0","v2.0.1""#),
            _ => Reply::status(404),
        }
    });
    let got = client()
        .resolve(
            &ImageRef::parse_normalized(&fake.image("lib/app", "v2.0.l")).expect("ref"),
            None,
        )
        .await;
    assert_eq!(
        got,
        Err(RegistryError::ManifestUnknown {
            suggestions: vec!["v2.0.1".into()]
        })
    );
    assert_eq!(fake.count("GET", "/v2/lib/app/tags/list"), 2);
}

#[tokio::test]
async fn a_stalling_tag_list_still_reports_not_found_promptly() {
    let fake = FakeRegistry::start(|req| {
        if req.path.ends_with("/tags/list") {
            Reply::Stall
        } else {
            Reply::status(404)
        }
    });
    let started = std::time::Instant::now();
    let got = client().resolve(&image(&fake, "lib/app"), None).await;
    assert_eq!(
        got,
        Err(RegistryError::ManifestUnknown {
            suggestions: vec![]
        })
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

/// A plain-HTTP token service issuing "t", and a registry that sends its clients there.
fn behind_a_plain_http_realm() -> (FakeRegistry, FakeRegistry) {
    let token_service = FakeRegistry::start_plain_http(|_| Reply::token("t"));
    let realm = format!("{}/token", token_service.url());
    let fake = FakeRegistry::start(move |req| {
        if req.bearer() == Some("t") {
            ok('a')
        } else {
            Reply::unauthorized(&format!("Bearer realm=\"{realm}\",service=\"fake\""))
        }
    });
    (token_service, fake)
}

#[tokio::test]
async fn credentials_never_go_to_a_plain_http_token_realm() {
    let (token_service, fake) = behind_a_plain_http_realm();
    let client = client();
    let reference = image(&fake, "lib/app");
    // The realm is any URL the registry's owner chose: not even an anonymous request goes
    // there in clear, and with credentials certainly not.
    let user = Credential::new("u", "p", "secret ns/x");
    for credential in [None, Some(&user)] {
        let got = client.resolve(&reference, credential).await;
        assert!(
            matches!(got, Err(RegistryError::Protocol { .. })),
            "{got:?}"
        );
    }
    assert_eq!(token_service.total(), 0, "the plain-HTTP realm was asked");
}

#[tokio::test]
async fn a_plain_http_realm_on_an_insecure_registry_is_used() {
    let (token_service, fake) = behind_a_plain_http_realm();
    common::install_crypto_provider();
    let client = RegistryClient::new(&RegistrySettings {
        address_policy: crate::common::loopback_allowed(),
        extra_ca_files: vec![common::ca_file().to_path_buf()],
        insecure_registries: vec![token_service.addr()],
        ..RegistrySettings::default()
    })
    .expect("client");
    assert!(client.resolve(&image(&fake, "lib/app"), None).await.is_ok());
    assert_eq!(token_service.total(), 1);
}
