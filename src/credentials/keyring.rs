//! The kubelet's `BasicDockerKeyring` (`pkg/credentialprovider/keyring.go`): which pull-secret
//! credentials it tries for an image, and in which order.
//!
//! * `Add` turns each registry key into an index key: `https://` is prefixed unless the key
//!   starts with `http://` or `https://`, the result goes through Go's `url.Parse` (an invalid
//!   URL drops the entry), and the index key is the parsed host (port kept verbatim, nothing
//!   lowercased) plus the path, with a leading `/v1/` or `/v2/` cut to `/` and a bare `/`
//!   dropped.
//! * Keys from all secrets share one index, de-duplicated and sorted in reverse byte order, so
//!   `quay.io/coreos` comes before `quay.io`. Under one key, credentials keep the order they
//!   were added in (pod `imagePullSecrets` order).
//! * `Lookup` returns the credentials of every key that `URLsMatchStr(key, repoToPull)`
//!   accepts, in index order: ports equal as strings, the same number of host labels, each
//!   key label a `filepath.Match` pattern for the image label, and the key path a plain
//!   string prefix of the image path.
//! * Only if nothing matched, a Docker Hub image (`isDefaultRegistryMatch`) gets the
//!   credentials stored under the key exactly `index.docker.io`.
//!
//! `url.Parse`, `net.SplitHostPort` and `filepath.Match` are Go's (`go::url`, `go::filepath`),
//! as current kubelets are built: `reg[0-9].example.com` is an invalid URL there, so it is
//! dropped here too rather than used as a glob (see `go::url` for older kubelets).

use std::collections::BTreeMap;
use std::fmt;

use super::dockerconfig::DockerConfigEntry;
use super::go::{filepath, url};
use crate::credentials::Credential;

/// The key the Docker Hub fallback reads (`defaultRegistryHost`).
const DEFAULT_REGISTRY_KEY: &[u8] = b"index.docker.io";

/// Pull-secret credentials indexed by normalized registry key, as the kubelet keeps them.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    /// Ascending byte order; iterated in reverse it is the kubelet's index.
    index: BTreeMap<Vec<u8>, Slot>,
    /// (key as written, source) of entries the kubelet ignores because the key is not a URL.
    ignored: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
struct Slot {
    /// The index key for messages (lossy only if a %-escape produced invalid UTF-8).
    display: String,
    /// The key parsed again as `URLsMatchStr` does on every lookup; `None` when that parse
    /// fails, so the key never URL-matches (it can still be the Docker Hub fallback).
    url: Option<KeyUrl>,
    credentials: Vec<Credential>,
}

#[derive(Debug, Clone)]
struct KeyUrl {
    /// Host without the port, as `SplitURL` leaves it.
    host: Vec<u8>,
    port: Vec<u8>,
    path: Vec<u8>,
    labels: usize,
}

/// One credential the kubelet would try, with the index key that selected it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    pub key: String,
    pub credential: Credential,
}

impl Keyring {
    pub fn new() -> Keyring {
        Keyring::default()
    }

    /// Adds every entry of one secret (or config file); `source` names it for messages, e.g.
    /// "secret prod/regcred". Call in `imagePullSecrets` order.
    pub fn add(&mut self, source: &str, entries: &[DockerConfigEntry]) {
        for entry in entries {
            let Some(key) = normalize_key(&entry.key) else {
                self.ignored.push((entry.key.clone(), source.to_string()));
                continue;
            };
            let slot = self.index.entry(key).or_insert_with_key(|key| Slot {
                display: String::from_utf8_lossy(key).into_owned(),
                url: parse_key(key),
                credentials: Vec::new(),
            });
            slot.credentials.push(Credential::new(
                entry.username.as_str(),
                entry.password.as_str(),
                source,
            ));
        }
    }

    /// The credentials the kubelet would try for `repo_to_pull` (`ImageRef::name()`, e.g.
    /// "docker.io/library/nginx"), in order, each with the normalized key that matched.
    /// Empty means the kubelet pulls anonymously (unless node credentials apply).
    pub fn lookup(&self, repo_to_pull: &str) -> Vec<Match> {
        let mut found = Vec::new();
        if let Some(image) = url::parse_https(repo_to_pull.as_bytes()) {
            let (host, port) = split_url(&image.host);
            let labels = label_count(host);
            for slot in self.index.values().rev() {
                let Some(key) = &slot.url else { continue };
                if key_matches(key, host, port, labels, &image.path) {
                    found.extend(slot.matches());
                }
            }
        }
        if found.is_empty() && is_default_registry_match(repo_to_pull) {
            if let Some(slot) = self.index.get(DEFAULT_REGISTRY_KEY) {
                found.extend(slot.matches());
            }
        }
        found
    }

    /// Every normalized key in the index (index order) with each source that has credentials
    /// under it, for messages like "regcred has credentials for registry.corp.io but the
    /// image is pulled from registry.corp.io:5000".
    pub fn keys(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for slot in self.index.values().rev() {
            let first = out.len();
            for credential in &slot.credentials {
                let seen = out[first..]
                    .iter()
                    .any(|(_, source): &(String, String)| source == credential.source());
                if !seen {
                    out.push((slot.display.clone(), credential.source().to_string()));
                }
            }
        }
        out
    }

    /// Entries the kubelet drops because their key is not a valid URL, as (key as written,
    /// source).
    pub fn ignored(&self) -> &[(String, String)] {
        &self.ignored
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }
}

impl Slot {
    fn matches(&self) -> impl Iterator<Item = Match> + '_ {
        self.credentials.iter().map(|credential| Match {
            key: self.display.clone(),
            credential: credential.clone(),
        })
    }
}

/// `URLsMatchStr(key, repoToPull)`: whether an index key applies to an image repository.
pub fn urls_match(key: &str, repo_to_pull: &str) -> bool {
    let (Some(key), Some(image)) = (
        parse_key(key.as_bytes()),
        url::parse_https(repo_to_pull.as_bytes()),
    ) else {
        return false;
    };
    let (host, port) = split_url(&image.host);
    key_matches(&key, host, port, label_count(host), &image.path)
}

/// `isDefaultRegistryMatch`: whether the kubelet treats `image` as a Docker Hub image for the
/// `index.docker.io` fallback.
pub fn is_default_registry_match(image: &str) -> bool {
    let (first, has_rest) = match image.split_once('/') {
        Some((first, _)) => (first, true),
        None => (image, false),
    };
    if first.is_empty() {
        return false;
    }
    if !has_rest || first == "docker.io" || first == "index.docker.io" {
        return true;
    }
    // A first component with a '.' or ':' names a registry host.
    !first.contains(['.', ':'])
}

/// `BasicDockerKeyring.Add`'s key normalization; `None` when Go's `url.Parse` rejects it.
fn normalize_key(loc: &str) -> Option<Vec<u8>> {
    let raw = loc.as_bytes();
    let after_scheme = raw
        .strip_prefix(b"https://")
        .or_else(|| raw.strip_prefix(b"http://"))
        .unwrap_or(raw);
    let parsed = url::parse_https(after_scheme)?;
    let mut path: &[u8] = &parsed.path;
    if path.starts_with(b"/v2/") || path.starts_with(b"/v1/") {
        path = &path[3..];
    }
    let mut key = parsed.host.into_owned();
    if !path.is_empty() && path != b"/" {
        key.extend_from_slice(path);
    }
    Some(key)
}

/// An index key parsed again the way `URLsMatchStr` parses it (`ParseSchemelessURL`, which
/// is `url.Parse("https://" + key)`, then `SplitURL`).
fn parse_key(key: &[u8]) -> Option<KeyUrl> {
    let parsed = url::parse_https(key)?;
    let (host, port) = split_url(&parsed.host);
    Some(KeyUrl {
        host: host.to_vec(),
        port: port.to_vec(),
        labels: label_count(host),
        path: parsed.path.into_owned(),
    })
}

/// `SplitURL`: `net.SplitHostPort`, or the whole host and no port when that fails (no port,
/// too many colons, stray brackets), so `[fd00::1]` keeps its brackets and is one label.
fn split_url(host_port: &[u8]) -> (&[u8], &[u8]) {
    url::split_host_port(host_port).unwrap_or((host_port, b""))
}

/// `URLsMatch`, with the image side already split.
fn key_matches(key: &KeyUrl, host: &[u8], port: &[u8], labels: usize, path: &[u8]) -> bool {
    key.port == port
        && key.labels == labels
        && path.starts_with(&key.path)
        && key
            .host
            .split(|&b| b == b'.')
            .zip(host.split(|&b| b == b'.'))
            // A malformed pattern is an error in Go, which Lookup treats as no match.
            .all(|(pattern, label)| filepath::matches(pattern, label) == Ok(true))
}

fn label_count(host: &[u8]) -> usize {
    host.iter().filter(|&&b| b == b'.').count() + 1
}

// ---------------------------------------------------------------------------------------------
// Why a key did not match, for messages.

/// A key that did not apply to the image although it looks meant for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NearMiss {
    pub key: String,
    pub source: String,
    pub why: NearMissKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NearMissKind {
    /// Same host, but the ports differ as strings (`""` is not `"443"` or `"5000"`).
    PortDiffers {
        key_port: String,
        image_port: String,
    },
    /// Same host and port, but the key path is not a string prefix of the image path.
    PathDiffers {
        key_path: String,
        image_path: String,
    },
    /// The hosts differ only in letter case; matching is case-sensitive.
    CaseDiffers,
    /// The hosts agree label by label from the right but have different label counts:
    /// `*.example.com` does not cover `example.com` or `a.b.example.com`.
    GlobLabelCount {
        key_labels: usize,
        image_labels: usize,
    },
    /// A Docker Hub host (`registry-1.docker.io`, `*.docker.io`, `index.docker.io` with a path)
    /// that the kubelet never matches for Hub images, which it names `docker.io/...`.
    DockerHubAlias,
}

impl fmt::Display for NearMissKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let port = |p: &str| {
            if p.is_empty() {
                "no port".to_string()
            } else {
                format!("port {p}")
            }
        };
        match self {
            NearMissKind::PortDiffers {
                key_port,
                image_port,
            } => write!(
                f,
                "the port must match exactly, and the key has {} while the image uses {}",
                port(key_port),
                port(image_port)
            ),
            NearMissKind::PathDiffers {
                key_path,
                image_path,
            } => write!(
                f,
                "the key's path {key_path:?} is not a prefix of the image path {image_path:?}"
            ),
            NearMissKind::CaseDiffers => {
                write!(f, "registry keys are matched case-sensitively")
            }
            NearMissKind::GlobLabelCount {
                key_labels,
                image_labels,
            } => write!(
                f,
                "the key host has {key_labels} labels and the image host {image_labels}; \
                 each label of the key, `*` included, matches exactly one label"
            ),
            NearMissKind::DockerHubAlias => write!(
                f,
                "the kubelet never matches this host for Docker Hub images; \
                 use the key https://index.docker.io/v1/ or docker.io"
            ),
        }
    }
}

impl fmt::Display for NearMiss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} in {}: {}", self.key, self.source, self.why)
    }
}

/// Why keys that look meant for `repo_to_pull` do not apply to it. `keys` is what
/// [`Keyring::keys`] returns; keys that do match, the Docker Hub fallback key for a Hub image,
/// and keys for unrelated hosts are left out.
pub fn near_misses(keys: &[(String, String)], repo_to_pull: &str) -> Vec<NearMiss> {
    let Some(image) = url::parse_https(repo_to_pull.as_bytes()) else {
        return Vec::new();
    };
    let (image_host, image_port) = split_url(&image.host);
    let image_labels: Vec<&[u8]> = image_host.split(|&b| b == b'.').collect();
    let hub = is_default_registry_match(repo_to_pull);
    let mut out = Vec::new();
    for (key, source) in keys {
        let Some(k) = parse_key(key.as_bytes()) else {
            continue;
        };
        if key_matches(&k, image_host, image_port, image_labels.len(), &image.path) {
            continue;
        }
        if hub && key.as_bytes() == DEFAULT_REGISTRY_KEY {
            continue;
        }
        let key_labels: Vec<&[u8]> = k.host.split(|&b| b == b'.').collect();
        let same_count = key_labels.len() == image_labels.len();
        let pairwise = |eq: fn(&[u8], &[u8]) -> bool| {
            key_labels
                .iter()
                .rev()
                .zip(image_labels.iter().rev())
                .all(|(p, l)| eq(p, l))
        };
        let why = if same_count && pairwise(glob_eq) {
            if k.port != image_port {
                NearMissKind::PortDiffers {
                    key_port: lossy(&k.port),
                    image_port: lossy(image_port),
                }
            } else {
                NearMissKind::PathDiffers {
                    key_path: lossy(&k.path),
                    image_path: lossy(&image.path),
                }
            }
        } else if same_count && pairwise(glob_eq_ignore_case) {
            NearMissKind::CaseDiffers
        } else if hub
            && key_labels.len() == 3
            && glob_eq(key_labels[1], b"docker")
            && glob_eq(key_labels[2], b"io")
        {
            NearMissKind::DockerHubAlias
        } else if !same_count && key_labels.len().min(image_labels.len()) >= 2 && pairwise(glob_eq)
        {
            NearMissKind::GlobLabelCount {
                key_labels: key_labels.len(),
                image_labels: image_labels.len(),
            }
        } else {
            continue;
        };
        out.push(NearMiss {
            key: key.clone(),
            source: source.clone(),
            why,
        });
    }
    out
}

fn glob_eq(pattern: &[u8], label: &[u8]) -> bool {
    filepath::matches(pattern, label) == Ok(true)
}

fn glob_eq_ignore_case(pattern: &[u8], label: &[u8]) -> bool {
    glob_eq(&pattern.to_ascii_lowercase(), &label.to_ascii_lowercase())
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, username: &str) -> DockerConfigEntry {
        DockerConfigEntry {
            key: key.to_string(),
            username: username.to_string(),
            password: format!("pw-{username}"),
            email: String::new(),
        }
    }

    fn keyring(secrets: &[(&str, &[(&str, &str)])]) -> Keyring {
        let mut k = Keyring::new();
        for (source, entries) in secrets {
            let entries: Vec<_> = entries.iter().map(|(key, user)| entry(key, user)).collect();
            k.add(source, &entries);
        }
        k
    }

    /// (matched key, username, source) in the order the kubelet tries them.
    fn tried(k: &Keyring, repo: &str) -> Vec<(String, String, String)> {
        k.lookup(repo)
            .into_iter()
            .map(|m| {
                (
                    m.key,
                    m.credential.username().to_string(),
                    m.credential.source().to_string(),
                )
            })
            .collect()
    }

    fn users(k: &Keyring, repo: &str) -> Vec<String> {
        tried(k, repo)
            .into_iter()
            .map(|(_, user, _)| user)
            .collect()
    }

    #[test]
    fn keys_normalize_like_basic_docker_keyring_add() {
        let cases: &[(&str, Option<&str>)] = &[
            ("https://index.docker.io/v1/", Some("index.docker.io")),
            ("https://index.docker.io/v2/", Some("index.docker.io")),
            ("index.docker.io", Some("index.docker.io")),
            ("https://quay.io/v1/", Some("quay.io")),
            (
                "https://registry.example.com/v2/team",
                Some("registry.example.com/team"),
            ),
            (
                "https://index.docker.io/v1/myorg",
                Some("index.docker.io/myorg"),
            ),
            // "/v1" without the trailing slash is a path like any other
            ("https://ghcr.io/v1", Some("ghcr.io/v1")),
            ("https://gcr.io/", Some("gcr.io")),
            ("http://registry.local:5000", Some("registry.local:5000")),
            // port kept verbatim, nothing lowercased
            ("registry.example.com:443", Some("registry.example.com:443")),
            ("GHCR.IO", Some("GHCR.IO")),
            ("*.azurecr.io", Some("*.azurecr.io")),
            ("[fd00::1]:5000", Some("[fd00::1]:5000")),
            // userinfo, query and fragment are not part of the key
            ("robot:pw@ghcr.io/org", Some("ghcr.io/org")),
            ("ghcr.io?x=1", Some("ghcr.io")),
            ("ghcr.io#frag", Some("ghcr.io")),
            // the path is unescaped
            ("ghcr.io/a%2Fb", Some("ghcr.io/a/b")),
            // an empty port is a valid port
            ("ghcr.io:", Some("ghcr.io:")),
            // "HTTPS://" is not a recognised scheme, so it becomes part of the host
            ("HTTPS://ghcr.io", Some("HTTPS://ghcr.io")),
            // invalid URLs: the kubelet logs and ignores the entry
            ("ghcr.io:abc", None),
            ("ghcr.io/%zz", None),
            ("reg[0-9].example.com", None),
            ("[1.2.3.4]:5000", None),
            ("[not-an-address]", None),
            ("ghcr io", None),
            ("ghcr.io\u{1}", None),
            ("ghcr.io%41", None),
        ];
        for (loc, want) in cases {
            let got = normalize_key(loc).map(|k| lossy(&k));
            assert_eq!(got.as_deref(), *want, "{loc:?}");
        }
    }

    #[test]
    fn url_matching_follows_urls_match_str() {
        let cases: &[(&str, &str, bool)] = &[
            // ports are compared as strings
            (
                "registry.example.com:5000",
                "registry.example.com:5000/team/app",
                true,
            ),
            (
                "registry.example.com",
                "registry.example.com:5000/team/app",
                false,
            ),
            (
                "registry.example.com:5000",
                "registry.example.com/team/app",
                false,
            ),
            (
                "registry.example.com:443",
                "registry.example.com/app",
                false,
            ),
            ("ghcr.io:", "ghcr.io/org/app", true),
            // one `*` is one label
            ("*.example.com", "a.example.com/app", true),
            ("*.example.com", "example.com/app", false),
            ("*.example.com", "a.b.example.com/app", false),
            (
                "*-docker.pkg.dev",
                "europe-west1-docker.pkg.dev/p/r/i",
                true,
            ),
            ("*kubernetes.io", "kubernetes.io", true),
            ("*kubernetes.io", "a.kubernetes.io", false),
            // the key path is a raw string prefix, with no '/' boundary
            ("quay.io/coreos", "quay.io/coreos/etcd", true),
            ("quay.io/coreos", "quay.io/coreosx/foo", true),
            ("gcr.io/my-project", "gcr.io/my-project-2/app", true),
            ("quay.io/coreos", "quay.io/other/x", false),
            // case-sensitive
            ("GHCR.IO", "ghcr.io/org/app", false),
            // Docker Hub images are named docker.io/...: these never URL-match them
            ("index.docker.io", "docker.io/library/nginx", false),
            ("registry-1.docker.io", "docker.io/library/nginx", false),
            ("*.docker.io", "docker.io/library/nginx", false),
            ("docker.io", "docker.io/library/nginx", true),
            ("docker.io/myorg", "docker.io/myorg/app", true),
            // an IPv6 host without a port is one label, and its brackets read as a class
            ("[fd00::1]:5000", "[fd00::1]:5000/app", true),
            ("[fd00::1]", "[fd00::1]/app", false),
            // a key that fails to parse never matches
            ("ghcr.io:abc", "ghcr.io/app", false),
        ];
        for (key, repo, want) in cases {
            assert_eq!(urls_match(key, repo), *want, "{key} vs {repo}");
        }
    }

    #[test]
    fn default_registry_match_follows_the_kubelet() {
        let cases: &[(&str, bool)] = &[
            ("foo/bar", true),
            ("docker.io/foo/bar", true),
            ("index.docker.io/foo/bar", true),
            ("foo", true),
            ("", false),
            ("/foo", false),
            ("registry.tld/foo/bar", false),
            ("registry:5000/foo/bar", false),
            ("myhostdocker.io/foo/bar", false),
            ("localhost/foo", true),
        ];
        for (image, want) in cases {
            assert_eq!(is_default_registry_match(image), *want, "{image:?}");
        }
    }

    #[test]
    fn docker_hub_credentials_apply_only_through_the_fallback() {
        let k = keyring(&[("hub", &[("https://index.docker.io/v1/", "hub")])]);
        for repo in [
            "docker.io/library/nginx",
            "docker.io/myorg/app",
            "google/docker-registry",
            "jenkins",
        ] {
            assert_eq!(
                tried(&k, repo),
                [("index.docker.io".into(), "hub".into(), "hub".into())],
                "{repo}"
            );
        }
        assert!(k.lookup("ghcr.io/org/app").is_empty());
        assert!(k.lookup("world.mesos.org/foo/bar").is_empty());
    }

    #[test]
    fn fallback_is_skipped_when_another_key_matched() {
        let k = keyring(&[(
            "s",
            &[
                ("docker.io/myorg", "org"),
                ("https://index.docker.io/v1/", "hub"),
            ],
        )]);
        assert_eq!(users(&k, "docker.io/myorg/app"), ["org"]);
        assert_eq!(users(&k, "docker.io/otherorg/app"), ["hub"]);
    }

    #[test]
    fn docker_hub_aliases_never_match_hub_images() {
        for key in [
            "registry-1.docker.io",
            "*.docker.io",
            "https://index.docker.io/v1/myorg",
        ] {
            let k = keyring(&[("s", &[(key, "u")])]);
            assert!(k.lookup("docker.io/myorg/app").is_empty(), "{key}");
        }
    }

    #[test]
    fn all_matching_keys_contribute_most_specific_first() {
        let k = keyring(&[
            ("a", &[("quay.io", "quay")]),
            ("b", &[("quay.io/coreos", "coreos")]),
        ]);
        assert_eq!(users(&k, "quay.io/coreos/etcd"), ["coreos", "quay"]);
        assert_eq!(users(&k, "quay.io/coreosx/foo"), ["coreos", "quay"]);
        assert_eq!(users(&k, "quay.io/other/x"), ["quay"]);
        // reverse byte order puts 'r' before '*'
        let k = keyring(&[
            ("a", &[("*.example.com", "glob")]),
            ("b", &[("reg.example.com", "exact")]),
        ]);
        assert_eq!(users(&k, "reg.example.com/app"), ["exact", "glob"]);
    }

    #[test]
    fn one_key_keeps_secret_order_and_schemes_collapse() {
        let k = keyring(&[
            ("second", &[("ghcr.io", "u2")]),
            (
                "first",
                &[("https://ghcr.io/", "u1"), ("http://ghcr.io", "u3")],
            ),
        ]);
        assert_eq!(users(&k, "ghcr.io/org/app"), ["u2", "u1", "u3"]);
        assert_eq!(
            k.keys(),
            [
                ("ghcr.io".to_string(), "second".to_string()),
                ("ghcr.io".to_string(), "first".to_string())
            ]
        );
    }

    #[test]
    fn credentials_carry_password_and_source() {
        let mut k = Keyring::new();
        k.add(
            "secret prod/regcred",
            &[DockerConfigEntry {
                key: "ghcr.io".into(),
                username: "robot".into(),
                password: "p:w\n".into(),
                email: String::new(),
            }],
        );
        let m = k.lookup("ghcr.io/org/app");
        assert_eq!(m.len(), 1);
        assert_eq!(
            m[0].credential,
            Credential::new("robot", "p:w\n", "secret prod/regcred")
        );
    }

    #[test]
    fn invalid_keys_are_ignored_and_reported() {
        let k = keyring(&[("s", &[("ghcr.io:abc", "bad"), ("ghcr.io", "good")])]);
        assert_eq!(users(&k, "ghcr.io/app"), ["good"]);
        assert_eq!(k.ignored(), [("ghcr.io:abc".to_string(), "s".to_string())]);
    }

    #[test]
    fn keys_are_listed_in_index_order_once_per_source() {
        let k = keyring(&[
            ("a", &[("quay.io", "1"), ("https://quay.io", "2")]),
            ("b", &[("quay.io/coreos", "3"), ("*.example.com", "4")]),
        ]);
        let keys: Vec<_> = k
            .keys()
            .into_iter()
            .map(|(key, source)| format!("{key}@{source}"))
            .collect();
        assert_eq!(keys, ["quay.io/coreos@b", "quay.io@a", "*.example.com@b"]);
    }

    #[test]
    fn near_misses_explain_keys_that_did_not_apply() {
        let keys = |list: &[&str]| -> Vec<(String, String)> {
            list.iter()
                .map(|k| (k.to_string(), "regcred".to_string()))
                .collect()
        };
        let port = |k: &str, i: &str| NearMissKind::PortDiffers {
            key_port: k.into(),
            image_port: i.into(),
        };
        type Case<'a> = (&'a [&'a str], &'a str, Vec<(&'a str, NearMissKind)>);
        let cases: Vec<Case> = vec![
            (
                &["registry.corp.io"],
                "registry.corp.io:5000/app",
                vec![("registry.corp.io", port("", "5000"))],
            ),
            (
                &["registry.corp.io:443"],
                "registry.corp.io/app",
                vec![("registry.corp.io:443", port("443", ""))],
            ),
            (
                &["*.corp.io:5000"],
                "a.corp.io/app",
                vec![("*.corp.io:5000", port("5000", ""))],
            ),
            (
                &["quay.io/coreos"],
                "quay.io/other/x",
                vec![(
                    "quay.io/coreos",
                    NearMissKind::PathDiffers {
                        key_path: "/coreos".into(),
                        image_path: "/other/x".into(),
                    },
                )],
            ),
            (
                &["GHCR.IO"],
                "ghcr.io/org/app",
                vec![("GHCR.IO", NearMissKind::CaseDiffers)],
            ),
            (
                &["*.example.com"],
                "example.com/app",
                vec![(
                    "*.example.com",
                    NearMissKind::GlobLabelCount {
                        key_labels: 3,
                        image_labels: 2,
                    },
                )],
            ),
            (
                &["*.example.com"],
                "a.b.example.com/app",
                vec![(
                    "*.example.com",
                    NearMissKind::GlobLabelCount {
                        key_labels: 3,
                        image_labels: 4,
                    },
                )],
            ),
            (
                &[
                    "registry-1.docker.io",
                    "*.docker.io",
                    "index.docker.io/myorg",
                ],
                "docker.io/myorg/app",
                vec![
                    ("registry-1.docker.io", NearMissKind::DockerHubAlias),
                    ("*.docker.io", NearMissKind::DockerHubAlias),
                    ("index.docker.io/myorg", NearMissKind::DockerHubAlias),
                ],
            ),
            // the Hub fallback key, matching keys and unrelated hosts are not near misses
            (
                &["index.docker.io", "docker.io", "ghcr.io", "quay.io"],
                "docker.io/library/nginx",
                vec![],
            ),
            (&["ghcr.io", "example.io"], "quay.io/a/b", vec![]),
            (&["quay.io"], "quay.io/a/b", vec![]),
        ];
        for (list, repo, want) in cases {
            let got: Vec<_> = near_misses(&keys(list), repo)
                .into_iter()
                .map(|m| {
                    assert_eq!(m.source, "regcred");
                    (m.key, m.why)
                })
                .collect();
            let want: Vec<_> = want
                .into_iter()
                .map(|(k, why)| (k.to_string(), why))
                .collect();
            assert_eq!(got, want, "{list:?} vs {repo}");
        }
        let text = NearMiss {
            key: "registry.corp.io".into(),
            source: "secret prod/regcred".into(),
            why: port("", "5000"),
        }
        .to_string();
        assert!(
            text.contains("no port") && text.contains("port 5000"),
            "{text}"
        );
    }
}
