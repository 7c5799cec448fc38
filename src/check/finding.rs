//! Findings as data: what the engine found, about which image use or about the pod, with the
//! facts a message needs. Words are chosen only at the edge (`policy::words`), so the webhook,
//! `explain` and any later front end say the same thing. Building them is pure.

use std::time::Duration;

use crate::credentials::keyring::{self, NearMiss};
use crate::credentials::resolve::{PodCredentials, SecretNote};
use crate::platform::{Platform, PlatformCheck, Target};
use crate::reason::Reason;
use crate::reference::{ImageRef, ReferenceError};
use crate::registry::{RegistryError, Resolved};
use crate::workload::{ImageUse, Location, PullPolicy};

use super::outcome::CheckOutcome;

/// When to advise against mutable tags.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize, clap::ValueEnum,
)]
#[serde(rename_all = "camelCase")]
pub enum MutableTagAdvice {
    Off,
    /// `:latest` (or no tag) with `IfNotPresent`: nodes keep running whatever they cached.
    IfNotPresent,
    /// Every reference not pinned by digest.
    Unpinned,
}

/// One thing to tell the user.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// The image use it is about; `None` when it is about the pod as a whole (its secrets).
    pub subject: Option<Subject>,
    pub fact: Fact,
}

/// An image use a finding is about.
#[derive(Debug, Clone, PartialEq)]
pub struct Subject {
    /// `None` for an image asked about on its own (`explain`).
    pub location: Option<Location>,
    /// As written in the object.
    pub image: String,
    /// Parsed, when the reference is valid.
    pub reference: Option<ImageRef>,
}

/// What was found, with what its message needs to say.
#[derive(Debug, Clone, PartialEq)]
pub enum Fact {
    InvalidReference(ReferenceError),
    /// The registry refused, lacked or could not serve the image.
    Registry {
        error: RegistryError,
        /// Where the credential of the telling attempt came from (`None`: anonymous).
        credential_source: Option<String>,
        /// Why the pull was anonymous although the pod seems to have meant to authenticate
        /// (only for an anonymous refusal).
        anonymous_because: Vec<AnonymousCause>,
    },
    /// The review budget ran out first.
    TimedOut {
        budget: Duration,
    },
    CredentialsUnknown {
        detail: String,
    },
    NodeCredentials,
    /// An index with none of the pod's platforms.
    PlatformMissing {
        provided: Vec<Platform>,
        missing: Vec<Target>,
    },
    /// An index with only some of them.
    PlatformPartial {
        provided: Vec<Target>,
        missing: Vec<Target>,
    },
    /// A single-platform image that the pod's nodes cannot execute.
    PlatformMismatch {
        image: Platform,
        targets: Vec<Target>,
    },
    MutableTag {
        tag: String,
        pull_policy: PullPolicy,
        /// `name@digest` to pin to, when the digest is known.
        pin: Option<String>,
    },
    /// Pull secrets of the pod that cannot be parsed: (secret name, the parser's words).
    SecretsMalformed {
        secrets: Vec<(String, String)>,
    },
    /// A secret the kubelet skips or a service account that is missing.
    SecretIgnored {
        note: SecretNote,
        namespace: String,
        /// The service account that listed the secret, for templates.
        via_account: Option<String>,
    },
}

/// Why a pull went out anonymously although credentials seem to have been meant for it.
#[derive(Debug, Clone, PartialEq)]
pub enum AnonymousCause {
    /// A matching entry without a username (the kubelet ignores identity tokens).
    NoUsername { source: String, key: String },
    /// An entry that looks meant for the image but does not match it.
    NearMiss { miss: NearMiss, host: String },
    /// A referenced secret that does not exist in the pod's namespace.
    SecretMissing { name: String, namespace: String },
    /// A referenced secret that is not a pull secret.
    NotPullSecret { name: String },
}

impl Fact {
    /// The one reason this fact is counted, logged and worded under.
    pub fn reason(&self) -> Reason {
        match self {
            Fact::InvalidReference(_) => Reason::InvalidReference,
            Fact::Registry { error, .. } => error.reason(),
            Fact::TimedOut { .. } => Reason::Timeout,
            Fact::CredentialsUnknown { .. } => Reason::CredentialsUnknown,
            Fact::NodeCredentials => Reason::NodeCredentials,
            Fact::PlatformMissing { .. } => Reason::PlatformMissing,
            Fact::PlatformPartial { .. } => Reason::PlatformPartial,
            Fact::PlatformMismatch { .. } => Reason::PlatformMismatch,
            Fact::MutableTag { .. } => Reason::MutableTag,
            Fact::SecretsMalformed { .. } => Reason::SecretInvalid,
            Fact::SecretIgnored { .. } => Reason::SecretIgnored,
        }
    }
}

impl Finding {
    pub fn reason(&self) -> Reason {
        self.fact.reason()
    }

    /// The image as written, for findings about an image.
    pub fn image(&self) -> Option<&str> {
        self.subject.as_ref().map(|s| s.image.as_str())
    }
}

/// The findings for one image use, from how its image's check ended.
pub fn image_findings(
    image_use: &ImageUse,
    reference: Option<&ImageRef>,
    outcome: &CheckOutcome,
    credentials: &PodCredentials,
    mutable_tags: MutableTagAdvice,
) -> Vec<Finding> {
    let facts: Vec<Fact> = match outcome {
        CheckOutcome::Found {
            resolved,
            platforms,
            ..
        } => platform_fact(platforms)
            .into_iter()
            .chain(reference.and_then(|r| mutable_tag(image_use, r, resolved, mutable_tags)))
            .collect(),
        CheckOutcome::Invalid(e) => vec![Fact::InvalidReference(e.clone())],
        CheckOutcome::Failed {
            error,
            credential_source,
        } => {
            let anonymous_because = match (error, reference) {
                (
                    RegistryError::Unauthorized {
                        with_credentials: false,
                        ..
                    },
                    Some(reference),
                ) => anonymous_causes(reference, credentials),
                _ => Vec::new(),
            };
            vec![Fact::Registry {
                error: error.clone(),
                credential_source: credential_source.clone(),
                anonymous_because,
            }]
        }
        CheckOutcome::TimedOut { budget } => vec![Fact::TimedOut { budget: *budget }],
        // The pod's finding, said once by `secret_findings`.
        CheckOutcome::SecretInvalid => Vec::new(),
        CheckOutcome::CredentialsUnknown { detail } => vec![Fact::CredentialsUnknown {
            detail: detail.clone(),
        }],
        CheckOutcome::NodeCredentials => vec![Fact::NodeCredentials],
    };
    facts
        .into_iter()
        .map(|fact| Finding {
            subject: Some(Subject {
                location: image_use.location.clone(),
                image: image_use.image.clone(),
                reference: reference.cloned(),
            }),
            fact,
        })
        .collect()
}

fn platform_fact(check: &PlatformCheck) -> Option<Fact> {
    match check {
        PlatformCheck::NotChecked | PlatformCheck::Covered => None,
        PlatformCheck::Missing { provided, missing } => Some(Fact::PlatformMissing {
            provided: provided.clone(),
            missing: missing.clone(),
        }),
        PlatformCheck::Partial { provided, missing } => Some(Fact::PlatformPartial {
            provided: provided.clone(),
            missing: missing.clone(),
        }),
        PlatformCheck::SingleMismatch { image, targets } => Some(Fact::PlatformMismatch {
            image: image.clone(),
            targets: targets.clone(),
        }),
    }
}

fn mutable_tag(
    image_use: &ImageUse,
    image: &ImageRef,
    resolved: &Resolved,
    advice: MutableTagAdvice,
) -> Option<Fact> {
    if image.digest().is_some() || image_use.pull_policy == PullPolicy::Never {
        return None;
    }
    let tag = image.tag().unwrap_or("latest");
    let applies = match advice {
        MutableTagAdvice::Off => false,
        // Kubernetes defaults :latest to Always, so this only happens when someone set
        // IfNotPresent explicitly; then nodes keep whatever :latest they pulled first.
        MutableTagAdvice::IfNotPresent => {
            tag == "latest" && image_use.pull_policy == PullPolicy::IfNotPresent
        }
        MutableTagAdvice::Unpinned => true,
    };
    applies.then(|| Fact::MutableTag {
        tag: tag.to_string(),
        pull_policy: image_use.pull_policy,
        pin: resolved
            .digest
            .as_ref()
            .map(|d| format!("{}@{d}", image.familiar_name())),
    })
}

/// Why an anonymous pull happened although the pod may have meant to authenticate: what the
/// keyring says about the image, and secrets the kubelet skipped.
fn anonymous_causes(image: &ImageRef, credentials: &PodCredentials) -> Vec<AnonymousCause> {
    let mut causes = credential_hints(image, credentials);
    for note in &credentials.notes {
        match note {
            SecretNote::Missing { name } => causes.push(AnonymousCause::SecretMissing {
                name: name.clone(),
                namespace: credentials.namespace.clone(),
            }),
            SecretNote::NotPullSecret { name, .. } => {
                causes.push(AnonymousCause::NotPullSecret { name: name.clone() })
            }
            SecretNote::AccountMissing { .. } | SecretNote::NotRead { .. } => {}
        }
    }
    causes
}

/// What the keyring itself says about an image: matching entries without a username (an
/// anonymous pull), and keys that look meant for it but do not match.
pub fn credential_hints(image: &ImageRef, credentials: &PodCredentials) -> Vec<AnonymousCause> {
    let repo = image.name();
    let no_username = credentials
        .keyring
        .lookup(&repo)
        .into_iter()
        .filter(|m| m.credential.is_empty())
        .map(|m| AnonymousCause::NoUsername {
            source: m.credential.source().to_string(),
            key: m.key,
        });
    let near = keyring::near_misses(&credentials.keyring.keys(), &repo)
        .into_iter()
        .map(|miss| AnonymousCause::NearMiss {
            miss,
            host: image.containerd_hostname().to_string(),
        });
    no_username.chain(near).collect()
}

/// Findings about the pod's secrets themselves, found once per pod.
pub fn secret_findings(credentials: &PodCredentials) -> Vec<Finding> {
    let malformed: Vec<(String, String)> = credentials
        .invalid
        .iter()
        .map(|(name, e)| (name.clone(), e.to_string()))
        .collect();
    let broken = (!malformed.is_empty()).then_some(Fact::SecretsMalformed { secrets: malformed });
    broken
        .into_iter()
        .chain(credentials.notes.iter().map(|note| Fact::SecretIgnored {
            note: note.clone(),
            namespace: credentials.namespace.clone(),
            via_account: credentials.via_account.clone(),
        }))
        .map(|fact| Finding {
            subject: None,
            fact,
        })
        .collect()
}
