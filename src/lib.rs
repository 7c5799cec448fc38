//! pullcheck: a validating admission webhook that rejects workloads whose images cannot be pulled.

pub mod admission;
pub mod cache;
pub mod certs;
pub mod config;
pub mod credentials;
pub mod metrics;
pub mod policy;
pub mod reason;
pub mod reference;
pub mod registry;
pub mod server;
pub mod webhook;

use config::{Cli, Command, DevCertsArgs, LogFormat, ServeArgs, Settings};
use std::sync::Arc;

/// The composition root: the only place that knows the concrete types.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::DevCerts(args) => dev_certs(&args),
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    init_logging(args.log_format, &args.log)?;
    let settings = Settings::from_args(&args)?;
    let registry = registry::RegistryClient::new(&settings.registry)?;
    let metrics = Arc::new(metrics::Metrics::new());
    let checker = Arc::new(admission::Checker::new(
        registry,
        cache::AnswerCache::new(settings.cache),
        settings.policy.clone(),
        settings.review_timeout,
        metrics,
    ));
    let readiness = server::Readiness::default();
    let app = webhook::router(checker, settings.mode, settings.max_body_bytes)
        .merge(server::health_routes(readiness.clone()));
    tracing::info!(
        listen = %settings.listen,
        mode = settings.mode.as_str(),
        timeout_ms = settings.review_timeout.as_millis() as u64,
        registry_failure = ?settings.policy.registry_failure,
        insecure_registries = ?settings.registry.insecure_registries,
        "starting pullcheck"
    );
    let server_settings =
        server::ServerSettings::new(settings.listen, &settings.tls_cert, &settings.tls_key);
    server::serve(server_settings, app, readiness, server::shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
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
