//! Which node platforms a pod can land on (pure). Whether an image provides for them is
//! `platform::coverage`.
//!
//! The scheduler places a pod only on nodes whose labels satisfy `spec.nodeSelector` and the
//! required node affinity. Of those constraints only the keys that decide a node's platform are
//! evaluated here (`kubernetes.io/os`, `kubernetes.io/arch`, `node.kubernetes.io/windows-build`):
//! any other label (a pool, a zone, a GPU) neither changes which index entry the runtime picks
//! nor rules a platform out for good, because the autoscaler may create such a node. Node names
//! in `matchFields` are evaluated, since the DaemonSet controller pins its pods that way.
//!
//! `NoSchedule` and `NoExecute` taints keep a pod off nodes unless it tolerates them, and
//! `spec.os` keeps it off nodes of another os (the kubelet rejects it there). Preferred affinity
//! is not evaluated: it never rules a node out.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use k8s_openapi::api::core::v1::{
    NodeSelectorRequirement, NodeSelectorTerm, PodSpec, Taint, Toleration,
};

use crate::platform::{self, MatcherKind, Platform, Target};

/// The kubelet's GOOS.
pub const LABEL_OS: &str = "kubernetes.io/os";
/// The kubelet's GOARCH.
pub const LABEL_ARCH: &str = "kubernetes.io/arch";
/// A Windows node's major.minor.build, which decides the entries containerd accepts.
pub const LABEL_WINDOWS_BUILD: &str = "node.kubernetes.io/windows-build";
/// The only labels [`candidates`] evaluates.
pub const PLATFORM_LABELS: [&str; 3] = [LABEL_OS, LABEL_ARCH, LABEL_WINDOWS_BUILD];

/// The one node field `matchFields` supports (API validation rejects any other).
const FIELD_NODE_NAME: &str = "metadata.name";

/// A node as far as platforms are concerned.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeInfo {
    pub name: String,
    /// Only [`PLATFORM_LABELS`] are ever read; others may be present and are ignored.
    pub labels: BTreeMap<String, String>,
    /// The runtime's `DefaultSpec()`, see [`platform::node_platform`].
    pub platform: Platform,
    pub matcher: MatcherKind,
    /// `NoSchedule` and `NoExecute` taints: a pod that does not tolerate them never lands here
    /// (Windows node pools are usually tainted so that Linux pods stay off them).
    pub taints: Vec<Taint>,
}

/// Where the pod can run.
#[derive(Debug, Clone, PartialEq)]
pub enum Candidates {
    /// Distinct (platform, matcher) pairs, most nodes first, then by platform string.
    Known(Vec<Target>),
    /// No node information, or no current node fits and the pod does not pin one platform:
    /// skip the platform check.
    Unknown,
}

/// The platforms the pod can land on: the nodes whose platform labels satisfy the pod's
/// `nodeSelector` and `requiredDuringSchedulingIgnoredDuringExecution` node affinity (terms
/// ORed, expressions ANDed, operators In, NotIn, Exists, DoesNotExist, Gt, Lt; `matchFields` on
/// `metadata.name`), where only [`PLATFORM_LABELS`] are evaluated.
///
/// When no current node fits but the pod pins `kubernetes.io/os` and `kubernetes.io/arch` to
/// single values, the pod can only ever run on that platform: the answer is one target built
/// from those values (and a pinned windows-build) with the matcher most nodes use and `nodes`
/// 0. With no nodes at all the answer is [`Candidates::Unknown`].
pub fn candidates(spec: &PodSpec, nodes: &[NodeInfo]) -> Candidates {
    if nodes.is_empty() {
        return Candidates::Unknown;
    }
    let mut counts: HashMap<(&Platform, MatcherKind), usize> = HashMap::new();
    for node in nodes.iter().filter(|node| pod_fits(spec, node)) {
        *counts.entry((&node.platform, node.matcher)).or_default() += 1;
    }
    if counts.is_empty() {
        return match pinned_platform(spec) {
            Some(platform) => Candidates::Known(vec![Target {
                platform,
                matcher: usual_matcher(nodes),
                nodes: 0,
            }]),
            None => Candidates::Unknown,
        };
    }
    let mut targets: Vec<Target> = counts
        .into_iter()
        .map(|((platform, matcher), nodes)| Target {
            platform: platform.clone(),
            matcher,
            nodes,
        })
        .collect();
    targets.sort_by_cached_key(|t| (Reverse(t.nodes), t.platform.to_string(), rank(t.matcher)));
    Candidates::Known(targets)
}

/// Ties in [`usual_matcher`] and in the target order go to the most accepting matcher first,
/// so a tie never produces a denial the other reading would not.
fn rank(kind: MatcherKind) -> u8 {
    match kind {
        MatcherKind::ContainerdOnly => 0,
        MatcherKind::ContainerdStrict => 1,
        MatcherKind::CriO => 2,
    }
}

/// The matcher most nodes use: the one a node created for a pinned platform most likely gets.
fn usual_matcher(nodes: &[NodeInfo]) -> MatcherKind {
    let mut counts: HashMap<MatcherKind, usize> = HashMap::new();
    for node in nodes {
        *counts.entry(node.matcher).or_default() += 1;
    }
    counts
        .into_iter()
        .max_by_key(|&(kind, count)| (count, Reverse(rank(kind))))
        .map_or(MatcherKind::ContainerdOnly, |(kind, _)| kind)
}

fn is_platform_key(key: &str) -> bool {
    PLATFORM_LABELS.contains(&key)
}

fn required_terms(spec: &PodSpec) -> Option<&[NodeSelectorTerm]> {
    spec.affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()
        .map(|selector| selector.node_selector_terms.as_slice())
}

fn pod_fits(spec: &PodSpec, node: &NodeInfo) -> bool {
    let selector_fits = spec.node_selector.iter().flatten().all(|(key, value)| {
        !is_platform_key(key) || node.labels.get(key).is_some_and(|v| v == value)
    });
    // `spec.os.name` does not steer the scheduler by itself, but the kubelet rejects a pod
    // whose os differs from its node's (`PodOSNotSupported`), so such a node never runs it.
    let os_fits = spec
        .os
        .as_ref()
        .is_none_or(|os| os.name.is_empty() || os.name == node.platform.os);
    selector_fits
        && os_fits
        && node
            .taints
            .iter()
            .all(|t| tolerated(t, spec.tolerations.as_deref().unwrap_or_default()))
        && required_terms(spec).is_none_or(|terms| terms.iter().any(|t| term_fits(t, node)))
}

/// `v1.Toleration.ToleratesTaint`: an empty key with `Exists` tolerates everything; an empty
/// effect matches every effect; `Exists` ignores the value, `Equal` (the default) compares it.
fn tolerated(taint: &Taint, tolerations: &[Toleration]) -> bool {
    tolerations.iter().any(|t| {
        let effect = t.effect.as_deref().unwrap_or_default();
        let key = t.key.as_deref().unwrap_or_default();
        if !effect.is_empty() && effect != taint.effect {
            return false;
        }
        if !key.is_empty() && key != taint.key {
            return false;
        }
        match t.operator.as_deref().unwrap_or("Equal") {
            "Exists" => true,
            "Equal" | "" => {
                !key.is_empty()
                    && t.value.as_deref().unwrap_or_default()
                        == taint.value.as_deref().unwrap_or_default()
            }
            _ => false,
        }
    })
}

fn term_fits(term: &NodeSelectorTerm, node: &NodeInfo) -> bool {
    let expressions = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    // A null or empty term selects no node (k8s.io/component-helpers nodeaffinity); a term whose
    // expressions are all on ignored keys is not empty and selects every node.
    if expressions.is_empty() && fields.is_empty() {
        return false;
    }
    expressions
        .iter()
        .filter(|r| is_platform_key(&r.key))
        .all(|r| label_requirement_holds(r, node.labels.get(&r.key).map(String::as_str)))
        && fields
            .iter()
            .all(|r| field_requirement_holds(r, &node.name))
}

/// `labels.Requirement.Matches`: NotIn and DoesNotExist hold for a missing label; Gt and Lt
/// need exactly one integer value and an integer label. An unknown operator never holds (the
/// API server rejects it; the scheduler could not parse it).
fn label_requirement_holds(requirement: &NodeSelectorRequirement, label: Option<&str>) -> bool {
    let values = requirement.values.as_deref().unwrap_or_default();
    let listed = |label: &str| values.iter().any(|v| v == label);
    match requirement.operator.as_str() {
        "In" => label.is_some_and(listed),
        "NotIn" => !label.is_some_and(listed),
        "Exists" => label.is_some(),
        "DoesNotExist" => label.is_none(),
        op @ ("Gt" | "Lt") => {
            let [bound] = values else {
                return false;
            };
            match (
                label.and_then(|l| l.parse::<i64>().ok()),
                bound.parse::<i64>(),
            ) {
                (Some(label), Ok(bound)) if op == "Gt" => label > bound,
                (Some(label), Ok(bound)) => label < bound,
                _ => false,
            }
        }
        _ => false,
    }
}

/// `matchFields` supports `metadata.name` with In and NotIn only (API validation).
fn field_requirement_holds(requirement: &NodeSelectorRequirement, name: &str) -> bool {
    if requirement.key != FIELD_NODE_NAME {
        return false;
    }
    let listed = requirement
        .values
        .iter()
        .flatten()
        .any(|value| value == name);
    match requirement.operator.as_str() {
        "In" => listed,
        "NotIn" => !listed,
        _ => false,
    }
}

/// The platform of a pod that pins os and arch to one value each.
fn pinned_platform(spec: &PodSpec) -> Option<Platform> {
    let os = pinned_value(spec, LABEL_OS)?;
    let arch = pinned_value(spec, LABEL_ARCH)?;
    let build = pinned_value(spec, LABEL_WINDOWS_BUILD);
    Some(platform::node_platform(os, arch, build, None))
}

/// The only non-empty value the pod's constraints allow for `key`, if there is exactly one.
fn pinned_value<'a>(spec: &'a PodSpec, key: &str) -> Option<&'a str> {
    let from_selector = spec
        .node_selector
        .as_ref()
        .and_then(|selector| selector.get(key))
        .map(String::as_str);
    let from_affinity = required_terms(spec).and_then(|terms| values_allowed(terms, key));
    let value = match (from_selector, from_affinity) {
        (Some(value), Some(allowed)) => allowed.contains(value).then_some(value),
        (Some(value), None) => Some(value),
        (None, Some(allowed)) if allowed.len() == 1 => allowed.into_iter().next(),
        (None, _) => None,
    };
    value.filter(|v| !v.is_empty())
}

/// The values of `key` some term allows, or None when a term leaves it open (no `In` on it).
fn values_allowed<'a>(terms: &'a [NodeSelectorTerm], key: &str) -> Option<BTreeSet<&'a str>> {
    let mut union = BTreeSet::new();
    for term in terms {
        let expressions = term.match_expressions.as_deref().unwrap_or_default();
        if expressions.is_empty() && term.match_fields.as_deref().unwrap_or_default().is_empty() {
            continue;
        }
        let mut allowed: Option<BTreeSet<&str>> = None;
        let mut excluded = BTreeSet::new();
        for requirement in expressions.iter().filter(|r| r.key == key) {
            let values = requirement.values.iter().flatten().map(String::as_str);
            match requirement.operator.as_str() {
                "In" => {
                    let these: BTreeSet<&str> = values.collect();
                    allowed = Some(match allowed {
                        None => these,
                        Some(before) => before.intersection(&these).copied().collect(),
                    });
                }
                "NotIn" => excluded.extend(values),
                "DoesNotExist" => allowed = Some(BTreeSet::new()),
                _ => {}
            }
        }
        union.extend(allowed?.difference(&excluded));
    }
    Some(union)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use MatcherKind::{ContainerdOnly, ContainerdStrict, CriO};

    fn node(name: &str, os: &str, arch: &str, matcher: MatcherKind) -> NodeInfo {
        let labels = BTreeMap::from([
            (LABEL_OS.to_owned(), os.to_owned()),
            (LABEL_ARCH.to_owned(), arch.to_owned()),
            ("node-pool".to_owned(), "general".to_owned()),
        ]);
        NodeInfo {
            taints: Vec::new(),
            name: name.to_owned(),
            labels,
            platform: platform::node_platform(os, arch, None, None),
            matcher,
        }
    }

    fn windows_node(name: &str, build: &str) -> NodeInfo {
        let mut node = node(name, "windows", "amd64", ContainerdOnly);
        node.labels
            .insert(LABEL_WINDOWS_BUILD.to_owned(), build.to_owned());
        node.platform = platform::node_platform("windows", "amd64", Some(build), None);
        node
    }

    /// 3 amd64 (containerd 1.7), 2 arm64 (containerd 2.1), 1 Windows ltsc2022.
    fn cluster() -> Vec<NodeInfo> {
        vec![
            node("a1", "linux", "amd64", ContainerdOnly),
            node("a2", "linux", "amd64", ContainerdOnly),
            node("a3", "linux", "amd64", ContainerdOnly),
            node("r1", "linux", "arm64", ContainerdStrict),
            node("r2", "linux", "arm64", ContainerdStrict),
            windows_node("w1", "10.0.20348"),
        ]
    }

    fn pod(fields: serde_json::Value) -> PodSpec {
        let mut spec = json!({"containers": [{"name": "app", "image": "app"}]});
        if let (Some(spec), Some(fields)) = (spec.as_object_mut(), fields.as_object()) {
            spec.extend(fields.clone());
        }
        serde_json::from_value(spec).unwrap_or_else(|e| panic!("pod spec: {e}"))
    }

    /// A pod with required node affinity made of `terms`.
    fn affinity(terms: serde_json::Value) -> PodSpec {
        pod(json!({"affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}
        }}}))
    }

    /// `(platform, matcher, nodes)` in order, platforms as displayed.
    fn summary(candidates: &Candidates) -> Option<Vec<(String, MatcherKind, usize)>> {
        match candidates {
            Candidates::Known(targets) => Some(
                targets
                    .iter()
                    .map(|t| (t.platform.to_string(), t.matcher, t.nodes))
                    .collect(),
            ),
            Candidates::Unknown => None,
        }
    }

    /// (platform as displayed, matcher, node count).
    type Row = (&'static str, MatcherKind, usize);

    const AMD64: Row = ("linux/amd64", ContainerdOnly, 3);
    const ARM64: Row = ("linux/arm64/v8", ContainerdStrict, 2);
    const WIN: Row = ("windows/amd64 10.0.20348", ContainerdOnly, 1);

    fn tainted_windows_cluster() -> Vec<NodeInfo> {
        let mut nodes = cluster();
        for n in nodes.iter_mut().filter(|n| n.platform.os == "windows") {
            n.taints = vec![Taint {
                key: "os".into(),
                value: Some("windows".into()),
                effect: "NoSchedule".into(),
                ..Taint::default()
            }];
        }
        nodes
    }

    #[test]
    fn taints_and_pod_os_keep_pods_off_nodes_they_cannot_run_on() {
        let linux = vec![
            ("linux/amd64".to_string(), ContainerdOnly, 3),
            ("linux/arm64/v8".to_string(), ContainerdStrict, 2),
        ];
        let cases: Vec<(&str, PodSpec, Vec<NodeInfo>, usize)> = vec![
            (
                "untainted windows pool counts",
                pod(json!({})),
                cluster(),
                3,
            ),
            (
                "tainted windows pool is skipped",
                pod(json!({})),
                tainted_windows_cluster(),
                2,
            ),
            (
                "a matching toleration lets the pod in",
                pod(
                    json!({"tolerations": [{"key": "os", "operator": "Equal", "value": "windows", "effect": "NoSchedule"}]}),
                ),
                tainted_windows_cluster(),
                3,
            ),
            (
                "a toleration with the wrong value does not",
                pod(
                    json!({"tolerations": [{"key": "os", "value": "linux", "effect": "NoSchedule"}]}),
                ),
                tainted_windows_cluster(),
                2,
            ),
            (
                "Exists with no key tolerates every taint",
                pod(json!({"tolerations": [{"operator": "Exists"}]})),
                tainted_windows_cluster(),
                3,
            ),
            (
                "a toleration for another effect does not",
                pod(
                    json!({"tolerations": [{"key": "os", "operator": "Exists", "effect": "NoExecute"}]}),
                ),
                tainted_windows_cluster(),
                2,
            ),
            (
                "spec.os linux",
                pod(json!({"os": {"name": "linux"}})),
                cluster(),
                2,
            ),
        ];
        for (name, spec, nodes, want) in cases {
            let got = summary(&candidates(&spec, &nodes)).unwrap_or_default();
            assert_eq!(got.len(), want, "{name}: {got:?}");
            if want == 2 {
                assert_eq!(got, linux, "{name}");
            }
        }
    }

    #[test]
    fn candidates_follow_node_selector_and_required_affinity_on_platform_keys() {
        let cases: Vec<(&str, PodSpec, Vec<Row>)> = vec![
            ("no constraints", pod(json!({})), vec![AMD64, ARM64, WIN]),
            (
                "nodeSelector arch",
                pod(json!({"nodeSelector": {LABEL_ARCH: "arm64"}})),
                vec![ARM64],
            ),
            (
                "nodeSelector on other keys is ignored",
                pod(
                    json!({"nodeSelector": {"node-pool": "gpu", "topology.kubernetes.io/zone": "b"}}),
                ),
                vec![AMD64, ARM64, WIN],
            ),
            (
                "nodeSelector os and other key",
                pod(json!({"nodeSelector": {LABEL_OS: "linux", "node-pool": "gpu"}})),
                vec![AMD64, ARM64],
            ),
            (
                "In",
                affinity(json!([{"matchExpressions": [
                    {"key": LABEL_ARCH, "operator": "In", "values": ["arm64", "s390x"]}
                ]}])),
                vec![ARM64],
            ),
            (
                "NotIn",
                affinity(json!([{"matchExpressions": [
                    {"key": LABEL_ARCH, "operator": "NotIn", "values": ["arm64"]}
                ]}])),
                vec![AMD64, WIN],
            ),
            (
                "Exists",
                affinity(json!([{"matchExpressions": [
                    {"key": LABEL_WINDOWS_BUILD, "operator": "Exists"}
                ]}])),
                vec![WIN],
            ),
            (
                "DoesNotExist",
                affinity(json!([{"matchExpressions": [
                    {"key": LABEL_WINDOWS_BUILD, "operator": "DoesNotExist"}
                ]}])),
                vec![AMD64, ARM64],
            ),
            (
                "expressions of a term are ANDed",
                affinity(json!([{"matchExpressions": [
                    {"key": LABEL_OS, "operator": "In", "values": ["linux"]},
                    {"key": LABEL_ARCH, "operator": "NotIn", "values": ["amd64"]}
                ]}])),
                vec![ARM64],
            ),
            (
                "terms are ORed",
                affinity(json!([
                    {"matchExpressions": [{"key": LABEL_ARCH, "operator": "In", "values": ["arm64"]}]},
                    {"matchExpressions": [{"key": LABEL_OS, "operator": "In", "values": ["windows"]}]}
                ])),
                vec![ARM64, WIN],
            ),
            (
                "expressions on other keys are ignored",
                affinity(json!([{"matchExpressions": [
                    {"key": "node-pool", "operator": "In", "values": ["gpu"]},
                    {"key": LABEL_OS, "operator": "In", "values": ["linux"]}
                ]}])),
                vec![AMD64, ARM64],
            ),
            (
                "a term only on other keys selects every node",
                affinity(json!([{"matchExpressions": [
                    {"key": "node-pool", "operator": "DoesNotExist"}
                ]}])),
                vec![AMD64, ARM64, WIN],
            ),
            (
                "an empty term selects no node, the other term still does",
                affinity(json!([
                    {},
                    {"matchExpressions": [{"key": LABEL_ARCH, "operator": "In", "values": ["arm64"]}]}
                ])),
                vec![ARM64],
            ),
            (
                "nodeSelector and affinity are ANDed",
                pod(json!({
                    "nodeSelector": {LABEL_OS: "linux"},
                    "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [{"matchExpressions": [
                            {"key": LABEL_ARCH, "operator": "In", "values": ["amd64"]}
                        ]}]
                    }}}
                })),
                vec![AMD64],
            ),
            (
                "matchFields metadata.name In (DaemonSet pods)",
                affinity(json!([{"matchFields": [
                    {"key": "metadata.name", "operator": "In", "values": ["r2"]}
                ]}])),
                vec![("linux/arm64/v8", ContainerdStrict, 1)],
            ),
            (
                "matchFields metadata.name NotIn",
                affinity(json!([{"matchFields": [
                    {"key": "metadata.name", "operator": "NotIn", "values": ["a1", "a2", "w1"]}
                ]}])),
                vec![ARM64, ("linux/amd64", ContainerdOnly, 1)],
            ),
            (
                "preferred affinity is ignored",
                pod(json!({"affinity": {"nodeAffinity": {
                    "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 1, "preference": {
                        "matchExpressions": [{"key": LABEL_ARCH, "operator": "In", "values": ["arm64"]}]
                    }}]
                }}})),
                vec![AMD64, ARM64, WIN],
            ),
        ];
        let nodes = cluster();
        for (name, spec, want) in cases {
            let want: Vec<_> = want
                .into_iter()
                .map(|(platform, matcher, n)| (platform.to_owned(), matcher, n))
                .collect();
            assert_eq!(summary(&candidates(&spec, &nodes)), Some(want), "{name}");
        }
    }

    #[test]
    fn gt_and_lt_compare_integer_labels_only() {
        // Real builds are dotted, so Gt and Lt never select a real Windows node; an integer
        // label shows the comparison itself.
        let nodes = vec![
            windows_node("w-int", "20348"),
            windows_node("w-dotted", "10.0.20348"),
        ];
        let gt = |bound: &str| {
            affinity(json!([{"matchExpressions": [
                {"key": LABEL_WINDOWS_BUILD, "operator": "Gt", "values": [bound]}
            ]}]))
        };
        let lt = |bound: &str| {
            affinity(json!([{"matchExpressions": [
                {"key": LABEL_WINDOWS_BUILD, "operator": "Lt", "values": [bound]}
            ]}]))
        };
        let one = Some(vec![("windows/amd64".to_owned(), ContainerdOnly, 1)]);
        assert_eq!(summary(&candidates(&gt("20000"), &nodes)), one);
        assert_eq!(summary(&candidates(&lt("30000"), &nodes)), one);
        assert_eq!(summary(&candidates(&gt("20348"), &nodes)), None);
        assert_eq!(summary(&candidates(&gt("x"), &nodes)), None);
        let two_bounds = affinity(json!([{"matchExpressions": [
            {"key": LABEL_WINDOWS_BUILD, "operator": "Gt", "values": ["1", "2"]}
        ]}]));
        assert_eq!(summary(&candidates(&two_bounds, &nodes)), None);
    }

    #[test]
    fn a_pod_pinned_to_an_absent_platform_gets_that_platform_with_the_usual_matcher() {
        let cases: Vec<(&str, PodSpec, Option<&str>)> = vec![
            (
                "nodeSelector os and arch",
                pod(json!({"nodeSelector": {LABEL_OS: "linux", LABEL_ARCH: "s390x"}})),
                Some("linux/s390x"),
            ),
            (
                "arm gets the node default variant",
                pod(json!({"nodeSelector": {LABEL_OS: "linux", LABEL_ARCH: "arm"}})),
                Some("linux/arm/v7"),
            ),
            (
                "affinity In with one value and nodeSelector",
                pod(json!({
                    "nodeSelector": {LABEL_OS: "linux"},
                    "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [{"matchExpressions": [
                            {"key": LABEL_ARCH, "operator": "In", "values": ["riscv64"]}
                        ]}]
                    }}}
                })),
                Some("linux/riscv64"),
            ),
            (
                "In narrowed to one value by NotIn, across two terms that agree",
                affinity(json!([
                    {"matchExpressions": [
                        {"key": LABEL_OS, "operator": "In", "values": ["linux"]},
                        {"key": LABEL_ARCH, "operator": "In", "values": ["ppc64le", "s390x"]},
                        {"key": LABEL_ARCH, "operator": "NotIn", "values": ["ppc64le"]}
                    ]},
                    {"matchExpressions": [
                        {"key": LABEL_OS, "operator": "In", "values": ["linux"]},
                        {"key": LABEL_ARCH, "operator": "In", "values": ["s390x"]}
                    ]}
                ])),
                Some("linux/s390x"),
            ),
            (
                "windows with a pinned build",
                pod(json!({"nodeSelector": {
                    LABEL_OS: "windows", LABEL_ARCH: "amd64", LABEL_WINDOWS_BUILD: "10.0.26100"
                }})),
                Some("windows/amd64 10.0.26100"),
            ),
            (
                "two arches allowed: not pinned",
                affinity(json!([{"matchExpressions": [
                    {"key": LABEL_OS, "operator": "In", "values": ["linux"]},
                    {"key": LABEL_ARCH, "operator": "In", "values": ["ppc64le", "s390x"]}
                ]}])),
                None,
            ),
            (
                "terms allow different arches: not pinned",
                affinity(json!([
                    {"matchExpressions": [{"key": LABEL_OS, "operator": "In", "values": ["linux"]},
                                          {"key": LABEL_ARCH, "operator": "In", "values": ["s390x"]}]},
                    {"matchExpressions": [{"key": LABEL_OS, "operator": "In", "values": ["linux"]},
                                          {"key": LABEL_ARCH, "operator": "In", "values": ["ppc64le"]}]}
                ])),
                None,
            ),
            (
                "arch pinned, os open: not pinned",
                pod(json!({"nodeSelector": {LABEL_ARCH: "s390x"}})),
                None,
            ),
            (
                "nodeSelector and affinity disagree: not pinned",
                pod(json!({
                    "nodeSelector": {LABEL_OS: "linux", LABEL_ARCH: "s390x"},
                    "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [{"matchExpressions": [
                            {"key": LABEL_ARCH, "operator": "In", "values": ["ppc64le"]}
                        ]}]
                    }}}
                })),
                None,
            ),
            (
                "empty values do not pin",
                pod(json!({"nodeSelector": {LABEL_OS: "linux", LABEL_ARCH: ""}})),
                None,
            ),
        ];
        // Two of three nodes use containerd 2.1, so a new node most likely does too.
        let nodes = vec![
            node("a1", "linux", "amd64", ContainerdOnly),
            node("r1", "linux", "arm64", ContainerdStrict),
            node("r2", "linux", "arm64", ContainerdStrict),
        ];
        for (name, spec, want) in cases {
            let want = want.map(|platform| vec![(platform.to_owned(), ContainerdStrict, 0)]);
            assert_eq!(summary(&candidates(&spec, &nodes)), want, "{name}");
        }
    }

    #[test]
    fn a_pinned_platform_present_in_the_cluster_gets_its_nodes() {
        let spec = pod(json!({"nodeSelector": {LABEL_OS: "linux", LABEL_ARCH: "arm64"}}));
        assert_eq!(
            summary(&candidates(&spec, &cluster())),
            Some(vec![(ARM64.0.to_owned(), ARM64.1, 2)])
        );
    }

    #[test]
    fn no_nodes_means_unknown_even_for_a_pinned_pod() {
        let spec = pod(json!({"nodeSelector": {LABEL_OS: "linux", LABEL_ARCH: "amd64"}}));
        assert_eq!(candidates(&spec, &[]), Candidates::Unknown);
        assert_eq!(candidates(&pod(json!({})), &[]), Candidates::Unknown);
    }

    #[test]
    fn usual_matcher_tie_goes_to_the_most_accepting() {
        let nodes = vec![
            node("r1", "linux", "arm64", ContainerdStrict),
            node("a1", "linux", "amd64", ContainerdOnly),
            node("c1", "linux", "amd64", CriO),
        ];
        assert_eq!(usual_matcher(&nodes), ContainerdOnly);
        assert_eq!(usual_matcher(&nodes[..1]), ContainerdStrict);
    }

    #[test]
    fn same_platform_with_two_matchers_gives_two_targets_ordered_by_count_then_platform() {
        let nodes = vec![
            node("s1", "linux", "s390x", ContainerdOnly),
            node("a1", "linux", "amd64", ContainerdStrict),
            node("a2", "linux", "amd64", ContainerdOnly),
            node("a3", "linux", "amd64", ContainerdStrict),
            node("p1", "linux", "ppc64le", CriO),
        ];
        assert_eq!(
            summary(&candidates(&pod(json!({})), &nodes)),
            Some(vec![
                ("linux/amd64".to_owned(), ContainerdStrict, 2),
                ("linux/amd64".to_owned(), ContainerdOnly, 1),
                ("linux/ppc64le".to_owned(), CriO, 1),
                ("linux/s390x".to_owned(), ContainerdOnly, 1),
            ])
        );
    }
}
