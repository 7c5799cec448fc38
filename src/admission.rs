//! The webhook's front door: AdmissionReview in, engine, AdmissionResponse out.
//!
//! `plan` (pure) decides which images of a request need a check; the engine checks them with
//! the pod's credentials and placement; `policy` turns its findings into a verdict and words.

use crate::check::{CheckRequest, CredentialSource, Engine, Placement, Report};
use crate::credentials::pod::secret_refs;
use crate::extract::{self, ExtractError};
use crate::metrics::{Decision, DecisionLabels, ReviewLabels};
use crate::policy::{self, Mode, PolicySettings, Verdict};
use crate::workload::{ImageUse, PullPolicy, WorkloadKind};
use k8s_openapi::api::core::v1::PodSpec;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use kube::core::DynamicObject;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

/// Marks a mirror pod (`kubetypes.ConfigMirrorAnnotationKey`).
const MIRROR_POD_ANNOTATION: &str = "kubernetes.io/config.mirror";

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
    /// kube-apiserver makes the object's namespace the request's before admission
    /// (`EnsureObjectNamespaceMatchesRequestNamespace`), so a review where they differ was not
    /// sent by it: answering would let its sender ask about another namespace's secrets.
    #[error("the object's namespace {object:?} is not the request's namespace {request:?}")]
    NamespaceMismatch { object: String, request: String },
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
            crate::workload::new_images(&workload.images, &old.images)
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

/// Refuses a review whose object or old object names another namespace than the request.
fn namespaces_agree(request: &AdmissionRequest<DynamicObject>) -> Result<(), BadReview> {
    let wanted = request.namespace.as_deref().unwrap_or_default();
    for object in [&request.object, &request.old_object].into_iter().flatten() {
        match object.metadata.namespace.as_deref() {
            Some(ns) if !ns.is_empty() && ns != wanted => {
                return Err(BadReview::NamespaceMismatch {
                    object: crate::text::clean(ns, 64),
                    request: crate::text::clean(wanted, 64),
                })
            }
            _ => {}
        }
    }
    Ok(())
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

/// Answers AdmissionReviews with the engine's findings under a namespace's mode.
pub struct Admission {
    engine: Arc<Engine>,
    policy: PolicySettings,
}

impl Admission {
    pub fn new(engine: Arc<Engine>, policy: PolicySettings) -> Self {
        Admission { engine, policy }
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Answers a raw AdmissionReview body in `mode`.
    pub async fn review(
        &self,
        body: &[u8],
        mode: Mode,
    ) -> Result<AdmissionReview<DynamicObject>, BadReview> {
        let started = Instant::now();
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
        namespaces_agree(&request)?;
        let plan = plan(&request);
        let report = match (plan.kind, &plan.spec, mode) {
            (Some(kind), Some(spec), Mode::Enforce | Mode::Warn) if !plan.uses.is_empty() => {
                let namespace = request.namespace.as_deref().unwrap_or_default();
                Some(
                    self.engine
                        .check(CheckRequest {
                            namespace,
                            uses: &plan.uses,
                            credentials: CredentialSource::Cluster(secret_refs(kind, spec)),
                            placement: Placement::Pod(spec),
                        })
                        .await,
                )
            }
            _ => None,
        };
        let findings = report.as_ref().map_or(&[][..], |r| &r.findings[..]);
        let mut verdict = policy::decide(mode, &self.policy, findings);
        verdict.warnings.extend(plan.notes.iter().cloned());
        let response = respond(&request, &verdict, &plan.uses, report.as_ref());
        self.record(&request, mode, &plan, report.as_ref(), &verdict, started);
        Ok(response.into_review())
    }

    fn record(
        &self,
        request: &AdmissionRequest<DynamicObject>,
        mode: Mode,
        plan: &Plan,
        report: Option<&Report>,
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
        let metrics = self.engine.metrics();
        metrics
            .reviews
            .get_or_create(&ReviewLabels {
                operation,
                decision: decision.as_str(),
                mode: mode.as_str(),
            })
            .inc();
        metrics
            .review_seconds
            .get_or_create(&DecisionLabels {
                decision: decision.as_str(),
            })
            .observe(elapsed.as_secs_f64());
        // The same list the engine counted under `pullcheck_image_checks_total`.
        let reasons: String = report
            .map(|r| {
                r.reasons()
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        tracing::info!(
            uid = %request.uid,
            namespace = request.namespace.as_deref().unwrap_or(""),
            kind = %request.kind.kind,
            name = %request.name,
            operation,
            mode = mode.as_str(),
            verdict = decision.as_str(),
            images = plan.uses.len(),
            reasons = %reasons,
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

/// Builds the response: verdict, warnings, and the audit annotation of resolved digests.
pub fn respond(
    request: &AdmissionRequest<DynamicObject>,
    verdict: &Verdict,
    uses: &[ImageUse],
    report: Option<&Report>,
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
            let c = report?.result(&u.image)?;
            let crate::check::CheckOutcome::Found {
                resolved,
                credential_source,
                ..
            } = &c.outcome
            else {
                return None;
            };
            let mut entry = serde_json::json!({
                "image": c.reference.as_ref().map(ToString::to_string).unwrap_or_default(),
                "digest": resolved.digest,
            });
            if let Some(source) = credential_source {
                entry["credentials"] = serde_json::Value::from(source.as_str());
            }
            Some((u.location.as_ref()?.to_string(), entry))
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
