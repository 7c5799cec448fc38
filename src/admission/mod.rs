//! AdmissionReview in, verdict out.
//!
//! `plan` (pure) decides which images of a request need a check; `Checker::check_images` talks
//! to registries, each distinct image once and all concurrently, within the review budget;
//! `policy` turns the outcomes into a verdict.

pub mod extract;

use crate::cache::{AnswerCache, CacheKey};
use crate::credentials::cluster::ClusterReader;
use crate::credentials::keyring::{self, Keyring};
use crate::credentials::pod::{secret_refs, SecretRefs};
use crate::credentials::resolve::{self, PodCredentials};
use crate::credentials::{Credential, Fingerprint};
use crate::metrics::{Decision, DecisionLabels, Metrics, ReasonLabels, ReviewLabels};
use crate::nodes::NodeSet;
use crate::placement::{self, Candidates, Target};
use crate::policy::PlatformCheck;
use crate::policy::{self, CheckOutcome, Finding, Mode, PolicySettings, Verdict};
use crate::reason::ReasonClass;
use crate::reference::{ImageRef, PullPolicy};
use crate::registry::{self, RegistryClient, RegistryError, Resolved};
use extract::{ExtractError, ImageUse, WorkloadKind};
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::PodSpec;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use kube::core::DynamicObject;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Marks a mirror pod (`kubetypes.ConfigMirrorAnnotationKey`).
const MIRROR_POD_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// At most this many images of one review are checked at the same time: a pod naming
/// hundreds of registries must not open hundreds of connections at once.
const CONCURRENT_CHECKS: usize = 16;

/// Audit annotation holding what each checked image resolved to.
pub const AUDIT_RESOLVED: &str = "resolved-images";

/// Why a body is not a review we can answer (HTTP 400).
#[derive(Debug, thiserror::Error)]
pub enum BadReview {
    #[error("the body is not valid JSON for an admission.k8s.io/v1 AdmissionReview: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the AdmissionReview has no request")]
    NoRequest,
    #[error("expected apiVersion admission.k8s.io/v1 and kind AdmissionReview, got {api_version:?} {kind:?}")]
    WrongType { api_version: String, kind: String },
}

/// What a request needs checked.
#[derive(Debug, PartialEq)]
pub struct Plan {
    pub kind: Option<WorkloadKind>,
    /// The pod (template) spec, for placement.
    pub spec: Option<PodSpec>,
    /// Image uses to check, in object order.
    pub uses: Vec<ImageUse>,
    /// Said to the user whatever the checks find (unsupported kind, unreadable object).
    pub notes: Vec<String>,
}

/// Which images of the request need a check. Pure.
pub fn plan(request: &AdmissionRequest<DynamicObject>) -> Plan {
    let mut plan = Plan {
        kind: None,
        spec: None,
        uses: Vec::new(),
        notes: Vec::new(),
    };
    if matches!(request.operation, Operation::Delete | Operation::Connect) {
        return plan;
    }
    let Some(object) = &request.object else {
        return plan;
    };
    // A mirror pod stands for a static pod the kubelet already runs from a file, pulled with the
    // node's own credentials; denying it would only hide the running pod from the API.
    let is_pod = request.kind.group.is_empty() && request.kind.kind == "Pod";
    if is_pod
        && object
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(MIRROR_POD_ANNOTATION))
    {
        return plan;
    }
    let gvk = &request.kind;
    let read = |obj: &DynamicObject| {
        extract::extract(
            &gvk.group,
            &gvk.version,
            &gvk.kind,
            request.sub_resource.as_deref(),
            &obj.data,
        )
    };
    let workload = match read(object) {
        Ok(w) => w,
        Err(ExtractError::NotApplicable { .. }) => return plan,
        Err(e @ ExtractError::UnsupportedKind { .. }) => {
            plan.notes.push(format!(
                "pullcheck: {e}; its images were not checked (the webhook configuration sends \
                 this kind to pullcheck but pullcheck does not know where its images are)"
            ));
            return plan;
        }
        Err(e) => {
            plan.notes.push(format!(
                "pullcheck: could not read the images of this {}: {e}; they were not checked",
                gvk.kind
            ));
            return plan;
        }
    };
    plan.kind = Some(workload.kind);
    // On UPDATE only images new relative to the old object cost a registry call, so a scale
    // or a label edit is free. When what decides the pull changed (secrets, service account,
    // placement) every image is checked again; so it is when the old object is unreadable.
    let old = match (&request.operation, &request.old_object) {
        (Operation::Update, Some(old)) => read(old).ok(),
        _ => None,
    };
    let changed: Vec<&ImageUse> = match &old {
        Some(old) if !pulls_differently(&old.spec, &workload.spec) => {
            extract::new_images(&workload.images, &old.images)
        }
        _ => workload.images.iter().collect(),
    };
    plan.uses = changed
        .into_iter()
        // The kubelet never pulls these (ErrImageNeverPull if absent): nothing to check.
        .filter(|u| u.pull_policy != PullPolicy::Never)
        .cloned()
        .collect();
    plan.spec = Some(workload.spec);
    plan
}

/// Whether an update changes which credentials or which nodes a pod's pulls use. Pure.
fn pulls_differently(old: &PodSpec, new: &PodSpec) -> bool {
    old.image_pull_secrets != new.image_pull_secrets
        || old.service_account_name != new.service_account_name
        || old.node_selector != new.node_selector
        || old.affinity != new.affinity
        || old.tolerations != new.tolerations
        || old.os != new.os
        || old.node_name != new.node_name
}

/// Credentials that nodes have and pods do not show: the node's docker config and cloud
/// credential providers (ECR, Artifact Registry, ACR). The kubelet tries them after the pod's
/// secrets (`UnionDockerKeyring`).
#[derive(Debug, Default)]
pub struct NodeCredentials {
    /// A mounted copy of the nodes' docker `config.json`.
    pub keyring: Option<Keyring>,
    /// Registry patterns (keyring syntax, e.g. `*.dkr.ecr.*.amazonaws.com`) that nodes pull
    /// with credentials pullcheck cannot see: images there are not checked when no pod
    /// secret matches, and a warning says so.
    pub unchecked: Vec<String>,
}

impl NodeCredentials {
    /// Whether nodes pull `repo_to_pull` with credentials pullcheck cannot see.
    pub fn pulls(&self, repo_to_pull: &str) -> bool {
        self.unchecked
            .iter()
            .any(|pattern| keyring::urls_match(pattern, repo_to_pull))
    }
}

/// Checks images against registries, sharing answers between reviews.
pub struct Checker {
    registry: RegistryClient,
    cache: AnswerCache,
    cluster: Option<ClusterReader>,
    node: NodeCredentials,
    /// The cluster's nodes, for the platform check (none: not checked).
    nodes: Option<NodeSet>,
    /// Also read single-platform images' configs (exec format error warnings).
    single_manifests: bool,
    policy: PolicySettings,
    budget: Duration,
    metrics: Arc<Metrics>,
}

/// One distinct image and how its check ended.
#[derive(Debug, Clone)]
pub struct Checked {
    pub image: Option<ImageRef>,
    pub outcome: CheckOutcome,
}

impl Checker {
    pub fn new(
        registry: RegistryClient,
        cache: AnswerCache,
        policy: PolicySettings,
        budget: Duration,
        metrics: Arc<Metrics>,
    ) -> Self {
        Checker {
            registry,
            cache,
            cluster: None,
            node: NodeCredentials::default(),
            nodes: None,
            single_manifests: true,
            policy,
            budget,
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
    pub fn with_nodes(mut self, nodes: NodeSet, single_manifests: bool) -> Self {
        self.nodes = Some(nodes);
        self.single_manifests = single_manifests;
        self
    }

    pub fn with_node_credentials(mut self, node: NodeCredentials) -> Self {
        self.node = node;
        self
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn budget(&self) -> Duration {
        self.budget
    }

    pub fn policy(&self) -> &PolicySettings {
        &self.policy
    }

    /// Answers a raw AdmissionReview body in `mode`.
    pub async fn review(
        &self,
        body: &[u8],
        mode: Mode,
    ) -> Result<AdmissionReview<DynamicObject>, BadReview> {
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + self.budget;
        let review: AdmissionReview<DynamicObject> = serde_json::from_slice(body)?;
        if review.types.api_version != "admission.k8s.io/v1"
            || review.types.kind != "AdmissionReview"
        {
            return Err(BadReview::WrongType {
                api_version: review.types.api_version,
                kind: review.types.kind,
            });
        }
        let mut request = review.request.ok_or(BadReview::NoRequest)?;
        // The response echoes the review's apiVersion and kind, which live on the envelope.
        request.types = review.types;
        let plan = plan(&request);
        let namespace = request.namespace.as_deref().unwrap_or_default();
        let (credentials, checked) = match (plan.kind, &plan.spec, mode) {
            (Some(kind), Some(spec), Mode::Enforce | Mode::Warn) if !plan.uses.is_empty() => {
                let refs = secret_refs(kind, spec);
                let credentials = self.pod_credentials(namespace, refs, deadline).await;
                let targets = self.targets(spec);
                let checked = self
                    .check_images(&plan.uses, &credentials, targets.as_deref(), deadline)
                    .await;
                (credentials, checked)
            }
            _ => (PodCredentials::anonymous(namespace), HashMap::new()),
        };
        let mut findings = policy::secret_findings(&credentials);
        findings.extend(collect_findings(
            &plan.uses,
            &checked,
            &credentials,
            &self.policy,
        ));
        let mut verdict = policy::decide(mode, &self.policy, &findings);
        verdict.warnings.extend(plan.notes.iter().cloned());
        let response = respond(&request, &verdict, &plan.uses, &checked);
        self.record(&request, mode, &plan, &findings, &verdict, started);
        Ok(response.into_review())
    }

    /// The platforms the pod can land on, when nodes are known.
    pub fn targets(&self, spec: &PodSpec) -> Option<Vec<Target>> {
        let nodes = self.nodes.as_ref()?;
        match placement::candidates(spec, &nodes.snapshot()) {
            Candidates::Known(targets) if !targets.is_empty() => Some(targets),
            _ => None,
        }
    }

    /// The pod's secrets, read within the review budget.
    pub async fn pod_credentials(
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
                credentials.unknown = Some(crate::credentials::cluster::ReadError {
                    what: "pull secrets",
                    namespace: namespace.to_string(),
                    name: String::new(),
                    detail: "the Kubernetes API did not answer within the review budget".into(),
                });
                credentials
            }
        }
    }

    /// Checks every distinct image once, concurrently, all within the review budget.
    pub async fn check_images(
        &self,
        uses: &[ImageUse],
        credentials: &PodCredentials,
        targets: Option<&[Target]>,
        deadline: tokio::time::Instant,
    ) -> HashMap<String, Checked> {
        let mut distinct: Vec<&str> = uses.iter().map(|u| u.image.as_str()).collect();
        distinct.sort_unstable();
        distinct.dedup();
        let checks: Vec<_> = distinct
            .into_iter()
            .map(|image| async move {
                let checked = match ImageRef::parse_normalized(image) {
                    Err(e) => Checked {
                        image: None,
                        outcome: CheckOutcome::Invalid(e),
                    },
                    Ok(parsed) => {
                        let outcome = self
                            .check_parsed(&parsed, credentials, targets, deadline)
                            .await;
                        Checked {
                            image: Some(parsed),
                            outcome,
                        }
                    }
                };
                self.metrics
                    .image_checks
                    .get_or_create(&ReasonLabels {
                        reason: checked.outcome.reason().as_str(),
                    })
                    .inc();
                (image.to_string(), checked)
            })
            .collect();
        futures::stream::iter(checks)
            .buffer_unordered(CONCURRENT_CHECKS)
            .collect()
            .await
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
            return CheckOutcome::SecretInvalid {
                secrets: policy::malformed_secrets(credentials),
            };
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
                        budget: self.budget,
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
        if !registry::content::is_index(media_type) && !self.single_manifests {
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
        policy::platform_check(&content, targets)
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

    fn record(
        &self,
        request: &AdmissionRequest<DynamicObject>,
        mode: Mode,
        plan: &Plan,
        findings: &[Finding],
        verdict: &Verdict,
        started: Instant,
    ) {
        let decision = if !verdict.allowed {
            Decision::Denied
        } else if verdict.warnings.is_empty() {
            Decision::Allowed
        } else {
            Decision::Warned
        };
        let operation = operation_str(&request.operation);
        let elapsed = started.elapsed();
        self.metrics
            .reviews
            .get_or_create(&ReviewLabels {
                operation,
                decision: decision.as_str(),
                mode: mode.as_str(),
            })
            .inc();
        self.metrics
            .review_seconds
            .get_or_create(&DecisionLabels {
                decision: decision.as_str(),
            })
            .observe(elapsed.as_secs_f64());
        let reasons: Vec<&str> = findings.iter().map(|f| f.reason.as_str()).collect();
        tracing::info!(
            uid = %request.uid,
            namespace = request.namespace.as_deref().unwrap_or(""),
            kind = %request.kind.kind,
            name = %request.name,
            operation,
            mode = mode.as_str(),
            verdict = decision.as_str(),
            images = plan.uses.len(),
            reasons = ?reasons,
            dry_run = request.dry_run,
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            "review"
        );
    }
}

pub fn operation_str(op: &Operation) -> &'static str {
    match op {
        Operation::Create => "CREATE",
        Operation::Update => "UPDATE",
        Operation::Delete => "DELETE",
        Operation::Connect => "CONNECT",
    }
}

/// Which of several failed attempts explains the pull best. Pure.
///
/// An attempt that could not tell (429, 5xx, unreachable) means a later kubelet retry with that
/// credential may well succeed, so the whole answer is "could not tell". Otherwise a definite
/// "not found" from a credential the registry accepted beats another credential's refusal;
/// failing that, the first credential's error, the one the pod meant most specifically.
pub fn telling_failure<C>(
    first: (RegistryError, C),
    rest: Vec<(RegistryError, C)>,
) -> (RegistryError, C) {
    let rank = |e: &RegistryError| match e {
        e if e.reason().class() == ReasonClass::Undetermined => 0,
        RegistryError::ManifestUnknown { .. } | RegistryError::NameUnknown => 1,
        _ => 2,
    };
    // Strictly better only: among equals the earliest, in the pod's order, stays.
    rest.into_iter().fold(first, |best, next| {
        if rank(&next.0) < rank(&best.0) {
            next
        } else {
            best
        }
    })
}

/// Findings for every image use, in object order. Pure.
pub fn collect_findings(
    uses: &[ImageUse],
    checked: &HashMap<String, Checked>,
    credentials: &PodCredentials,
    settings: &PolicySettings,
) -> Vec<Finding> {
    uses.iter()
        .filter_map(|u| checked.get(&u.image).map(|c| (u, c)))
        .flat_map(|(u, c)| policy::findings(u, c.image.as_ref(), &c.outcome, credentials, settings))
        .collect()
}

/// Builds the response: verdict, warnings, and the audit annotation of resolved digests.
pub fn respond(
    request: &AdmissionRequest<DynamicObject>,
    verdict: &Verdict,
    uses: &[ImageUse],
    checked: &HashMap<String, Checked>,
) -> AdmissionResponse {
    let mut response = AdmissionResponse::from(request);
    if let Some(denial) = &verdict.denial {
        response = response.deny(denial);
        response.result.code = 403;
        response.result.reason = "Forbidden".into();
    }
    if !verdict.warnings.is_empty() {
        response.warnings = Some(verdict.warnings.clone());
    }
    let resolved: BTreeMap<String, serde_json::Value> = uses
        .iter()
        .filter_map(|u| {
            let c = checked.get(&u.image)?;
            let CheckOutcome::Found {
                resolved,
                credential_source,
                ..
            } = &c.outcome
            else {
                return None;
            };
            let mut entry = serde_json::json!({
                "image": c.image.as_ref().map(ToString::to_string).unwrap_or_default(),
                "digest": resolved.digest,
            });
            if let Some(source) = credential_source {
                entry["credentials"] = serde_json::Value::from(source.as_str());
            }
            Some((u.location(), entry))
        })
        .collect();
    if !resolved.is_empty() {
        if let Ok(text) = serde_json::to_string(&resolved) {
            response
                .audit_annotations
                .insert(AUDIT_RESOLVED.to_string(), text);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Unreachable;

    #[test]
    fn the_telling_failure_of_several_credentials() {
        let refused = || RegistryError::Unauthorized {
            with_credentials: true,
            detail: None,
        };
        let missing = || RegistryError::ManifestUnknown {
            suggestions: vec![],
        };
        let limited = || RegistryError::RateLimited { retry_after: None };
        let down = || RegistryError::Unreachable {
            cause: Unreachable::Timeout,
            detail: String::new(),
        };
        // (failures in pod order, index of the one reported)
        let cases: Vec<(Vec<RegistryError>, usize)> = vec![
            (vec![refused()], 0),
            (vec![refused(), refused()], 0),
            // A credential the registry accepted says the tag is missing: that is the news.
            (vec![refused(), missing()], 1),
            // A credential that could not be tried may still work: could not tell.
            (vec![refused(), limited()], 1),
            (vec![missing(), down()], 1),
            (vec![limited(), down()], 0),
        ];
        for (failures, want) in cases {
            let mut tagged = failures.into_iter().enumerate().map(|(i, e)| (e, i));
            let first = tagged.next().expect("a failure");
            let (_, got) = telling_failure(first, tagged.collect());
            assert_eq!(got, want);
        }
    }

    #[test]
    fn node_credentials_cover_registries_by_keyring_pattern() {
        let node = NodeCredentials {
            keyring: None,
            unchecked: vec![
                "*.dkr.ecr.*.amazonaws.com".into(),
                "*-docker.pkg.dev".into(),
            ],
        };
        assert!(node.pulls("123456789012.dkr.ecr.eu-west-1.amazonaws.com/app"));
        assert!(node.pulls("europe-docker.pkg.dev/proj/repo/app"));
        assert!(!node.pulls("docker.io/library/nginx"));
        assert!(!node.pulls("ecr.amazonaws.com/app"));
    }
}
