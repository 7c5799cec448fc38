//! AdmissionReviews as kube-apiserver sends them, and the workload objects inside: the one
//! builder every suite uses, whether the review goes to the binary ([`super::webhook`]), to the
//! checker in process ([`super::inprocess`]) or to the router.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{json, Value};

/// The workload kinds pullcheck is registered for, with what the API server puts in
/// `request.kind` and `request.resource`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    Pod,
    Deployment,
    ReplicaSet,
    StatefulSet,
    DaemonSet,
    Job,
    CronJob,
    ReplicationController,
    PodTemplate,
}

impl Workload {
    pub const ALL: [Workload; 9] = [
        Workload::Pod,
        Workload::Deployment,
        Workload::ReplicaSet,
        Workload::StatefulSet,
        Workload::DaemonSet,
        Workload::Job,
        Workload::CronJob,
        Workload::ReplicationController,
        Workload::PodTemplate,
    ];

    /// (group, version, kind, resource).
    pub fn gvkr(self) -> (&'static str, &'static str, &'static str, &'static str) {
        match self {
            Workload::Pod => ("", "v1", "Pod", "pods"),
            Workload::Deployment => ("apps", "v1", "Deployment", "deployments"),
            Workload::ReplicaSet => ("apps", "v1", "ReplicaSet", "replicasets"),
            Workload::StatefulSet => ("apps", "v1", "StatefulSet", "statefulsets"),
            Workload::DaemonSet => ("apps", "v1", "DaemonSet", "daemonsets"),
            Workload::Job => ("batch", "v1", "Job", "jobs"),
            Workload::CronJob => ("batch", "v1", "CronJob", "cronjobs"),
            Workload::ReplicationController => {
                ("", "v1", "ReplicationController", "replicationcontrollers")
            }
            Workload::PodTemplate => ("", "v1", "PodTemplate", "podtemplates"),
        }
    }

    pub fn kind(self) -> &'static str {
        self.gvkr().2
    }

    fn api_version(self) -> String {
        let (group, version, _, _) = self.gvkr();
        if group.is_empty() {
            version.to_string()
        } else {
            format!("{group}/{version}")
        }
    }

    /// The object as the API server has it at validating admission (defaulted, with uid,
    /// creationTimestamp and managedFields), with `pod_spec` as its pod (template) spec.
    pub fn object(self, name: &str, namespace: &str, pod_spec: Value) -> Value {
        let labels = json!({"app.kubernetes.io/name": name});
        let template = json!({
            "metadata": {"creationTimestamp": null, "labels": labels},
            "spec": pod_spec,
        });
        let selector = json!({"matchLabels": labels});
        let (body_key, body) = match self {
            Workload::Pod => ("spec", pod_spec),
            Workload::Deployment => (
                "spec",
                json!({
                    "replicas": 2,
                    "selector": selector,
                    "template": template,
                    "strategy": {"type": "RollingUpdate",
                                 "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
                    "revisionHistoryLimit": 10,
                    "progressDeadlineSeconds": 600,
                }),
            ),
            Workload::ReplicaSet => (
                "spec",
                json!({"replicas": 2, "selector": selector, "template": template}),
            ),
            Workload::StatefulSet => (
                "spec",
                json!({
                    "replicas": 1,
                    "selector": selector,
                    "template": template,
                    "serviceName": name,
                    "podManagementPolicy": "OrderedReady",
                    "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
                    "revisionHistoryLimit": 10,
                    "persistentVolumeClaimRetentionPolicy":
                        {"whenDeleted": "Retain", "whenScaled": "Retain"},
                }),
            ),
            Workload::DaemonSet => (
                "spec",
                json!({
                    "selector": selector,
                    "template": template,
                    "updateStrategy": {"type": "RollingUpdate",
                                       "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}},
                    "revisionHistoryLimit": 10,
                }),
            ),
            Workload::Job => (
                "spec",
                json!({
                    "parallelism": 1,
                    "completions": 1,
                    "backoffLimit": 6,
                    "completionMode": "NonIndexed",
                    "suspend": false,
                    "manualSelector": false,
                    "podReplacementPolicy": "TerminatingOrFailed",
                    "template": template,
                }),
            ),
            Workload::CronJob => (
                "spec",
                json!({
                    "schedule": "*/5 * * * *",
                    "concurrencyPolicy": "Forbid",
                    "suspend": false,
                    "successfulJobsHistoryLimit": 3,
                    "failedJobsHistoryLimit": 1,
                    "jobTemplate": {
                        "metadata": {"creationTimestamp": null},
                        "spec": {"backoffLimit": 2, "template": template},
                    },
                }),
            ),
            Workload::ReplicationController => (
                "spec",
                json!({"replicas": 1, "selector": labels, "template": template}),
            ),
            Workload::PodTemplate => ("template", template),
        };
        let mut object = json!({
            "apiVersion": self.api_version(),
            "kind": self.kind(),
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": new_uid(),
                "resourceVersion": "48213",
                "generation": 1,
                "creationTimestamp": "2025-11-21T08:00:00Z",
                "labels": labels,
                "managedFields": [{
                    "manager": "kubectl-client-side-apply",
                    "operation": "Update",
                    "apiVersion": self.api_version(),
                    "time": "2025-11-21T08:00:00Z",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:metadata": {"f:labels": {}}},
                }],
            },
        });
        object[body_key] = body;
        if matches!(self, Workload::Pod) {
            object["status"] = json!({"phase": "Pending", "qosClass": "BestEffort"});
        } else if !matches!(self, Workload::PodTemplate) {
            object["status"] = json!({});
        }
        object
    }

    /// The restart policy the API server accepts for this kind's pods.
    pub fn restart_policy(self) -> &'static str {
        match self {
            Workload::Job | Workload::CronJob => "Never",
            _ => "Always",
        }
    }
}

/// A container as the API server defaults it; `imagePullPolicy` is `Always` for `:latest` or
/// no tag, `IfNotPresent` otherwise (SetDefaults_Container).
pub fn container(name: &str, image: &str) -> Value {
    let last = image.rsplit('/').next().unwrap_or(image);
    let tag = if image.contains('@') {
        Some("@")
    } else {
        last.split_once(':').map(|(_, t)| t)
    };
    let policy = match tag {
        None | Some("latest") => "Always",
        Some(_) => "IfNotPresent",
    };
    container_with_policy(name, image, policy)
}

/// A container with an explicit `imagePullPolicy`.
pub fn container_with_policy(name: &str, image: &str, policy: &str) -> Value {
    json!({
        "name": name,
        "image": image,
        "imagePullPolicy": policy,
        "ports": [{"containerPort": 8080, "protocol": "TCP"}],
        "resources": {},
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
    })
}

/// A pod spec as the API server defaults it, holding `containers`.
pub fn pod_spec(containers: Vec<Value>) -> Value {
    json!({
        "containers": containers,
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 30,
        "dnsPolicy": "ClusterFirst",
        "serviceAccountName": "default",
        "serviceAccount": "default",
        "securityContext": {},
        "schedulerName": "default-scheduler",
        "enableServiceLinks": true,
        "preemptionPolicy": "PreemptLowerPriority",
        "priority": 0,
        "tolerations": [
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists",
             "effect": "NoExecute", "tolerationSeconds": 300},
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists",
             "effect": "NoExecute", "tolerationSeconds": 300},
        ],
    })
}

/// An ephemeral container as `kubectl debug -it --image=<image> --target=<target>` adds it.
pub fn ephemeral_container(name: &str, image: &str, target: &str) -> Value {
    let mut c = container(name, image);
    if let Some(map) = c.as_object_mut() {
        map.remove("ports");
        map.insert("stdin".into(), json!(true));
        map.insert("tty".into(), json!(true));
        map.insert("targetContainerName".into(), json!(target));
    }
    c
}

/// A unique RFC 4122 (version 4 layout) uid, as the API server gives requests and objects.
pub fn new_uid() -> String {
    use ring::rand::SecureRandom as _;
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .expect("random bytes");
    // Unique even if the random source repeated itself.
    let n = COUNTER.fetch_add(1, Ordering::Relaxed).to_be_bytes();
    bytes[10..16].copy_from_slice(&n[2..8]);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// One `admission.k8s.io/v1` AdmissionReview request.
#[derive(Clone, Debug)]
pub struct Review {
    uid: String,
    group: String,
    version: String,
    kind: String,
    resource: String,
    sub_resource: Option<String>,
    name: String,
    namespace: String,
    operation: &'static str,
    object: Value,
    old_object: Value,
    dry_run: bool,
    user: Value,
}

impl Review {
    fn new(workload: Workload, operation: &'static str, object: Value, old_object: Value) -> Self {
        let (group, version, kind, resource) = workload.gvkr();
        let meta = if object.is_null() {
            &old_object["metadata"]
        } else {
            &object["metadata"]
        };
        Review {
            uid: new_uid(),
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
            resource: resource.into(),
            sub_resource: None,
            name: meta["name"].as_str().unwrap_or_default().to_string(),
            namespace: meta["namespace"].as_str().unwrap_or_default().to_string(),
            operation,
            user: json!({
                "username": "kubernetes-admin",
                "groups": ["kubeadm:cluster-admins", "system:authenticated"],
                "extra": {"authentication.kubernetes.io/credential-id":
                          ["X509SHA256=5f2b3c4d9e8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c"]},
            }),
            object,
            old_object,
            dry_run: false,
        }
    }

    /// `kubectl create` / `apply` of a new object.
    pub fn create(workload: Workload, object: Value) -> Self {
        Review::new(workload, "CREATE", object, Value::Null)
    }

    /// An update from `old` to `new`.
    pub fn update(workload: Workload, old: Value, new: Value) -> Self {
        Review::new(workload, "UPDATE", new, old)
    }

    /// A deletion: no object, the old object as it was.
    pub fn delete(workload: Workload, old: Value) -> Self {
        Review::new(workload, "DELETE", Value::Null, old)
    }

    /// `kubectl debug`: an UPDATE of `pods/ephemeralcontainers` carrying the whole Pod.
    pub fn ephemeral_containers(old: Value, new: Value) -> Self {
        let mut review = Review::new(Workload::Pod, "UPDATE", new, old);
        review.sub_resource = Some("ephemeralcontainers".into());
        review
    }

    /// A request for a kind pullcheck does not know, e.g. `("", "v1", "ConfigMap", "configmaps")`.
    pub fn create_other(gvkr: (&str, &str, &str, &str), object: Value) -> Self {
        let mut review = Review::create(Workload::Pod, object);
        review.group = gvkr.0.into();
        review.version = gvkr.1.into();
        review.kind = gvkr.2.into();
        review.resource = gvkr.3.into();
        review
    }

    pub fn dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// A fixed uid instead of a fresh one, for a test that compares it with a constant.
    pub fn with_uid(mut self, uid: &str) -> Self {
        self.uid = uid.to_string();
        self
    }

    pub fn uid(&self) -> &str {
        &self.uid
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn kind(&self) -> &str {
        &self.kind
    }

    pub fn operation(&self) -> &str {
        self.operation
    }

    /// The whole AdmissionReview as a request body.
    pub fn body(&self) -> Vec<u8> {
        serde_json::to_vec(&self.json()).expect("AdmissionReview JSON")
    }

    /// The whole AdmissionReview.
    pub fn json(&self) -> Value {
        let gvk = json!({"group": self.group, "version": self.version, "kind": self.kind});
        let gvr = json!({"group": self.group, "version": self.version, "resource": self.resource});
        let options = match self.operation {
            "CREATE" => json!({"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions",
                               "fieldManager": "kubectl-client-side-apply",
                               "fieldValidation": "Strict"}),
            "UPDATE" => json!({"apiVersion": "meta.k8s.io/v1", "kind": "UpdateOptions",
                               "fieldManager": "kubectl-client-side-apply",
                               "fieldValidation": "Strict"}),
            "DELETE" => json!({"apiVersion": "meta.k8s.io/v1", "kind": "DeleteOptions",
                               "propagationPolicy": "Background"}),
            _ => Value::Null,
        };
        let mut request = json!({
            "uid": self.uid,
            "kind": gvk,
            "resource": gvr,
            "requestKind": gvk,
            "requestResource": gvr,
            "name": self.name,
            "namespace": self.namespace,
            "operation": self.operation,
            "userInfo": self.user,
            "object": self.object,
            "oldObject": self.old_object,
            "dryRun": self.dry_run,
            "options": options,
        });
        if let Some(sub) = &self.sub_resource {
            request["subResource"] = json!(sub);
            request["requestSubResource"] = json!(sub);
        }
        json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": request,
        })
    }
}
