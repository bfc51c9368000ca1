//! The accept loop: hyper HTTP/1.1 and HTTP/2 connections with the connection-level limits of
//! [`crate::api::limits::LimitArgs`] (HTTP/1.1 header read timeout against slowloris clients,
//! idle keep-alive timeout, maximum open connections), and a graceful shutdown bounded in time:
//! on the signal, stop accepting, let every connection finish its in-flight request (hyper
//! then closes it), and give up after the shutdown timeout.
//!
//! Silent sockets never keep a real client out: a connection that sends no request within the
//! header read timeout of its accept is closed (HTTP/1.1 and HTTP/2 alike), and when every
//! connection slot is taken the connection idle the longest (no request in flight) is closed
//! to make room, instead of leaving the new client in the listen backlog.
//!
//! With `--https-proxy` ([`crate::proxy`]) a CONNECT request is answered here, before the
//! router (its authority-form target has no path to route). Once graphsec has accepted one, the
//! same connection, in the same task, goes on as the TLS tunnel: it keeps its slot, its limits
//! and timers, and its part in the graceful shutdown.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::serve::Listener;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt;

/// Header fields hyper accepts on an HTTP/1.1 request (its default is 100). Past this hyper
/// answers 431 itself, with no body; below it the wire layer's 64 KiB byte limit answers in the
/// Graph envelope. hyper sets aside this many slots per request, whatever the request carries:
/// 1,024 cost 6% of a GET by id in instructions (docs/PERFORMANCE.md), 256 costs 1%; real
/// clients send a few dozen.
const HTTP1_MAX_HEADER_FIELDS: usize = 256;
/// The HTTP/2 header-list size (path included) hyper accepts: room for the default URL limit
/// and the wire layer's header-byte limit, which then answer 414/431 in the Graph envelope.
const HTTP2_MAX_HEADER_LIST_BYTES: u32 = 256 * 1024;

use crate::api::limits::LimitArgs;
use crate::proxy::{Intercepted, Interceptor, PendingSlot};

/// Serves `app` on `listener` until `shutdown` completes, then drains (bounded). With `proxy`
/// (`--https-proxy`), CONNECT requests open tunnels to the intercepted hosts (module doc).
pub async fn serve<L>(
    mut listener: L,
    app: Router,
    limits: &LimitArgs,
    proxy: Option<Arc<Interceptor>>,
    shutdown: impl Future,
) where
    L: Listener,
{
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let registry = Arc::new(Registry::default());
    // Connections watch `stop`; each holds a clone of `open_rx`, so `open_tx.closed()` resolves
    // once the last one has ended.
    let (stop_tx, stop_rx) = watch::channel(false);
    let (open_tx, open_rx) = watch::channel(());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // Wait for a free slot only while another connection is closing; with every slot held
        // by open connections, accept the newcomer anyway and make room for it by closing the
        // idlest connection (a silent socket first), so the newcomer never waits behind them.
        let (io, _addr) = tokio::select! {
            c = listener.accept() => c,
            _ = &mut shutdown => break,
        };
        let slot = match slots.clone().try_acquire_owned() {
            Ok(s) => s,
            Err(_) => {
                registry.evict_idlest();
                tokio::select! {
                    s = slots.clone().acquire_owned() => match s {
                        Ok(s) => s,
                        Err(_) => break,
                    },
                    _ = &mut shutdown => break,
                }
            }
        };
        let (id, activity) = registry.add();
        let conn = Connection {
            app: app.clone(),
            header_read_timeout: limits.header_read_timeout,
            keep_alive: limits.keep_alive_timeout,
            activity,
            proxy: proxy.clone(),
        };
        let (stop, open) = (stop_rx.clone(), open_rx.clone());
        let registry = registry.clone();
        tokio::spawn(async move {
            conn.run(io, stop).await;
            registry.remove(id);
            drop((slot, open));
        });
    }
    // New connections are refused from here on; existing ones finish their request and close.
    drop(listener);
    let _ = stop_tx.send(true);
    drop(open_rx);
    let open = open_tx.receiver_count();
    tracing::info!(connections = open, "shutdown: finishing in-flight requests");
    if tokio::time::timeout(limits.shutdown_timeout, open_tx.closed())
        .await
        .is_err()
    {
        tracing::warn!(
            connections = open_tx.receiver_count(),
            timeout = ?limits.shutdown_timeout,
            "shutdown timeout: exiting with requests still in flight (none of them was acknowledged)"
        );
    }
}

struct Connection {
    app: Router,
    header_read_timeout: Duration,
    keep_alive: Duration,
    activity: Arc<Activity>,
    proxy: Option<Arc<Interceptor>>,
}

/// Requests in flight on one connection and the time of its last activity, for the idle timer
/// and for eviction.
struct Activity {
    in_flight: AtomicUsize,
    /// Requests started on the connection.
    requests: AtomicU64,
    /// When the connection was accepted.
    started: Instant,
    /// Milliseconds since `started` of the last request's end.
    last_ms: AtomicU64,
    /// Set by [`Registry::evict_idlest`]: close now if idle.
    evict: tokio::sync::Notify,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            in_flight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            started: Instant::now(),
            last_ms: AtomicU64::new(0),
            evict: tokio::sync::Notify::new(),
        }
    }
}

/// The open connections, so that a full server can close the idlest one.
#[derive(Default)]
struct Registry {
    next: AtomicU64,
    open: std::sync::Mutex<std::collections::HashMap<u64, Arc<Activity>>>,
}

impl Registry {
    fn add(&self) -> (u64, Arc<Activity>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let a = Arc::new(Activity::new());
        if let Ok(mut m) = self.open.lock() {
            m.insert(id, a.clone());
        }
        (id, a)
    }

    fn remove(&self, id: u64) {
        if let Ok(mut m) = self.open.lock() {
            m.remove(&id);
        }
    }

    /// Asks the connection without a request in flight that has been idle the longest (a
    /// socket that never sent one first) to close.
    fn evict_idlest(&self) {
        let Ok(m) = self.open.lock() else {
            return;
        };
        let idlest = m
            .values()
            .filter(|a| a.in_flight.load(Ordering::Acquire) == 0)
            .min_by_key(|a| {
                (
                    a.requests.load(Ordering::Acquire) > 0,
                    a.started + Duration::from_millis(a.last_ms.load(Ordering::Acquire)),
                )
            });
        if let Some(a) = idlest {
            metrics::counter!(crate::ops::metrics::CONNECTIONS_EVICTED).increment(1);
            a.evict.notify_one();
        }
    }
}

impl Connection {
    /// Serves the connection; when one of its requests was a CONNECT graphsec accepted
    /// (`--https-proxy`), then the TLS tunnel on it, as a connection of its own in this task.
    async fn run<I>(self, io: I, mut stop: watch::Receiver<bool>)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let slot = self
            .proxy
            .as_ref()
            .map(|_| Arc::new(PendingSlot::default()));
        self.serve_http(io, &mut stop, slot.clone(), false).await;
        let Some(pending) = slot.and_then(|s| s.lock().ok().and_then(|mut p| p.take())) else {
            return;
        };
        if *stop.borrow() {
            return;
        }
        let host = pending.host().to_owned();
        let tunnel = tokio::select! {
            t = pending.accept() => t,
            _ = stop.changed() => None,
            _ = self.activity.evict.notified() => None,
        };
        if let Some(tls) = tunnel {
            tracing::debug!(host = host.as_str(), "proxy: serving an intercepted tunnel");
            self.serve_http(tls, &mut stop, None, true).await;
        }
    }

    /// Serves HTTP on `io` until it closes, times out, is evicted or shuts down. `slot` takes a
    /// CONNECT the proxy accepted (`None`: no proxy, or already inside a tunnel); `intercepted`
    /// marks every request as come through a tunnel.
    async fn serve_http<I>(
        &self,
        io: I,
        stop: &mut watch::Receiver<bool>,
        slot: Option<Arc<PendingSlot>>,
        intercepted: bool,
    ) where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let activity = self.activity.clone();
        let started = activity.started;
        // Requests before this one (the CONNECT of a tunnel) do not count as its first.
        let baseline = activity.requests.load(Ordering::Acquire);
        let app = self.app.clone();
        let proxy = self.proxy.clone();
        let act = activity.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            let app = app.clone();
            let act = act.clone();
            // CONNECT's target is authority-form (no path): the proxy's, not the router's
            // (which would ask for a token, then find no resource for the empty path).
            let connect = (req.method() == http::Method::CONNECT).then(|| match &proxy {
                Some(p) => p.answer_connect(&mut req, slot.as_deref()),
                None => crate::proxy::not_a_proxy(),
            });
            if intercepted {
                req.extensions_mut().insert(Intercepted);
            }
            act.in_flight.fetch_add(1, Ordering::AcqRel);
            act.requests.fetch_add(1, Ordering::AcqRel);
            async move {
                if let Some(resp) = connect {
                    act.last_ms
                        .store(started.elapsed().as_millis() as u64, Ordering::Release);
                    act.in_flight.fetch_sub(1, Ordering::AcqRel);
                    return Ok(resp);
                }
                let resp = app.oneshot(req.map(Body::new)).await;
                act.last_ms
                    .store(started.elapsed().as_millis() as u64, Ordering::Release);
                act.in_flight.fetch_sub(1, Ordering::AcqRel);
                resp
            }
        });
        // HTTP/1.1 and HTTP/2 (by ALPN over TLS, by prior knowledge in cleartext), as
        // `axum::serve` did.
        let mut builder = Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_read_timeout)
            .keep_alive(!self.keep_alive.is_zero())
            // hyper refuses more than 100 header fields itself, with a bare 431: allow more, so
            // the wire layer's byte limit answers oversize heads in the Graph envelope.
            .max_headers(HTTP1_MAX_HEADER_FIELDS);
        // Likewise for HTTP/2, whose default 16 KiB header list (the path included) is enforced
        // by the codec before any service runs, with no body.
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_header_list_size(HTTP2_MAX_HEADER_LIST_BYTES);
        // With upgrades: a CONNECT answered 200 hands the connection over (`hyper::upgrade`).
        let mut conn =
            std::pin::pin!(builder.serve_connection_with_upgrades(TokioIo::new(io), service));
        let mut closing = *stop.borrow();
        if closing {
            conn.as_mut().graceful_shutdown();
        }
        // Without keep-alive hyper closes after each response; the idle timer is not needed
        // (and would close a fresh connection before its first request).
        let watch_idle = !self.keep_alive.is_zero();
        let keep_alive = self.keep_alive;
        let mut idle_check = keep_alive;
        // The first request must arrive within the header read timeout of the accept (hyper's
        // own timer starts only once bytes arrive, and HTTP/2 has none).
        let first_request = tokio::time::sleep(self.header_read_timeout);
        let mut first_request = std::pin::pin!(first_request);
        loop {
            tokio::select! {
                _ = &mut first_request, if activity.requests.load(Ordering::Acquire) == baseline => {
                    tracing::debug!("closing a connection that sent no request");
                    break;
                }
                _ = activity.evict.notified() => {
                    if activity.in_flight.load(Ordering::Acquire) == 0 {
                        tracing::debug!("closing an idle connection to make room for a new one");
                        break;
                    }
                }
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                    break;
                }
                changed = stop.changed(), if !closing => {
                    // A dropped sender means the server is going away too.
                    let _ = changed;
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
                _ = tokio::time::sleep(idle_check), if watch_idle && !closing => {
                    let last = Duration::from_millis(activity.last_ms.load(Ordering::Acquire));
                    let idle_for = started.elapsed().saturating_sub(last);
                    if activity.in_flight.load(Ordering::Acquire) == 0 && idle_for >= keep_alive {
                        // Closes an idle HTTP/1.1 connection at once.
                        closing = true;
                        conn.as_mut().graceful_shutdown();
                    } else if activity.in_flight.load(Ordering::Acquire) > 0 {
                        idle_check = keep_alive;
                    } else {
                        idle_check = keep_alive.saturating_sub(idle_for).max(Duration::from_millis(10));
                    }
                }
            }
        }
    }
}
