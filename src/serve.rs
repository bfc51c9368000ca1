//! The accept loop: hyper HTTP/1.1 and HTTP/2 connections with the connection-level limits of
//! [`crate::api::limits::LimitArgs`] (HTTP/1.1 header read timeout against slowloris clients,
//! idle keep-alive timeout, maximum open connections, in all and per client address, send
//! progress), and a graceful shutdown bounded in time: on the signal, stop accepting, let every
//! connection finish its in-flight request (hyper then closes it), and give up after the
//! shutdown timeout.
//!
//! Silent sockets never keep a real client out: a connection that sends no request within the
//! header read timeout of its accept is closed (HTTP/1.1 and HTTP/2 alike), and when every
//! connection slot is taken the connection idle the longest (no request in flight, no response
//! being sent) is closed to make room, instead of leaving the new client in the listen backlog.
//! One client address holds at most `--max-connections-per-address` of them (TLS handshakes
//! under way included): at its cap, its own idlest connection makes room, or, with none idle,
//! the newcomer is closed at once.
//!
//! A client that does not read cannot hold the server's memory (issue 24): every response body
//! leaves through [`Sending`], which hands it to hyper in slices of [`SEND_SLICE_BYTES`] and
//! records each as progress; a connection with a response to send and no progress for
//! `--send-timeout` is closed, which frees its streams and returns its share of the
//! [`budget`] of unsent bytes (the admission side is [`crate::api::limits::Guard`]).
//! HTTP/2 requests answered before their body was read have it drained first ([`early`]).
//!
//! With `--https-proxy` ([`crate::proxy`]) a CONNECT request is answered here, before the
//! router (its authority-form target has no path to route). Once graphsec has accepted one, the
//! same connection, in the same task, goes on as the TLS tunnel: it keeps its slot, its limits
//! and timers, its share of the budget, and its part in the graceful shutdown.

pub mod budget;
mod early;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::serve::Listener;
use bytes::Bytes;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt;

use budget::{ConnectionBudget, Held, ProcessBudget};

/// Header fields hyper accepts on an HTTP/1.1 request (its default is 100). Past this hyper
/// answers 431 itself, with no body; below it the wire layer's 64 KiB byte limit answers in the
/// Graph envelope. hyper sets aside this many slots per request, whatever the request carries:
/// 1,024 cost 6% of a GET by id in instructions (docs/PERFORMANCE.md), 256 costs 1%; real
/// clients send a few dozen.
const HTTP1_MAX_HEADER_FIELDS: usize = 256;
/// The HTTP/2 header-list size (path included) hyper accepts: room for the default URL limit
/// and the wire layer's header-byte limit, which then answer 414/431 in the Graph envelope.
const HTTP2_MAX_HEADER_LIST_BYTES: u32 = 256 * 1024;
/// The largest piece of a response body handed to hyper at once. hyper takes a body's next
/// frame before it knows whether the client's window has room for it, so a page built as one
/// 4 MB frame would leave the body at once and its progress could not be seen; a 64 KiB slice
/// (four HTTP/2 frames; hyper buffers up to 400 KiB of them per HTTP/1.1 write) is handed over
/// only once the previous ones were taken, so each is progress the client made, and a 4 MB
/// page costs 64 polls, which is nothing next to building it.
pub const SEND_SLICE_BYTES: usize = 64 * 1024;

use crate::api::limits::LimitArgs;
use crate::proxy::{Intercepted, Interceptor, PendingSlot};

/// The open connections of one server, shared by the accept loop and the TLS listener (whose
/// handshakes under way count against their address's cap): the registry eviction picks from,
/// the per-address counts, and the process's budget of unsent response bytes.
pub struct Connections {
    registry: Registry,
    /// Connections one address may hold (0: no cap).
    per_address: usize,
    addresses: Mutex<HashMap<IpAddr, usize>>,
    /// Connections the TLS listener counted for their address and handed over, not yet taken
    /// by the accept loop (the count travels with them).
    handed: Mutex<HashSet<SocketAddr>>,
    budget: Arc<ProcessBudget>,
}

impl Connections {
    pub fn new(limits: &LimitArgs) -> Arc<Connections> {
        Arc::new(Connections {
            registry: Registry::default(),
            per_address: limits.connections_per_address(),
            addresses: Mutex::default(),
            handed: Mutex::default(),
            budget: ProcessBudget::new(limits.max_unsent_bytes, limits.unsent_per_connection()),
        })
    }

    /// Bytes of response bodies built and not yet sent, the whole process.
    pub fn unsent_bytes(&self) -> usize {
        self.budget.held()
    }

    /// Admits a new connection (or TLS handshake) from `ip`: counted when the address is
    /// below its cap; at the cap, the newcomer takes the place of the address's oldest TLS
    /// handshake under way (which `evict_handshake` drops, returning its place), or else its
    /// idlest idle connection is asked to close and the newcomer is counted meanwhile. `None`
    /// when there was nothing to close: the caller closes the newcomer, which is counted in
    /// `graphsec_connections_refused_total`.
    pub fn admit(
        self: &Arc<Self>,
        ip: IpAddr,
        evict_handshake: impl FnOnce() -> Option<AddressSlot>,
    ) -> Option<AddressSlot> {
        let ip = ip.to_canonical();
        if self.per_address == 0 {
            return Some(AddressSlot {
                connections: self.clone(),
                ip: None,
            });
        }
        let at_cap = {
            let Ok(mut m) = self.addresses.lock() else {
                return None;
            };
            let n = m.entry(ip).or_insert(0);
            if *n < self.per_address {
                *n += 1;
                false
            } else {
                true
            }
        };
        if at_cap {
            if let Some(place) = evict_handshake() {
                return Some(place);
            }
            if !self.registry.evict_idlest(Some(ip)) {
                metrics::counter!(crate::ops::metrics::CONNECTIONS_REFUSED).increment(1);
                tracing::debug!(%ip, cap = self.per_address, "refusing a connection: its address is at its cap");
                return None;
            }
            // Counted now; the connection asked to close uncounts itself when it does.
            if let Ok(mut m) = self.addresses.lock() {
                *m.entry(ip).or_insert(0) += 1;
            }
        }
        Some(AddressSlot {
            connections: self.clone(),
            ip: Some(ip),
        })
    }

    /// Passes a counted connection on to the accept loop (which finds it by its peer address).
    pub fn hand_over(&self, peer: SocketAddr, slot: AddressSlot) {
        if slot.ip.is_some()
            && let Ok(mut h) = self.handed.lock()
        {
            h.insert(peer);
            std::mem::forget(slot);
        }
    }

    /// The count of a connection handed over by [`Self::hand_over`], else a new admission.
    fn claim(self: &Arc<Self>, peer: SocketAddr) -> Option<AddressSlot> {
        let handed = self.handed.lock().is_ok_and(|mut h| h.remove(&peer));
        if handed {
            return Some(AddressSlot {
                connections: self.clone(),
                ip: Some(peer.ip().to_canonical()),
            });
        }
        self.admit(peer.ip(), || None)
    }
}

/// A connection's place in its address's count, returned on drop.
pub struct AddressSlot {
    connections: Arc<Connections>,
    /// `None`: not counted (no per-address cap).
    ip: Option<IpAddr>,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        if let Some(ip) = self.ip
            && let Ok(mut m) = self.connections.addresses.lock()
            && let Some(n) = m.get_mut(&ip)
        {
            *n -= 1;
            if *n == 0 {
                m.remove(&ip);
            }
        }
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then drains (bounded). With `proxy`
/// (`--https-proxy`), CONNECT requests open tunnels to the intercepted hosts (module doc).
pub async fn serve<L>(
    mut listener: L,
    app: Router,
    limits: &LimitArgs,
    connections: Arc<Connections>,
    proxy: Option<Arc<Interceptor>>,
    shutdown: impl Future,
) where
    L: Listener<Addr = SocketAddr>,
{
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    // Connections watch `stop`; each holds a clone of `open_rx`, so `open_tx.closed()` resolves
    // once the last one has ended.
    let (stop_tx, stop_rx) = watch::channel(false);
    let (open_tx, open_rx) = watch::channel(());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // Wait for a free slot only while another connection is closing; with every slot held
        // by open connections, accept the newcomer anyway and make room for it by closing the
        // idlest connection (a silent socket first), so the newcomer never waits behind them.
        let (io, addr) = tokio::select! {
            c = listener.accept() => c,
            _ = &mut shutdown => break,
        };
        let Some(address_slot) = connections.claim(addr) else {
            // Its address is at its cap with nothing idle to close: closed at once.
            drop(io);
            continue;
        };
        let slot = match slots.clone().try_acquire_owned() {
            Ok(s) => s,
            Err(_) => {
                connections.registry.evict_idlest(None);
                tokio::select! {
                    s = slots.clone().acquire_owned() => match s {
                        Ok(s) => s,
                        Err(_) => break,
                    },
                    _ = &mut shutdown => break,
                }
            }
        };
        let (id, activity) = connections.registry.add(
            addr.ip().to_canonical(),
            ConnectionBudget::new(&connections.budget),
        );
        let conn = Connection {
            app: app.clone(),
            header_read_timeout: limits.header_read_timeout,
            keep_alive: limits.keep_alive_timeout,
            send_timeout: limits.send_timeout,
            activity,
            proxy: proxy.clone(),
        };
        let (stop, open) = (stop_rx.clone(), open_rx.clone());
        let connections = connections.clone();
        tokio::spawn(async move {
            conn.run(io, stop).await;
            connections.registry.remove(id);
            drop((slot, address_slot, open));
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
    send_timeout: Duration,
    activity: Arc<Activity>,
    proxy: Option<Arc<Interceptor>>,
}

/// Requests in flight on one connection and the time of its last activity, for the idle timer,
/// the send timer and for eviction.
struct Activity {
    /// Requests started and not finished, a finished request being one whose response body has
    /// been handed over whole (or dropped).
    in_flight: AtomicUsize,
    /// Response bodies handed to hyper and not yet finished.
    sending: AtomicUsize,
    /// Requests started on the connection.
    requests: AtomicU64,
    /// When the connection was accepted.
    started: Instant,
    /// Milliseconds since `started` of the last request's end.
    last_ms: AtomicU64,
    /// Milliseconds since `started` of the last send progress (a response ready, a slice of a
    /// body handed to hyper).
    progress_ms: AtomicU64,
    /// The client's address, for its cap.
    ip: IpAddr,
    /// Set by [`Registry::evict_idlest`]: close now if idle.
    evict: tokio::sync::Notify,
    /// Already asked to close, so the next eviction picks another connection.
    evicting: AtomicBool,
    /// The connection's share of the unsent-bytes budget.
    budget: ConnectionBudget,
}

impl Activity {
    fn new(ip: IpAddr, budget: ConnectionBudget) -> Activity {
        Activity {
            in_flight: AtomicUsize::new(0),
            sending: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            started: Instant::now(),
            last_ms: AtomicU64::new(0),
            progress_ms: AtomicU64::new(0),
            ip,
            evict: tokio::sync::Notify::new(),
            evicting: AtomicBool::new(false),
            budget,
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn progressed(&self) {
        self.progress_ms.store(self.now_ms(), Ordering::Release);
    }
}

/// One request on a connection, from its start until its response body is finished or dropped
/// (or the request is abandoned before it had a response).
struct InFlight {
    activity: Arc<Activity>,
    sending: bool,
}

impl InFlight {
    fn start(activity: Arc<Activity>) -> InFlight {
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        activity.requests.fetch_add(1, Ordering::AcqRel);
        InFlight {
            activity,
            sending: false,
        }
    }

    /// The response is ready: from now on the send timer watches it.
    fn sending(&mut self) {
        self.activity.progressed();
        self.activity.sending.fetch_add(1, Ordering::AcqRel);
        self.sending = true;
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let a = &self.activity;
        a.last_ms.store(a.now_ms(), Ordering::Release);
        if self.sending {
            a.sending.fetch_sub(1, Ordering::AcqRel);
        }
        a.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Every response body on its way out: handed to hyper in slices of at most
/// [`SEND_SLICE_BYTES`], each recorded as send progress; holds the request in flight and the
/// body's bytes against the unsent budget ([`Held`]) until its last slice is handed over or the
/// body is dropped.
pub struct Sending {
    body: Body,
    /// What is left of a frame larger than a slice.
    rest: Bytes,
    /// `None` once the body is finished.
    request: Option<(InFlight, Option<Held>)>,
}

impl Sending {
    fn new(body: Body, mut request: InFlight, held: Option<Held>) -> Sending {
        request.sending();
        Sending {
            body,
            rest: Bytes::new(),
            request: Some((request, held)),
        }
    }

    fn progressed(&mut self) {
        if let Some((r, _)) = &self.request {
            r.activity.progressed();
        }
        if hyper::body::Body::is_end_stream(self) {
            self.request = None;
        }
    }
}

impl hyper::body::Body for Sending {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        if !this.rest.is_empty() {
            let n = this.rest.len().min(SEND_SLICE_BYTES);
            let slice = this.rest.split_to(n);
            this.progressed();
            return Poll::Ready(Some(Ok(Frame::data(slice))));
        }
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let frame = match frame.into_data() {
                    Ok(mut data) => {
                        if data.len() > SEND_SLICE_BYTES {
                            this.rest = data.split_off(SEND_SLICE_BYTES);
                        }
                        Frame::data(data)
                    }
                    Err(other) => other,
                };
                this.progressed();
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(end) => {
                this.request = None;
                Poll::Ready(end)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_empty() && self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let inner = self.body.size_hint();
        let rest = self.rest.len() as u64;
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower().saturating_add(rest));
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper.saturating_add(rest));
        }
        hint
    }
}

/// The open connections, so that a full server (or address) can close the idlest one.
#[derive(Default)]
struct Registry {
    next: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Activity>>>,
}

impl Registry {
    fn add(&self, ip: IpAddr, budget: ConnectionBudget) -> (u64, Arc<Activity>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let a = Arc::new(Activity::new(ip, budget));
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

    /// Asks the connection (of `ip`, or any) without a request in flight that has been idle
    /// the longest (a socket that never sent one first) to close; false when there is none.
    fn evict_idlest(&self, ip: Option<IpAddr>) -> bool {
        let Ok(m) = self.open.lock() else {
            return false;
        };
        let idlest = m
            .values()
            .filter(|a| {
                a.in_flight.load(Ordering::Acquire) == 0
                    && !a.evicting.load(Ordering::Acquire)
                    && ip.is_none_or(|ip| a.ip == ip)
            })
            .min_by_key(|a| {
                (
                    a.requests.load(Ordering::Acquire) > 0,
                    a.started + Duration::from_millis(a.last_ms.load(Ordering::Acquire)),
                )
            });
        match idlest {
            Some(a) => {
                metrics::counter!(crate::ops::metrics::CONNECTIONS_EVICTED).increment(1);
                a.evicting.store(true, Ordering::Release);
                a.evict.notify_one();
                true
            }
            None => false,
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
            // CONNECT's target is authority-form (no path): the proxy's, not the router's
            // (which would ask for a token, then find no resource for the empty path).
            let connect = (req.method() == http::Method::CONNECT).then(|| match &proxy {
                Some(p) => p.answer_connect(&mut req, slot.as_deref()),
                None => crate::proxy::not_a_proxy(),
            });
            if intercepted {
                req.extensions_mut().insert(Intercepted);
            }
            let request = InFlight::start(act.clone());
            let (mut parts, body) = req.into_parts();
            // Only an HTTP/2 request with a body to come can be answered early (see `early`);
            // the others, every GET among them, pass their body as it is.
            let (body, unread) = if parts.version == http::Version::HTTP_2
                && !hyper::body::Body::is_end_stream(&body)
            {
                let (tracked, slot) = early::Tracked::new(body);
                (Body::new(tracked), Some(slot))
            } else {
                (Body::new(body), None)
            };
            parts.extensions.insert(act.budget.clone());
            let req = hyper::Request::from_parts(parts, body);
            async move {
                if let Some(resp) = connect {
                    return Ok(resp.map(|body| Sending::new(body, request, None)));
                }
                let Ok(mut resp) = app.oneshot(req).await;
                let rest = unread.and_then(|slot| slot.lock().ok().and_then(|mut s| s.take()));
                if let Some(rest) = rest {
                    early::drain(rest).await;
                }
                let held = resp.extensions_mut().remove::<Held>();
                Ok::<_, std::convert::Infallible>(
                    resp.map(|body| Sending::new(body, request, held)),
                )
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
        // Deadlines, not durations: every turn of the loop builds its timers anew, so a
        // duration would restart whenever another branch fires first.
        let mut idle_check = Instant::now() + keep_alive;
        let send_timeout = self.send_timeout;
        let watch_send = !send_timeout.is_zero();
        let mut send_check = Instant::now() + send_timeout;
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
                    // Busy again since it was picked: it may be picked another time.
                    activity.evicting.store(false, Ordering::Release);
                }
                // Not only while serving: a graceful shutdown's GOAWAY waits for every stream,
                // and a stalled one would hold it until the shutdown timeout.
                _ = tokio::time::sleep_until(send_check.into()), if watch_send => {
                    let last = Duration::from_millis(activity.progress_ms.load(Ordering::Acquire));
                    let stalled_for = started.elapsed().saturating_sub(last);
                    let sending = activity.sending.load(Ordering::Acquire) > 0;
                    if sending && stalled_for >= send_timeout {
                        // Dropping the connection ends its streams, and their bodies with them.
                        tracing::debug!(
                            unsent_bytes = activity.budget.held(),
                            "closing a connection whose client took no response bytes for the send timeout"
                        );
                        metrics::counter!(crate::ops::metrics::CONNECTIONS_STALLED).increment(1);
                        break;
                    }
                    send_check = Instant::now() + if sending {
                        send_timeout.saturating_sub(stalled_for).max(Duration::from_millis(10))
                    } else {
                        send_timeout
                    };
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
                _ = tokio::time::sleep_until(idle_check.into()), if watch_idle && !closing => {
                    let last = Duration::from_millis(activity.last_ms.load(Ordering::Acquire));
                    let idle_for = started.elapsed().saturating_sub(last);
                    if activity.in_flight.load(Ordering::Acquire) == 0 && idle_for >= keep_alive {
                        // Closes an idle HTTP/1.1 connection at once.
                        closing = true;
                        conn.as_mut().graceful_shutdown();
                    } else if activity.in_flight.load(Ordering::Acquire) > 0 {
                        idle_check = Instant::now() + keep_alive;
                    } else {
                        idle_check = Instant::now()
                            + keep_alive.saturating_sub(idle_for).max(Duration::from_millis(10));
                    }
                }
            }
        }
    }
}
