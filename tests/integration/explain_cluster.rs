//! `pullcheck explain --namespace NS --service-account SA`: the service account's secrets read
//! from the cluster (the fake API server, through KUBECONFIG).

use crate::common::apiserver::FakeApiServer;
use crate::common::{Fixtures, RegistryAuth, TestRegistry};
use base64::Engine as _;
use serde_json::{json, Value};

#[tokio::test]
async fn reads_a_service_accounts_secrets_from_the_cluster() {
    let registry = TestRegistry::start(RegistryAuth::htpasswd(&[("robot", "r0bot-pass")])).await;
    Fixtures::seed(&registry).await;
    let api = FakeApiServer::start();
    let auth = base64::engine::general_purpose::STANDARD.encode("robot:r0bot-pass");
    let config = json!({"auths": {registry.addr(): {"auth": auth}}}).to_string();
    api.put(
        json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
        "metadata": {"name": "regcred", "namespace": "ci"},
        "data": {".dockerconfigjson": base64::engine::general_purpose::STANDARD.encode(config)}}),
    );
    api.put(json!({"apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "deployer", "namespace": "ci"},
        "imagePullSecrets": [{"name": "regcred"}, {"name": "gone"}]}));
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = api.kubeconfig(dir.path());
    let image = registry.image(Fixtures::PRIVATE, "v1");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pullcheck"))
        .args([
            "explain",
            &image,
            "--namespace",
            "ci",
            "--service-account",
            "deployer",
        ])
        .args(["--output", "json", "--registry-ca"])
        .arg(registry.ca_file())
        .env("KUBECONFIG", &kubeconfig)
        .env("PULLCHECK_ALLOW_REGISTRY_ADDRESS", crate::common::LOOPBACK)
        .output()
        .expect("run explain");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(
        v["credentials"],
        json!([{"key": registry.addr(), "source": "secret ci/regcred", "username": "robot"}])
    );
    assert_eq!(v["result"]["reason"], "ok");
    let notes = v["notes"].to_string();
    assert!(
        notes.contains(r#"\"gone\""#) && notes.contains("does not exist"),
        "{notes}"
    );
    assert!(!stdout.contains("r0bot-pass") && !stdout.contains(&auth));
}

#[test]
fn namespace_needs_a_service_account_and_excludes_secret_files() {
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_pullcheck"))
            .arg("explain")
            .args(args)
            .output()
            .expect("run explain")
    };
    let out = run(&["nginx", "--namespace", "ci"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--service-account"));
    let out = run(&[
        "nginx",
        "--namespace",
        "ci",
        "--service-account",
        "x",
        "--pull-secret",
        "s.yaml",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be used with"));
}
