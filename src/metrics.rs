//! Prometheus metrics. Labels are bounded enums (reason, decision, operation, mode), never
//! image, namespace or object names.

use crate::reason::Reason;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    Allowed,
    Warned,
    Denied,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allowed => "allowed",
            Decision::Warned => "warned",
            Decision::Denied => "denied",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ReviewLabels {
    pub operation: &'static str,
    pub decision: &'static str,
    pub mode: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct DecisionLabels {
    pub decision: &'static str,
}

pub struct Metrics {
    pub reviews: Family<ReviewLabels, Counter>,
    pub image_checks: Family<ReasonLabels, Counter>,
    pub review_seconds: Family<DecisionLabels, Histogram>,
    registry: Registry,
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("pullcheck");
        let reviews = Family::<ReviewLabels, Counter>::default();
        registry.register(
            "reviews",
            "AdmissionReviews answered, by operation, decision and mode",
            reviews.clone(),
        );
        let image_checks = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "image_checks",
            "What image checks found, by reason: each reason once per distinct image of a review (ok for an image found with nothing to say), and the pod's secret findings once per review",
            image_checks.clone(),
        );
        let review_seconds = Family::<DecisionLabels, Histogram>::new_with_constructor(|| {
            // 100 µs to ~13 s: cached answers sit at the bottom, the budget at the top.
            Histogram::new(exponential_buckets(0.0001, 2.7, 12))
        });
        registry.register(
            "review_duration_seconds",
            "Time to answer a review",
            review_seconds.clone(),
        );
        // Pre-create every reason so dashboards see zeros instead of gaps.
        for r in Reason::ALL {
            let _ = image_checks.get_or_create(&ReasonLabels { reason: r.as_str() });
        }
        Metrics {
            reviews,
            image_checks,
            review_seconds,
            registry,
        }
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
