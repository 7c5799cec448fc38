//! The platform check through the real binary: node platforms from configuration and from a
//! watch on the (fake) API server.

use crate::common::apiserver::FakeApiServer;
use crate::common::review::{container, pod_spec, Review, Workload};
use crate::common::webhook::{Answer, Webhook, WebhookOptions};
use crate::common::{eventually, linux_node, Fixtures, RegistryAuth, TestRegistry};
use std::time::Duration;

fn pod(image: &str) -> Review {
    Review::create(
        Workload::Deployment,
        Workload::Deployment.object("web", "prod", pod_spec(vec![container("app", image)])),
    )
}

/// Reviews again (for up to 10 s) until the answer's `allowed` is `allowed`: the watch may not
/// have caught up with the nodes yet (before its first list, platforms are not checked).
async fn review_until(webhook: &Webhook, review: &Review, allowed: bool) -> Option<Answer> {
    let mut answer = None;
    let settled = eventually(Duration::from_secs(10), async || {
        let got = webhook.review(review).await;
        let done = got.allowed() == allowed;
        answer = Some(got);
        done
    })
    .await;
    answer.filter(|_| settled)
}

#[tokio::test]
async fn configured_node_platforms_deny_an_index_without_them() {
    let registry = TestRegistry::start(RegistryAuth::None).await;
    Fixtures::seed(&registry).await;
    let webhook = WebhookOptions::default()
        .config("platforms:\n  nodes: [linux/amd64]\n")
        .start()
        .await;
    let multi = webhook
        .review(&pod(&registry.image(Fixtures::MULTI, "v1")))
        .await;
    assert!(multi.allowed(), "{}", multi.describe());
    let arm = webhook
        .review(&pod(&registry.image(Fixtures::ARM_ONLY, "v1")))
        .await;
    assert!(!arm.allowed());
    assert!(
        arm.message().contains("no manifest for linux/amd64"),
        "{}",
        arm.message()
    );
}

#[tokio::test]
async fn watched_nodes_are_used_and_follow_changes() {
    let registry = TestRegistry::start(RegistryAuth::None).await;
    Fixtures::seed(&registry).await;
    let api = FakeApiServer::start();
    let node = |name: &str, arch: &str| linux_node(name, arch, "containerd://1.7.22");
    api.put(node("amd-1", "amd64"));
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = api.kubeconfig(dir.path());
    let webhook = WebhookOptions::default()
        .env("KUBECONFIG", &kubeconfig.display().to_string())
        .start()
        .await;
    let arm_only = pod(&registry.image(Fixtures::ARM_ONLY, "v1"));

    let denied = review_until(&webhook, &arm_only, false)
        .await
        .expect("denied once the nodes are known");
    assert!(
        denied
            .message()
            .contains("no manifest for linux/amd64 (1 node)"),
        "{}",
        denied.message()
    );

    // An arm64 node joins: now some nodes can pull it.
    api.put(node("arm-1", "arm64"));
    let warned = review_until(&webhook, &arm_only, true)
        .await
        .expect("admitted once the arm64 node is seen");
    assert!(
        warned
            .warnings()
            .iter()
            .any(|w| w.contains("only for linux/arm64/v8 (1 node)")),
        "{:?}",
        warned.warnings()
    );
    assert_eq!(
        api.count_lists("/api/v1/nodes"),
        1,
        "nodes are watched, not listed per review"
    );
}
