//! Credentials the webhook cannot see in the pod: a node docker config used as the node
//! keyring (after the pod's secrets), and registries nodes pull with credential providers.

use crate::common::inprocess;
use crate::common::review::Workload;
use crate::common::{Fixtures, RegistryAuth, TestRegistry};
use base64::Engine as _;
use pullcheck::admission::Admission;
use pullcheck::credentials::dockerconfig;
use pullcheck::credentials::keyring::Keyring;
use pullcheck::credentials::node::NodeCredentials;
use serde_json::{json, Value};
use std::time::Duration;

fn build_checker(registry: &TestRegistry, node: NodeCredentials) -> Admission {
    inprocess::admission(
        inprocess::engine(registry, Duration::from_secs(3)).with_node_credentials(node),
    )
}

async fn response(checker: &Admission, image: &str) -> Value {
    let spec =
        json!({"containers": [{"name": "app", "image": image, "imagePullPolicy": "IfNotPresent"}]});
    inprocess::response(checker, inprocess::review(Workload::Pod, "prod", spec)).await
}

#[tokio::test]
async fn a_node_docker_config_is_the_node_keyring() {
    let registry = TestRegistry::start(RegistryAuth::htpasswd(&[("node", "n0de-pass")])).await;
    Fixtures::seed(&registry).await;
    let auth = base64::engine::general_purpose::STANDARD.encode("node:n0de-pass");
    let config = json!({"auths": {format!("https://{}", registry.addr()): {"auth": auth}}});
    let entries = dockerconfig::parse_config_json(config.to_string().as_bytes()).expect("config");
    let mut keyring = Keyring::new();
    keyring.add("node docker config", &entries);
    let checker = build_checker(
        &registry,
        NodeCredentials {
            keyring: Some(keyring),
            unchecked: Vec::new(),
        },
    );
    let r = response(&checker, &registry.image(Fixtures::PRIVATE, "v1")).await;
    assert_eq!(r["allowed"], true, "{r}");
    let audit = r["auditAnnotations"]["resolved-images"]
        .as_str()
        .unwrap_or_default();
    assert!(audit.contains("node docker config"), "{audit}");
}

#[tokio::test]
async fn registries_nodes_reach_with_credential_providers_are_not_checked() {
    let registry = TestRegistry::start(RegistryAuth::htpasswd(&[("node", "n0de-pass")])).await;
    Fixtures::seed(&registry).await;
    let before = registry.access_log().len();
    // Keyring pattern syntax, as in the kubelet's credential provider `matchImages`.
    let checker = build_checker(
        &registry,
        NodeCredentials {
            keyring: None,
            unchecked: vec![
                "*.dkr.ecr.*.amazonaws.com".into(),
                registry.addr().to_string(),
            ],
        },
    );
    let r = response(&checker, &registry.image(Fixtures::PRIVATE, "v1")).await;
    assert_eq!(r["allowed"], true, "{r}");
    let warning = r["warnings"][0].as_str().unwrap_or_default();
    assert!(
        warning.contains("not checked") && warning.contains("their own credentials"),
        "{warning}"
    );
    assert_eq!(
        registry.access_log().len(),
        before,
        "no registry request for an unchecked host"
    );

    // Any other registry is still checked.
    let other = TestRegistry::start(RegistryAuth::htpasswd(&[("x", "y")])).await;
    let checker = build_checker(
        &other,
        NodeCredentials {
            keyring: None,
            unchecked: vec!["*.dkr.ecr.*.amazonaws.com".into()],
        },
    );
    let r = response(&checker, &other.image("private/app", "v1")).await;
    assert_eq!(r["allowed"], false, "{r}");
}
