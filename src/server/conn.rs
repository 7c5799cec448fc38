//! One accepted TCP connection: TLS handshake, HTTP/1.1 or HTTP/2, idle and drain handling.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use super::Timeouts;

/// HTTP/2 keep-alive pings find peers that vanished without closing (node gone, network partition).
const H2_KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(30);
const H2_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything a connection task needs, shared by all of them.
pub(crate) struct ConnShared {
    pub(crate) acceptor: TlsAcceptor,
    pub(crate) app: Router,
    pub(crate) handshake_timeout: Duration,
    /// Also bounds the graceful close of a connection that idled out.
    pub(crate) idle_timeout: Duration,
    h1: auto::Builder<TokioExecutor>,
    h2: auto::Builder<TokioExecutor>,
    detect: auto::Builder<TokioExecutor>,
}

impl ConnShared {
    pub(crate) fn new(acceptor: TlsAcceptor, app: Router, timeouts: Timeouts) -> Self {
        let mut base = auto::Builder::new(TokioExecutor::new());
        base.http1()
            .timer(TokioTimer::new())
            .header_read_timeout(timeouts.header_read_timeout);
        base.http2()
            .timer(TokioTimer::new())
            .keep_alive_interval(H2_KEEP_ALIVE_INTERVAL)
            .keep_alive_timeout(H2_KEEP_ALIVE_TIMEOUT);
        Self {
            acceptor,
            app,
            handshake_timeout: timeouts.handshake_timeout,
            idle_timeout: timeouts.idle_timeout,
            // With ALPN the protocol is known; skipping version detection avoids a preface read that has
            // no timeout of its own.
            h1: base.clone().http1_only(),
            h2: base.clone().http2_only(),
            detect: base,
        }
    }

    fn builder_for(&self, alpn: Option<&[u8]>) -> &auto::Builder<TokioExecutor> {
        match alpn {
            Some(b"h2") => &self.h2,
            Some(b"http/1.1") => &self.h1,
            _ => &self.detect,
        }
    }
}

/// Counts requests in progress on one connection and when that count last changed.
///
/// hyper's HTTP/1 header read timeout has no HTTP/2 counterpart: a client could open an h2 connection and
/// never send (or trickle) a HEADERS frame. A request is only handed to the service once its headers are
/// complete, so "no request in progress for `idle_timeout`" covers slow headers on both protocols.
struct Activity {
    in_flight: AtomicUsize,
    last_change: Mutex<Instant>,
}

impl Activity {
    fn new() -> Self {
        Self {
            in_flight: AtomicUsize::new(0),
            last_change: Mutex::new(Instant::now()),
        }
    }

    fn touch(&self) {
        *self
            .last_change
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Instant::now();
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.touch();
        InFlight(self.clone())
    }

    /// When the connection becomes idle-expired, or None while a request is in progress.
    fn idle_deadline(&self, idle_timeout: Duration) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let last = *self
            .last_change
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Some(last + idle_timeout)
    }
}

struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The axum router as a hyper service, with the peer address as `ConnectInfo` and activity tracking.
#[derive(Clone)]
struct ConnService {
    app: Router,
    peer: SocketAddr,
    activity: Arc<Activity>,
}

type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<Response<axum::body::Body>, Infallible>> + Send>>;

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response<axum::body::Body>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn call(&self, mut request: Request<Incoming>) -> Self::Future {
        let in_flight = self.activity.begin();
        request.extensions_mut().insert(ConnectInfo(self.peer));
        let app = self.app.clone();
        Box::pin(async move {
            let response = app.oneshot(request).await;
            drop(in_flight);
            response
        })
    }
}

/// Resolves once the server starts draining (or is gone).
async fn drain_started(draining: &mut watch::Receiver<bool>) {
    // The guard returned by wait_for is not Send; drop it here rather than hold it across awaits.
    let _ = draining.wait_for(|d| *d).await;
}

/// Serves one connection until the client closes it, it idles out, or a drain finishes it.
pub(crate) async fn serve_connection(
    tcp: TcpStream,
    peer: SocketAddr,
    shared: Arc<ConnShared>,
    mut draining: watch::Receiver<bool>,
) {
    // Small request/response exchanges: do not let Nagle hold back the last segment.
    let _ = tcp.set_nodelay(true);
    let handshake = tokio::time::timeout(shared.handshake_timeout, shared.acceptor.accept(tcp));
    let tls = tokio::select! {
        result = handshake => match result {
            Ok(Ok(tls)) => tls,
            Ok(Err(error)) => {
                tracing::debug!(%peer, %error, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake timed out");
                return;
            }
        },
        () = drain_started(&mut draining) => return,
    };

    let builder = shared.builder_for(tls.get_ref().1.alpn_protocol());
    let activity = Arc::new(Activity::new());
    let service = ConnService {
        app: shared.app.clone(),
        peer,
        activity: activity.clone(),
    };
    let conn = builder.serve_connection(TokioIo::new(tls), service);
    tokio::pin!(conn);

    let mut next_check = Instant::now() + shared.idle_timeout;
    let result = loop {
        tokio::select! {
            result = conn.as_mut() => break result,
            () = drain_started(&mut draining) => {
                // Finish the requests in progress, refuse new ones (h1: no keep-alive, h2: GOAWAY).
                // The server bounds this wait with its drain timeout.
                conn.as_mut().graceful_shutdown();
                break conn.await;
            }
            _ = tokio::time::sleep_until(next_check) => {
                match activity.idle_deadline(shared.idle_timeout) {
                    Some(deadline) if deadline <= Instant::now() => {
                        tracing::debug!(%peer, "closing connection idle without a request");
                        conn.as_mut().graceful_shutdown();
                        match tokio::time::timeout(shared.idle_timeout, conn.as_mut()).await {
                            Ok(result) => break result,
                            Err(_) => return,
                        }
                    }
                    Some(deadline) => next_check = deadline,
                    None => next_check = Instant::now() + shared.idle_timeout,
                }
            }
        }
    };
    if let Err(error) = result {
        tracing::debug!(%peer, %error, "connection closed with an error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_deadline_waits_for_requests_in_progress() {
        let timeout = Duration::from_secs(10);
        let activity = Arc::new(Activity::new());
        let created = Instant::now();
        let idle = activity.idle_deadline(timeout).expect("idle at start");
        assert!(idle <= created + timeout);

        let request = activity.begin();
        let other = activity.begin();
        assert_eq!(activity.idle_deadline(timeout), None);
        drop(request);
        assert_eq!(
            activity.idle_deadline(timeout),
            None,
            "still busy while another request is in progress"
        );

        std::thread::sleep(Duration::from_millis(20));
        let before_end = Instant::now();
        drop(other);
        let deadline = activity.idle_deadline(timeout).expect("idle again");
        assert!(
            deadline >= before_end + timeout,
            "the idle clock restarts when the last request ends"
        );
        assert!(deadline > idle);
    }
}
