//! Node platforms and the image-index platform matchers of the container runtimes (pure).
//!
//! When a tag or digest names an image index (manifest list), the runtime on the node keeps only
//! the children whose platform its matcher accepts and fails the pull with `no match for platform
//! in manifest` when none is left. A single-arch manifest at the top level is never
//! platform-checked at pull time, so this module is only about index children.
//!
//! Three matchers exist in practice ([`MatcherKind`]):
//! * containerd <= 2.0, and 2.1+ in local-pull mode: `platforms.Only(DefaultSpec())`, with the
//!   fallback vector of `containerd/platforms` `compare.go` (`platformVector`);
//! * containerd >= 2.1 by default (transfer service): `platforms.Ordered(DefaultSpec())`, an exact
//!   normalized match;
//! * CRI-O (containers/image `internal/pkg/platform/platform_matcher.go`): its own variant table
//!   and raw string equality.
//!
//! The containerd rules follow `containerd/platforms` at the snapshot the shared vectors were
//! produced with (`09756f59`): `database.go` (`normalizeArch`), `platforms.go` (`Parse`,
//! `Normalize`, the matcher), `compare.go` (`platformVector`, `Only`, `Ordered`) and
//! `platform_windows_compat.go` (Windows `os.version` compatibility).

use std::fmt;
use std::str::FromStr;

pub mod coverage;

pub use coverage::{Content, PlatformCheck, Target};

use serde::{Deserialize, Deserializer, Serialize};

/// The os and architecture of attestation manifests (BuildKit provenance/SBOM) in an index.
const ATTESTATION: &str = "unknown";

const WINDOWS: &str = "windows";

/// Stripped from Windows feature lists before the subset test: containerd/platforms PR #31, so
/// that images declaring it still match hosts whose DefaultSpec carries no features.
const WIN32K: &str = "win32k";

/// Windows Server 2019 (ltsc2019, "rs5").
pub const WINDOWS_BUILD_LTSC2019: u16 = 17763;
/// Windows Server 2022 (ltsc2022, "21H2 server").
pub const WINDOWS_BUILD_LTSC2022: u16 = 20348;
/// Windows Server 2025 (ltsc2025).
pub const WINDOWS_BUILD_LTSC2025: u16 = 26100;

/// `compatLTSCReleases`: LTSC builds with a stable ABI that later hosts keep running (ascending).
const STABLE_ABI_LTSC_BUILDS: [u16; 1] = [WINDOWS_BUILD_LTSC2022];

/// An OCI platform: of a node (its runtime's `DefaultSpec()`) or of an index entry.
///
/// Serde uses the OCI field names (`os.version`, `os.features`), so an index entry's `platform`
/// object deserializes directly. An empty `variant` or `os.version` reads as `None`, which is how
/// Go treats an empty string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Platform {
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub architecture: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "non_empty_string"
    )]
    pub variant: Option<String>,
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "non_empty_string"
    )]
    pub os_version: Option<String>,
    #[serde(
        rename = "os.features",
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_empty"
    )]
    pub os_features: Vec<String>,
}

fn non_empty_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.filter(|s| !s.is_empty()))
}

fn null_as_empty<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

/// Why a platform specifier did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlatformError {
    #[error("{spec:?}: wildcards are not supported in platform specifiers")]
    Wildcard { spec: String },
    #[error(
        "{component:?} is an invalid OS component of {spec:?}: \
         expected <os>[(<os.version>[+<os.feature>]...)]"
    )]
    InvalidOs { spec: String, component: String },
    #[error(
        "{component:?} is an invalid component of {spec:?}: \
         only letters, digits, '_', '.' and '-' are allowed"
    )]
    InvalidComponent { spec: String, component: String },
    #[error("{spec:?} has an invalid percent-escape in {value:?}")]
    InvalidEscape { spec: String, value: String },
    #[error("{spec:?} has no architecture: expected <os>/<architecture>[/<variant>]")]
    MissingArchitecture { spec: String },
    #[error("{spec:?} has too many components: expected <os>/<architecture>[/<variant>]")]
    TooManyComponents { spec: String },
}

impl Platform {
    /// A platform with no variant, os.version or features.
    pub fn new(os: impl Into<String>, architecture: impl Into<String>) -> Platform {
        Platform {
            os: os.into(),
            architecture: architecture.into(),
            variant: None,
            os_version: None,
            os_features: Vec::new(),
        }
    }

    pub fn with_variant(mut self, variant: impl Into<String>) -> Platform {
        self.variant = Some(variant.into()).filter(|v| !v.is_empty());
        self
    }

    pub fn with_os_version(mut self, os_version: impl Into<String>) -> Platform {
        self.os_version = Some(os_version.into()).filter(|v| !v.is_empty());
        self
    }

    pub fn with_os_features<I, S>(mut self, features: I) -> Platform
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.os_features = features.into_iter().map(Into::into).collect();
        self
    }

    /// `unknown/unknown`: an attestation manifest, which no runtime ever selects.
    pub fn is_attestation(&self) -> bool {
        self.os == ATTESTATION && self.architecture == ATTESTATION
    }

    fn variant_str(&self) -> &str {
        self.variant.as_deref().unwrap_or("")
    }

    fn os_version_str(&self) -> &str {
        self.os_version.as_deref().unwrap_or("")
    }

    /// containerd `platforms.Normalize`: os lowercased (`macos` -> `darwin`); `x86_64`/`x86-64`
    /// -> `amd64` (variant `v1` -> none); `aarch64` -> `arm64` (`8`/`v8`/`v8.0` -> none,
    /// `9`/`9.0`/`v9.0` -> `v9`); `armhf` -> `arm/v7`; `armel` -> `arm/v6`; `arm` with no variant
    /// or `7` -> `v7` (`5`/`6`/`8` -> `v5`/`v6`/`v8`); `i386` -> `386`; architecture and variant
    /// lowercased; os.features sorted and deduplicated. os.version is left alone.
    ///
    /// Upstream maps an empty os to the host's `runtime.GOOS`; there is no host here, so an
    /// empty os stays empty (the matchers substitute the node's os, which is the same thing).
    pub fn normalized(&self) -> Platform {
        let (architecture, variant) = normalize_arch(&self.architecture, self.variant_str());
        let mut os_features = self.os_features.clone();
        os_features.sort();
        os_features.dedup();
        Platform {
            os: normalize_os(&self.os),
            architecture,
            variant: Some(variant).filter(|v| !v.is_empty()),
            os_version: self.os_version.clone().filter(|v| !v.is_empty()),
            os_features,
        }
    }

    /// containerd `platforms.Parse` for `<os>[(<os.version>[+<feature>]...)]/<arch>[/<variant>]`,
    /// e.g. `linux/arm64/v8`, `linux/amd64`, `windows(10.0.17763)/amd64`.
    ///
    /// Like upstream, the result is not fully normalized: `linux/arm` has no variant (v7 is
    /// implied) and `linux/arm64/v8` keeps `v8`. Upstream fills a lone `<os>` or `<arch>` from the
    /// host it runs on; a webhook has no such host, so a single component is an error here.
    pub fn parse(spec: &str) -> Result<Platform, PlatformError> {
        if spec.contains('*') {
            return Err(PlatformError::Wildcard {
                spec: spec.to_owned(),
            });
        }
        let parts: Vec<&str> = spec.splitn(4, '/').collect();
        let (os_name, os_version, os_features) = parse_os_component(spec, parts[0])?;
        for part in &parts[1..] {
            if !is_specifier_component(part) {
                return Err(PlatformError::InvalidComponent {
                    spec: spec.to_owned(),
                    component: (*part).to_owned(),
                });
            }
        }
        let (architecture, variant) = match parts.len() {
            1 => {
                return Err(PlatformError::MissingArchitecture {
                    spec: spec.to_owned(),
                })
            }
            2 => {
                let (arch, variant) = normalize_arch(parts[1], "");
                // `Parse` writes the implied arm v7 as no variant.
                if arch == "arm" && variant == "v7" {
                    (arch, String::new())
                } else {
                    (arch, variant)
                }
            }
            3 => {
                let (arch, variant) = normalize_arch(parts[1], parts[2]);
                // `Parse` spells an explicit arm64 v8 out again after normalizing it away.
                if arch == "arm64" && variant.is_empty() {
                    (arch, "v8".to_owned())
                } else {
                    (arch, variant)
                }
            }
            _ => {
                return Err(PlatformError::TooManyComponents {
                    spec: spec.to_owned(),
                })
            }
        };
        Ok(Platform {
            os: normalize_os(&os_name),
            architecture,
            variant: Some(variant).filter(|v| !v.is_empty()),
            os_version: Some(os_version).filter(|v| !v.is_empty()),
            os_features,
        })
    }
}

impl FromStr for Platform {
    type Err = PlatformError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Platform::parse(s)
    }
}

/// `linux/arm64/v8`, `windows/amd64 10.0.20348`, `windows/amd64 10.0.20348.2655 +win32k`:
/// for messages, not for parsing back.
impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.os.is_empty() {
            ATTESTATION
        } else {
            self.os.as_str()
        })?;
        for part in [self.architecture.as_str(), self.variant_str()] {
            if !part.is_empty() {
                write!(f, "/{part}")?;
            }
        }
        if let Some(version) = self.os_version.as_deref().filter(|v| !v.is_empty()) {
            write!(f, " {version}")?;
        }
        if !self.os_features.is_empty() {
            write!(f, " +{}", self.os_features.join("+"))?;
        }
        Ok(())
    }
}

/// `osRe`: `<os>` then optionally `(<os.version>[+<feature>]...)`, each option percent-encoded.
fn parse_os_component(
    spec: &str,
    part: &str,
) -> Result<(String, String, Vec<String>), PlatformError> {
    let invalid = || PlatformError::InvalidOs {
        spec: spec.to_owned(),
        component: part.to_owned(),
    };
    let (name, options) = match part.find('(') {
        Some(open) => {
            let inner = part[open + 1..].strip_suffix(')').ok_or_else(invalid)?;
            (&part[..open], Some(inner))
        }
        None => (part, None),
    };
    let name_ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !name_ok {
        return Err(invalid());
    }
    let Some(options) = options else {
        return Ok((name.to_owned(), String::new(), Vec::new()));
    };
    let option_ok = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'%' | b'-'))
    };
    let mut pieces = options.split('+');
    let raw_version = pieces.next().unwrap_or("");
    if !option_ok(raw_version) {
        return Err(invalid());
    }
    let decode = |value: &str| {
        percent_decode(value).ok_or_else(|| PlatformError::InvalidEscape {
            spec: spec.to_owned(),
            value: value.to_owned(),
        })
    };
    let version = decode(raw_version)?;
    let mut features = Vec::new();
    for raw in pieces {
        if raw.is_empty() || !option_ok(raw) {
            return Err(invalid());
        }
        features.push(decode(raw)?);
    }
    Ok((name.to_owned(), version, features))
}

/// `specifierRe`: `^[A-Za-z0-9_.-]+$`.
fn is_specifier_component(part: &str) -> bool {
    !part.is_empty()
        && part
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Go `url.PathUnescape`, which upstream applies only when the value contains a `%`.
fn percent_decode(value: &str) -> Option<String> {
    if !value.contains('%') {
        return Some(value.to_owned());
    }
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `normalizeOS`.
fn normalize_os(os: &str) -> String {
    let os = os.to_lowercase();
    if os == "macos" {
        "darwin".to_owned()
    } else {
        os
    }
}

/// `normalizeArch` (database.go).
fn normalize_arch(arch: &str, variant: &str) -> (String, String) {
    let arch = arch.to_lowercase();
    let variant = variant.to_lowercase();
    match arch.as_str() {
        "i386" => ("386".to_owned(), String::new()),
        "x86_64" | "x86-64" | "amd64" => {
            let variant = if variant == "v1" {
                String::new()
            } else {
                variant
            };
            ("amd64".to_owned(), variant)
        }
        "aarch64" | "arm64" => {
            let variant = match variant.as_str() {
                "8" | "v8" | "v8.0" => String::new(),
                "9" | "9.0" | "v9.0" => "v9".to_owned(),
                _ => variant,
            };
            ("arm64".to_owned(), variant)
        }
        "armhf" => ("arm".to_owned(), "v7".to_owned()),
        "armel" => ("arm".to_owned(), "v6".to_owned()),
        "arm" => {
            let variant = match variant.as_str() {
                "" | "7" => "v7".to_owned(),
                "5" | "6" | "8" => format!("v{variant}"),
                _ => variant,
            };
            ("arm".to_owned(), variant)
        }
        _ => (arch, variant),
    }
}

/// Go `strconv.Atoi` for the variant numbers of `platformVector` (an optional sign, then
/// decimal digits; Rust's integer parser accepts exactly that too).
fn go_atoi(s: &str) -> Option<i64> {
    s.parse::<i64>().ok()
}

/// Go `strconv.ParseUint(s, 10, bits)`: decimal digits only, no sign.
fn go_parse_uint<T: FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<T>().ok()
}

// ---------------------------------------------------------------------------------------------
// Matchers

/// Which matcher the node's runtime applies to index entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatcherKind {
    /// containerd <= 2.0, and 2.1+ in local-pull mode (`use_local_image_pull = true`, or any of
    /// the legacy registry/unpack settings that force it): `platforms.Only(DefaultSpec())`, with
    /// the fallbacks amd64/vN -> vN-1..v1 then 386; arm/vN -> vN-1..v5; arm64/v8.x -> v8.x-1..v8;
    /// arm64/v9.x -> v9.x-1..v9 then v8.(x+5, at most 9)..v8; every arm64 -> arm/v8..v5.
    ContainerdOnly,
    /// containerd >= 2.1 by default (transfer service, `platforms.Ordered(DefaultSpec())`): an
    /// exact normalized os/architecture/variant match, no fallback (plus the Windows os.version
    /// rule and the os.features subset, as in every containerd matcher).
    ContainerdStrict,
    /// CRI-O (containers/image): raw string equality of os, architecture and variant against
    /// the wanted list: arm v8 -> v7 -> v6 -> v5 -> no variant; arm64 v8 or no variant; no
    /// amd64 -> 386 and no arm64 -> arm fallback; os.version and os.features ignored.
    CriO,
}

/// How an index entry was accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchQuality {
    /// The exact (normalized) platform of the node: every runtime mode accepts it.
    Exact,
    /// Only through a fallback (386 on amd64, an older arm variant, arm on arm64...): containerd
    /// >= 2.1 in its default mode would reject it.
    Fallback,
}

/// Does a node whose runtime's `DefaultSpec()` is `node` accept an index entry with platform
/// `image` under `kind`? Attestation entries (`unknown/unknown`) never match.
pub fn matches(kind: MatcherKind, node: &Platform, image: &Platform) -> bool {
    if image.is_attestation() {
        return false;
    }
    match kind {
        MatcherKind::ContainerdOnly => {
            let node = node.normalized();
            platform_vector(&node)
                .iter()
                .any(|candidate| candidate.accepts(image))
        }
        MatcherKind::ContainerdStrict => Candidate::of(&node.normalized()).accepts(image),
        MatcherKind::CriO => crio_accepts(node, image),
    }
}

/// `Some(Exact)` when even the strict (containerd >= 2.1 default) matcher accepts the entry,
/// `Some(Fallback)` when `kind` accepts it but the strict matcher does not, `None` when `kind`
/// rejects it. Under [`MatcherKind::ContainerdStrict`] the answer is never `Fallback`.
pub fn match_quality(kind: MatcherKind, node: &Platform, image: &Platform) -> Option<MatchQuality> {
    if !matches(kind, node, image) {
        None
    } else if kind == MatcherKind::ContainerdStrict
        || matches(MatcherKind::ContainerdStrict, node, image)
    {
        Some(MatchQuality::Exact)
    } else {
        Some(MatchQuality::Fallback)
    }
}

/// The best [`match_quality`] over all entries of an index: `Exact` if any entry is an exact
/// match, else `Fallback` if any entry matches, else `None` (the pull would fail with `no match
/// for platform in manifest`).
pub fn best_match<'a, I>(kind: MatcherKind, node: &Platform, entries: I) -> Option<MatchQuality>
where
    I: IntoIterator<Item = &'a Platform>,
{
    let mut best = None;
    for entry in entries {
        match match_quality(kind, node, entry) {
            Some(MatchQuality::Exact) => return Some(MatchQuality::Exact),
            Some(MatchQuality::Fallback) => best = Some(MatchQuality::Fallback),
            None => {}
        }
    }
    best
}

/// The variant a fallback-vector entry stands for, after `NewMatcher` has normalized it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum VariantRule {
    /// One normalized variant ("" for none).
    Is(String),
    /// `v{lo}`..=`v{hi}`: the amd64 and arm runs of `platformVector`, kept as a range so that an
    /// absurd node variant (`v999999`) cannot make the vector huge.
    Numbered { lo: i64, hi: i64 },
}

/// One matcher of `Ordered(...)`: `NewMatcher(p)` of a normalized vector entry `p`.
#[derive(Debug, Clone)]
struct Candidate {
    os: String,
    architecture: String,
    variant: VariantRule,
    /// The host's os.version, carried into every fallback entry as upstream does.
    os_version: String,
    /// Sorted and deduplicated (the node's).
    os_features: Vec<String>,
}

impl Candidate {
    /// `p` must already be normalized.
    fn of(p: &Platform) -> Candidate {
        Candidate::with_variant(p, &p.architecture, p.variant_str())
    }

    /// An entry with `base`'s os, os.version and features, `architecture`, and `variant` (which
    /// `NewMatcher` normalizes).
    fn with_variant(base: &Platform, architecture: &str, variant: &str) -> Candidate {
        let (architecture, variant) = normalize_arch(architecture, variant);
        Candidate {
            os: base.os.clone(),
            architecture,
            variant: VariantRule::Is(variant),
            os_version: base.os_version_str().to_owned(),
            os_features: base.os_features.clone(),
        }
    }

    fn numbered(base: &Platform, architecture: &str, lo: i64, hi: i64) -> Candidate {
        Candidate {
            os: base.os.clone(),
            architecture: architecture.to_owned(),
            variant: VariantRule::Numbered { lo, hi },
            os_version: base.os_version_str().to_owned(),
            os_features: base.os_features.clone(),
        }
    }

    /// The matcher's `Match`: equal normalized os, architecture and variant; on Windows the
    /// os.version compatibility rule; the entry's os.features a subset of the node's.
    fn accepts(&self, image: &Platform) -> bool {
        let mut image = image.normalized();
        if image.os.is_empty() {
            // `normalizeOS("")` is the runtime's GOOS, i.e. the node's os.
            image.os = self.os.clone();
        }
        if self.os != image.os
            || self.architecture != image.architecture
            || !self.variant_accepts(image.variant_str())
        {
            return false;
        }
        let windows = self.os == WINDOWS;
        if windows && !windows_os_version_matches(&self.os_version, image.os_version_str()) {
            return false;
        }
        image
            .os_features
            .iter()
            .filter(|f| !(windows && f.as_str() == WIN32K))
            .all(|f| self.os_features.iter().any(|own| own == f))
    }

    fn variant_accepts(&self, image_variant: &str) -> bool {
        match &self.variant {
            VariantRule::Is(v) => v == image_variant,
            VariantRule::Numbered { lo, hi } => {
                // amd64 "v1" normalizes to no variant; arm "v5".."v8" stay as they are.
                if image_variant.is_empty() {
                    return self.architecture == "amd64" && *lo <= 1 && 1 <= *hi;
                }
                // The generated entries are spelled `"v" + strconv.Itoa(n)`: canonical decimal.
                let Some(digits) = image_variant.strip_prefix('v') else {
                    return false;
                };
                let canonical = !digits.is_empty()
                    && digits.bytes().all(|b| b.is_ascii_digit())
                    && (digits == "0" || !digits.starts_with('0'));
                let normalized_away = self.architecture == "amd64" && digits == "1";
                match digits.parse::<i64>() {
                    Ok(n) if canonical && !normalized_away => *lo <= n && n <= *hi,
                    _ => false,
                }
            }
        }
    }
}

/// `platformVector(p)` of compare.go, for a normalized `p`.
fn platform_vector(p: &Platform) -> Vec<Candidate> {
    let mut vector = vec![Candidate::of(p)];
    let variant = p.variant_str();
    match p.architecture.as_str() {
        "amd64" => {
            if let Some(n) = go_atoi(variant.strip_prefix('v').unwrap_or(variant)) {
                if n > 1 {
                    vector.push(Candidate::numbered(p, "amd64", 1, n - 1));
                }
            }
            vector.push(Candidate::with_variant(p, "386", ""));
        }
        "arm" => arm_vector_tail(p, variant, &mut vector),
        "arm64" => {
            let variant = if variant.is_empty() { "v8" } else { variant };
            let (major, minor, has_minor) = match variant.split_once('.') {
                Some((major, minor)) => (major, minor, true),
                None => (variant, "", false),
            };
            if let Some(mut arm_major) = go_atoi(major.strip_prefix('v').unwrap_or(major)) {
                if arm_major >= 8 {
                    // Only a one-digit minor counts ("v8.2"); "v8.10" falls back like "v8".
                    let mut arm_minor = 0;
                    if variant.len() == 4 && has_minor {
                        if let Some(m) = go_atoi(minor) {
                            arm_minor = m;
                        }
                    }
                    if arm_major == 9 {
                        push_minor_run(p, arm_major, arm_minor, &mut vector);
                        // v9.0 forked from v8.5, so v9.x also runs v8.(x+5), capped at v8.9.
                        arm_minor = (arm_minor + 5).min(9);
                        arm_major = 8;
                        vector.push(Candidate::with_variant(
                            p,
                            "arm64",
                            &format!("v8.{arm_minor}"),
                        ));
                    }
                    push_minor_run(p, arm_major, arm_minor, &mut vector);
                }
            }
            // Every arm64 CPU runs 32-bit arm up to v8.
            let arm_variant = if variant.starts_with("v8.") || variant.starts_with("v9.") {
                "v8"
            } else {
                variant
            };
            vector.push(Candidate::with_variant(p, "arm", arm_variant));
            arm_vector_tail(p, arm_variant, &mut vector);
        }
        _ => {}
    }
    vector
}

/// arm/vN also runs vN-1 .. v5.
fn arm_vector_tail(p: &Platform, variant: &str, vector: &mut Vec<Candidate>) {
    if let Some(n) = go_atoi(variant.strip_prefix('v').unwrap_or(variant)) {
        if n > 5 {
            vector.push(Candidate::numbered(p, "arm", 5, n - 1));
        }
    }
}

/// arm64 `v{major}.{minor-1}` down to `v{major}` (minor 0 is written without ".0").
fn push_minor_run(p: &Platform, major: i64, minor: i64, vector: &mut Vec<Candidate>) {
    for m in (0..minor).rev() {
        let variant = if m == 0 {
            format!("v{major}")
        } else {
            format!("v{major}.{m}")
        };
        vector.push(Candidate::with_variant(p, "arm64", &variant));
    }
}

/// Windows host/container version from an os.version string (`getWindowsOSVersion`):
/// major.minor.build, anything unparsable being all zeros ("empty").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct WindowsVersion {
    major: u8,
    minor: u8,
    build: u16,
}

impl WindowsVersion {
    fn parse(s: &str) -> WindowsVersion {
        if s.matches('.').count() < 2 {
            return WindowsVersion::default();
        }
        let mut parts = s.split('.');
        let (Some(major), Some(minor), Some(build)) = (parts.next(), parts.next(), parts.next())
        else {
            return WindowsVersion::default();
        };
        match (
            go_parse_uint::<u8>(major),
            go_parse_uint::<u8>(minor),
            go_parse_uint::<u16>(build),
        ) {
            (Some(major), Some(minor), Some(build)) => WindowsVersion {
                major,
                minor,
                build,
            },
            _ => WindowsVersion::default(),
        }
    }

    fn is_empty(self) -> bool {
        self == WindowsVersion::default()
    }
}

/// `windowsVersionMatcher.Match`: a host without a version, or an entry without one (HostProcess
/// images), matches anything; otherwise `checkWindowsHostAndContainerCompat`.
fn windows_os_version_matches(host: &str, image: &str) -> bool {
    let host = WindowsVersion::parse(host);
    if host.is_empty() || image.is_empty() {
        return true;
    }
    windows_host_runs(host, WindowsVersion::parse(image))
}

/// major.minor must agree. Hosts older than ltsc2022 run only their own build (process
/// isolation); newer hosts run every build from the newest stable-ABI LTSC at or below them up
/// to their own build.
fn windows_host_runs(host: WindowsVersion, container: WindowsVersion) -> bool {
    if host.major != container.major || host.minor != container.minor {
        return false;
    }
    if host.build < WINDOWS_BUILD_LTSC2022 {
        return host.build == container.build;
    }
    let oldest = STABLE_ABI_LTSC_BUILDS
        .iter()
        .rev()
        .copied()
        .find(|&ltsc| host.build >= ltsc)
        .unwrap_or(0);
    container.build >= oldest && container.build <= host.build
}

/// containers/image `compatibility`: variants from most to least capable.
fn crio_variant_order(architecture: &str) -> &'static [&'static str] {
    match architecture {
        "arm" => &["v8", "v7", "v6", "v5"],
        "arm64" => &["v8"],
        _ => &[],
    }
}

/// containers/image `WantedPlatforms` + `MatchesPlatform`. The entry is compared verbatim (no
/// normalization), so e.g. `aarch64` or `amd64/v1` entries are not selected by CRI-O.
fn crio_accepts(node: &Platform, image: &Platform) -> bool {
    // The wanted os/architecture are the runtime's GOOS/GOARCH: canonical Go names.
    let os = normalize_os(&node.os);
    let raw_arch = node.architecture.to_lowercase();
    let (architecture, implied_variant) = normalize_arch(&raw_arch, "");
    let wanted_variant = match node.variant.as_deref().filter(|v| !v.is_empty()) {
        Some(v) => v.to_lowercase(),
        // armhf/armel name their variant; a bare arch has none (no cpuinfo to read here).
        None if raw_arch == "armhf" || raw_arch == "armel" => implied_variant,
        None => String::new(),
    };
    let mut variants: Vec<&str> = Vec::new();
    if wanted_variant.is_empty() {
        variants.push("");
        // An arm64 image without a variant is v8, so "v8" is accepted too.
        if architecture == "arm64" {
            variants.push("v8");
        }
    } else {
        let order = crio_variant_order(&architecture);
        match order.iter().position(|v| *v == wanted_variant) {
            Some(i) => variants.extend_from_slice(&order[i..]),
            None => variants.push(&wanted_variant),
        }
        variants.push("");
    }
    image.os == os && image.architecture == architecture && variants.contains(&image.variant_str())
}

// ---------------------------------------------------------------------------------------------
// Nodes

/// The matcher a node's runtime uses by default, from `status.nodeInfo.containerRuntimeVersion`.
///
/// * `containerd://X.Y...`: before 2.1 -> [`MatcherKind::ContainerdOnly`]; 2.1 and later ->
///   [`MatcherKind::ContainerdStrict`] (its default transfer-service pull). A 2.1+ node configured
///   for local pulls really uses `Only`; that is invisible from the API, so a caller that knows
///   should override the answer.
/// * `cri-o://...` -> [`MatcherKind::CriO`].
/// * `docker://...` (cri-dockerd): moby filters index entries with `platforms.Only`, so
///   [`MatcherKind::ContainerdOnly`].
/// * Anything else, including garbage and unparsable containerd versions ->
///   [`MatcherKind::ContainerdOnly`]: containerd is by far the most common runtime, and `Only` is
///   the most accepting containerd matcher, so an unknown node never causes a false denial (a
///   fallback-only match still gets a warning from [`match_quality`]).
pub fn matcher_for_runtime(runtime_version: &str) -> MatcherKind {
    const DEFAULT: MatcherKind = MatcherKind::ContainerdOnly;
    let Some((runtime, version)) = runtime_version.trim().split_once("://") else {
        return DEFAULT;
    };
    match runtime.to_ascii_lowercase().as_str() {
        "containerd" => match major_minor(version) {
            Some(v) if v >= (2, 1) => MatcherKind::ContainerdStrict,
            _ => DEFAULT,
        },
        "cri-o" | "crio" => MatcherKind::CriO,
        _ => DEFAULT,
    }
}

/// `1.7.22`, `v2.1.0-rc.1`, `2.1.5-k3s1`, `1.6.28-0ubuntu1~22.04.1` -> (major, minor).
fn major_minor(version: &str) -> Option<(u64, u64)> {
    let version = version.trim();
    let version = version.strip_prefix('v').unwrap_or(version);
    let (major, rest) = version.split_once('.')?;
    let minor_len = rest.bytes().take_while(u8::is_ascii_digit).count();
    Some((go_parse_uint(major)?, go_parse_uint(&rest[..minor_len])?))
}

/// The `DefaultSpec()` of a node's runtime, from what the API shows: the `kubernetes.io/os` and
/// `kubernetes.io/arch` labels (the kubelet's GOOS/GOARCH), the `node.kubernetes.io/windows-build`
/// label (major.minor.build) and `status.nodeInfo.kernelVersion` or `.osImage`.
///
/// The variant comes from `/proc/cpuinfo` on the node, which the API does not expose:
/// * arm64 -> `v8`: exact, since the arm64 kernel reports "CPU architecture: 8" on every CPU
///   (v9 cores included);
/// * arm -> `v7` (armhf, by far the most common 32-bit arm): an ARMv6 node (Raspberry Pi Zero/1)
///   really wants v6 and would be misjudged.
///
/// On Windows the os.version is the host's major.minor.build, from the label, else from a
/// kernelVersion like `10.0.20348.2655`, else from an osImage naming an LTSC release. When none
/// is known it stays empty, and containerd's Windows matcher accepts every entry version.
/// For other systems `kernel_or_os_image` says nothing about the platform and is ignored.
pub fn node_platform(
    os: &str,
    arch: &str,
    windows_build: Option<&str>,
    kernel_or_os_image: Option<&str>,
) -> Platform {
    let os = normalize_os(os.trim());
    let (architecture, _) = normalize_arch(arch.trim(), "");
    let variant = match architecture.as_str() {
        "arm64" => Some("v8".to_owned()),
        "arm" => Some("v7".to_owned()),
        _ => None,
    };
    let os_version = if os == WINDOWS {
        windows_build
            .and_then(windows_build_prefix)
            .or_else(|| kernel_or_os_image.and_then(windows_build_prefix))
            .or_else(|| kernel_or_os_image.and_then(windows_build_from_os_image))
    } else {
        None
    };
    Platform {
        os,
        architecture,
        variant,
        os_version,
        os_features: Vec::new(),
    }
}

/// `10.0.20348` or `10.0.20348.2655` -> `10.0.20348` (DefaultSpec carries three numbers).
fn windows_build_prefix(s: &str) -> Option<String> {
    let parts: Vec<&str> = s.trim().split('.').take(3).collect();
    let numeric = parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    numeric.then(|| parts.join("."))
}

/// `Windows Server 2022 Datacenter` -> `10.0.20348`.
fn windows_build_from_os_image(os_image: &str) -> Option<String> {
    let lower = os_image.to_lowercase();
    if !lower.contains("windows") {
        return None;
    }
    [
        ("2019", WINDOWS_BUILD_LTSC2019),
        ("2022", WINDOWS_BUILD_LTSC2022),
        ("2025", WINDOWS_BUILD_LTSC2025),
    ]
    .iter()
    .find(|(year, _)| lower.contains(year))
    .map(|(_, build)| format!("10.0.{build}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use MatcherKind::{ContainerdOnly, ContainerdStrict, CriO};

    fn p(spec: &str) -> Platform {
        Platform::parse(spec).unwrap_or_else(|e| panic!("{spec}: {e}"))
    }

    fn plat(os: &str, arch: &str, variant: &str) -> Platform {
        Platform::new(os, arch).with_variant(variant)
    }

    fn win(version: &str) -> Platform {
        Platform::new("windows", "amd64").with_os_version(version)
    }

    #[test]
    fn normalizes_architecture_aliases_and_variants() {
        let cases = [
            // (arch, variant) -> (arch, variant)
            (("x86_64", ""), ("amd64", "")),
            (("x86-64", "v1"), ("amd64", "")),
            (("amd64", "v1"), ("amd64", "")),
            (("AMD64", "V3"), ("amd64", "v3")),
            (("aarch64", ""), ("arm64", "")),
            (("aarch64", "8"), ("arm64", "")),
            (("arm64", "v8"), ("arm64", "")),
            (("arm64", "v8.0"), ("arm64", "")),
            (("arm64", "v8.2"), ("arm64", "v8.2")),
            (("arm64", "9"), ("arm64", "v9")),
            (("arm64", "9.0"), ("arm64", "v9")),
            (("arm64", "v9.0"), ("arm64", "v9")),
            (("arm64", "v9"), ("arm64", "v9")),
            (("armhf", ""), ("arm", "v7")),
            (("armhf", "v6"), ("arm", "v7")),
            (("armel", ""), ("arm", "v6")),
            (("arm", ""), ("arm", "v7")),
            (("arm", "7"), ("arm", "v7")),
            (("arm", "5"), ("arm", "v5")),
            (("arm", "6"), ("arm", "v6")),
            (("arm", "8"), ("arm", "v8")),
            (("arm", "v6"), ("arm", "v6")),
            (("i386", "whatever"), ("386", "")),
            (("ppc64le", ""), ("ppc64le", "")),
            (("RISCV64", ""), ("riscv64", "")),
        ];
        for ((arch, variant), (want_arch, want_variant)) in cases {
            let got = plat("linux", arch, variant).normalized();
            let want = plat("linux", want_arch, want_variant);
            assert_eq!(got, want, "normalize {arch}/{variant}");
        }
    }

    #[test]
    fn normalizes_os_and_sorts_features() {
        let got = Platform::new("Windows", "amd64")
            .with_os_version("10.0.20348.2655")
            .with_os_features(["win32k", "a", "win32k"])
            .normalized();
        assert_eq!(got.os, "windows");
        assert_eq!(got.os_version.as_deref(), Some("10.0.20348.2655"));
        assert_eq!(got.os_features, ["a", "win32k"]);
        assert_eq!(Platform::new("MacOS", "arm64").normalized().os, "darwin");
    }

    #[test]
    fn parses_specifiers_like_containerd() {
        let cases = [
            ("linux/amd64", plat("linux", "amd64", "")),
            ("linux/amd64/v1", plat("linux", "amd64", "")),
            ("linux/amd64/v3", plat("linux", "amd64", "v3")),
            ("Linux/x86_64", plat("linux", "amd64", "")),
            ("linux/arm", plat("linux", "arm", "")),
            ("linux/armhf", plat("linux", "arm", "")),
            ("linux/armel", plat("linux", "arm", "v6")),
            ("linux/arm/v7", plat("linux", "arm", "v7")),
            ("linux/arm/6", plat("linux", "arm", "v6")),
            ("linux/arm64", plat("linux", "arm64", "")),
            ("linux/arm64/v8", plat("linux", "arm64", "v8")),
            ("linux/aarch64/8", plat("linux", "arm64", "v8")),
            ("linux/arm64/v9.0", plat("linux", "arm64", "v9")),
            ("linux/arm64/v8.2", plat("linux", "arm64", "v8.2")),
            ("windows(10.0.17763)/amd64", win("10.0.17763")),
            (
                "windows(10.0.20348+win32k)/amd64",
                win("10.0.20348").with_os_features(["win32k"]),
            ),
            (
                "windows(+a+b)/amd64",
                Platform::new("windows", "amd64").with_os_features(["a", "b"]),
            ),
            ("windows(1%2E0)/amd64", win("1.0")),
        ];
        for (spec, want) in cases {
            assert_eq!(p(spec), want, "{spec}");
        }
    }

    #[test]
    fn rejects_malformed_specifiers() {
        fn kind(e: &PlatformError) -> &'static str {
            match e {
                PlatformError::Wildcard { .. } => "wildcard",
                PlatformError::InvalidOs { .. } => "os",
                PlatformError::InvalidComponent { .. } => "component",
                PlatformError::InvalidEscape { .. } => "escape",
                PlatformError::MissingArchitecture { .. } => "no arch",
                PlatformError::TooManyComponents { .. } => "too many",
            }
        }
        let cases = [
            ("linux/*", "wildcard"),
            ("", "os"),
            ("lin ux/amd64", "os"),
            ("windows(10.0/amd64", "os"),
            ("windows(a++b)/amd64", "os"),
            ("windows(10.0+)/amd64", "os"),
            ("windows(%zz)/amd64", "escape"),
            ("windows(%+1)/amd64", "escape"),
            ("windows(%2)/amd64", "escape"),
            ("linux/", "component"),
            ("linux/am:d64", "component"),
            ("linux", "no arch"),
            ("linux/arm/v7/x", "too many"),
        ];
        for (spec, want) in cases {
            match Platform::parse(spec) {
                Ok(got) => panic!("{spec:?} parsed as {got:?}"),
                Err(e) => assert_eq!(kind(&e), want, "{spec:?}: {e}"),
            }
        }
    }

    #[test]
    fn displays_for_messages() {
        assert_eq!(plat("linux", "arm64", "v8").to_string(), "linux/arm64/v8");
        assert_eq!(plat("linux", "amd64", "").to_string(), "linux/amd64");
        assert_eq!(win("10.0.20348").to_string(), "windows/amd64 10.0.20348");
        assert_eq!(
            win("10.0.20348.2655")
                .with_os_features(["win32k"])
                .to_string(),
            "windows/amd64 10.0.20348.2655 +win32k"
        );
    }

    #[test]
    fn deserializes_oci_index_platforms() {
        let got: Platform = serde_json::from_str(
            r#"{"architecture":"amd64","os":"windows","os.version":"10.0.20348.2655",
                "os.features":["win32k"],"variant":""}"#,
        )
        .expect("platform json");
        assert_eq!(
            got,
            win("10.0.20348.2655").with_os_features(["win32k"]),
            "empty variant reads as none"
        );
        let got: Platform =
            serde_json::from_str(r#"{"architecture":"arm","os":"linux","variant":"v7"}"#)
                .expect("platform json");
        assert_eq!(got, plat("linux", "arm", "v7"));
        assert_eq!(
            serde_json::to_value(&got).expect("serialize"),
            serde_json::json!({"architecture":"arm","os":"linux","variant":"v7"})
        );
    }

    /// (node, image, Only, Strict) for the fallbacks of containerd's two matchers.
    #[test]
    fn containerd_fallbacks_depend_on_the_matcher() {
        let cases = [
            ("linux/amd64", "linux/amd64", true, true),
            ("linux/amd64", "linux/amd64/v1", true, true),
            ("linux/amd64", "linux/amd64/v2", false, false),
            ("linux/amd64", "linux/386", true, false),
            ("linux/amd64", "linux/arm64", false, false),
            ("linux/amd64/v3", "linux/amd64/v2", true, false),
            ("linux/amd64/v3", "linux/amd64", true, false),
            ("linux/amd64/v3", "linux/amd64/v4", false, false),
            ("linux/amd64/v3", "linux/386", true, false),
            ("linux/arm/v7", "linux/arm", true, true),
            ("linux/arm/v7", "linux/arm/v6", true, false),
            ("linux/arm/v7", "linux/arm/v5", true, false),
            ("linux/arm/v7", "linux/arm/v8", false, false),
            ("linux/arm/v6", "linux/arm", false, false),
            ("linux/arm/v6", "linux/arm/v5", true, false),
            ("linux/arm64/v8", "linux/arm64", true, true),
            ("linux/arm64/v8", "linux/aarch64", true, true),
            ("linux/arm64/v8", "linux/arm64/v8.2", false, false),
            ("linux/arm64/v8", "linux/arm64/v9", false, false),
            ("linux/arm64/v8", "linux/arm", true, false),
            ("linux/arm64/v8", "linux/arm/v8", true, false),
            ("linux/arm64/v8", "linux/arm/v5", true, false),
            ("linux/arm64/v8", "linux/amd64", false, false),
            ("linux/arm64/v8.2", "linux/arm64/v8.1", true, false),
            ("linux/arm64/v8.2", "linux/arm64", true, false),
            ("linux/arm64/v8.2", "linux/arm64/v8.3", false, false),
            ("linux/arm64/v9", "linux/arm64/v8.5", true, false),
            ("linux/arm64/v9", "linux/arm64/v8.6", false, false),
            ("linux/arm64/v9", "linux/arm/v9", true, false),
            ("linux/arm64/v9.2", "linux/arm64/v9.1", true, false),
            ("linux/arm64/v9.2", "linux/arm64/v8.7", true, false),
            ("linux/arm64/v9.2", "linux/arm64/v8.8", false, false),
            ("linux/arm64/v9.6", "linux/arm64/v8.9", true, false),
            ("linux/arm64/v9.6", "linux/arm64/v8.10", false, false),
            ("linux/arm64/v8.10", "linux/arm64/v8.9", false, false),
            // Only a one-digit minor is understood: v8.10 has no arm64 fallback at all.
            ("linux/arm64/v8.10", "linux/arm64", false, false),
            ("linux/arm64/v8.10", "linux/arm/v7", true, false),
            ("linux/amd64", "windows/amd64", false, false),
            ("windows/amd64", "windows/386", true, false),
        ];
        for (node, image, only, strict) in cases {
            let (node_p, image_p) = (p(node), p(image));
            assert_eq!(
                matches(ContainerdOnly, &node_p, &image_p),
                only,
                "Only: node {node} image {image}"
            );
            assert_eq!(
                matches(ContainerdStrict, &node_p, &image_p),
                strict,
                "Strict: node {node} image {image}"
            );
        }
    }

    #[test]
    fn huge_node_variants_do_not_blow_up_the_fallback_vector() {
        let node = plat("linux", "amd64", "v9999999999");
        assert!(matches(
            ContainerdOnly,
            &node,
            &plat("linux", "amd64", "v1234")
        ));
        assert!(matches(ContainerdOnly, &node, &plat("linux", "amd64", "")));
        assert!(!matches(
            ContainerdOnly,
            &node,
            &plat("linux", "amd64", "v01234")
        ));
        let node = plat("linux", "arm", "v1000");
        assert!(matches(
            ContainerdOnly,
            &node,
            &plat("linux", "arm", "v999")
        ));
        assert!(matches(ContainerdOnly, &node, &plat("linux", "arm", "v5")));
        assert!(!matches(ContainerdOnly, &node, &plat("linux", "arm", "v4")));
    }

    #[test]
    fn attestation_entries_never_match() {
        let attestation = Platform::new("unknown", "unknown");
        let node = Platform::new("unknown", "unknown");
        for kind in [ContainerdOnly, ContainerdStrict, CriO] {
            assert!(!matches(kind, &node, &attestation), "{kind:?}");
            assert!(
                !matches(kind, &plat("linux", "amd64", ""), &attestation),
                "{kind:?}"
            );
        }
    }

    #[test]
    fn entry_without_os_takes_the_nodes_os_in_containerd() {
        let entry = Platform::new("", "amd64");
        let node = plat("linux", "amd64", "");
        assert!(matches(ContainerdStrict, &node, &entry));
        assert!(!matches(CriO, &node, &entry));
    }

    /// (node variant, image arch/variant, accepted) for CRI-O on linux.
    #[test]
    fn crio_uses_its_own_variant_table() {
        let cases = [
            (("amd64", ""), ("amd64", ""), true),
            (("amd64", ""), ("amd64", "v1"), false),
            (("amd64", ""), ("amd64", "v2"), false),
            (("amd64", ""), ("386", ""), false),
            (("arm64", "v8"), ("arm64", ""), true),
            (("arm64", "v8"), ("arm64", "v8"), true),
            (("arm64", "v8"), ("arm64", "v8.2"), false),
            (("arm64", "v8"), ("aarch64", ""), false),
            (("arm64", "v8"), ("arm", "v7"), false),
            (("arm64", ""), ("arm64", "v8"), true),
            (("arm64", ""), ("arm64", ""), true),
            (("arm", "v8"), ("arm", "v8"), true),
            (("arm", "v8"), ("arm", "v5"), true),
            (("arm", "v7"), ("arm", "v7"), true),
            (("arm", "v7"), ("arm", "v6"), true),
            (("arm", "v7"), ("arm", "v5"), true),
            (("arm", "v7"), ("arm", ""), true),
            (("arm", "v7"), ("arm", "v8"), false),
            (("arm", "v6"), ("arm", "v7"), false),
            (("arm", "v6"), ("arm", ""), true),
            (("arm", ""), ("arm", "v7"), false),
            (("arm", ""), ("arm", ""), true),
            (("riscv64", "rva23"), ("riscv64", "rva23"), true),
            (("riscv64", "rva23"), ("riscv64", ""), true),
            (("riscv64", "rva23"), ("riscv64", "rva20"), false),
        ];
        for ((node_arch, node_variant), (arch, variant), want) in cases {
            let node = plat("linux", node_arch, node_variant);
            let image = plat("linux", arch, variant);
            assert_eq!(
                matches(CriO, &node, &image),
                want,
                "CRI-O node {node} image {image}"
            );
        }
    }

    #[test]
    fn crio_ignores_windows_version_and_features() {
        let node = win("10.0.17763");
        let image = win("10.0.26100.1742").with_os_features(["gpu"]);
        assert!(matches(CriO, &node, &image));
        assert!(!matches(ContainerdOnly, &node, &image));
    }

    /// (host os.version, entry os.version, accepted) under both containerd matchers.
    #[test]
    fn windows_os_version_rules() {
        let cases = [
            // ltsc2019 and older hosts: exact build only.
            ("10.0.17763", "10.0.17763.6189", true),
            ("10.0.17763", "10.0.17763", true),
            ("10.0.17763", "10.0.17762.1", false),
            ("10.0.17763", "10.0.20348.2655", false),
            // ltsc2022 host: exactly 20348.
            ("10.0.20348", "10.0.20348.2655", true),
            ("10.0.20348", "10.0.17763.6189", false),
            ("10.0.20348", "10.0.26100.1742", false),
            // Newer hosts: from ltsc2022 up to their own build.
            ("10.0.22621", "10.0.20348", true),
            ("10.0.22621", "10.0.22621.1", true),
            ("10.0.22621", "10.0.26100", false),
            ("10.0.26100", "10.0.20348.2655", true),
            ("10.0.26100", "10.0.26100.1742", true),
            ("10.0.26100", "10.0.17763.6189", false),
            // major.minor must agree.
            ("10.0.26100", "11.0.26100", false),
            ("10.0.26100", "10.1.26100", false),
            // An entry without os.version runs anywhere (HostProcess images).
            ("10.0.17763", "", true),
            // A host without a usable version accepts every entry.
            ("", "10.0.17763.1", true),
            ("10.0", "10.0.17763.1", true),
            // An unparsable entry version is all zeros and matches no real host.
            ("10.0.20348", "garbage", false),
            ("10.0.20348", "10.0.+20348", false),
        ];
        for (host, entry, want) in cases {
            let node = Platform::new("windows", "amd64").with_os_version(host);
            let image = Platform::new("windows", "amd64").with_os_version(entry);
            for kind in [ContainerdOnly, ContainerdStrict] {
                assert_eq!(
                    matches(kind, &node, &image),
                    want,
                    "{kind:?}: host {host:?} entry {entry:?}"
                );
            }
        }
    }

    #[test]
    fn os_features_must_be_a_subset_except_win32k_on_windows() {
        let node = win("10.0.20348");
        let with = |features: &[&str]| win("10.0.20348.1").with_os_features(features.to_vec());
        assert!(matches(ContainerdStrict, &node, &with(&["win32k"])));
        assert!(!matches(ContainerdStrict, &node, &with(&["gpu"])));
        let gpu_node = node.clone().with_os_features(["gpu"]);
        assert!(matches(
            ContainerdStrict,
            &gpu_node,
            &with(&["gpu", "win32k"])
        ));
        assert!(matches(ContainerdOnly, &gpu_node, &with(&["gpu", "gpu"])));
        // On Linux win32k means nothing special: it is an unknown feature like any other.
        let linux = plat("linux", "amd64", "").with_os_features(["win32k"]);
        assert!(!matches(
            ContainerdStrict,
            &plat("linux", "amd64", ""),
            &linux
        ));
    }

    #[test]
    fn match_quality_tells_exact_from_fallback() {
        let cases = [
            (
                ContainerdOnly,
                "linux/amd64",
                "linux/amd64",
                Some(MatchQuality::Exact),
            ),
            (
                ContainerdOnly,
                "linux/amd64",
                "linux/386",
                Some(MatchQuality::Fallback),
            ),
            (ContainerdStrict, "linux/amd64", "linux/386", None),
            (
                ContainerdOnly,
                "linux/arm64/v8",
                "linux/arm/v7",
                Some(MatchQuality::Fallback),
            ),
            (ContainerdOnly, "linux/arm64/v8", "linux/arm64/v9", None),
            (CriO, "linux/arm/v7", "linux/arm", Some(MatchQuality::Exact)),
            (
                CriO,
                "linux/arm/v7",
                "linux/arm/v6",
                Some(MatchQuality::Fallback),
            ),
            (
                ContainerdStrict,
                "linux/arm64/v8",
                "linux/arm64",
                Some(MatchQuality::Exact),
            ),
        ];
        for (kind, node, image, want) in cases {
            assert_eq!(
                match_quality(kind, &p(node), &p(image)),
                want,
                "{kind:?} node {node} image {image}"
            );
        }
    }

    #[test]
    fn best_match_prefers_an_exact_entry() {
        let node = p("linux/amd64");
        let index = [p("linux/386"), p("linux/amd64"), p("linux/arm64")];
        assert_eq!(
            best_match(ContainerdOnly, &node, &index),
            Some(MatchQuality::Exact)
        );
        assert_eq!(
            best_match(ContainerdOnly, &node, &index[..1]),
            Some(MatchQuality::Fallback)
        );
        assert_eq!(best_match(ContainerdStrict, &node, &index[..1]), None);
        assert_eq!(best_match(ContainerdOnly, &node, &index[2..]), None);
        assert_eq!(best_match(ContainerdOnly, &node, &[]), None);
    }

    #[test]
    fn picks_the_matcher_from_the_runtime_version() {
        let cases = [
            ("containerd://1.6.28", ContainerdOnly),
            ("containerd://1.7.22", ContainerdOnly),
            ("containerd://1.7.22-0ubuntu1~22.04.1", ContainerdOnly),
            ("containerd://2.0.5", ContainerdOnly),
            ("containerd://2.1.0", ContainerdStrict),
            ("containerd://v2.1.0-rc.1", ContainerdStrict),
            ("containerd://2.1.5-k3s1", ContainerdStrict),
            ("containerd://2.2.0", ContainerdStrict),
            ("containerd://3.0.0", ContainerdStrict),
            ("containerd://1.10.0", ContainerdOnly),
            ("Containerd://2.1.0", ContainerdStrict),
            (" containerd://2.1.0 ", ContainerdStrict),
            ("cri-o://1.30.2", CriO),
            ("cri-o://", CriO),
            ("docker://24.0.7", ContainerdOnly),
            // Garbage falls back to the most accepting containerd matcher.
            ("containerd://", ContainerdOnly),
            ("containerd://latest", ContainerdOnly),
            ("containerd://2", ContainerdOnly),
            ("containerd://+2.1", ContainerdOnly),
            ("", ContainerdOnly),
            ("containerd", ContainerdOnly),
            ("rkt://1.0", ContainerdOnly),
            ("💥://2.1", ContainerdOnly),
        ];
        for (runtime, want) in cases {
            assert_eq!(matcher_for_runtime(runtime), want, "{runtime:?}");
        }
    }

    #[test]
    fn derives_the_default_spec_of_a_node() {
        let cases = [
            (("linux", "amd64", None, None), plat("linux", "amd64", "")),
            (("linux", "arm64", None, None), plat("linux", "arm64", "v8")),
            (("linux", "arm", None, None), plat("linux", "arm", "v7")),
            (
                ("Linux", "s390x", None, Some("6.1.0-21-s390x")),
                plat("linux", "s390x", ""),
            ),
            (
                ("windows", "amd64", Some("10.0.17763"), None),
                win("10.0.17763"),
            ),
            (
                ("windows", "amd64", Some("10.0.20348.2655"), None),
                win("10.0.20348"),
            ),
            (
                ("windows", "amd64", None, Some("10.0.26100.1742")),
                win("10.0.26100"),
            ),
            (
                ("windows", "amd64", Some("garbage"), Some("10.0.20348.2655")),
                win("10.0.20348"),
            ),
            (
                (
                    "windows",
                    "amd64",
                    None,
                    Some("Windows Server 2022 Datacenter"),
                ),
                win("10.0.20348"),
            ),
            (
                (
                    "windows",
                    "amd64",
                    None,
                    Some("Windows Server 2019 Datacenter"),
                ),
                win("10.0.17763"),
            ),
            (
                ("windows", "amd64", None, None),
                Platform::new("windows", "amd64"),
            ),
            (
                ("linux", "amd64", Some("10.0.20348"), None),
                plat("linux", "amd64", ""),
            ),
        ];
        for ((os, arch, build, kernel), want) in cases {
            assert_eq!(
                node_platform(os, arch, build, kernel),
                want,
                "{os}/{arch} {build:?} {kernel:?}"
            );
        }
    }
}
