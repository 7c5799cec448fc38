//! From a pod's secret references to the keyring the kubelet will build.

use super::cluster::{AccountLookup, ClusterReader, ReadError, SecretLookup};
use super::dockerconfig::DockerConfigError;
use super::keyring::{Keyring, Match};
use super::pod::SecretRefs;
use futures::StreamExt as _;

/// What the kubelet will have in hand for this pod's pulls, and what a user should hear about
/// the secrets on the way.
#[derive(Debug, Default)]
pub struct PodCredentials {
    pub namespace: String,
    pub keyring: Keyring,
    /// The service account whose secrets these are, for a template that lists none.
    pub via_account: Option<String>,
    /// The secret names that were considered, in order.
    pub secrets: Vec<String>,
    pub notes: Vec<SecretNote>,
    /// Pull secrets the kubelet cannot parse: `MakeDockerKeyring` fails, and with it every
    /// pull of the pod, whatever the registry.
    pub invalid: Vec<(String, DockerConfigError)>,
    /// The API could not be asked: which credentials apply is unknown.
    pub unknown: Option<ReadError>,
}

/// Something about the pod's secrets worth a warning even when every image resolves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretNote {
    /// Referenced but absent from the namespace; the kubelet skips it.
    Missing { name: String },
    /// Not a `kubernetes.io/dockerconfigjson` or `kubernetes.io/dockercfg` secret (or its
    /// payload is empty); the kubelet ignores it.
    NotPullSecret { name: String, why: String },
    /// A template's service account does not exist (yet): its pods will not be created until
    /// it does, and it contributes no secrets.
    AccountMissing { name: String },
    /// pullcheck runs without Kubernetes API access and could not read these.
    NotRead { names: Vec<String> },
}

impl PodCredentials {
    /// No secrets, no notes: what an anonymous pull uses.
    pub fn anonymous(namespace: &str) -> Self {
        PodCredentials {
            namespace: namespace.to_string(),
            ..PodCredentials::default()
        }
    }
}

/// Reads the referenced objects from the pod's own namespace, in order, and builds one keyring
/// from every usable secret (`BasicDockerKeyring` takes all of them, in pod order).
pub async fn resolve(
    reader: Option<&ClusterReader>,
    namespace: &str,
    refs: SecretRefs,
) -> PodCredentials {
    let mut out = PodCredentials::anonymous(namespace);
    let Some(reader) = reader else {
        if let SecretRefs::Listed(names) = refs {
            if !names.is_empty() {
                out.notes.push(SecretNote::NotRead { names });
            }
        }
        return out;
    };
    let names = match refs {
        SecretRefs::Listed(names) => names,
        SecretRefs::ServiceAccount(account) => {
            match reader.service_account(namespace, &account).await {
                Err(e) => {
                    out.unknown = Some(e);
                    return out;
                }
                Ok(found) => {
                    out.via_account = Some(account.clone());
                    match &*found {
                        AccountLookup::Missing => {
                            out.notes.push(SecretNote::AccountMissing { name: account });
                            return out;
                        }
                        AccountLookup::PullSecrets(names) => names.clone(),
                    }
                }
            }
        }
    };
    // In pod order, a few at a time: a pod listing hundreds of names must not fire hundreds
    // of API requests at once.
    let reads: Vec<_> = names
        .iter()
        .map(|name| reader.secret(namespace, name))
        .collect();
    let lookups: Vec<_> = futures::stream::iter(reads).buffered(8).collect().await;
    for (name, lookup) in names.iter().zip(lookups) {
        out.secrets.push(name.clone());
        match lookup {
            Err(e) => {
                out.unknown.get_or_insert(e);
            }
            Ok(found) => out.add_secret(name, &found),
        }
    }
    out
}

impl PodCredentials {
    /// Takes one referenced secret as the kubelet does: entries join the keyring (in pod
    /// order), a missing or non-pull secret is skipped with a note, a malformed one poisons
    /// every pull of the pod.
    pub fn add_secret(&mut self, name: &str, lookup: &SecretLookup) {
        match lookup {
            SecretLookup::Missing => self.notes.push(SecretNote::Missing {
                name: name.to_string(),
            }),
            SecretLookup::NotPullSecret { why } => self.notes.push(SecretNote::NotPullSecret {
                name: name.to_string(),
                why: why.clone(),
            }),
            SecretLookup::Invalid(e) => self.invalid.push((name.to_string(), e.clone())),
            SecretLookup::Entries(entries) => self
                .keyring
                .add(&secret_source(&self.namespace, name), entries),
        }
    }
}

/// The credentials the kubelet tries for `repo_to_pull`, in order: the pod's secrets, then the
/// node keyring (`UnionDockerKeyring`).
pub fn candidates(pod: &PodCredentials, node: Option<&Keyring>, repo_to_pull: &str) -> Vec<Match> {
    let mut matched = pod.keyring.lookup(repo_to_pull);
    if let Some(node) = node {
        matched.extend(node.lookup(repo_to_pull));
    }
    matched
}

/// How a secret is named in messages and audit annotations (`secret prod/regcred`, or just
/// `secret regcred` for a manifest that names no namespace).
pub fn secret_source(namespace: &str, name: &str) -> String {
    if namespace.is_empty() {
        format!("secret {name}")
    } else {
        format!("secret {namespace}/{name}")
    }
}
