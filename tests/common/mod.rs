//! Shared integration-test harness: real and fake servers for the suites to check against, and
//! the one way each common chore is done.
//!
//! * [`TestRegistry`] runs Debian's `docker-registry` (CNCF distribution 2.8.2) over TLS on a free
//!   127.0.0.1 port with storage in its own temporary directory, with no auth, htpasswd (bcrypt) or
//!   token auth. Images are pushed over the plain registry HTTP API ([`TestRegistry::push_image`],
//!   [`TestRegistry::push_index`], ...) and [`Fixtures::seed`] pushes the standard set.
//! * [`TokenService`] issues ES256 JWTs that distribution accepts, with per-test access rules, and
//!   records every token request.
//! * [`FakeRegistry`] answers whatever a test scripts (429, 5xx, stalls, garbage, odd challenges);
//!   [`apiserver::FakeApiServer`] speaks kube-apiserver's wire format for the core objects.
//! * [`webhook::Webhook`] runs the real `pullcheck serve`; [`inprocess`] runs the checker without
//!   the server.
//!
//! One of each: AdmissionReviews come from [`review::Review`]; every wait is [`eventually`]; every
//! TLS client is built on [`rustls_client_config`]; every test server (`server::ServerThread`)
//! records what it receives as a [`RecordedRequest`]; every child process goes through
//! `process::Process`; every temporary directory comes from `scratch`.
//!
//! Every server in one test binary presents a certificate from the same development CA
//! ([`ca_pem`], as a file [`ca_file`]), so one client from [`client_builder`] reaches all of them.
//!
//! Compiled once, as a module of the one integration-test binary (`tests/integration/main.rs`):
//! suites reach it as `crate::common`, and an item none of them uses is a dead-code warning.

pub mod apiserver;
mod fake;
mod images;
pub mod inprocess;
mod process;
mod registry;
pub mod review;
mod scratch;
mod server;
mod timefmt;
mod token;
pub mod vectors;
pub mod webhook;

pub use fake::{FakeRegistry, Reply};
pub use images::{Fixtures, IndexFlavor, Platform};
pub use registry::{AccessLogEntry, RegistryAuth, TestRegistry};
pub use server::RecordedRequest;
pub use token::{TokenRules, TokenService};

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use pullcheck::certs::DevPki;
use sha2::{Digest as _, Sha256};

/// The four manifest media types, in the order containerd sends them. distribution 2.8.2 answers
/// 404 for an OCI index or manifest, and 400 for a Docker list, when its type is missing here.
pub const MANIFEST_ACCEPT: &str = "application/vnd.docker.distribution.manifest.v2+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.oci.image.index.v1+json";

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// A content digest, always `sha256:<64 lowercase hex>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest(format!("sha256:{:x}", Sha256::digest(bytes)))
    }

    /// Wraps a digest string as a registry returned it (no validation: tests compare it).
    pub fn from_header(value: &str) -> Digest {
        Digest(value.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for Digest {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Digest {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<String> for Digest {
    fn eq(&self, other: &String) -> bool {
        &self.0 == other
    }
}

/// Installs rustls' ring provider for the process; a second install (another test got there
/// first) is not an error.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The development PKI shared by every server in this test binary: a CA and a leaf for
/// `localhost` and `127.0.0.1`, made once by `pullcheck::certs::generate`.
pub fn pki() -> &'static DevPki {
    static PKI: OnceLock<DevPki> = OnceLock::new();
    PKI.get_or_init(|| {
        pullcheck::certs::generate(&["localhost".to_string(), "127.0.0.1".to_string()])
            .expect("generate the test PKI")
    })
}

/// PEM of the CA that signed every test server's certificate.
pub fn ca_pem() -> &'static str {
    &pki().ca.cert_pem
}

/// A file holding [`ca_pem`], for what takes the CA as a path (`--registry-ca`,
/// `RegistrySettings::extra_ca_files`). Written once per test process.
pub fn ca_file() -> &'static Path {
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    FILE.get_or_init(|| {
        // Kept for the whole process; a later one sweeps it (see `scratch`).
        let path = scratch::dir("ca").keep().join("ca.pem");
        write(&path, ca_pem());
        path
    })
}

/// `https://<addr>`, or `http://<addr>` for a server without TLS; no trailing slash.
pub fn base_url(addr: impl fmt::Display, tls: bool) -> String {
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{addr}")
}

/// Writes `contents` to `path`, naming the path when that fails.
pub fn write(path: &Path, contents: &str) {
    std::fs::write(path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// A port that was free a moment ago on 127.0.0.1. Another process may take it before the caller
/// binds it; [`TestRegistry::start`] copes with that by retrying with a new port.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

/// Checks `condition` until it holds or `within` has passed; whether it held in time. The harness's
/// one poll loop: every wait for a server, a process or a state goes through it.
///
/// The first pause is 10 ms and each one doubles up to 100 ms, so a condition that sends a
/// request does not flood the server; the last check falls on the deadline.
pub async fn eventually(within: Duration, mut condition: impl AsyncFnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    let mut pause = Duration::from_millis(10);
    loop {
        if condition().await {
            return true;
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return false;
        }
        tokio::time::sleep_until(deadline.min(now + pause)).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// A Linux Node as the kubelet registers it: os, arch and hostname labels, and nodeInfo with
/// the container `runtime` (`containerd://1.7.22`, `cri-o://1.30.2`, ...).
pub fn linux_node(name: &str, arch: &str, runtime: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {
            "kubernetes.io/arch": arch,
            "kubernetes.io/os": "linux",
            "kubernetes.io/hostname": name,
        }},
        "status": {"nodeInfo": {
            "architecture": arch, "operatingSystem": "linux", "containerRuntimeVersion": runtime,
            "kernelVersion": "6.8.0-45-generic", "osImage": "Ubuntu 24.04.1 LTS",
            "bootID": "", "kubeProxyVersion": "", "kubeletVersion": "v1.33.1", "machineID": "",
            "systemUUID": "",
        }},
    })
}

/// ALPN of a client that speaks HTTP/2 and HTTP/1.1, as kube-apiserver's webhook client does.
pub const H2_AND_HTTP11: &[&[u8]] = &[b"h2", b"http/1.1"];

/// The harness's rustls client config (ring provider): trusts exactly the CAs in `ca_pem`, speaks
/// `versions` (`rustls::DEFAULT_VERSIONS` is TLS 1.3 and 1.2) and offers `alpn` (none: the client
/// speaks HTTP/1.1 only).
pub fn rustls_client_config(
    ca_pem: &str,
    versions: &[&'static rustls::SupportedProtocolVersion],
    alpn: &[&[u8]],
) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
        roots
            .add(cert.expect("parse CA PEM"))
            .expect("add CA to the root store");
    }
    assert!(!roots.is_empty(), "no certificate in the CA PEM");
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(versions)
    .expect("TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config
}

/// A reqwest client builder over `tls` that ignores proxy settings of the environment
/// (everything here is on 127.0.0.1) and gives up on a request after 30 s.
pub fn client_builder_over(tls: rustls::ClientConfig) -> reqwest::ClientBuilder {
    install_crypto_provider();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .no_proxy()
        .timeout(Duration::from_secs(30))
}

/// A reqwest client builder that trusts the shared test CA (reaches every test server) and speaks
/// HTTP/1.1.
pub fn client_builder() -> reqwest::ClientBuilder {
    client_builder_over(rustls_client_config(
        ca_pem(),
        rustls::DEFAULT_VERSIONS,
        &[],
    ))
}

/// A client that trusts the shared test CA.
pub fn client() -> reqwest::Client {
    client_builder().build().expect("build reqwest client")
}

/// `Basic <base64(user:pass)>`.
pub fn basic_auth_value(user: &str, pass: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

/// The range every test server listens in: allowed explicitly, as a test setup with registries
/// on loopback must (`--allow-registry-address 127.0.0.0/8`).
pub const LOOPBACK: &str = "127.0.0.0/8";

/// An address policy that lets the registry client reach the test servers on loopback.
pub fn loopback_allowed() -> pullcheck::registry::address::AddressPolicy {
    pullcheck::registry::address::AddressPolicy {
        allow: vec![pullcheck::registry::address::AddressRule::parse(LOOPBACK).expect("range")],
        deny: Vec::new(),
    }
}
