//! An axum router served on 127.0.0.1 (HTTPS with the shared test PKI, or plain HTTP) from its own
//! thread and current-thread runtime, so it keeps answering whatever the test's own runtime is
//! doing (blocked, single-threaded, or gone), and a stalled handler cannot hold up shutdown.
//!
//! Every request is recorded as a [`RecordedRequest`] before the router sees it: the fakes built
//! on this (registry, API server, token service) share one record type and one request log.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use axum::body::Body;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::sync::oneshot;
use tower::ServiceExt as _;

use super::{base_url, pki};

/// One request as a test server received it. The router's handlers find it among the request's
/// extensions (`axum::Extension<RecordedRequest>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// The raw query string, if any (kube sends e.g. `&watch=true&resourceVersion=12`).
    pub query: Option<String>,
    pub headers: Vec<(String, String)>,
    /// 0 for the first request this server received, 1 for the next, ...
    pub sequence: usize,
    /// `https://127.0.0.1:PORT` (`http://` for a plain server) of the server that received it.
    pub base_url: String,
}

impl RecordedRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The decoded value of query parameter `name` (first occurrence).
    pub fn param(&self, name: &str) -> Option<String> {
        let query = self.query.as_deref()?;
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    /// The token of an `Authorization: Bearer <token>` header.
    pub fn bearer(&self) -> Option<&str> {
        let value = self.header("authorization")?;
        let (scheme, token) = value.split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then_some(token.trim())
    }
}

/// Every request a server received, oldest first, and how many it received in all (a cleared
/// log keeps counting, so sequence numbers never repeat).
#[derive(Default)]
struct RequestLog {
    received: usize,
    requests: Vec<RecordedRequest>,
}

impl RequestLog {
    fn record<B>(&mut self, request: &http::Request<B>, base_url: &str) -> RecordedRequest {
        let recorded = RecordedRequest {
            method: request.method().as_str().to_string(),
            path: request.uri().path().to_string(),
            query: request.uri().query().map(str::to_string),
            headers: request
                .headers()
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            sequence: self.received,
            base_url: base_url.to_string(),
        };
        self.received += 1;
        self.requests.push(recorded.clone());
        recorded
    }
}

type SharedLog = Arc<Mutex<RequestLog>>;

fn lock(log: &SharedLog) -> MutexGuard<'_, RequestLog> {
    // A test that panicked while holding the lock must not hide what was recorded.
    log.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub struct ServerThread {
    addr: SocketAddr,
    tls: bool,
    log: SharedLog,
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
        let log = SharedLog::default();
        let recorder = Recorder {
            log: log.clone(),
            base_url: base_url(addr, tls),
        };
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
                        let recorder = recorder.clone();
                        tokio::spawn(async move {
                            match acceptor {
                                Some(acceptor) => {
                                    // A client that rejects our certificate ends here; that is
                                    // what some tests want to see, so it is not an error.
                                    if let Ok(stream) = acceptor.accept(tcp).await {
                                        serve_connection(stream, router, recorder).await;
                                    }
                                }
                                None => serve_connection(tcp, router, recorder).await,
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
            log,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:PORT` (or `http://` for a plain server), without a trailing slash.
    pub fn base_url(&self) -> String {
        base_url(self.addr, self.tls)
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.log).requests.clone()
    }

    /// How many requests so far `matches` holds for.
    pub fn count_requests(&self, matches: impl Fn(&RecordedRequest) -> bool) -> usize {
        lock(&self.log)
            .requests
            .iter()
            .filter(|r| matches(r))
            .count()
    }

    /// Forgets the requests so far (sequence numbers go on).
    pub fn clear_requests(&self) {
        lock(&self.log).requests.clear();
    }
}

/// Records each request of a connection in the server's log.
#[derive(Clone)]
struct Recorder {
    log: SharedLog,
    base_url: String,
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

async fn serve_connection<S>(stream: S, router: axum::Router, recorder: Recorder)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let service =
        hyper::service::service_fn(move |mut request: http::Request<hyper::body::Incoming>| {
            let recorded = lock(&recorder.log).record(&request, &recorder.base_url);
            request.extensions_mut().insert(recorded);
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
