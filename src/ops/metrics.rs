//! Prometheus metrics through the `metrics` facade and `metrics-exporter-prometheus`: metric
//! names live here, the recorder is installed once by `serve`, and the per-request cost is one
//! counter and one histogram update (no recorder installed, as in `graphsec import`, makes every
//! update a no-op).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::model::entity::EntityType;
use crate::model::record::Changes;
use crate::odata::typecheck::TypedFilter;
use crate::store::{BoxFuture, ListSpec, Page, Precondition, Store, StoreError, TenantRecord};

/// Requests by operation, method and status.
pub const HTTP_REQUESTS: &str = "graphsec_http_requests_total";
/// Request latency by operation.
pub const HTTP_DURATION: &str = "graphsec_http_request_duration_seconds";
/// Store call latency by store operation.
pub const STORE_DURATION: &str = "graphsec_store_operation_duration_seconds";
/// Writes per group-commit transaction.
pub const GROUP_COMMIT_BATCH: &str = "graphsec_group_commit_batch_size";
/// Bearer tokens refused (Graph API and admin API).
pub const REJECTED_TOKENS: &str = "graphsec_rejected_tokens_total";
/// Requests not admitted, by reason: `throttled` (429), `injected_fault` (with its status),
/// `overloaded` (the concurrency cap's 503), `unsent_bytes` (the unsent-bytes budget's 503),
/// `timed_out` (408).
pub const REFUSED_REQUESTS: &str = "graphsec_refused_requests_total";
/// Idle connections closed to make room for a new one when every connection slot (or every
/// one of its address's) was taken.
pub const CONNECTIONS_EVICTED: &str = "graphsec_connections_evicted_total";
/// New connections closed at once because their address was at `--max-connections-per-address`
/// with none of its connections idle.
pub const CONNECTIONS_REFUSED: &str = "graphsec_connections_refused_total";
/// Connections closed because their client took no response bytes for `--send-timeout`.
pub const CONNECTIONS_STALLED: &str = "graphsec_connections_stalled_total";
/// Bytes of Graph API response bodies built and not yet sent (see `--max-unsent-bytes`).
pub const UNSENT_BYTES: &str = "graphsec_unsent_response_bytes";

/// Change notifications queued by writes (and lifecycle challenges).
pub const NOTIFY_QUEUED: &str = "graphsec_notifications_queued_total";
/// Notifications a receiver acknowledged.
pub const NOTIFY_DELIVERED: &str = "graphsec_notifications_delivered_total";
/// Failed delivery attempts that will be retried.
pub const NOTIFY_RETRIED: &str = "graphsec_notifications_retried_total";
/// Notifications given up on (older than the retry window).
pub const NOTIFY_DROPPED: &str = "graphsec_notifications_dropped_total";
/// Notifications waiting in the outbox.
pub const NOTIFY_PENDING: &str = "graphsec_notifications_pending";
/// Age of the oldest waiting notification.
pub const NOTIFY_OLDEST_AGE: &str = "graphsec_notifications_oldest_pending_age_seconds";

const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

/// Installs the process-wide Prometheus recorder and starts its upkeep task (which drains
/// histogram samples so memory stays bounded between scrapes).
pub fn install() -> Result<PrometheusHandle, String> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
        .and_then(|b| {
            b.set_buckets_for_metric(Matcher::Full(GROUP_COMMIT_BATCH.into()), BATCH_BUCKETS)
        })
        .map_err(|e| format!("metrics: {e}"))?
        .install_recorder()
        .map_err(|e| format!("cannot install the metrics recorder: {e}"))?;
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}

/// Records one finished HTTP request.
pub fn record_request(operation: &'static str, method: &http::Method, status: u16, took: Duration) {
    let method: &'static str = match *method {
        http::Method::GET => "GET",
        http::Method::POST => "POST",
        http::Method::PATCH => "PATCH",
        http::Method::DELETE => "DELETE",
        http::Method::PUT => "PUT",
        http::Method::HEAD => "HEAD",
        http::Method::OPTIONS => "OPTIONS",
        _ => "other",
    };
    // Registering a labelled series builds its key (a label vector) and looks it up in the
    // recorder on every call; each worker thread keeps the handles it has used instead, so the
    // request path pays one small map lookup. The set of keys is small and bounded (operations
    // and methods are fixed strings, statuses are HTTP statuses).
    REQUEST_HANDLES.with(|cache| {
        let mut cache = cache.borrow_mut();
        let (requests, duration) = cache.entry((operation, method, status)).or_insert_with(|| {
            (
                metrics::counter!(HTTP_REQUESTS, "operation" => operation, "method" => method, "status" => status_label(status)),
                metrics::histogram!(HTTP_DURATION, "operation" => operation),
            )
        });
        requests.increment(1);
        duration.record(took.as_secs_f64());
    });
}

type RequestKey = (&'static str, &'static str, u16);

thread_local! {
    /// Handles of the request series this thread has recorded into (see [`record_request`]).
    static REQUEST_HANDLES: RefCell<HashMap<RequestKey, (metrics::Counter, metrics::Histogram)>> =
        RefCell::new(HashMap::new());
    /// Handles of the store-latency series, by store operation (see [`timed`]).
    static STORE_HANDLES: RefCell<HashMap<&'static str, metrics::Histogram>> =
        RefCell::new(HashMap::new());
}

/// The status as a label; the common ones without an allocation (this runs on every request).
fn status_label(status: u16) -> metrics::SharedString {
    let fixed: &'static str = match status {
        200 => "200",
        201 => "201",
        204 => "204",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        409 => "409",
        412 => "412",
        413 => "413",
        415 => "415",
        429 => "429",
        500 => "500",
        503 => "503",
        other => return metrics::SharedString::from(other.to_string()),
    };
    metrics::SharedString::const_str(fixed)
}

/// Counts a request that throttling, fault injection or a limit did not admit.
pub fn request_refused(reason: &'static str, status: u16) {
    metrics::counter!(REFUSED_REQUESTS, "reason" => reason, "status" => status_label(status))
        .increment(1);
}

/// Counts a refused bearer token on one surface (`graph` or `admin`).
pub fn token_rejected(surface: &'static str) {
    metrics::counter!(REJECTED_TOKENS, "surface" => surface).increment(1);
}

/// A [`Store`] that times every call of the store it wraps.
pub struct Instrumented(pub Arc<dyn Store>);

fn timed<'a, T: Send + 'a>(
    operation: &'static str,
    fut: BoxFuture<'a, Result<T, StoreError>>,
) -> BoxFuture<'a, Result<T, StoreError>> {
    Box::pin(async move {
        let started = Instant::now();
        let r = fut.await;
        let took = started.elapsed().as_secs_f64();
        STORE_HANDLES.with(|cache| {
            cache
                .borrow_mut()
                .entry(operation)
                .or_insert_with(|| metrics::histogram!(STORE_DURATION, "operation" => operation))
                .record(took);
        });
        r
    })
}

impl Store for Instrumented {
    fn create(
        &self,
        tenant: &str,
        changes: Changes,
        id: String,
    ) -> BoxFuture<'_, Result<crate::model::record::Record, StoreError>> {
        timed("create", self.0.create(tenant, changes, id))
    }
    fn get(
        &self,
        entity: &'static EntityType,
        tenant: &str,
        id: &str,
    ) -> BoxFuture<'_, Result<crate::model::record::Record, StoreError>> {
        timed("get", self.0.get(entity, tenant, id))
    }
    fn update(
        &self,
        tenant: &str,
        id: &str,
        changes: Changes,
        pre: Precondition,
    ) -> BoxFuture<'_, Result<crate::model::record::Record, StoreError>> {
        timed("update", self.0.update(tenant, id, changes, pre))
    }
    fn delete(
        &self,
        entity: &'static EntityType,
        tenant: &str,
        id: &str,
        pre: Precondition,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        timed("delete", self.0.delete(entity, tenant, id, pre))
    }
    fn list(
        &self,
        entity: &'static EntityType,
        tenant: &str,
        spec: ListSpec,
    ) -> BoxFuture<'_, Result<Page, StoreError>> {
        timed("list", self.0.list(entity, tenant, spec))
    }
    fn count(
        &self,
        entity: &'static EntityType,
        tenant: &str,
        filter: Option<TypedFilter>,
    ) -> BoxFuture<'_, Result<u64, StoreError>> {
        timed("count", self.0.count(entity, tenant, filter))
    }
    fn paging_secret(&self) -> &[u8] {
        self.0.paging_secret()
    }
    fn notify(&self) -> &dyn crate::store::notify::NotifyStore {
        self.0.notify()
    }
    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        timed("ping", self.0.ping())
    }
    fn reset(
        &self,
        entity: &'static EntityType,
        tenant: Option<&str>,
    ) -> BoxFuture<'_, Result<u64, StoreError>> {
        timed("reset", self.0.reset(entity, tenant))
    }
    fn tenant_counts(
        &self,
        entity: &'static EntityType,
        tenant: Option<&str>,
        limit: Option<u64>,
    ) -> BoxFuture<'_, Result<Vec<(String, u64)>, StoreError>> {
        timed("tenant_counts", self.0.tenant_counts(entity, tenant, limit))
    }
    fn export_page(
        &self,
        entity: &'static EntityType,
        tenant: Option<&str>,
        after: Option<(String, String)>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<TenantRecord>, StoreError>> {
        timed(
            "export_page",
            self.0.export_page(entity, tenant, after, limit),
        )
    }
    fn import_chunk(&self, rows: Vec<TenantRecord>) -> BoxFuture<'_, Result<(), StoreError>> {
        timed("import_chunk", self.0.import_chunk(rows))
    }
}
