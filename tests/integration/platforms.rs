//! The platform check end to end in process: real registry holding indexes and single
//! manifests, nodes from the fake API server (watched) or from configuration, and reviews
//! through `Admission::review`.

use crate::common::apiserver::FakeApiServer;
use crate::common::inprocess::{self, check};
use crate::common::review::Workload;
use crate::common::{
    eventually, linux_node, Fixtures, IndexFlavor, Platform, RegistryAuth, TestRegistry,
};
use pullcheck::admission::Admission;
use pullcheck::nodes::NodeSet;
use pullcheck::platform::{self, MatcherKind};
use serde_json::{json, Value};
use std::time::Duration;

fn checker(registry: &TestRegistry, nodes: NodeSet) -> Admission {
    inprocess::admission(inprocess::engine(registry, Duration::from_secs(5)).with_nodes(nodes))
}

fn fixed(platforms: &[&str], matcher: MatcherKind) -> NodeSet {
    NodeSet::fixed(
        platforms
            .iter()
            .map(|p| platform::Platform::parse(p).expect("platform"))
            .collect(),
        matcher,
    )
}

fn pod(image: &str, extra: Value) -> Vec<u8> {
    let mut spec =
        json!({"containers": [{"name": "app", "image": image, "imagePullPolicy": "IfNotPresent"}]});
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    inprocess::review(Workload::Pod, "prod", spec)
}

#[tokio::test]
async fn denies_an_index_without_any_platform_the_pod_can_land_on() {
    let registry = TestRegistry::start(RegistryAuth::None).await;
    Fixtures::seed(&registry).await;
    let checker = checker(
        &registry,
        fixed(&["linux/amd64"], MatcherKind::ContainerdOnly),
    );

    let multi = check(
        &checker,
        pod(&registry.image(Fixtures::MULTI, "v1"), json!({})),
    )
    .await;
    assert!(
        multi.allowed && multi.warnings.is_empty(),
        "{} {:?}",
        multi.message,
        multi.warnings
    );
    let list = check(
        &checker,
        pod(&registry.image(Fixtures::LIST, "v1"), json!({})),
    )
    .await;
    assert!(
        list.allowed && list.warnings.is_empty(),
        "{:?}",
        list.warnings
    );

    let arm = check(
        &checker,
        pod(&registry.image(Fixtures::ARM_ONLY, "v1"), json!({})),
    )
    .await;
    assert!(!arm.allowed);
    for want in [
        "no manifest for linux/amd64 (1 node)",
        "which has linux/arm64",
        "no match for platform in manifest",
        "--platform linux/amd64,linux/arm64",
    ] {
        assert!(arm.message.contains(want), "{} lacks {want}", arm.message);
    }
}

#[tokio::test]
async fn follows_node_selectors_and_warns_when_only_some_nodes_can_pull() {
    let registry = TestRegistry::start(RegistryAuth::None).await;
    Fixtures::seed(&registry).await;
    let api = FakeApiServer::start();
    for (name, arch, runtime) in [
        ("amd-1", "amd64", "containerd://1.7.22"),
        ("amd-2", "amd64", "containerd://1.7.22"),
        ("arm-1", "arm64", "containerd://2.1.1"),
    ] {
        api.put(linux_node(name, arch, runtime));
    }
    let nodes = NodeSet::watch(api.client().await, None);
    eventually(Duration::from_secs(2), async || {
        nodes.is_synced() && nodes.snapshot().len() == 3
    })
    .await;
    assert_eq!(nodes.snapshot().len(), 3);
    let checker = checker(&registry, nodes);
    let arm_only = registry.image(Fixtures::ARM_ONLY, "v1");

    let partial = check(&checker, pod(&arm_only, json!({}))).await;
    assert!(
        partial.allowed,
        "some nodes can pull it: {}",
        partial.message
    );
    let warning = partial.warnings.join("\n");
    assert!(
        warning.contains("no manifest for linux/amd64 (2 nodes), only for linux/arm64/v8 (1 node)"),
        "{warning}"
    );
    assert!(
        warning.contains("nodeSelector on kubernetes.io/arch"),
        "{warning}"
    );

    let pinned_arm = check(
        &checker,
        pod(
            &arm_only,
            json!({"nodeSelector": {"kubernetes.io/arch": "arm64"}}),
        ),
    )
    .await;
    assert!(
        pinned_arm.allowed && pinned_arm.warnings.is_empty(),
        "{:?}",
        pinned_arm.warnings
    );

    let affinity = json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}]}]}}}});
    let deployment = inprocess::review(Workload::Deployment, "prod", {
        let mut spec = json!({"containers": [{"name": "app", "image": arm_only, "imagePullPolicy": "IfNotPresent"}]});
        spec["affinity"] = affinity["affinity"].clone();
        spec
    });
    let pinned_amd = check(&checker, deployment).await;
    assert!(!pinned_amd.allowed);
    assert!(
        pinned_amd
            .message
            .contains("no manifest for linux/amd64 (2 nodes)"),
        "{}",
        pinned_amd.message
    );
}

#[tokio::test]
async fn each_node_matches_as_its_runtime_does() {
    let registry = TestRegistry::start(RegistryAuth::None).await;
    // Only 32-bit arm: containerd <= 2.0 on arm64 falls back to arm/v7; 2.1 and later do not.
    registry
        .push_index(
            "arm32/only",
            "v1",
            &[Platform::parse("linux/arm/v7")],
            IndexFlavor::Oci,
        )
        .await;
    let image = registry.image("arm32/only", "v1");

    let legacy = checker(
        &registry,
        fixed(&["linux/arm64"], MatcherKind::ContainerdOnly),
    );
    let v = check(&legacy, pod(&image, json!({}))).await;
    assert!(
        v.allowed && v.warnings.is_empty(),
        "{} {:?}",
        v.message,
        v.warnings
    );

    let strict = checker(
        &registry,
        fixed(&["linux/arm64"], MatcherKind::ContainerdStrict),
    );
    let v = check(&strict, pod(&image, json!({}))).await;
    assert!(!v.allowed);
    assert!(
        v.message.contains("no manifest for linux/arm64/v8"),
        "{}",
        v.message
    );
}

#[tokio::test]
async fn windows_images_must_match_the_nodes_build() {
    let registry = TestRegistry::start(RegistryAuth::None).await;
    registry
        .push_index(
            "win/app",
            "ltsc2022",
            &[Platform::new("windows", "amd64", None).with_os_version("10.0.20348.2655")],
            IndexFlavor::Oci,
        )
        .await;
    let image = registry.image("win/app", "ltsc2022");
    let spec = json!({"nodeSelector": {"kubernetes.io/os": "windows"}});

    // Real nodes carry their build; an index entry must match it.
    let api = FakeApiServer::start();
    for (name, build) in [("win-2019", "10.0.17763"), ("win-2022", "10.0.20348")] {
        api.put(json!({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/os": "windows", "kubernetes.io/arch": "amd64",
                                                   "node.kubernetes.io/windows-build": build}},
            "status": {"nodeInfo": {"containerRuntimeVersion": "containerd://1.7.22", "operatingSystem": "windows",
                "architecture": "amd64", "kernelVersion": format!("{build}.1000"), "osImage": "Windows Server",
                "kubeletVersion": "v1.34.0", "kubeProxyVersion": "", "machineID": "m", "systemUUID": "s", "bootID": "b"}}}));
    }
    let nodes = NodeSet::watch(api.client().await, None);
    eventually(Duration::from_secs(2), async || nodes.snapshot().len() == 2).await;
    let mixed = checker(&registry, nodes);
    let v = check(&mixed, pod(&image, spec.clone())).await;
    assert!(v.allowed, "{}", v.message);
    let warning = v.warnings.join("\n");
    assert!(
        warning.contains("no manifest for windows/amd64 10.0.17763"),
        "{warning}"
    );

    let pinned = pod(
        &image,
        json!({"nodeSelector": {"kubernetes.io/os": "windows", "node.kubernetes.io/windows-build": "10.0.20348"}}),
    );
    let v = check(&mixed, pinned).await;
    assert!(v.allowed && v.warnings.is_empty(), "{:?}", v.warnings);
}

#[tokio::test]
async fn warns_that_a_single_platform_image_cannot_start_on_other_nodes() {
    let registry = TestRegistry::start(RegistryAuth::None).await;
    Fixtures::seed(&registry).await;
    let checker = checker(
        &registry,
        fixed(&["linux/amd64", "linux/arm64"], MatcherKind::ContainerdOnly),
    );
    let amd_only = registry.image(Fixtures::APP, "v1.4.1");

    let on_arm = check(
        &checker,
        pod(
            &amd_only,
            json!({"nodeSelector": {"kubernetes.io/arch": "arm64"}}),
        ),
    )
    .await;
    assert!(
        on_arm.allowed,
        "containerd pulls a single manifest whatever its platform"
    );
    let warning = on_arm.warnings.join("\n");
    assert!(
        warning.contains("built for linux/amd64 only") && warning.contains("exec format error"),
        "{warning}"
    );

    let on_amd = check(
        &checker,
        pod(
            &amd_only,
            json!({"nodeSelector": {"kubernetes.io/arch": "amd64"}}),
        ),
    )
    .await;
    assert!(on_amd.warnings.is_empty(), "{:?}", on_amd.warnings);
}

#[tokio::test]
async fn an_index_is_fetched_once_per_digest() {
    let registry = TestRegistry::start(RegistryAuth::None).await;
    let fx = Fixtures::seed(&registry).await;
    let checker = checker(
        &registry,
        fixed(&["linux/amd64"], MatcherKind::ContainerdOnly),
    );
    let before = registry.access_log().len();
    for _ in 0..3 {
        let v = check(
            &checker,
            pod(&registry.image(Fixtures::MULTI, "v1"), json!({})),
        )
        .await;
        assert!(v.allowed);
    }
    let log = registry.access_log().split_off(before);
    let gets: Vec<_> = log.iter().filter(|e| e.method == "GET").collect();
    assert_eq!(gets.len(), 1, "{gets:?}");
    assert!(
        gets[0].path().ends_with(fx.multi.digest.as_str()),
        "{gets:?}"
    );
}
