//! The operator router: `/healthz` and `/readyz` (no token), `/metrics` (no token; or on its own
//! `--metrics-listen` address), and the admin API under `/_graphsec/` (off unless
//! `--admin-token` is set; only that token opens it, and it opens nothing else).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::error::GraphError;
use crate::store::{Store, StoreError};

/// How long `/readyz` waits for the store before it answers 503.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// What `/_graphsec/info` says about this server besides the live counts.
#[derive(Debug, Clone)]
pub struct Info {
    pub store: &'static str,
    /// The data directory or database; `None` in memory.
    pub location: Option<String>,
    pub features: Vec<String>,
}

/// Everything the operator endpoints use.
pub struct OpsState {
    pub store: Arc<dyn Store>,
    pub admin_token: Option<String>,
    /// The development token service; `None` with real identity-provider keys.
    pub sts: Option<Arc<crate::auth::sts::TokenService>>,
    /// `--public-url`, and whether graphsec serves HTTPS: the base URL of discovery documents.
    pub public_url: Option<String>,
    pub tls: bool,
    /// `Some` when `/metrics` is served on the main listener.
    pub metrics: Option<PrometheusHandle>,
    pub info: Info,
}

/// The operator routes (without the request-context layer, which the caller adds).
pub fn router(state: Arc<OpsState>) -> Router {
    let mut r = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/_graphsec/reset", post(reset))
        .route("/_graphsec/info", get(info))
        .route("/_graphsec/subscriptions/{id}/deliveries", get(deliveries))
        .merge(super::sts::routes());
    if let Some(handle) = state.metrics.clone() {
        r = r.merge(metrics_router(handle));
    }
    r.with_state(state)
}

/// `/metrics` alone, for `--metrics-listen`.
pub fn metrics_router<S: Clone + Send + Sync + 'static>(handle: PrometheusHandle) -> Router<S> {
    Router::new().route(
        "/metrics",
        get(move || {
            let handle = handle.clone();
            async move {
                (
                    [(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                    )],
                    handle.render(),
                )
            }
        }),
    )
}

fn text(status: StatusCode, body: &'static str) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}

/// Liveness: the process answers HTTP.
async fn healthz() -> Response {
    text(StatusCode::OK, "ok\n")
}

/// Readiness: the store answers a read and a write within [`READY_TIMEOUT`].
async fn readyz(State(state): State<Arc<OpsState>>) -> Response {
    let outcome = tokio::time::timeout(READY_TIMEOUT, state.store.ping()).await;
    match outcome {
        Ok(Ok(())) => text(StatusCode::OK, "ready\n"),
        // The store's own reason (a lock, the disk), without the "store unavailable" prefix:
        // a store short of disk still serves reads and may still take writes.
        Ok(Err(StoreError::Unavailable(why))) => not_ready(&why),
        Ok(Err(e)) => not_ready(&e.to_string()),
        Err(_) => not_ready("the store did not answer in time"),
    }
}

fn not_ready(why: &str) -> Response {
    tracing::warn!(reason = why, "readiness check failed");
    GraphError::ServiceUnavailable {
        message: format!("Not ready: {why}."),
        retry_after_secs: 5,
    }
    .into_response()
}

/// Checks the admin token (constant-time), or says why not.
fn admin(state: &OpsState, headers: &HeaderMap) -> Result<(), GraphError> {
    let Some(expected) = &state.admin_token else {
        return Err(GraphError::NotFound(
            "The admin API is disabled; start graphsec with --admin-token to enable it.".into(),
        ));
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split_once(' ')
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        })
        .map(|(_, t)| t.trim());
    let ok = presented.is_some_and(|t| bool::from(t.as_bytes().ct_eq(expected.as_bytes())));
    if ok {
        Ok(())
    } else {
        crate::ops::metrics::token_rejected("admin");
        Err(GraphError::InvalidAuthenticationToken(
            "The admin API needs the server's admin token (Authorization: Bearer <--admin-token>)."
                .into(),
        ))
    }
}

fn store_failure(e: StoreError) -> GraphError {
    match e {
        StoreError::Unavailable(m) => {
            tracing::warn!(error = %m, "store unavailable");
            GraphError::ServiceUnavailable {
                message: "The data store is temporarily unavailable.".into(),
                retry_after_secs: 5,
            }
        }
        other => {
            tracing::error!(error = %other, "admin store call failed");
            GraphError::Internal
        }
    }
}

#[derive(Debug, Deserialize)]
struct ResetQuery {
    tenant: Option<String>,
}

/// `POST /_graphsec/reset[?tenant=T]`: deletes every entity of every served set (of one
/// tenant).
async fn reset(
    State(state): State<Arc<OpsState>>,
    headers: HeaderMap,
    Query(q): Query<ResetQuery>,
) -> Result<Response, GraphError> {
    admin(&state, &headers)?;
    if q.tenant.as_deref() == Some("") {
        return Err(GraphError::BadRequest(
            "The tenant must not be empty.".into(),
        ));
    }
    let mut deleted = 0;
    for entity in crate::model::catalog().served() {
        deleted += state
            .store
            .reset(entity, q.tenant.as_deref())
            .await
            .map_err(store_failure)?;
    }
    tracing::info!(
        tenant = q.tenant.as_deref().unwrap_or("*"),
        deleted,
        "admin reset"
    );
    Ok(axum::Json(json!({ "tenant": q.tenant, "deleted": deleted })).into_response())
}

/// `GET /_graphsec/info`: version, store, location, features; per tenant, its
/// `cloudAppSecurityProfiles` (`profiles`, as before the family was served) and its entities
/// per served set (`sets`, the sets it has entities in); and per served set (`sets`, every one,
/// also when empty) its total and its count per tenant.
async fn info(
    State(state): State<Arc<OpsState>>,
    headers: HeaderMap,
) -> Result<Response, GraphError> {
    admin(&state, &headers)?;
    let catalog = crate::model::catalog();
    let mut counts: std::collections::BTreeMap<String, serde_json::Map<String, serde_json::Value>> =
        Default::default();
    for entity in catalog.served() {
        for (tenant, n) in state
            .store
            .tenant_counts(entity, None, None)
            .await
            .map_err(store_failure)?
        {
            counts
                .entry(tenant)
                .or_default()
                .insert(entity.collection.into(), n.into());
        }
    }
    let mut per_set = serde_json::Map::new();
    for entity in catalog.served() {
        let by_tenant: serde_json::Map<String, serde_json::Value> = counts
            .iter()
            .filter_map(|(tenant, sets)| {
                sets.get(entity.collection)
                    .map(|n| (tenant.clone(), n.clone()))
            })
            .collect();
        let total: u64 = by_tenant
            .values()
            .filter_map(serde_json::Value::as_u64)
            .sum();
        per_set.insert(
            entity.collection.into(),
            json!({ "total": total, "tenants": by_tenant }),
        );
    }
    let default = catalog.default_set().collection;
    let tenants: Vec<_> = counts
        .into_iter()
        .map(|(tenant, sets)| {
            let profiles = sets.get(default).cloned().unwrap_or(0.into());
            json!({ "tenant": tenant, "profiles": profiles, "sets": sets })
        })
        .collect();
    Ok(axum::Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "store": state.info.store,
        "location": state.info.location,
        "features": state.info.features,
        "tenants": tenants,
        "sets": per_set,
    }))
    .into_response())
}

/// `GET /_graphsec/subscriptions/{id}/deliveries[?tenant=T]`: the subscription's latest
/// delivery attempts (newest first), so an operator or a test can see that a receiver was
/// called, with what result, and the outbox's totals.
async fn deliveries(
    State(state): State<Arc<OpsState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<ResetQuery>,
) -> Result<Response, GraphError> {
    admin(&state, &headers)?;
    let notify = state.store.notify();
    let log = notify
        .deliveries(q.tenant.as_deref(), &id)
        .await
        .map_err(store_failure)?;
    let (pending, oldest) = notify.outbox_stats().await.map_err(store_failure)?;
    let value: Vec<serde_json::Value> = log
        .iter()
        .map(|d| {
            json!({
                "at": crate::model::edm::format_datetime(d.at),
                "kind": d.kind,
                "attempt": d.attempt,
                "notifications": d.notifications,
                "status": d.status,
                "outcome": d.outcome,
                "error": d.error,
            })
        })
        .collect();
    Ok(axum::Json(json!({
        "subscriptionId": id,
        "deliveries": value,
        "outbox": {
            "pending": pending,
            "oldestPending": oldest.map(crate::model::edm::format_datetime),
        },
    }))
    .into_response())
}
