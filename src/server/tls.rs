//! TLS: loading the certificate pair, serving it through a swappable resolver, and reloading it.
//!
//! Reload compares file *content*: a Kubernetes Secret volume updates by writing a new `..<timestamp>`
//! directory and atomically renaming a `..data` symlink onto it, so `tls.crt` keeps its path, and its mtime
//! as seen through the symlink is not a reliable change signal.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::CertificateDer;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};

/// Why a certificate/key pair could not be used. Every variant names the file; none carries key bytes.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read TLS file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("TLS certificate file {} is not valid PEM: {source}", path.display())]
    CertPem {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("TLS certificate file {} contains no CERTIFICATE block", path.display())]
    NoCertificate { path: PathBuf },
    #[error("TLS certificate file {} holds an unusable certificate: {source}", path.display())]
    BadCertificate {
        path: PathBuf,
        source: rustls::Error,
    },
    #[error("TLS key file {} is not valid PEM: {source}", path.display())]
    KeyPem {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("TLS key file {} contains no private key block", path.display())]
    NoKey { path: PathBuf },
    #[error("TLS key file {} holds an unsupported private key: {source}", path.display())]
    UnsupportedKey {
        path: PathBuf,
        source: rustls::Error,
    },
    #[error("TLS key file {} does not belong to the certificate in {}", key.display(), cert.display())]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error("cannot configure TLS: {0}")]
    Config(rustls::Error),
}

/// The certificate and key paths as configured (possibly symlinks into a Secret volume).
#[derive(Clone, Debug)]
pub(crate) struct CertFiles {
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
}

/// The raw bytes of one read of both files.
struct PairBytes {
    cert: Vec<u8>,
    key: Vec<u8>,
}

impl PairBytes {
    fn digest(&self) -> [u8; 32] {
        let mut hasher = Sha256::new();
        // Length prefix so that moving bytes from one file to the other changes the digest.
        hasher.update((self.cert.len() as u64).to_le_bytes());
        hasher.update(&self.cert);
        hasher.update(&self.key);
        hasher.finalize().into()
    }
}

impl CertFiles {
    async fn read(&self) -> Result<PairBytes, TlsError> {
        let read = |path: &Path| {
            let path = path.to_path_buf();
            async move {
                tokio::fs::read(&path)
                    .await
                    .map_err(|source| TlsError::Read { path, source })
            }
        };
        Ok(PairBytes {
            cert: read(&self.cert).await?,
            key: read(&self.key).await?,
        })
    }

    fn read_blocking(&self) -> Result<PairBytes, TlsError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| TlsError::Read {
                path: path.to_path_buf(),
                source,
            })
        };
        Ok(PairBytes {
            cert: read(&self.cert)?,
            key: read(&self.key)?,
        })
    }

    fn parse(
        &self,
        bytes: &PairBytes,
        provider: &CryptoProvider,
    ) -> Result<CertifiedKey, TlsError> {
        let chain = rustls_pemfile::certs(&mut bytes.cert.as_slice())
            .collect::<Result<Vec<CertificateDer<'static>>, _>>()
            .map_err(|source| TlsError::CertPem {
                path: self.cert.clone(),
                source,
            })?;
        if chain.is_empty() {
            return Err(TlsError::NoCertificate {
                path: self.cert.clone(),
            });
        }
        let key = rustls_pemfile::private_key(&mut bytes.key.as_slice())
            .map_err(|source| TlsError::KeyPem {
                path: self.key.clone(),
                source,
            })?
            .ok_or_else(|| TlsError::NoKey {
                path: self.key.clone(),
            })?;
        let signing_key = provider
            .key_provider
            .load_private_key(key)
            .map_err(|source| TlsError::UnsupportedKey {
                path: self.key.clone(),
                source,
            })?;
        let certified = CertifiedKey::new(chain, signing_key);
        match certified.keys_match() {
            // A key type whose public half rustls cannot derive cannot be checked; rustls itself
            // (CertifiedKey::from_der) accepts that case, and so do we.
            Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
                Ok(certified)
            }
            Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
                Err(TlsError::KeyMismatch {
                    cert: self.cert.clone(),
                    key: self.key.clone(),
                })
            }
            Err(source) => Err(TlsError::BadCertificate {
                path: self.cert.clone(),
                source,
            }),
        }
    }
}

/// Short SHA-256 fingerprint of the leaf certificate, for logs (public data).
pub(crate) fn fingerprint(key: &CertifiedKey) -> String {
    key.cert
        .first()
        .map(|der| {
            Sha256::digest(der.as_ref())[..8]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        })
        .unwrap_or_default()
}

/// Hands every handshake the current pair; the reloader swaps it.
#[derive(Debug)]
pub(crate) struct CertResolver {
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertResolver {
    fn new(key: CertifiedKey) -> Self {
        Self {
            current: RwLock::new(Arc::new(key)),
        }
    }

    pub(crate) fn current(&self) -> Arc<CertifiedKey> {
        // A writer cannot panic while holding the lock (it only assigns an Arc), but recover anyway rather
        // than fail every handshake.
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn replace(&self, key: CertifiedKey) {
        *self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(key);
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// What one look at the files found.
#[derive(Debug)]
pub(crate) enum ReloadOutcome {
    Unchanged,
    /// The files were caught mid-update (the certificate changed while we read the key); look again later.
    InFlux,
    Reloaded {
        fingerprint: String,
    },
    /// The content changed but cannot be used; the previous pair keeps serving.
    Rejected(TlsError),
    /// The files cannot be read right now; the previous pair keeps serving.
    Unreadable(TlsError),
}

/// Polls the files and swaps the resolver's pair when their content changes to a usable pair.
pub(crate) struct Reloader {
    files: CertFiles,
    provider: Arc<CryptoProvider>,
    resolver: Arc<CertResolver>,
    /// Digest of the last content acted on (served or rejected), so a bad pair is reported once, not on
    /// every poll.
    last_seen: [u8; 32],
    /// Whether the last look failed to read, so a missing file is reported once until it changes.
    unreadable: bool,
}

impl Reloader {
    /// Loads the initial pair; failure here is fatal for the server.
    pub(crate) fn load(
        files: CertFiles,
        provider: Arc<CryptoProvider>,
    ) -> Result<(Self, Arc<CertResolver>), TlsError> {
        let bytes = files.read_blocking()?;
        let key = files.parse(&bytes, &provider)?;
        let resolver = Arc::new(CertResolver::new(key));
        let reloader = Self {
            files,
            provider,
            resolver: resolver.clone(),
            last_seen: bytes.digest(),
            unreadable: false,
        };
        Ok((reloader, resolver))
    }

    pub(crate) fn files(&self) -> &CertFiles {
        &self.files
    }

    pub(crate) async fn check(&mut self) -> ReloadOutcome {
        let bytes = match self.files.read().await {
            Ok(bytes) => bytes,
            Err(e) => {
                if self.unreadable {
                    return ReloadOutcome::Unchanged;
                }
                self.unreadable = true;
                return ReloadOutcome::Unreadable(e);
            }
        };
        self.unreadable = false;
        let digest = bytes.digest();
        if digest == self.last_seen {
            return ReloadOutcome::Unchanged;
        }
        // Reading two files is not atomic. If the certificate changed while we read the key, the pair may
        // straddle an update; skip this round instead of warning about a mismatch that is not real.
        match tokio::fs::read(&self.files.cert).await {
            Ok(again) if again == bytes.cert => {}
            _ => return ReloadOutcome::InFlux,
        }
        self.last_seen = digest;
        match self.files.parse(&bytes, &self.provider) {
            Ok(key) => {
                let fingerprint = fingerprint(&key);
                self.resolver.replace(key);
                ReloadOutcome::Reloaded { fingerprint }
            }
            Err(e) => ReloadOutcome::Rejected(e),
        }
    }

    /// Polls forever, logging what changes.
    pub(crate) async fn run(mut self, interval: std::time::Duration) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick fires at once; the pair was just loaded.
        ticker.tick().await;
        loop {
            ticker.tick().await;
            match self.check().await {
                ReloadOutcome::Unchanged | ReloadOutcome::InFlux => {}
                ReloadOutcome::Reloaded { fingerprint } => tracing::info!(
                    cert = %self.files.cert.display(),
                    key = %self.files.key.display(),
                    %fingerprint,
                    "reloaded TLS certificate"
                ),
                ReloadOutcome::Rejected(error) => tracing::warn!(
                    cert = %self.files.cert.display(),
                    key = %self.files.key.display(),
                    %error,
                    "new TLS certificate/key rejected; still serving the previous pair"
                ),
                ReloadOutcome::Unreadable(error) => tracing::warn!(
                    %error,
                    "cannot read TLS files; still serving the previous pair"
                ),
            }
        }
    }
}

/// rustls server configuration: ring, TLS 1.3 and 1.2, ALPN h2 then http/1.1, certificate from `resolver`.
pub(crate) fn server_config(
    provider: Arc<CryptoProvider>,
    resolver: Arc<CertResolver>,
) -> Result<rustls::ServerConfig, TlsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsError::Config)?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs;

    fn provider() -> Arc<CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    fn pki() -> certs::DevPki {
        certs::generate(&["localhost".to_owned()]).expect("generate")
    }

    struct Dir {
        _tmp: tempfile::TempDir,
        files: CertFiles,
    }

    fn dir_with(cert: &str, key: &str) -> Dir {
        let tmp = tempfile::tempdir().expect("tempdir");
        let files = CertFiles {
            cert: tmp.path().join("tls.crt"),
            key: tmp.path().join("tls.key"),
        };
        std::fs::write(&files.cert, cert).expect("write cert");
        std::fs::write(&files.key, key).expect("write key");
        Dir { _tmp: tmp, files }
    }

    fn load_err(cert: &str, key: &str) -> (TlsError, CertFiles) {
        let dir = dir_with(cert, key);
        let err = Reloader::load(dir.files.clone(), provider())
            .err()
            .expect("load must fail");
        (err, dir.files)
    }

    #[test]
    fn loads_a_matching_pair() {
        let pki = pki();
        let dir = dir_with(&pki.leaf.cert_pem, &pki.leaf.key_pem);
        let (_reloader, resolver) = Reloader::load(dir.files.clone(), provider()).expect("load");
        assert_eq!(resolver.current().cert.len(), 1);
    }

    #[test]
    fn load_errors_name_the_file_at_fault() {
        let pki = pki();
        let other = pki_other();
        struct Case {
            name: &'static str,
            cert: String,
            key: String,
            is_expected: fn(&TlsError) -> bool,
            /// Whether the message must name the certificate file (else the key file).
            names_cert: bool,
        }
        let case = |name, cert: &str, key: &str, is_expected, names_cert| Case {
            name,
            cert: cert.to_owned(),
            key: key.to_owned(),
            is_expected,
            names_cert,
        };
        let cases = [
            case(
                "garbage certificate",
                "not pem at all",
                &pki.leaf.key_pem,
                |e| matches!(e, TlsError::NoCertificate { .. }),
                true,
            ),
            case(
                "truncated certificate PEM",
                "-----BEGIN CERTIFICATE-----\nMIIB\n",
                &pki.leaf.key_pem,
                |e| matches!(e, TlsError::CertPem { .. }),
                true,
            ),
            case(
                "certificate PEM holding garbage DER",
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                &pki.leaf.key_pem,
                |e| matches!(e, TlsError::BadCertificate { .. }),
                true,
            ),
            case(
                "no key in key file",
                &pki.leaf.cert_pem,
                &pki.leaf.cert_pem,
                |e| matches!(e, TlsError::NoKey { .. }),
                false,
            ),
            case(
                "key of another certificate",
                &pki.leaf.cert_pem,
                &other.leaf.key_pem,
                |e| matches!(e, TlsError::KeyMismatch { .. }),
                false,
            ),
        ];
        for Case {
            name,
            cert,
            key,
            is_expected,
            names_cert,
        } in cases
        {
            let (err, files) = load_err(&cert, &key);
            assert!(is_expected(&err), "{name}: unexpected error {err:?}");
            let message = err.to_string();
            let expected_path = if names_cert { &files.cert } else { &files.key };
            assert!(
                message.contains(&expected_path.display().to_string()),
                "{name}: message {message:?} should name {}",
                expected_path.display()
            );
            assert!(
                !message.contains("PRIVATE KEY") && !message.contains(key.trim()),
                "{name}: message leaks key material: {message}"
            );
        }
    }

    fn pki_other() -> certs::DevPki {
        certs::generate(&["localhost".to_owned()]).expect("generate")
    }

    #[test]
    fn missing_file_error_names_the_path() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let files = CertFiles {
            cert: tmp.path().join("absent.crt"),
            key: tmp.path().join("absent.key"),
        };
        let err = Reloader::load(files, provider()).err().expect("must fail");
        assert!(matches!(err, TlsError::Read { .. }));
        assert!(err.to_string().contains("absent.crt"), "{err}");
    }

    #[tokio::test]
    async fn check_reloads_on_content_change_and_keeps_old_pair_on_bad_content() {
        let first = pki();
        let dir = dir_with(&first.leaf.cert_pem, &first.leaf.key_pem);
        let (mut reloader, resolver) = Reloader::load(dir.files.clone(), provider()).expect("load");
        let served_first = fingerprint(&resolver.current());

        assert!(matches!(reloader.check().await, ReloadOutcome::Unchanged));

        // A new certificate with the old key: rejected once, then quiet while the content stays.
        let second = pki_other();
        std::fs::write(&dir.files.cert, &second.leaf.cert_pem).expect("write");
        match reloader.check().await {
            ReloadOutcome::Rejected(TlsError::KeyMismatch { .. }) => {}
            other => panic!("expected a key mismatch, got {other:?}"),
        }
        assert_eq!(fingerprint(&resolver.current()), served_first);
        assert!(matches!(reloader.check().await, ReloadOutcome::Unchanged));

        // The matching key arrives: the new pair is served.
        std::fs::write(&dir.files.key, &second.leaf.key_pem).expect("write");
        match reloader.check().await {
            ReloadOutcome::Reloaded { fingerprint: f } => {
                assert_ne!(f, served_first);
                assert_eq!(fingerprint(&resolver.current()), f);
            }
            other => panic!("expected a reload, got {other:?}"),
        }

        // Files disappear: reported once, old pair kept.
        let served_second = fingerprint(&resolver.current());
        std::fs::remove_file(&dir.files.cert).expect("remove");
        assert!(matches!(
            reloader.check().await,
            ReloadOutcome::Unreadable(TlsError::Read { .. })
        ));
        assert!(matches!(reloader.check().await, ReloadOutcome::Unchanged));
        assert_eq!(fingerprint(&resolver.current()), served_second);
    }

    #[tokio::test]
    async fn rewriting_identical_content_is_not_a_reload() {
        let pki = pki();
        let dir = dir_with(&pki.leaf.cert_pem, &pki.leaf.key_pem);
        let (mut reloader, _resolver) =
            Reloader::load(dir.files.clone(), provider()).expect("load");
        std::fs::write(&dir.files.cert, &pki.leaf.cert_pem).expect("rewrite");
        std::fs::write(&dir.files.key, &pki.leaf.key_pem).expect("rewrite");
        assert!(matches!(reloader.check().await, ReloadOutcome::Unchanged));
    }

    #[test]
    fn server_config_offers_h2_then_http11() {
        let pki = pki();
        let dir = dir_with(&pki.leaf.cert_pem, &pki.leaf.key_pem);
        let (_reloader, resolver) = Reloader::load(dir.files.clone(), provider()).expect("load");
        let config = server_config(provider(), resolver).expect("config");
        assert_eq!(
            config.alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
    }
}
