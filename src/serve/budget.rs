//! The budget of response bytes built but not yet sent (issue 24): a client that does not read
//! (an HTTP/2 receive window of 0, a full TCP window) leaves every response it asked for in the
//! server's memory, and Graph API pages are built whole. The bytes of every Graph API response
//! body count against the process's budget (`--max-unsent-bytes`) and its connection's
//! (`--max-unsent-bytes-per-connection`) from the moment the handler returns it until its last
//! frame has been handed to the connection or the body is dropped (a body is one allocation,
//! freed only then). Over either budget, new Graph API requests get 503 with Retry-After
//! ([`crate::api::limits::Guard`]); operator endpoints (`/healthz`, `/readyz`, `/metrics`) are
//! not counted and keep answering. The serve loop closes connections that make no send progress
//! (`--send-timeout`), which returns their share.
//!
//! The budget is checked when a request starts and again when its response is built: many
//! requests multiplexed on one HTTP/2 connection start together while nothing is held yet, so
//! the first check alone would admit them all. A GET whose response does not fit is discarded
//! and answered 503 (it changed nothing, so the client may simply retry); any other method's
//! response is kept whatever the budget says, since dropping it would hide a write that
//! happened. The bytes held can therefore exceed a budget by the responses being built at
//! that moment (at most `--max-concurrent-requests` of them) and by non-GET responses.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The process-wide budget and the per-connection limit (bytes; 0: no limit).
pub struct ProcessBudget {
    held: AtomicUsize,
    max: usize,
    per_connection: usize,
    /// `graphsec_unsent_response_bytes`, moved by increments (which commute, so the gauge ends
    /// exact when the process holds nothing).
    gauge: metrics::Gauge,
}

impl std::fmt::Debug for ProcessBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessBudget")
            .field("held", &self.held)
            .field("max", &self.max)
            .field("per_connection", &self.per_connection)
            .finish()
    }
}

impl ProcessBudget {
    /// `max` bytes for the whole process, `per_connection` for one connection (0: no limit).
    /// Reports into the metrics recorder installed at the time of the call.
    pub fn new(max: usize, per_connection: usize) -> Arc<ProcessBudget> {
        Arc::new(ProcessBudget {
            held: AtomicUsize::new(0),
            max,
            per_connection,
            gauge: metrics::gauge!(crate::ops::metrics::UNSENT_BYTES),
        })
    }

    /// Bytes of response bodies held by the whole process.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Acquire)
    }
}

/// Which budget refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// The whole process holds `--max-unsent-bytes` or more.
    Process,
    /// The request's connection holds `--max-unsent-bytes-per-connection` or more.
    Connection,
}

/// One connection's share of the budget. Carried in every request's extensions by the serve
/// loop ([`crate::serve`]); cheap to clone.
#[derive(Debug, Clone)]
pub struct ConnectionBudget {
    inner: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    process: Arc<ProcessBudget>,
    held: AtomicUsize,
}

impl ConnectionBudget {
    pub fn new(process: &Arc<ProcessBudget>) -> ConnectionBudget {
        ConnectionBudget {
            inner: Arc::new(Shared {
                process: process.clone(),
                held: AtomicUsize::new(0),
            }),
        }
    }

    /// Bytes of response bodies this connection holds.
    pub fn held(&self) -> usize {
        self.inner.held.load(Ordering::Acquire)
    }

    /// Whether a new request may start: `Err` when the process or the connection already
    /// holds its budget or more.
    pub fn admit(&self) -> Result<(), Full> {
        let p = &self.inner.process;
        if p.max > 0 && p.held() >= p.max {
            return Err(Full::Process);
        }
        if p.per_connection > 0 && self.held() >= p.per_connection {
            return Err(Full::Connection);
        }
        Ok(())
    }

    /// Counts `bytes` of a response body against both budgets until the returned
    /// [`Reservation`] is dropped. With `discardable`, refuses (counting nothing) when the bytes
    /// do not fit, unless nothing at all is held at that level (so a response larger than a
    /// budget can still be served alone); without it, always counts.
    pub fn reserve(&self, bytes: usize, discardable: bool) -> Result<Reservation, Full> {
        let s = &self.inner;
        let p = &s.process;
        let before_conn = s.held.fetch_add(bytes, Ordering::AcqRel);
        let before_proc = p.held.fetch_add(bytes, Ordering::AcqRel);
        let over = |before: usize, max: usize| max > 0 && before > 0 && before + bytes > max;
        if discardable {
            let full = if over(before_proc, p.max) {
                Some(Full::Process)
            } else if over(before_conn, p.per_connection) {
                Some(Full::Connection)
            } else {
                None
            };
            if let Some(full) = full {
                s.held.fetch_sub(bytes, Ordering::AcqRel);
                p.held.fetch_sub(bytes, Ordering::AcqRel);
                return Err(full);
            }
        }
        p.gauge.increment(bytes as f64);
        Ok(Reservation {
            budget: s.clone(),
            bytes,
        })
    }
}

/// Bytes counted against a connection's and the process's budget; returned on drop.
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<Shared>,
    bytes: usize,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.held.fetch_sub(self.bytes, Ordering::AcqRel);
        let p = &self.budget.process;
        p.held.fetch_sub(self.bytes, Ordering::AcqRel);
        p.gauge.decrement(self.bytes as f64);
    }
}

/// A [`Reservation`] in a response's extensions (which must be `Clone`), taken over by the
/// serve loop's response body; the bytes return when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct Held(pub Arc<Reservation>);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_refuse_what_does_not_fit_and_return_on_drop() {
        let process = ProcessBudget::new(1000, 600);
        let a = ConnectionBudget::new(&process);
        let b = ConnectionBudget::new(&process);
        let a1 = a.reserve(400, true).unwrap();
        // 400 + 300 > 600 for the connection.
        assert_eq!(a.reserve(300, true).unwrap_err(), Full::Connection);
        assert_eq!(a.held(), 400);
        let b1 = b.reserve(500, true).unwrap();
        // 900 + 200 > 1000 for the process.
        assert_eq!(b.reserve(200, true).unwrap_err(), Full::Process);
        // A write's response is counted whatever the budget says.
        let b2 = b.reserve(200, false).unwrap();
        assert_eq!(process.held(), 1100);
        assert_eq!(a.admit(), Err(Full::Process));
        drop(b2);
        assert_eq!(a.admit(), Ok(()));
        drop((a1, b1));
        assert_eq!(process.held(), 0);
        // Alone, a response larger than every budget is served.
        let big = a.reserve(5000, true).unwrap();
        assert_eq!(a.admit(), Err(Full::Process));
        drop(big);
        // 0: no budget.
        let open = ConnectionBudget::new(&ProcessBudget::new(0, 0));
        let _x = open.reserve(1 << 40, true).unwrap();
        assert_eq!(open.reserve(1 << 40, true).map(|_| ()), Ok(()));
        assert_eq!(open.admit(), Ok(()));
    }
}
