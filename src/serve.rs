//! The accept loop: hyper HTTP/1.1 and HTTP/2 connections with the connection-level limits of
//! [`crate::api::limits::LimitArgs`] (HTTP/1.1 header read timeout against slowloris clients,
//! idle keep-alive timeout, maximum open connections), and a graceful shutdown bounded in time:
//! on the signal, stop accepting, let every connection finish its in-flight request (hyper
//! then closes it), and give up after the shutdown timeout.

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

/// Serves `app` on `listener` until `shutdown` completes, then drains (bounded).
pub async fn serve<L>(mut listener: L, app: Router, limits: &LimitArgs, shutdown: impl Future)
where
    L: Listener,
{
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    // Connections watch `stop`; each holds a clone of `open_rx`, so `open_tx.closed()` resolves
    // once the last one has ended.
    let (stop_tx, stop_rx) = watch::channel(false);
    let (open_tx, open_rx) = watch::channel(());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            s = slots.clone().acquire_owned() => match s {
                Ok(s) => s,
                Err(_) => break,
            },
            _ = &mut shutdown => break,
        };
        let (io, _addr) = tokio::select! {
            c = listener.accept() => c,
            _ = &mut shutdown => break,
        };
        let conn = Connection {
            app: app.clone(),
            header_read_timeout: limits.header_read_timeout,
            keep_alive: limits.keep_alive_timeout,
        };
        let (stop, open) = (stop_rx.clone(), open_rx.clone());
        tokio::spawn(async move {
            conn.run(io, stop).await;
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
}

/// Requests in flight on one connection and the time of its last activity, for the idle timer.
#[derive(Default)]
struct Activity {
    in_flight: AtomicUsize,
    /// Milliseconds since `Connection::run` started.
    last_ms: AtomicU64,
}

impl Connection {
    async fn run<I>(self, io: I, mut stop: watch::Receiver<bool>)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let started = Instant::now();
        let activity = Arc::new(Activity::default());
        let app = self.app;
        let act = activity.clone();
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let app = app.clone();
            let act = act.clone();
            act.in_flight.fetch_add(1, Ordering::AcqRel);
            async move {
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
        let mut conn = std::pin::pin!(builder.serve_connection(TokioIo::new(io), service));
        let mut closing = *stop.borrow();
        if closing {
            conn.as_mut().graceful_shutdown();
        }
        // Without keep-alive hyper closes after each response; the idle timer is not needed
        // (and would close a fresh connection before its first request).
        let watch_idle = !self.keep_alive.is_zero();
        let keep_alive = self.keep_alive;
        let mut idle_check = keep_alive;
        loop {
            tokio::select! {
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
