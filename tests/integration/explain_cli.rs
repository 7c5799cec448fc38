//! `pullcheck explain` through the real binary: its documented JSON, its text, and that no
//! password or token ever appears in what it prints.

use crate::common::{Fixtures, RegistryAuth, TestRegistry};
use base64::Engine as _;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Output;

const PASSWORD: &str = "correct-horse-battery";

fn explain(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_pullcheck"))
        .arg("explain")
        .args(args)
        .env("PULLCHECK_ALLOW_REGISTRY_ADDRESS", crate::common::LOOPBACK)
        .output()
        .expect("run pullcheck explain")
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// The JSON `explain` printed, once it is known to have exited with `code`.
fn json_exiting(out: &Output, code: i32) -> Value {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    json_of(out)
}

fn write_secret_yaml(dir: &Path, name: &str, registry: &str, user: &str, password: &str) -> String {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let config =
        json!({"auths": {registry: {"username": user, "password": password, "auth": auth}}});
    // As `kubectl create secret docker-registry --dry-run=client -o yaml` writes it, but with
    // stringData, which the API server folds into data.
    let yaml = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: prod\ntype: kubernetes.io/dockerconfigjson\nstringData:\n  .dockerconfigjson: '{config}'\n"
    );
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, yaml).expect("write secret");
    path.display().to_string()
}

#[test]
fn offline_json_shows_the_kubelets_view_of_a_reference() {
    let out = explain(&["nginx", "--offline", "--output", "json"]);
    let v = json_exiting(&out, 0);
    assert_eq!(
        v["reference"],
        json!({
            "normalized": "docker.io/library/nginx",
            "registry": "docker.io",
            "host": "registry-1.docker.io",
            "repository": "library/nginx",
            "tag": "latest",
            "digest": null,
            "pull_policy": "Always"
        })
    );
    assert_eq!(v["credentials"], json!([]));
    assert_eq!(v["result"], Value::Null);

    // localhost:5000 alone is a Docker Hub image with tag 5000.
    let v = json_of(&explain(&[
        "localhost:5000",
        "--offline",
        "--output",
        "json",
    ]));
    assert_eq!(v["reference"]["repository"], "library/localhost");
    assert_eq!(v["reference"]["tag"], "5000");
    assert_eq!(v["reference"]["pull_policy"], "IfNotPresent");
}

#[test]
fn an_invalid_reference_has_null_reference_an_error_and_exit_1() {
    let out = explain(&["Nginx:1.27", "--offline", "--output", "json"]);
    let v = json_exiting(&out, 1);
    assert_eq!(v["reference"], Value::Null);
    let error = v["error"].as_str().expect("error");
    assert!(
        error.contains("must be lowercase") && error.contains("InvalidImageName"),
        "{error}"
    );
    assert_eq!(v["result"]["reason"], "invalid_reference");
}

#[test]
fn lists_matching_credentials_in_kubelet_order_without_secrets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let specific = write_secret_yaml(
        dir.path(),
        "team",
        "registry.corp.io/team",
        "team-bot",
        PASSWORD,
    );
    let general = write_secret_yaml(
        dir.path(),
        "org",
        "https://registry.corp.io/v1/",
        "org-bot",
        PASSWORD,
    );
    let other_port = write_secret_yaml(
        dir.path(),
        "port",
        "registry.corp.io:5000",
        "port-bot",
        PASSWORD,
    );
    let out = explain(&[
        "registry.corp.io/team/app:v1",
        "--offline",
        "--output",
        "json",
        "--pull-secret",
        &general,
        "--pull-secret",
        &specific,
        "--pull-secret",
        &other_port,
    ]);
    let v = json_exiting(&out, 0);
    // Most specific key first (reverse lexicographic), whatever the secret order; the :5000 key
    // does not match a port-less image.
    assert_eq!(
        v["credentials"],
        json!([
            {"key": "registry.corp.io/team", "source": "secret prod/team", "username": "team-bot"},
            {"key": "registry.corp.io", "source": "secret prod/org", "username": "org-bot"}
        ])
    );
    let text = explain(&[
        "registry.corp.io/team/app:v1",
        "--offline",
        "--pull-secret",
        &general,
    ]);
    for printed in [&out.stdout, &text.stdout, &out.stderr, &text.stderr] {
        let s = String::from_utf8_lossy(printed);
        assert!(!s.contains(PASSWORD), "{s}");
        assert!(
            !s.contains(
                &base64::engine::general_purpose::STANDARD.encode(format!("org-bot:{PASSWORD}"))
            ),
            "{s}"
        );
    }
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("1. key registry.corp.io  user \"org-bot\"  from secret prod/org"),
        "{text}"
    );
}

#[tokio::test]
async fn checks_the_registry_with_the_secret_a_user_is_about_to_apply() {
    let registry = TestRegistry::start(RegistryAuth::htpasswd(&[("robot", PASSWORD)])).await;
    let fx = Fixtures::seed(&registry).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let good = write_secret_yaml(dir.path(), "good", registry.addr(), "robot", PASSWORD);
    let bad = write_secret_yaml(dir.path(), "bad", registry.addr(), "robot", "wrong");
    let ca = registry.ca_file().display().to_string();
    let image = registry.image(Fixtures::PRIVATE, "v1");
    let explain_json = |pull_secret: Option<&str>| {
        let mut args = vec![image.as_str(), "--output", "json", "--registry-ca", &ca];
        args.extend(pull_secret.iter().flat_map(|path| ["--pull-secret", *path]));
        explain(&args)
    };

    let v = json_exiting(&explain_json(Some(&good)), 0);
    assert_eq!(v["result"]["reason"], "ok");
    assert_eq!(v["result"]["digest"], fx.private_app.as_str());
    assert!(v["result"]["message"]
        .as_str()
        .unwrap_or_default()
        .contains("secret prod/good"));

    let v = json_exiting(&explain_json(Some(&bad)), 1);
    assert_eq!(v["result"]["reason"], "unauthorized");
    assert!(v["result"]["message"]
        .as_str()
        .unwrap_or_default()
        .contains("rejected the credentials"));

    let v = json_exiting(&explain_json(None), 1);
    assert_eq!(v["result"]["reason"], "unauthorized");

    let typo = registry.image(Fixtures::PRIVATE, "v2");
    let out = explain(&[&typo, "--registry-ca", &ca, "--pull-secret", &good]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("result        tag_not_found"), "{text}");
    assert!(text.contains(r#"did you mean "v1"?"#), "{text}");
}

#[test]
fn a_file_that_is_not_a_secret_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("cm.yaml");
    std::fs::write(
        &path,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n",
    )
    .expect("write");
    let out = explain(&[
        "nginx",
        "--offline",
        "--pull-secret",
        &path.display().to_string(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not a Secret manifest"), "{err}");
}

#[test]
fn offline_explain_names_a_malformed_secret_and_keys_that_almost_match() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broken = dir.path().join("broken.yaml");
    let bad_auth = base64::engine::general_purpose::STANDARD.encode("no-colon");
    std::fs::write(
        &broken,
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: broken\ntype: kubernetes.io/dockerconfigjson\nstringData:\n  .dockerconfigjson: '{{\"auths\":{{\"ghcr.io\":{{\"auth\":\"{bad_auth}\"}}}}}}'\n"
        ),
    )
    .expect("write");
    let out = explain(&[
        "nginx",
        "--offline",
        "--output",
        "json",
        "--pull-secret",
        &broken.display().to_string(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a malformed secret fails every pull of the pod"
    );
    let v = json_of(&out);
    assert_eq!(v["result"]["reason"], "secret_invalid");

    let port = write_secret_yaml(dir.path(), "corp", "registry.corp.io", "bot", PASSWORD);
    let v = json_of(&explain(&[
        "registry.corp.io:5000/app:v1",
        "--offline",
        "--output",
        "json",
        "--pull-secret",
        &port,
    ]));
    assert_eq!(v["credentials"], json!([]));
    let notes = v["notes"].to_string();
    assert!(
        notes.contains("has credentials for registry.corp.io but the image is pulled from registry.corp.io:5000"),
        "{notes}"
    );
}
