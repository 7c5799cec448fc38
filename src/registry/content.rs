//! Content fetched by digest: an index's platforms, or a single manifest's config platform.
//!
//! Only after a HEAD has resolved a tag (with the caller's own credentials) do we ask for the
//! content of the digest it named. Content is addressed by its digest, so it cannot change and
//! is cached without expiry; and because the caller already proved access with its HEAD, the
//! cache key needs no credential fingerprint.

use super::error::RegistryError;
use crate::platform::Platform;
use serde::Deserialize;
use sha2::{Digest, Sha256};

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// Whether a manifest media type is an index (OCI image index or Docker manifest list).
pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_LIST
}

pub use crate::platform::coverage::Content;

#[derive(Deserialize)]
struct IndexDoc {
    #[serde(default)]
    manifests: Vec<IndexEntry>,
}

#[derive(Deserialize)]
struct IndexEntry {
    platform: Option<Platform>,
}

#[derive(Deserialize)]
struct ManifestDoc {
    config: Option<Descriptor>,
}

#[derive(Deserialize)]
struct Descriptor {
    digest: String,
}

/// Parses an index body into its entries' platforms, and whether any entry has none.
pub fn parse_index(body: &[u8]) -> Result<Content, RegistryError> {
    let doc: IndexDoc = serde_json::from_slice(body).map_err(|e| RegistryError::Protocol {
        detail: format!("the image index is not valid JSON: {e}"),
    })?;
    let unlabelled = doc.manifests.iter().any(|m| m.platform.is_none());
    Ok(Content::Index {
        platforms: doc
            .manifests
            .into_iter()
            .filter_map(|m| m.platform)
            .collect(),
        unlabelled,
    })
}

/// The config blob's digest from a single manifest body.
pub fn config_digest(body: &[u8]) -> Result<String, RegistryError> {
    let doc: ManifestDoc = serde_json::from_slice(body).map_err(|e| RegistryError::Protocol {
        detail: format!("the manifest is not valid JSON: {e}"),
    })?;
    let digest = doc
        .config
        .map(|c| c.digest)
        .ok_or_else(|| RegistryError::Protocol {
            detail: "the manifest has no config descriptor".into(),
        })?;
    // It goes into a URL and decides what is verified: only a well-formed digest will do.
    crate::reference::validate_digest(&digest, crate::reference::DigestAlgorithms::KUBELET)
        .map_err(|e| RegistryError::Protocol {
            detail: format!("the manifest's config digest is not valid ({e})"),
        })?;
    Ok(digest)
}

/// The platform an image config declares (`os`, `architecture`, `variant`, `os.version`).
pub fn parse_config(body: &[u8]) -> Result<Platform, RegistryError> {
    serde_json::from_slice(body).map_err(|e| RegistryError::Protocol {
        detail: format!("the image config is not valid JSON: {e}"),
    })
}

/// containerd verifies what it fetches by digest; so do we, so a registry that lies cannot
/// make us judge the wrong content. The algorithms are the ones the kubelet accepts.
pub fn verify(digest: &str, body: &[u8]) -> Result<(), RegistryError> {
    let (algorithm, hex) = digest.split_once(':').unwrap_or(("", ""));
    let got = match algorithm {
        "sha256" => format!("{:x}", Sha256::digest(body)),
        "sha384" => format!("{:x}", sha2::Sha384::digest(body)),
        "sha512" => format!("{:x}", sha2::Sha512::digest(body)),
        _ => {
            return Err(RegistryError::Protocol {
                detail: format!("cannot verify content for {digest}: unsupported algorithm"),
            })
        }
    };
    if got == hex {
        Ok(())
    } else {
        Err(RegistryError::Protocol {
            detail: format!("content for {digest} hashes to {algorithm}:{got}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_index_platforms_and_notes_entries_without_one() {
        let body = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:a","size":1,"platform":{"os":"linux","architecture":"amd64"}},
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:b","size":1,"platform":{"os":"linux","architecture":"arm64","variant":"v8"}},
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:c","size":1,"platform":{"os":"unknown","architecture":"unknown"}},
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:d","size":1}
        ]}"#;
        let Content::Index {
            platforms,
            unlabelled,
        } = parse_index(body).expect("index")
        else {
            panic!("an index")
        };
        assert!(unlabelled);
        let names: Vec<String> = platforms.iter().map(ToString::to_string).collect();
        assert_eq!(
            names,
            vec!["linux/amd64", "linux/arm64/v8", "unknown/unknown"]
        );
        assert!(parse_index(b"<html>").is_err());
    }

    #[test]
    fn reads_the_config_platform_including_windows_versions() {
        let p = parse_config(br#"{"architecture":"amd64","os":"windows","os.version":"10.0.20348.2655","rootfs":{}}"#)
            .expect("config");
        assert_eq!(p.os, "windows");
        assert_eq!(p.os_version.as_deref(), Some("10.0.20348.2655"));
        let good = format!("sha256:{}", "ab".repeat(32));
        let manifest = format!(r#"{{"config":{{"mediaType":"x","digest":"{good}","size":2}}}}"#);
        assert_eq!(config_digest(manifest.as_bytes()).expect("digest"), good);
        assert!(config_digest(b"{}").is_err());
        // A config digest goes into a URL: nothing but a well-formed digest is accepted.
        assert!(config_digest(br#"{"config":{"digest":"sha256:../../x"}}"#).is_err());
    }

    #[test]
    fn verifies_sha256_content() {
        let body = b"hello";
        let digest = format!("sha256:{:x}", Sha256::digest(body));
        assert!(verify(&digest, body).is_ok());
        assert!(verify(&digest, b"hellO").is_err());
        assert!(verify("sha512:whatever", body).is_err());
        assert!(verify("md5:5d41402abc4b2a76b9719d911017c592", body).is_err());
        let sha512 = format!("sha512:{:x}", sha2::Sha512::digest(body));
        assert!(verify(&sha512, body).is_ok());
    }

    #[test]
    fn knows_index_media_types() {
        assert!(is_index(OCI_INDEX) && is_index(DOCKER_LIST));
        assert!(!is_index(OCI_MANIFEST) && !is_index(DOCKER_MANIFEST));
    }
}
