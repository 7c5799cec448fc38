//! Outcome + mode -> verdict, and the words of every message. Pure.

use crate::admission::extract::ImageUse;
use crate::credentials::keyring;
use crate::credentials::resolve::{PodCredentials, SecretNote};
use crate::placement::{self, Target};
use crate::platform::Platform;
use crate::reason::{Reason, ReasonClass};
use crate::reference::{ImageRef, PullPolicy, ReferenceError};
use crate::registry::Content;
use crate::registry::{RegistryError, Resolved, Unreachable};
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime};

/// What the webhook does with what it finds in a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Deny workloads whose images cannot be pulled.
    Enforce,
    /// Admit, with every finding as a warning (kubectl prints `Warning: ...`).
    Warn,
    /// Check nothing.
    Off,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Warn => "warn",
            Mode::Off => "off",
        }
    }
}

/// What to do when the registry, not the workload, is at fault (unreachable, rate limited,
/// 5xx, out of time). Admitting is the default: blocking every deploy during a registry
/// outage is worse than the pull failing later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum FailureAction {
    Allow,
    Deny,
}

/// When to advise against mutable tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "camelCase")]
pub enum MutableTagAdvice {
    Off,
    /// `:latest` (or no tag) with `IfNotPresent`: nodes keep running whatever they cached.
    IfNotPresent,
    /// Every reference not pinned by digest.
    Unpinned,
}

/// The keys `registryFailure` and `mutableTags`, at the top level of the configuration, whose
/// embedded default file also holds the `Default`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicySettings {
    pub registry_failure: FailureAction,
    pub mutable_tags: MutableTagAdvice,
}

/// How the check of one distinct image ended.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckOutcome {
    Found {
        resolved: Resolved,
        /// Where the credential that worked came from (`None`: anonymous).
        credential_source: Option<String>,
        /// Whether the pod's nodes can pull and run it.
        platforms: PlatformCheck,
    },
    Invalid(ReferenceError),
    Failed {
        error: RegistryError,
        credential_source: Option<String>,
    },
    /// The review budget ran out first.
    TimedOut {
        budget: Duration,
    },
    /// A referenced pull secret cannot be parsed: (secret name, the parser's words).
    SecretInvalid {
        secrets: Vec<(String, String)>,
    },
    /// The Kubernetes API could not say which credentials apply.
    CredentialsUnknown {
        detail: String,
    },
    /// Nodes pull this registry with credentials pullcheck cannot see; not checked.
    NodeCredentials,
}

/// The platform check of an image that exists.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum PlatformCheck {
    /// No node information, an answer without digest, or the check is off.
    #[default]
    NotChecked,
    /// Every platform the pod can land on is provided.
    Covered,
    /// An index that provides none of them: every pull fails with "no match for platform in
    /// manifest".
    Missing {
        provided: Vec<Platform>,
        missing: Vec<Target>,
    },
    /// An index that provides some: pods fail on the nodes whose platform is missing.
    Partial {
        provided: Vec<Target>,
        missing: Vec<Target>,
    },
    /// A single-platform image built for a platform none of these nodes runs: the pull works
    /// (containerd does not check a top-level manifest) and the container fails to start.
    SingleMismatch {
        image: Platform,
        targets: Vec<Target>,
    },
}

/// What the content of a resolved digest means for the platforms the pod can land on. Pure.
pub fn platform_check(content: &Content, targets: &[Target]) -> PlatformCheck {
    match content {
        Content::Index {
            unlabelled: true, ..
        } => PlatformCheck::Covered,
        Content::Index { platforms, .. } => {
            let coverage = placement::coverage(platforms, targets);
            // A fallback match pulls: the node's own matcher accepts it.
            let mut provided = coverage.provided;
            provided.extend(coverage.fallback_only);
            match (provided.is_empty(), coverage.missing.is_empty()) {
                (_, true) => PlatformCheck::Covered,
                (true, false) => PlatformCheck::Missing {
                    provided: platforms.clone(),
                    missing: coverage.missing,
                },
                (false, false) => PlatformCheck::Partial {
                    provided,
                    missing: coverage.missing,
                },
            }
        }
        Content::Image { platform } => {
            let targets = placement::single_platform_mismatch(platform, targets);
            if targets.is_empty() {
                PlatformCheck::Covered
            } else {
                PlatformCheck::SingleMismatch {
                    image: platform.clone(),
                    targets,
                }
            }
        }
    }
}

impl CheckOutcome {
    pub fn reason(&self) -> Reason {
        match self {
            CheckOutcome::Found {
                platforms: PlatformCheck::Missing { .. },
                ..
            } => Reason::PlatformMissing,
            CheckOutcome::Found { .. } => Reason::Ok,
            CheckOutcome::Invalid(_) => Reason::InvalidReference,
            CheckOutcome::Failed { error, .. } => error.reason(),
            CheckOutcome::TimedOut { .. } => Reason::Timeout,
            CheckOutcome::SecretInvalid { .. } => Reason::SecretInvalid,
            CheckOutcome::CredentialsUnknown { .. } => Reason::CredentialsUnknown,
            CheckOutcome::NodeCredentials => Reason::NodeCredentials,
        }
    }
}

/// One thing to tell the user about one image use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub reason: Reason,
    pub message: String,
}

/// The findings for one container's image. `image` is parsed when the reference was valid.
pub fn findings(
    image_use: &ImageUse,
    image: Option<&ImageRef>,
    outcome: &CheckOutcome,
    credentials: &PodCredentials,
    settings: &PolicySettings,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let what = format!("{} image {:?}", image_use.location(), image_use.image);
    let reason = outcome.reason();
    // A malformed secret is the pod's problem, not this image's: said once, by
    // `secret_findings`.
    if reason != Reason::Ok && reason != Reason::SecretInvalid {
        out.push(Finding {
            reason,
            message: format!("{what}: {}", describe(image, outcome, credentials)),
        });
    }
    if let CheckOutcome::Found { platforms, .. } = outcome {
        if let Some((reason, text)) = platform_advice(platforms) {
            out.push(Finding {
                reason,
                message: format!("{what}: {text}"),
            });
        }
    }
    if let (Some(image), CheckOutcome::Found { resolved, .. }) = (image, outcome) {
        if let Some(advice) = mutable_tag_advice(image_use, image, resolved, settings) {
            out.push(Finding {
                reason: Reason::MutableTag,
                message: format!("{what}: {advice}"),
            });
        }
    }
    out
}

fn describe(
    image: Option<&ImageRef>,
    outcome: &CheckOutcome,
    credentials: &PodCredentials,
) -> String {
    let registry = image.map_or("the registry", ImageRef::containerd_hostname);
    let repo = image.map_or("", ImageRef::repository);
    match outcome {
        CheckOutcome::Found {
            platforms: PlatformCheck::Missing { provided, missing },
            ..
        } => format!(
            "no manifest for {} in the image index, which has {}: pulls fail with \"no match \
             for platform in manifest\". {}",
            targets_text(missing),
            platforms_text(provided),
            platform_fix(provided, missing),
        ),
        CheckOutcome::Found { .. } => String::new(),
        CheckOutcome::Invalid(e) => format!(
            "not a valid image reference ({e}); the kubelet would report InvalidImageName. \
             Fix the image field"
        ),
        CheckOutcome::TimedOut { budget } => format!(
            "registry {registry} did not answer in time (the check had {} in all); \
             the image could not be verified",
            human_duration(*budget)
        ),
        CheckOutcome::Failed {
            error,
            credential_source,
        } => {
            let reasons = match (error, image) {
                (
                    RegistryError::Unauthorized {
                        with_credentials: false,
                        ..
                    },
                    Some(image),
                ) => why_anonymous(image, credentials),
                _ => Vec::new(),
            };
            if reasons.is_empty() {
                describe_registry_error(image, registry, repo, error, credential_source.as_deref())
            } else {
                // The pod meant to authenticate: say why it did not, before anything else.
                format!(
                    "unauthorized: {registry} refused an anonymous pull of {repo} because {}. \
                     Fix the pull secret, or add one for {registry}",
                    reasons.join("; and ")
                )
            }
        }
        CheckOutcome::SecretInvalid { secrets } => malformed_secrets_text(secrets),
        CheckOutcome::CredentialsUnknown { detail } => format!(
            "could not tell which pull credentials apply ({detail}); the image was not checked"
        ),
        CheckOutcome::NodeCredentials => format!(
            "not checked: nodes pull from {registry} with their own credentials (a node docker \
             config or a credential provider), which pullcheck cannot see"
        ),
    }
}

/// Warnings about platforms for an image that exists: some nodes lack it, or it cannot run.
fn platform_advice(check: &PlatformCheck) -> Option<(Reason, String)> {
    match check {
        PlatformCheck::Partial { provided, missing } => Some((
            Reason::PlatformPartial,
            format!(
                "no manifest for {}, only for {}: pods placed on those nodes fail to pull. {}",
                targets_text(missing),
                targets_text(provided),
                platform_fix(
                    &provided
                        .iter()
                        .map(|t| t.platform.clone())
                        .collect::<Vec<_>>(),
                    missing
                ),
            ),
        )),
        PlatformCheck::SingleMismatch { image, targets } => Some((
            Reason::PlatformMismatch,
            format!(
                "built for {image} only, but the pod can run on {}: it pulls, then fails to \
                 start (exec format error). Build it for those platforms or add a nodeSelector \
                 on kubernetes.io/arch",
                targets_text(targets)
            ),
        )),
        _ => None,
    }
}

/// How to fix a missing platform: Windows builds are matched by `os.version`, so a different
/// base image and the windows-build label; otherwise a multi-platform build or an arch selector.
fn platform_fix(provided: &[Platform], missing: &[Target]) -> String {
    if missing.iter().any(|t| t.platform.os == "windows") {
        "Build on a base image for that Windows build, or add a nodeSelector on \
         node.kubernetes.io/windows-build"
            .to_string()
    } else {
        format!(
            "Build with docker buildx build --platform {}, or add a nodeSelector on \
             kubernetes.io/arch",
            buildx_platforms(provided, missing)
        )
    }
}

/// `linux/arm64/v8 (2 nodes)`, joined.
fn targets_text(targets: &[Target]) -> String {
    targets
        .iter()
        .map(|t| match t.nodes {
            0 => format!("{} (the pod's nodeSelector)", t.platform),
            1 => format!("{} (1 node)", t.platform),
            n => format!("{} ({n} nodes)", t.platform),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn platforms_text(platforms: &[Platform]) -> String {
    let named: Vec<String> = platforms
        .iter()
        .filter(|p| !p.is_attestation())
        .map(ToString::to_string)
        .collect();
    if named.is_empty() {
        "no platform at all".into()
    } else {
        named.join(", ")
    }
}

/// The `--platform` list a multi-platform build needs: what it has plus what is missing.
fn buildx_platforms(provided: &[Platform], missing: &[Target]) -> String {
    let mut all: Vec<String> = provided
        .iter()
        .filter(|p| !p.is_attestation())
        .chain(missing.iter().map(|t| &t.platform))
        .map(|p| {
            let mut s = format!("{}/{}", p.os, p.architecture);
            if let Some(v) = &p.variant {
                if p.architecture == "arm" {
                    s.push_str(&format!("/{v}"));
                }
            }
            s
        })
        .collect();
    all.sort();
    all.dedup();
    all.join(",")
}

/// Why an anonymous pull happened although the pod may have meant to authenticate: keys that
/// almost match the image, and secrets the kubelet skipped.
fn why_anonymous(image: &ImageRef, credentials: &PodCredentials) -> Vec<String> {
    let mut parts = credential_hints(image, credentials);
    for note in &credentials.notes {
        match note {
            SecretNote::Missing { name } => parts.push(format!(
                "the secret {name:?} it references does not exist in namespace {:?}",
                credentials.namespace
            )),
            SecretNote::NotPullSecret { name, .. } => parts.push(format!(
                "the secret {name:?} it references is not a pull secret and was ignored"
            )),
            SecretNote::AccountMissing { .. } | SecretNote::NotRead { .. } => {}
        }
    }
    parts
}

/// What the keyring itself says about an image: matching entries without a username (an
/// anonymous pull), and keys that look meant for it but do not match.
pub fn credential_hints(image: &ImageRef, credentials: &PodCredentials) -> Vec<String> {
    let matched = credentials.keyring.lookup(&image.name());
    let mut parts: Vec<String> = matched
        .iter()
        .filter(|m| m.credential.is_empty())
        .map(|m| {
            format!(
                "{} matches {} but has no username, so the pull is anonymous (the kubelet \
                 ignores identity tokens)",
                m.credential.source(),
                m.key
            )
        })
        .collect();
    parts.extend(
        keyring::near_misses(&credentials.keyring.keys(), &image.name())
            .iter()
            .map(|miss| {
                format!(
                    "{} has credentials for {} but the image is pulled from {} ({})",
                    miss.source,
                    miss.key,
                    image.containerd_hostname(),
                    miss.why
                )
            }),
    );
    parts
}

fn describe_registry_error(
    image: Option<&ImageRef>,
    registry: &str,
    repo: &str,
    error: &RegistryError,
    credential_source: Option<&str>,
) -> String {
    let with = |c: Option<&str>| {
        c.map(|s| format!(" (credentials from {s})"))
            .unwrap_or_default()
    };
    match error {
        RegistryError::ManifestUnknown { suggestions } => {
            let missing = match image {
                Some(i) if i.digest().is_some() => {
                    format!("no manifest with digest {}", i.digest().unwrap_or_default())
                }
                Some(i) => format!("no tag {:?}", i.tag().unwrap_or("latest")),
                None => "no such manifest".to_string(),
            };
            let hint = match suggestions.as_slice() {
                [] => ".".to_string(),
                [one] => format!("; did you mean {one:?}?"),
                many => format!(
                    "; did you mean one of {}?",
                    many.iter()
                        .map(|s| format!("{s:?}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            format!(
                "not found: repository {repo} on {registry} has {missing} (manifest unknown){hint} \
                 The pull would fail with ErrImagePull; push the image or fix the reference"
            )
        }
        RegistryError::NameUnknown => format!(
            "not found: repository {repo} does not exist on {registry} (name unknown). \
             Check the image name for a typo"
        ),
        RegistryError::Unauthorized {
            with_credentials: false,
            ..
        } => format!(
            "unauthorized: {registry} refused an anonymous pull of {repo}: it does not exist, \
             or it needs credentials and no pull secret of this pod matches {registry}. Check \
             the name, or add an imagePullSecret for {registry}"
        ),
        // The token service accepted the credentials; the registry then refused the scope.
        // Registries say this for repositories that do not exist as well as for ones the
        // account may not read, so the credentials themselves are not to blame.
        RegistryError::Unauthorized {
            with_credentials: true,
            detail: Some(detail),
        } if detail == "insufficient_scope" => format!(
            "unauthorized: the credentials{} may not pull {repo} from {registry}, or it does not \
             exist (insufficient_scope). Check the name and the account's access",
            with(credential_source),
        ),
        RegistryError::Unauthorized {
            with_credentials: true,
            detail,
        } => format!(
            "unauthorized: {registry} rejected the credentials{}{} for {repo}. \
             Update the pull secret with a valid username and password or token",
            with(credential_source),
            detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default()
        ),
        RegistryError::Denied { detail } => format!(
            "forbidden: {registry} denied pulling {repo}{}{}. The account may not read this repository",
            with(credential_source),
            detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default()
        ),
        RegistryError::RateLimited { retry_after } => format!(
            "rate limited: {registry} answered 429 Too Many Requests{}; the image could not be \
             verified, and pulls may fail the same way until the limit resets",
            retry_after
                .map(|r| format!(
                    " (retry after {})",
                    human_duration(r.delay_from(SystemTime::now()))
                ))
                .unwrap_or_default()
        ),
        RegistryError::Unreachable { cause, detail } => {
            let fix = match cause {
                Unreachable::Dns => "check the registry host name",
                Unreachable::ConnectionRefused => "check the registry host and port",
                Unreachable::Timeout => "the registry or the network is slow or down",
                Unreachable::Tls => {
                    "the registry's certificate is not trusted; configure its CA with --registry-ca, \
                     or list it with --insecure-registry if it speaks plain HTTP"
                }
                Unreachable::Connection => "the registry or the network is down",
            };
            format!("registry {registry} is unreachable: {cause} ({detail}); {fix}")
        }
        RegistryError::Server { status, detail } => format!(
            "registry error: {registry} answered HTTP {status}{}; the image could not be verified",
            detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default()
        ),
        RegistryError::Protocol { detail } => format!(
            "registry error: {registry} gave an answer that does not follow the registry API \
             ({detail}); the image could not be verified"
        ),
    }
}

fn mutable_tag_advice(
    image_use: &ImageUse,
    image: &ImageRef,
    resolved: &Resolved,
    settings: &PolicySettings,
) -> Option<String> {
    if image.digest().is_some() || image_use.pull_policy == PullPolicy::Never {
        return None;
    }
    let tag = image.tag().unwrap_or("latest");
    let applies = match settings.mutable_tags {
        MutableTagAdvice::Off => false,
        // Kubernetes defaults :latest to Always, so this only happens when someone set
        // IfNotPresent explicitly; then nodes keep whatever :latest they pulled first.
        MutableTagAdvice::IfNotPresent => {
            tag == "latest" && image_use.pull_policy == PullPolicy::IfNotPresent
        }
        MutableTagAdvice::Unpinned => true,
    };
    if !applies {
        return None;
    }
    let pin = match &resolved.digest {
        Some(d) => format!(" ({}@{d})", image.familiar_name()),
        None => String::new(),
    };
    Some(format!(
        "the tag {tag:?} is mutable with imagePullPolicy {}: nodes keep whatever they cached \
         first, with no error anywhere. Pin the digest{pin} or use a unique tag",
        image_use.pull_policy.as_str()
    ))
}

/// Findings about the pod's secrets themselves, said once per review.
/// The kubelet's `MakeDockerKeyring` fails as a whole when any pull secret is malformed.
pub fn malformed_secrets_text(secrets: &[(String, String)]) -> String {
    format!(
        "the pull secret{} {} cannot be parsed ({}); the kubelet fails every image pull of this \
         pod when any of its pull secrets is malformed. Fix or remove the secret",
        if secrets.len() == 1 { "" } else { "s" },
        secrets
            .iter()
            .map(|(n, _)| format!("{n:?}"))
            .collect::<Vec<_>>()
            .join(", "),
        secrets
            .iter()
            .map(|(n, e)| format!("{n}: {e}"))
            .collect::<Vec<_>>()
            .join("; "),
    )
}

/// Malformed pull secrets as (name, the parser's words).
pub fn malformed_secrets(credentials: &PodCredentials) -> Vec<(String, String)> {
    credentials
        .invalid
        .iter()
        .map(|(name, e)| (name.clone(), e.to_string()))
        .collect()
}

pub fn secret_findings(credentials: &PodCredentials) -> Vec<Finding> {
    let ns = &credentials.namespace;
    let via = credentials
        .via_account
        .as_deref()
        .map(|a| format!(" (listed by service account {a:?})"))
        .unwrap_or_default();
    let invalid = malformed_secrets(credentials);
    let broken = (!invalid.is_empty()).then(|| Finding {
        reason: Reason::SecretInvalid,
        message: malformed_secrets_text(&invalid),
    });
    broken
        .into_iter()
        .chain(credentials.notes.iter().map(|note| {
            let message =
                match note {
                    SecretNote::Missing { name } => format!(
                    "the pull secret {name:?}{via} is referenced but does not exist in namespace \
                     {ns:?} (secrets do not cross namespaces); the kubelet skips it, so pulls \
                     that need it will fail. Create it in {ns:?}"
                ),
                    SecretNote::NotPullSecret { name, why } => format!(
                    "the secret {name:?}{via} in namespace {ns:?} is not a pull secret ({why}); \
                     the kubelet ignores it. Create it with `kubectl create secret \
                     docker-registry`, which makes a kubernetes.io/dockerconfigjson secret"
                ),
                    SecretNote::AccountMissing { name } => format!(
                    "service account {name:?} does not exist in namespace {ns:?}; pods that use \
                     it cannot be created until it does, and it lends them no pull secrets"
                ),
                    SecretNote::NotRead { names } => {
                        format!(
                    "pull secret{} {} not read: pullcheck runs without Kubernetes API access, \
                     so images were checked anonymously",
                    if names.len() == 1 { "" } else { "s" },
                    names.iter().map(|n| format!("{n:?}")).collect::<Vec<_>>().join(", ")
                )
                    }
                };
            Finding {
                reason: Reason::SecretIgnored,
                message: format!("pullcheck: {message}"),
            }
        }))
        .collect()
}

fn human_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// The answer for a whole object.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Verdict {
    pub allowed: bool,
    /// The denial message (kubectl prints it after "denied the request:").
    pub denial: Option<String>,
    pub warnings: Vec<String>,
}

/// Applies the mode to the findings of all images of one object.
pub fn decide(mode: Mode, settings: &PolicySettings, findings: &[Finding]) -> Verdict {
    let mut deny = Vec::new();
    let mut warnings = Vec::new();
    for f in findings {
        let blocks = match f.reason.class() {
            ReasonClass::Pass | ReasonClass::Advice => false,
            ReasonClass::Workload => true,
            ReasonClass::Undetermined => settings.registry_failure == FailureAction::Deny,
        };
        if blocks && mode == Mode::Enforce {
            deny.push(f.message.as_str());
        } else if mode != Mode::Off {
            warnings.push(f.message.clone());
        }
    }
    let denial = match deny.as_slice() {
        [] => None,
        [one] => Some(format!("pullcheck: {one}")),
        many => Some(format!(
            "pullcheck: {} images cannot be pulled: {}",
            many.len(),
            many.iter()
                .enumerate()
                .map(|(i, m)| format!("({}) {m}", i + 1))
                .collect::<Vec<_>>()
                .join("; ")
        )),
    };
    Verdict {
        allowed: denial.is_none(),
        denial,
        warnings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::extract::ImageField;
    use crate::registry::RetryAfter;

    fn container(image: &str, policy: PullPolicy) -> ImageUse {
        ImageUse {
            field: ImageField::Container,
            name: "app".into(),
            image: image.into(),
            pull_policy: policy,
        }
    }

    fn failed(error: RegistryError) -> CheckOutcome {
        CheckOutcome::Failed {
            error,
            credential_source: None,
        }
    }

    fn found(digest: &str) -> CheckOutcome {
        CheckOutcome::Found {
            resolved: Resolved {
                digest: Some(digest.into()),
                media_type: None,
            },
            credential_source: None,
            platforms: PlatformCheck::NotChecked,
        }
    }

    fn one(image: &str, outcome: CheckOutcome) -> Vec<Finding> {
        let parsed = ImageRef::parse_normalized(image).ok();
        findings(
            &container(image, PullPolicy::IfNotPresent),
            parsed.as_ref(),
            &outcome,
            &PodCredentials::anonymous("prod"),
            &PolicySettings::default(),
        )
    }

    #[test]
    fn each_outcome_names_its_cause_and_fix() {
        let cases: Vec<(&str, CheckOutcome, Reason, &[&str])> = vec![
            (
                "nginx:latests",
                failed(RegistryError::ManifestUnknown {
                    suggestions: vec!["latest".into()],
                }),
                Reason::TagNotFound,
                &[
                    "container \"app\" image \"nginx:latests\"",
                    "library/nginx on docker.io has no tag \"latests\"",
                    "did you mean \"latest\"?",
                ],
            ),
            (
                "ghcr.io/org/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                failed(RegistryError::ManifestUnknown {
                    suggestions: vec![],
                }),
                Reason::TagNotFound,
                &["no manifest with digest sha256:0123", "org/app on ghcr.io"],
            ),
            (
                "ngnix:1.27",
                failed(RegistryError::NameUnknown),
                Reason::RepositoryNotFound,
                &["repository library/ngnix does not exist on docker.io", "typo"],
            ),
            (
                "ghcr.io/org/private:v1",
                failed(RegistryError::Unauthorized {
                    with_credentials: false,
                    detail: None,
                }),
                Reason::Unauthorized,
                &["refused an anonymous pull", "imagePullSecret for ghcr.io"],
            ),
            (
                "ghcr.io/org/private:v1",
                CheckOutcome::Failed {
                    error: RegistryError::Unauthorized {
                        with_credentials: true,
                        detail: None,
                    },
                    credential_source: Some("secret prod/regcred".into()),
                },
                Reason::Unauthorized,
                &["rejected the credentials (credentials from secret prod/regcred)"],
            ),
            (
                "ghcr.io/org/privat:v1",
                CheckOutcome::Failed {
                    error: RegistryError::Unauthorized {
                        with_credentials: true,
                        detail: Some("insufficient_scope".into()),
                    },
                    credential_source: Some("secret prod/regcred".into()),
                },
                Reason::Unauthorized,
                &["may not pull org/privat from ghcr.io, or it does not exist"],
            ),
            (
                "ghcr.io/org/private:v1",
                failed(RegistryError::Denied {
                    detail: Some("requested access to the resource is denied".into()),
                }),
                Reason::Forbidden,
                &["denied pulling org/private", "resource is denied"],
            ),
            (
                "nginx:1.27",
                failed(RegistryError::RateLimited {
                    retry_after: Some(RetryAfter::Seconds(30)),
                }),
                Reason::RateLimited,
                &["429 Too Many Requests", "retry after 30s"],
            ),
            (
                "nope.invalid/app:1",
                failed(RegistryError::Unreachable {
                    cause: Unreachable::Dns,
                    detail: "dns error".into(),
                }),
                Reason::Unreachable,
                &["registry nope.invalid is unreachable: DNS lookup failed"],
            ),
            (
                "reg.corp:5000/app:1",
                failed(RegistryError::Unreachable {
                    cause: Unreachable::ConnectionRefused,
                    detail: "refused".into(),
                }),
                Reason::Unreachable,
                &["connection refused", "host and port"],
            ),
            (
                "reg.corp/app:1",
                failed(RegistryError::Unreachable {
                    cause: Unreachable::Tls,
                    detail: "UnknownIssuer".into(),
                }),
                Reason::Unreachable,
                &["TLS handshake failed", "--registry-ca"],
            ),
            (
                "reg.corp/app:1",
                CheckOutcome::TimedOut {
                    budget: Duration::from_secs(5),
                },
                Reason::Timeout,
                &["did not answer in time", "5s"],
            ),
            (
                "reg.corp/app:1",
                failed(RegistryError::Server {
                    status: 503,
                    detail: None,
                }),
                Reason::RegistryError,
                &["answered HTTP 503"],
            ),
        ];
        for (image, outcome, reason, words) in cases {
            let got = one(image, outcome);
            assert_eq!(got.len(), 1, "{image}: {got:?}");
            assert_eq!(got[0].reason, reason, "{image}");
            for w in words {
                assert!(
                    got[0].message.contains(w),
                    "{image}: {:?} lacks {w:?}",
                    got[0].message
                );
            }
        }
    }

    #[test]
    fn invalid_reference_quotes_the_parser() {
        let err = ImageRef::parse_normalized("Nginx:1").expect_err("uppercase");
        let got = one("Nginx:1", CheckOutcome::Invalid(err));
        assert_eq!(got[0].reason, Reason::InvalidReference);
        assert!(
            got[0].message.contains("must be lowercase"),
            "{}",
            got[0].message
        );
        assert!(
            got[0].message.contains("InvalidImageName"),
            "{}",
            got[0].message
        );
    }

    #[test]
    fn advises_on_mutable_tags_with_if_not_present_only_when_configured() {
        let digest = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        let cases = [
            (
                "nginx",
                PullPolicy::IfNotPresent,
                MutableTagAdvice::IfNotPresent,
                true,
            ),
            (
                "nginx:latest",
                PullPolicy::IfNotPresent,
                MutableTagAdvice::IfNotPresent,
                true,
            ),
            (
                "nginx:latest",
                PullPolicy::Always,
                MutableTagAdvice::IfNotPresent,
                false,
            ),
            (
                "nginx:1.27",
                PullPolicy::IfNotPresent,
                MutableTagAdvice::IfNotPresent,
                false,
            ),
            (
                "nginx:1.27",
                PullPolicy::IfNotPresent,
                MutableTagAdvice::Unpinned,
                true,
            ),
            (
                "nginx:latest",
                PullPolicy::IfNotPresent,
                MutableTagAdvice::Off,
                false,
            ),
        ];
        for (image, pull, advice, expected) in cases {
            let settings = PolicySettings {
                mutable_tags: advice,
                ..PolicySettings::default()
            };
            let parsed = ImageRef::parse_normalized(image).expect("valid");
            let got = findings(
                &container(image, pull),
                Some(&parsed),
                &found(digest),
                &PodCredentials::anonymous("prod"),
                &settings,
            );
            assert_eq!(
                !got.is_empty(),
                expected,
                "{image} {pull:?} {advice:?}: {got:?}"
            );
            if expected {
                assert_eq!(got[0].reason, Reason::MutableTag);
                assert!(
                    got[0].message.contains(&format!("nginx@{digest}")),
                    "{}",
                    got[0].message
                );
            }
        }
        let pinned = format!("nginx@{digest}");
        let parsed = ImageRef::parse_normalized(&pinned).expect("valid");
        let settings = PolicySettings {
            mutable_tags: MutableTagAdvice::Unpinned,
            ..PolicySettings::default()
        };
        let got = findings(
            &container(&pinned, PullPolicy::IfNotPresent),
            Some(&parsed),
            &found(digest),
            &PodCredentials::anonymous("prod"),
            &settings,
        );
        assert!(got.is_empty(), "{got:?}");
    }

    #[test]
    fn platform_check_follows_the_nodes_matcher_and_unlabelled_entries() {
        use crate::platform::MatcherKind;
        let p = |s: &str| Platform::parse(s).expect("platform");
        let target = |s: &str, matcher, nodes| Target {
            platform: p(s),
            matcher,
            nodes,
        };
        let index = |platforms: &[&str], unlabelled| Content::Index {
            platforms: platforms.iter().map(|s| p(s)).collect(),
            unlabelled,
        };
        let amd = target("linux/amd64", MatcherKind::ContainerdOnly, 3);
        let arm_legacy = target("linux/arm64/v8", MatcherKind::ContainerdOnly, 1);
        let arm_strict = target("linux/arm64/v8", MatcherKind::ContainerdStrict, 1);
        let name = |c: &PlatformCheck| match c {
            PlatformCheck::NotChecked => "not checked",
            PlatformCheck::Covered => "covered",
            PlatformCheck::Missing { .. } => "missing",
            PlatformCheck::Partial { .. } => "partial",
            PlatformCheck::SingleMismatch { .. } => "single mismatch",
        };
        let cases = [
            (
                index(&["linux/amd64", "linux/arm64"], false),
                vec![amd.clone(), arm_strict.clone()],
                "covered",
            ),
            (index(&["linux/arm64"], false), vec![amd.clone()], "missing"),
            (
                index(&["linux/arm64"], false),
                vec![amd.clone(), arm_strict.clone()],
                "partial",
            ),
            // arm64 on containerd <= 2.0 falls back to arm/v7; 2.1 and later do not.
            (
                index(&["linux/arm/v7"], false),
                vec![arm_legacy.clone()],
                "covered",
            ),
            (
                index(&["linux/arm/v7"], false),
                vec![arm_strict.clone()],
                "missing",
            ),
            // Attestations never count; entries without a platform match every node.
            (
                index(&["unknown/unknown"], false),
                vec![amd.clone()],
                "missing",
            ),
            (
                index(&[], true),
                vec![amd.clone(), arm_strict.clone()],
                "covered",
            ),
            (
                Content::Image {
                    platform: p("linux/amd64"),
                },
                vec![amd.clone()],
                "covered",
            ),
            (
                Content::Image {
                    platform: p("linux/arm64"),
                },
                vec![amd.clone()],
                "single mismatch",
            ),
        ];
        for (content, targets, want) in cases {
            assert_eq!(
                name(&platform_check(&content, &targets)),
                want,
                "{content:?} {targets:?}"
            );
        }
    }

    fn finding(reason: Reason) -> Finding {
        Finding {
            reason,
            message: format!("m-{}", reason.as_str()),
        }
    }

    #[test]
    fn mode_and_failure_action_decide_the_verdict() {
        let allow = PolicySettings::default();
        let deny_failures = PolicySettings {
            registry_failure: FailureAction::Deny,
            ..PolicySettings::default()
        };
        // (mode, settings, findings, allowed, denial count, warning count)
        let cases = [
            (Mode::Enforce, &allow, vec![], true, 0, 0),
            (
                Mode::Enforce,
                &allow,
                vec![finding(Reason::TagNotFound)],
                false,
                1,
                0,
            ),
            (
                Mode::Enforce,
                &allow,
                vec![
                    finding(Reason::Unauthorized),
                    finding(Reason::RepositoryNotFound),
                ],
                false,
                2,
                0,
            ),
            (
                Mode::Enforce,
                &allow,
                vec![finding(Reason::RateLimited)],
                true,
                0,
                1,
            ),
            (
                Mode::Enforce,
                &deny_failures,
                vec![finding(Reason::RateLimited)],
                false,
                1,
                0,
            ),
            (
                Mode::Enforce,
                &deny_failures,
                vec![finding(Reason::Timeout)],
                false,
                1,
                0,
            ),
            (
                Mode::Enforce,
                &allow,
                vec![finding(Reason::TagNotFound), finding(Reason::MutableTag)],
                false,
                1,
                1,
            ),
            (
                Mode::Warn,
                &deny_failures,
                vec![finding(Reason::TagNotFound), finding(Reason::Unreachable)],
                true,
                0,
                2,
            ),
            (
                Mode::Off,
                &allow,
                vec![finding(Reason::TagNotFound)],
                true,
                0,
                0,
            ),
        ];
        for (mode, settings, found, allowed, denials, warnings) in cases {
            let v = decide(mode, settings, &found);
            assert_eq!(v.allowed, allowed, "{mode:?} {found:?}");
            assert_eq!(v.warnings.len(), warnings, "{mode:?} {found:?}");
            match &v.denial {
                None => assert_eq!(denials, 0),
                Some(text) => {
                    assert!(text.starts_with("pullcheck: "), "{text}");
                    for f in found
                        .iter()
                        .filter(|f| f.reason.class() != ReasonClass::Advice)
                    {
                        assert!(text.contains(&f.message) || denials == 0, "{text}");
                    }
                    if denials > 1 {
                        assert!(
                            text.contains(&format!("{denials} images cannot be pulled")),
                            "{text}"
                        );
                    }
                }
            }
        }
    }
}
