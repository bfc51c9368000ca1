//! Wire fidelity (CONTRACT §3 "Encoding", §6): the HTTP-level layers around the Graph router.
//!
//! From the outside in:
//! 1. response compression (tower-http `CompressionLayer`, gzip/br, never 204/304 or tiny bodies);
//! 2. the request-context middleware (ids, the Graph error envelope): inside compression, so the
//!    error bodies it writes are compressed like any other body, and outside everything else, so
//!    every response below it (CORS preflights, 415s from the decoder, 414/431) carries ids;
//! 3. [`limits`]: 414/431 in the Graph envelope before hyper's own, much larger, limits apply
//!    (and `Host` from `:authority` on HTTP/2);
//! 4. CORS (tower-http `CorsLayer`, only with `--cors-origin`): preflights answered before
//!    authentication;
//! 5. request decompression (tower-http `RequestDecompressionLayer`, gzip/deflate/br): unknown
//!    codings are 415 with `Accept-Encoding`; the decoded stream is what the handlers read under
//!    `--max-body-bytes`, so a zip bomb ends as a 413 after at most that many decoded bytes.
//!
//! They are one service, [`Wire`], rather than a router layer each: every `Router::layer` boxes
//! the service below it and clones the whole boxed chain per request, which cost about 10% of a
//! GET by id (docs/PERFORMANCE.md). The tower-http layers run only for the requests they can
//! change: the compressor when the request has `Accept-Encoding` (without it the compressor
//! passes the body through and only adds `Vary`, which [`Wire`] adds the same way), the decoder
//! when it has `Content-Encoding`.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http::{HeaderName, HeaderValue, Method, StatusCode, Version, header};
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{DefaultPredicate, Predicate};
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};
use tower_http::decompression::RequestDecompressionLayer;

use super::context;
use crate::error::GraphError;
use crate::store::BoxFuture;

/// Default longest request target (path and query) served (`--max-url-length`); longer is 414.
/// Generous for `$filter`
/// (at most 8 KiB of text, up to three times that percent-encoded) and below hyper's own
/// 64 KiB limit, whose 414 has no body.
pub const MAX_URI_BYTES: usize = 32 * 1024;
/// Largest total size of the request headers (names and values); larger is 431. Below hyper's
/// own buffer limit (about 400 KiB), whose 431 has no body.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// The content codings graphsec decodes, as named in a 415's `Accept-Encoding`.
pub const REQUEST_CODINGS: &str = "gzip, deflate, br, identity";

/// Headers a browser application may read (CONTRACT §6).
const EXPOSED_HEADERS: [&str; 6] = [
    context::REQUEST_ID,
    context::CLIENT_REQUEST_ID,
    "location",
    "etag",
    "retry-after",
    // So a browser application rehearsing failures can tell injected ones apart.
    super::faults::FAULT_HEADER,
];

/// How long a browser may cache a preflight answer.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(3600);

/// Wraps every route of `router` in the wire layers (see the module doc for the order and why).
pub fn layer(router: axum::Router, cors: Option<CorsLayer>, max_uri_bytes: usize) -> axum::Router {
    router.layer(WireLayer::new(cors, max_uri_bytes))
}

/// Builds [`Wire`] services; cheap to clone.
#[derive(Clone)]
pub struct WireLayer {
    config: Arc<Config>,
}

struct Config {
    cors: Option<CorsLayer>,
    max_uri_bytes: usize,
}

impl WireLayer {
    pub fn new(cors: Option<CorsLayer>, max_uri_bytes: usize) -> WireLayer {
        WireLayer {
            config: Arc::new(Config {
                cors,
                max_uri_bytes,
            }),
        }
    }
}

impl<S> Layer<S> for WireLayer {
    type Service = Wire<S>;

    fn layer(&self, inner: S) -> Wire<S> {
        Wire {
            inner,
            config: self.config.clone(),
        }
    }
}

/// The wire layers around `S` as one service (module doc).
#[derive(Clone)]
pub struct Wire<S> {
    inner: S,
    config: Arc<Config>,
}

/// What [`Wire`] wraps: a service answering every request (a router, the Graph dispatcher).
pub trait Inner:
    Service<Request, Response = Response, Error = Infallible, Future: Send>
    + Clone
    + Send
    + Sync
    + 'static
{
}

impl<S> Inner for S where
    S: Service<Request, Response = Response, Error = Infallible, Future: Send>
        + Clone
        + Send
        + Sync
        + 'static
{
}

impl<S: Inner> Service<Request> for Wire<S> {
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // The inner service is driven with `oneshot`, which waits for its readiness.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { Ok(this.serve(req).await) })
    }
}

fn compression() -> CompressionLayer<impl Predicate> {
    CompressionLayer::new().compress_when(DefaultPredicate::new().and(has_body))
}

impl<S: Inner> Wire<S> {
    async fn serve(self, req: Request) -> Response {
        // The rarer paths are boxed, so their (large) futures are not part of every request's
        // future, which is moved in memory as it is built.
        if req.headers().contains_key(header::ACCEPT_ENCODING) {
            return Box::pin(self.compressed(req)).await;
        }
        let mut resp = self.in_context(req).await;
        // What the compressor does for a client that accepts no coding: the body stays as it
        // is, but a cache must still know that another client could get it encoded.
        let compressible = !resp.headers().contains_key(header::CONTENT_ENCODING)
            && !resp.headers().contains_key(header::CONTENT_RANGE)
            && DefaultPredicate::new().and(has_body).should_compress(&resp);
        if compressible
            && !resp.headers().get_all(header::VARY).iter().any(|v| {
                // The compressor's own test: the name anywhere in the value, any case.
                let name = header::ACCEPT_ENCODING.as_str().as_bytes();
                v.as_bytes()
                    .windows(name.len())
                    .any(|w| w.eq_ignore_ascii_case(name))
            })
        {
            resp.headers_mut()
                .append(header::VARY, HeaderValue::from_static("accept-encoding"));
        }
        resp
    }

    async fn compressed(self, req: Request) -> Response {
        let below = service_fn(move |req: Request| {
            let this = self.clone();
            async move { Ok::<_, Infallible>(this.in_context(req).await) }
        });
        let Ok(resp) = compression().layer(below).oneshot(req).await;
        resp.map(Body::new)
    }

    async fn in_context(self, req: Request) -> Response {
        context::around(req, move |req| self.below_context(req)).await
    }

    async fn below_context(self, mut req: Request) -> Response {
        if let Err(refused) = limits(&mut req, self.config.max_uri_bytes) {
            return refused.into_response();
        }
        let Some(cors) = &self.config.cors else {
            if req.headers().contains_key(header::CONTENT_ENCODING) {
                return Box::pin(decode(self.inner, req)).await;
            }
            let Ok(resp) = self.inner.oneshot(req).await;
            return resp;
        };
        let inner = self.inner.clone();
        let below = service_fn(move |req: Request| {
            let inner = inner.clone();
            async move { Ok::<_, Infallible>(decode(inner, req).await) }
        });
        let Ok(resp) = Box::pin(cors.clone().layer(below).oneshot(req)).await;
        resp
    }
}

/// Request decompression, for a request that has a `Content-Encoding`.
async fn decode<S: Inner>(inner: S, req: Request) -> Response {
    if !req.headers().contains_key(header::CONTENT_ENCODING) {
        let Ok(resp) = inner.oneshot(req).await;
        return resp;
    }
    let below = service_fn(move |req: Request<_>| inner.clone().oneshot(req.map(Body::new)));
    let Ok(resp) = RequestDecompressionLayer::new()
        .layer(below)
        .oneshot(req)
        .await;
    resp.map(Body::new)
}

/// 204 and 304 never carry a body, so they are never compressed (and get no
/// `Content-Encoding` that would confuse a cache).
fn has_body(status: StatusCode, _: Version, _: &http::HeaderMap, _: &http::Extensions) -> bool {
    status != StatusCode::NO_CONTENT && status != StatusCode::NOT_MODIFIED
}

/// The CORS layer for `--cors-origin` (none: no CORS headers at all, as before), or why the
/// flag's value is wrong. Built once at startup.
pub fn cors_layer(origins: &[String]) -> Result<Option<CorsLayer>, String> {
    let origins: Vec<&str> = origins
        .iter()
        .flat_map(|o| o.split(','))
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .collect();
    if origins.is_empty() {
        return Ok(None);
    }
    let allow_origin = if origins.contains(&"*") {
        AllowOrigin::any()
    } else {
        let mut list = Vec::with_capacity(origins.len());
        for o in origins {
            // An origin is `scheme://host[:port]`, compared byte for byte by browsers.
            let o = o.trim_end_matches('/');
            if !(o.starts_with("http://") || o.starts_with("https://")) {
                return Err(format!(
                    "--cors-origin '{o}' is not an origin (expected e.g. https://app.example.com, or * for development)"
                ));
            }
            list.push(
                HeaderValue::from_str(o)
                    .map_err(|_| format!("--cors-origin '{o}' is not valid"))?,
            );
        }
        AllowOrigin::list(list)
    };
    Ok(Some(
        CorsLayer::new()
            .allow_origin(allow_origin)
            .allow_methods([
                Method::GET,
                Method::HEAD,
                Method::POST,
                Method::PATCH,
                Method::PUT,
                Method::DELETE,
                Method::OPTIONS,
            ])
            // Graph clients send Authorization, client-request-id, Prefer, If-Match,
            // ConsistencyLevel, SdkVersion...: whatever the preflight asks for is allowed.
            .allow_headers(AllowHeaders::mirror_request())
            .expose_headers(EXPOSED_HEADERS.map(HeaderName::from_static))
            .max_age(PREFLIGHT_MAX_AGE),
    ))
}

/// Refuses over-long request targets and header sections with the Graph envelope, gives
/// HTTP/2 requests a `Host`, and lower-cases `Content-Encoding` (codings are case-insensitive,
/// RFC 9110 §8.4.1; the decoder matches them exactly).
fn limits(req: &mut Request, max_uri_bytes: usize) -> Result<(), GraphError> {
    let uri_len = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if uri_len > max_uri_bytes {
        return Err(GraphError::UriTooLong(format!(
            "The request URI is {uri_len} bytes long; at most {max_uri_bytes} are accepted."
        )));
    }
    let header_len: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if header_len > MAX_HEADER_BYTES {
        return Err(GraphError::HeadersTooLarge(format!(
            "The request headers are {header_len} bytes; at most {MAX_HEADER_BYTES} are accepted."
        )));
    }
    // HTTP/2 carries the host in `:authority`, not `Host` (RFC 9113 §8.3.1); everything that
    // derives URLs from `Host` (@odata.context, nextLink, Location) sees it there.
    if !req.headers().contains_key(header::HOST)
        && let Some(authority) = req.uri().authority()
        && let Ok(v) = HeaderValue::from_str(authority.as_str())
    {
        req.headers_mut().insert(header::HOST, v);
    }
    if let Some(v) = req.headers().get(header::CONTENT_ENCODING)
        && v.as_bytes().iter().any(u8::is_ascii_uppercase)
        && let Ok(lower) = HeaderValue::from_bytes(&v.as_bytes().to_ascii_lowercase())
    {
        req.headers_mut().insert(header::CONTENT_ENCODING, lower);
    }
    Ok(())
}
