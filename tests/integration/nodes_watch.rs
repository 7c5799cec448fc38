//! `NodeSet::watch` against the fake API server: the first list, live changes, outages, relists.

use std::time::Duration;

use crate::common::apiserver::FakeApiServer;
use crate::common::{eventually, linux_node};
use pullcheck::nodes::NodeSet;
use pullcheck::placement::NodeInfo;
use pullcheck::platform::MatcherKind::{self, ContainerdOnly, ContainerdStrict};

/// amd64 with containerd 1.7, arm64 with containerd 2.1.
fn start_cluster() -> FakeApiServer {
    let fake = FakeApiServer::start();
    fake.put(linux_node("amd", "amd64", "containerd://1.7.22"));
    fake.put(linux_node("arm", "arm64", "containerd://2.1.1"));
    fake
}

/// (name, platform, matcher) of the snapshot.
fn summary(nodes: &NodeSet) -> Vec<(String, String, MatcherKind)> {
    nodes
        .snapshot()
        .iter()
        .map(|n: &NodeInfo| (n.name.clone(), n.platform.to_string(), n.matcher))
        .collect()
}

fn expect(rows: &[(&str, &str, MatcherKind)]) -> Vec<(String, String, MatcherKind)> {
    rows.iter()
        .map(|(n, p, m)| (n.to_string(), p.to_string(), *m))
        .collect()
}

const AMD: (&str, &str, MatcherKind) = ("amd", "linux/amd64", ContainerdOnly);
const ARM: (&str, &str, MatcherKind) = ("arm", "linux/arm64/v8", ContainerdStrict);

/// Asserts that the snapshot's (name, platform, matcher) become `rows` within `within`.
async fn assert_becomes(nodes: &NodeSet, within: Duration, rows: &[(&str, &str, MatcherKind)]) {
    let want = expect(rows);
    assert!(
        eventually(within, async || summary(nodes) == want).await,
        "got {:?}",
        summary(nodes)
    );
}

async fn synced_watch(fake: &FakeApiServer, matcher_override: Option<MatcherKind>) -> NodeSet {
    let nodes = NodeSet::watch(fake.client().await, matcher_override);
    assert!(
        eventually(Duration::from_secs(5), async || nodes.is_synced()).await,
        "first list within 5 s"
    );
    assert!(
        eventually(Duration::from_secs(2), async || fake.active_watches() == 1).await,
        "watching after the list"
    );
    nodes
}

#[tokio::test]
async fn sees_the_initial_nodes_with_the_matcher_of_each_runtime() {
    let fake = start_cluster();

    let nodes = synced_watch(&fake, None).await;

    assert_eq!(summary(&nodes), expect(&[AMD, ARM]));
    let snapshot = nodes.snapshot();
    assert_eq!(
        snapshot[0]
            .labels
            .get("kubernetes.io/arch")
            .map(String::as_str),
        Some("amd64")
    );
    assert!(!snapshot[0].labels.contains_key("kubernetes.io/hostname"));
}

#[tokio::test]
async fn matcher_override_applies_to_every_node() {
    let fake = start_cluster();

    let nodes = synced_watch(&fake, Some(ContainerdOnly)).await;

    assert_eq!(
        summary(&nodes),
        expect(&[AMD, ("arm", "linux/arm64/v8", ContainerdOnly)])
    );
}

#[tokio::test]
async fn sees_a_node_added_and_one_deleted_within_a_second() {
    let fake = start_cluster();
    let nodes = synced_watch(&fake, None).await;

    fake.put(linux_node("s390", "s390x", "cri-o://1.30.2"));
    fake.delete("Node", "", "amd");

    assert_becomes(
        &nodes,
        Duration::from_secs(1),
        &[ARM, ("s390", "linux/s390x", MatcherKind::CriO)],
    )
    .await;
}

#[tokio::test]
async fn follows_an_in_place_runtime_upgrade() {
    let fake = start_cluster();
    let nodes = synced_watch(&fake, None).await;

    fake.put(linux_node("amd", "amd64", "containerd://2.1.4"));

    assert_becomes(
        &nodes,
        Duration::from_secs(1),
        &[("amd", "linux/amd64", ContainerdStrict), ARM],
    )
    .await;
}

#[tokio::test]
async fn keeps_the_last_snapshot_while_the_api_server_is_down_and_catches_up_after() {
    let fake = start_cluster();
    let nodes = synced_watch(&fake, None).await;

    fake.set_down(Some(503));
    assert!(eventually(Duration::from_secs(1), async || fake.active_watches() == 0).await);
    fake.put(linux_node("late", "arm64", "containerd://1.7.22"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        summary(&nodes),
        expect(&[AMD, ARM]),
        "last state while down"
    );
    assert!(nodes.is_synced());

    fake.set_down(None);
    assert_becomes(
        &nodes,
        Duration::from_secs(10),
        &[AMD, ARM, ("late", "linux/arm64/v8", ContainerdOnly)],
    )
    .await;
}

#[tokio::test]
async fn relists_after_compaction_and_drops_nodes_deleted_during_the_outage() {
    let fake = start_cluster();
    let nodes = synced_watch(&fake, None).await;

    fake.set_down(Some(503));
    assert!(eventually(Duration::from_secs(1), async || fake.active_watches() == 0).await);
    fake.delete("Node", "", "amd");
    fake.compact();
    fake.set_down(None);

    assert_becomes(&nodes, Duration::from_secs(10), &[ARM]).await;
    assert_eq!(
        fake.count_lists("/api/v1/nodes"),
        2,
        "a second LIST after the 410"
    );
}

#[tokio::test]
async fn stays_empty_and_unsynced_while_listing_is_forbidden_then_syncs() {
    let fake = start_cluster();
    fake.set_path_status("/api/v1/nodes", Some(403));

    let nodes = NodeSet::watch(fake.client().await, None);
    assert!(
        eventually(Duration::from_secs(2), async || fake
            .count("GET", "/api/v1/nodes")
            >= 1)
        .await,
        "the watch tried to list"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!nodes.is_synced());
    assert!(nodes.snapshot().is_empty());

    fake.set_path_status("/api/v1/nodes", None);
    assert!(
        eventually(Duration::from_secs(5), async || nodes.is_synced()).await,
        "retried with backoff and synced"
    );
    assert_eq!(summary(&nodes), expect(&[AMD, ARM]));
}

#[tokio::test]
async fn dropping_the_last_clone_stops_the_watch() {
    let fake = start_cluster();
    let nodes = synced_watch(&fake, None).await;
    let clone = nodes.clone();

    drop(nodes);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(fake.active_watches(), 1, "a clone keeps it alive");
    assert_eq!(summary(&clone), expect(&[AMD, ARM]));

    drop(clone);
    assert!(
        eventually(Duration::from_secs(2), async || fake.active_watches() == 0).await,
        "the watch stream was closed"
    );
}
