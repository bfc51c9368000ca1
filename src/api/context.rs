//! Per-request context middleware: request ids, the Graph error body, panics as 500s, and the
//! headers every response carries. The only place an error body is serialized.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderName, HeaderValue, header};
use serde_json::json;

use crate::error::{ErrorBody, GraphError};
use crate::model::edm::{format_error_date, now_ticks};
use crate::ops::RequestTag;

/// Route labels of requests no dispatcher tagged: operator endpoints and `$batch`.
fn operator_route(path: &str) -> Option<&'static str> {
    Some(match path {
        "/healthz" => "healthz",
        "/readyz" => "readyz",
        "/metrics" => "metrics",
        "/_graphsec/reset" => "admin_reset",
        "/_graphsec/info" => "admin_info",
        "/_graphsec/token" => "dev_token",
        "/common/discovery/instance" => "instance_discovery",
        // The development token service (`ops::sts`), under a tenant segment.
        p if p.ends_with("/oauth2/v2.0/token") => "token",
        p if p.ends_with("/.well-known/openid-configuration") => "openid_configuration",
        p if p.ends_with("/discovery/v2.0/keys") || p.ends_with("/discovery/keys") => "jwks",
        // Answered by the batch middleware before the dispatcher could tag it.
        p if p.len() >= 7 && p.as_bytes()[p.len() - 7..].eq_ignore_ascii_case(b"/$batch") => {
            "batch"
        }
        _ => return None,
    })
}

/// The ids of one request, available to handlers as an extension.
#[derive(Debug, Clone)]
pub struct RequestIds {
    pub request_id: String,
    pub client_request_id: String,
}

pub const REQUEST_ID: &str = "request-id";
pub const CLIENT_REQUEST_ID: &str = "client-request-id";
// The names every response gets, as `HeaderName` constants: `from_static` in a `const` is
// checked at compile time, where a `&str` name is validated again on every insert.
const REQUEST_ID_NAME: HeaderName = HeaderName::from_static(REQUEST_ID);
const CLIENT_REQUEST_ID_NAME: HeaderName = HeaderName::from_static(CLIENT_REQUEST_ID);
const ODATA_VERSION: HeaderName = HeaderName::from_static("odata-version");

/// A caller's `client-request-id`, if it is sane enough to echo back.
fn client_request_id(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(CLIENT_REQUEST_ID_NAME)?.to_str().ok()?;
    (!v.is_empty() && v.len() <= 256 && v.bytes().all(|b| b.is_ascii_graphic()))
        .then(|| v.to_string())
}

/// Marks an error response whose body is another protocol's error document (OAuth 2.0's, from
/// the development token service): [`finish`] keeps it instead of writing the Graph envelope.
/// `code` is that protocol's error code, for the access log.
#[derive(Debug, Clone, Copy)]
pub struct ProtocolError {
    pub code: &'static str,
}

/// Builds the Graph error JSON for a rendered error.
pub fn error_json(body: &ErrorBody, ids: &RequestIds) -> serde_json::Value {
    json!({
        "error": {
            "code": body.code,
            "message": body.message,
            "innerError": {
                "date": format_error_date(now_ticks()),
                "request-id": ids.request_id,
                "client-request-id": ids.client_request_id,
            }
        }
    })
}

/// Writes the Graph error body and the per-request headers onto a response.
pub fn finish(mut resp: Response, ids: &RequestIds) -> Response {
    let status = resp.status();
    let rendered = resp.extensions_mut().remove::<ErrorBody>();
    let foreign = resp.extensions_mut().remove::<ProtocolError>().is_some();
    if (status.is_client_error() || status.is_server_error()) && !foreign {
        let body = rendered.unwrap_or_else(|| {
            // A response made outside our handlers (the HTTP stack's own rejection).
            let e = if status == http::StatusCode::UNSUPPORTED_MEDIA_TYPE
                && resp.headers().contains_key(header::ACCEPT_ENCODING)
            {
                // The request decoder's refusal of a Content-Encoding (it names the codings).
                GraphError::UnsupportedMediaType(format!(
                    "The request body's Content-Encoding is not supported; use one of: {}.",
                    super::wire::REQUEST_CODINGS
                ))
            } else {
                GraphError::from_status(status)
            };
            ErrorBody {
                code: e.code(),
                message: e.message(),
            }
        });
        let bytes = error_json(&body, ids).to_string();
        *resp.body_mut() = Body::from(bytes);
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        resp.headers_mut().remove(header::CONTENT_LENGTH);
    }
    let headers = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&ids.request_id) {
        headers.insert(REQUEST_ID_NAME, v);
    }
    if let Ok(v) = HeaderValue::from_str(&ids.client_request_id) {
        headers.insert(CLIENT_REQUEST_ID_NAME, v);
    }
    headers.insert(ODATA_VERSION, HeaderValue::from_static("4.0"));
    resp
}

/// A fresh request id: a random (version 4) GUID from the thread's fast generator, not the OS
/// one (a `getrandom` syscall per request showed up in profiles). Request ids correlate logs and
/// support tickets; nothing relies on them being unpredictable.
fn new_request_id() -> String {
    uuid::Builder::from_random_bytes(fastrand::u128(..).to_le_bytes())
        .into_uuid()
        .to_string()
}

/// Reads, which change nothing, run in the connection's own task with panics caught; every
/// other method runs in a task of its own (see [`around`]).
fn runs_inline(method: &http::Method) -> bool {
    method == http::Method::GET || method == http::Method::HEAD
}

/// The request context around `run` (the rest of the stack): assigns ids, runs the request with panics turned into 500s, and finishes the
/// response. A write (any method but GET and HEAD) runs in its own task, so a client that hangs
/// up does not cancel it half-way; a read runs inline (a task per request cost ~5% of a GET,
/// docs/PERFORMANCE.md), where a hang-up merely stops work nobody waits for.
pub async fn around<F, Fut>(mut req: Request, run: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response> + Send + 'static,
{
    use futures_util::FutureExt;
    let request_id = new_request_id();
    let client_request_id = client_request_id(req.headers()).unwrap_or_else(|| request_id.clone());
    let ids = RequestIds {
        request_id,
        client_request_id,
    };
    req.extensions_mut().insert(ids.clone());
    let method = req.method().clone();
    // Computed now (a `&'static str`), so the path need not be copied for after the handler.
    let untagged_route = operator_route(req.uri().path());
    let started = std::time::Instant::now();
    let outcome = if runs_inline(&method) {
        std::panic::AssertUnwindSafe(run(req))
            .catch_unwind()
            .await
            .map_err(|panic| panic_message(&*panic))
    } else {
        tokio::spawn(run(req)).await.map_err(|e| e.to_string())
    };
    let resp = match outcome {
        Ok(resp) => resp,
        Err(e) => {
            tracing::error!(request_id = %ids.request_id, error = %e, "handler panicked");
            GraphError::Internal.into_response()
        }
    };
    let took = started.elapsed();
    let status = resp.status().as_u16();
    let tag = resp.extensions().get::<RequestTag>();
    let operation = tag
        .and_then(|t| t.operation)
        .or(untagged_route)
        .unwrap_or("unmatched");
    crate::ops::metrics::record_request(operation, &method, status, took);
    // The error's code as the client sees it (Graph's, or the OAuth 2.0 error of the token
    // service), so a log line says what went wrong without the body.
    let code = (status >= 400).then(|| {
        resp.extensions()
            .get::<ErrorBody>()
            .map(|b| b.code)
            .or_else(|| resp.extensions().get::<ProtocolError>().map(|p| p.code))
            .unwrap_or_else(|| GraphError::from_status(resp.status()).code())
    });
    // The access log: the route template (never the raw path with ids), never a token.
    macro_rules! access {
        ($level:expr) => {
            tracing::event!(
                target: "graphsec::access",
                $level,
                request_id = %ids.request_id,
                %method,
                route = operation,
                set = tag.and_then(|t| t.set).unwrap_or("-"),
                status,
                code = code.unwrap_or("-"),
                latency_ms = took.as_secs_f64() * 1000.0,
                tenant = tag.and_then(|t| t.tenant.as_deref()).unwrap_or("-"),
                "request"
            )
        };
    }
    if status >= 400 || ACCESS_SAMPLER.admit(started) {
        access!(tracing::Level::INFO);
    } else {
        access!(tracing::Level::DEBUG);
    }
    finish(resp, &ids)
}

/// Successful requests the access log writes at info level per second; errors (status >= 400)
/// are always written. Formatting and writing a line cost about 5% of a GET by id
/// (docs/PERFORMANCE.md), so a busy server writes a bounded number of success lines and
/// counts the rest; `--log info,graphsec::access=debug` writes every request (the ones over
/// the budget at debug level).
pub const ACCESS_LOG_SUCCESSES_PER_SECOND: u32 = 100;

static ACCESS_SAMPLER: AccessSampler = AccessSampler {
    second: AtomicU64::new(0),
    logged: AtomicU32::new(0),
    skipped: AtomicU64::new(0),
};

/// Counts successful requests per wall-clock second of the process (see
/// [`ACCESS_LOG_SUCCESSES_PER_SECOND`]).
struct AccessSampler {
    /// Seconds since the process's first request, plus one (0 = none yet).
    second: AtomicU64,
    /// Success lines written at info in `second`.
    logged: AtomicU32,
    /// Success lines not written at info since the last summary.
    skipped: AtomicU64,
}

impl AccessSampler {
    /// Whether the success that started at `started` gets its line at info. When a new second
    /// begins after successes were held back, one summary line says how many.
    fn admit(&self, started: std::time::Instant) -> bool {
        static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        let epoch = *EPOCH.get_or_init(|| started);
        self.admit_in(started.saturating_duration_since(epoch).as_secs() + 1)
    }

    /// [`Self::admit`] for a success in second `now` (counted from 1).
    fn admit_in(&self, now: u64) -> bool {
        let seen = self.second.load(Ordering::Relaxed);
        if now > seen
            && self
                .second
                .compare_exchange(seen, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.logged.store(0, Ordering::Relaxed);
            let skipped = self.skipped.swap(0, Ordering::Relaxed);
            if skipped > 0 {
                tracing::info!(
                    target: "graphsec::access::sampling",
                    skipped,
                    per_second = ACCESS_LOG_SUCCESSES_PER_SECOND,
                    "successful requests not written at info (over the access log's budget per second; --log info,graphsec::access=debug writes them)"
                );
            }
        }
        if self.logged.fetch_add(1, Ordering::Relaxed) < ACCESS_LOG_SUCCESSES_PER_SECOND {
            true
        } else {
            self.skipped.fetch_add(1, Ordering::Relaxed);
            false
        }
    }
}

/// The text of a caught panic, as `tokio`'s `JoinError` would show it.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    let what = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("Box<dyn Any>");
    format!("task panicked with message {what:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_access_log_budget_is_per_second_and_counts_what_it_holds_back() {
        let sampler = AccessSampler {
            second: AtomicU64::new(0),
            logged: AtomicU32::new(0),
            skipped: AtomicU64::new(0),
        };
        let budget = ACCESS_LOG_SUCCESSES_PER_SECOND as usize;
        let first: Vec<bool> = (0..budget + 5).map(|_| sampler.admit_in(1)).collect();
        assert!(first[..budget].iter().all(|&b| b));
        assert!(first[budget..].iter().all(|&b| !b));
        assert_eq!(sampler.skipped.load(Ordering::Relaxed), 5);
        // A new second: a fresh budget, and the held-back count was reported (and reset).
        assert!(sampler.admit_in(3));
        assert_eq!(sampler.skipped.load(Ordering::Relaxed), 0);
        assert_eq!(sampler.logged.load(Ordering::Relaxed), 1);
        // A late request stamped with an earlier second does not reopen that second.
        assert!(sampler.admit_in(2));
        assert_eq!(sampler.second.load(Ordering::Relaxed), 3);
    }
}
