//! Pull secrets and service accounts read from the Kubernetes API.
//!
//! We GET only the objects a pod names, in the pod's own namespace, through a short-lived
//! cache that also coalesces concurrent reads. We deliberately do not watch every Secret in
//! the cluster: that would hold every namespace's secrets (TLS keys, tokens) in this
//! process's memory and need list/watch on all secrets; `get` is the least privilege that
//! answers the question. Only the parsed registry entries are cached, never the raw secret.

use super::dockerconfig::{self, DockerConfigEntry, DockerConfigError};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::api::Api;
use moka::Expiry;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a referenced secret turned out to be.
#[derive(Debug, Clone, PartialEq)]
pub enum SecretLookup {
    /// Not in the namespace: the kubelet skips it (`FailedToRetrieveImagePullSecret`).
    Missing,
    /// Exists but is not of a pull-secret type (e.g. Opaque), or its payload is empty: the
    /// kubelet ignores it.
    NotPullSecret {
        why: String,
    },
    /// A pull secret the kubelet cannot parse: every pull of the pod fails.
    Invalid(DockerConfigError),
    Entries(Vec<DockerConfigEntry>),
}

/// What a service account lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountLookup {
    Missing,
    PullSecrets(Vec<String>),
}

/// The API could not be asked (down, timed out, forbidden): we cannot tell which credentials
/// the kubelet will use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {}: {detail}", object_name(.namespace, .name))]
pub struct ReadError {
    pub what: &'static str,
    pub namespace: String,
    pub name: String,
    pub detail: String,
}

fn object_name(namespace: &str, name: &str) -> String {
    if name.is_empty() {
        format!("in namespace {namespace}")
    } else {
        format!("{namespace}/{name}")
    }
}

/// How the Kubernetes API is used: the `kubernetes:` section of the configuration, whose
/// embedded default file also holds the `Default`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterSettings {
    /// Whether to use the API at all (for pull secrets, and for Nodes when the platform check
    /// watches them).
    pub enabled: KubernetesMode,
    /// How long a secret or service account that exists is kept.
    #[serde(rename = "cacheTtl", with = "crate::duration")]
    pub ttl: Duration,
    /// How long "not found" is kept: short, so a secret created after a denial counts soon.
    #[serde(with = "crate::duration")]
    pub missing_ttl: Duration,
    /// Upper bound for one API call.
    #[serde(with = "crate::duration")]
    pub request_timeout: Duration,
}

/// Whether to read pull secrets from the Kubernetes API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KubernetesMode {
    /// In-cluster configuration or KUBECONFIG when present; otherwise run without (dev).
    Auto,
    /// Never: images are checked anonymously.
    Off,
}

type Key = (String, String);

struct Timed<T> {
    value: Arc<T>,
    ttl: Duration,
}

// By hand: the derive would demand `T: Clone`, but only the Arc is cloned.
impl<T> Clone for Timed<T> {
    fn clone(&self) -> Self {
        Timed {
            value: self.value.clone(),
            ttl: self.ttl,
        }
    }
}

struct ByEntry;

impl<T> Expiry<Key, Timed<T>> for ByEntry {
    fn expire_after_create(&self, _: &Key, v: &Timed<T>, _: Instant) -> Option<Duration> {
        Some(v.ttl)
    }
}

pub struct ClusterReader {
    client: kube::Client,
    settings: ClusterSettings,
    secrets: moka::future::Cache<Key, Timed<SecretLookup>>,
    accounts: moka::future::Cache<Key, Timed<AccountLookup>>,
}

impl ClusterReader {
    pub fn new(client: kube::Client, settings: ClusterSettings) -> Self {
        ClusterReader {
            client,
            settings,
            secrets: timed_cache(),
            accounts: timed_cache(),
        }
    }

    pub async fn secret(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Arc<SecretLookup>, ReadError> {
        self.read(
            &self.secrets,
            "secret",
            namespace,
            name,
            |found| match found {
                None => SecretLookup::Missing,
                Some(secret) => classify_secret(&secret),
            },
        )
        .await
    }

    pub async fn service_account(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Arc<AccountLookup>, ReadError> {
        self.read(
            &self.accounts,
            "service account",
            namespace,
            name,
            |found: Option<ServiceAccount>| match found {
                None => AccountLookup::Missing,
                Some(sa) => AccountLookup::PullSecrets(
                    sa.image_pull_secrets
                        .unwrap_or_default()
                        .into_iter()
                        .map(|r| r.name)
                        .filter(|n| !n.is_empty())
                        .collect(),
                ),
            },
        )
        .await
    }

    /// GET one object through `cache`: concurrent reads of the same name share one request,
    /// "not found" is kept for `missing_ttl`, errors are not kept at all.
    async fn read<K, T>(
        &self,
        cache: &moka::future::Cache<Key, Timed<T>>,
        what: &'static str,
        namespace: &str,
        name: &str,
        convert: impl FnOnce(Option<K>) -> T,
    ) -> Result<Arc<T>, ReadError>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
        <K as kube::Resource>::DynamicType: Default,
        T: Send + Sync + 'static,
    {
        let key = (namespace.to_string(), name.to_string());
        let settings = self.settings;
        let api: Api<K> = Api::namespaced(self.client.clone(), namespace);
        cache
            .try_get_with(key, async move {
                let found = get(&api, what, namespace, name, settings.request_timeout).await?;
                let ttl = if found.is_some() {
                    settings.ttl
                } else {
                    settings.missing_ttl
                };
                Ok(Timed {
                    value: Arc::new(convert(found)),
                    ttl,
                })
            })
            .await
            .map(|t| t.value)
            .map_err(|e: Arc<ReadError>| (*e).clone())
    }
}

fn timed_cache<T: Send + Sync + 'static>() -> moka::future::Cache<Key, Timed<T>> {
    moka::future::Cache::builder()
        .max_capacity(20_000)
        .expire_after(ByEntry)
        .build()
}

async fn get<K>(
    api: &Api<K>,
    what: &'static str,
    namespace: &str,
    name: &str,
    timeout: Duration,
) -> Result<Option<K>, ReadError>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let failed = |detail: String| ReadError {
        what,
        namespace: namespace.to_string(),
        name: name.to_string(),
        detail,
    };
    match tokio::time::timeout(timeout, api.get_opt(name)).await {
        Err(_) => Err(failed(format!(
            "the Kubernetes API did not answer within {}ms",
            timeout.as_millis()
        ))),
        // Never include the error's Debug form: it could carry response bodies.
        Ok(Err(kube::Error::Api(status))) => Err(failed(format!(
            "the Kubernetes API answered {} {}",
            status.code, status.reason
        ))),
        Ok(Err(e)) => Err(failed(format!(
            "the Kubernetes API could not be reached: {e}"
        ))),
        Ok(Ok(found)) => Ok(found),
    }
}

/// The kubelet's type gate, then its parser (`pkg/credentialprovider/secrets`).
pub fn classify_secret(secret: &Secret) -> SecretLookup {
    let data: BTreeMap<String, Vec<u8>> = secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect();
    match dockerconfig::pull_secret_payload(secret.type_.as_deref(), &data) {
        Err(why) => SecretLookup::NotPullSecret {
            why: why.to_string(),
        },
        Ok((kind, payload)) => match dockerconfig::parse(kind, payload) {
            Ok(entries) => SecretLookup::Entries(entries),
            Err(e) => SecretLookup::Invalid(e),
        },
    }
}
