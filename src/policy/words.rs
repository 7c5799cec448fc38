//! The words of every message, chosen from a finding's facts (pure). Each message names the
//! cause first, the way an expert would after `kubectl describe pod`, then the fix.

use std::time::{Duration, SystemTime};

use crate::check::{AnonymousCause, Fact, Finding};
use crate::credentials::resolve::SecretNote;
use crate::platform::{Platform, Target};
use crate::reference::ImageRef;
use crate::registry::{RegistryError, Unreachable};
use crate::text;

/// How much of an image reference a message repeats: references are the pod author's, and
/// a 100 KB one must not be echoed into every answer.
const IMAGE_ECHO: usize = 256;

/// The longest single message; whole answers are bounded again by `policy::decide`.
pub const MESSAGE_MAX: usize = 1024;

/// Registry-sourced words (error texts, tag names) quoted in a message.
const QUOTE_MAX: usize = 200;

/// Platforms listed in one message before "and N more".
const PLATFORMS_LISTED: usize = 8;

/// The whole message: where the image sits, the image, then what was found. Pod findings
/// (about its secrets) stand alone.
pub fn message(finding: &Finding) -> String {
    let text = match &finding.subject {
        Some(subject) => {
            let image = text::clean(&subject.image, IMAGE_ECHO);
            match &subject.location {
                Some(location) => format!(
                    "{} image {image:?}: {}",
                    text::clean(&location.to_string(), IMAGE_ECHO),
                    describe(finding)
                ),
                None => format!("image {image:?}: {}", describe(finding)),
            }
        }
        None => describe(finding),
    };
    text::clean(&text, MESSAGE_MAX)
}

/// What was found, without naming the container (for a front end that shows the image
/// itself, like `explain`).
pub fn describe(finding: &Finding) -> String {
    let image = finding.subject.as_ref().and_then(|s| s.reference.as_ref());
    let registry = image.map_or("the registry", ImageRef::containerd_hostname);
    let repo = image.map_or("", ImageRef::repository);
    match &finding.fact {
        Fact::PlatformMissing { provided, missing } => format!(
            "no manifest for {} in the image index, which has {}: pulls fail with \"no match \
             for platform in manifest\". {}",
            targets_text(missing),
            platforms_text(provided),
            platform_fix(provided, missing),
        ),
        Fact::PlatformPartial { provided, missing } => format!(
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
        Fact::PlatformMismatch { image, targets } => format!(
            "built for {image} only, but the pod can run on {}: it pulls, then fails to \
             start (exec format error). Build it for those platforms or add a nodeSelector \
             on kubernetes.io/arch",
            targets_text(targets)
        ),
        Fact::InvalidReference(e) => format!(
            "not a valid image reference ({e}); the kubelet would report InvalidImageName. \
             Fix the image field"
        ),
        Fact::TimedOut { budget } => format!(
            "registry {registry} did not answer in time (the check had {} in all); \
             the image could not be verified",
            human_duration(*budget)
        ),
        Fact::Registry {
            error,
            credential_source,
            anonymous_because,
        } => {
            if anonymous_because.is_empty() {
                describe_registry_error(image, registry, repo, error, credential_source.as_deref())
            } else {
                // The pod meant to authenticate: say why it did not, before anything else.
                format!(
                    "unauthorized: {registry} refused an anonymous pull of {repo} because {}. \
                     Fix the pull secret, or add one for {registry}",
                    anonymous_because
                        .iter()
                        .map(anonymous_cause)
                        .collect::<Vec<_>>()
                        .join("; and ")
                )
            }
        }
        Fact::CredentialsUnknown { detail } => format!(
            "could not tell which pull credentials apply ({detail}); the image was not checked"
        ),
        Fact::NodeCredentials => format!(
            "not checked: nodes pull from {registry} with their own credentials (a node docker \
             config or a credential provider), which pullcheck cannot see"
        ),
        Fact::MutableTag {
            tag,
            pull_policy,
            pin,
        } => format!(
            "the tag {tag:?} is mutable with imagePullPolicy {}: nodes keep whatever they cached \
             first, with no error anywhere. Pin the digest{} or use a unique tag",
            pull_policy.as_str(),
            pin.as_ref().map(|p| format!(" ({p})")).unwrap_or_default()
        ),
        Fact::SecretsMalformed { secrets } => malformed_secrets_text(secrets),
        Fact::SecretIgnored {
            note,
            namespace,
            via_account,
        } => format!(
            "pullcheck: {}",
            secret_note(note, namespace, via_account.as_deref())
        ),
    }
}

/// One reason an anonymous pull happened, as a clause after "because".
pub fn anonymous_cause(cause: &AnonymousCause) -> String {
    match cause {
        AnonymousCause::NoUsername { source, key } => format!(
            "{source} matches {key} but has no username, so the pull is anonymous (the kubelet \
             ignores identity tokens)"
        ),
        AnonymousCause::NearMiss { miss, host } => format!(
            "{} has credentials for {} but the image is pulled from {host} ({})",
            miss.source, miss.key, miss.why
        ),
        AnonymousCause::SecretMissing { name, namespace } => {
            format!("the secret {name:?} it references does not exist in namespace {namespace:?}")
        }
        AnonymousCause::NotPullSecret { name } => {
            format!("the secret {name:?} it references is not a pull secret and was ignored")
        }
    }
}

fn secret_note(note: &SecretNote, ns: &str, via_account: Option<&str>) -> String {
    let via = via_account
        .map(|a| format!(" (listed by service account {a:?})"))
        .unwrap_or_default();
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
        SecretNote::NotRead { names } => format!(
            "pull secret{} {} not read: pullcheck runs without Kubernetes API access, \
             so images were checked anonymously",
            if names.len() == 1 { "" } else { "s" },
            names
                .iter()
                .map(|n| format!("{n:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
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
    listed(
        targets
            .iter()
            .map(|t| match t.nodes {
                0 => format!("{} (the pod's nodeSelector)", t.platform),
                1 => format!("{} (1 node)", t.platform),
                n => format!("{} ({n} nodes)", t.platform),
            })
            .collect(),
    )
}

/// At most [`PLATFORMS_LISTED`] entries, each bounded (platform strings come from the
/// registry's index), then "and N more".
fn listed(items: Vec<String>) -> String {
    let more = items.len().saturating_sub(PLATFORMS_LISTED);
    let mut out: Vec<String> = items
        .iter()
        .take(PLATFORMS_LISTED)
        .map(|s| text::clean(s, 64))
        .collect();
    if more > 0 {
        out.push(format!("and {more} more"));
    }
    out.join(", ")
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
        listed(named)
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

/// A registry's own words, bounded and printable, between `before` and `after`.
fn quoted(words: Option<&str>, before: &str, after: &str) -> String {
    words
        .map(|w| format!("{before}{}{after}", text::clean(w, QUOTE_MAX)))
        .unwrap_or_default()
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
            quoted(detail.as_deref(), ": ", "")
        ),
        RegistryError::Denied { detail } => format!(
            "forbidden: {registry} denied pulling {repo}{}{}. The account may not read this repository",
            with(credential_source),
            quoted(detail.as_deref(), ": ", "")
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
            format!(
                "registry {registry} is unreachable: {cause}{}; {fix}",
                quoted(Some(detail.as_str()).filter(|d| !d.is_empty()), " (", ")")
            )
        }
        RegistryError::Server { status, detail } => format!(
            "registry error: {registry} answered HTTP {status}{}; the image could not be verified",
            quoted(detail.as_deref(), " (", ")")
        ),
        RegistryError::Protocol { detail } => format!(
            "registry error: {registry} gave an answer that does not follow the registry API \
             ({}); the image could not be verified",
            text::clean(detail, QUOTE_MAX)
        ),
        // Nothing learned about the target is said: not its addresses, not how it answered.
        RegistryError::AddressNotAllowed => format!(
            "not checked: pullcheck's address policy does not allow connecting to the address of \
             {registry} (or of a service it redirected to). If it is a registry your nodes use, \
             allow its range with --allow-registry-address"
        ),
        RegistryError::NodeLocal => format!(
            "node-local registry, not checked: nodes pull {registry} from their own loopback, \
             which pullcheck cannot see"
        ),
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::finding::image_findings;
    use crate::check::{CheckOutcome, MutableTagAdvice};
    use crate::credentials::resolve::PodCredentials;
    use crate::reason::Reason;
    use crate::registry::RetryAfter;
    use crate::workload::{ImageField, ImageUse, PullPolicy};

    fn failed(error: RegistryError) -> CheckOutcome {
        CheckOutcome::Failed {
            error,
            credential_source: None,
        }
    }

    /// (reason, message) of each finding for `image` in container "app".
    fn one(image: &str, outcome: CheckOutcome) -> Vec<(Reason, String)> {
        let parsed = ImageRef::parse_normalized(image).ok();
        image_findings(
            &ImageUse::at(
                ImageField::Container,
                "app",
                image,
                PullPolicy::IfNotPresent,
            ),
            parsed.as_ref(),
            &outcome,
            &PodCredentials::anonymous("prod"),
            MutableTagAdvice::IfNotPresent,
        )
        .iter()
        .map(|f| (f.reason(), message(f)))
        .collect()
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
            assert_eq!(got[0].0, reason, "{image}");
            for w in words {
                assert!(got[0].1.contains(w), "{image}: {:?} lacks {w:?}", got[0].1);
            }
        }
    }

    #[test]
    fn invalid_reference_quotes_the_parser() {
        let err = ImageRef::parse_normalized("Nginx:1").expect_err("uppercase");
        let got = one("Nginx:1", CheckOutcome::Invalid(err));
        assert_eq!(got[0].0, Reason::InvalidReference);
        assert!(got[0].1.contains("must be lowercase"), "{}", got[0].1);
        assert!(got[0].1.contains("InvalidImageName"), "{}", got[0].1);
    }

    /// (reason, message) of each finding for `image`, found at `digest`, under `advice`.
    fn advised(
        image: &str,
        pull: PullPolicy,
        advice: MutableTagAdvice,
        digest: &str,
    ) -> Vec<(Reason, String)> {
        let parsed = ImageRef::parse_normalized(image).expect("valid");
        let found = CheckOutcome::Found {
            resolved: crate::registry::Resolved {
                digest: Some(digest.into()),
                media_type: None,
            },
            credential_source: None,
            platforms: crate::platform::PlatformCheck::NotChecked,
        };
        image_findings(
            &ImageUse::at(ImageField::Container, "app", image, pull),
            Some(&parsed),
            &found,
            &PodCredentials::anonymous("prod"),
            advice,
        )
        .iter()
        .map(|f| (f.reason(), message(f)))
        .collect()
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
            let got = advised(image, pull, advice, digest);
            assert_eq!(
                !got.is_empty(),
                expected,
                "{image} {pull:?} {advice:?}: {got:?}"
            );
            if expected {
                assert_eq!(got[0].0, Reason::MutableTag);
                assert!(
                    got[0].1.contains(&format!("nginx@{digest}")),
                    "{}",
                    got[0].1
                );
            }
        }
        let pinned = format!("nginx@{digest}");
        let got = advised(
            &pinned,
            PullPolicy::IfNotPresent,
            MutableTagAdvice::Unpinned,
            digest,
        );
        assert!(got.is_empty(), "{got:?}");
    }
}
