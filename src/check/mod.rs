//! The engine: image uses + the pod's credential sources + where it can run -> per-image
//! results and findings.
//!
//! It holds the kubelet's pull rules (which credentials are tried, in which order, and which
//! failure explains the pull) and nothing about HTTP or AdmissionReviews: the webhook, `explain`
//! and any later front end call [`Engine::check`] and render the same [`Finding`]s.

pub mod finding;
pub mod outcome;

pub use finding::{AnonymousCause, Fact, Finding, MutableTagAdvice, Subject};
pub use outcome::{telling_failure, CheckOutcome};

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::PodSpec;

use crate::cache::{AnswerCache, CacheKey};
use crate::credentials::cluster::{ClusterReader, ReadError};
use crate::credentials::node::NodeCredentials;
use crate::credentials::pod::SecretRefs;
use crate::credentials::resolve::{self, PodCredentials};
use crate::credentials::{Credential, Fingerprint};
use crate::metrics::{Metrics, ReasonLabels};
use crate::nodes::NodeSet;
use crate::placement::{self, Candidates};
use crate::platform::{coverage, PlatformCheck, Target};
use crate::reason::Reason;
use crate::reference::ImageRef;
use crate::registry::{self, RegistryClient, RegistryError, Resolved};
use crate::workload::ImageUse;

/// At most this many images of one request are checked at the same time: a pod naming
/// hundreds of registries must not open hundreds of connections at once.
const CONCURRENT_CHECKS: usize = 16;

/// What the engine needs besides its clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineSettings {
    /// The whole time one request may take, API reads and registry calls included.
    pub budget: Duration,
    pub mutable_tags: MutableTagAdvice,
    /// Also read single-platform images' configs (exec format error warnings).
    pub single_manifests: bool,
}

/// Where the pod's pull credentials come from.
#[derive(Debug)]
pub enum CredentialSource {
    /// Read from the cluster as the kubelet would: the pod's `imagePullSecrets`, or those of its
    /// service account.
    Cluster(SecretRefs),
    /// Already known (secret files handed to `explain`).
    Given(Box<PodCredentials>),
}

/// Where the pod can run.
#[derive(Debug, Clone, Copy)]
pub enum Placement<'a> {
    /// Its spec, judged against the engine's nodes.
    Pod(&'a PodSpec),
    /// Unknown: platforms are not checked.
    Anywhere,
}

/// One request to the engine: the images of one pod (or pod template).
#[derive(Debug)]
pub struct CheckRequest<'a> {
    /// The namespace whose secrets apply; never another's.
    pub namespace: &'a str,
    pub uses: &'a [ImageUse],
    pub credentials: CredentialSource,
    pub placement: Placement<'a>,
}

/// One distinct image and how its check ended.
#[derive(Debug, Clone)]
pub struct ImageResult {
    /// As written.
    pub image: String,
    pub reference: Option<ImageRef>,
    pub outcome: CheckOutcome,
}

/// What the engine found for one request.
#[derive(Debug)]
pub struct Report {
    /// The credentials the kubelet would have had.
    pub credentials: PodCredentials,
    /// Each distinct image once, in the order first used.
    pub results: Vec<ImageResult>,
    /// Pod findings first, then each use's in object order.
    pub findings: Vec<Finding>,
}

impl Report {
    /// The findings for `uses` from what their images' checks found (pure): the pod's
    /// secrets once, then each use in object order.
    pub fn build(
        credentials: PodCredentials,
        results: Vec<ImageResult>,
        uses: &[ImageUse],
        mutable_tags: MutableTagAdvice,
    ) -> Report {
        let mut findings = finding::secret_findings(&credentials);
        for image_use in uses {
            if let Some(r) = results.iter().find(|r| r.image == image_use.image) {
                findings.extend(finding::image_findings(
                    image_use,
                    r.reference.as_ref(),
                    &r.outcome,
                    &credentials,
                    mutable_tags,
                ));
            }
        }
        Report {
            credentials,
            results,
            findings,
        }
    }

    /// The result for an image as written.
    pub fn result(&self, image: &str) -> Option<&ImageResult> {
        self.results.iter().find(|r| r.image == image)
    }

    /// Every reason this request is counted and logged under: the pod's findings' reasons once
    /// each, then per distinct image its findings' reasons once each, or `ok` for an image found with nothing
    /// to say. The metric and the log field both come from here, so they cannot disagree.
    pub fn reasons(&self) -> Vec<Reason> {
        let mut out: Vec<Reason> = Vec::new();
        for finding in self.findings.iter().filter(|f| f.subject.is_none()) {
            if !out.contains(&finding.reason()) {
                out.push(finding.reason());
            }
        }
        for result in &self.results {
            let first = out.len();
            for finding in &self.findings {
                if finding.image() == Some(result.image.as_str())
                    && !out[first..].contains(&finding.reason())
                {
                    out.push(finding.reason());
                }
            }
            if out.len() == first && matches!(result.outcome, CheckOutcome::Found { .. }) {
                out.push(Reason::Ok);
            }
        }
        out
    }
}

/// Checks images against registries as the kubelet would pull them, sharing answers between
/// requests.
pub struct Engine {
    registry: RegistryClient,
    cache: AnswerCache,
    cluster: Option<ClusterReader>,
    node: NodeCredentials,
    /// The cluster's nodes, for the platform check (none: not checked).
    nodes: Option<NodeSet>,
    settings: EngineSettings,
    metrics: Arc<Metrics>,
}

impl Engine {
    pub fn new(
        registry: RegistryClient,
        cache: AnswerCache,
        settings: EngineSettings,
        metrics: Arc<Metrics>,
    ) -> Self {
        Engine {
            registry,
            cache,
            cluster: None,
            node: NodeCredentials::default(),
            nodes: None,
            settings,
            metrics,
        }
    }

    /// Reads pull secrets and service accounts from this cluster. Without it, images are
    /// checked anonymously and secrets a pod lists are named in a warning as not read.
    pub fn with_cluster(mut self, reader: ClusterReader) -> Self {
        self.cluster = Some(reader);
        self
    }

    /// Checks images against the platforms of the nodes pods can land on.
    pub fn with_nodes(mut self, nodes: NodeSet) -> Self {
        self.nodes = Some(nodes);
        self
    }

    pub fn with_node_credentials(mut self, node: NodeCredentials) -> Self {
        self.node = node;
        self
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn settings(&self) -> &EngineSettings {
        &self.settings
    }

    /// The node keyring tried after the pod's secrets.
    pub fn node_credentials(&self) -> &NodeCredentials {
        &self.node
    }

    /// Checks every image of one pod within the budget, and says what it found.
    pub async fn check(&self, request: CheckRequest<'_>) -> Report {
        let deadline = tokio::time::Instant::now() + self.settings.budget;
        let credentials = match request.credentials {
            CredentialSource::Given(credentials) => *credentials,
            CredentialSource::Cluster(refs) => {
                self.pod_credentials(request.namespace, refs, deadline)
                    .await
            }
        };
        let targets = match request.placement {
            Placement::Pod(spec) => self.targets(spec),
            Placement::Anywhere => None,
        };
        let results = self
            .check_images(request.uses, &credentials, targets.as_deref(), deadline)
            .await;
        let report = Report::build(
            credentials,
            results,
            request.uses,
            self.settings.mutable_tags,
        );
        for reason in report.reasons() {
            self.metrics
                .image_checks
                .get_or_create(&ReasonLabels {
                    reason: reason.as_str(),
                })
                .inc();
        }
        report
    }

    /// The platforms the pod can land on, when nodes are known.
    fn targets(&self, spec: &PodSpec) -> Option<Vec<Target>> {
        let nodes = self.nodes.as_ref()?;
        match placement::candidates(spec, &nodes.snapshot()) {
            Candidates::Known(targets) if !targets.is_empty() => Some(targets),
            _ => None,
        }
    }

    /// The pod's secrets, read within the budget.
    async fn pod_credentials(
        &self,
        namespace: &str,
        refs: SecretRefs,
        deadline: tokio::time::Instant,
    ) -> PodCredentials {
        let reading = resolve::resolve(self.cluster.as_ref(), namespace, refs);
        match tokio::time::timeout_at(deadline, reading).await {
            Ok(credentials) => credentials,
            Err(_) => {
                let mut credentials = PodCredentials::anonymous(namespace);
                credentials.unknown = Some(ReadError {
                    what: "pull secrets",
                    namespace: namespace.to_string(),
                    name: String::new(),
                    detail: "the Kubernetes API did not answer within the review budget".into(),
                });
                credentials
            }
        }
    }

    /// Checks every distinct image once, concurrently, all within the budget; results in the
    /// order the images are first used.
    async fn check_images(
        &self,
        uses: &[ImageUse],
        credentials: &PodCredentials,
        targets: Option<&[Target]>,
        deadline: tokio::time::Instant,
    ) -> Vec<ImageResult> {
        let mut distinct: Vec<&str> = Vec::new();
        for u in uses {
            if !distinct.contains(&u.image.as_str()) {
                distinct.push(&u.image);
            }
        }
        let checks: Vec<_> = distinct
            .iter()
            .copied()
            .map(|image| async move {
                match ImageRef::parse_normalized(image) {
                    Err(e) => ImageResult {
                        image: image.to_string(),
                        reference: None,
                        outcome: CheckOutcome::Invalid(e),
                    },
                    Ok(parsed) => {
                        let outcome = self
                            .check_parsed(&parsed, credentials, targets, deadline)
                            .await;
                        ImageResult {
                            image: image.to_string(),
                            reference: Some(parsed),
                            outcome,
                        }
                    }
                }
            })
            .collect();
        let mut done: HashMap<String, ImageResult> = futures::stream::iter(checks)
            .buffer_unordered(CONCURRENT_CHECKS)
            .map(|r| (r.image.clone(), r))
            .collect()
            .await;
        distinct
            .into_iter()
            .filter_map(|image| done.remove(image))
            .collect()
    }

    async fn check_parsed(
        &self,
        image: &ImageRef,
        credentials: &PodCredentials,
        targets: Option<&[Target]>,
        deadline: tokio::time::Instant,
    ) -> CheckOutcome {
        if !credentials.invalid.is_empty() {
            // The kubelet's MakeDockerKeyring fails as a whole: no pull of this pod happens.
            return CheckOutcome::SecretInvalid;
        }
        if let Some(e) = &credentials.unknown {
            return CheckOutcome::CredentialsUnknown {
                detail: e.to_string(),
            };
        }
        let repo = image.name();
        let matched: Vec<Credential> =
            resolve::candidates(credentials, self.node.keyring.as_ref(), &repo)
                .into_iter()
                .map(|m| m.credential)
                .collect();
        let node_pulls = self.node.pulls(&repo);
        if matched.is_empty() && node_pulls {
            return CheckOutcome::NodeCredentials;
        }
        let (resolved, credential) =
            match tokio::time::timeout_at(deadline, self.check_one(image, &matched)).await {
                Err(_) => {
                    return CheckOutcome::TimedOut {
                        budget: self.settings.budget,
                    }
                }
                // The kubelet's union keyring goes on to the node's credential provider when
                // the pod's secrets fail; we cannot, so we do not judge.
                Ok(Err((RegistryError::Unauthorized { .. } | RegistryError::Denied { .. }, _)))
                    if node_pulls =>
                {
                    return CheckOutcome::NodeCredentials
                }
                Ok(Err((error, credential))) => {
                    return CheckOutcome::Failed {
                        error,
                        credential_source: credential.map(|c| c.source().to_string()),
                    }
                }
                Ok(Ok(found)) => found,
            };
        // The image exists; a platform check that runs out of time says nothing rather than
        // turning an existing image into "did not answer in time".
        let platforms = match targets {
            Some(targets) => tokio::time::timeout_at(
                deadline,
                self.check_platforms(image, &resolved, credential, targets),
            )
            .await
            .unwrap_or_default(),
            None => PlatformCheck::NotChecked,
        };
        CheckOutcome::Found {
            resolved,
            credential_source: credential.map(|c| c.source().to_string()),
            platforms,
        }
    }

    /// The kubelet's rule: with no matching credentials one anonymous pull; otherwise each
    /// credential in order, the first success wins, and no anonymous attempt after them
    /// (`kuberuntime_image.go` PullImage).
    async fn check_one<'c>(
        &self,
        image: &ImageRef,
        credentials: &'c [Credential],
    ) -> Result<(Resolved, Option<&'c Credential>), (RegistryError, Option<&'c Credential>)> {
        // No credentials: `first()` is None, the one anonymous attempt.
        let mut rest = credentials.iter();
        let first = rest.next();
        let first_failure = match self.attempt(image, first).await {
            Ok(resolved) => return Ok((resolved, first)),
            Err(error) => (error, first),
        };
        let mut failures = Vec::new();
        for credential in rest {
            match self.attempt(image, Some(credential)).await {
                Ok(resolved) => return Ok((resolved, Some(credential))),
                Err(error) => failures.push((error, Some(credential))),
            }
        }
        Err(telling_failure(first_failure, failures))
    }

    /// Whether the pod's possible nodes can pull (index) and run (single manifest) what the
    /// tag resolved to. Content is fetched with the credential that resolved it.
    async fn check_platforms(
        &self,
        image: &ImageRef,
        resolved: &Resolved,
        credential: Option<&Credential>,
        targets: &[Target],
    ) -> PlatformCheck {
        let (Some(digest), Some(media_type)) = (&resolved.digest, &resolved.media_type) else {
            return PlatformCheck::NotChecked;
        };
        if !registry::content::is_index(media_type) && !self.settings.single_manifests {
            return PlatformCheck::NotChecked;
        }
        let content = match self
            .registry
            .content(image, digest, media_type, credential)
            .await
        {
            Ok(content) => content,
            Err(error) => {
                // The image exists; failing to read its platforms is no reason to block it.
                tracing::warn!(image = %image, %error, "could not read the image's platforms");
                return PlatformCheck::NotChecked;
            }
        };
        coverage::platform_check(&content, targets)
    }

    /// One resolve with one credential, through the shared cache.
    async fn attempt(
        &self,
        image: &ImageRef,
        credential: Option<&Credential>,
    ) -> Result<Resolved, RegistryError> {
        let key = CacheKey {
            reference: image.docker_ref_string(),
            credential: Fingerprint::of(credential),
        };
        self.cache
            .get_or_fetch(
                key,
                image.digest().is_some(),
                self.registry.resolve(image, credential),
            )
            .await
    }
}
