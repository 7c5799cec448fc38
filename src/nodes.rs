//! The cluster's nodes as [`crate::placement`] sees them: kept current by a watch on the
//! Kubernetes API, or fixed by configuration.
//!
//! RBAC: the watch needs `list` and `watch` on `nodes` (core group, cluster-scoped), i.e. a
//! ClusterRole rule `{apiGroups: [""], resources: ["nodes"], verbs: ["list", "watch"]}`. Without
//! it the watch keeps retrying with backoff, the set stays empty and [`NodeSet::is_synced`]
//! false, which callers treat as "no node information".

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Node;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt as _;
use kube::Api;

use crate::placement::{NodeInfo, LABEL_ARCH, LABEL_OS, LABEL_WINDOWS_BUILD, PLATFORM_LABELS};
use crate::platform::{self, MatcherKind, Platform};

/// The cluster's nodes, kept current by a watch or fixed by configuration. Clones share the
/// same state; the watch stops when the last clone is dropped.
#[derive(Clone)]
pub struct NodeSet {
    state: Arc<State>,
    _watch: Option<Arc<AbortOnDrop>>,
}

#[derive(Default)]
struct State {
    /// Sorted by name; replaced as a whole on change so a reader only clones an `Arc`.
    nodes: RwLock<Arc<Vec<NodeInfo>>>,
    synced: AtomicBool,
}

impl State {
    fn publish(&self, nodes: &BTreeMap<String, NodeInfo>) {
        let nodes = Arc::new(nodes.values().cloned().collect::<Vec<_>>());
        *self
            .nodes
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = nodes;
    }
}

struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl NodeSet {
    /// Fixed platforms (configuration `platforms.nodes: ["linux/amd64", "linux/arm64"]`), all
    /// with `matcher`. Each becomes one node named after its platform, labelled as the kubelet
    /// would label it, so node selectors on os and arch work; a platform without a variant gets
    /// the node default (arm64 -> v8, arm -> v7), as for watched nodes. Always synced.
    pub fn fixed(platforms: Vec<Platform>, matcher: MatcherKind) -> NodeSet {
        let mut nodes: Vec<NodeInfo> = platforms
            .into_iter()
            .map(|configured| fixed_node(configured, matcher))
            .collect();
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        nodes.dedup_by(|a, b| a.name == b.name);
        NodeSet {
            state: Arc::new(State {
                nodes: RwLock::new(Arc::new(nodes)),
                synced: AtomicBool::new(true),
            }),
            _watch: None,
        }
    }

    /// Starts a watch on Nodes (list, then watch; on any error it retries with kube's default
    /// backoff, 0.8 s doubling to 30 s, relisting when the API says its resourceVersion is too
    /// old) in a task spawned on the current Tokio runtime. `matcher_override` replaces the
    /// per-node choice from `status.nodeInfo.containerRuntimeVersion`, for clusters whose
    /// containerd 2.1+ nodes pull locally (`Only`). Needs the RBAC in the module docs.
    pub fn watch(client: kube::Client, matcher_override: Option<MatcherKind>) -> NodeSet {
        let state = Arc::new(State::default());
        let task = tokio::spawn(maintain(
            Api::<Node>::all(client),
            matcher_override,
            state.clone(),
        ));
        NodeSet {
            state,
            _watch: Some(Arc::new(AbortOnDrop(task.abort_handle()))),
        }
    }

    /// The current nodes, sorted by name; empty until the first list completed. While the API
    /// is unreachable this is the last state seen. Cheap: clones an `Arc`.
    pub fn snapshot(&self) -> Arc<Vec<NodeInfo>> {
        self.state
            .nodes
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Whether a first complete list of nodes has been seen (stays true through later outages).
    pub fn is_synced(&self) -> bool {
        self.state.synced.load(Ordering::Acquire)
    }
}

fn fixed_node(configured: Platform, matcher: MatcherKind) -> NodeInfo {
    let mut platform = platform::node_platform(
        &configured.os,
        &configured.architecture,
        configured.os_version.as_deref(),
        None,
    );
    // `linux/arm64/v8` normalizes to no variant: keep the node default then.
    if let Some(variant) = configured.normalized().variant {
        platform.variant = Some(variant);
    }
    if configured.os_version.is_some() && platform.os_version.is_none() {
        platform.os_version = configured.os_version;
    }
    platform.os_features = configured.os_features;
    let mut labels = BTreeMap::from([
        (LABEL_OS.to_owned(), platform.os.clone()),
        (LABEL_ARCH.to_owned(), platform.architecture.clone()),
    ]);
    if let Some(build) = &platform.os_version {
        labels.insert(LABEL_WINDOWS_BUILD.to_owned(), build.clone());
    }
    NodeInfo {
        taints: Vec::new(),
        name: platform.to_string(),
        labels,
        platform,
        matcher,
    }
}

/// What placement needs from a Node: its name, the platform labels (others are dropped, since
/// placement never reads them and a smaller snapshot is cheaper to rebuild), the runtime's
/// `DefaultSpec()` and matcher. None when neither the labels nor `status.nodeInfo` tell the os
/// and architecture (the kubelet sets both at registration, so this is a node being born):
/// such a node cannot be judged and is left out rather than guessed.
pub fn node_info(node: &Node, matcher_override: Option<MatcherKind>) -> Option<NodeInfo> {
    let name = node.metadata.name.as_deref().filter(|n| !n.is_empty())?;
    let labels = node.metadata.labels.as_ref();
    let label = |key: &str| {
        labels
            .and_then(|labels| labels.get(key))
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    };
    let info = node.status.as_ref().and_then(|s| s.node_info.as_ref());
    let reported = |field: fn(&k8s_openapi::api::core::v1::NodeSystemInfo) -> &String| {
        info.map(|i| field(i).as_str()).filter(|v| !v.is_empty())
    };
    let os = label(LABEL_OS).or_else(|| reported(|i| &i.operating_system))?;
    let arch = label(LABEL_ARCH).or_else(|| reported(|i| &i.architecture))?;
    let build = label(LABEL_WINDOWS_BUILD);
    let mut platform = platform::node_platform(os, arch, build, reported(|i| &i.kernel_version));
    if platform.os == "windows" && platform.os_version.is_none() {
        // A Windows kernelVersion is the build (10.0.20348.2655); failing that the osImage
        // may name the LTSC release.
        platform = platform::node_platform(os, arch, build, reported(|i| &i.os_image));
    }
    let matcher = matcher_override.unwrap_or_else(|| {
        platform::matcher_for_runtime(reported(|i| &i.container_runtime_version).unwrap_or(""))
    });
    let labels = PLATFORM_LABELS
        .iter()
        .filter_map(|key| label(key).map(|v| ((*key).to_owned(), v.to_owned())))
        .collect();
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .into_iter()
        .flatten()
        // PreferNoSchedule only steers; it never keeps a pod off a node.
        .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
        .cloned()
        .collect();
    Some(NodeInfo {
        taints,
        name: name.to_owned(),
        labels,
        platform,
        matcher,
    })
}

/// How long to wait before starting over if the watch stream ever ends (it is not meant to:
/// kube's watcher retries errors itself).
const RESTART_DELAY: Duration = Duration::from_secs(5);

async fn maintain(api: Api<Node>, matcher_override: Option<MatcherKind>, state: Arc<State>) {
    loop {
        follow(&api, matcher_override, &state).await;
        tracing::error!("node watch ended unexpectedly; restarting it");
        tokio::time::sleep(RESTART_DELAY).await;
    }
}

/// Applies the watch's events to `state`. A (re)list is buffered and swapped in whole at
/// `InitDone`, so readers keep the previous snapshot while a relist is under way, and nodes
/// deleted while the watch was down disappear then.
async fn follow(api: &Api<Node>, matcher_override: Option<MatcherKind>, state: &State) {
    let mut stream = watcher::watcher(api.clone(), watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut current: BTreeMap<String, NodeInfo> = BTreeMap::new();
    let mut relisting: Option<BTreeMap<String, NodeInfo>> = None;
    while let Some(item) = stream.next().await {
        match item {
            Ok(Event::Init) => relisting = Some(BTreeMap::new()),
            Ok(Event::InitApply(node)) => {
                if let Some(info) = node_info(&node, matcher_override) {
                    relisting
                        .get_or_insert_with(BTreeMap::new)
                        .insert(info.name.clone(), info);
                }
            }
            Ok(Event::InitDone) => {
                current = relisting.take().unwrap_or_default();
                state.publish(&current);
                if !state.synced.swap(true, Ordering::AcqRel) {
                    tracing::info!(nodes = current.len(), "node list synced");
                } else {
                    tracing::debug!(nodes = current.len(), "node list resynced");
                }
            }
            Ok(Event::Apply(node)) => {
                let Some(info) = node_info(&node, matcher_override) else {
                    continue;
                };
                // Status heartbeats and unrelated label changes leave the NodeInfo as it was:
                // no need to rebuild the snapshot.
                if current.get(&info.name) != Some(&info) {
                    current.insert(info.name.clone(), info);
                    state.publish(&current);
                }
            }
            Ok(Event::Delete(node)) => {
                let removed = node
                    .metadata
                    .name
                    .as_deref()
                    .and_then(|name| current.remove(name));
                if removed.is_some() {
                    state.publish(&current);
                }
            }
            Err(error) => {
                tracing::warn!(%error, "node watch failed; keeping the last known nodes and retrying");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use MatcherKind::{ContainerdOnly, ContainerdStrict, CriO};

    fn node(value: serde_json::Value) -> Node {
        serde_json::from_value(value).unwrap_or_else(|e| panic!("node: {e}"))
    }

    fn labelled(labels: serde_json::Value, node_info: serde_json::Value) -> Node {
        node(json!({
            "metadata": {"name": "n", "labels": labels},
            "status": {"nodeInfo": node_info},
        }))
    }

    fn system_info(fields: serde_json::Value) -> serde_json::Value {
        let mut info = json!({
            "architecture": "", "bootID": "", "containerRuntimeVersion": "", "kernelVersion": "",
            "kubeProxyVersion": "", "kubeletVersion": "", "machineID": "", "operatingSystem": "",
            "osImage": "", "systemUUID": "",
        });
        if let (Some(info), Some(fields)) = (info.as_object_mut(), fields.as_object()) {
            info.extend(fields.clone());
        }
        info
    }

    fn p(spec: &str) -> Platform {
        Platform::parse(spec).unwrap_or_else(|e| panic!("{spec}: {e}"))
    }

    #[test]
    fn converts_nodes_to_platform_and_matcher() {
        let cases = [
            (
                "labels and containerd 1.7",
                labelled(
                    json!({LABEL_OS: "linux", LABEL_ARCH: "amd64", "pool": "a"}),
                    system_info(json!({"containerRuntimeVersion": "containerd://1.7.22"})),
                ),
                "linux/amd64",
                ContainerdOnly,
            ),
            (
                "arm64 gets v8, containerd 2.1 is strict",
                labelled(
                    json!({LABEL_OS: "linux", LABEL_ARCH: "arm64"}),
                    system_info(json!({"containerRuntimeVersion": "containerd://2.1.3"})),
                ),
                "linux/arm64/v8",
                ContainerdStrict,
            ),
            (
                "labels win over nodeInfo",
                labelled(
                    json!({LABEL_OS: "linux", LABEL_ARCH: "arm64"}),
                    system_info(json!({"operatingSystem": "linux", "architecture": "amd64",
                                       "containerRuntimeVersion": "cri-o://1.30.2"})),
                ),
                "linux/arm64/v8",
                CriO,
            ),
            (
                "nodeInfo when labels are missing",
                labelled(
                    json!({}),
                    system_info(json!({"operatingSystem": "linux", "architecture": "s390x"})),
                ),
                "linux/s390x",
                ContainerdOnly,
            ),
            (
                "windows build from the label",
                labelled(
                    json!({LABEL_OS: "windows", LABEL_ARCH: "amd64", LABEL_WINDOWS_BUILD: "10.0.17763"}),
                    system_info(json!({"kernelVersion": "10.0.20348.2655"})),
                ),
                "windows/amd64 10.0.17763",
                ContainerdOnly,
            ),
            (
                "windows build from kernelVersion",
                labelled(
                    json!({LABEL_OS: "windows", LABEL_ARCH: "amd64"}),
                    system_info(json!({"kernelVersion": "10.0.26100.1742",
                                       "osImage": "Windows Server 2022 Datacenter"})),
                ),
                "windows/amd64 10.0.26100",
                ContainerdOnly,
            ),
            (
                "windows build from osImage",
                labelled(
                    json!({LABEL_OS: "windows", LABEL_ARCH: "amd64"}),
                    system_info(json!({"kernelVersion": "",
                                       "osImage": "Windows Server 2022 Datacenter"})),
                ),
                "windows/amd64 10.0.20348",
                ContainerdOnly,
            ),
            (
                "no nodeInfo at all",
                node(
                    json!({"metadata": {"name": "n", "labels": {LABEL_OS: "linux", LABEL_ARCH: "arm"}}}),
                ),
                "linux/arm/v7",
                ContainerdOnly,
            ),
        ];
        for (name, node, platform, matcher) in cases {
            let info = node_info(&node, None).unwrap_or_else(|| panic!("{name}: no NodeInfo"));
            assert_eq!(
                (info.platform.to_string(), info.matcher),
                (platform.to_owned(), matcher),
                "{name}"
            );
            assert_eq!(info.name, "n", "{name}");
        }
    }

    #[test]
    fn keeps_only_platform_labels() {
        let node = labelled(
            json!({LABEL_OS: "windows", LABEL_ARCH: "amd64", LABEL_WINDOWS_BUILD: "10.0.20348",
                   "pool": "win", "kubernetes.io/hostname": "n"}),
            system_info(json!({})),
        );
        let info = node_info(&node, None).expect("info");
        let mut want = PLATFORM_LABELS.to_vec();
        want.sort_unstable();
        assert_eq!(info.labels.keys().collect::<Vec<_>>(), want);
    }

    #[test]
    fn override_replaces_the_runtime_choice() {
        let node = labelled(
            json!({LABEL_OS: "linux", LABEL_ARCH: "amd64"}),
            system_info(json!({"containerRuntimeVersion": "containerd://2.1.0"})),
        );
        assert_eq!(
            node_info(&node, Some(ContainerdOnly)).map(|i| i.matcher),
            Some(ContainerdOnly)
        );
        assert_eq!(
            node_info(&node, None).map(|i| i.matcher),
            Some(ContainerdStrict)
        );
    }

    #[test]
    fn leaves_out_nodes_without_os_or_arch() {
        let no_arch = labelled(json!({LABEL_OS: "linux"}), system_info(json!({})));
        let no_os = labelled(json!({LABEL_ARCH: "amd64"}), system_info(json!({})));
        let no_name =
            node(json!({"metadata": {"labels": {LABEL_OS: "linux", LABEL_ARCH: "amd64"}}}));
        assert_eq!(node_info(&no_arch, None), None);
        assert_eq!(node_info(&no_os, None), None);
        assert_eq!(node_info(&no_name, None), None);
    }

    #[test]
    fn fixed_platforms_become_labelled_nodes_with_node_default_variants() {
        let set = NodeSet::fixed(
            vec![
                p("linux/arm64/v8"),
                p("linux/amd64"),
                p("linux/arm/v6"),
                p("windows(10.0.20348)/amd64"),
                p("linux/amd64"),
            ],
            ContainerdStrict,
        );
        assert!(set.is_synced());
        let nodes = set.snapshot();
        let got: Vec<(String, String, MatcherKind)> = nodes
            .iter()
            .map(|n| (n.name.clone(), n.platform.to_string(), n.matcher))
            .collect();
        assert_eq!(
            got,
            [
                ("linux/amd64", "linux/amd64"),
                ("linux/arm/v6", "linux/arm/v6"),
                ("linux/arm64/v8", "linux/arm64/v8"),
                ("windows/amd64 10.0.20348", "windows/amd64 10.0.20348"),
            ]
            .map(|(n, p)| (n.to_owned(), p.to_owned(), ContainerdStrict))
        );
        let windows = &nodes[3];
        assert_eq!(
            windows.labels,
            BTreeMap::from([
                (LABEL_ARCH.to_owned(), "amd64".to_owned()),
                (LABEL_OS.to_owned(), "windows".to_owned()),
                (LABEL_WINDOWS_BUILD.to_owned(), "10.0.20348".to_owned()),
            ])
        );
    }
}
