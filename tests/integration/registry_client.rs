//! The registry client against a real registry (Debian's docker-registry, CNCF distribution)
//! with TLS and htpasswd or token auth, and against the fake for what a real one cannot do.

use crate::common;

use crate::common::{
    FakeRegistry, Fixtures, RegistryAuth, Reply, TestRegistry, TokenRules, TokenService,
};
use pullcheck::credentials::Credential;
use pullcheck::reason::Reason;
use pullcheck::reference::ImageRef;
use pullcheck::registry::{
    RegistryClient, RegistryError, RegistrySettings, RetryAfter, Unreachable,
};
use std::time::Duration;

fn client_for(ca_file: &std::path::Path) -> RegistryClient {
    common::install_crypto_provider();
    RegistryClient::new(&RegistrySettings {
        address_policy: crate::common::loopback_allowed(),
        extra_ca_files: vec![ca_file.to_path_buf()],
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(3),
        ..RegistrySettings::default()
    })
    .expect("client")
}

fn image(s: &str) -> ImageRef {
    ImageRef::parse_normalized(s).expect("valid reference")
}

fn cred(user: &str, pass: &str) -> Credential {
    Credential::new(user, pass, format!("secret test/{user}"))
}

#[tokio::test]
async fn resolves_existing_tags_and_digests_with_one_head_and_no_get() {
    let registry = TestRegistry::start(RegistryAuth::None).await;
    let fx = Fixtures::seed(&registry).await;
    let seeded = registry.access_log().len();
    let client = client_for(registry.ca_file());
    let cases = [
        (
            registry.image(Fixtures::APP, "v1.4.1"),
            fx.app_v1_4_1.as_str().to_string(),
            "application/vnd.oci.image.manifest.v1+json",
        ),
        (
            registry.image(Fixtures::MULTI, "v1"),
            fx.multi.digest.as_str().to_string(),
            "application/vnd.oci.image.index.v1+json",
        ),
        (
            registry.image(Fixtures::LIST, "v1"),
            fx.list.digest.as_str().to_string(),
            "application/vnd.docker.distribution.manifest.list.v2+json",
        ),
        (
            registry.image(Fixtures::DOCKER, "v1"),
            fx.docker.as_str().to_string(),
            "application/vnd.docker.distribution.manifest.v2+json",
        ),
        (
            format!(
                "{}/{}@{}",
                registry.addr(),
                Fixtures::APP,
                fx.app_v1_4_0.as_str()
            ),
            fx.app_v1_4_0.as_str().to_string(),
            "application/vnd.oci.image.manifest.v1+json",
        ),
        // tag + digest: the digest is what containerd pulls, whatever the tag says.
        (
            format!(
                "{}/{}:nonexistent@{}",
                registry.addr(),
                Fixtures::APP,
                fx.app_v1_5_0.as_str()
            ),
            fx.app_v1_5_0.as_str().to_string(),
            "application/vnd.oci.image.manifest.v1+json",
        ),
    ];
    for (reference, digest, media_type) in &cases {
        let got = client
            .resolve(&image(reference), None)
            .await
            .expect(reference);
        assert_eq!(got.digest.as_deref(), Some(digest.as_str()), "{reference}");
        assert_eq!(got.media_type.as_deref(), Some(*media_type), "{reference}");
    }
    let log = registry.access_log().split_off(seeded);
    let gets = log
        .iter()
        .filter(|e| e.method == "GET" && e.path().contains("/manifests/"))
        .count();
    assert_eq!(gets, 0, "a successful check never GETs a manifest: {log:?}");
}

#[tokio::test]
async fn tells_a_missing_tag_from_a_missing_repository_and_suggests_tags() {
    let registry = TestRegistry::start(RegistryAuth::None).await;
    let fx = Fixtures::seed(&registry).await;
    let client = client_for(registry.ca_file());

    let typo = client
        .resolve(&image(&registry.image(Fixtures::APP, "v1.4.l")), None)
        .await;
    assert_eq!(
        typo,
        Err(RegistryError::ManifestUnknown {
            suggestions: vec!["v1.4.1".into()]
        })
    );

    let far = client
        .resolve(&image(&registry.image(Fixtures::APP, "nightly-2020")), None)
        .await;
    assert_eq!(
        far,
        Err(RegistryError::ManifestUnknown {
            suggestions: vec![]
        })
    );

    let missing_digest = format!(
        "{}/{}@sha256:{}",
        registry.addr(),
        Fixtures::APP,
        "0".repeat(64)
    );
    assert_eq!(
        client.resolve(&image(&missing_digest), None).await,
        Err(RegistryError::ManifestUnknown {
            suggestions: vec![]
        })
    );

    let no_repo = client
        .resolve(&image(&registry.image("public/ap", "v1.4.1")), None)
        .await;
    assert_eq!(no_repo, Err(RegistryError::NameUnknown));
    assert_eq!(
        no_repo.expect_err("an error").reason(),
        Reason::RepositoryNotFound
    );
    drop(fx);
}

#[tokio::test]
async fn htpasswd_registry_needs_the_right_credentials() {
    let registry = TestRegistry::start(RegistryAuth::htpasswd(&[("alice", "wonderland")])).await;
    Fixtures::seed(&registry).await;
    let client = client_for(registry.ca_file());
    let private = image(&registry.image(Fixtures::PRIVATE, "v1"));

    let anonymous = client.resolve(&private, None).await;
    assert!(
        matches!(
            anonymous,
            Err(RegistryError::Unauthorized {
                with_credentials: false,
                ..
            })
        ),
        "{anonymous:?}"
    );
    let wrong = client
        .resolve(&private, Some(&cred("alice", "looking-glass")))
        .await;
    assert!(
        matches!(
            wrong,
            Err(RegistryError::Unauthorized {
                with_credentials: true,
                ..
            })
        ),
        "{wrong:?}"
    );
    let right = client
        .resolve(&private, Some(&cred("alice", "wonderland")))
        .await;
    assert!(right.is_ok(), "{right:?}");
    // The earlier success must not leak into a later anonymous or wrong-password check.
    assert!(client.resolve(&private, None).await.is_err());
    assert!(client
        .resolve(&private, Some(&cred("alice", "nope")))
        .await
        .is_err());
    // An identity-token-only secret has empty username and password: containerd pulls anonymously.
    assert!(matches!(
        client.resolve(&private, Some(&cred("", ""))).await,
        Err(RegistryError::Unauthorized {
            with_credentials: false,
            ..
        })
    ));
}

fn token_registry_rules() -> TokenRules {
    TokenRules::default()
        .user("alice", "wonderland", &["private/*"])
        .user("bob", "builder", &["multi/*"])
}

#[tokio::test]
async fn token_registry_issues_one_token_per_repository_and_credential() {
    let service = TokenService::start(token_registry_rules());
    let registry = TestRegistry::start(RegistryAuth::Token { service }).await;
    Fixtures::seed(&registry).await;
    let tokens = registry.token_service().expect("token service");
    tokens.clear_requests();
    let client = client_for(registry.ca_file());
    let alice = cred("alice", "wonderland");
    let private = image(&registry.image(Fixtures::PRIVATE, "v1"));

    for _ in 0..3 {
        client
            .resolve(&private, Some(&alice))
            .await
            .expect("alice may pull private/app");
    }
    assert_eq!(
        tokens.count_for(Some("alice"), "repository:private/app:pull"),
        1,
        "{:?}",
        tokens.requests()
    );

    // Anonymous on a public repository gets its own (anonymous) token.
    client
        .resolve(&image(&registry.image(Fixtures::APP, "v1.4.1")), None)
        .await
        .expect("public");
    assert_eq!(tokens.count_for(None, "repository:public/app:pull"), 1);

    // Alice's cached token is never used for bob or for an anonymous pull of the same repository.
    let bob = client
        .resolve(&private, Some(&cred("bob", "builder")))
        .await;
    assert!(
        matches!(
            bob,
            Err(RegistryError::Unauthorized {
                with_credentials: true,
                ..
            })
        ),
        "{bob:?}"
    );
    let anon = client.resolve(&private, None).await;
    assert!(
        matches!(
            anon,
            Err(RegistryError::Unauthorized {
                with_credentials: false,
                ..
            })
        ),
        "{anon:?}"
    );
    assert_eq!(
        tokens.count_for(Some("bob"), "repository:private/app:pull"),
        1
    );
    assert_eq!(tokens.count_for(None, "repository:private/app:pull"), 1);
}

#[tokio::test]
async fn token_service_rejecting_the_password_is_unauthorized_with_credentials() {
    let service = TokenService::start(token_registry_rules());
    let registry = TestRegistry::start(RegistryAuth::Token { service }).await;
    Fixtures::seed(&registry).await;
    let client = client_for(registry.ca_file());
    let got = client
        .resolve(
            &image(&registry.image(Fixtures::APP, "v1.4.1")),
            Some(&cred("alice", "wrong")),
        )
        .await;
    // containerd fails the pull ("failed to fetch oauth token") even for a public image.
    match got {
        Err(RegistryError::Unauthorized {
            with_credentials: true,
            detail,
        }) => {
            assert!(detail.unwrap_or_default().contains("token service"));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn rate_limits_carry_retry_after_in_both_forms() {
    let fake = FakeRegistry::always(Reply::too_many_requests_secs(30));
    let client = client_for(common::ca_file());
    let got = client
        .resolve(&image(&fake.image("lib/app", "v1")), None)
        .await;
    assert_eq!(
        got,
        Err(RegistryError::RateLimited {
            retry_after: Some(RetryAfter::Seconds(30))
        })
    );
    assert_eq!(got.expect_err("an error").reason(), Reason::RateLimited);

    let at = std::time::SystemTime::now() + Duration::from_secs(120);
    let fake = FakeRegistry::always(Reply::too_many_requests_until(at));
    let got = client
        .resolve(&image(&fake.image("lib/app", "v1")), None)
        .await;
    match got {
        Err(RegistryError::RateLimited {
            retry_after: Some(r @ RetryAfter::At(_)),
        }) => {
            let wait = r.delay_from(std::time::SystemTime::now());
            assert!(
                wait > Duration::from_secs(100) && wait <= Duration::from_secs(120),
                "{wait:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    let fake = FakeRegistry::always(Reply::too_many_requests_plain());
    let got = client
        .resolve(&image(&fake.image("lib/app", "v1")), None)
        .await;
    assert_eq!(got, Err(RegistryError::RateLimited { retry_after: None }));
    assert_eq!(
        fake.count_method("GET"),
        0,
        "no GET after a HEAD that failed"
    );
}

#[tokio::test]
async fn server_errors_and_garbage_are_registry_errors() {
    let cases: Vec<(Reply, Expectation)> = vec![
        (Reply::status(500), |e| {
            matches!(e, RegistryError::Server { status: 500, .. })
        }),
        (Reply::status(503), |e| {
            matches!(e, RegistryError::Server { status: 503, .. })
        }),
        (
            Reply::registry_error(502, "UNAVAILABLE", "upstream down"),
            |e| matches!(e, RegistryError::Server { status: 502, .. }),
        ),
        (Reply::status(418), |e| {
            matches!(e, RegistryError::Protocol { .. })
        }),
        (Reply::html_not_found(), |e| {
            matches!(e, RegistryError::ManifestUnknown { .. })
        }),
        (Reply::malformed_challenge(), |e| {
            matches!(e, RegistryError::Unauthorized { .. })
        }),
    ];
    for (reply, expected) in cases {
        let fake = FakeRegistry::always(reply.clone());
        let client = client_for(common::ca_file());
        let got = client
            .resolve(&image(&fake.image("lib/app", "v1")), None)
            .await;
        match got {
            Err(e) if expected(&e) => {}
            other => panic!("{reply:?} gave {other:?}"),
        }
    }
    // 200 without a digest still proves the manifest exists; nothing to hash, no GET.
    let fake = FakeRegistry::always(Reply::garbage_ok());
    let client = client_for(common::ca_file());
    let got = client
        .resolve(&image(&fake.image("lib/app", "v1")), None)
        .await
        .expect("exists");
    assert_eq!(got.digest, None);
    assert_eq!(fake.count_method("GET"), 0);
}

#[tokio::test]
async fn a_token_service_answering_garbage_is_a_registry_error() {
    let fake = FakeRegistry::start(|req| {
        if req.path == "/token" {
            Reply::status(200).body("<html>not json</html>")
        } else {
            req.bearer_challenge("repository:lib/app:pull")
        }
    });
    let client = client_for(common::ca_file());
    let got = client
        .resolve(&image(&fake.image("lib/app", "v1")), None)
        .await;
    assert!(
        matches!(got, Err(RegistryError::Protocol { .. })),
        "{got:?}"
    );
}

#[tokio::test]
async fn names_why_a_registry_is_unreachable() {
    common::install_crypto_provider();
    let client = RegistryClient::new(&RegistrySettings {
        address_policy: crate::common::loopback_allowed(),
        connect_timeout: Duration::from_millis(500),
        request_timeout: Duration::from_millis(800),
        ..RegistrySettings::default()
    })
    .expect("client");
    // A closed port on loopback.
    let port = common::free_port();
    let refused = client
        .resolve(&image(&format!("127.0.0.1:{port}/app:v1")), None)
        .await;
    assert!(
        matches!(
            refused,
            Err(RegistryError::Unreachable {
                cause: Unreachable::ConnectionRefused,
                ..
            })
        ),
        "{refused:?}"
    );
    // .invalid never resolves (RFC 6761).
    let dns = client
        .resolve(&image("registry.pullcheck.invalid/app:v1"), None)
        .await;
    assert!(
        matches!(
            dns,
            Err(RegistryError::Unreachable {
                cause: Unreachable::Dns,
                ..
            })
        ),
        "{dns:?}"
    );
    // A registry whose CA we were not given.
    let fake = FakeRegistry::always(Reply::status(200));
    let tls = client.resolve(&image(&fake.image("app", "v1")), None).await;
    assert!(
        matches!(
            tls,
            Err(RegistryError::Unreachable {
                cause: Unreachable::Tls,
                ..
            })
        ),
        "{tls:?}"
    );
    // A stall.
    let fake = FakeRegistry::always(Reply::Stall);
    let client = client_for(common::ca_file());
    let stalled = client.resolve(&image(&fake.image("app", "v1")), None).await;
    assert!(
        matches!(
            stalled,
            Err(RegistryError::Unreachable {
                cause: Unreachable::Timeout,
                ..
            })
        ),
        "{stalled:?}"
    );
    assert_eq!(stalled.expect_err("an error").reason(), Reason::Timeout);
}

#[tokio::test]
async fn insecure_registries_are_spoken_to_over_plain_http() {
    let fake = FakeRegistry::start_plain_http(|_| {
        Reply::manifest("application/vnd.oci.image.manifest.v1+json", b"{}")
    });
    common::install_crypto_provider();
    let reference = image(&fake.image("app", "v1"));
    let secure = RegistryClient::new(&RegistrySettings {
        address_policy: crate::common::loopback_allowed(),
        request_timeout: Duration::from_secs(2),
        ..RegistrySettings::default()
    })
    .expect("client");
    assert!(matches!(
        secure.resolve(&reference, None).await,
        Err(RegistryError::Unreachable { .. })
    ));
    let insecure = RegistryClient::new(&RegistrySettings {
        address_policy: crate::common::loopback_allowed(),
        insecure_registries: vec![fake.addr()],
        ..RegistrySettings::default()
    })
    .expect("client");
    let got = insecure
        .resolve(&reference, None)
        .await
        .expect("plain http");
    assert!(got.digest.is_some());
}

/// Whether an error is the one a case expects.
type Expectation = fn(&RegistryError) -> bool;

#[tokio::test]
async fn reads_index_platforms_and_single_manifest_configs_by_digest() {
    let service = TokenService::start(token_registry_rules().anonymous(&["multi/*", "arm/*"]));
    let registry = TestRegistry::start(RegistryAuth::Token { service }).await;
    Fixtures::seed(&registry).await;
    let client = client_for(registry.ca_file());
    let platforms_of = |content: &pullcheck::registry::Content| match content {
        pullcheck::registry::Content::Index { platforms, .. } => platforms
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        pullcheck::registry::Content::Image { platform } => vec![format!("image {platform}")],
    };
    let cases = [
        (
            Fixtures::MULTI,
            None,
            vec!["linux/amd64", "linux/arm64/v8", "unknown/unknown"],
        ),
        (Fixtures::LIST, None, vec!["linux/amd64", "linux/arm64/v8"]),
        (Fixtures::ARM_ONLY, None, vec!["linux/arm64"]),
        (
            Fixtures::PRIVATE,
            Some(cred("alice", "wonderland")),
            vec!["image linux/amd64"],
        ),
    ];
    for (repo, credential, want) in cases {
        let reference = image(&format!("{}/{repo}:v1", registry.addr()));
        let resolved = client
            .resolve(&reference, credential.as_ref())
            .await
            .expect(repo);
        let digest = resolved.digest.expect("digest");
        let media_type = resolved.media_type.expect("media type");
        let content = client
            .content(&reference, &digest, &media_type, credential.as_ref())
            .await
            .expect(repo);
        assert_eq!(platforms_of(&content), want, "{repo}");
    }
    // Cached by digest: asking again sends nothing.
    let before = registry.access_log().len();
    let reference = image(&registry.image(Fixtures::MULTI, "v1"));
    let resolved = client.resolve(&reference, None).await.expect("multi");
    client
        .content(
            &reference,
            resolved.digest.as_deref().expect("digest"),
            resolved.media_type.as_deref().expect("type"),
            None,
        )
        .await
        .expect("content");
    let after: Vec<_> = registry.access_log().split_off(before);
    assert_eq!(
        after.iter().filter(|e| e.method == "GET").count(),
        0,
        "{after:?}"
    );
}

#[tokio::test]
async fn content_that_does_not_match_its_digest_is_rejected() {
    let fake = FakeRegistry::start(|req| {
        if req.method == "HEAD" {
            Reply::manifest("application/vnd.oci.image.index.v1+json", b"{}").header(
                "docker-content-digest",
                &format!("sha256:{}", "a".repeat(64)),
            )
        } else {
            Reply::manifest(
                "application/vnd.oci.image.index.v1+json",
                br#"{"manifests":[{"platform":{"os":"linux","architecture":"amd64"}}]}"#,
            )
        }
    });
    let client = client_for(common::ca_file());
    let reference = image(&fake.image("lib/app", "v1"));
    let resolved = client.resolve(&reference, None).await.expect("head");
    let got = client
        .content(
            &reference,
            resolved.digest.as_deref().expect("digest"),
            "application/vnd.oci.image.index.v1+json",
            None,
        )
        .await;
    assert!(
        matches!(got, Err(RegistryError::Protocol { .. })),
        "{got:?}"
    );
}
