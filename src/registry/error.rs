//! What a registry answered, as typed facts; `policy` turns them into words.

use crate::reason::Reason;
use std::time::{Duration, SystemTime};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// 404 on the manifest while the repository exists (or could not be listed).
    #[error("manifest unknown")]
    ManifestUnknown {
        /// Existing tags nearest to the one asked for (empty for digests or when unknown).
        suggestions: Vec<String>,
    },
    /// `tags/list` answered NAME_UNKNOWN: the repository itself does not exist.
    #[error("repository name not known to registry")]
    NameUnknown,
    /// 401 on the manifest or the token service.
    #[error("unauthorized")]
    Unauthorized {
        /// Credentials were sent (and rejected); false means the pull was anonymous.
        with_credentials: bool,
        /// The registry's own words (error code message or challenge `error`), when any.
        detail: Option<String>,
    },
    /// 403 / DENIED: authenticated, but not allowed to pull.
    #[error("denied")]
    Denied { detail: Option<String> },
    #[error("too many requests")]
    RateLimited { retry_after: Option<RetryAfter> },
    #[error("registry unreachable: {cause}")]
    Unreachable { cause: Unreachable, detail: String },
    /// 5xx from the registry or its token service.
    #[error("registry error {status}")]
    Server { status: u16, detail: Option<String> },
    /// An answer that does not follow the distribution protocol (garbage, odd status).
    #[error("unexpected answer: {detail}")]
    Protocol { detail: String },
    /// The registry, its token realm or a redirect named an address the address policy
    /// refuses; nothing was sent there.
    #[error("address not allowed by policy")]
    AddressNotAllowed,
    /// `localhost` or a loopback address: the kubelet pulls it from the node itself.
    #[error("node-local registry")]
    NodeLocal,
}

impl RegistryError {
    pub fn reason(&self) -> Reason {
        match self {
            RegistryError::ManifestUnknown { .. } => Reason::TagNotFound,
            RegistryError::NameUnknown => Reason::RepositoryNotFound,
            RegistryError::Unauthorized { .. } => Reason::Unauthorized,
            RegistryError::Denied { .. } => Reason::Forbidden,
            RegistryError::RateLimited { .. } => Reason::RateLimited,
            RegistryError::Unreachable {
                cause: Unreachable::Timeout,
                ..
            } => Reason::Timeout,
            RegistryError::Unreachable { .. } => Reason::Unreachable,
            RegistryError::Server { .. } | RegistryError::Protocol { .. } => Reason::RegistryError,
            RegistryError::AddressNotAllowed => Reason::AddressNotAllowed,
            RegistryError::NodeLocal => Reason::NodeLocal,
        }
    }
}

/// Why no HTTP answer came back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unreachable {
    Dns,
    ConnectionRefused,
    Timeout,
    Tls,
    /// Reset, closed early, or another socket-level failure.
    Connection,
}

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Unreachable::Dns => "DNS lookup failed",
            Unreachable::ConnectionRefused => "connection refused",
            Unreachable::Timeout => "timed out",
            Unreachable::Tls => "TLS handshake failed",
            Unreachable::Connection => "connection failed",
        })
    }
}

/// RFC 9110 `Retry-After`: delta-seconds or an HTTP-date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAfter {
    Seconds(u64),
    At(SystemTime),
}

impl RetryAfter {
    pub fn parse(value: &str) -> Option<RetryAfter> {
        let value = value.trim();
        if let Ok(secs) = value.parse::<u64>() {
            return Some(RetryAfter::Seconds(secs));
        }
        httpdate::parse_http_date(value).ok().map(RetryAfter::At)
    }

    /// Seconds to wait from `now` (0 when the date has passed).
    pub fn delay_from(self, now: SystemTime) -> Duration {
        match self {
            RetryAfter::Seconds(s) => Duration::from_secs(s),
            RetryAfter::At(t) => t.duration_since(now).unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_retry_after_forms() {
        assert_eq!(RetryAfter::parse("30"), Some(RetryAfter::Seconds(30)));
        assert_eq!(RetryAfter::parse(" 0 "), Some(RetryAfter::Seconds(0)));
        let at = RetryAfter::parse("Wed, 21 Oct 2015 07:28:00 GMT").expect("http-date");
        let base = httpdate::parse_http_date("Wed, 21 Oct 2015 07:27:00 GMT").expect("date");
        assert_eq!(at.delay_from(base), Duration::from_secs(60));
        assert_eq!(
            at.delay_from(base + Duration::from_secs(3600)),
            Duration::ZERO
        );
        assert_eq!(RetryAfter::parse("soon"), None);
        assert_eq!(RetryAfter::parse("-5"), None);
    }

    #[test]
    fn timeouts_have_their_own_reason() {
        let e = |cause| RegistryError::Unreachable {
            cause,
            detail: String::new(),
        };
        assert_eq!(e(Unreachable::Timeout).reason(), Reason::Timeout);
        assert_eq!(e(Unreachable::Dns).reason(), Reason::Unreachable);
        assert_eq!(e(Unreachable::Tls).reason(), Reason::Unreachable);
    }
}
