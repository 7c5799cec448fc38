//! The model of workloads: which kinds carry a pod spec, and every image a pod pulls with where
//! it sits. Plain data shared by every front door and the engine; it imports nothing else of
//! the crate so that anything may depend on it.

use std::collections::HashSet;
use std::fmt;

use k8s_openapi::api::core::v1::PodSpec;

/// The workload kinds that carry a pod spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WorkloadKind {
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

impl WorkloadKind {
    /// The Kubernetes `kind` name.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Pod => "Pod",
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::ReplicaSet => "ReplicaSet",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::DaemonSet => "DaemonSet",
            WorkloadKind::Job => "Job",
            WorkloadKind::CronJob => "CronJob",
            WorkloadKind::ReplicationController => "ReplicationController",
            WorkloadKind::PodTemplate => "PodTemplate",
        }
    }

    /// True when the object holds a pod template rather than a pod: nothing is pulled until a
    /// controller creates pods from it.
    pub fn is_template(self) -> bool {
        self != WorkloadKind::Pod
    }

    /// The kind for a `request.kind` group/version/kind, if it carries a pod spec. Only the
    /// served versions are accepted; with `matchPolicy: Equivalent` (the default) the API server
    /// converts older versions to the one the webhook registered for.
    pub fn from_gvk(group: &str, version: &str, kind: &str) -> Option<WorkloadKind> {
        let found = match (group, version, kind) {
            ("", "v1", "Pod") => WorkloadKind::Pod,
            ("", "v1", "ReplicationController") => WorkloadKind::ReplicationController,
            ("", "v1", "PodTemplate") => WorkloadKind::PodTemplate,
            ("apps", "v1", "Deployment") => WorkloadKind::Deployment,
            ("apps", "v1", "ReplicaSet") => WorkloadKind::ReplicaSet,
            ("apps", "v1", "StatefulSet") => WorkloadKind::StatefulSet,
            ("apps", "v1", "DaemonSet") => WorkloadKind::DaemonSet,
            ("batch", "v1", "Job") => WorkloadKind::Job,
            ("batch", "v1", "CronJob") => WorkloadKind::CronJob,
            _ => return None,
        };
        Some(found)
    }

    /// Where the pod spec sits in the object, as JSON field names from the root.
    pub fn pod_spec_fields(self) -> &'static [&'static str] {
        match self {
            WorkloadKind::Pod => &["spec"],
            WorkloadKind::PodTemplate => &["template", "spec"],
            WorkloadKind::CronJob => &["spec", "jobTemplate", "spec", "template", "spec"],
            WorkloadKind::Deployment
            | WorkloadKind::ReplicaSet
            | WorkloadKind::StatefulSet
            | WorkloadKind::DaemonSet
            | WorkloadKind::Job
            | WorkloadKind::ReplicationController => &["spec", "template", "spec"],
        }
    }

    /// Where the pod spec sits in the object, dotted (`spec.template.spec`).
    pub fn pod_spec_path(self) -> &'static str {
        match self {
            WorkloadKind::Pod => "spec",
            WorkloadKind::PodTemplate => "template.spec",
            WorkloadKind::CronJob => "spec.jobTemplate.spec.template.spec",
            WorkloadKind::Deployment
            | WorkloadKind::ReplicaSet
            | WorkloadKind::StatefulSet
            | WorkloadKind::DaemonSet
            | WorkloadKind::Job
            | WorkloadKind::ReplicationController => "spec.template.spec",
        }
    }
}

/// Which pod spec field an image came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImageField {
    Container,
    InitContainer,
    EphemeralContainer,
    ImageVolume,
}

impl ImageField {
    /// Words for messages, as `kubectl describe` would name the thing.
    pub fn as_str(self) -> &'static str {
        match self {
            ImageField::Container => "container",
            ImageField::InitContainer => "init container",
            ImageField::EphemeralContainer => "ephemeral container",
            ImageField::ImageVolume => "image volume",
        }
    }
}

/// Where an image sits in a pod: a container (of any kind) or an image volume, by name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Location {
    pub field: ImageField,
    /// Container name or volume name.
    pub name: String,
}

impl fmt::Display for Location {
    /// `container "app"`, `init container "migrate"`, `image volume "models"`, ...
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} \"{}\"", self.field.as_str(), self.name)
    }
}

/// One image the kubelet would pull for one container or image volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageUse {
    /// Where it sits in the pod; `None` for an image asked about on its own (`explain`).
    pub location: Option<Location>,
    /// Exactly as written in the object.
    pub image: String,
    /// As given, else defaulted the way the API server would.
    pub pull_policy: PullPolicy,
}

impl ImageUse {
    /// An image in a pod.
    pub fn at(field: ImageField, name: &str, image: &str, pull_policy: PullPolicy) -> ImageUse {
        ImageUse {
            location: Some(Location {
                field,
                name: name.to_owned(),
            }),
            image: image.to_owned(),
            pull_policy,
        }
    }
}

/// The pod (template) spec of an admitted object and the images it pulls.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    pub kind: WorkloadKind,
    /// The pod (template) spec.
    pub spec: PodSpec,
    /// In order: init containers, containers, ephemeral containers, image volumes.
    pub images: Vec<ImageUse>,
}

/// A container's `imagePullPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

impl PullPolicy {
    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Always => "Always",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Never => "Never",
        }
    }

    /// Parses the API spelling; the API server accepts these three exactly (case-sensitive).
    pub fn from_api(s: &str) -> Option<PullPolicy> {
        match s {
            "Always" => Some(PullPolicy::Always),
            "IfNotPresent" => Some(PullPolicy::IfNotPresent),
            "Never" => Some(PullPolicy::Never),
            _ => None,
        }
    }
}

impl fmt::Display for PullPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Images of `new` whose image string does not occur anywhere in `old`, in order, keeping every
/// use (two containers sharing an image both stay so messages can name both).
///
/// An image that `old` used only with pull policy `Never` still counts as new: it was never
/// pulled (nor checked) before, and now it will be.
pub fn new_images<'a>(new: &'a [ImageUse], old: &[ImageUse]) -> Vec<&'a ImageUse> {
    let known: HashSet<&str> = old
        .iter()
        .filter(|u| !matches!(u.pull_policy, PullPolicy::Never))
        .map(|u| u.image.as_str())
        .collect();
    new.iter()
        .filter(|u| !known.contains(u.image.as_str()))
        .collect()
}
