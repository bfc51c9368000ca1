//! Protective limits, each a flag with a default: URL length (414, enforced in [`super::wire`]),
//! request timeout (408), concurrent requests (503 + Retry-After beyond the cap), unsent
//! response bytes (503 + Retry-After beyond the budget, [`crate::serve::budget`]), and the
//! connection-level settings the serve loop ([`crate::serve`]) applies (header read timeout,
//! idle keep-alive timeout, send timeout, maximum connections in all and per client address,
//! shutdown timeout). The request-level ones ([`Guard`]) run inside the request-context
//! middleware, so their refusals get the Graph error envelope and request ids.

use std::time::Duration;

use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use clap::Args;
use tokio::sync::Semaphore;

use super::admission::{Refusal, record};
use super::throttle::parse_duration;
use crate::error::GraphError;
use crate::serve::budget::{ConnectionBudget, Full, Held};

fn duration(s: &str) -> Result<Duration, String> {
    parse_duration(s)
}

/// Limit flags.
#[derive(Debug, Clone, Args)]
pub struct LimitArgs {
    /// Longest accepted request URL (path and query), in bytes; longer gets 414.
    // Checked by the wire layers (`super::wire`).
    #[arg(long, env = "GRAPHSEC_MAX_URL_LENGTH", default_value_t = super::wire::MAX_URI_BYTES)]
    pub max_url_length: usize,

    /// Most time a request may take from its headers to its response (a slow body upload
    /// included); beyond it the request gets 408. Units: ms, s, m, h.
    #[arg(long, env = "GRAPHSEC_REQUEST_TIMEOUT", default_value = "60s", value_parser = duration)]
    pub request_timeout: Duration,

    /// Most time a request's headers may take to arrive, counted from when the connection starts
    /// waiting for them (so it also closes a connection idle that long). A slowloris client is
    /// cut off after it. Units: ms, s, m, h.
    #[arg(long, env = "GRAPHSEC_HEADER_READ_TIMEOUT", default_value = "30s", value_parser = duration)]
    pub header_read_timeout: Duration,

    /// An HTTP/1.1 keep-alive connection with no request in flight is closed after this long
    /// (0 disables keep-alive). Units: ms, s, m, h.
    #[arg(long, env = "GRAPHSEC_KEEP_ALIVE_TIMEOUT", default_value = "20s", value_parser = duration)]
    pub keep_alive_timeout: Duration,

    /// Requests handled at once; beyond it requests get 503 with Retry-After.
    #[arg(long, env = "GRAPHSEC_MAX_CONCURRENT_REQUESTS", default_value_t = 1024)]
    pub max_concurrent_requests: usize,

    /// Open connections at once; when every one is taken, the idlest is closed to make room.
    #[arg(long, env = "GRAPHSEC_MAX_CONNECTIONS", default_value_t = 1000)]
    pub max_connections: usize,

    /// Open connections from one client IP address, TLS handshakes under way included (0: no
    /// cap). At the cap, the address's oldest unfinished handshake or idlest idle connection is
    /// closed to make room, or, with none of them, the new connection is closed at once. Behind
    /// a proxy every connection comes from the proxy's address: raise it (or 0) there.
    /// [default: half of --max-connections]
    #[arg(long, env = "GRAPHSEC_MAX_CONNECTIONS_PER_ADDRESS")]
    pub max_connections_per_address: Option<usize>,

    /// Bytes of Graph API response bodies built but not yet sent, the whole process (0: no
    /// budget). Beyond it new Graph API requests get 503 with Retry-After (operator endpoints
    /// keep answering). Part of the memory graphsec may use on top of its idle size.
    #[arg(long, env = "GRAPHSEC_MAX_UNSENT_BYTES", default_value_t = DEFAULT_MAX_UNSENT_BYTES)]
    pub max_unsent_bytes: usize,

    /// The same budget for one connection, so one client cannot take the process's whole
    /// budget (0: none). [default: a quarter of --max-unsent-bytes]
    #[arg(long, env = "GRAPHSEC_MAX_UNSENT_BYTES_PER_CONNECTION")]
    pub max_unsent_bytes_per_connection: Option<usize>,

    /// A connection with a response to send whose client has taken none of it for this long is
    /// closed (0: never), returning its unsent bytes. Units: ms, s, m, h.
    #[arg(long, env = "GRAPHSEC_SEND_TIMEOUT", default_value = "30s", value_parser = duration)]
    pub send_timeout: Duration,

    /// On SIGTERM/SIGINT: time to finish in-flight requests before exiting anyway. Units: ms, s,
    /// m, h.
    #[arg(long, env = "GRAPHSEC_SHUTDOWN_TIMEOUT", default_value = "30s", value_parser = duration)]
    pub shutdown_timeout: Duration,
}

/// `--max-unsent-bytes`' default, 256 MiB: 64 full pages at the default `--max-page-bytes`
/// (4 MiB), far more than honest clients leave unread at once, and small next to the 1-3 GB
/// the issue saw a few stalled HTTP/2 connections take.
pub const DEFAULT_MAX_UNSENT_BYTES: usize = 256 * 1024 * 1024;

impl LimitArgs {
    /// `--max-connections-per-address`, or half of `--max-connections` (rounded up): benches
    /// and test suites open a few hundred connections from one loopback address at most, and
    /// one address still cannot take every slot.
    pub fn connections_per_address(&self) -> usize {
        self.max_connections_per_address
            .unwrap_or(self.max_connections.max(1).div_ceil(2))
    }

    /// `--max-unsent-bytes-per-connection`, or a quarter of `--max-unsent-bytes`.
    pub fn unsent_per_connection(&self) -> usize {
        self.max_unsent_bytes_per_connection
            .unwrap_or(self.max_unsent_bytes / 4)
    }
}

/// Set (in the request's extensions) by a handler that has begun a write of several items (a
/// bound action over a collection, a `$batch` with writes): from then on the request timeout
/// no longer ends the request, so it finishes and reports every item instead of answering 408
/// while some items were written (a client that retries would duplicate them).
#[derive(Debug, Clone, Default)]
pub struct Committed(Arc<std::sync::atomic::AtomicBool>);

impl Committed {
    /// Marks the request as writing: it runs to its end.
    pub fn set(&self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn is_set(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Retry-After sent with the concurrency cap's 503.
const BUSY_RETRY_AFTER_SECS: u64 = 1;
/// Retry-After sent with the unsent-bytes budget's 503, as for the concurrency cap: honest
/// clients read what they asked for in well under a second on a local network, and a share held
/// by a stalled client returns within `--send-timeout` at most.
const UNSENT_RETRY_AFTER_SECS: u64 = 1;

/// The request-level limits of one server: the concurrency cap and the request timeout, applied
/// around the Graph dispatcher (inside the request-context middleware, so their refusals get
/// the Graph envelope). A plain semaphore and `tokio::time::timeout` rather than tower layers:
/// each layer on a router boxes and clones the service below it per request.
pub struct Guard {
    permits: Arc<Semaphore>,
    timeout: Duration,
}

impl Guard {
    pub fn new(args: &LimitArgs) -> Guard {
        Guard {
            permits: Arc::new(Semaphore::new(args.max_concurrent_requests.max(1))),
            timeout: args.request_timeout,
        }
    }

    /// Runs `work` holding one of the permits (503 with Retry-After when none is free: load is
    /// shed at once, never queued) and within the timeout (408). The timeout runs inside the
    /// slot, so a timed-out request frees it.
    ///
    /// With the connection's `budget` (see [`crate::serve::budget`]): refused with 503 and
    /// Retry-After while the process or the connection holds its budget of unsent response
    /// bytes or more; the response's body is then counted against it, and a response that does
    /// not fit is discarded for a 503 when `discardable` (a GET: it changed nothing).
    pub async fn run(
        &self,
        work: impl Future<Output = Response>,
        committed: Option<&Committed>,
        budget: Option<&ConnectionBudget>,
        discardable: bool,
    ) -> Response {
        if let Some(full) = budget.and_then(|b| b.admit().err()) {
            return unsent_refusal(full);
        }
        let resp = self.run_admitted(work, committed).await;
        match budget {
            Some(b) => hold(b, resp, discardable),
            None => resp,
        }
    }

    async fn run_admitted(
        &self,
        work: impl Future<Output = Response>,
        committed: Option<&Committed>,
    ) -> Response {
        let Ok(_permit) = self.permits.try_acquire() else {
            record(Refusal::Overloaded, None);
            return GraphError::ServiceUnavailable {
                message: "The server is handling too many requests. Retry later.".into(),
                retry_after_secs: BUSY_RETRY_AFTER_SECS,
            }
            .into_response();
        };
        // Dropping the handler future on timeout is safe for a single write: a write already
        // handed to the store's writer commits or not as a whole, and it was never acknowledged.
        // A write of several items that has begun runs to its end (see `Committed`).
        let mut work = std::pin::pin!(work);
        match tokio::time::timeout(self.timeout, &mut work).await {
            Ok(resp) => resp,
            Err(_) if committed.is_some_and(Committed::is_set) => work.await,
            Err(_) => {
                record(Refusal::TimedOut, None);
                GraphError::RequestTimeout(format!(
                    "The request did not complete within {} s.",
                    self.timeout.as_secs_f64()
                ))
                .into_response()
            }
        }
    }
}

/// Counts a successful response's body against the connection's budget (an error body is
/// small, and replaced by the request context anyway).
fn hold(budget: &ConnectionBudget, mut resp: Response, discardable: bool) -> Response {
    if !resp.status().is_success() {
        return resp;
    }
    let hint = hyper::body::Body::size_hint(resp.body());
    let bytes = usize::try_from(hint.exact().unwrap_or(hint.lower())).unwrap_or(usize::MAX);
    if bytes == 0 {
        return resp;
    }
    match budget.reserve(bytes, discardable) {
        Ok(r) => {
            resp.extensions_mut().insert(Held(Arc::new(r)));
            resp
        }
        Err(full) => unsent_refusal(full),
    }
}

fn unsent_refusal(full: Full) -> Response {
    record(Refusal::Unsent, None);
    let message = match full {
        Full::Process => {
            "The server holds too many response bytes that clients have not read yet. Retry later."
        }
        Full::Connection => {
            "This connection holds too many response bytes that its client has not read yet. Read the responses already sent, or retry later."
        }
    };
    GraphError::ServiceUnavailable {
        message: message.into(),
        retry_after_secs: UNSENT_RETRY_AFTER_SECS,
    }
    .into_response()
}
