//! How the check of one distinct image ended, and which of several failed attempts explains
//! the pull (pure).

use std::time::Duration;

use crate::platform::PlatformCheck;
use crate::reason::{Reason, ReasonClass};
use crate::reference::ReferenceError;
use crate::registry::{RegistryError, Resolved};

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
    /// Not asked: a pull secret of the pod cannot be parsed, and the kubelet's
    /// `MakeDockerKeyring` then fails every pull of the pod. The finding is the pod's, said once.
    SecretInvalid,
    /// The Kubernetes API could not say which credentials apply.
    CredentialsUnknown {
        detail: String,
    },
    /// Nodes pull this registry with credentials pullcheck cannot see; not checked.
    NodeCredentials,
}

impl CheckOutcome {
    pub fn reason(&self) -> Reason {
        match self {
            CheckOutcome::Found {
                platforms: PlatformCheck::Missing { .. },
                ..
            } => Reason::PlatformMissing,
            CheckOutcome::Found {
                platforms: PlatformCheck::Partial { .. },
                ..
            } => Reason::PlatformPartial,
            CheckOutcome::Found {
                platforms: PlatformCheck::SingleMismatch { .. },
                ..
            } => Reason::PlatformMismatch,
            CheckOutcome::Found { .. } => Reason::Ok,
            CheckOutcome::Invalid(_) => Reason::InvalidReference,
            CheckOutcome::Failed { error, .. } => error.reason(),
            CheckOutcome::TimedOut { .. } => Reason::Timeout,
            CheckOutcome::SecretInvalid => Reason::SecretInvalid,
            CheckOutcome::CredentialsUnknown { .. } => Reason::CredentialsUnknown,
            CheckOutcome::NodeCredentials => Reason::NodeCredentials,
        }
    }

    /// The digest the tag resolved to, when the image was found.
    pub fn digest(&self) -> Option<&str> {
        match self {
            CheckOutcome::Found { resolved, .. } => resolved.digest.as_deref(),
            _ => None,
        }
    }
}

/// Which of several failed attempts explains the pull best.
///
/// An attempt that could not tell (429, 5xx, unreachable) means a later kubelet retry with that
/// credential may well succeed, so the whole answer is "could not tell". Otherwise a definite
/// "not found" from a credential the registry accepted beats another credential's refusal;
/// failing that, the first credential's error, the one the pod meant most specifically.
pub fn telling_failure<C>(
    first: (RegistryError, C),
    rest: Vec<(RegistryError, C)>,
) -> (RegistryError, C) {
    let rank = |e: &RegistryError| match e {
        e if e.reason().class() == ReasonClass::Undetermined => 0,
        RegistryError::ManifestUnknown { .. } | RegistryError::NameUnknown => 1,
        _ => 2,
    };
    // Strictly better only: among equals the earliest, in the pod's order, stays.
    rest.into_iter().fold(first, |best, next| {
        if rank(&next.0) < rank(&best.0) {
            next
        } else {
            best
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Unreachable;

    #[test]
    fn the_telling_failure_of_several_credentials() {
        let refused = || RegistryError::Unauthorized {
            with_credentials: true,
            detail: None,
        };
        let missing = || RegistryError::ManifestUnknown {
            suggestions: vec![],
        };
        let limited = || RegistryError::RateLimited { retry_after: None };
        let down = || RegistryError::Unreachable {
            cause: Unreachable::Timeout,
            detail: String::new(),
        };
        // (failures in pod order, index of the one reported)
        let cases: Vec<(Vec<RegistryError>, usize)> = vec![
            (vec![refused()], 0),
            (vec![refused(), refused()], 0),
            // A credential the registry accepted says the tag is missing: that is the news.
            (vec![refused(), missing()], 1),
            // A credential that could not be tried may still work: could not tell.
            (vec![refused(), limited()], 1),
            (vec![missing(), down()], 1),
            (vec![limited(), down()], 0),
        ];
        for (failures, want) in cases {
            let mut tagged = failures.into_iter().enumerate().map(|(i, e)| (e, i));
            let first = tagged.next().expect("a failure");
            let (_, got) = telling_failure(first, tagged.collect());
            assert_eq!(got, want);
        }
    }
}
