//! One `Reason` drives each finding's metric label and its log field. This table holds, for
//! every variant, an AdmissionReview that produces it through the real binary, and checks that
//! the counters `pullcheck_image_checks_total{reason}` that moved during that one review are
//! exactly the reasons its "review" log line names.
//!
//! Rows that need the same setup share one webhook process: everything runs against one
//! `pullcheck serve` with the default budget, except the stalling registry, which gets a second
//! process with a short `--timeout` so that the budget runs out quickly.

use std::collections::BTreeMap;

use crate::common::apiserver::FakeApiServer;
use crate::common::review::{container, container_with_policy, pod_spec, Review, Workload};
use crate::common::webhook::{Webhook, WebhookOptions};
use crate::common::{
    FakeRegistry, Fixtures, IndexFlavor, Platform, RecordedRequest, RegistryAuth, Reply,
    TestRegistry,
};
use base64::Engine as _;
use pullcheck::reason::Reason;
use serde_json::{json, Value};

/// The pods' namespace; the one whose secrets the API server fails to serve is [`OUTAGE`].
const NS: &str = "shop";
const OUTAGE: &str = "outage";

/// Both webhooks' configuration: a mixed cluster (so an index can cover part of it), the
/// default mutable-tag advice spelled out, and a registry nodes pull from on their own.
const CONFIG: &str = "\
mutableTags: ifNotPresent
platforms:
  nodes: [linux/amd64, linux/arm64]
nodeCredentials:
  registries: ['*.dkr.ecr.*.amazonaws.com']
";

/// An image in a registry that nodes reach with a credential provider (matches [`CONFIG`]).
const ECR_IMAGE: &str = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop/app:v1";

/// Repositories of pushed images that no node of [`CONFIG`] can run.
const S390X_INDEX: &str = "s390x/index";
const S390X_SINGLE: &str = "s390x/single";

/// Which of the two webhook processes a row's review goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Budget {
    /// The default budget (5 s).
    Default,
    /// `--timeout 1s`, for the registry that never answers.
    Short,
}

/// One reason and a review that produces it.
struct Row {
    reason: Reason,
    /// What else the same review produces (the image of a pod with a skipped secret is still
    /// found), so a row cannot pass by producing something other than what it says.
    also: &'static [Reason],
    budget: Budget,
    review: fn(&World) -> Review,
}

fn rows() -> Vec<Row> {
    let row = |reason, budget, review| Row {
        reason,
        also: &[],
        budget,
        review,
    };
    vec![
        // An index that provides both node platforms.
        row(Reason::Ok, Budget::Default, |w| {
            w.pod(Reason::Ok, &w.open.image(Fixtures::MULTI, "v1"))
        }),
        row(Reason::InvalidReference, Budget::Default, |w| {
            w.pod_with(
                Reason::InvalidReference,
                NS,
                container_with_policy("app", "Nginx:1.27", "IfNotPresent"),
                &[],
            )
        }),
        row(Reason::TagNotFound, Budget::Default, |w| {
            w.pod(
                Reason::TagNotFound,
                &w.open.image(Fixtures::APP, "v9.9.9-missing"),
            )
        }),
        row(Reason::RepositoryNotFound, Budget::Default, |w| {
            w.pod(
                Reason::RepositoryNotFound,
                &w.open.image("public/nope", "v1"),
            )
        }),
        // An anonymous pull from a registry with htpasswd auth.
        row(Reason::Unauthorized, Budget::Default, |w| {
            w.pod(
                Reason::Unauthorized,
                &w.locked.image(Fixtures::PRIVATE, "v1"),
            )
        }),
        row(Reason::Forbidden, Budget::Default, |w| {
            w.pod(Reason::Forbidden, &w.fake.image("denied/app", "v1"))
        }),
        row(Reason::RateLimited, Budget::Default, |w| {
            w.pod(Reason::RateLimited, &w.fake.image("limited/app", "v1"))
        }),
        // A bound port nobody listens on: connection refused.
        row(Reason::Unreachable, Budget::Default, |w| {
            w.pod(Reason::Unreachable, &format!("{}/shop/app:v1", w.closed))
        }),
        row(Reason::Timeout, Budget::Short, |w| {
            w.pod(Reason::Timeout, &w.fake.image("stalled/app", "v1"))
        }),
        row(Reason::RegistryError, Budget::Default, |w| {
            w.pod(Reason::RegistryError, &w.fake.image("broken/app", "v1"))
        }),
        // `:latest` pulled IfNotPresent, of an index covering every node.
        row(Reason::MutableTag, Budget::Default, |w| {
            w.pod_with(
                Reason::MutableTag,
                NS,
                container_with_policy(
                    "app",
                    &w.open.image(Fixtures::MULTI, "latest"),
                    "IfNotPresent",
                ),
                &[],
            )
        }),
        // A pull secret the kubelet cannot parse: the pod is the subject, its image is not
        // checked at all (every pull of the pod fails).
        row(Reason::SecretInvalid, Budget::Default, |w| {
            w.pod_with(
                Reason::SecretInvalid,
                NS,
                container("app", &w.open.image(Fixtures::LIST, "v1")),
                &["garbled"],
            )
        }),
        // A referenced secret that does not exist is skipped; the image is still found.
        Row {
            also: &[Reason::Ok],
            ..row(Reason::SecretIgnored, Budget::Default, |w| {
                w.pod_with(
                    Reason::SecretIgnored,
                    NS,
                    container("app", &w.open.image(Fixtures::LIST, "v1")),
                    &["absent"],
                )
            })
        },
        // The API server answers 503 for everything in this namespace.
        row(Reason::CredentialsUnknown, Budget::Default, |w| {
            w.pod_with(
                Reason::CredentialsUnknown,
                OUTAGE,
                container("app", &w.open.image(Fixtures::LIST, "v1")),
                &["regcred"],
            )
        }),
        row(Reason::NodeCredentials, Budget::Default, |w| {
            w.pod(Reason::NodeCredentials, ECR_IMAGE)
        }),
        // An index of linux/s390x only.
        row(Reason::PlatformMissing, Budget::Default, |w| {
            w.pod(Reason::PlatformMissing, &w.open.image(S390X_INDEX, "v1"))
        }),
        // An index of linux/arm64 only: the amd64 nodes are missing.
        row(Reason::PlatformPartial, Budget::Default, |w| {
            w.pod(
                Reason::PlatformPartial,
                &w.open.image(Fixtures::ARM_ONLY, "v1"),
            )
        }),
        // A single linux/s390x manifest: it pulls, then no node can execute it.
        row(Reason::PlatformMismatch, Budget::Default, |w| {
            w.pod(Reason::PlatformMismatch, &w.open.image(S390X_SINGLE, "v1"))
        }),
        // The cloud metadata address: refused by the default policy, never contacted.
        row(Reason::AddressNotAllowed, Budget::Default, |w| {
            w.pod(
                Reason::AddressNotAllowed,
                "169.254.169.254:5000/shop/app:v1",
            )
        }),
        // The harness allows 127.0.0.0/8 for its registries; the IPv6 loopback stays the
        // node's own.
        row(Reason::NodeLocal, Budget::Default, |w| {
            w.pod(Reason::NodeLocal, "[::1]:5000/shop/app:v1")
        }),
    ]
}

/// Everything the rows' reviews reach, and the two webhooks that answer them.
struct World {
    /// No auth: the fixtures, `multi/app:latest` and the s390x images.
    open: TestRegistry,
    /// htpasswd auth, nothing pushed: anonymous pulls are refused.
    locked: TestRegistry,
    /// Answers by repository: `denied` 403, `limited` 429, `broken` 500, `stalled` never.
    fake: FakeRegistry,
    /// `127.0.0.1:PORT` of a port bound but not listening, held by `_closed`.
    closed: String,
    _closed: tokio::net::TcpSocket,
    _api: FakeApiServer,
    _kubeconfig_dir: tempfile::TempDir,
    default: Webhook,
    short: Webhook,
}

impl World {
    async fn start() -> World {
        let (open, locked) = tokio::join!(
            TestRegistry::start(RegistryAuth::None),
            TestRegistry::start(RegistryAuth::htpasswd(&[("alice", "wonderland")])),
        );
        Fixtures::seed(&open).await;
        let s390x = [Platform::new("linux", "s390x", None)];
        tokio::join!(
            open.retag(Fixtures::MULTI, "v1", "latest"),
            open.push_index(S390X_INDEX, "v1", &s390x, IndexFlavor::Oci),
            open.push_image(S390X_SINGLE, "v1", s390x[0].clone()),
        );
        let fake = FakeRegistry::start(by_repository);

        let closed_socket = tokio::net::TcpSocket::new_v4().expect("socket");
        closed_socket
            .bind("127.0.0.1:0".parse().expect("address"))
            .expect("bind");
        let closed = closed_socket
            .local_addr()
            .expect("local address")
            .to_string();

        let api = FakeApiServer::start();
        api.put(json!({
            "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
            "metadata": {"name": "garbled", "namespace": NS},
            "data": {".dockerconfigjson": base64::engine::general_purpose::STANDARD.encode("{\"auths\": {")},
        }));
        api.set_path_status(&format!("/api/v1/namespaces/{OUTAGE}"), Some(503));
        let kubeconfig_dir = tempfile::tempdir().expect("tempdir");
        let kubeconfig = api.kubeconfig(kubeconfig_dir.path());
        let kubeconfig = kubeconfig.display().to_string();

        let (default, short) = tokio::join!(
            WebhookOptions::default()
                .config(CONFIG)
                .env("KUBECONFIG", &kubeconfig)
                .start(),
            WebhookOptions::default()
                .config(CONFIG)
                .env("KUBECONFIG", &kubeconfig)
                .timeout("1s")
                .start(),
        );
        World {
            open,
            locked,
            fake,
            closed,
            _closed: closed_socket,
            _api: api,
            _kubeconfig_dir: kubeconfig_dir,
            default,
            short,
        }
    }

    fn webhook(&self, budget: Budget) -> &Webhook {
        match budget {
            Budget::Default => &self.default,
            Budget::Short => &self.short,
        }
    }

    /// A CREATE of a Pod in [`NS`] named after `reason`, whose one container runs `image`.
    fn pod(&self, reason: Reason, image: &str) -> Review {
        self.pod_with(reason, NS, container("app", image), &[])
    }

    fn pod_with(&self, reason: Reason, namespace: &str, app: Value, secrets: &[&str]) -> Review {
        let mut spec = pod_spec(vec![app]);
        if !secrets.is_empty() {
            spec["imagePullSecrets"] = secrets.iter().map(|s| json!({"name": s})).collect();
        }
        let name = reason.as_str().replace('_', "-");
        Review::create(Workload::Pod, Workload::Pod.object(&name, namespace, spec))
    }
}

/// The scripted registry: the first path segment of the repository picks the failure.
fn by_repository(request: &RecordedRequest) -> Reply {
    let repository = request
        .path
        .strip_prefix("/v2/")
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_default();
    match repository {
        "" => Reply::status(200)
            .header("docker-distribution-api-version", "registry/2.0")
            .body("{}"),
        "denied" => {
            Reply::registry_error(403, "DENIED", "requested access to the resource is denied")
        }
        "limited" => Reply::too_many_requests_secs(30),
        "broken" => Reply::registry_error(500, "UNKNOWN", "storage on fire"),
        "stalled" => Reply::Stall,
        _ => Reply::registry_error(404, "NAME_UNKNOWN", "repository name not known to registry"),
    }
}

/// `pullcheck_image_checks_total` by reason label, from a `/metrics` page.
fn image_check_counters(metrics: &str) -> BTreeMap<String, u64> {
    metrics
        .lines()
        .filter_map(|line| line.strip_prefix("pullcheck_image_checks_total{reason=\""))
        .map(|rest| {
            let (label, value) = rest
                .split_once("\"} ")
                .unwrap_or_else(|| panic!("unexpected counter line: {rest}"));
            let value = value
                .trim()
                .parse()
                .unwrap_or_else(|e| panic!("counter {label} is not a count ({e}): {value}"));
            (label.to_string(), value)
        })
        .collect()
}

async fn counters(webhook: &Webhook) -> BTreeMap<String, u64> {
    let (status, text) = webhook.get("/metrics").await;
    assert_eq!(status, 200, "GET /metrics: {text}");
    image_check_counters(&text)
}

/// How much each counter went up between two readings (only those that moved).
fn moved(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .filter_map(|(label, &now)| {
            let was = before.get(label).copied().unwrap_or(0);
            assert!(now >= was, "counter {label} went down: {was} -> {now}");
            (now > was).then(|| (label.clone(), now - was))
        })
        .collect()
}

/// The `reasons` field of the review's log line: labels joined by commas (empty for none).
fn logged_reasons(line: &Value) -> Vec<String> {
    let Some(text) = line["reasons"].as_str() else {
        panic!("no reasons field in {line}");
    };
    text.split(',')
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// Each label with how many times it occurs.
fn tally<'a>(labels: impl IntoIterator<Item = &'a str>) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for label in labels {
        *out.entry(label.to_string()).or_insert(0) += 1;
    }
    out
}

/// Reviews `row` on its webhook with nothing else in flight; what disagreed, if anything.
async fn disagreement(world: &World, row: &Row) -> Option<String> {
    let webhook = world.webhook(row.budget);
    let review = (row.review)(world);
    let before = counters(webhook).await;
    let answer = webhook.review(&review).await;
    let after = counters(webhook).await;
    let counted = moved(&before, &after);

    // The line is written before the answer is sent.
    let lines: Vec<Value> = webhook
        .review_log_lines()
        .into_iter()
        .filter(|l| l["uid"] == review.uid())
        .collect();
    let [line] = lines.as_slice() else {
        return Some(format!(
            "{}: {} review log lines for uid {}, expected 1:\n{}",
            row.reason,
            lines.len(),
            review.uid(),
            webhook.log()
        ));
    };
    let logged = logged_reasons(line);
    let label = row.reason.as_str();
    let mut wrong = Vec::new();
    if !logged.iter().any(|l| l == label) {
        wrong.push(format!("the log line does not name {label}"));
    }
    if !counted.contains_key(label) {
        wrong.push(format!("the counter for {label} did not go up"));
    }
    let logged_tally = tally(logged.iter().map(String::as_str));
    if logged_tally != counted {
        wrong.push("the counters that moved are not the reasons logged".to_string());
    }
    let expected = tally(
        std::iter::once(row.reason)
            .chain(row.also.iter().copied())
            .map(Reason::as_str),
    );
    if logged_tally != expected {
        wrong.push(format!(
            "the review was meant to produce {expected:?} (is the row still honest?)"
        ));
    }
    (!wrong.is_empty()).then(|| {
        format!(
            "{label}: {}\n  log reasons: {logged:?}\n  counters moved: {counted:?}\n  answer: {}",
            wrong.join("; "),
            answer.describe()
        )
    })
}

#[tokio::test]
async fn each_reason_is_counted_under_exactly_the_labels_its_review_log_line_names() {
    let table = rows();
    for row in &table {
        assert_eq!(
            table.iter().filter(|r| r.reason == row.reason).count(),
            1,
            "two rows for {:?}",
            row.reason
        );
    }
    // Every variant needs a row: a new reason fails here until someone shows it agrees too.
    let ordered: Vec<&Row> = Reason::ALL
        .iter()
        .map(|reason| {
            table
                .iter()
                .find(|row| row.reason == *reason)
                .unwrap_or_else(|| {
                    panic!("no row for Reason::{reason:?}: add a review that produces it")
                })
        })
        .collect();
    assert_eq!(
        ordered.len(),
        table.len(),
        "a row for a reason not in Reason::ALL"
    );

    let world = World::start().await;
    let mut failures = Vec::new();
    for row in ordered {
        if let Some(failure) = disagreement(&world, row).await {
            failures.push(failure);
        }
    }
    assert!(
        failures.is_empty(),
        "rows that failed:\n{}",
        failures.join("\n")
    );
}
