//! The HTTPS server end to end: real TLS clients against `pullcheck::server` on 127.0.0.1.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use pullcheck::certs::{self, DevPki};
use pullcheck::server::{self, Readiness, ServerError, ServerSettings, Timeouts};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::common::{
    client_builder_over, eventually, install_crypto_provider, rustls_client_config, H2_AND_HTTP11,
};

const RELOAD_INTERVAL: Duration = Duration::from_millis(100);
/// Generous bound for anything that should happen "soon" on a loaded 2-core machine.
const PATIENCE: Duration = Duration::from_secs(10);

fn new_pki() -> DevPki {
    certs::generate(&certs::default_sans("pullcheck", "pullcheck")).expect("generate dev PKI")
}

struct Running {
    addr: SocketAddr,
    readiness: Readiness,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), ServerError>>,
}

/// What `serve` waits on before it stops accepting and drains.
type Shutdown = Pin<Box<dyn Future<Output = ()> + Send>>;

impl Running {
    /// Spawns `serve`, handing it the shutdown signal, and waits until `readiness` reports ready.
    async fn spawn<F>(
        addr: SocketAddr,
        readiness: Readiness,
        serve: impl FnOnce(Shutdown) -> F,
    ) -> Running
    where
        F: Future<Output = Result<(), ServerError>> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(Box::pin(async move {
            let _ = rx.await;
        })));
        wait_until("server becomes ready", || readiness.is_ready()).await;
        Running {
            addr,
            readiness,
            shutdown: Some(tx),
            task,
        }
    }

    fn begin_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    async fn stop(mut self) -> Result<(), ServerError> {
        self.begin_shutdown();
        tokio::time::timeout(PATIENCE, self.task)
            .await
            .expect("server stops in time")
            .expect("server task does not panic")
    }
}

fn settings(cert: &Path, key: &Path) -> ServerSettings {
    let mut settings = ServerSettings::new(
        "127.0.0.1:0".parse().expect("addr"),
        cert.to_path_buf(),
        key.to_path_buf(),
    );
    settings.reload_interval = RELOAD_INTERVAL;
    settings.timeouts = Timeouts {
        header_read_timeout: Duration::from_secs(5),
        handshake_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(5),
        drain_timeout: Duration::from_secs(5),
    };
    settings
}

/// Serves `app` and the health routes on a new 127.0.0.1 port; returns once ready.
async fn start(settings: ServerSettings, app: Router) -> Running {
    start_with(settings, app, Readiness::new()).await
}

async fn start_with(settings: ServerSettings, app: Router, readiness: Readiness) -> Running {
    install_crypto_provider();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let app = app.merge(server::health_routes(readiness.clone()));
    Running::spawn(addr, readiness.clone(), |shutdown| {
        server::serve_on(listener, settings, app, readiness, shutdown)
    })
    .await
}

async fn wait_until(what: &str, condition: impl Fn() -> bool) {
    assert!(
        eventually(PATIENCE, async || condition()).await,
        "timed out waiting until {what}"
    );
}

/// A new PKI with its leaf pair written as tls.crt/tls.key into a new temporary directory, which
/// lives as long as the returned `TempDir`.
fn leaf_files() -> (DevPki, tempfile::TempDir, PathBuf, PathBuf) {
    let pki = new_pki();
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = dir.path().join("tls.crt");
    let key = dir.path().join("tls.key");
    std::fs::write(&cert, &pki.leaf.cert_pem).expect("write cert");
    std::fs::write(&key, &pki.leaf.key_pem).expect("write key");
    (pki, dir, cert, key)
}

async fn tls_connect(
    addr: SocketAddr,
    config: rustls::ClientConfig,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::IpAddress(addr.ip().into());
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
}

/// A plain HTTP/1.1 GET with `Connection: close`; returns the status code and body.
async fn http11_get(
    stream: &mut tokio_rustls::client::TlsStream<TcpStream>,
    path: &str,
) -> (u16, String) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("write request");
    let mut raw = Vec::new();
    if let Err(e) = stream.read_to_end(&mut raw).await {
        // A peer that closes without close_notify is fine once the response is in.
        assert!(!raw.is_empty(), "no response: {e}");
    }
    let text = String::from_utf8(raw).expect("utf8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("header/body separator");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    (status, body.to_owned())
}

/// A reqwest client that trusts only `ca_pem` and offers `alpn`.
fn https_client(ca_pem: &str, alpn: &[&[u8]]) -> reqwest::Client {
    client_builder_over(rustls_client_config(ca_pem, rustls::DEFAULT_VERSIONS, alpn))
        // A fresh connection per request: rotation tests must see a new handshake's certificate.
        .pool_max_idle_per_host(0)
        .build()
        .expect("client")
}

async fn healthz_with(ca_pem: &str, addr: SocketAddr) -> Result<String, reqwest::Error> {
    https_client(ca_pem, H2_AND_HTTP11)
        .get(format!("https://{addr}/healthz"))
        .send()
        .await?
        .error_for_status()?
        .text()
        .await
}

async fn wait_until_trusted(ca_pem: &str, addr: SocketAddr) {
    let mut last = None;
    let trusted = eventually(PATIENCE, async || match healthz_with(ca_pem, addr).await {
        Ok(body) => {
            assert_eq!(body, "ok");
            true
        }
        Err(e) => {
            last = Some(e);
            false
        }
    })
    .await;
    assert!(
        trusted,
        "server never presented a certificate of the expected CA: {last:?}"
    );
}

// ---------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn serves_healthz_over_tls12_and_tls13() {
    let (pki, _dir, cert, key) = leaf_files();
    let server = start(settings(&cert, &key), Router::new()).await;

    for (version, expected) in [
        (&rustls::version::TLS12, rustls::ProtocolVersion::TLSv1_2),
        (&rustls::version::TLS13, rustls::ProtocolVersion::TLSv1_3),
    ] {
        let config = rustls_client_config(&pki.ca.cert_pem, &[version], &[b"http/1.1"]);
        let mut stream = tls_connect(server.addr, config).await.expect("handshake");
        assert_eq!(stream.get_ref().1.protocol_version(), Some(expected));
        assert_eq!(
            http11_get(&mut stream, "/healthz").await,
            (200, "ok".into())
        );
    }
    server.stop().await.expect("clean stop");
}

#[tokio::test]
async fn negotiates_http2_and_http11_through_alpn() {
    let (pki, _dir, cert, key) = leaf_files();
    let server = start(settings(&cert, &key), Router::new()).await;
    let url = format!("https://{}/healthz", server.addr);

    let h2 = https_client(&pki.ca.cert_pem, H2_AND_HTTP11)
        .get(&url)
        .send()
        .await
        .expect("h2 request");
    assert_eq!(h2.version(), reqwest::Version::HTTP_2);
    assert_eq!(h2.text().await.expect("body"), "ok");

    let h1 = https_client(&pki.ca.cert_pem, &[b"http/1.1"])
        .get(&url)
        .send()
        .await
        .expect("http/1.1 request");
    assert_eq!(h1.version(), reqwest::Version::HTTP_11);
    assert_eq!(h1.text().await.expect("body"), "ok");

    server.stop().await.expect("clean stop");
}

#[tokio::test]
async fn rejects_a_client_that_does_not_trust_the_ca() {
    let (_pki, _dir, cert, key) = leaf_files();
    let stranger = new_pki();
    let server = start(settings(&cert, &key), Router::new()).await;
    assert!(healthz_with(&stranger.ca.cert_pem, server.addr)
        .await
        .is_err());
    server.stop().await.expect("clean stop");
}

#[tokio::test]
async fn readiness_turns_true_when_listening_and_false_on_shutdown() {
    let (pki, _dir, cert, key) = leaf_files();
    let readiness = Readiness::new();
    assert!(!readiness.is_ready(), "not ready before serving");
    let server = start_with(settings(&cert, &key), Router::new(), readiness.clone()).await;

    let response = https_client(&pki.ca.cert_pem, H2_AND_HTTP11)
        .get(format!("https://{}/readyz", server.addr))
        .send()
        .await
        .expect("readyz");
    assert_eq!(response.status(), 200);

    server.stop().await.expect("clean stop");
    assert!(!readiness.is_ready(), "not ready after shutdown");
}

/// A route that reports when it starts, then takes `delay` to answer.
fn slow_app(delay: Duration) -> (Router, mpsc::UnboundedReceiver<()>) {
    let (started_tx, started_rx) = mpsc::unbounded_channel();
    let app = Router::new().route(
        "/slow",
        get(move || {
            let started_tx = started_tx.clone();
            async move {
                let _ = started_tx.send(());
                tokio::time::sleep(delay).await;
                "done"
            }
        }),
    );
    (app, started_rx)
}

#[tokio::test]
async fn in_flight_request_finishes_after_shutdown_starts() {
    for alpn in [H2_AND_HTTP11, &[b"http/1.1" as &[u8]][..]] {
        let (pki, _dir, cert, key) = leaf_files();
        let (app, mut started) = slow_app(Duration::from_millis(800));
        let mut server = start(settings(&cert, &key), app).await;

        let client = https_client(&pki.ca.cert_pem, alpn);
        let url = format!("https://{}/slow", server.addr);
        let request = tokio::spawn(async move {
            let response = client.get(url).send().await?;
            let version = response.version();
            let status = response.status();
            Ok::<_, reqwest::Error>((version, status, response.text().await?))
        });
        tokio::time::timeout(PATIENCE, started.recv())
            .await
            .expect("request reaches the handler");

        server.begin_shutdown();
        wait_until("readiness drops", || !server.readiness.is_ready()).await;
        // Shutdown has started: new connections are refused while the slow request is still running.
        wait_until_refused(server.addr).await;
        assert!(!server.task.is_finished(), "serve waits for the request");

        let (version, status, body) = tokio::time::timeout(PATIENCE, request)
            .await
            .expect("response in time")
            .expect("no panic")
            .unwrap_or_else(|e| panic!("in-flight request over {alpn:?} must complete: {e}"));
        assert_eq!(
            (status.as_u16(), body.as_str()),
            (200, "done"),
            "{version:?}"
        );
        server.stop().await.expect("clean stop");
    }
}

async fn wait_until_refused(addr: SocketAddr) {
    assert!(
        eventually(PATIENCE, async || TcpStream::connect(addr).await.is_err()).await,
        "listener still accepting"
    );
}

#[tokio::test]
async fn drain_timeout_cuts_off_requests_that_take_too_long() {
    let (pki, _dir, cert, key) = leaf_files();
    let (app, mut started) = slow_app(Duration::from_secs(60));
    let mut settings = settings(&cert, &key);
    settings.timeouts.drain_timeout = Duration::from_millis(300);
    let server = start(settings, app).await;

    let client = https_client(&pki.ca.cert_pem, H2_AND_HTTP11);
    let url = format!("https://{}/slow", server.addr);
    let request = tokio::spawn(async move { client.get(url).send().await });
    tokio::time::timeout(PATIENCE, started.recv())
        .await
        .expect("request reaches the handler");

    let began = Instant::now();
    server.stop().await.expect("stop after drain timeout");
    assert!(
        began.elapsed() < Duration::from_secs(5),
        "serve returned after {:?}, the drain timeout is 300 ms",
        began.elapsed()
    );
    let outcome = tokio::time::timeout(PATIENCE, request)
        .await
        .expect("client sees the connection end")
        .expect("no panic");
    assert!(outcome.is_err(), "the cut-off request cannot succeed");
}

#[tokio::test]
async fn picks_up_rewritten_certificate_files_without_restart() {
    let old = new_pki();
    let new = new_pki();
    let dir = tempfile::tempdir().expect("tempdir");
    certs::write(&old, dir.path()).expect("write old");
    let server = start(
        settings(&dir.path().join("tls.crt"), &dir.path().join("tls.key")),
        Router::new(),
    )
    .await;
    assert_eq!(
        healthz_with(&old.ca.cert_pem, server.addr)
            .await
            .expect("old CA"),
        "ok"
    );
    assert!(
        healthz_with(&new.ca.cert_pem, server.addr).await.is_err(),
        "the new CA is not trusted before rotation"
    );

    certs::write(&new, dir.path()).expect("write new");
    wait_until_trusted(&new.ca.cert_pem, server.addr).await;
    assert!(
        healthz_with(&old.ca.cert_pem, server.addr).await.is_err(),
        "the old leaf is no longer served"
    );
    server.stop().await.expect("clean stop");
}

/// Lays out a directory like a Kubernetes Secret volume: `..<ts>/` holds the files, `..data` points at it,
/// and `tls.crt`/`tls.key` are symlinks through `..data`.
fn secret_volume_version(dir: &Path, version: &str, pki: &DevPki) {
    let data = dir.join(version);
    std::fs::create_dir(&data).expect("mkdir version");
    std::fs::write(data.join("tls.crt"), &pki.leaf.cert_pem).expect("write cert");
    std::fs::write(data.join("tls.key"), &pki.leaf.key_pem).expect("write key");
}

fn set_mtime(path: &Path, mtime: std::time::SystemTime) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .expect("open")
        .set_modified(mtime)
        .expect("set mtime");
}

#[cfg(unix)]
#[tokio::test]
async fn picks_up_a_secret_volume_symlink_swap_without_restart() {
    use std::os::unix::fs::symlink;

    let old = new_pki();
    let new = new_pki();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    secret_volume_version(dir, "..2026_01_01_00_00_00.1", &old);
    symlink("..2026_01_01_00_00_00.1", dir.join("..data")).expect("..data");
    symlink("..data/tls.crt", dir.join("tls.crt")).expect("tls.crt");
    symlink("..data/tls.key", dir.join("tls.key")).expect("tls.key");

    let server = start(
        settings(&dir.join("tls.crt"), &dir.join("tls.key")),
        Router::new(),
    )
    .await;
    assert_eq!(
        healthz_with(&old.ca.cert_pem, server.addr)
            .await
            .expect("old CA"),
        "ok"
    );

    // The kubelet's atomic writer: new version directory, new symlink, rename over ..data, remove the old
    // directory. Give the new files the old mtime so only their content tells them apart.
    let old_mtime = std::fs::metadata(dir.join("tls.crt"))
        .expect("stat")
        .modified()
        .expect("mtime");
    secret_volume_version(dir, "..2026_01_01_00_05_00.2", &new);
    for name in ["tls.crt", "tls.key"] {
        set_mtime(&dir.join("..2026_01_01_00_05_00.2").join(name), old_mtime);
    }
    symlink("..2026_01_01_00_05_00.2", dir.join("..data_tmp")).expect("..data_tmp");
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).expect("swap ..data");
    std::fs::remove_dir_all(dir.join("..2026_01_01_00_00_00.1")).expect("remove old version");
    assert_eq!(
        std::fs::metadata(dir.join("tls.crt"))
            .expect("stat")
            .modified()
            .expect("mtime"),
        old_mtime,
        "same path, same mtime"
    );

    wait_until_trusted(&new.ca.cert_pem, server.addr).await;
    assert!(healthz_with(&old.ca.cert_pem, server.addr).await.is_err());
    server.stop().await.expect("clean stop");
}

#[tokio::test]
async fn keeps_serving_the_old_pair_when_new_files_are_broken() {
    let (old, _dir, cert, key) = leaf_files();
    let new = new_pki();
    let server = start(settings(&cert, &key), Router::new()).await;

    // Unparseable certificate, then a valid certificate whose key is not in tls.key.
    for broken_cert in [
        "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n",
        new.leaf.cert_pem.as_str(),
    ] {
        std::fs::write(&cert, broken_cert).expect("write broken cert");
        tokio::time::sleep(RELOAD_INTERVAL * 5).await;
        assert_eq!(
            healthz_with(&old.ca.cert_pem, server.addr)
                .await
                .expect("the last good pair keeps serving"),
            "ok"
        );
        assert!(healthz_with(&new.ca.cert_pem, server.addr).await.is_err());
    }

    // Once the matching key arrives the reloader, still running, switches.
    std::fs::write(&key, &new.leaf.key_pem).expect("write new key");
    wait_until_trusted(&new.ca.cert_pem, server.addr).await;
    server.stop().await.expect("clean stop");
}

/// Reads until the server closes the connection; returns how long that took, or None if it stayed open.
async fn closed_within<S: tokio::io::AsyncRead + Unpin>(
    stream: &mut S,
    limit: Duration,
) -> Option<Duration> {
    let began = Instant::now();
    let mut buf = [0u8; 1024];
    let read_all = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(limit, read_all)
        .await
        .ok()
        .map(|()| began.elapsed())
}

fn slow_settings(cert: &Path, key: &Path) -> ServerSettings {
    let mut settings = settings(cert, key);
    settings.timeouts = Timeouts {
        header_read_timeout: Duration::from_millis(500),
        handshake_timeout: Duration::from_millis(500),
        idle_timeout: Duration::from_millis(500),
        ..settings.timeouts
    };
    settings
}

#[tokio::test]
async fn disconnects_an_http11_client_that_sends_headers_too_slowly() {
    let (pki, _dir, cert, key) = leaf_files();
    let server = start(slow_settings(&cert, &key), Router::new()).await;

    let config = rustls_client_config(&pki.ca.cert_pem, &[&rustls::version::TLS13], &[b"http/1.1"]);
    let stream = tls_connect(server.addr, config).await.expect("handshake");
    let (mut reader, mut writer) = tokio::io::split(stream);
    let trickle = tokio::spawn(async move {
        writer
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")
            .await?;
        // One header line every 100 ms: always some progress, never the end of the headers.
        for i in 0..100 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            writer
                .write_all(format!("X-Slow-{i}: x\r\n").as_bytes())
                .await?;
        }
        Ok::<_, std::io::Error>(())
    });
    let took = closed_within(&mut reader, Duration::from_secs(5))
        .await
        .expect("server closes a connection whose headers never finish");
    assert!(
        took >= Duration::from_millis(300),
        "closed after {took:?}, before the timeout could have run"
    );
    trickle.abort();
    server.stop().await.expect("clean stop");
}

#[tokio::test]
async fn disconnects_an_http2_client_that_never_sends_a_request() {
    let (pki, _dir, cert, key) = leaf_files();
    let server = start(slow_settings(&cert, &key), Router::new()).await;

    let config = rustls_client_config(&pki.ca.cert_pem, &[&rustls::version::TLS13], &[b"h2"]);
    let mut stream = tls_connect(server.addr, config).await.expect("handshake");
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    // Only the connection preface: never a HEADERS frame.
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .expect("preface");
    closed_within(&mut stream, Duration::from_secs(5))
        .await
        .expect("server closes an HTTP/2 connection without requests");
    server.stop().await.expect("clean stop");
}

#[tokio::test]
async fn disconnects_a_client_that_never_finishes_the_tls_handshake() {
    let (_pki, _dir, cert, key) = leaf_files();
    let server = start(slow_settings(&cert, &key), Router::new()).await;

    let mut tcp = TcpStream::connect(server.addr).await.expect("connect");
    let took = closed_within(&mut tcp, Duration::from_secs(5))
        .await
        .expect("server closes a silent TCP connection");
    assert!(took >= Duration::from_millis(300), "closed after {took:?}");
    server.stop().await.expect("clean stop");
}

#[tokio::test]
async fn keeps_a_connection_with_a_request_in_progress_past_the_header_timeout() {
    let (pki, _dir, cert, key) = leaf_files();
    // The handler takes three header timeouts; the idle guard must not count that as idleness.
    let (app, _started) = slow_app(Duration::from_millis(1500));
    let server = start(slow_settings(&cert, &key), app).await;
    for alpn in [&[b"h2" as &[u8]][..], &[b"http/1.1" as &[u8]][..]] {
        let response = https_client(&pki.ca.cert_pem, alpn)
            .get(format!("https://{}/slow", server.addr))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{alpn:?}: {e}"));
        assert_eq!(response.text().await.expect("body"), "done");
    }
    server.stop().await.expect("clean stop");
}

#[tokio::test]
async fn startup_errors_name_the_missing_file_and_the_busy_address() {
    install_crypto_provider();
    let (_pki, _dir, cert, key) = leaf_files();

    let missing = cert.with_file_name("nope.crt");
    let err = server::serve(
        settings(&missing, &key),
        Router::new(),
        Readiness::new(),
        std::future::pending(),
    )
    .await
    .expect_err("missing certificate");
    assert!(matches!(err, ServerError::Tls(_)), "{err:?}");
    assert!(err.to_string().contains("nope.crt"), "{err}");

    let occupied = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = occupied.local_addr().expect("addr");
    let mut busy = settings(&cert, &key);
    busy.listen = addr;
    let readiness = Readiness::new();
    let err = server::serve(
        busy,
        Router::new(),
        readiness.clone(),
        std::future::pending(),
    )
    .await
    .expect_err("address in use");
    assert!(matches!(err, ServerError::Bind { .. }), "{err:?}");
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
    assert!(!readiness.is_ready());
}

#[tokio::test]
async fn serve_binds_the_configured_address() {
    install_crypto_provider();
    let (pki, _dir, cert, key) = leaf_files();
    // Pick a free port, release it, and hand it to serve.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    let mut settings = settings(&cert, &key);
    settings.listen = addr;
    let readiness = Readiness::new();
    let app = server::health_routes(readiness.clone());
    let server = Running::spawn(addr, readiness.clone(), |shutdown| {
        server::serve(settings, app, readiness, shutdown)
    })
    .await;
    assert_eq!(
        healthz_with(&pki.ca.cert_pem, addr).await.expect("healthz"),
        "ok"
    );
    server.stop().await.expect("clean stop");
}
