//! The HTTPS listener for the webhook: TLS with certificate reload, HTTP/1.1 and HTTP/2, health endpoints,
//! and graceful shutdown.

mod conn;
mod health;
mod signal;
mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

pub use health::{health_routes, Readiness};
pub use signal::shutdown_signal;
pub use tls::TlsError;

/// Default for [`ServerSettings::reload_interval`].
pub const DEFAULT_RELOAD_INTERVAL: Duration = Duration::from_secs(10);

/// A failed `accept` (usually EMFILE) repeats at once if retried at once; pause so the loop does not spin.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

#[derive(Clone, Debug)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    /// How often to look at the certificate files for new content.
    pub reload_interval: Duration,
    pub timeouts: Timeouts,
}

/// How long clients may take, and how long shutdown waits for them: the `server:` section of the
/// configuration, whose embedded default file also holds the `Default`.
///
/// The first three are slowloris protection: a client that opens connections and then sends
/// nothing, or trickles bytes, would otherwise hold a connection (and a task) forever.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Timeouts {
    /// How long an HTTP/1 client may take to send a request's headers.
    #[serde(with = "crate::duration")]
    pub header_read_timeout: Duration,
    /// How long a client may take to complete the TLS handshake.
    #[serde(with = "crate::duration")]
    pub handshake_timeout: Duration,
    /// How long a connection may stay open with no request in progress. hyper's header read
    /// timeout has no HTTP/2 counterpart; this also bounds an h2 client that never completes its
    /// HEADERS (a request reaches the service only once its headers are complete).
    #[serde(with = "crate::duration")]
    pub idle_timeout: Duration,
    /// How long in-flight requests may take after shutdown starts.
    #[serde(with = "crate::duration")]
    pub drain_timeout: Duration,
}

impl ServerSettings {
    /// Settings with the timeouts of the embedded default configuration.
    pub fn new(
        listen: SocketAddr,
        tls_cert: impl Into<PathBuf>,
        tls_key: impl Into<PathBuf>,
    ) -> Self {
        Self {
            listen,
            tls_cert: tls_cert.into(),
            tls_key: tls_key.into(),
            reload_interval: DEFAULT_RELOAD_INTERVAL,
            timeouts: Timeouts::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot read the listening socket's address: {0}")]
    LocalAddr(std::io::Error),
}

/// Serve `app` over HTTPS on `settings.listen` until `shutdown` resolves, then stop accepting, flip
/// readiness to false, and let in-flight requests finish (up to `drain_timeout`).
///
/// Returns Err if the initial certificate/key cannot be loaded or the address cannot be bound.
pub async fn serve(
    settings: ServerSettings,
    app: Router,
    readiness: Readiness,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    // Certificates first: a bad path is the likelier mistake, and should not hold a port while failing.
    let prepared = Prepared::new(&settings)?;
    let listener =
        TcpListener::bind(settings.listen)
            .await
            .map_err(|source| ServerError::Bind {
                addr: settings.listen,
                source,
            })?;
    prepared
        .run(listener, &settings, app, readiness, shutdown)
        .await
}

/// Like [`serve`], on a listener the caller already bound (`settings.listen` is ignored). For tests and
/// socket activation.
pub async fn serve_on(
    listener: TcpListener,
    settings: ServerSettings,
    app: Router,
    readiness: Readiness,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let prepared = Prepared::new(&settings)?;
    prepared
        .run(listener, &settings, app, readiness, shutdown)
        .await
}

/// Aborts the task when dropped, so the reloader stops even if `serve` is cancelled.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The loaded certificate and everything derived from it, before any socket exists.
struct Prepared {
    reloader: tls::Reloader,
    resolver: Arc<tls::CertResolver>,
    config: Arc<rustls::ServerConfig>,
}

impl Prepared {
    fn new(settings: &ServerSettings) -> Result<Self, ServerError> {
        // The ring provider explicitly, not the process default: the project uses ring only, and this does
        // not depend on main having installed it.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let files = tls::CertFiles {
            cert: settings.tls_cert.clone(),
            key: settings.tls_key.clone(),
        };
        let (reloader, resolver) = tls::Reloader::load(files, provider.clone())?;
        let config = Arc::new(tls::server_config(provider, resolver.clone())?);
        Ok(Self {
            reloader,
            resolver,
            config,
        })
    }

    async fn run(
        self,
        listener: TcpListener,
        settings: &ServerSettings,
        app: Router,
        readiness: Readiness,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let local_addr = listener.local_addr().map_err(ServerError::LocalAddr)?;
        let files = self.reloader.files().clone();
        let fingerprint = tls::fingerprint(&self.resolver.current());
        let _reloader = AbortOnDrop(tokio::spawn(self.reloader.run(settings.reload_interval)));
        let shared = Arc::new(conn::ConnShared::new(
            tokio_rustls::TlsAcceptor::from(self.config),
            app,
            settings.timeouts,
        ));
        let (drain_tx, drain_rx) = watch::channel(false);
        let mut connections = JoinSet::new();

        readiness.set_ready(true);
        tracing::info!(
            address = %local_addr,
            cert = %files.cert.display(),
            key = %files.key.display(),
            %fingerprint,
            "serving HTTPS"
        );

        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                Some(joined) = connections.join_next(), if !connections.is_empty() => {
                    if let Err(error) = joined {
                        if error.is_panic() {
                            tracing::error!(%error, "connection task panicked");
                        }
                    }
                }
                accepted = listener.accept() => match accepted {
                    Ok((tcp, peer)) => {
                        connections.spawn(conn::serve_connection(
                            tcp,
                            peer,
                            shared.clone(),
                            drain_rx.clone(),
                        ));
                    }
                    Err(error) => {
                        tracing::warn!(%error, "accepting a connection failed");
                        tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                    }
                },
            }
        }

        readiness.set_ready(false);
        drop(listener);
        tracing::info!(
            address = %local_addr,
            connections = connections.len(),
            drain_timeout_ms = settings.timeouts.drain_timeout.as_millis() as u64,
            "shutting down: stopped accepting, draining connections"
        );
        let _ = drain_tx.send(true);
        let drained = tokio::time::timeout(settings.timeouts.drain_timeout, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        match drained {
            Ok(()) => tracing::info!("all connections drained; server stopped"),
            Err(_) => {
                tracing::warn!(
                    remaining = connections.len(),
                    "drain timeout reached; closing the remaining connections"
                );
                connections.shutdown().await;
            }
        }
        Ok(())
    }
}
