//! Reviews through `pullcheck::admission::Admission` inside the test process, without the
//! server: an engine that trusts the test registries, AdmissionReview bodies, and the parts of the
//! answer that tests assert on.

use std::sync::Arc;
use std::time::Duration;

use pullcheck::admission::Admission;
use pullcheck::cache::{AnswerCache, CacheSettings};
use pullcheck::check::{Engine, EngineSettings, MutableTagAdvice};
use pullcheck::metrics::Metrics;
use pullcheck::policy::{Mode, PolicySettings};
use pullcheck::registry::{RegistryClient, RegistrySettings};
use serde_json::Value;

use super::review::{Review, Workload};
use super::{install_crypto_provider, TestRegistry};

/// An engine with the default cache that trusts `registry`'s CA, may reach it on loopback, and
/// gives each review `budget`. Callers add nodes or cluster credentials with `with_nodes` /
/// `with_cluster`, then [`admission`].
pub fn engine(registry: &TestRegistry, budget: Duration) -> Engine {
    engine_with(
        &RegistrySettings {
            extra_ca_files: vec![registry.ca_file().to_path_buf()],
            address_policy: super::loopback_allowed(),
            ..RegistrySettings::default()
        },
        budget,
    )
}

/// An engine with the default cache whose registry client has `settings`.
pub fn engine_with(settings: &RegistrySettings, budget: Duration) -> Engine {
    install_crypto_provider();
    let client = RegistryClient::new(settings).expect("registry client");
    Engine::new(
        client,
        AnswerCache::new(CacheSettings::default()),
        EngineSettings {
            budget,
            mutable_tags: MutableTagAdvice::IfNotPresent,
            single_manifests: true,
        },
        Arc::new(Metrics::new()),
    )
}

/// The webhook's front door over `engine`, with the default policy.
pub fn admission(engine: Engine) -> Admission {
    Admission::new(Arc::new(engine), PolicySettings::default())
}

/// The body of a CREATE AdmissionReview of a `workload` named `web` in `namespace`, with
/// `pod_spec` as its pod (template) spec.
pub fn review(workload: Workload, namespace: &str, pod_spec: Value) -> Vec<u8> {
    let object = workload.object("web", namespace, pod_spec);
    Review::create(workload, object).body()
}

/// What the checker answered, as a test asserts on it.
pub struct Verdict {
    pub allowed: bool,
    /// `status.message` ("" when absent).
    pub message: String,
    pub warnings: Vec<String>,
    /// The `resolved-images` audit annotation ("" when absent).
    pub audit: String,
}

/// `response` of the AdmissionReview the checker answers to `body` in enforce mode.
pub async fn response(checker: &Admission, body: Vec<u8>) -> Value {
    let review = checker
        .review(&body, Mode::Enforce)
        .await
        .expect("a review");
    serde_json::to_value(&review).expect("json")["response"].clone()
}

/// Reviews `body` in enforce mode.
pub async fn check(checker: &Admission, body: Vec<u8>) -> Verdict {
    let r = response(checker, body).await;
    Verdict {
        allowed: r["allowed"].as_bool().expect("allowed"),
        message: r["status"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        warnings: r["warnings"]
            .as_array()
            .map(|w| {
                w.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
        audit: r["auditAnnotations"]["resolved-images"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    }
}
