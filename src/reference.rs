//! Image references, parsed and normalized exactly as the kubelet and containerd do.
//!
//! The rules are those of `github.com/distribution/reference` v0.6.0 (the version vendored by
//! Kubernetes and containerd) together with `github.com/opencontainers/go-digest` v1.0.0 for
//! digest validation. The grammar is matched by hand instead of with regular expressions: every
//! production is ASCII, and where `@`, `/` and `:` fall fixes the split into name, tag and
//! digest, so byte scanners give the same answers (and captures) as the upstream regexps at a
//! fraction of the cost.
//!
//! Three upstream entry points are reproduced:
//! * [`parse`]: `reference.Parse`, the raw grammar with no Docker Hub defaulting;
//! * [`ImageRef::parse_normalized`]: `reference.ParseNormalizedNamed`, what the kubelet uses;
//! * [`ImageRef::docker_ref`]: `reference.ParseDockerRef`, what containerd's CRI plugin pulls.
//!
//! On top of these sit the kubelet's pull-policy defaulting ([`default_pull_policy`]), its CRI
//! image string ([`kubelet_cri_image`]) and containerd's host mapping
//! ([`ImageRef::registry_host`], [`ImageRef::repository`]).

use std::fmt;
use std::str::FromStr;

use crate::workload::PullPolicy;

/// `RepositoryNameTotalLengthMax`: applies to the path only, not the domain (v0.6.0 changed
/// this), and is checked after `library/` has been added.
pub const REPOSITORY_NAME_TOTAL_LENGTH_MAX: usize = 255;

/// Docker Hub's canonical domain in normalized names.
pub const DEFAULT_DOMAIN: &str = "docker.io";

/// The legacy Docker Hub domain, canonicalized to [`DEFAULT_DOMAIN`] by normalization.
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";

/// containerd's `docker.DefaultHost`: Docker Hub's registry API is served from this host.
pub const DOCKER_HUB_REGISTRY_HOST: &str = "registry-1.docker.io";

/// Namespace of Docker Hub's official images.
const OFFICIAL_REPO_PREFIX: &str = "library/";

/// The tag used when a reference has neither a tag nor a digest.
pub const DEFAULT_TAG: &str = "latest";

/// Which digest algorithms count as registered.
///
/// go-digest only accepts an algorithm whose hash was linked into the binary. The kubelet (and
/// the API server, through `k8s.io/kubernetes/pkg/util/parsers`) imports `crypto/sha256` and
/// `crypto/sha512`, so sha256, sha384 and sha512 are accepted; containerd links `crypto/tls`,
/// which imports `crypto/sha512` too. The distribution/reference test binary registers sha256
/// only, which is why its tables expect `unsupported digest algorithm` for sha512.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DigestAlgorithms {
    sha256: bool,
    sha384: bool,
    sha512: bool,
}

impl DigestAlgorithms {
    /// What the kubelet, the API server and containerd register: sha256, sha384, sha512.
    pub const KUBELET: DigestAlgorithms = DigestAlgorithms {
        sha256: true,
        sha384: true,
        sha512: true,
    };

    /// What the upstream distribution/reference tests register: sha256 only.
    pub const SHA256_ONLY: DigestAlgorithms = DigestAlgorithms {
        sha256: true,
        sha384: false,
        sha512: false,
    };

    /// Hex length of a registered algorithm's digest, or `None` when it is not registered.
    fn hex_len(self, algorithm: &str) -> Option<usize> {
        match algorithm {
            "sha256" if self.sha256 => Some(64),
            "sha384" if self.sha384 => Some(96),
            "sha512" if self.sha512 => Some(128),
            _ => None,
        }
    }
}

impl Default for DigestAlgorithms {
    fn default() -> Self {
        DigestAlgorithms::KUBELET
    }
}

/// Why a reference was rejected. `Display` is the exact Go error text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, thiserror::Error)]
pub enum ReferenceErrorKind {
    /// `ErrReferenceInvalidFormat`.
    #[error("invalid reference format")]
    InvalidFormat,
    /// `ErrNameContainsUppercase`: raw `Parse` only; the input would parse if lowercased.
    #[error("repository name must be lowercase")]
    NameContainsUppercase,
    /// `ParseNormalizedNamed`'s own lowercase check on the remote name (after `library/`).
    #[error("invalid reference format: repository name ({remote}) must be lowercase")]
    RemoteNameNotLowercase { remote: String },
    /// `ErrNameEmpty`.
    #[error("repository name must have at least one component")]
    NameEmpty,
    /// `ErrNameTooLong`.
    #[error(
        "repository name must not be more than {} characters",
        REPOSITORY_NAME_TOTAL_LENGTH_MAX
    )]
    NameTooLong,
    /// `ParseNormalizedNamed` refuses a bare 64-hex name, which would look like an image ID.
    #[error("invalid repository name ({name}), cannot specify 64-byte hexadecimal strings")]
    HexIdentifier { name: String },
    /// go-digest `ErrDigestInvalidFormat`.
    #[error("invalid checksum digest format")]
    DigestInvalidFormat,
    /// go-digest `ErrDigestInvalidLength`.
    #[error("invalid checksum digest length")]
    DigestInvalidLength,
    /// go-digest `ErrDigestUnsupported`.
    #[error("unsupported digest algorithm")]
    DigestUnsupported,
    /// `ErrTagInvalidFormat` (from [`ParsedReference::with_tag`]).
    #[error("invalid tag format")]
    TagInvalidFormat,
    /// `ErrDigestInvalidFormat` of distribution/reference (from [`ParsedReference::with_digest`]).
    #[error("invalid digest format")]
    DigestSyntaxInvalid,
}

/// A reference that did not parse: the input and why. `Display` is the exact Go error text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, thiserror::Error)]
#[error("{kind}")]
pub struct ReferenceError {
    input: String,
    kind: ReferenceErrorKind,
}

impl ReferenceError {
    fn new(input: &str, kind: ReferenceErrorKind) -> Self {
        ReferenceError {
            input: input.to_owned(),
            kind,
        }
    }

    /// The string that failed to parse.
    pub fn input(&self) -> &str {
        &self.input
    }

    pub fn kind(&self) -> &ReferenceErrorKind {
        &self.kind
    }

    /// The kubelet's `ParseImageName` error, as it appears in the `InspectFailed` event
    /// (`Failed to apply default image tag "<image>": <this message>`) behind `InvalidImageName`.
    pub fn kubelet_message(&self) -> String {
        format!("couldn't parse image name: {}", self.kind)
    }
}

/// The matchers for each production of the reference grammar (the anchored regexps of
/// distribution/reference `regexp.go`), exposed for conformance tests and config validation.
pub mod grammar {
    fn is_lower_alnum(b: u8) -> bool {
        b.is_ascii_lowercase() || b.is_ascii_digit()
    }

    /// `[\w]` in Go's RE2 is ASCII only.
    fn is_word(b: u8) -> bool {
        b.is_ascii_alphanumeric() || b == b'_'
    }

    /// Scans `path-component ('/' path-component)*` where a path component is
    /// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`. Separators and slashes alike must be followed
    /// by an alphanumeric run, so one loop covers both.
    fn scan_remote_name(b: &[u8], allow_slash: bool) -> bool {
        let mut i = 0;
        loop {
            if i == b.len() || !is_lower_alnum(b[i]) {
                return false;
            }
            while i < b.len() && is_lower_alnum(b[i]) {
                i += 1;
            }
            let Some(&sep) = b.get(i) else {
                return true;
            };
            i += 1;
            match sep {
                b'/' if allow_slash => {}
                b'.' => {}
                b'_' => {
                    if b.get(i) == Some(&b'_') {
                        i += 1;
                    }
                }
                b'-' => {
                    while b.get(i) == Some(&b'-') {
                        i += 1;
                    }
                }
                _ => return false,
            }
        }
    }

    /// `pathComponent`.
    pub fn is_path_component(s: &str) -> bool {
        scan_remote_name(s.as_bytes(), false)
    }

    /// `remoteName`: path components separated by single slashes.
    pub fn is_remote_name(s: &str) -> bool {
        scan_remote_name(s.as_bytes(), true)
    }

    /// `domainAndPort`: a domain name (components `[a-zA-Z0-9]` or
    /// `[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]` joined by dots), an IPv4 address, or a bracketed
    /// IPv6 address (`\[[a-fA-F0-9:]+\]`: no zone, no embedded IPv4), with an optional
    /// `:port` of any number of digits. Uppercase is allowed.
    pub fn is_domain_and_port(s: &str) -> bool {
        let b = s.as_bytes();
        let mut i = 0;
        if b.first() == Some(&b'[') {
            i = 1;
            while i < b.len() && (b[i].is_ascii_hexdigit() || b[i] == b':') {
                i += 1;
            }
            if i == 1 || b.get(i) != Some(&b']') {
                return false;
            }
            i += 1;
        } else {
            loop {
                if i == b.len() || !b[i].is_ascii_alphanumeric() {
                    return false;
                }
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'-') {
                    i += 1;
                }
                if b[i - 1] == b'-' {
                    return false;
                }
                if b.get(i) != Some(&b'.') {
                    break;
                }
                i += 1;
            }
        }
        match b.get(i) {
            None => true,
            Some(b':') => i + 1 < b.len() && b[i + 1..].iter().all(u8::is_ascii_digit),
            Some(_) => false,
        }
    }

    /// `anchoredNameRegexp`: splits a name into `(domain, path)`, the domain being empty when
    /// the first component is not a `domainAndPort` or there is only one component. The Go
    /// regexp prefers the domain whenever both readings are possible (and when the first
    /// component is a domain but the rest is no path, the whole is no path either).
    pub fn split_name(name: &str) -> Option<(&str, &str)> {
        if let Some((first, rest)) = name.split_once('/') {
            if is_domain_and_port(first) {
                return is_remote_name(rest).then_some((first, rest));
            }
        }
        is_remote_name(name).then_some(("", name))
    }

    /// `tag`: `[\w][\w.-]{0,127}`.
    pub fn is_tag(s: &str) -> bool {
        let b = s.as_bytes();
        !b.is_empty()
            && b.len() <= 128
            && is_word(b[0])
            && b[1..].iter().all(|&c| is_word(c) || c == b'.' || c == b'-')
    }

    /// `digestPat`: `[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][[:xdigit:]]{32,}`.
    pub fn is_digest(s: &str) -> bool {
        let b = s.as_bytes();
        let mut i = 0;
        loop {
            if i == b.len() || !b[i].is_ascii_alphabetic() {
                return false;
            }
            while i < b.len() && b[i].is_ascii_alphanumeric() {
                i += 1;
            }
            match b.get(i) {
                Some(b'-' | b'_' | b'+' | b'.') => i += 1,
                Some(b':') => break,
                _ => return false,
            }
        }
        let hex = &b[i + 1..];
        hex.len() >= 32 && hex.iter().all(u8::is_ascii_hexdigit)
    }

    /// `anchoredIdentifierRegexp`: `^[a-f0-9]{64}$`, an image ID without its `sha256:`.
    pub fn is_identifier(s: &str) -> bool {
        s.len() == 64
            && s.bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
    }

    /// The capture groups of `referenceRegexp` (`^(name)(?::(tag))?(?:@(digest))?$`), with
    /// the name split as `anchoredNameRegexp` splits it.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct ReferenceMatch<'a> {
        pub name: &'a str,
        /// Empty when the name has no domain component.
        pub domain: &'a str,
        pub path: &'a str,
        pub tag: Option<&'a str>,
        pub digest: Option<&'a str>,
    }

    /// Matches `referenceRegexp`. The split is unambiguous: no production but the digest may
    /// hold `@`, the tag holds neither `/` nor `:`, and a name holds `:` only in its domain,
    /// which is always followed by `/`. So the digest follows the first `@`, and the tag
    /// follows a `:` after the last `/`.
    pub fn match_reference(s: &str) -> Option<ReferenceMatch<'_>> {
        let (before, digest) = match s.split_once('@') {
            Some((before, digest)) => (before, Some(digest)),
            None => (s, None),
        };
        let last_segment = before.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match before[last_segment..].find(':') {
            Some(i) => (
                &before[..last_segment + i],
                Some(&before[last_segment + i + 1..]),
            ),
            None => (before, None),
        };
        if !(tag.is_none_or(is_tag) && digest.is_none_or(is_digest)) {
            return None;
        }
        let (domain, path) = split_name(name)?;
        Some(ReferenceMatch {
            name,
            domain,
            path,
            tag,
            digest,
        })
    }
}

/// go-digest `Digest.Validate` (v1.0.0), with `algorithms` as the registered set.
///
/// Use it on any digest from outside, e.g. a `Docker-Content-Digest` header.
pub fn validate_digest(
    digest: &str,
    algorithms: DigestAlgorithms,
) -> Result<(), ReferenceErrorKind> {
    let Some((algorithm, encoded)) = digest.split_once(':') else {
        return Err(ReferenceErrorKind::DigestInvalidFormat);
    };
    if algorithm.is_empty() || encoded.is_empty() {
        return Err(ReferenceErrorKind::DigestInvalidFormat);
    }
    match algorithms.hex_len(algorithm) {
        Some(len) => {
            if encoded.len() != len {
                Err(ReferenceErrorKind::DigestInvalidLength)
            } else if encoded
                .bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
            {
                Ok(())
            } else {
                Err(ReferenceErrorKind::DigestInvalidFormat)
            }
        }
        // An unregistered algorithm is "unsupported" only when the whole digest has go-digest's
        // general shape (`DigestRegexpAnchored`): lowercase algorithm, url-safe encoded part.
        None => {
            let algorithm_ok = algorithm.split(['.', '+', '_', '-']).all(|part| {
                !part.is_empty()
                    && part
                        .bytes()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            });
            let encoded_ok = encoded
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'=' || c == b'_' || c == b'-');
            if algorithm_ok && encoded_ok {
                Err(ReferenceErrorKind::DigestUnsupported)
            } else {
                Err(ReferenceErrorKind::DigestInvalidFormat)
            }
        }
    }
}

/// Go's `strings.ToLower(s) != s`. Go maps each rune with its simple lowercase mapping; Rust's
/// full mapping differs only for U+0130, which changes under both. Unicode versions may differ
/// for rare non-ASCII letters, but any non-ASCII input is rejected anyway; only which of two
/// error texts it gets could differ.
fn has_uppercase(s: &str) -> bool {
    if s.is_ascii() {
        return s.bytes().any(|c| c.is_ascii_uppercase());
    }
    s.chars().any(|c| {
        let mut lower = c.to_lowercase();
        !(lower.next() == Some(c) && lower.next().is_none())
    })
}

/// Go's `strings.ToLower(s)` when the result is ASCII, else `None` (no grammar production can
/// then match). Besides ASCII, only U+0130 (İ) and U+212A (Kelvin sign) lower to ASCII under
/// Go's simple case mapping.
fn go_to_lower_ascii(s: &str) -> Option<String> {
    s.chars()
        .map(|c| match c {
            '\u{0130}' => Some('i'),
            '\u{212A}' => Some('k'),
            c if c.is_ascii() => Some(c.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

/// Offsets into one normalized string `[domain/]path[:tag][@digest]`: a parsed reference costs
/// a single allocation, and its `String()` form is free.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Layout {
    full: String,
    /// 0 when there is no domain, else `domain.len() + 1`.
    path_start: usize,
    path_end: usize,
    /// `path_end` when there is no tag, else the end of the tag.
    tag_end: usize,
}

impl Layout {
    /// `reference.Parse` applied to `full`, which becomes the stored string on success
    /// (a matched reference's `String()` is its input).
    fn parse(full: String, algorithms: DigestAlgorithms) -> Result<Layout, ReferenceErrorKind> {
        if full.is_empty() {
            return Err(ReferenceErrorKind::NameEmpty);
        }
        let Some(m) = grammar::match_reference(&full) else {
            // The grammar is ASCII, so a lowercased input can only match if it is ASCII.
            let uppercase_only = go_to_lower_ascii(&full)
                .is_some_and(|lower| lower != full && grammar::match_reference(&lower).is_some());
            return Err(if uppercase_only {
                ReferenceErrorKind::NameContainsUppercase
            } else {
                ReferenceErrorKind::InvalidFormat
            });
        };
        let (domain, path) = (m.domain, m.path);
        if path.len() > REPOSITORY_NAME_TOTAL_LENGTH_MAX {
            return Err(ReferenceErrorKind::NameTooLong);
        }
        if let Some(digest) = m.digest {
            validate_digest(digest, algorithms)?;
        }
        let path_start = if domain.is_empty() {
            0
        } else {
            domain.len() + 1
        };
        let path_end = m.name.len();
        let tag_end = m.tag.map_or(path_end, |t| path_end + 1 + t.len());
        Ok(Layout {
            full,
            path_start,
            path_end,
            tag_end,
        })
    }

    fn from_parts(domain: &str, path: &str, tag: Option<&str>, digest: Option<&str>) -> Layout {
        let mut full = String::with_capacity(
            domain.len() + path.len() + 2 + tag.map_or(0, str::len) + digest.map_or(0, str::len),
        );
        if !domain.is_empty() {
            full.push_str(domain);
            full.push('/');
        }
        let path_start = full.len();
        full.push_str(path);
        let path_end = full.len();
        if let Some(tag) = tag {
            full.push(':');
            full.push_str(tag);
        }
        let tag_end = full.len();
        if let Some(digest) = digest {
            full.push('@');
            full.push_str(digest);
        }
        Layout {
            full,
            path_start,
            path_end,
            tag_end,
        }
    }

    fn domain(&self) -> &str {
        if self.path_start == 0 {
            ""
        } else {
            &self.full[..self.path_start - 1]
        }
    }

    fn path(&self) -> &str {
        &self.full[self.path_start..self.path_end]
    }

    fn name(&self) -> &str {
        &self.full[..self.path_end]
    }

    fn tag(&self) -> Option<&str> {
        (self.tag_end > self.path_end).then(|| &self.full[self.path_end + 1..self.tag_end])
    }

    fn digest(&self) -> Option<&str> {
        (self.full.len() > self.tag_end).then(|| &self.full[self.tag_end + 1..])
    }

    /// `familiarizeName`: drop `docker.io/`, and `library/` when nothing nests below it.
    fn familiar_name(&self) -> &str {
        if self.domain() != DEFAULT_DOMAIN {
            return self.name();
        }
        let path = self.path();
        match path.strip_prefix(OFFICIAL_REPO_PREFIX) {
            Some(rest) if !rest.contains('/') => rest,
            _ => path,
        }
    }

    fn familiar_string(&self) -> String {
        let mut s = self.familiar_name().to_owned();
        s.push_str(&self.full[self.path_end..]);
        s
    }
}

/// The result of the raw [`parse`] (`reference.Parse`): no Docker Hub defaulting, so the domain
/// is empty unless the first of several components is a valid `domainAndPort`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ParsedReference(Layout);

impl ParsedReference {
    /// `Domain()`: empty when the name has no domain component.
    pub fn domain(&self) -> &str {
        self.0.domain()
    }

    pub fn path(&self) -> &str {
        self.0.path()
    }

    /// `Name()`: `[domain/]path`.
    pub fn name(&self) -> &str {
        self.0.name()
    }

    pub fn tag(&self) -> Option<&str> {
        self.0.tag()
    }

    pub fn digest(&self) -> Option<&str> {
        self.0.digest()
    }

    /// `FamiliarName`.
    pub fn familiar_name(&self) -> &str {
        self.0.familiar_name()
    }

    /// `FamiliarString`.
    pub fn familiar_string(&self) -> String {
        self.0.familiar_string()
    }

    /// `WithTag`: replaces the tag, keeping any digest.
    pub fn with_tag(&self, tag: &str) -> Result<ParsedReference, ReferenceError> {
        if !grammar::is_tag(tag) {
            return Err(ReferenceError::new(
                tag,
                ReferenceErrorKind::TagInvalidFormat,
            ));
        }
        Ok(ParsedReference(Layout::from_parts(
            self.domain(),
            self.path(),
            Some(tag),
            self.digest(),
        )))
    }

    /// `WithDigest`: replaces the digest, keeping any tag. Like upstream, only the digest's
    /// syntax is checked, not its algorithm or length.
    pub fn with_digest(&self, digest: &str) -> Result<ParsedReference, ReferenceError> {
        if !grammar::is_digest(digest) {
            return Err(ReferenceError::new(
                digest,
                ReferenceErrorKind::DigestSyntaxInvalid,
            ));
        }
        Ok(ParsedReference(Layout::from_parts(
            self.domain(),
            self.path(),
            self.tag(),
            Some(digest),
        )))
    }
}

impl fmt::Display for ParsedReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.full)
    }
}

/// `reference.Parse` with the kubelet's registered digest algorithms.
pub fn parse(s: &str) -> Result<ParsedReference, ReferenceError> {
    parse_with(s, DigestAlgorithms::KUBELET)
}

/// `reference.Parse` with an explicit set of registered digest algorithms.
pub fn parse_with(
    s: &str,
    algorithms: DigestAlgorithms,
) -> Result<ParsedReference, ReferenceError> {
    Layout::parse(s.to_owned(), algorithms)
        .map(ParsedReference)
        .map_err(|kind| ReferenceError::new(s, kind))
}

/// `reference.WithName`: a name with neither tag nor digest.
pub fn with_name(name: &str) -> Result<ParsedReference, ReferenceError> {
    let Some((domain, path)) = grammar::split_name(name) else {
        return Err(ReferenceError::new(name, ReferenceErrorKind::InvalidFormat));
    };
    if path.len() > REPOSITORY_NAME_TOTAL_LENGTH_MAX {
        return Err(ReferenceError::new(name, ReferenceErrorKind::NameTooLong));
    }
    Ok(ParsedReference(Layout::from_parts(
        domain, path, None, None,
    )))
}

/// An image reference normalized like the kubelet does (`ParseNormalizedNamed`), e.g.
/// `nginx` → domain `docker.io`, path `library/nginx`. Both tag and digest are kept; what
/// containerd resolves is [`ImageRef::manifest_reference`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef(Layout);

/// Where `splitDockerDomain` puts the domain; `library/` is added only on Docker Hub and only
/// to single-component paths.
fn split_docker_domain(s: &str) -> (&str, bool, &str) {
    let Some((maybe_domain, rest)) = s.split_once('/') else {
        // A bare name, even `localhost`, `example.com` or `localhost:5000`, is a Hub image;
        // `:5000` then reads as a tag.
        return (DEFAULT_DOMAIN, true, s);
    };
    let (domain, remainder) = if maybe_domain == "localhost" {
        (maybe_domain, rest)
    } else if maybe_domain == LEGACY_DEFAULT_DOMAIN {
        (DEFAULT_DOMAIN, rest)
    } else if maybe_domain.contains(['.', ':']) || has_uppercase(maybe_domain) {
        // Uppercase is forbidden in paths, so upstream takes `Foo/bar` as registry `Foo`.
        (maybe_domain, rest)
    } else {
        (DEFAULT_DOMAIN, s)
    };
    let library = domain == DEFAULT_DOMAIN && !remainder.contains('/');
    (domain, library, remainder)
}

impl ImageRef {
    /// `ParseNormalizedNamed` with the kubelet's digest algorithms (sha256, sha384, sha512).
    pub fn parse_normalized(s: &str) -> Result<ImageRef, ReferenceError> {
        Self::parse_normalized_with(s, DigestAlgorithms::KUBELET)
    }

    /// `ParseNormalizedNamed` with an explicit set of registered digest algorithms.
    pub fn parse_normalized_with(
        s: &str,
        algorithms: DigestAlgorithms,
    ) -> Result<ImageRef, ReferenceError> {
        if grammar::is_identifier(s) {
            return Err(ReferenceError::new(
                s,
                ReferenceErrorKind::HexIdentifier { name: s.to_owned() },
            ));
        }
        let (domain, library, remainder) = split_docker_domain(s);
        // Upstream checks the text up to the first ':' (which may run into a digest) before
        // parsing, and reports it with the `library/` prefix.
        let remote = remainder.split_once(':').map_or(remainder, |(r, _)| r);
        if has_uppercase(remote) {
            let prefix = if library { OFFICIAL_REPO_PREFIX } else { "" };
            return Err(ReferenceError::new(
                s,
                ReferenceErrorKind::RemoteNameNotLowercase {
                    remote: format!("{prefix}{remote}"),
                },
            ));
        }
        let mut full = String::with_capacity(domain.len() + 1 + 8 + remainder.len());
        full.push_str(domain);
        full.push('/');
        if library {
            full.push_str(OFFICIAL_REPO_PREFIX);
        }
        full.push_str(remainder);
        Layout::parse(full, algorithms)
            .map(ImageRef)
            .map_err(|kind| ReferenceError::new(s, kind))
    }

    /// `Domain()`: `docker.io`, `ghcr.io`, `[fd00::1]:5000`, `LOCALDOMAIN`. Empty only when the
    /// first component has a `.` but is not a valid host, e.g. `my_reg.local/app` (underscores
    /// are allowed in paths, not in hosts): upstream then keeps the whole name as the path.
    pub fn domain(&self) -> &str {
        self.0.domain()
    }

    /// `Path()`: `library/nginx`.
    pub fn path(&self) -> &str {
        self.0.path()
    }

    pub fn tag(&self) -> Option<&str> {
        self.0.tag()
    }

    pub fn digest(&self) -> Option<&str> {
        self.0.digest()
    }

    /// `Name()`, the kubelet's `repoToPull` and its keyring lookup key: `docker.io/library/nginx`.
    pub fn name(&self) -> String {
        self.0.name().to_owned()
    }

    /// [`ImageRef::name`] without allocating.
    pub fn name_str(&self) -> &str {
        self.0.name()
    }

    /// The tag `ParseImageName` reports: the tag, else `latest` when there is no digest either.
    /// This is what `SetDefaults_Container` compares with `latest`.
    pub fn defaulted_tag(&self) -> Option<&str> {
        match (self.tag(), self.digest()) {
            (Some(tag), _) => Some(tag),
            (None, None) => Some(DEFAULT_TAG),
            (None, Some(_)) => None,
        }
    }

    /// `ParseDockerRef`: `:latest` added to a bare name; a tag next to a digest is dropped,
    /// because containerd resolves by the digest alone.
    pub fn docker_ref(&self) -> ImageRef {
        match (self.tag(), self.digest()) {
            (Some(_), Some(digest)) => ImageRef(Layout::from_parts(
                self.domain(),
                self.path(),
                None,
                Some(digest),
            )),
            (None, None) => ImageRef(Layout::from_parts(
                self.domain(),
                self.path(),
                Some(DEFAULT_TAG),
                None,
            )),
            _ => self.clone(),
        }
    }

    /// `ParseDockerRef(..).String()`: the reference containerd's CRI plugin pulls.
    pub fn docker_ref_string(&self) -> String {
        match (self.tag(), self.digest()) {
            (Some(_), Some(digest)) => format!("{}@{digest}", self.0.name()),
            (None, None) => format!("{}:{DEFAULT_TAG}", self.0.full),
            _ => self.0.full.clone(),
        }
    }

    /// What containerd asks the registry for: the digest if any, else the tag, else `latest`.
    pub fn manifest_reference(&self) -> &str {
        self.digest().or(self.tag()).unwrap_or(DEFAULT_TAG)
    }

    /// The host containerd's reference spec names (`refspec.Hostname()`), before the Docker
    /// Hub mapping: the domain, or the first path component when upstream found no domain.
    pub fn containerd_hostname(&self) -> &str {
        match self.domain() {
            "" => self.path().split_once('/').map_or("", |(host, _)| host),
            domain => domain,
        }
    }

    /// The host:port to contact: `registry-1.docker.io` for `docker.io` (containerd's
    /// `DefaultHost`), otherwise the host as written.
    pub fn registry_host(&self) -> &str {
        match self.containerd_hostname() {
            DEFAULT_DOMAIN => DOCKER_HUB_REGISTRY_HOST,
            host => host,
        }
    }

    /// The repository in `/v2/<repository>/manifests/<ref>` on [`ImageRef::registry_host`].
    /// Equal to [`ImageRef::path`] except when upstream found no domain (see
    /// [`ImageRef::domain`]), where containerd still splits off the first component as host.
    pub fn repository(&self) -> &str {
        match self.domain() {
            "" => self
                .path()
                .split_once('/')
                .map_or(self.path(), |(_, repo)| repo),
            _ => self.path(),
        }
    }

    /// `FamiliarName`: `nginx`, `myorg/app`, `library/foo/bar`, `ghcr.io/org/app`.
    pub fn familiar_name(&self) -> &str {
        self.0.familiar_name()
    }

    /// `FamiliarString`: the familiar name with the tag and digest as given.
    pub fn familiar_string(&self) -> String {
        self.0.familiar_string()
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.full)
    }
}

impl FromStr for ImageRef {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ImageRef::parse_normalized(s)
    }
}

/// `SetDefaults_Container`: the policy the API server stores when `imagePullPolicy` is empty.
/// `Always` exactly when `ParseImageName`'s tag is `latest`, so `busybox:latest@sha256:…` is
/// `Always` although containerd pulls it by digest. Parse errors are ignored there, giving
/// `IfNotPresent`.
pub fn default_pull_policy(image: &str) -> PullPolicy {
    match ImageRef::parse_normalized(image) {
        Ok(r) if r.defaulted_tag() == Some(DEFAULT_TAG) => PullPolicy::Always,
        _ => PullPolicy::IfNotPresent,
    }
}

/// The kubelet's `applyDefaultImageTag`: the image string handed to the CRI. `:latest` is
/// appended to a reference with neither tag nor digest, and the name is deliberately *not*
/// qualified (`nginx` → `nginx:latest`). An error here is the kubelet's `InvalidImageName`.
pub fn kubelet_cri_image(image: &str) -> Result<String, ReferenceError> {
    let r = ImageRef::parse_normalized(image)?;
    let already_tagged = |tag: &str| {
        image
            .strip_suffix(tag)
            .is_some_and(|rest| rest.ends_with(':'))
    };
    match (r.digest(), r.defaulted_tag()) {
        (None, Some(tag)) if !already_tagged(tag) => Ok(format!("{image}:{tag}")),
        _ => Ok(image.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "sha256:86e0e091d0da6bde2456dbb48306f3956bbeb2eae1b5b9a43045843f69fe4aaa";

    fn ok(s: &str) -> ImageRef {
        ImageRef::parse_normalized(s).expect(s)
    }

    fn err(s: &str) -> String {
        ImageRef::parse_normalized(s).expect_err(s).to_string()
    }

    #[test]
    fn normalizes_like_parse_normalized_named() {
        // (input, String(), domain, path, tag)
        let cases: &[(&str, &str, &str, &str, Option<&str>)] = &[
            (
                "nginx",
                "docker.io/library/nginx",
                "docker.io",
                "library/nginx",
                None,
            ),
            // A bare host:port is a Hub image whose tag is the port.
            (
                "localhost:5000",
                "docker.io/library/localhost:5000",
                "docker.io",
                "library/localhost",
                Some("5000"),
            ),
            ("localhost/app", "localhost/app", "localhost", "app", None),
            (
                "myorg/app:1",
                "docker.io/myorg/app:1",
                "docker.io",
                "myorg/app",
                Some("1"),
            ),
            // An uppercase first component is a registry host.
            ("Foo/bar", "Foo/bar", "Foo", "bar", None),
            (
                "LOCALDOMAIN/debian",
                "LOCALDOMAIN/debian",
                "LOCALDOMAIN",
                "debian",
                None,
            ),
            (
                "index.docker.io/nginx",
                "docker.io/library/nginx",
                "docker.io",
                "library/nginx",
                None,
            ),
            (
                "[fd00::1]:5000/app:v1",
                "[fd00::1]:5000/app:v1",
                "[fd00::1]:5000",
                "app",
                Some("v1"),
            ),
            (
                "ghcr.io/org/app:TAG",
                "ghcr.io/org/app:TAG",
                "ghcr.io",
                "org/app",
                Some("TAG"),
            ),
        ];
        for &(input, string, domain, path, tag) in cases {
            let r = ok(input);
            assert_eq!(
                (
                    r.to_string().as_str(),
                    r.domain(),
                    r.path(),
                    r.tag(),
                    r.digest()
                ),
                (string, domain, path, tag, None),
                "{input}"
            );
        }
    }

    #[test]
    fn rejects_with_the_go_error_text() {
        let hex = "dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c";
        let cases: &[(&str, String)] = &[
            ("nginx:", "invalid reference format".into()),
            ("nginx:-bad", "invalid reference format".into()),
            (
                "Uppercase:tag",
                "invalid reference format: repository name (library/Uppercase) must be lowercase"
                    .into(),
            ),
            (
                "ghcr.io/Org/app",
                "invalid reference format: repository name (Org/app) must be lowercase".into(),
            ),
            (
                "busybox@sha256:7CC4B5AEFD1D0CADF8D97D4350462BA51C694EBCA145B08D7D41B41ACC8DB5AA",
                "invalid checksum digest format".into(),
            ),
            (
                "busybox@sha256:abcdef0123456789abcdef0123456789",
                "invalid checksum digest length".into(),
            ),
            (
                "busybox@md5:00000000000000000000000000000000",
                "unsupported digest algorithm".into(),
            ),
            (
                hex,
                format!(
                    "invalid repository name ({hex}), cannot specify 64-byte hexadecimal strings"
                ),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(&err(input), want, "{input}");
        }
    }

    #[test]
    fn sha512_is_registered_for_the_kubelet_but_not_for_upstream_tests() {
        let image = format!("busybox@sha512:{}", "0".repeat(128));
        assert!(ImageRef::parse_normalized(&image).is_ok());
        let e = ImageRef::parse_normalized_with(&image, DigestAlgorithms::SHA256_ONLY)
            .expect_err("must fail");
        assert_eq!(e.kind(), &ReferenceErrorKind::DigestUnsupported);
    }

    #[test]
    fn path_limit_counts_the_added_library_prefix() {
        let at_limit = "a".repeat(REPOSITORY_NAME_TOTAL_LENGTH_MAX - OFFICIAL_REPO_PREFIX.len());
        assert_eq!(ok(&at_limit).path().len(), REPOSITORY_NAME_TOTAL_LENGTH_MAX);
        let over = format!("{at_limit}a");
        assert_eq!(
            err(&over),
            "repository name must not be more than 255 characters"
        );
        // The domain does not count.
        let long_domain = format!("{}.example.com/{}", "d".repeat(60), "p".repeat(255));
        assert!(ImageRef::parse_normalized(&long_domain).is_ok());
    }

    #[test]
    fn tag_and_digest_resolve_by_digest_but_default_to_always() {
        let image = format!("busybox:latest@{SHA}");
        let r = ok(&image);
        assert_eq!(r.tag(), Some("latest"));
        assert_eq!(r.manifest_reference(), SHA);
        assert_eq!(
            r.docker_ref_string(),
            format!("docker.io/library/busybox@{SHA}")
        );
        assert_eq!(r.docker_ref().to_string(), r.docker_ref_string());
        assert_eq!(default_pull_policy(&image), PullPolicy::Always);
        assert_eq!(kubelet_cri_image(&image).expect("must parse"), image);
    }

    #[test]
    fn default_pull_policy_follows_the_defaulted_tag() {
        let digest_only = format!("busybox@{SHA}");
        let cases = [
            ("busybox", PullPolicy::Always),
            ("busybox:latest", PullPolicy::Always),
            ("busybox:1.36", PullPolicy::IfNotPresent),
            (digest_only.as_str(), PullPolicy::IfNotPresent),
            ("localhost:5000", PullPolicy::IfNotPresent),
            ("Uppercase:latest", PullPolicy::IfNotPresent),
        ];
        for (image, want) in cases {
            assert_eq!(default_pull_policy(image), want, "{image}");
        }
    }

    #[test]
    fn cri_image_appends_latest_without_qualifying() {
        let cases = [
            ("nginx", "nginx:latest"),
            ("nginx:1.25", "nginx:1.25"),
            ("localhost:5000", "localhost:5000"),
            ("ghcr.io/org/app", "ghcr.io/org/app:latest"),
        ];
        for (image, want) in cases {
            assert_eq!(
                kubelet_cri_image(image).expect("must parse"),
                want,
                "{image}"
            );
        }
        let e = kubelet_cri_image("bad name").expect_err("must fail");
        assert_eq!(e.input(), "bad name");
        assert_eq!(
            e.kubelet_message(),
            "couldn't parse image name: invalid reference format"
        );
    }

    #[test]
    fn docker_hub_is_contacted_as_registry_1() {
        let hub = ok("nginx:1.25");
        assert_eq!(
            (hub.registry_host(), hub.repository()),
            ("registry-1.docker.io", "library/nginx")
        );
        assert_eq!(hub.manifest_reference(), "1.25");
        let v6 = ok("[fd00::1]:5000/team/app");
        assert_eq!(
            (v6.registry_host(), v6.repository()),
            ("[fd00::1]:5000", "team/app")
        );
        assert_eq!(v6.manifest_reference(), "latest");
        assert_eq!(
            ok("registry-1.docker.io/library/nginx").registry_host(),
            "registry-1.docker.io"
        );
    }

    #[test]
    fn invalid_host_with_dot_keeps_whole_name_as_path_but_containerd_splits_it() {
        let r = ok("my_reg.local/app:v1");
        assert_eq!(
            (r.domain(), r.path(), r.name_str()),
            ("", "my_reg.local/app", "my_reg.local/app")
        );
        assert_eq!(
            (r.containerd_hostname(), r.repository()),
            ("my_reg.local", "app")
        );
        assert_eq!(r.docker_ref_string(), "my_reg.local/app:v1");
    }

    #[test]
    fn familiar_forms_strip_hub_and_single_level_library() {
        let cases = [
            ("docker.io/library/nginx:1", "nginx", "nginx:1"),
            ("library/foo/bar", "library/foo/bar", "library/foo/bar"),
            ("myorg/app", "myorg/app", "myorg/app"),
            ("ghcr.io/org/app:v", "ghcr.io/org/app", "ghcr.io/org/app:v"),
        ];
        for (image, name, string) in cases {
            let r = ok(image);
            assert_eq!(
                (r.familiar_name(), r.familiar_string().as_str()),
                (name, string),
                "{image}"
            );
        }
    }

    #[test]
    fn raw_parse_does_not_default_the_domain() {
        let r = parse("test.com:5000").expect("must parse");
        assert_eq!(
            (r.domain(), r.path(), r.tag()),
            ("", "test.com", Some("5000"))
        );
        let r = parse("a/a/b").expect("must parse");
        assert_eq!((r.domain(), r.path()), ("a", "a/b"));
        assert_eq!(
            parse("Uppercase:tag").expect_err("must fail").to_string(),
            "repository name must be lowercase"
        );
        assert_eq!(
            parse("").expect_err("must fail").kind(),
            &ReferenceErrorKind::NameEmpty
        );
    }

    #[test]
    fn go_lowercasing_of_kelvin_sign_reports_uppercase() {
        // strings.ToLower maps U+212A to 'k', so upstream blames case, not format.
        let e = parse("\u{212A}ube:tag").expect_err("must fail");
        assert_eq!(e.kind(), &ReferenceErrorKind::NameContainsUppercase);
        assert_eq!(
            parse("\u{e9}t\u{e9}").expect_err("must fail").kind(),
            &ReferenceErrorKind::InvalidFormat
        );
    }

    #[test]
    fn pull_policy_round_trips_the_api_spelling() {
        for p in [
            PullPolicy::Always,
            PullPolicy::IfNotPresent,
            PullPolicy::Never,
        ] {
            assert_eq!(PullPolicy::from_api(p.as_str()), Some(p));
        }
        assert_eq!(PullPolicy::from_api("always"), None);
    }
}
