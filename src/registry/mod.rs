//! The registry protocol, spoken directly over reqwest: challenge, token, HEAD.
//!
//! We do not use oci-client here: its credential store and token cache are keyed by registry
//! only (one namespace's token would serve the next), and it sends a GET after every HEAD that
//! carries no digest, which Docker Hub counts as a pull. See the README's design notes.

pub mod address;
pub mod challenge;
pub mod content;
pub mod error;
pub mod suggest;

pub use content::Content;
pub use error::{RegistryError, RetryAfter, Unreachable};

use crate::credentials::{Credential, Fingerprint};
use crate::reference::ImageRef;
use address::{AddressPolicy, AddressRefused, PolicyResolver};
use base64::Engine as _;
use challenge::Challenge;
use reqwest::{header, Method, Response, StatusCode};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// All four manifest media types, exactly as containerd sends them. A registry that does not
/// see the index types answers 404 for an OCI index, or rewrites a Docker manifest list to
/// schema1 (distribution `registry/handlers/manifests.go`).
pub const ACCEPT_MANIFESTS: &str = "application/vnd.docker.distribution.manifest.v2+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.oci.image.index.v1+json, */*";

/// Bodies we read (token answers, tag lists, error envelopes) are small; a registry that sends
/// more is not trusted with our memory.
const MAX_BODY: usize = 1 << 20;

/// All pages of a tag list read for suggestions together: enough tags to find a near one,
/// little enough that many failing checks at once cannot exhaust memory.
const TAG_BYTES: usize = 256 << 10;

/// Telling a missing repository from a missing tag, and suggesting tags, is a courtesy on the
/// failure path: it gets this long, so a slow tag list never turns a definite "not found" into
/// "did not answer in time".
const EXPLAIN_TIME: Duration = Duration::from_secs(2);

/// Registry checks in flight across all reviews: a burst of hostile or slow registries
/// queues instead of multiplying connections and buffers.
const CHECKS_IN_FLIGHT: usize = 64;

/// How many pages of a tag list are read for suggestions.
const TAG_PAGES: usize = 5;

/// What the token and content caches may hold each, in bytes (approximately).
const CACHE_BYTES: u64 = 64 << 20;

/// What the challenge cache may hold, in bytes (approximately).
const CHALLENGE_BYTES: u64 = 4 << 20;

fn weight(bytes: usize) -> u32 {
    u32::try_from(bytes).unwrap_or(u32::MAX)
}

/// Registry tokens are JWTs of a few KiB; anything far larger is not kept in the token cache.
const MAX_TOKEN: usize = 16 << 10;

/// Redirects followed per request. Registries redirect blob and manifest reads to storage
/// once; more hops only serve to walk pullcheck around a network.
const MAX_REDIRECTS: usize = 3;

/// How registries are reached: the `registries:` section of the configuration, whose embedded
/// default file also holds the `Default`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegistrySettings {
    /// PEM files whose certificates are trusted in addition to the system roots.
    #[serde(rename = "caFiles")]
    pub extra_ca_files: Vec<PathBuf>,
    /// `host[:port]` spoken to over plain HTTP.
    #[serde(rename = "insecure")]
    pub insecure_registries: Vec<String>,
    #[serde(with = "crate::duration")]
    pub connect_timeout: Duration,
    /// Upper bound for one HTTP exchange; the review budget usually cuts in first.
    #[serde(with = "crate::duration")]
    pub request_timeout: Duration,
    /// Which addresses may be connected to on a tenant's behalf.
    pub address_policy: AddressPolicy,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistrySetupError {
    #[error("cannot read registry CA file {path}: {source}")]
    CaFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("registry CA file {path} holds no PEM certificate")]
    CaEmpty { path: PathBuf },
    #[error("registry CA file {path}: {detail}")]
    CaInvalid { path: PathBuf, detail: String },
    #[error("cannot build the registry HTTP client: {0}")]
    Client(String),
}

/// The manifest a reference resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// `Docker-Content-Digest`; registries that omit it still prove existence.
    pub digest: Option<String>,
    pub media_type: Option<String>,
}

/// A registry client that is safe to share across namespaces: nothing it caches is usable by
/// a request made with different credentials.
pub struct RegistryClient {
    http: reqwest::Client,
    insecure: HashSet<String>,
    addresses: Arc<AddressPolicy>,
    /// Challenges are public (the registry sends them to anyone), so they are keyed by base URL.
    challenges: moka::sync::Cache<String, Challenge>,
    /// Tokens are keyed by the credential's fingerprint as well as realm, service and scope.
    tokens: moka::future::Cache<TokenKey, Token>,
    permits: Arc<tokio::sync::Semaphore>,
    /// Content by (registry, repository, digest); see `content` for why no fingerprint.
    content: moka::future::Cache<(String, String), Arc<Content>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct TokenKey {
    realm: String,
    service: Option<String>,
    scope: String,
    who: Fingerprint,
}

#[derive(Clone)]
struct Token {
    value: Arc<str>,
    expires: Instant,
}

/// Where a manifest lives.
struct Target<'a> {
    base: String,
    repository: &'a str,
}

impl RegistryClient {
    pub fn new(settings: &RegistrySettings) -> Result<Self, RegistrySetupError> {
        let tls = tls_config(&settings.extra_ca_files)?;
        let addresses = Arc::new(settings.address_policy.clone());
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .dns_resolver(Arc::new(PolicyResolver::new(
                addresses.clone(),
                address::proxy_hosts_from_env(),
            )))
            .redirect(redirect_policy(addresses.clone()))
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.request_timeout)
            .user_agent(concat!("pullcheck/", env!("CARGO_PKG_VERSION")))
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| RegistrySetupError::Client(e.to_string()))?;
        Ok(RegistryClient {
            http,
            insecure: settings.insecure_registries.iter().cloned().collect(),
            addresses,
            // Registries rarely change how they authenticate; when they do, a refused answer
            // re-learns the challenge at once, and this bounds how long a stale one is kept.
            permits: Arc::new(tokio::sync::Semaphore::new(CHECKS_IN_FLIGHT)),
            // Bounded in bytes: a tenant can name many registries, each with a long realm.
            challenges: moka::sync::Cache::builder()
                .max_capacity(CHALLENGE_BYTES)
                .weigher(|base: &String, challenge: &Challenge| {
                    weight(base.len() + challenge.approximate_size())
                })
                .time_to_live(Duration::from_secs(600))
                .build(),
            // Both caches are bounded in bytes, not entries: a hostile registry serving many
            // repositories with large tokens or indexes must not grow this process without end.
            tokens: moka::future::Cache::builder()
                .max_capacity(CACHE_BYTES)
                .weigher(|key: &TokenKey, token: &Token| {
                    weight(key.realm.len() + key.scope.len() + token.value.len())
                })
                // No token lives longer than this, whatever the token service says.
                .time_to_live(Duration::from_secs(300))
                .build(),
            content: moka::future::Cache::builder()
                .max_capacity(CACHE_BYTES)
                .weigher(|key: &(String, String), content: &Arc<Content>| {
                    weight(key.0.len() + key.1.len() + content.approximate_size())
                })
                .build(),
        })
    }

    /// Does `image` exist, as the runtime would resolve it with `credential` (anonymous when
    /// `None`)? One HEAD in the common case; a tag list GET only when the answer is 404.
    pub async fn resolve(
        &self,
        image: &ImageRef,
        credential: Option<&Credential>,
    ) -> Result<Resolved, RegistryError> {
        self.guard_registry(image)?;
        // The semaphore is never closed, so acquiring only fails if it were; then go on.
        let _permit = self.permits.acquire().await.ok();
        // containerd pulls anonymously with an empty username and password.
        let credential = credential.filter(|c| !c.is_empty());
        let target = Target {
            base: self.base_url(image),
            repository: image.repository(),
        };
        let url = format!(
            "{}/v2/{}/manifests/{}",
            target.base,
            target.repository,
            image.manifest_reference()
        );
        let (mut resp, authorization) = self
            .send_authorized(Method::HEAD, &url, &target, credential)
            .await?;
        if resp.status() == StatusCode::METHOD_NOT_ALLOWED {
            // containerd turns a 405 on HEAD into a GET (resolver.go).
            resp = self
                .send(Method::GET, &url, authorization.as_deref())
                .await?;
        }
        match resp.status() {
            s if s.is_success() => Ok(Resolved {
                digest: answered_digest(image, header_str(&resp, "docker-content-digest"))?,
                // Media types are short; a longer header is not one, and it would be cached.
                media_type: header_str(&resp, header::CONTENT_TYPE.as_str())
                    .map(|ct| ct.split(';').next().unwrap_or(ct).trim())
                    .filter(|ct| ct.len() <= 255)
                    .map(str::to_owned),
            }),
            StatusCode::NOT_FOUND => {
                let explaining = self.explain_not_found(image, &target, authorization.as_deref());
                Err(tokio::time::timeout(EXPLAIN_TIME, explaining)
                    .await
                    .unwrap_or(RegistryError::ManifestUnknown {
                        suggestions: Vec::new(),
                    }))
            }
            _ => Err(classify_failure(resp, credential.is_some() && authorization.is_some()).await),
        }
    }

    /// What `digest` (just resolved by `resolve` with the same credential) holds: an index's
    /// platforms, or a single manifest's config platform. GET by digest, verified, cached
    /// for good. Only called for the platform check, never on the plain existence path.
    pub async fn content(
        &self,
        image: &ImageRef,
        digest: &str,
        media_type: &str,
        credential: Option<&Credential>,
    ) -> Result<Arc<Content>, RegistryError> {
        let key = (
            format!("{}/{}", image.registry_host(), image.repository()),
            digest.to_string(),
        );
        self.guard_registry(image)?;
        self.content
            .try_get_with(key, async {
                let credential = credential.filter(|c| !c.is_empty());
                let target = Target {
                    base: self.base_url(image),
                    repository: image.repository(),
                };
                let url = format!(
                    "{}/v2/{}/manifests/{digest}",
                    target.base, target.repository
                );
                let body = self.get_verified(&url, &target, credential, digest).await?;
                let content = if content::is_index(media_type) {
                    content::parse_index(&body)?
                } else {
                    let config = content::config_digest(&body)?;
                    let url = format!("{}/v2/{}/blobs/{config}", target.base, target.repository);
                    let body = self
                        .get_verified(&url, &target, credential, &config)
                        .await?;
                    Content::Image {
                        platform: content::parse_config(&body)?,
                    }
                };
                Ok(Arc::new(content))
            })
            .await
            .map_err(|e: Arc<RegistryError>| (*e).clone())
    }

    async fn get_verified(
        &self,
        url: &str,
        target: &Target<'_>,
        credential: Option<&Credential>,
        digest: &str,
    ) -> Result<Vec<u8>, RegistryError> {
        let (resp, _) = self
            .send_authorized(Method::GET, url, target, credential)
            .await?;
        if !resp.status().is_success() {
            return Err(classify_failure(resp, credential.is_some()).await);
        }
        let body = read_limited(resp).await?;
        content::verify(digest, &body)?;
        Ok(body)
    }

    /// No connection at all to a node-local registry (the kubelet pulls it from the node's own
    /// loopback), nor to an address literal the policy refuses.
    fn guard_registry(&self, image: &ImageRef) -> Result<(), RegistryError> {
        let url = url::Url::parse(&self.base_url(image)).map_err(|e| RegistryError::Protocol {
            detail: format!("the registry host does not form a URL: {e}"),
        })?;
        let host = url.host_str().unwrap_or_default();
        if self.addresses.node_local(host) {
            return Err(RegistryError::NodeLocal);
        }
        guard_literal(&self.addresses, &url)
    }

    fn base_url(&self, image: &ImageRef) -> String {
        let scheme = if self.insecure.contains(image.containerd_hostname())
            || self.insecure.contains(image.registry_host())
        {
            "http"
        } else {
            "https"
        };
        format!("{scheme}://{}", image.registry_host())
    }

    /// Sends the request, answering the registry's challenge once. Returns the response and
    /// the `Authorization` value that produced it, for follow-up requests.
    async fn send_authorized(
        &self,
        method: Method,
        url: &str,
        target: &Target<'_>,
        credential: Option<&Credential>,
    ) -> Result<(Response, Option<String>), RegistryError> {
        // A known challenge is answered up front: one round trip instead of two. But a known
        // Basic challenge with no credential to answer it is not a refusal: the registry may
        // allow anonymous reads of this repository (public/* open, private/* behind Basic), so
        // that request goes out bare and the registry decides.
        let mut known = self.challenges.get(&target.base);
        let mut authorization = None;
        let mut answered_fresh = false;
        if let Some(ch) = &known {
            if credential.is_some() || matches!(ch, Challenge::Bearer { .. }) {
                let (value, cached) = self.answer(ch, target, credential, false).await?;
                authorization = Some(value);
                answered_fresh = !cached;
            }
        }
        // At most three requests: bare (or with a cached answer), with a fresh answer, and once
        // more if the registry changed how it wants to be asked in between.
        for _ in 0..3 {
            let resp = self
                .send(method.clone(), url, authorization.as_deref())
                .await?;
            if resp.status() != StatusCode::UNAUTHORIZED {
                return Ok((resp, authorization));
            }
            let sent_credentials = credential.is_some() && authorization.is_some();
            let challenge = challenge::select(
                resp.headers()
                    .get_all(header::WWW_AUTHENTICATE)
                    .iter()
                    .filter_map(|v| v.to_str().ok()),
            );
            let Some(challenge) = challenge else {
                return Err(RegistryError::Unauthorized {
                    with_credentials: sent_credentials,
                    detail: error_message(resp).await,
                });
            };
            let public = challenge.for_registry();
            if answered_fresh && known.as_ref() == Some(&public) {
                // Refused right after a fresh answer to the same challenge: the credentials
                // are not good enough (containerd's `invalidAuthorization`).
                return Err(RegistryError::Unauthorized {
                    with_credentials: sent_credentials,
                    detail: challenge.error().map(str::to_owned),
                });
            }
            // First challenge, a cached token that expired early, or a registry that moved its
            // token service: remember the challenge and answer it afresh.
            self.challenges.insert(target.base.clone(), public.clone());
            let (value, _) = self.answer(&public, target, credential, true).await?;
            authorization = Some(value);
            answered_fresh = true;
            known = Some(public);
        }
        Err(RegistryError::Unauthorized {
            with_credentials: credential.is_some(),
            detail: None,
        })
    }

    /// The `Authorization` header value that answers `challenge`, and whether it came from
    /// the token cache. `fresh` skips the cache.
    async fn answer(
        &self,
        challenge: &Challenge,
        target: &Target<'_>,
        credential: Option<&Credential>,
        fresh: bool,
    ) -> Result<(String, bool), RegistryError> {
        match challenge {
            Challenge::Basic => match credential {
                // Basic is stateless: a refusal is final, there is nothing to refresh.
                Some(c) => Ok((basic_auth(c), false)),
                None => Err(RegistryError::Unauthorized {
                    with_credentials: false,
                    detail: None,
                }),
            },
            Challenge::Bearer { realm, service, .. } => {
                // We always ask for exactly pull on this repository, whatever scope the
                // challenge names: that is the access the kubelet's pull needs.
                let key = TokenKey {
                    realm: realm.clone(),
                    service: service.clone(),
                    scope: format!("repository:{}:pull", target.repository),
                    who: Fingerprint::of(credential),
                };
                if fresh {
                    self.tokens.invalidate(&key).await;
                }
                if let Some(token) = self.tokens.get(&key).await {
                    if token.expires > Instant::now() {
                        return Ok((format!("Bearer {}", token.value), true));
                    }
                    self.tokens.invalidate(&key).await;
                }
                let token = self
                    .tokens
                    .try_get_with(key.clone(), self.fetch_token(&key, credential))
                    .await
                    .map_err(|e| (*e).clone())?;
                Ok((format!("Bearer {}", token.value), false))
            }
        }
    }

    /// GET the realm (distribution `docs/spec/auth/token.md`), with Basic credentials if any.
    async fn fetch_token(
        &self,
        key: &TokenKey,
        credential: Option<&Credential>,
    ) -> Result<Token, RegistryError> {
        let mut url = url::Url::parse(&key.realm).map_err(|e| RegistryError::Protocol {
            detail: format!("token realm {:?} is not a URL: {e}", key.realm),
        })?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err(RegistryError::Protocol {
                detail: "the token realm is not an http(s) URL".into(),
            });
        }
        // A plain-HTTP realm is reached only on a host the operator listed as insecure, never
        // because a registry's challenge asked for it: anonymous requests too, since the realm
        // is any URL the registry's owner chose.
        let realm_host = match (url.host_str(), url.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_string(),
            (None, _) => String::new(),
        };
        if url.scheme() == "http" && !self.insecure.contains(&realm_host) {
            return Err(RegistryError::Protocol {
                detail: "the token realm is plain HTTP on a host not listed as an insecure \
                         registry"
                    .into(),
            });
        }
        {
            let mut q = url.query_pairs_mut();
            if let Some(service) = &key.service {
                q.append_pair("service", service);
            }
            q.append_pair("scope", &key.scope);
        }
        let auth = credential.map(basic_auth);
        let resp = self
            .send(Method::GET, url.as_str(), auth.as_deref())
            .await?;
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED {
            return Err(RegistryError::Unauthorized {
                with_credentials: credential.is_some(),
                detail: Some("the token service rejected the credentials".into()),
            });
        }
        if !status.is_success() {
            return Err(classify_failure(resp, credential.is_some()).await);
        }
        let body = read_limited(resp).await?;
        #[derive(serde::Deserialize)]
        struct TokenAnswer {
            token: Option<String>,
            access_token: Option<String>,
            expires_in: Option<u64>,
        }
        let answer: TokenAnswer =
            serde_json::from_slice(&body).map_err(|e| RegistryError::Protocol {
                detail: format!("token service answered with invalid JSON: {e}"),
            })?;
        // containerd prefers access_token when both are present.
        let value = answer
            .access_token
            .filter(|t| !t.is_empty())
            .or(answer.token.filter(|t| !t.is_empty()))
            .ok_or_else(|| RegistryError::Protocol {
                detail: "token service answered without a token".into(),
            })?;
        if value.len() > MAX_TOKEN {
            return Err(RegistryError::Protocol {
                detail: format!("token service answered a token of {} bytes", value.len()),
            });
        }
        // Default 60 s per the token spec; bounded both ways whatever the service claims, with
        // a margin so a token never expires in flight.
        let lifetime = Duration::from_secs(answer.expires_in.unwrap_or(60).clamp(10, 3600));
        Ok(Token {
            value: value.into(),
            expires: Instant::now() + lifetime - Duration::from_secs(5),
        })
    }

    /// After a 404 on the manifest, one tag-list GET tells a missing repository from a missing
    /// tag (registries answer MANIFEST_UNKNOWN for both on the manifests endpoint) and lets us
    /// suggest the tag that was probably meant. Failure path only.
    async fn explain_not_found(
        &self,
        image: &ImageRef,
        target: &Target<'_>,
        authorization: Option<&str>,
    ) -> RegistryError {
        let url = format!("{}/v2/{}/tags/list", target.base, target.repository);
        let unknown = RegistryError::ManifestUnknown {
            suggestions: Vec::new(),
        };
        let Ok(resp) = self.send(Method::GET, &url, authorization).await else {
            return unknown;
        };
        match resp.status() {
            StatusCode::NOT_FOUND => match error_codes(resp).await {
                codes if codes.iter().any(|c| c == "NAME_UNKNOWN") => RegistryError::NameUnknown,
                _ => unknown,
            },
            s if s.is_success() => {
                // A digest has no "nearest" spelling worth suggesting.
                let Some(tag) = image
                    .digest()
                    .is_none()
                    .then(|| image.tag().unwrap_or("latest"))
                else {
                    return unknown;
                };
                let tags = self.tag_pages(resp, target, authorization).await;
                let suggestions = suggest::nearest_tags(tag, &tags, 3)
                    .into_iter()
                    .map(str::to_owned)
                    .collect();
                RegistryError::ManifestUnknown { suggestions }
            }
            _ => unknown,
        }
    }

    /// The tags of the first pages of a tag list (distribution paginates with `Link: <...>;
    /// rel="next"`, and GHCR or ECR do so early). A few pages are enough for suggestions and
    /// keep the failure path cheap; a page that fails ends the list.
    async fn tag_pages(
        &self,
        first: Response,
        target: &Target<'_>,
        authorization: Option<&str>,
    ) -> Vec<String> {
        #[derive(serde::Deserialize)]
        struct TagList {
            tags: Option<Vec<String>>,
        }
        let mut tags = Vec::new();
        let mut page = Some(first);
        let mut budget = TAG_BYTES;
        for _ in 0..TAG_PAGES {
            let Some(resp) = page.take() else { break };
            let next = header_str(&resp, header::LINK.as_str()).and_then(next_link);
            match read_at_most(resp, budget).await {
                Ok(body) => {
                    budget -= body.len();
                    tags.extend(
                        serde_json::from_slice::<TagList>(&body)
                            .ok()
                            .and_then(|t| t.tags)
                            .unwrap_or_default(),
                    )
                }
                Err(_) => break,
            }
            // Only links on the registry itself: never follow a registry elsewhere.
            let Some(next) = next.filter(|n| n.starts_with('/')) else {
                break;
            };
            let url = format!("{}{next}", target.base);
            page = match self.send(Method::GET, &url, authorization).await {
                Ok(resp) if resp.status().is_success() => Some(resp),
                _ => None,
            };
        }
        tags
    }

    async fn send(
        &self,
        method: Method,
        url: &str,
        authorization: Option<&str>,
    ) -> Result<Response, RegistryError> {
        let parsed = url::Url::parse(url).map_err(|e| RegistryError::Protocol {
            detail: format!("not a URL: {e}"),
        })?;
        guard_literal(&self.addresses, &parsed)?;
        let mut req = self
            .http
            .request(method, parsed)
            .header(header::ACCEPT, ACCEPT_MANIFESTS);
        if let Some(a) = authorization {
            req = req.header(header::AUTHORIZATION, a);
        }
        req.send().await.map_err(classify_transport)
    }
}

fn basic_auth(c: &Credential) -> String {
    let raw = format!("{}:{}", c.username(), c.password());
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// The digest a registry answered, checked: it lands in caches, audit annotations, messages and
/// URLs, so it must be a well-formed digest, and for a digest reference the one asked for.
fn answered_digest(
    image: &ImageRef,
    header: Option<&str>,
) -> Result<Option<String>, RegistryError> {
    let Some(answered) = header else {
        // Older registries may omit it; a digest reference names its own.
        return Ok(image.digest().map(str::to_owned));
    };
    crate::reference::validate_digest(answered, crate::reference::DigestAlgorithms::KUBELET)
        .map_err(|e| RegistryError::Protocol {
            detail: format!("Docker-Content-Digest is not a valid digest ({e})"),
        })?;
    match image.digest() {
        Some(asked) if asked != answered => Err(RegistryError::Protocol {
            detail: format!("asked for {asked}, the registry answered {answered}"),
        }),
        _ => Ok(Some(answered.to_owned())),
    }
}

/// The target of `rel="next"` in a `Link` header (RFC 8288), e.g.
/// `</v2/app/tags/list?last=v1.9&n=100>; rel="next"`.
fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|link| {
        let (target, params) = link.trim().split_once(';')?;
        let is_next = params
            .split(';')
            .any(|p| p.trim().replace(' ', "") == "rel=\"next\"" || p.trim() == "rel=next");
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        is_next.then(|| target.to_string())
    })
}

fn header_str<'a>(resp: &'a Response, name: &str) -> Option<&'a str> {
    resp.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Classifies a non-success, non-404 answer to a request made with (or without) credentials.
async fn classify_failure(resp: Response, with_credentials: bool) -> RegistryError {
    let status = resp.status();
    match status {
        StatusCode::UNAUTHORIZED => RegistryError::Unauthorized {
            with_credentials,
            detail: error_message(resp).await,
        },
        StatusCode::FORBIDDEN => RegistryError::Denied {
            detail: error_message(resp).await,
        },
        StatusCode::TOO_MANY_REQUESTS => RegistryError::RateLimited {
            retry_after: header_str(&resp, header::RETRY_AFTER.as_str())
                .and_then(RetryAfter::parse),
        },
        s if s.is_server_error() => RegistryError::Server {
            status: s.as_u16(),
            detail: error_message(resp).await,
        },
        s => RegistryError::Protocol {
            detail: format!("HTTP {s}"),
        },
    }
}

async fn read_limited(resp: Response) -> Result<Vec<u8>, RegistryError> {
    read_at_most(resp, MAX_BODY).await
}

async fn read_at_most(mut resp: Response, limit: usize) -> Result<Vec<u8>, RegistryError> {
    let mut body = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > limit {
                    return Err(RegistryError::Protocol {
                        detail: format!("answer larger than {limit} bytes"),
                    });
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) => return Err(classify_transport(e)),
        }
    }
}

#[derive(serde::Deserialize)]
struct ErrorEnvelope {
    #[serde(default)]
    errors: Vec<ErrorEntry>,
}

#[derive(serde::Deserialize)]
struct ErrorEntry {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

async fn error_entries(resp: Response) -> Vec<ErrorEntry> {
    match read_limited(resp).await {
        Ok(body) => serde_json::from_slice::<ErrorEnvelope>(&body)
            .map(|e| e.errors)
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    }
}

async fn error_codes(resp: Response) -> Vec<String> {
    error_entries(resp)
        .await
        .into_iter()
        .map(|e| e.code)
        .collect()
}

/// The registry's own first error message, trimmed to something a person reads in one line.
async fn error_message(resp: Response) -> Option<String> {
    error_entries(resp)
        .await
        .into_iter()
        .map(|e| {
            if e.message.is_empty() {
                e.code
            } else {
                e.message
            }
        })
        .find(|m| !m.is_empty())
        .map(|m| m.chars().take(200).collect())
}

/// An address literal in a URL is never resolved, so the resolver cannot refuse it: check it
/// here, before the request and at every redirect hop.
fn guard_literal(policy: &AddressPolicy, url: &url::Url) -> Result<(), RegistryError> {
    let ip = match url.host() {
        Some(url::Host::Ipv4(ip)) => std::net::IpAddr::V4(ip),
        Some(url::Host::Ipv6(ip)) => std::net::IpAddr::V6(ip),
        _ => return Ok(()),
    };
    policy
        .check(url.host_str().unwrap_or_default(), ip)
        .map_err(|refusal| {
            tracing::debug!(?refusal, "refused a registry address");
            RegistryError::AddressNotAllowed
        })
}

/// A few hops at most, never from https to http, each hop's address under the policy.
/// reqwest itself drops `Authorization` when a hop leaves the origin.
fn redirect_policy(addresses: Arc<AddressPolicy>) -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() > MAX_REDIRECTS {
            return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
        }
        let downgrade = attempt.url().scheme() == "http"
            && attempt.previous().iter().any(|u| u.scheme() == "https");
        if downgrade {
            return attempt.error("a redirect from https to plain http");
        }
        match guard_literal(&addresses, attempt.url()) {
            Ok(()) => attempt.follow(),
            Err(_) => attempt.error(AddressRefused(address::Refusal::DenyRule)),
        }
    })
}

/// Tells DNS failure, refused connection, timeout and TLS failure apart, from the error chain.
fn classify_transport(err: reqwest::Error) -> RegistryError {
    // Outer errors repeat the URL and wrap the inner ones; the innermost says what happened.
    let mut text = String::new();
    let mut cause = if err.is_timeout() {
        Some(Unreachable::Timeout)
    } else {
        None
    };
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    while let Some(e) = source {
        // Nothing learned about a refused target is told: not its name's addresses, not why.
        if e.downcast_ref::<AddressRefused>().is_some() {
            return RegistryError::AddressNotAllowed;
        }
        let s = e.to_string();
        if !s.is_empty() {
            text.clone_from(&s);
        }
        if cause.is_none() {
            if e.downcast_ref::<rustls::Error>().is_some()
                || s.contains("invalid peer certificate")
                || s.contains("received fatal alert")
            {
                cause = Some(Unreachable::Tls);
            } else if let Some(io) = e.downcast_ref::<std::io::Error>() {
                cause = match io.kind() {
                    std::io::ErrorKind::ConnectionRefused => Some(Unreachable::ConnectionRefused),
                    std::io::ErrorKind::TimedOut => Some(Unreachable::Timeout),
                    _ if io
                        .get_ref()
                        .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some()) =>
                    {
                        Some(Unreachable::Tls)
                    }
                    _ => None,
                };
            } else if s.contains("dns error") || s.contains("failed to lookup address") {
                cause = Some(Unreachable::Dns);
            }
        }
        source = e.source();
    }
    let cause = cause.unwrap_or(Unreachable::Connection);
    let detail = match cause {
        // The certificate's own names would map internal services for whoever chose the host:
        // say what is wrong with it, never what it says.
        Unreachable::Tls => tls_problem(&text).to_string(),
        _ => crate::text::clean(&text, 200),
    };
    RegistryError::Unreachable { cause, detail }
}

/// What rustls found wrong with a certificate, without its contents.
fn tls_problem(text: &str) -> &'static str {
    if text.contains("UnknownIssuer") {
        "certificate signed by an unknown authority"
    } else if text.contains("NotValidForName") {
        "certificate not valid for this host name"
    } else if text.contains("Expired") {
        "certificate expired"
    } else if text.contains("NotValidYet") {
        "certificate not valid yet"
    } else if text.contains("Revoked") {
        "certificate revoked"
    } else if text.contains("certificate") {
        "certificate rejected"
    } else {
        "handshake failed"
    }
}

fn tls_config(extra_ca_files: &[PathBuf]) -> Result<rustls::ClientConfig, RegistrySetupError> {
    let mut roots = rustls::RootCertStore::empty();
    // A missing or partly unreadable system store is not fatal: private registries work with
    // the configured CAs alone.
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        let _ = roots.add(cert);
    }
    for path in extra_ca_files {
        let pem = std::fs::read(path).map_err(|source| RegistrySetupError::CaFile {
            path: path.clone(),
            source,
        })?;
        let mut count = 0;
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            let cert = cert.map_err(|e| RegistrySetupError::CaInvalid {
                path: path.clone(),
                detail: e.to_string(),
            })?;
            roots.add(cert).map_err(|e| RegistrySetupError::CaInvalid {
                path: path.clone(),
                detail: e.to_string(),
            })?;
            count += 1;
        }
        if count == 0 {
            return Err(RegistrySetupError::CaEmpty { path: path.clone() });
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| RegistrySetupError::Client(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::next_link;

    #[test]
    fn finds_the_next_page_of_a_tag_list() {
        let cases = [
            (
                r#"</v2/app/tags/list?last=v1.9&n=100>; rel="next""#,
                Some("/v2/app/tags/list?last=v1.9&n=100"),
            ),
            (r#"</a>; rel="prev", </b>; rel="next""#, Some("/b")),
            (r#"</a>; rel=next"#, Some("/a")),
            (r#"</a>; rel="prev""#, None),
            ("garbage", None),
            ("", None),
        ];
        for (header, want) in cases {
            assert_eq!(next_link(header).as_deref(), want, "{header}");
        }
    }
}
