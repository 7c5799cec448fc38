//! Pull credentials: the username/password pairs the kubelet would hand to the runtime.

pub mod cluster;
pub mod pod;
pub mod resolve;

pub mod dockerconfig;
mod go;
pub mod keyring;
pub mod node;

use sha2::{Digest, Sha256};
use std::fmt;

/// A username and password from a pull secret (or a node docker config).
///
/// `Debug` and `Display` never show the password; only the username and where it came from.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Credential {
    username: String,
    password: String,
    /// Where it came from, for messages: `secret prod/regcred`, `node docker config`.
    source: String,
}

impl Credential {
    pub fn new(
        username: impl Into<String>,
        password: impl Into<String>,
        source: impl Into<String>,
    ) -> Self {
        Credential {
            username: username.into(),
            password: password.into(),
            source: source.into(),
        }
    }

    pub fn username(&self) -> &str {
        &self.username
    }

    /// Only the registry client reads the password, to put it on the wire.
    pub(crate) fn password(&self) -> &str {
        &self.password
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// containerd's `ParseAuth` reads the password only with a username: without one the
    /// pull is anonymous (identity-token-only entries, or a password with no user).
    pub fn is_empty(&self) -> bool {
        self.username.is_empty()
    }

    /// A fingerprint that identifies the secret material without revealing it. Every cache key
    /// and token key carries it, so an answer obtained with one credential never serves another.
    pub fn fingerprint(&self) -> Fingerprint {
        let mut h = Sha256::new();
        h.update(self.username.as_bytes());
        h.update([0u8]);
        h.update(self.password.as_bytes());
        let digest = h.finalize();
        let mut short = [0u8; 16];
        short.copy_from_slice(&digest[..16]);
        Fingerprint(Some(short))
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("source", &self.source)
            .finish()
    }
}

impl fmt::Display for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "user {:?} from {}", self.username, self.source)
    }
}

/// Identity of the credential used for a request; `anonymous()` when none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(Option<[u8; 16]>);

impl Fingerprint {
    pub fn anonymous() -> Self {
        Fingerprint(None)
    }

    pub fn of(credential: Option<&Credential>) -> Self {
        credential.map_or_else(Fingerprint::anonymous, Credential::fingerprint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_password() {
        let c = Credential::new("robot", "s3cr3t-token", "secret prod/regcred");
        for text in [format!("{c:?}"), format!("{c}"), format!("{c:#?}")] {
            assert!(!text.contains("s3cr3t-token"), "{text}");
            assert!(text.contains("robot"), "{text}");
        }
    }

    #[test]
    fn fingerprints_differ_by_password_and_user_and_not_by_source() {
        let a = Credential::new("u", "p1", "a");
        assert_ne!(
            a.fingerprint(),
            Credential::new("u", "p2", "a").fingerprint()
        );
        assert_ne!(
            a.fingerprint(),
            Credential::new("v", "p1", "a").fingerprint()
        );
        // "u:" + "p" vs "u" + ":p" must not collide.
        assert_ne!(
            Credential::new("u:", "p", "a").fingerprint(),
            Credential::new("u", ":p", "a").fingerprint()
        );
        assert_eq!(
            a.fingerprint(),
            Credential::new("u", "p1", "b").fingerprint()
        );
        assert_ne!(a.fingerprint(), Fingerprint::anonymous());
    }
}
