//! Find the pod spec in a Kubernetes object and list every image a kubelet would pull.
//!
//! Pure: no I/O. The object is walked as JSON down to the pod spec (so a missing `template` is
//! reported by its path), and only the pod spec is deserialized into the k8s-openapi type, which
//! keeps metadata and status out of the hot path.

use k8s_openapi::api::core::v1::{Container, PodSpec};
use serde::Deserialize;
use serde_json::Value;

use crate::reference::default_pull_policy;
use crate::workload::{ImageField, ImageUse, PullPolicy, Workload, WorkloadKind};

/// Why no workload could be read from a request.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    /// The kind carries no pod spec we know of; the handler admits it with a warning.
    #[error("kind {} is not a supported workload", gvk(.group, .version, .kind))]
    UnsupportedKind {
        group: String,
        version: String,
        kind: String,
        subresource: Option<String>,
    },
    /// A subresource that cannot add an image (`status`, `scale`, `binding`, ...); the handler
    /// admits quietly.
    #[error("subresource {subresource:?} of {} pulls no images", gvk(.group, .version, .kind))]
    NotApplicable {
        group: String,
        version: String,
        kind: String,
        subresource: String,
    },
    /// A field has the wrong type or an invalid value.
    #[error("malformed object at {path}: {detail}")]
    Malformed { path: String, detail: String },
    /// A field the pod spec needs is absent, null or empty.
    #[error("missing required field {path}")]
    MissingField { path: String },
}

fn gvk(group: &str, version: &str, kind: &str) -> String {
    if group.is_empty() {
        format!("{version}/{kind}")
    } else {
        format!("{group}/{version}/{kind}")
    }
}

/// Read the pod spec and images of an admission request's object.
///
/// `group`, `version`, `kind` from request.kind; `subresource` from request.subResource.
pub fn extract(
    group: &str,
    version: &str,
    kind: &str,
    subresource: Option<&str>,
    object: &Value,
) -> Result<Workload, ExtractError> {
    let unsupported = || ExtractError::UnsupportedKind {
        group: group.to_owned(),
        version: version.to_owned(),
        kind: kind.to_owned(),
        subresource: subresource.map(str::to_owned),
    };
    let workload_kind = match subresource.filter(|s| !s.is_empty()) {
        None => WorkloadKind::from_gvk(group, version, kind).ok_or_else(unsupported)?,
        // Since Kubernetes 1.22 this subresource carries the whole Pod, and it is the only way
        // to add a container to a running pod, so its new images are pulled right away.
        Some("ephemeralcontainers") => match WorkloadKind::from_gvk(group, version, kind) {
            Some(WorkloadKind::Pod) => WorkloadKind::Pod,
            _ => return Err(unsupported()),
        },
        // status, scale, binding, eviction, resize...: none of them can change an image.
        Some(other) => {
            return Err(ExtractError::NotApplicable {
                group: group.to_owned(),
                version: version.to_owned(),
                kind: kind.to_owned(),
                subresource: other.to_owned(),
            })
        }
    };

    let spec_value = find_pod_spec(object, workload_kind.pod_spec_fields())?;
    let prefix = workload_kind.pod_spec_path();
    let spec = deserialize_pod_spec(spec_value, prefix)?;
    // k8s-openapi turns an absent or null `containers` into an empty list; the API requires at
    // least one container, and a pod without one pulls nothing we could check.
    if spec.containers.is_empty() {
        return Err(ExtractError::MissingField {
            path: format!("{prefix}.containers"),
        });
    }
    let images = collect_images(&spec, workload_kind.is_template(), prefix)?;
    Ok(Workload {
        kind: workload_kind,
        spec,
        images,
    })
}

/// Path tracking makes deserialization slower (it copies every key), so only a failed plain run
/// pays for a second, tracked one to learn where the error is.
fn deserialize_pod_spec(value: &Value, prefix: &str) -> Result<PodSpec, ExtractError> {
    if let Ok(spec) = PodSpec::deserialize(value) {
        return Ok(spec);
    }
    serde_path_to_error::deserialize(value).map_err(|err| ExtractError::Malformed {
        path: join_path(prefix, err.path()),
        detail: err.inner().to_string(),
    })
}

/// Walk `fields` from the root, requiring an object at every step. Go's JSON decoding treats
/// `null` like an absent field, so both are reported as missing.
fn find_pod_spec<'v>(object: &'v Value, fields: &[&str]) -> Result<&'v Value, ExtractError> {
    let mut current = object;
    let mut path = String::new();
    expect_object(current, ".")?;
    for field in fields {
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(field);
        current = match current.get(field) {
            None | Some(Value::Null) => return Err(ExtractError::MissingField { path }),
            Some(value) => value,
        };
        expect_object(current, &path)?;
    }
    Ok(current)
}

fn expect_object(value: &Value, path: &str) -> Result<(), ExtractError> {
    if value.is_object() {
        Ok(())
    } else {
        Err(ExtractError::Malformed {
            path: path.to_owned(),
            detail: format!("expected an object, found {}", json_type(value)),
        })
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `spec.template.spec` + `containers[0].image` -> `spec.template.spec.containers[0].image`.
fn join_path(prefix: &str, inner: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut path = prefix.to_owned();
    for segment in inner.iter() {
        match segment {
            Segment::Seq { index } => path.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                path.push('.');
                path.push_str(key);
            }
            Segment::Unknown => path.push_str(".?"),
        }
    }
    path
}

/// The fields of one container-like entry, borrowed from whichever type holds them.
struct Entry<'a> {
    field: ImageField,
    /// The pod spec list the entry is in (`initContainers`) and its index, for error paths.
    list: &'static str,
    index: usize,
    name: &'a str,
    image: Option<&'a str>,
    pull_policy: Option<&'a str>,
}

impl Entry<'_> {
    /// JSON path of a field of this entry, built only when an error needs it.
    fn path(&self, prefix: &str, key: &str) -> String {
        format!("{prefix}.{}[{}].{key}", self.list, self.index)
    }

    fn image_key(&self) -> &'static str {
        match self.field {
            ImageField::ImageVolume => "image.reference",
            _ => "image",
        }
    }

    fn policy_key(&self) -> &'static str {
        match self.field {
            ImageField::ImageVolume => "image.pullPolicy",
            _ => "imagePullPolicy",
        }
    }
}

fn container_entry<'a>(
    field: ImageField,
    list: &'static str,
    index: usize,
    container: &'a Container,
) -> Entry<'a> {
    Entry {
        field,
        list,
        index,
        name: &container.name,
        image: container.image.as_deref(),
        pull_policy: container.image_pull_policy.as_deref(),
    }
}

fn collect_images(
    spec: &PodSpec,
    is_template: bool,
    prefix: &str,
) -> Result<Vec<ImageUse>, ExtractError> {
    let init = spec.init_containers.as_deref().unwrap_or_default();
    let ephemeral = spec.ephemeral_containers.as_deref().unwrap_or_default();
    let volumes = spec.volumes.as_deref().unwrap_or_default();

    let init_entries = init
        .iter()
        .enumerate()
        .map(|(i, c)| container_entry(ImageField::InitContainer, "initContainers", i, c));
    let main_entries = spec
        .containers
        .iter()
        .enumerate()
        .map(|(i, c)| container_entry(ImageField::Container, "containers", i, c));
    let ephemeral_entries = ephemeral.iter().enumerate().map(|(i, c)| Entry {
        field: ImageField::EphemeralContainer,
        list: "ephemeralContainers",
        index: i,
        name: &c.name,
        image: c.image.as_deref(),
        pull_policy: c.image_pull_policy.as_deref(),
    });
    let volume_entries = volumes.iter().enumerate().filter_map(|(i, v)| {
        v.image.as_ref().map(|source| Entry {
            field: ImageField::ImageVolume,
            list: "volumes",
            index: i,
            name: &v.name,
            image: source.reference.as_deref(),
            pull_policy: source.pull_policy.as_deref(),
        })
    });

    let mut images = Vec::with_capacity(init.len() + spec.containers.len() + ephemeral.len());
    for entry in init_entries
        .chain(main_entries)
        .chain(ephemeral_entries)
        .chain(volume_entries)
    {
        if let Some(image_use) = entry_to_use(&entry, is_template, prefix)? {
            images.push(image_use);
        }
    }
    Ok(images)
}

fn entry_to_use(
    entry: &Entry<'_>,
    is_template: bool,
    prefix: &str,
) -> Result<Option<ImageUse>, ExtractError> {
    if entry.name.is_empty() {
        return Err(ExtractError::MissingField {
            path: entry.path(prefix, "name"),
        });
    }
    let image = match entry.image {
        Some(image) if !image.is_empty() => image,
        // The API requires an image only in pods: templates may leave it to config management
        // (validateContainerOnlyForPod; the same holds for image volume references). No image
        // in a template means nothing to pull yet.
        _ if is_template => return Ok(None),
        _ => {
            return Err(ExtractError::MissingField {
                path: entry.path(prefix, entry.image_key()),
            })
        }
    };
    let pull_policy = match entry.pull_policy {
        // The API server defaults an empty policy exactly like an absent one
        // (SetDefaults_Container, and the same rule for image volumes); objects from `check`
        // may not be defaulted yet.
        None | Some("") => default_pull_policy(image),
        Some(given) => PullPolicy::from_api(given).ok_or_else(|| ExtractError::Malformed {
            path: entry.path(prefix, entry.policy_key()),
            detail: format!(
                "unknown pull policy {given:?} (expected Always, IfNotPresent or Never)"
            ),
        })?,
    };
    Ok(Some(ImageUse::at(
        entry.field,
        entry.name,
        image,
        pull_policy,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::new_images;
    use serde_json::json;

    use ImageField::{
        Container as C, EphemeralContainer as E, ImageVolume as V, InitContainer as I,
    };
    use PullPolicy::{Always, IfNotPresent, Never};

    const DIGEST: &str = "sha256:6d0b4a0f0e3a8b76b0e3d5b3a4f1d5c2e7b8a9c0d1e2f3a4b5c6d7e8f9a0b1c2";

    fn use_(field: ImageField, name: &str, image: &str, pull_policy: PullPolicy) -> ImageUse {
        ImageUse::at(field, name, image, pull_policy)
    }

    fn metadata(name: &str) -> Value {
        json!({
            "name": name,
            "namespace": "shop",
            "uid": "6f1c2b0e-8f4d-4b7a-9a55-3f1d2c3b4a5e",
            "resourceVersion": "48213",
            "generation": 3,
            "creationTimestamp": "2025-03-14T09:26:53Z",
            "labels": {"app.kubernetes.io/name": name},
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"},
            "managedFields": [{
                "manager": "kubectl-client-side-apply",
                "operation": "Update",
                "apiVersion": "apps/v1",
                "time": "2025-03-14T09:26:53Z",
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:spec": {"f:replicas": {}}}
            }]
        })
    }

    /// A container as the API server returns it after defaulting.
    fn defaulted_container(name: &str, image: &str, policy: &str) -> Value {
        json!({
            "name": name,
            "image": image,
            "imagePullPolicy": policy,
            "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
            "env": [{"name": "LOG_LEVEL", "value": "info"}],
            "resources": {
                "limits": {"cpu": "500m", "memory": "256Mi"},
                "requests": {"cpu": "100m", "memory": "128Mi"}
            },
            "readinessProbe": {
                "httpGet": {"path": "/healthz", "port": "http", "scheme": "HTTP"},
                "timeoutSeconds": 1, "periodSeconds": 10,
                "successThreshold": 1, "failureThreshold": 3
            },
            "livenessProbe": {
                "tcpSocket": {"port": 8080},
                "timeoutSeconds": 1, "periodSeconds": 10,
                "successThreshold": 1, "failureThreshold": 3
            },
            "volumeMounts": [{"name": "config", "mountPath": "/etc/app", "readOnly": true}],
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File",
            "securityContext": {"runAsNonRoot": true, "allowPrivilegeEscalation": false}
        })
    }

    /// The pod spec of the shop's web tier, defaulted by the API server.
    fn web_pod_spec() -> Value {
        json!({
            "initContainers": [
                defaulted_container("migrate", "registry.example.com/shop/migrate:2.4.1", "IfNotPresent")
            ],
            "containers": [
                defaulted_container("app", "registry.example.com/shop/web:2.4.1", "IfNotPresent"),
                defaulted_container("proxy", "envoyproxy/envoy:v1.31-latest", "Always")
            ],
            "volumes": [{"name": "config", "configMap": {"name": "web-config", "defaultMode": 420}}],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "serviceAccountName": "web",
            "serviceAccount": "web",
            "imagePullSecrets": [{"name": "regcred"}],
            "securityContext": {"fsGroup": 2000},
            "schedulerName": "default-scheduler",
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "web", "effect": "NoSchedule"}]
        })
    }

    fn web_images() -> Vec<ImageUse> {
        vec![
            use_(
                I,
                "migrate",
                "registry.example.com/shop/migrate:2.4.1",
                IfNotPresent,
            ),
            use_(
                C,
                "app",
                "registry.example.com/shop/web:2.4.1",
                IfNotPresent,
            ),
            use_(C, "proxy", "envoyproxy/envoy:v1.31-latest", Always),
        ]
    }

    fn template(spec: Value) -> Value {
        json!({
            "metadata": {"creationTimestamp": null, "labels": {"app.kubernetes.io/name": "web"}},
            "spec": spec
        })
    }

    fn pod(spec: Value) -> Value {
        json!({
            "kind": "Pod",
            "apiVersion": "v1",
            "metadata": metadata("web-7d4b9c8f6-x2lqp"),
            "spec": spec,
            "status": {"phase": "Pending", "qosClass": "Burstable"}
        })
    }

    fn deployment(spec: Value) -> Value {
        json!({
            "kind": "Deployment",
            "apiVersion": "apps/v1",
            "metadata": metadata("web"),
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app.kubernetes.io/name": "web"}},
                "template": template(spec),
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
                "revisionHistoryLimit": 10,
                "progressDeadlineSeconds": 600
            },
            "status": {}
        })
    }

    fn replica_set() -> Value {
        json!({
            "kind": "ReplicaSet",
            "apiVersion": "apps/v1",
            "metadata": metadata("web-7d4b9c8f6"),
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app.kubernetes.io/name": "web", "pod-template-hash": "7d4b9c8f6"}},
                "template": template(web_pod_spec())
            },
            "status": {"replicas": 0}
        })
    }

    fn stateful_set() -> Value {
        json!({
            "kind": "StatefulSet",
            "apiVersion": "apps/v1",
            "metadata": metadata("db"),
            "spec": {
                "replicas": 3,
                "serviceName": "db",
                "selector": {"matchLabels": {"app.kubernetes.io/name": "db"}},
                "template": template(json!({
                    "containers": [defaulted_container("postgres", "postgres:17.2", "IfNotPresent")],
                    "restartPolicy": "Always",
                    "dnsPolicy": "ClusterFirst"
                })),
                "volumeClaimTemplates": [{
                    "apiVersion": "v1",
                    "kind": "PersistentVolumeClaim",
                    "metadata": {"name": "data"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "10Gi"}},
                        "volumeMode": "Filesystem"
                    }
                }],
                "podManagementPolicy": "OrderedReady",
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
                "revisionHistoryLimit": 10,
                "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"}
            }
        })
    }

    fn daemon_set() -> Value {
        json!({
            "kind": "DaemonSet",
            "apiVersion": "apps/v1",
            "metadata": metadata("node-exporter"),
            "spec": {
                "selector": {"matchLabels": {"app.kubernetes.io/name": "node-exporter"}},
                "template": template(json!({
                    "containers": [defaulted_container("exporter", "quay.io/prometheus/node-exporter:v1.8.2", "IfNotPresent")],
                    "hostNetwork": true,
                    "hostPID": true,
                    "tolerations": [{"operator": "Exists"}]
                })),
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}},
                "revisionHistoryLimit": 10
            }
        })
    }

    fn job_spec() -> Value {
        json!({
            "parallelism": 1,
            "completions": 1,
            "backoffLimit": 6,
            "completionMode": "NonIndexed",
            "suspend": false,
            "podReplacementPolicy": "TerminatingOrFailed",
            "template": template(json!({
                "containers": [defaulted_container("report", &report_image(), "IfNotPresent")],
                "restartPolicy": "OnFailure"
            }))
        })
    }

    fn job() -> Value {
        json!({
            "kind": "Job",
            "apiVersion": "batch/v1",
            "metadata": metadata("report-28990081"),
            "spec": job_spec()
        })
    }

    fn cron_job() -> Value {
        json!({
            "kind": "CronJob",
            "apiVersion": "batch/v1",
            "metadata": metadata("report"),
            "spec": {
                "schedule": "*/30 * * * *",
                "timeZone": "Europe/Paris",
                "concurrencyPolicy": "Forbid",
                "suspend": false,
                "jobTemplate": {"metadata": {"creationTimestamp": null}, "spec": job_spec()},
                "successfulJobsHistoryLimit": 3,
                "failedJobsHistoryLimit": 1
            }
        })
    }

    fn replication_controller() -> Value {
        json!({
            "kind": "ReplicationController",
            "apiVersion": "v1",
            "metadata": metadata("legacy"),
            "spec": {
                "replicas": 2,
                "selector": {"app": "legacy"},
                "template": template(json!({
                    "containers": [defaulted_container("legacy", "nginx:1.27.3", "IfNotPresent")]
                }))
            }
        })
    }

    fn pod_template() -> Value {
        json!({
            "kind": "PodTemplate",
            "apiVersion": "v1",
            "metadata": metadata("batch-worker"),
            "template": template(json!({
                "containers": [defaulted_container("worker", "registry.example.com/batch/worker:latest", "Always")]
            }))
        })
    }

    /// A running pod with a debugger added through `kubectl debug` (the ephemeralcontainers
    /// subresource sends the whole Pod).
    fn pod_with_debugger() -> Value {
        let mut spec = web_pod_spec();
        spec["ephemeralContainers"] = json!([{
            "name": "debugger-8xk2p",
            "image": "busybox:1.36",
            "imagePullPolicy": "IfNotPresent",
            "stdin": true,
            "tty": true,
            "targetContainerName": "app",
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File",
            "resources": {}
        }]);
        spec["nodeName"] = json!("worker-2");
        pod(spec)
    }

    /// A pod mounting a model from an OCI artifact (KEP-4639 image volumes).
    fn pod_with_image_volumes() -> Value {
        pod(json!({
            "containers": [{
                "name": "server",
                "image": "vllm/vllm-openai:v0.6.3",
                "imagePullPolicy": "IfNotPresent",
                "volumeMounts": [{"name": "models", "mountPath": "/models"}, {"name": "tokenizer", "mountPath": "/tok"}]
            }],
            "volumes": [
                {"name": "cache", "emptyDir": {"sizeLimit": "1Gi"}},
                {"name": "models", "image": {"reference": "registry.example.com/models/llama:3.1-8b", "pullPolicy": "IfNotPresent"}},
                {"name": "tokenizer", "image": {"reference": "registry.example.com/models/tokenizer"}},
                {"name": "kube-api-access-x7k2d", "projected": {"defaultMode": 420, "sources": [
                    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}}
                ]}}
            ]
        }))
    }

    /// A Deployment as written in a repository, checked by `pullcheck check` before any API
    /// server defaulted it: no imagePullPolicy anywhere.
    fn undefaulted_deployment() -> Value {
        deployment(json!({
            "initContainers": [{"name": "wait", "image": "busybox"}],
            "containers": [
                {"name": "app", "image": "ghcr.io/acme/app:1.2.0"},
                {"name": "cache", "image": "redis:latest"},
                {"name": "pinned", "image": format!("nginx@{DIGEST}")},
                {"name": "both", "image": format!("busybox:latest@{DIGEST}")},
                {"name": "port-looking", "image": "localhost:5000"},
                {"name": "empty-policy", "image": "alpine:3.20", "imagePullPolicy": ""},
                {"name": "offline", "image": "internal/tool", "imagePullPolicy": "Never"}
            ]
        }))
    }

    struct Case {
        name: &'static str,
        gvk: (&'static str, &'static str, &'static str),
        subresource: Option<&'static str>,
        object: Value,
        kind: WorkloadKind,
        images: Vec<ImageUse>,
    }

    fn report_image() -> String {
        format!("ghcr.io/acme/report@{DIGEST}")
    }

    fn cases() -> Vec<Case> {
        vec![
            Case {
                name: "pod",
                gvk: ("", "v1", "Pod"),
                subresource: None,
                object: pod(web_pod_spec()),
                kind: WorkloadKind::Pod,
                images: web_images(),
            },
            Case {
                name: "deployment",
                gvk: ("apps", "v1", "Deployment"),
                subresource: None,
                object: deployment(web_pod_spec()),
                kind: WorkloadKind::Deployment,
                images: web_images(),
            },
            Case {
                name: "replicaset",
                gvk: ("apps", "v1", "ReplicaSet"),
                subresource: None,
                object: replica_set(),
                kind: WorkloadKind::ReplicaSet,
                images: web_images(),
            },
            Case {
                name: "statefulset",
                gvk: ("apps", "v1", "StatefulSet"),
                subresource: None,
                object: stateful_set(),
                kind: WorkloadKind::StatefulSet,
                images: vec![use_(C, "postgres", "postgres:17.2", IfNotPresent)],
            },
            Case {
                name: "daemonset",
                gvk: ("apps", "v1", "DaemonSet"),
                subresource: None,
                object: daemon_set(),
                kind: WorkloadKind::DaemonSet,
                images: vec![use_(
                    C,
                    "exporter",
                    "quay.io/prometheus/node-exporter:v1.8.2",
                    IfNotPresent,
                )],
            },
            Case {
                name: "job",
                gvk: ("batch", "v1", "Job"),
                subresource: None,
                object: job(),
                kind: WorkloadKind::Job,
                images: vec![use_(C, "report", &report_image(), IfNotPresent)],
            },
            Case {
                name: "cronjob",
                gvk: ("batch", "v1", "CronJob"),
                subresource: None,
                object: cron_job(),
                kind: WorkloadKind::CronJob,
                images: vec![use_(C, "report", &report_image(), IfNotPresent)],
            },
            Case {
                name: "replicationcontroller",
                gvk: ("", "v1", "ReplicationController"),
                subresource: None,
                object: replication_controller(),
                kind: WorkloadKind::ReplicationController,
                images: vec![use_(C, "legacy", "nginx:1.27.3", IfNotPresent)],
            },
            Case {
                name: "podtemplate",
                gvk: ("", "v1", "PodTemplate"),
                subresource: None,
                object: pod_template(),
                kind: WorkloadKind::PodTemplate,
                images: vec![use_(
                    C,
                    "worker",
                    "registry.example.com/batch/worker:latest",
                    Always,
                )],
            },
            Case {
                name: "empty subresource is the main resource",
                gvk: ("", "v1", "Pod"),
                subresource: Some(""),
                object: pod(web_pod_spec()),
                kind: WorkloadKind::Pod,
                images: web_images(),
            },
            Case {
                name: "ephemeral containers subresource",
                gvk: ("", "v1", "Pod"),
                subresource: Some("ephemeralcontainers"),
                object: pod_with_debugger(),
                kind: WorkloadKind::Pod,
                images: web_images()
                    .into_iter()
                    .chain([use_(E, "debugger-8xk2p", "busybox:1.36", IfNotPresent)])
                    .collect(),
            },
            Case {
                name: "image volumes after containers, other volumes ignored",
                gvk: ("", "v1", "Pod"),
                subresource: None,
                object: pod_with_image_volumes(),
                kind: WorkloadKind::Pod,
                images: vec![
                    use_(C, "server", "vllm/vllm-openai:v0.6.3", IfNotPresent),
                    use_(
                        V,
                        "models",
                        "registry.example.com/models/llama:3.1-8b",
                        IfNotPresent,
                    ),
                    // No tag: defaults to latest, so the policy defaults to Always.
                    use_(
                        V,
                        "tokenizer",
                        "registry.example.com/models/tokenizer",
                        Always,
                    ),
                ],
            },
            Case {
                name: "undefaulted policies follow the API server defaulting",
                gvk: ("apps", "v1", "Deployment"),
                subresource: None,
                object: undefaulted_deployment(),
                kind: WorkloadKind::Deployment,
                images: vec![
                    use_(I, "wait", "busybox", Always),
                    use_(C, "app", "ghcr.io/acme/app:1.2.0", IfNotPresent),
                    use_(C, "cache", "redis:latest", Always),
                    use_(C, "pinned", &format!("nginx@{DIGEST}"), IfNotPresent),
                    // The policy looks at the tag even when a digest is present.
                    use_(C, "both", &format!("busybox:latest@{DIGEST}"), Always),
                    // `5000` is a tag here, not a port.
                    use_(C, "port-looking", "localhost:5000", IfNotPresent),
                    use_(C, "empty-policy", "alpine:3.20", IfNotPresent),
                    use_(C, "offline", "internal/tool", Never),
                ],
            },
            Case {
                name: "template container without image is skipped",
                gvk: ("apps", "v1", "Deployment"),
                subresource: None,
                object: deployment(json!({
                    "containers": [
                        {"name": "app"},
                        {"name": "sidecar", "image": "", "imagePullPolicy": "IfNotPresent"},
                        {"name": "proxy", "image": "envoyproxy/envoy:v1.31.2"}
                    ],
                    "volumes": [{"name": "models", "image": {}}]
                })),
                kind: WorkloadKind::Deployment,
                images: vec![use_(C, "proxy", "envoyproxy/envoy:v1.31.2", IfNotPresent)],
            },
            Case {
                name: "image kept exactly as written",
                gvk: ("", "v1", "Pod"),
                subresource: None,
                object: pod(json!({
                    "containers": [{"name": "odd", "image": " Docker.IO/Library/NGINX:Latest ", "imagePullPolicy": "Always"}]
                })),
                kind: WorkloadKind::Pod,
                images: vec![use_(C, "odd", " Docker.IO/Library/NGINX:Latest ", Always)],
            },
        ]
    }

    #[test]
    fn extracts_images_of_every_supported_kind() {
        for case in cases() {
            let (group, version, kind) = case.gvk;
            let workload = extract(group, version, kind, case.subresource, &case.object)
                .unwrap_or_else(|e| panic!("{}: {e}", case.name));
            assert_eq!(workload.kind, case.kind, "{}", case.name);
            assert_eq!(workload.images, case.images, "{}", case.name);
        }
    }

    #[test]
    fn keeps_the_pod_spec_fields_later_checks_read() {
        for (name, gvk, object) in [
            ("pod", ("", "v1", "Pod"), pod(web_pod_spec())),
            (
                "deployment",
                ("apps", "v1", "Deployment"),
                deployment(web_pod_spec()),
            ),
            ("replicaset", ("apps", "v1", "ReplicaSet"), replica_set()),
        ] {
            let workload = extract(gvk.0, gvk.1, gvk.2, None, &object).expect(name);
            let spec = &workload.spec;
            assert_eq!(spec.service_account_name.as_deref(), Some("web"), "{name}");
            let secrets: Vec<&str> = spec
                .image_pull_secrets
                .iter()
                .flatten()
                .map(|s| s.name.as_str())
                .collect();
            assert_eq!(secrets, ["regcred"], "{name}");
            let os = spec
                .node_selector
                .as_ref()
                .and_then(|s| s.get("kubernetes.io/os"));
            assert_eq!(os.map(String::as_str), Some("linux"), "{name}");
        }
    }

    #[test]
    fn template_kinds_are_templates_and_pod_is_not() {
        let all = [
            WorkloadKind::Pod,
            WorkloadKind::Deployment,
            WorkloadKind::ReplicaSet,
            WorkloadKind::StatefulSet,
            WorkloadKind::DaemonSet,
            WorkloadKind::Job,
            WorkloadKind::CronJob,
            WorkloadKind::ReplicationController,
            WorkloadKind::PodTemplate,
        ];
        for kind in all {
            assert_eq!(kind.is_template(), kind != WorkloadKind::Pod, "{kind:?}");
            assert_eq!(format!("{kind:?}"), kind.as_str());
        }
    }

    #[test]
    fn location_names_the_field_and_the_name() {
        for (field, name, want) in [
            (C, "app", r#"container "app""#),
            (I, "migrate", r#"init container "migrate""#),
            (E, "debugger", r#"ephemeral container "debugger""#),
            (V, "models", r#"image volume "models""#),
        ] {
            assert_eq!(
                use_(field, name, "nginx", Always)
                    .location
                    .map(|l| l.to_string())
                    .as_deref(),
                Some(want)
            );
        }
    }

    #[test]
    fn handles_a_pod_with_500_containers() {
        let containers: Vec<Value> = (0..500)
            .map(|i| json!({"name": format!("c{i}"), "image": format!("registry.example.com/app/c{i}:v{i}")}))
            .collect();
        let object = pod(json!({"containers": containers}));
        let workload = extract("", "v1", "Pod", None, &object).expect("500 containers");
        assert_eq!(workload.images.len(), 500);
        for (i, image) in workload.images.iter().enumerate() {
            assert_eq!(
                image.location.as_ref().map(|l| l.name.as_str()),
                Some(format!("c{i}").as_str())
            );
            assert_eq!(image.image, format!("registry.example.com/app/c{i}:v{i}"));
            assert_eq!(image.pull_policy, IfNotPresent);
        }
    }

    #[derive(Debug)]
    enum Want {
        Missing(&'static str),
        /// Path, and a piece of the detail.
        Malformed(&'static str, &'static str),
        Unsupported,
        NotApplicable(&'static str),
    }

    fn with(mut object: Value, pointer: &str, value: Value) -> Value {
        *object.pointer_mut(pointer).expect(pointer) = value;
        object
    }

    fn without(mut object: Value, pointer: &str, field: &str) -> Value {
        object
            .pointer_mut(pointer)
            .and_then(Value::as_object_mut)
            .expect(pointer)
            .remove(field)
            .expect(field);
        object
    }

    type Gvk = (&'static str, &'static str, &'static str);
    /// Name, request kind, subresource, object, expected error.
    type ErrorCase = (&'static str, Gvk, Option<&'static str>, Value, Want);

    #[test]
    fn reports_unusable_objects_with_the_field_path() {
        let pod_gvk = ("", "v1", "Pod");
        let deploy_gvk = ("apps", "v1", "Deployment");
        let spec = "/spec/template/spec";
        let cases: Vec<ErrorCase> = vec![
            (
                "deployment without template",
                deploy_gvk,
                None,
                without(deployment(web_pod_spec()), "/spec", "template"),
                Want::Missing("spec.template"),
            ),
            (
                "deployment with null template",
                deploy_gvk,
                None,
                with(deployment(web_pod_spec()), "/spec/template", Value::Null),
                Want::Missing("spec.template"),
            ),
            (
                "deployment template without spec",
                deploy_gvk,
                None,
                without(deployment(web_pod_spec()), "/spec/template", "spec"),
                Want::Missing("spec.template.spec"),
            ),
            (
                "pod without spec",
                pod_gvk,
                None,
                without(pod(web_pod_spec()), "", "spec"),
                Want::Missing("spec"),
            ),
            (
                "podtemplate without template",
                ("", "v1", "PodTemplate"),
                None,
                without(pod_template(), "", "template"),
                Want::Missing("template"),
            ),
            (
                "cronjob job template is a string",
                ("batch", "v1", "CronJob"),
                None,
                with(cron_job(), "/spec/jobTemplate", json!("nightly")),
                Want::Malformed("spec.jobTemplate", "found a string"),
            ),
            (
                "object is an array",
                pod_gvk,
                None,
                json!([pod(web_pod_spec())]),
                Want::Malformed(".", "found an array"),
            ),
            (
                "null containers",
                pod_gvk,
                None,
                with(pod(web_pod_spec()), "/spec/containers", Value::Null),
                Want::Missing("spec.containers"),
            ),
            (
                "empty containers",
                deploy_gvk,
                None,
                with(
                    deployment(web_pod_spec()),
                    "/spec/template/spec/containers",
                    json!([]),
                ),
                Want::Missing("spec.template.spec.containers"),
            ),
            (
                "numeric image",
                pod_gvk,
                None,
                with(pod(web_pod_spec()), "/spec/containers/1/image", json!(5)),
                Want::Malformed("spec.containers[1].image", "expected a string"),
            ),
            (
                "containers is an object",
                deploy_gvk,
                None,
                with(
                    deployment(web_pod_spec()),
                    &format!("{spec}/containers"),
                    json!({"app": {}}),
                ),
                Want::Malformed("spec.template.spec.containers", "invalid type"),
            ),
            (
                "numeric init container image in a cronjob",
                ("batch", "v1", "CronJob"),
                None,
                with(
                    cron_job(),
                    "/spec/jobTemplate/spec/template/spec/containers/0/image",
                    json!(["a"]),
                ),
                Want::Malformed(
                    "spec.jobTemplate.spec.template.spec.containers[0].image",
                    "expected a string",
                ),
            ),
            (
                "unknown pull policy",
                pod_gvk,
                None,
                with(
                    pod(web_pod_spec()),
                    "/spec/initContainers/0/imagePullPolicy",
                    json!("Sometimes"),
                ),
                Want::Malformed("spec.initContainers[0].imagePullPolicy", "\"Sometimes\""),
            ),
            (
                "image volume reference is a list",
                pod_gvk,
                None,
                with(
                    pod_with_image_volumes(),
                    "/spec/volumes/2/image/reference",
                    json!(["x"]),
                ),
                Want::Malformed("spec.volumes[2].image.reference", "expected a string"),
            ),
            (
                "unknown image volume pull policy",
                pod_gvk,
                None,
                with(
                    pod_with_image_volumes(),
                    "/spec/volumes/1/image/pullPolicy",
                    json!("Maybe"),
                ),
                Want::Malformed("spec.volumes[1].image.pullPolicy", "\"Maybe\""),
            ),
            (
                "pod container without image",
                pod_gvk,
                None,
                without(pod(web_pod_spec()), "/spec/containers/1", "image"),
                Want::Missing("spec.containers[1].image"),
            ),
            (
                "pod image volume without reference",
                pod_gvk,
                None,
                without(
                    pod_with_image_volumes(),
                    "/spec/volumes/1/image",
                    "reference",
                ),
                Want::Missing("spec.volumes[1].image.reference"),
            ),
            (
                "ephemeral container without image",
                pod_gvk,
                Some("ephemeralcontainers"),
                without(pod_with_debugger(), "/spec/ephemeralContainers/0", "image"),
                Want::Missing("spec.ephemeralContainers[0].image"),
            ),
            (
                "init container without name",
                deploy_gvk,
                None,
                without(
                    deployment(web_pod_spec()),
                    &format!("{spec}/initContainers/0"),
                    "name",
                ),
                Want::Missing("spec.template.spec.initContainers[0].name"),
            ),
            (
                "node selector is a list",
                deploy_gvk,
                None,
                with(
                    deployment(web_pod_spec()),
                    &format!("{spec}/nodeSelector"),
                    json!(["linux"]),
                ),
                Want::Malformed("spec.template.spec.nodeSelector", "invalid type"),
            ),
            (
                "service",
                ("", "v1", "Service"),
                None,
                json!({}),
                Want::Unsupported,
            ),
            (
                "custom resource",
                ("example.com", "v1", "Rollout"),
                None,
                json!({}),
                Want::Unsupported,
            ),
            (
                "old deployment version",
                ("extensions", "v1beta1", "Deployment"),
                None,
                deployment(web_pod_spec()),
                Want::Unsupported,
            ),
            (
                "wrong group for pod",
                ("apps", "v1", "Pod"),
                None,
                pod(web_pod_spec()),
                Want::Unsupported,
            ),
            (
                "ephemeral subresource on a deployment",
                deploy_gvk,
                Some("ephemeralcontainers"),
                deployment(web_pod_spec()),
                Want::Unsupported,
            ),
            (
                "deployment scale",
                ("autoscaling", "v1", "Scale"),
                Some("scale"),
                json!({"kind": "Scale", "apiVersion": "autoscaling/v1", "spec": {"replicas": 5}}),
                Want::NotApplicable("scale"),
            ),
            (
                "pod status",
                pod_gvk,
                Some("status"),
                pod(web_pod_spec()),
                Want::NotApplicable("status"),
            ),
            (
                "deployment status",
                deploy_gvk,
                Some("status"),
                deployment(web_pod_spec()),
                Want::NotApplicable("status"),
            ),
            (
                "pod resize",
                pod_gvk,
                Some("resize"),
                pod(web_pod_spec()),
                Want::NotApplicable("resize"),
            ),
            (
                "pod binding",
                ("", "v1", "Binding"),
                Some("binding"),
                json!({"kind": "Binding", "target": {"kind": "Node", "name": "worker-2"}}),
                Want::NotApplicable("binding"),
            ),
            (
                "pod eviction",
                ("policy", "v1", "Eviction"),
                Some("eviction"),
                json!({"kind": "Eviction"}),
                Want::NotApplicable("eviction"),
            ),
        ];
        for (name, (group, version, kind), subresource, object, want) in cases {
            let err = match extract(group, version, kind, subresource, &object) {
                Ok(workload) => panic!("{name}: expected {want:?}, got {:?}", workload.images),
                Err(err) => err,
            };
            let matched = match (&want, &err) {
                (Want::Missing(want), ExtractError::MissingField { path }) => path == want,
                (Want::Malformed(want, piece), ExtractError::Malformed { path, detail }) => {
                    path == want && detail.contains(piece)
                }
                (Want::Unsupported, ExtractError::UnsupportedKind { kind: k, .. }) => k == kind,
                (Want::NotApplicable(want), ExtractError::NotApplicable { subresource, .. }) => {
                    subresource == want
                }
                _ => false,
            };
            assert!(matched, "{name}: expected {want:?}, got {err:?}");
        }
    }

    #[test]
    fn error_messages_name_the_kind_and_the_path() {
        let cases: Vec<(Gvk, Option<&str>, Value, &str)> = vec![
            (
                ("apps", "v1beta1", "Deployment"),
                None,
                json!({}),
                "kind apps/v1beta1/Deployment is not a supported workload",
            ),
            (
                ("", "v1", "Service"),
                None,
                json!({}),
                "kind v1/Service is not a supported workload",
            ),
            (
                ("", "v1", "Pod"),
                Some("status"),
                json!({}),
                "subresource \"status\" of v1/Pod pulls no images",
            ),
            (
                ("", "v1", "Pod"),
                None,
                with(pod(web_pod_spec()), "/spec/containers/0/image", json!(5)),
                "malformed object at spec.containers[0].image: \
                 invalid type: integer `5`, expected a string",
            ),
            (
                ("apps", "v1", "Deployment"),
                None,
                without(deployment(web_pod_spec()), "/spec", "template"),
                "missing required field spec.template",
            ),
        ];
        for ((group, version, kind), subresource, object, want) in cases {
            let err = extract(group, version, kind, subresource, &object).expect_err(want);
            assert_eq!(err.to_string(), want);
        }
    }

    fn images_of(object: &Value) -> Vec<ImageUse> {
        extract("apps", "v1", "Deployment", None, object)
            .expect("deployment")
            .images
    }

    #[test]
    fn new_images_lists_only_what_an_update_adds() {
        let old = deployment(web_pod_spec());
        let c = "/spec/template/spec/containers";
        let cases: Vec<(&str, Value, Vec<ImageUse>)> = vec![
            (
                "label change",
                with(old.clone(), "/metadata/labels", json!({"team": "checkout"})),
                vec![],
            ),
            (
                "scale",
                with(old.clone(), "/spec/replicas", json!(10)),
                vec![],
            ),
            (
                "image change",
                with(
                    old.clone(),
                    &format!("{c}/0/image"),
                    json!("registry.example.com/shop/web:2.5.0"),
                ),
                vec![use_(
                    C,
                    "app",
                    "registry.example.com/shop/web:2.5.0",
                    IfNotPresent,
                )],
            ),
            (
                "new sidecar",
                {
                    let mut new = old.clone();
                    new.pointer_mut(c)
                        .and_then(Value::as_array_mut)
                        .expect("containers")
                        .push(defaulted_container(
                            "otel",
                            "otel/opentelemetry-collector:0.114.0",
                            "IfNotPresent",
                        ));
                    new
                },
                vec![use_(
                    C,
                    "otel",
                    "otel/opentelemetry-collector:0.114.0",
                    IfNotPresent,
                )],
            ),
            (
                "image moved from init container to container",
                with(
                    old.clone(),
                    &format!("{c}/1/image"),
                    json!("registry.example.com/shop/migrate:2.4.1"),
                ),
                vec![],
            ),
            (
                "two containers switch to the same new image",
                with(
                    with(
                        old.clone(),
                        &format!("{c}/0/image"),
                        json!("registry.example.com/shop/all:3"),
                    ),
                    &format!("{c}/1/image"),
                    json!("registry.example.com/shop/all:3"),
                ),
                vec![
                    use_(C, "app", "registry.example.com/shop/all:3", IfNotPresent),
                    // The policy as written stays, even though the new tag alone would default
                    // to IfNotPresent.
                    use_(C, "proxy", "registry.example.com/shop/all:3", Always),
                ],
            ),
        ];
        let old_images = images_of(&old);
        for (name, new, want) in cases {
            let new_images_all = images_of(&new);
            let got: Vec<ImageUse> = new_images(&new_images_all, &old_images)
                .into_iter()
                .cloned()
                .collect();
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn new_images_on_create_is_everything() {
        let images = web_images();
        let got: Vec<&ImageUse> = new_images(&images, &[]);
        assert_eq!(got, images.iter().collect::<Vec<_>>());
    }

    #[test]
    fn new_images_counts_an_image_only_used_with_never_as_new() {
        let old = [use_(C, "tool", "internal/tool:1", Never)];
        let new = [use_(C, "tool", "internal/tool:1", IfNotPresent)];
        assert_eq!(new_images(&new, &old), vec![&new[0]]);
        let old = [
            use_(C, "tool", "internal/tool:1", Never),
            use_(I, "setup", "internal/tool:1", IfNotPresent),
        ];
        assert!(new_images(&new, &old).is_empty());
    }
}
