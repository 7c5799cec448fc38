//! The review path without network: parse an AdmissionReview, extract and plan the images,
//! apply the policy to (already known) registry answers, build and encode the response.
//! Run: cargo bench --bench review

use criterion::{criterion_group, criterion_main, Criterion};
use kube::core::admission::{AdmissionRequest, AdmissionReview};
use kube::core::DynamicObject;
use pullcheck::admission::{plan, respond, Admission};
use pullcheck::cache::{AnswerCache, CacheKey, CacheSettings};
use pullcheck::check::{
    CheckOutcome, Engine, EngineSettings, ImageResult, MutableTagAdvice, Report,
};
use pullcheck::credentials::resolve::PodCredentials;
use pullcheck::credentials::Fingerprint;
use pullcheck::metrics::Metrics;
use pullcheck::platform::PlatformCheck;
use pullcheck::policy::{decide, Mode, PolicySettings};
use pullcheck::reference::ImageRef;
use pullcheck::registry::Resolved;
use pullcheck::registry::{RegistryClient, RegistrySettings};
use serde_json::json;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

fn deployment_review() -> Vec<u8> {
    let containers: Vec<_> = [
        ("web", "nginx:1.27.3"),
        ("sidecar", "ghcr.io/example/envoy:v1.31.0"),
        ("metrics", "quay.io/prometheus/node-exporter:v1.8.2"),
        ("cache", "registry.example.com:5000/team/redis@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"),
        ("tools", "busybox"),
    ]
    .iter()
    .map(|(name, image)| {
        json!({
            "name": name, "image": image, "imagePullPolicy": "IfNotPresent",
            "ports": [{"containerPort": 8080, "protocol": "TCP"}],
            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
            "env": [{"name": "MODE", "value": "production"}, {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
            "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080, "scheme": "HTTP"}, "periodSeconds": 5},
            "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"
        })
    })
    .collect();
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "0c9a8d74-9cb7-44dd-b98e-09fd62def2f4",
            "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "name": "web", "namespace": "prod", "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:ci:deployer", "groups": ["system:authenticated"]},
            "object": {
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "namespace": "prod", "labels": {"app": "web"}},
                "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}},
                        "spec": {"containers": containers, "restartPolicy": "Always", "dnsPolicy": "ClusterFirst",
                                 "serviceAccountName": "web", "imagePullSecrets": [{"name": "regcred"}]}}}
            },
            "oldObject": null, "dryRun": false
        }
    }))
    .expect("json")
}

fn answers(request: &AdmissionRequest<DynamicObject>) -> Vec<ImageResult> {
    plan(request)
        .uses
        .iter()
        .map(|u| {
            let image = ImageRef::parse_normalized(&u.image).ok();
            let outcome = CheckOutcome::Found {
                resolved: Resolved {
                    digest: Some(
                        "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                            .into(),
                    ),
                    media_type: Some("application/vnd.oci.image.index.v1+json".into()),
                },
                credential_source: None,
                platforms: PlatformCheck::NotChecked,
            };
            ImageResult {
                image: u.image.clone(),
                reference: image,
                outcome,
            }
        })
        .collect()
}

fn review_path(c: &mut Criterion) {
    let body = deployment_review();
    let settings = PolicySettings::default();
    let request = serde_json::from_slice::<AdmissionReview<DynamicObject>>(&body)
        .expect("review")
        .request
        .expect("request");
    let known = answers(&request);
    assert_eq!(known.len(), 5);
    let report = |uses: &[pullcheck::workload::ImageUse]| {
        Report::build(
            PodCredentials::anonymous("prod"),
            known.clone(),
            uses,
            MutableTagAdvice::IfNotPresent,
        )
    };

    c.bench_function("parse_review_5_container_deployment", |b| {
        b.iter(|| {
            serde_json::from_slice::<AdmissionReview<DynamicObject>>(black_box(&body))
                .expect("review")
        })
    });
    c.bench_function("extract_and_plan", |b| b.iter(|| plan(black_box(&request))));
    c.bench_function("parse_5_references", |b| {
        b.iter(|| {
            for result in &known {
                black_box(ImageRef::parse_normalized(black_box(&result.image)).ok());
            }
        })
    });
    c.bench_function("decide_and_encode", |b| {
        b.iter(|| {
            let p = plan(&request);
            let report = report(&p.uses);
            let verdict = decide(Mode::Enforce, &settings, &report.findings);
            serde_json::to_vec(&respond(&request, &verdict, &p.uses, Some(&report)).into_review())
                .expect("encode")
        })
    });
    c.bench_function("whole_review_without_network", |b| {
        b.iter(|| {
            let mut review: AdmissionReview<DynamicObject> =
                serde_json::from_slice(black_box(&body)).expect("review");
            let mut request = review.request.take().expect("request");
            request.types = review.types;
            let p = plan(&request);
            let report = report(&p.uses);
            let verdict = decide(Mode::Enforce, &settings, &report.findings);
            serde_json::to_vec(&respond(&request, &verdict, &p.uses, Some(&report)).into_review())
                .expect("encode")
        })
    });
}

/// A whole review through `Admission::review` whose five images are already in the answer cache
/// (what every pod of a rollout after the first one costs): no network at all.
fn cached_review(c: &mut Criterion) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let body = deployment_review();
    let request = serde_json::from_slice::<AdmissionReview<DynamicObject>>(&body)
        .expect("review")
        .request
        .expect("request");
    let cache = AnswerCache::new(CacheSettings::default());
    runtime.block_on(async {
        for u in plan(&request).uses {
            let image = ImageRef::parse_normalized(&u.image).expect("valid");
            let key = CacheKey {
                reference: image.docker_ref_string(),
                credential: Fingerprint::anonymous(),
            };
            let answer = cache
                .get_or_fetch(key, image.digest().is_some(), async {
                    Ok(Resolved {
                        digest: Some(format!("sha256:{}", "b".repeat(64))),
                        media_type: Some("application/vnd.oci.image.index.v1+json".into()),
                    })
                })
                .await;
            assert!(answer.is_ok());
        }
    });
    let engine = Engine::new(
        RegistryClient::new(&RegistrySettings::default()).expect("client"),
        cache,
        EngineSettings {
            budget: Duration::from_secs(5),
            mutable_tags: MutableTagAdvice::IfNotPresent,
            single_manifests: true,
        },
        Arc::new(Metrics::new()),
    );
    let checker = Admission::new(Arc::new(engine), PolicySettings::default());
    // The cache really answers: a miss would try to reach registries that do not exist here.
    let review = runtime
        .block_on(checker.review(&body, Mode::Enforce))
        .expect("review");
    let response = review.response.expect("response");
    assert!(response.allowed, "{:?}", response.result);
    assert!(response.audit_annotations.contains_key("resolved-images"));
    c.bench_function("cached_review_5_container_deployment", |b| {
        b.iter(|| {
            runtime
                .block_on(checker.review(black_box(&body), Mode::Enforce))
                .expect("review")
        })
    });
}

criterion_group!(benches, review_path, cached_review);
criterion_main!(benches);
