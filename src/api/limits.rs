//! Protective limits, each a flag with a default: URL length (414, enforced in [`super::wire`]),
//! request timeout (408),
//! concurrent requests (503 + Retry-After beyond the cap), and the connection-level settings the
//! serve loop ([`crate::serve`]) applies (header read timeout, idle keep-alive timeout, maximum
//! connections, shutdown timeout). The request-level ones ([`Guard`]) run inside the
//! request-context middleware, so their refusals get the Graph error envelope and request ids.

use std::time::Duration;

use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use clap::Args;
use tokio::sync::Semaphore;

use super::admission::{Refusal, record};
use super::throttle::parse_duration;
use crate::error::GraphError;

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

    /// Open connections at once; further connections wait in the listen backlog.
    #[arg(long, env = "GRAPHSEC_MAX_CONNECTIONS", default_value_t = 1000)]
    pub max_connections: usize,

    /// On SIGTERM/SIGINT: time to finish in-flight requests before exiting anyway. Units: ms, s,
    /// m, h.
    #[arg(long, env = "GRAPHSEC_SHUTDOWN_TIMEOUT", default_value = "30s", value_parser = duration)]
    pub shutdown_timeout: Duration,
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
    pub async fn run(
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
