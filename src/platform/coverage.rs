//! Whether an image provides for the platforms a pod can land on (pure).
//!
//! The runtime on each node picks one entry of an image index with its own matcher
//! ([`super::best_match`]); a single-platform image is not checked at pull time at all and fails
//! only when its binary starts. Both judgements live here, against the [`Target`]s that
//! `placement` derives from the pod and the nodes.

use super::{best_match, MatchQuality, MatcherKind, Platform};

/// A platform some of the pod's possible nodes have, with the matcher those nodes use.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    pub platform: Platform,
    pub matcher: MatcherKind,
    /// How many current nodes have this platform and matcher; 0 for the platform a pod pins
    /// itself to when no current node has it.
    pub nodes: usize,
}

/// What a digest holds, as far as platforms go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// The platforms of an index's entries (attestations included; matching skips them).
    Index {
        platforms: Vec<Platform>,
        /// Some entry carries no platform: containerd's filter keeps such entries for every
        /// node (`d.Platform == nil || m.Match(...)`), so every node can pull the image.
        unlabelled: bool,
    },
    /// A single manifest and the platform its config declares. containerd does not check it
    /// at pull time; a mismatch fails at start (exec format error).
    Image { platform: Platform },
}

impl Content {
    /// Roughly how many bytes this holds, for the cache's weigher.
    pub fn approximate_size(&self) -> usize {
        let platform = |p: &Platform| {
            64 + p.os.len()
                + p.architecture.len()
                + p.variant.as_ref().map_or(0, String::len)
                + p.os_version.as_ref().map_or(0, String::len)
                + p.os_features.iter().map(String::len).sum::<usize>()
        };
        match self {
            Content::Index { platforms, .. } => platforms.iter().map(platform).sum::<usize>() + 32,
            Content::Image { platform: p } => platform(p) + 32,
        }
    }
}

/// The verdict for one image index against the candidates. Every target is in exactly one of
/// the three lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Coverage {
    /// An entry matches the node's exact platform: every runtime mode pulls it.
    pub provided: Vec<Target>,
    /// No entry matches: the pull fails with `no match for platform in manifest`.
    pub missing: Vec<Target>,
    /// Provided only through a fallback (an arm64 node pulling arm/v7, an amd64 node pulling
    /// 386): pulls under this matcher, but a containerd >= 2.1 node in its default mode would not.
    pub fallback_only: Vec<Target>,
}

/// Sorts each target by the best entry of the index its matcher accepts. Attestation entries
/// (`unknown/unknown`) never count: no runtime selects them.
pub fn coverage(index_platforms: &[Platform], targets: &[Target]) -> Coverage {
    let mut coverage = Coverage::default();
    for target in targets {
        let list = match best_match(target.matcher, &target.platform, index_platforms) {
            Some(MatchQuality::Exact) => &mut coverage.provided,
            Some(MatchQuality::Fallback) => &mut coverage.fallback_only,
            None => &mut coverage.missing,
        };
        list.push(target.clone());
    }
    coverage
}

/// For a single-platform image (its config's os/architecture/variant): the targets whose nodes
/// would fail at container start with `exec format error`. containerd does not platform-check a
/// top-level manifest at pull time, so the pull succeeds and only the binary's os/architecture
/// matter: variants are ignored (an amd64/v3 or arm64/v8.2 binary may still run), and so are the
/// architectures the node's CPU executes natively (386 on amd64, 32-bit arm on arm64, the same
/// pairs containerd's `Only` falls back to). An image without an architecture, or an
/// attestation, mismatches nothing.
pub fn single_platform_mismatch(image: &Platform, targets: &[Target]) -> Vec<Target> {
    let image = image.normalized();
    if image.architecture.is_empty() || image.is_attestation() {
        return Vec::new();
    }
    targets
        .iter()
        .filter(|target| !executes(&target.platform.normalized(), &image))
        .cloned()
        .collect()
}

/// Both normalized. An empty image os is the node's own (containerd's `normalizeOS("")`).
fn executes(node: &Platform, image: &Platform) -> bool {
    let os = image.os.is_empty() || image.os == node.os;
    let arch = image.architecture == node.architecture
        || matches!(
            (node.architecture.as_str(), image.architecture.as_str()),
            ("amd64", "386") | ("arm64", "arm")
        );
    os && arch
}

/// The platform check of an image that exists.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum PlatformCheck {
    /// No node information, an answer without digest, or the check is off.
    #[default]
    NotChecked,
    /// Every platform the pod can land on is provided.
    Covered,
    /// An index that provides none of them: every pull fails with "no match for platform in
    /// manifest".
    Missing {
        provided: Vec<Platform>,
        missing: Vec<Target>,
    },
    /// An index that provides some: pods fail on the nodes whose platform is missing.
    Partial {
        provided: Vec<Target>,
        missing: Vec<Target>,
    },
    /// A single-platform image that some of these nodes cannot execute: the pull works
    /// (containerd does not check a top-level manifest) and the container fails to start.
    SingleMismatch {
        image: Platform,
        targets: Vec<Target>,
    },
}

/// What the content of a resolved digest means for the platforms the pod can land on. Pure.
pub fn platform_check(content: &Content, targets: &[Target]) -> PlatformCheck {
    match content {
        Content::Index {
            unlabelled: true, ..
        } => PlatformCheck::Covered,
        Content::Index { platforms, .. } => {
            let coverage = coverage(platforms, targets);
            // A fallback match pulls: the node's own matcher accepts it.
            let mut provided = coverage.provided;
            provided.extend(coverage.fallback_only);
            match (provided.is_empty(), coverage.missing.is_empty()) {
                (_, true) => PlatformCheck::Covered,
                (true, false) => PlatformCheck::Missing {
                    provided: platforms.clone(),
                    missing: coverage.missing,
                },
                (false, false) => PlatformCheck::Partial {
                    provided,
                    missing: coverage.missing,
                },
            }
        }
        Content::Image { platform } => {
            let targets = single_platform_mismatch(platform, targets);
            if targets.is_empty() {
                PlatformCheck::Covered
            } else {
                PlatformCheck::SingleMismatch {
                    image: platform.clone(),
                    targets,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use MatcherKind::{ContainerdOnly, ContainerdStrict, CriO};

    fn p(spec: &str) -> Platform {
        Platform::parse(spec).unwrap_or_else(|e| panic!("{spec}: {e}"))
    }

    fn target(spec: &str, matcher: MatcherKind, nodes: usize) -> Target {
        Target {
            platform: p(spec),
            matcher,
            nodes,
        }
    }

    /// (index, target, expected list) where the list is "provided", "fallback" or "missing".
    #[test]
    fn coverage_sorts_each_target_by_its_best_entry() {
        let cases = [
            (
                vec!["linux/amd64", "linux/arm64"],
                ("linux/amd64", ContainerdOnly),
                "provided",
            ),
            (
                vec!["linux/amd64", "linux/arm64"],
                ("linux/arm64/v8", ContainerdStrict),
                "provided",
            ),
            (
                vec!["linux/amd64", "linux/arm64/v8"],
                ("linux/arm64/v8", CriO),
                "provided",
            ),
            (
                vec!["linux/amd64", "linux/arm/v7"],
                ("linux/arm64/v8", ContainerdOnly),
                "fallback",
            ),
            (
                vec!["linux/amd64", "linux/arm/v7"],
                ("linux/arm64/v8", ContainerdStrict),
                "missing",
            ),
            (
                vec!["linux/amd64", "linux/arm/v7"],
                ("linux/arm64/v8", CriO),
                "missing",
            ),
            (
                vec!["linux/386"],
                ("linux/amd64", ContainerdOnly),
                "fallback",
            ),
            (
                vec!["linux/386"],
                ("linux/amd64", ContainerdStrict),
                "missing",
            ),
            (
                vec!["linux/386", "linux/amd64"],
                ("linux/amd64", ContainerdOnly),
                "provided",
            ),
            (vec!["linux/arm/v6"], ("linux/arm/v7", CriO), "fallback"),
            (
                vec!["linux/amd64/v2"],
                ("linux/amd64", ContainerdOnly),
                "missing",
            ),
            (
                vec!["linux/arm64/v8.2"],
                ("linux/arm64/v8", ContainerdOnly),
                "missing",
            ),
            (
                vec!["windows(10.0.17763.6189)/amd64"],
                ("windows(10.0.20348)/amd64", ContainerdOnly),
                "missing",
            ),
            (
                vec!["windows(10.0.20348.2655)/amd64"],
                ("windows(10.0.20348)/amd64", ContainerdStrict),
                "provided",
            ),
            (
                vec!["linux/amd64"],
                ("windows(10.0.20348)/amd64", ContainerdOnly),
                "missing",
            ),
            (
                vec!["unknown/unknown"],
                ("linux/amd64", ContainerdOnly),
                "missing",
            ),
            (vec![], ("linux/amd64", ContainerdOnly), "missing"),
        ];
        for (index, (node, matcher), want) in cases {
            let index: Vec<Platform> = index.iter().map(|s| p(s)).collect();
            let t = target(node, matcher, 1);
            let got = coverage(&index, std::slice::from_ref(&t));
            let expected = match want {
                "provided" => Coverage {
                    provided: vec![t.clone()],
                    ..Coverage::default()
                },
                "fallback" => Coverage {
                    fallback_only: vec![t.clone()],
                    ..Coverage::default()
                },
                _ => Coverage {
                    missing: vec![t.clone()],
                    ..Coverage::default()
                },
            };
            assert_eq!(got, expected, "index {index:?} node {node} {matcher:?}");
        }
    }

    #[test]
    fn attestation_entries_do_not_provide_for_any_target() {
        let index = [p("linux/amd64"), Platform::new("unknown", "unknown")];
        let targets = [
            target("linux/amd64", ContainerdOnly, 3),
            target("linux/arm64/v8", ContainerdOnly, 2),
        ];
        let got = coverage(&index, &targets);
        assert_eq!(got.provided, [targets[0].clone()]);
        assert_eq!(got.missing, [targets[1].clone()]);
        assert!(got.fallback_only.is_empty());
    }

    #[test]
    fn single_platform_mismatch_compares_os_and_arch_only() {
        let targets = [
            target("linux/amd64", ContainerdStrict, 3),
            target("linux/arm64/v8", ContainerdStrict, 2),
            target("windows(10.0.20348)/amd64", ContainerdOnly, 1),
        ];
        let cases = [
            (
                "linux/amd64",
                vec!["linux/arm64/v8", "windows/amd64 10.0.20348"],
            ),
            (
                "linux/amd64/v3",
                vec!["linux/arm64/v8", "windows/amd64 10.0.20348"],
            ),
            (
                "linux/x86_64",
                vec!["linux/arm64/v8", "windows/amd64 10.0.20348"],
            ),
            (
                "linux/arm64",
                vec!["linux/amd64", "windows/amd64 10.0.20348"],
            ),
            (
                "linux/arm64/v8.2",
                vec!["linux/amd64", "windows/amd64 10.0.20348"],
            ),
            (
                "linux/aarch64",
                vec!["linux/amd64", "windows/amd64 10.0.20348"],
            ),
            // Binaries the node's CPU runs natively.
            (
                "linux/386",
                vec!["linux/arm64/v8", "windows/amd64 10.0.20348"],
            ),
            (
                "linux/arm/v7",
                vec!["linux/amd64", "windows/amd64 10.0.20348"],
            ),
            (
                "linux/s390x",
                vec!["linux/amd64", "linux/arm64/v8", "windows/amd64 10.0.20348"],
            ),
            // os.version is not an exec format question.
            (
                "windows(10.0.17763)/amd64",
                vec!["linux/amd64", "linux/arm64/v8"],
            ),
        ];
        for (image, want) in cases {
            let got: Vec<String> = single_platform_mismatch(&p(image), &targets)
                .iter()
                .map(|t| t.platform.to_string())
                .collect();
            assert_eq!(got, want, "image {image}");
        }
    }

    #[test]
    fn single_platform_mismatch_cannot_judge_an_image_without_architecture() {
        let targets = [target("linux/arm64/v8", ContainerdOnly, 1)];
        assert!(single_platform_mismatch(&Platform::new("linux", ""), &targets).is_empty());
        assert!(
            single_platform_mismatch(&Platform::new("unknown", "unknown"), &targets).is_empty()
        );
        // An image config without os runs as the node's os.
        assert!(single_platform_mismatch(&Platform::new("", "arm64"), &targets).is_empty());
        assert_eq!(
            single_platform_mismatch(&Platform::new("", "amd64"), &targets),
            targets
        );
    }
    #[test]
    fn platform_check_follows_the_nodes_matcher_and_unlabelled_entries() {
        use crate::platform::MatcherKind;
        let p = |s: &str| Platform::parse(s).expect("platform");
        let target = |s: &str, matcher, nodes| Target {
            platform: p(s),
            matcher,
            nodes,
        };
        let index = |platforms: &[&str], unlabelled| Content::Index {
            platforms: platforms.iter().map(|s| p(s)).collect(),
            unlabelled,
        };
        let amd = target("linux/amd64", MatcherKind::ContainerdOnly, 3);
        let arm_legacy = target("linux/arm64/v8", MatcherKind::ContainerdOnly, 1);
        let arm_strict = target("linux/arm64/v8", MatcherKind::ContainerdStrict, 1);
        let name = |c: &PlatformCheck| match c {
            PlatformCheck::NotChecked => "not checked",
            PlatformCheck::Covered => "covered",
            PlatformCheck::Missing { .. } => "missing",
            PlatformCheck::Partial { .. } => "partial",
            PlatformCheck::SingleMismatch { .. } => "single mismatch",
        };
        let cases = [
            (
                index(&["linux/amd64", "linux/arm64"], false),
                vec![amd.clone(), arm_strict.clone()],
                "covered",
            ),
            (index(&["linux/arm64"], false), vec![amd.clone()], "missing"),
            (
                index(&["linux/arm64"], false),
                vec![amd.clone(), arm_strict.clone()],
                "partial",
            ),
            // arm64 on containerd <= 2.0 falls back to arm/v7; 2.1 and later do not.
            (
                index(&["linux/arm/v7"], false),
                vec![arm_legacy.clone()],
                "covered",
            ),
            (
                index(&["linux/arm/v7"], false),
                vec![arm_strict.clone()],
                "missing",
            ),
            // Attestations never count; entries without a platform match every node.
            (
                index(&["unknown/unknown"], false),
                vec![amd.clone()],
                "missing",
            ),
            (
                index(&[], true),
                vec![amd.clone(), arm_strict.clone()],
                "covered",
            ),
            (
                Content::Image {
                    platform: p("linux/amd64"),
                },
                vec![amd.clone()],
                "covered",
            ),
            (
                Content::Image {
                    platform: p("linux/arm64"),
                },
                vec![amd.clone()],
                "single mismatch",
            ),
        ];
        for (content, targets, want) in cases {
            assert_eq!(
                name(&platform_check(&content, &targets)),
                want,
                "{content:?} {targets:?}"
            );
        }
    }
}
