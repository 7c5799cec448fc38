//! `pullcheck explain IMAGE`: what the kubelet would do with an image, step by step.

use crate::check::{finding, CheckOutcome, CheckRequest, CredentialSource, Engine, Placement};
use crate::credentials::cluster::{classify_secret, ClusterReader};
use crate::credentials::dockerconfig;
use crate::credentials::keyring::Keyring;
use crate::credentials::pod::SecretRefs;
use crate::credentials::resolve::{self, PodCredentials};
use crate::policy::words;
use crate::reason::{Reason, ReasonClass};
use crate::reference::{default_pull_policy, ImageRef};
use crate::workload::ImageUse;
use k8s_openapi::api::core::v1::Secret;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// The stable JSON shape of `explain --output json`.
#[derive(Debug, Serialize, PartialEq)]
pub struct Explanation {
    pub image: String,
    /// `null` when the reference cannot be parsed; `error` says why.
    pub reference: Option<ReferenceView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// In the order the kubelet would try them.
    pub credentials: Vec<CredentialView>,
    /// Said about the secrets themselves (missing, not a pull secret, malformed).
    pub notes: Vec<String>,
    /// `null` with `--offline`.
    pub result: Option<ResultView>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct ReferenceView {
    pub normalized: String,
    pub registry: String,
    /// The host actually contacted (`registry-1.docker.io` for Docker Hub).
    pub host: String,
    pub repository: String,
    /// The tag the pull policy sees (`latest` when neither tag nor digest is given).
    pub tag: Option<String>,
    pub digest: Option<String>,
    /// What the API server defaults `imagePullPolicy` to for this reference.
    pub pull_policy: String,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct CredentialView {
    /// The normalized keyring key that matched.
    pub key: String,
    pub source: String,
    pub username: String,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct ResultView {
    pub reason: &'static str,
    /// The workload is at fault: the kubelet's pull would fail.
    #[serde(skip)]
    pub pull_fails: bool,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

/// Where the credentials come from.
pub enum CredentialInput<'a> {
    /// Secret manifests (YAML or JSON) and docker config files, in pod order.
    Files {
        pull_secrets: &'a [PathBuf],
        docker_configs: &'a [PathBuf],
    },
    /// A service account's secrets, read from the cluster.
    Cluster {
        reader: &'a ClusterReader,
        namespace: &'a str,
        service_account: &'a str,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a Secret manifest: {detail}")]
    NotASecret { path: PathBuf, detail: String },
    #[error("{path}: {detail}")]
    DockerConfig { path: PathBuf, detail: String },
}

/// The credentials the kubelet would have for a pod with these secrets: the pod's keyring, and
/// the node keyring (docker config files) that the kubelet tries after it.
pub async fn credentials(
    input: CredentialInput<'_>,
) -> Result<(PodCredentials, Option<Keyring>), ExplainError> {
    match input {
        CredentialInput::Cluster {
            reader,
            namespace,
            service_account,
        } => Ok((
            resolve::resolve(
                Some(reader),
                namespace,
                SecretRefs::ServiceAccount(service_account.to_string()),
            )
            .await,
            None,
        )),
        CredentialInput::Files {
            pull_secrets,
            docker_configs,
        } => {
            let mut out = PodCredentials::anonymous("");
            for path in pull_secrets {
                let secret = read_secret(path)?;
                let name = secret
                    .metadata
                    .name
                    .clone()
                    .unwrap_or_else(|| path.display().to_string());
                out.namespace = secret.metadata.namespace.clone().unwrap_or_default();
                out.secrets.push(name.clone());
                out.add_secret(&name, &classify_secret(&secret));
            }
            if docker_configs.is_empty() {
                return Ok((out, None));
            }
            // The kubelet tries node credentials after the pod's: a separate keyring.
            let mut node = Keyring::new();
            for path in docker_configs {
                let bytes = read(path)?;
                let entries = dockerconfig::parse_config_json(&bytes).map_err(|e| {
                    ExplainError::DockerConfig {
                        path: path.clone(),
                        detail: e.to_string(),
                    }
                })?;
                node.add(&format!("docker config {}", path.display()), &entries);
            }
            Ok((out, Some(node)))
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>, ExplainError> {
    std::fs::read(path).map_err(|source| ExplainError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// A Secret as stored in Kubernetes (YAML or JSON; `stringData` is folded into `data` as the
/// API server does on write).
fn read_secret(path: &Path) -> Result<Secret, ExplainError> {
    let bytes = read(path)?;
    let not_a_secret = |detail: String| ExplainError::NotASecret {
        path: path.to_path_buf(),
        detail,
    };
    let mut value: serde_json::Value =
        serde_yaml_ng::from_slice(&bytes).map_err(|e| not_a_secret(e.to_string()))?;
    if value.get("kind").and_then(|k| k.as_str()) != Some("Secret") {
        return Err(not_a_secret("kind is not Secret".into()));
    }
    if let Some(string_data) = value.get("stringData").cloned() {
        let obj = string_data
            .as_object()
            .ok_or_else(|| not_a_secret("stringData is not a map".into()))?;
        let data = value
            .as_object_mut()
            .ok_or_else(|| not_a_secret("not an object".into()))?
            .entry("data")
            .or_insert_with(|| serde_json::json!({}));
        for (k, v) in obj {
            let text = v.as_str().unwrap_or_default();
            if let Some(map) = data.as_object_mut() {
                map.insert(
                    k.clone(),
                    serde_json::Value::from(base64_encode(text.as_bytes())),
                );
            }
        }
    }
    serde_json::from_value(value).map_err(|e| not_a_secret(e.to_string()))
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Explains `image` with `credentials`; checks the registry unless `engine` is `None`. `node` is
/// the node keyring the kubelet tries after the pod's secrets (the engine's own when checking).
pub async fn explain(
    image: &str,
    credentials: PodCredentials,
    node: Option<&Keyring>,
    engine: Option<&Engine>,
) -> Explanation {
    let mut out = Explanation {
        image: image.to_string(),
        reference: None,
        error: None,
        credentials: Vec::new(),
        // A malformed secret is the result itself, not a note.
        notes: finding::secret_findings(&credentials)
            .iter()
            .filter(|f| f.reason() != Reason::SecretInvalid)
            .map(words::describe)
            .collect(),
        result: None,
    };
    let parsed = match ImageRef::parse_normalized(image) {
        Ok(parsed) => parsed,
        Err(e) => {
            out.error = Some(format!("{e}; the kubelet would report InvalidImageName"));
            out.result = Some(ResultView {
                reason: Reason::InvalidReference.as_str(),
                pull_fails: true,
                message: e.to_string(),
                digest: None,
            });
            return out;
        }
    };
    out.reference = Some(ReferenceView {
        normalized: parsed.to_string(),
        registry: parsed.containerd_hostname().to_string(),
        host: parsed.registry_host().to_string(),
        repository: parsed.repository().to_string(),
        tag: parsed.defaulted_tag().map(str::to_string),
        digest: parsed.digest().map(str::to_string),
        pull_policy: default_pull_policy(image).as_str().to_string(),
    });
    // What the webhook would only say after an anonymous refusal, said up front here.
    out.notes.extend(
        finding::credential_hints(&parsed, &credentials)
            .iter()
            .map(words::anonymous_cause),
    );
    if !credentials.invalid.is_empty() {
        // No pull of a pod with this secret happens at all, whatever the registry says.
        let malformed: Vec<(String, String)> = credentials
            .invalid
            .iter()
            .map(|(name, e)| (name.clone(), e.to_string()))
            .collect();
        out.result = Some(ResultView {
            reason: Reason::SecretInvalid.as_str(),
            pull_fails: true,
            message: words::malformed_secrets_text(&malformed),
            digest: None,
        });
    }
    let node = engine.map_or(node, |e| e.node_credentials().keyring.as_ref());
    out.credentials = resolve::candidates(&credentials, node, &parsed.name())
        .into_iter()
        .map(|m| CredentialView {
            key: m.key,
            source: m.credential.source().to_string(),
            username: m.credential.username().to_string(),
        })
        .collect();
    let Some(engine) = engine.filter(|_| out.result.is_none()) else {
        return out;
    };
    // The image on its own: no container, no placement.
    let uses = [ImageUse {
        location: None,
        image: image.to_string(),
        pull_policy: default_pull_policy(image),
    }];
    let namespace = credentials.namespace.clone();
    let report = engine
        .check(CheckRequest {
            namespace: &namespace,
            uses: &uses,
            credentials: CredentialSource::Given(Box::new(credentials)),
            placement: Placement::Anywhere,
        })
        .await;
    if let Some(result) = report.result(image) {
        let about_image = report
            .findings
            .iter()
            .find(|f| f.image() == Some(image) && f.reason() != Reason::MutableTag);
        let message = match (about_image, &result.outcome) {
            (Some(f), _) => words::describe(f),
            (
                None,
                CheckOutcome::Found {
                    credential_source: Some(s),
                    ..
                },
            ) => format!("the image exists and pulls with the credentials from {s}"),
            (None, _) => "the image exists and pulls anonymously".to_string(),
        };
        let reason = result.outcome.reason();
        out.result = Some(ResultView {
            reason: reason.as_str(),
            pull_fails: reason.class() == ReasonClass::Workload,
            message,
            digest: result.outcome.digest().map(str::to_string),
        });
    }
    out
}

impl Explanation {
    /// Whether the kubelet's pull would fail because of the workload (not the registry).
    pub fn pull_fails(&self) -> bool {
        self.result.as_ref().is_some_and(|r| r.pull_fails)
    }
}

/// The text form: one fact a line, as a person reads it.
pub fn render_text(e: &Explanation) -> String {
    let mut s = format!("image         {}\n", e.image);
    match &e.reference {
        None => s.push_str(&format!(
            "error         {}\n",
            e.error.as_deref().unwrap_or_default()
        )),
        Some(r) => {
            s.push_str(&format!("normalized    {}\n", r.normalized));
            if r.host == r.registry {
                s.push_str(&format!("registry      {}\n", r.registry));
            } else {
                s.push_str(&format!(
                    "registry      {} (contacted as {})\n",
                    r.registry, r.host
                ));
            }
            s.push_str(&format!("repository    {}\n", r.repository));
            if let Some(d) = &r.digest {
                s.push_str(&format!("digest        {d} (pulled by digest)\n"));
            }
            if let Some(t) = &r.tag {
                s.push_str(&format!("tag           {t}\n"));
            }
            s.push_str(&format!(
                "pull policy   {} (the default for this reference)\n",
                r.pull_policy
            ));
            if e.credentials.is_empty() {
                s.push_str("credentials   none match: the pull is anonymous\n");
            } else {
                s.push_str("credentials   tried in this order, the first that works wins:\n");
                for (i, c) in e.credentials.iter().enumerate() {
                    s.push_str(&format!(
                        "  {}. key {}  user {:?}  from {}\n",
                        i + 1,
                        c.key,
                        c.username,
                        c.source
                    ));
                }
            }
        }
    }
    for note in &e.notes {
        s.push_str(&format!("note          {note}\n"));
    }
    match &e.result {
        None => s.push_str("result        not checked (--offline)\n"),
        Some(r) => s.push_str(&format!("result        {}: {}\n", r.reason, r.message)),
    }
    s
}
