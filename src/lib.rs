//! pullcheck: a validating admission webhook that rejects workloads whose images cannot be pulled.

//!
//! Data flows one way: a front door (`admission`, `explain`) turns its input into image uses
//! (`workload`, `extract`), the engine (`check`) resolves them with the kubelet's rules
//! (`credentials`, `registry`, `platform`, `placement`, `cache`), and `policy` turns its
//! findings into a verdict and words. Nothing below calls back up.

pub mod admission;
pub mod cache;
pub mod certs;
pub mod check;
pub mod config;
pub mod credentials;
pub mod duration;
pub mod explain;
pub mod extract;
pub mod metrics;
pub mod nodes;
pub mod placement;
pub mod platform;
pub mod policy;
pub mod reason;
pub mod reference;
pub mod registry;
pub mod server;
pub mod text;
pub mod webhook;
pub mod workload;

use config::{Cli, Command, DevCertsArgs, LogFormat, ServeArgs, Settings};
use std::sync::Arc;

/// What a command concluded, for `main` to turn into the exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conclusion {
    Done,
    /// The kubelet's pull would fail because of the workload (or the reference is invalid).
    PullFails,
    /// A second shutdown signal cut the drain short: exit with this code, as a process killed
    /// by the signal would.
    Interrupted(u8),
}

/// The composition root: the only place that knows the concrete types.
pub async fn run(cli: Cli) -> anyhow::Result<Conclusion> {
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Explain(args) => explain(args).await,
        Command::DevCerts(args) => dev_certs(&args).map(|()| Conclusion::Done),
    }
}

/// `pullcheck explain`: what the kubelet would do with one image.
async fn explain(args: config::ExplainArgs) -> anyhow::Result<Conclusion> {
    let mut registry_settings = registry::RegistrySettings::default();
    args.registries.apply(&mut registry_settings);
    let reader = match (&args.namespace, &args.service_account) {
        (Some(_), Some(_)) => {
            let client = kube_client(config::KubernetesMode::Auto)
                .await?
                .ok_or_else(|| {
                    anyhow::anyhow!("--namespace needs a Kubernetes API (KUBECONFIG or in-cluster)")
                })?;
            Some(credentials::cluster::ClusterReader::new(
                client,
                credentials::cluster::ClusterSettings::default(),
            ))
        }
        _ => None,
    };
    let input = match (&reader, &args.namespace, &args.service_account) {
        (Some(reader), Some(namespace), Some(service_account)) => {
            explain::CredentialInput::Cluster {
                reader,
                namespace,
                service_account,
            }
        }
        _ => explain::CredentialInput::Files {
            pull_secrets: &args.pull_secret,
            docker_configs: &args.docker_config,
        },
    };
    let (pod, node) = explain::credentials(input).await?;
    let engine = if args.offline {
        None
    } else {
        let policy = policy::PolicySettings::default();
        Some(
            check::Engine::new(
                registry::RegistryClient::new(&registry_settings)?,
                cache::AnswerCache::new(cache::CacheSettings::default()),
                check::EngineSettings {
                    budget: args.timeout,
                    mutable_tags: policy.mutable_tags,
                    single_manifests: false,
                },
                Arc::new(metrics::Metrics::new()),
            )
            // The kubelet tries the node keyring after the pod's secrets.
            .with_node_credentials(credentials::node::NodeCredentials {
                keyring: node.clone(),
                unchecked: Vec::new(),
            }),
        )
    };
    let explanation = explain::explain(&args.image, pod, node.as_ref(), engine.as_ref()).await;
    match args.output {
        config::OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&explanation)?),
        config::OutputFormat::Text => print!("{}", explain::render_text(&explanation)),
    }
    Ok(if explanation.pull_fails() {
        Conclusion::PullFails
    } else {
        Conclusion::Done
    })
}

async fn serve(args: ServeArgs) -> anyhow::Result<Conclusion> {
    init_logging(args.log_format, &args.log)?;
    let settings = Settings::from_args(&args)?;
    let config = &settings.config;
    let registry = registry::RegistryClient::new(&config.registries)?;
    let metrics = Arc::new(metrics::Metrics::new());
    let mut engine = check::Engine::new(
        registry,
        cache::AnswerCache::new(config.cache),
        check::EngineSettings {
            budget: config.review_timeout,
            mutable_tags: config.policy.mutable_tags,
            single_manifests: config.platforms.check_single_manifests,
        },
        metrics,
    )
    .with_node_credentials(node_credentials(&config.node_credentials)?);
    let client = kube_client(config.kubernetes.enabled).await?;
    if let Some(client) = &client {
        engine = engine.with_cluster(credentials::cluster::ClusterReader::new(
            client.clone(),
            config.kubernetes,
        ));
    }
    if let Some(nodes) = node_set(&config.platforms, client) {
        engine = engine.with_nodes(nodes);
    }
    let admission = Arc::new(admission::Admission::new(
        Arc::new(engine),
        config.policy.clone(),
    ));
    let readiness = server::Readiness::default();
    let app = webhook::router(admission, config.mode, config.max_body_bytes)
        .merge(server::health_routes(readiness.clone()));
    tracing::info!(
        listen = %settings.listen,
        mode = config.mode.as_str(),
        timeout_ms = config.review_timeout.as_millis() as u64,
        registry_failure = ?config.policy.registry_failure,
        insecure_registries = ?config.registries.insecure_registries,
        "starting pullcheck"
    );
    let server_settings = settings.server();
    let (abort, aborted) = tokio::sync::oneshot::channel();
    let serving = server::serve(
        server_settings,
        app,
        readiness,
        server::shutdown_signal(abort),
    );
    tokio::select! {
        served = serving => served?,
        Ok(code) = aborted => return Ok(Conclusion::Interrupted(u8::try_from(code).unwrap_or(1))),
    }
    tracing::info!("stopped");
    Ok(Conclusion::Done)
}

/// In-cluster configuration or KUBECONFIG; none (with a log line) when neither exists, so a
/// local run needs no cluster.
async fn kube_client(mode: config::KubernetesMode) -> anyhow::Result<Option<kube::Client>> {
    if mode == config::KubernetesMode::Off {
        tracing::info!(
            "Kubernetes API disabled: pull secrets are not read, images are checked anonymously"
        );
        return Ok(None);
    }
    match kube::Config::infer().await {
        Ok(mut config) => {
            // Every read has its own short timeout inside the review budget; kube's built-in
            // retries (up to minutes on 503) would only hide an outage from that timeout.
            config.default_retry = false;
            Ok(Some(kube::Client::try_from(config)?))
        }
        Err(e) => {
            tracing::warn!(error = %e, "no Kubernetes API configuration found: pull secrets are not read, images are checked anonymously");
            Ok(None)
        }
    }
}

/// Where node platforms come from: configuration, a watch on Nodes, or nowhere (no check).
fn node_set(
    settings: &config::PlatformSettings,
    client: Option<kube::Client>,
) -> Option<nodes::NodeSet> {
    if !settings.enabled {
        return None;
    }
    let matcher = settings.matcher.kind();
    if !settings.nodes.is_empty() {
        return Some(nodes::NodeSet::fixed(
            settings.nodes.clone(),
            matcher.unwrap_or(platform::MatcherKind::ContainerdOnly),
        ));
    }
    match client {
        Some(client) => Some(nodes::NodeSet::watch(client, matcher)),
        None => {
            tracing::info!("no Kubernetes API and no platforms.nodes: platforms are not checked");
            None
        }
    }
}

fn node_credentials(
    settings: &config::NodeCredentialSettings,
) -> anyhow::Result<credentials::node::NodeCredentials> {
    let keyring = match &settings.docker_config {
        None => None,
        Some(path) => {
            let bytes = std::fs::read(path).map_err(|e| {
                anyhow::anyhow!(
                    "cannot read nodeCredentials.dockerConfig {}: {e}",
                    path.display()
                )
            })?;
            let entries = credentials::dockerconfig::parse_config_json(&bytes).map_err(|e| {
                anyhow::anyhow!("nodeCredentials.dockerConfig {}: {e}", path.display())
            })?;
            let mut keyring = credentials::keyring::Keyring::new();
            keyring.add("node docker config", &entries);
            Some(keyring)
        }
    };
    Ok(credentials::node::NodeCredentials {
        keyring,
        unchecked: settings.registries.clone(),
    })
}

fn dev_certs(args: &DevCertsArgs) -> anyhow::Result<()> {
    let pki = certs::generate(&certs::default_sans(&args.service, &args.namespace))?;
    certs::write(&pki, &args.out)?;
    println!(
        "wrote ca.crt, ca.key, tls.crt and tls.key to {}",
        args.out.display()
    );
    Ok(())
}

fn init_logging(format: LogFormat, filter: &str) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .map_err(|e| anyhow::anyhow!("invalid log filter {filter:?}: {e}"))?;
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
    Ok(())
}
