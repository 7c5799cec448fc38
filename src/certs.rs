//! Development certificates: a throw-away CA and a server certificate signed by it.
//!
//! The webhook must serve HTTPS, and the API server (or a test client) must trust it through a `caBundle`.
//! rustls refuses a CA:TRUE certificate as a server's end-entity certificate (`CaUsedAsEndEntity`), so a
//! single self-signed certificate is not enough: we make a CA and a separate leaf.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// How long the leaf certificate is valid: about a year, so a forgotten dev setup fails loudly eventually.
const LEAF_VALIDITY: Duration = Duration::from_secs(365 * 24 * 60 * 60);
/// The CA outlives the leaf so that a leaf re-issued later under the same CA would still chain.
const CA_VALIDITY: Duration = Duration::from_secs(2 * 365 * 24 * 60 * 60);
/// Backdating tolerates a client whose clock is a little behind the machine that made the certificates.
const BACKDATE: Duration = Duration::from_secs(60 * 60);

/// File names inside the output directory; `tls.crt`/`tls.key` match a `kubernetes.io/tls` Secret's keys.
pub const CA_CERT_FILE: &str = "ca.crt";
pub const CA_KEY_FILE: &str = "ca.key";
pub const TLS_CERT_FILE: &str = "tls.crt";
pub const TLS_KEY_FILE: &str = "tls.key";

/// A PEM certificate and its PEM (PKCS#8) private key.
#[derive(Clone)]
pub struct CertPair {
    pub cert_pem: String,
    pub key_pem: String,
}

impl fmt::Debug for CertPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertPair")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// A CA and a server certificate signed by it.
#[derive(Clone, Debug)]
pub struct DevPki {
    pub ca: CertPair,
    pub leaf: CertPair,
}

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("no subject alternative names given: the server certificate needs at least one")]
    NoSans,
    #[error("invalid subject alternative name {san:?}: {source}")]
    InvalidSan { san: String, source: rcgen::Error },
    #[error("cannot generate the {what}: {source}")]
    Generate {
        what: &'static str,
        source: rcgen::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A fresh CA (CA:TRUE, keyCertSign) and a leaf server certificate signed by it (CA:FALSE, serverAuth) with
/// the given SANs (DNS names or IP literals).
pub fn generate(sans: &[String]) -> Result<DevPki, CertError> {
    let Some(first_san) = sans.first() else {
        return Err(CertError::NoSans);
    };
    // Checked one by one so the error names the offending entry rather than the whole list.
    for san in sans {
        CertificateParams::new(vec![san.clone()]).map_err(|source| CertError::InvalidSan {
            san: san.clone(),
            source,
        })?;
    }
    let now = SystemTime::now() - BACKDATE;

    let ca_key = generate_key("CA key")?;
    let ca_key_pem = ca_key.serialize_pem();
    let mut ca_params = CertificateParams::default();
    ca_params.distinguished_name = rcgen::DistinguishedName::new();
    // A name unique to this CA tells two generations apart in `openssl x509 -subject` output and
    // keeps a client from mistaking one dev CA for another during a rotation.
    ca_params.distinguished_name.push(
        DnType::CommonName,
        format!("pullcheck development CA {}", key_tag(&ca_key)),
    );
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca_params.not_before = now.into();
    ca_params.not_after = (now + CA_VALIDITY).into();
    let ca =
        CertifiedIssuer::self_signed(ca_params, ca_key).map_err(|source| CertError::Generate {
            what: "CA certificate",
            source,
        })?;

    let mut leaf_params =
        CertificateParams::new(sans.to_vec()).map_err(|source| CertError::InvalidSan {
            san: sans.join(","),
            source,
        })?;
    leaf_params.distinguished_name = rcgen::DistinguishedName::new();
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, first_san.as_str());
    leaf_params.is_ca = IsCa::ExplicitNoCa;
    leaf_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf_params.use_authority_key_identifier_extension = true;
    leaf_params.not_before = now.into();
    leaf_params.not_after = (now + LEAF_VALIDITY).into();
    let leaf_key = generate_key("server key")?;
    let leaf_cert =
        leaf_params
            .signed_by(&leaf_key, &ca)
            .map_err(|source| CertError::Generate {
                what: "server certificate",
                source,
            })?;

    Ok(DevPki {
        ca: CertPair {
            cert_pem: ca.pem(),
            key_pem: ca_key_pem,
        },
        leaf: CertPair {
            cert_pem: leaf_cert.pem(),
            key_pem: leaf_key.serialize_pem(),
        },
    })
}

/// First 8 hex digits of the SHA-256 of the public key.
fn key_tag(key: &KeyPair) -> String {
    use rcgen::PublicKeyData;
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(key.der_bytes());
    digest[..4].iter().map(|b| format!("{b:02x}")).collect()
}

fn generate_key(what: &'static str) -> Result<KeyPair, CertError> {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|source| CertError::Generate { what, source })
}

/// Default SANs: localhost, 127.0.0.1, ::1, and the in-cluster names of `service` in `namespace`
/// (`svc`, `svc.ns`, `svc.ns.svc`, `svc.ns.svc.cluster.local`).
///
/// The API server calls a webhook at `<service>.<namespace>.svc` (that is the name it verifies), the
/// shorter forms are what a pod in the cluster may use, and the loopback names serve local runs.
pub fn default_sans(service: &str, namespace: &str) -> Vec<String> {
    vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
        service.to_owned(),
        format!("{service}.{namespace}"),
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
    ]
}

/// Writes ca.crt, ca.key, tls.crt, tls.key into `dir` (keys 0600), creating `dir`.
///
/// Each file is written to a temporary name and renamed into place, so a server that polls the files never
/// reads a half-written certificate.
pub fn write(pki: &DevPki, dir: &Path) -> Result<(), CertError> {
    std::fs::create_dir_all(dir).map_err(|source| CertError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    // The four renames are not one atomic step: a server polling in between may see a new key with the
    // old certificate, reject that pair (keeping the old one) and pick up the complete pair next time.
    write_file(&dir.join(CA_KEY_FILE), &pki.ca.key_pem, true)?;
    write_file(&dir.join(CA_CERT_FILE), &pki.ca.cert_pem, false)?;
    write_file(&dir.join(TLS_KEY_FILE), &pki.leaf.key_pem, true)?;
    write_file(&dir.join(TLS_CERT_FILE), &pki.leaf.cert_pem, false)?;
    Ok(())
}

fn write_file(path: &Path, contents: &str, secret: bool) -> Result<(), CertError> {
    let err = |source| CertError::Write {
        path: path.to_path_buf(),
        source,
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{file_name}.tmp"));
    // A leftover temporary file from an interrupted run may have other permissions; start clean.
    match std::fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if secret { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut file = options.open(&tmp).map_err(err)?;
    file.write_all(contents.as_bytes()).map_err(err)?;
    file.sync_all().map_err(err)?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::client::danger::ServerCertVerifier;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use std::sync::Arc;

    fn install_provider() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }

    fn der(pem: &str) -> CertificateDer<'static> {
        let mut certs = rustls_pemfile::certs(&mut pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .expect("PEM certificate parses");
        assert_eq!(certs.len(), 1, "exactly one certificate in the PEM");
        certs.remove(0)
    }

    fn verify(ca_pem: &str, leaf_pem: &str, name: &str) -> Result<(), rustls::Error> {
        install_provider();
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(der(ca_pem))
            .expect("CA certificate is a valid root");
        let verifier = rustls::client::WebPkiServerVerifier::builder(Arc::new(roots))
            .build()
            .expect("verifier builds");
        let server_name = ServerName::try_from(name.to_owned()).expect("valid server name");
        verifier
            .verify_server_cert(&der(leaf_pem), &[], &server_name, &[], UnixTime::now())
            .map(|_| ())
    }

    #[test]
    fn default_sans_cover_loopback_and_in_cluster_names() {
        assert_eq!(
            default_sans("pullcheck", "pullcheck"),
            vec![
                "localhost",
                "127.0.0.1",
                "::1",
                "pullcheck",
                "pullcheck.pullcheck",
                "pullcheck.pullcheck.svc",
                "pullcheck.pullcheck.svc.cluster.local",
            ]
        );
        assert_eq!(
            default_sans("hook", "infra")[4..],
            [
                "hook.infra",
                "hook.infra.svc",
                "hook.infra.svc.cluster.local"
            ]
        );
    }

    #[test]
    fn leaf_verifies_against_ca_for_every_default_san() {
        let sans = default_sans("pullcheck", "pullcheck");
        let pki = generate(&sans).expect("generate");
        for san in &sans {
            verify(&pki.ca.cert_pem, &pki.leaf.cert_pem, san)
                .unwrap_or_else(|e| panic!("leaf must be valid for {san}: {e}"));
        }
    }

    #[test]
    fn leaf_is_rejected_for_a_name_not_in_its_sans() {
        let pki = generate(&["localhost".to_owned()]).expect("generate");
        let err = verify(&pki.ca.cert_pem, &pki.leaf.cert_pem, "example.com")
            .expect_err("a name outside the SANs must not verify");
        assert!(
            matches!(
                err,
                rustls::Error::InvalidCertificate(
                    rustls::CertificateError::NotValidForName
                        | rustls::CertificateError::NotValidForNameContext { .. }
                )
            ),
            "unexpected error {err:?}"
        );
    }

    #[test]
    fn leaf_is_rejected_under_a_different_ca() {
        let sans = vec!["localhost".to_owned()];
        let first = generate(&sans).expect("generate");
        let second = generate(&sans).expect("generate");
        let err = verify(&second.ca.cert_pem, &first.leaf.cert_pem, "localhost")
            .expect_err("a leaf of another CA must not verify");
        assert!(
            matches!(
                err,
                rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)
            ),
            "unexpected error {err:?}"
        );
    }

    #[test]
    fn ca_certificate_is_not_usable_as_a_server_certificate() {
        // This is why generate() makes two certificates: rustls refuses a CA:TRUE end entity.
        let pki = generate(&["localhost".to_owned()]).expect("generate");
        let err = verify(&pki.ca.cert_pem, &pki.ca.cert_pem, "localhost")
            .expect_err("CA as end entity must be rejected");
        assert!(
            format!("{err:?}").contains("CaUsedAsEndEntity"),
            "unexpected error {err:?}"
        );
    }

    #[test]
    fn leaf_key_matches_leaf_certificate_and_is_ecdsa_p256() {
        install_provider();
        let pki = generate(&["localhost".to_owned()]).expect("generate");
        let key = rustls_pemfile::private_key(&mut pki.leaf.key_pem.as_bytes())
            .expect("key PEM parses")
            .expect("one key in the PEM");
        let signing_key = rustls::crypto::ring::sign::any_supported_type(&key).expect("usable key");
        assert_eq!(signing_key.algorithm(), rustls::SignatureAlgorithm::ECDSA);
        let certified = rustls::sign::CertifiedKey::new(vec![der(&pki.leaf.cert_pem)], signing_key);
        certified
            .keys_match()
            .expect("leaf key belongs to leaf cert");
    }

    #[test]
    fn rejects_invalid_or_missing_sans() {
        assert!(matches!(generate(&[]), Err(CertError::NoSans)));
        match generate(&["localhost".to_owned(), "bücher.example".to_owned()]) {
            Err(CertError::InvalidSan { san, .. }) => assert_eq!(san, "bücher.example"),
            other => panic!("expected InvalidSan, got {other:?}"),
        }
    }

    #[test]
    fn debug_output_redacts_private_keys() {
        let pki = generate(&["localhost".to_owned()]).expect("generate");
        let shown = format!("{pki:?}");
        assert!(!shown.contains("PRIVATE KEY"), "{shown}");
        assert!(shown.contains("<redacted>"));
        assert!(shown.contains("BEGIN CERTIFICATE"));
    }

    #[test]
    fn write_creates_directory_and_files_with_private_keys_owner_only() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("nested").join("out");
        let pki = generate(&["localhost".to_owned()]).expect("generate");
        write(&pki, &dir).expect("write");
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).expect("file exists");
        assert_eq!(read(CA_CERT_FILE), pki.ca.cert_pem);
        assert_eq!(read(CA_KEY_FILE), pki.ca.key_pem);
        assert_eq!(read(TLS_CERT_FILE), pki.leaf.cert_pem);
        assert_eq!(read(TLS_KEY_FILE), pki.leaf.key_pem);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |name: &str| {
                std::fs::metadata(dir.join(name))
                    .expect("metadata")
                    .permissions()
                    .mode()
                    & 0o777
            };
            assert_eq!(mode(CA_KEY_FILE), 0o600);
            assert_eq!(mode(TLS_KEY_FILE), 0o600);
            assert_eq!(mode(CA_CERT_FILE), 0o644);
        }
        // Only the four files: no temporary leftovers.
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().into_string().expect("utf8"))
            .collect();
        names.sort();
        assert_eq!(names, ["ca.crt", "ca.key", "tls.crt", "tls.key"]);
    }

    #[test]
    fn write_overwrites_an_existing_set() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let sans = vec!["localhost".to_owned()];
        let first = generate(&sans).expect("generate");
        let second = generate(&sans).expect("generate");
        write(&first, tmp.path()).expect("first write");
        write(&second, tmp.path()).expect("second write");
        let tls = std::fs::read_to_string(tmp.path().join(TLS_CERT_FILE)).expect("read");
        assert_eq!(tls, second.leaf.cert_pem);
        assert_ne!(tls, first.leaf.cert_pem);
    }
}
