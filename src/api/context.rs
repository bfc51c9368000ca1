//! Per-request context middleware: request ids, the Graph error body, panics as 500s, and the
//! headers every response carries. The only place an error body is serialized.

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, header};
use serde_json::json;

use crate::error::{ErrorBody, GraphError};
use crate::model::edm::{format_error_date, now_ticks};

/// The ids of one request, available to handlers as an extension.
#[derive(Debug, Clone)]
pub struct RequestIds {
    pub request_id: String,
    pub client_request_id: String,
}

pub const REQUEST_ID: &str = "request-id";
pub const CLIENT_REQUEST_ID: &str = "client-request-id";

/// A caller's `client-request-id`, if it is sane enough to echo back.
fn client_request_id(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(CLIENT_REQUEST_ID)?.to_str().ok()?;
    (!v.is_empty() && v.len() <= 256 && v.bytes().all(|b| b.is_ascii_graphic()))
        .then(|| v.to_string())
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
    if status.is_client_error() || status.is_server_error() {
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
        headers.insert(REQUEST_ID, v);
    }
    if let Ok(v) = HeaderValue::from_str(&ids.client_request_id) {
        headers.insert(CLIENT_REQUEST_ID, v);
    }
    headers.insert("odata-version", HeaderValue::from_static("4.0"));
    resp
}

/// The middleware: assigns ids, runs the request in its own task (so a panic becomes a 500 and
/// a client that hangs up does not cancel a write half-way), and finishes the response.
pub async fn middleware(mut req: Request, next: Next) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let client_request_id = client_request_id(req.headers()).unwrap_or_else(|| request_id.clone());
    let ids = RequestIds {
        request_id,
        client_request_id,
    };
    req.extensions_mut().insert(ids.clone());
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let started = std::time::Instant::now();
    let resp = match tokio::spawn(next.run(req)).await {
        Ok(resp) => resp,
        Err(e) => {
            tracing::error!(request_id = %ids.request_id, error = %e, "handler panicked");
            GraphError::Internal.into_response()
        }
    };
    tracing::info!(
        request_id = %ids.request_id,
        %method,
        path,
        status = resp.status().as_u16(),
        ms = started.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    finish(resp, &ids)
}
