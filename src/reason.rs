//! The closed set of reasons an image check can end with.
//!
//! One enum drives the metric label, the log field and the choice of message, so the three
//! never disagree. Facts for the message travel in the error types that map onto a reason.

use std::fmt;

/// Why an image was flagged (or `Ok` when it was not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// The image resolved; nothing to say.
    Ok,
    /// The kubelet would report InvalidImageName.
    InvalidReference,
    /// The repository exists but the tag or digest does not (MANIFEST_UNKNOWN).
    TagNotFound,
    /// The repository does not exist (NAME_UNKNOWN).
    RepositoryNotFound,
    /// The registry wants credentials it was not given, or rejected the ones it got.
    Unauthorized,
    /// Authenticated, but not allowed to pull (DENIED / 403).
    Forbidden,
    /// 429 Too Many Requests.
    RateLimited,
    /// DNS failure, connection refused, TLS failure or a connect/read timeout.
    Unreachable,
    /// The review budget ran out before the registry answered.
    Timeout,
    /// 5xx, or an answer that does not follow the distribution protocol.
    RegistryError,
    /// Advice: a mutable tag with IfNotPresent lets nodes run stale images.
    MutableTag,
    /// A referenced pull secret the kubelet cannot parse: every pull of the pod fails.
    SecretInvalid,
    /// A referenced secret is missing or not a pull secret; the kubelet skips it.
    SecretIgnored,
    /// The Kubernetes API could not be asked which credentials apply.
    CredentialsUnknown,
    /// Nodes pull from this registry with their own credentials; not checked.
    NodeCredentials,
    /// The image index has no manifest for any platform the pod can land on.
    PlatformMissing,
    /// The image index lacks some of the pod's platforms.
    PlatformPartial,
    /// A single-platform image that some of the pod's nodes cannot run (exec format error).
    PlatformMismatch,
    /// The registry's address is refused by the address policy; nothing was sent.
    AddressNotAllowed,
    /// A registry on the node's own loopback, which the webhook cannot see; not checked.
    NodeLocal,
}

impl Reason {
    pub const ALL: [Reason; 20] = [
        Reason::Ok,
        Reason::InvalidReference,
        Reason::TagNotFound,
        Reason::RepositoryNotFound,
        Reason::Unauthorized,
        Reason::Forbidden,
        Reason::RateLimited,
        Reason::Unreachable,
        Reason::Timeout,
        Reason::RegistryError,
        Reason::MutableTag,
        Reason::SecretInvalid,
        Reason::SecretIgnored,
        Reason::CredentialsUnknown,
        Reason::NodeCredentials,
        Reason::PlatformMissing,
        Reason::PlatformPartial,
        Reason::PlatformMismatch,
        Reason::AddressNotAllowed,
        Reason::NodeLocal,
    ];

    /// Stable snake_case label used in metrics, logs, audit annotations and JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Ok => "ok",
            Reason::InvalidReference => "invalid_reference",
            Reason::TagNotFound => "tag_not_found",
            Reason::RepositoryNotFound => "repository_not_found",
            Reason::Unauthorized => "unauthorized",
            Reason::Forbidden => "forbidden",
            Reason::RateLimited => "rate_limited",
            Reason::Unreachable => "registry_unreachable",
            Reason::Timeout => "registry_timeout",
            Reason::RegistryError => "registry_error",
            Reason::MutableTag => "mutable_tag",
            Reason::SecretInvalid => "secret_invalid",
            Reason::SecretIgnored => "secret_ignored",
            Reason::CredentialsUnknown => "credentials_unknown",
            Reason::NodeCredentials => "node_credentials",
            Reason::PlatformMissing => "platform_missing",
            Reason::PlatformPartial => "platform_partial",
            Reason::PlatformMismatch => "platform_mismatch",
            Reason::AddressNotAllowed => "address_not_allowed",
            Reason::NodeLocal => "node_local",
        }
    }

    /// Whether the workload is at fault (deny in enforce mode) rather than the registry being
    /// unavailable (admit with a warning unless configured otherwise).
    pub fn class(self) -> ReasonClass {
        match self {
            Reason::Ok => ReasonClass::Pass,
            Reason::MutableTag
            | Reason::SecretIgnored
            | Reason::NodeCredentials
            | Reason::PlatformPartial
            | Reason::PlatformMismatch => ReasonClass::Advice,
            Reason::InvalidReference
            | Reason::SecretInvalid
            | Reason::PlatformMissing
            | Reason::TagNotFound
            | Reason::RepositoryNotFound
            | Reason::Unauthorized
            | Reason::Forbidden => ReasonClass::Workload,
            Reason::RateLimited
            | Reason::Unreachable
            | Reason::Timeout
            | Reason::RegistryError
            | Reason::CredentialsUnknown
            | Reason::AddressNotAllowed
            | Reason::NodeLocal => ReasonClass::Undetermined,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who is at fault, which decides the default action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReasonClass {
    Pass,
    /// The pull will fail whatever the registry does next: deny in enforce mode.
    Workload,
    /// Could not tell (registry or Kubernetes API unavailable): admit with a warning unless
    /// configured to deny.
    Undetermined,
    /// Never blocks; always a warning.
    Advice,
}
