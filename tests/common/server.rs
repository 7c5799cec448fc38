//! An axum router served on 127.0.0.1 (HTTPS with the shared test PKI, or plain HTTP) from its own
//! thread and current-thread runtime, so it keeps answering whatever the test's own runtime is
//! doing (blocked, single-threaded, or gone), and a stalled handler cannot hold up shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use axum::body::Body;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::sync::oneshot;
use tower::ServiceExt as _;

use super::pki;

pub struct ServerThread {
    addr: SocketAddr,
    tls: bool,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl ServerThread {
    /// Binds 127.0.0.1:0 now (so the address is known and connectable when this returns) and
    /// serves `router` until dropped.
    pub fn spawn(name: &str, router: axum::Router, tls: bool) -> ServerThread {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let addr = listener.local_addr().expect("local address");
        let acceptor = tls.then(|| tokio_rustls::TlsAcceptor::from(Arc::new(server_tls_config())));
        let (shutdown, mut stop) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("test-{name}-{}", addr.port()))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("test server runtime");
                runtime.block_on(async move {
                    let listener =
                        tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                    loop {
                        let (tcp, _) = tokio::select! {
                            _ = &mut stop => break,
                            accepted = listener.accept() => match accepted {
                                Ok(pair) => pair,
                                Err(_) => continue,
                            },
                        };
                        let router = router.clone();
                        let acceptor = acceptor.clone();
                        tokio::spawn(async move {
                            match acceptor {
                                Some(acceptor) => {
                                    // A client that rejects our certificate ends here; that is
                                    // what some tests want to see, so it is not an error.
                                    if let Ok(stream) = acceptor.accept(tcp).await {
                                        serve_connection(stream, router).await;
                                    }
                                }
                                None => serve_connection(tcp, router).await,
                            }
                        });
                    }
                });
                // Dropping the runtime here cancels every connection task, stalled ones included.
            })
            .expect("spawn test server thread");
        ServerThread {
            addr,
            tls,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:PORT` (or `http://` for a plain server), without a trailing slash.
    pub fn base_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve_connection<S>(stream: S, router: axum::Router)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let service =
        hyper::service::service_fn(move |request: http::Request<hyper::body::Incoming>| {
            router.clone().oneshot(request.map(Body::new))
        });
    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

/// Server config with the shared leaf (localhost, 127.0.0.1), offering HTTP/2 and HTTP/1.1.
pub fn server_tls_config() -> rustls::ServerConfig {
    let leaf = &pki().leaf;
    let chain = rustls_pemfile::certs(&mut leaf.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .expect("parse leaf certificate");
    let key = rustls_pemfile::private_key(&mut leaf.key_pem.as_bytes())
        .expect("parse leaf key")
        .expect("a private key in the leaf PEM");
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .expect("server certificate and key");
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config
}
