//! The HTTP API: state, the router, and the dispatch from a [`routes::Route`] to a thin handler.

pub mod admission;
pub mod batch;
pub mod context;
pub mod documents;
pub mod envelope;
pub mod etag;
pub mod faults;
pub mod handlers;
pub mod limits;
pub mod metadata;
pub mod openapi;
pub mod paging;
pub mod routes;
pub mod throttle;
pub mod wire;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, Method, header};
use tower::Layer;

use crate::auth::Operation;
use crate::error::GraphError;
use crate::model::validate;
use crate::ops::RequestTag;
use crate::store::Store;
use routes::Route;

/// Everything a handler may use. Built once at startup.
pub struct AppState {
    pub auth: crate::auth::Authenticator,
    pub store: Arc<dyn Store>,
    pub validation: validate::Options,
    pub max_body_bytes: usize,
    /// Page size when the client gives no `$top`.
    pub page_size: usize,
    /// Externally visible base URL (behind a proxy), else derived from `Host`.
    pub public_url: Option<String>,
    pub tls: bool,
    /// The admin API's token (`--admin-token`): refused on the Graph API.
    pub admin_token: Option<String>,
    /// Throttle and fault injection, applied to every request after authentication.
    pub admission: admission::Admission,
    /// Request-level limits (URL length, timeout, concurrency), layered on in [`router`].
    pub limits: limits::LimitArgs,
    /// CORS for browser applications (`--cors-origin`); `None` sends no CORS headers.
    pub cors: Option<tower_http::cors::CorsLayer>,
}

/// The whole application as a router: every path goes through [`dispatch`], inside the wire
/// layers (request ids and error envelope, compression, CORS, request decoding). `$batch` is
/// answered by [`batch::middleware`] inside those layers; it runs each sub-request through the
/// same stack a direct call goes through (wire layers included), never a copy of it.
pub fn router(state: Arc<AppState>) -> Router {
    let wire = wire::WireLayer::new(state.cors.clone(), state.limits.max_url_length);
    let direct_call = Graph {
        state: state.clone(),
        outer: None,
    };
    let target = batch::Target::new(
        state.clone(),
        Router::new().fallback_service(wire.layer(direct_call.clone())),
    );
    // The request limits (timeout, concurrency cap) apply per HTTP request (a `$batch` takes
    // one slot; its sub-requests are throttled one by one in `route`) and sit inside the wire
    // layers, so their refusals get the Graph envelope.
    let outer = Outer {
        guard: limits::Guard::new(&state.limits),
        batch: tower::util::BoxCloneSyncService::new(
            axum::middleware::from_fn_with_state(target, batch::middleware).layer(direct_call),
        ),
    };
    Router::new().fallback_service(wire.layer(Graph {
        state,
        outer: Some(Arc::new(outer)),
    }))
}

/// Routing, authentication, permissions and validation ([`dispatch`]) as a service; with
/// `outer`, the service a client's HTTP request reaches (request limits and `$batch`), without
/// it the one a `$batch` sub-request reaches.
#[derive(Clone)]
struct Graph {
    state: Arc<AppState>,
    outer: Option<Arc<Outer>>,
}

struct Outer {
    guard: limits::Guard,
    /// [`batch::middleware`] in front of the dispatcher, for the requests that may be a batch.
    batch: tower::util::BoxCloneSyncService<Request, Response, std::convert::Infallible>,
}

impl tower::Service<Request> for Graph {
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = crate::store::BoxFuture<'static, Result<Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let Some(outer) = &this.outer else {
                return Ok(dispatch(State(this.state), req).await);
            };
            let work = async {
                if req.method() == Method::POST && routes::may_be_batch(req.uri().path()) {
                    use tower::ServiceExt;
                    let Ok(resp) = outer.batch.clone().oneshot(req).await;
                    resp
                } else {
                    dispatch(State(this.state.clone()), req).await
                }
            };
            Ok(outer.guard.run(work).await)
        })
    }
}

async fn dispatch(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let mut tag = RequestTag::default();
    let mut resp = match route(&state, req, &mut tag).await {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    };
    resp.extensions_mut().insert(tag);
    resp
}

/// Is this the admin token? It opens the admin API only, never the Graph API.
fn is_admin_token(state: &AppState, authorization: Option<&str>) -> bool {
    use subtle::ConstantTimeEq;
    match (
        &state.admin_token,
        authorization.and_then(|a| a.split_once(' ')),
    ) {
        (Some(admin), Some((_, presented))) => {
            bool::from(presented.trim().as_bytes().ct_eq(admin.as_bytes()))
        }
        _ => false,
    }
}

fn method_not_allowed(method: &Method, allowed: &'static str) -> Response {
    let mut resp = GraphError::MethodNotAllowed(format!(
        "The HTTP method '{method}' is not allowed on this resource; allowed: {allowed}."
    ))
    .into_response();
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allowed));
    resp
}

async fn route(
    state: &AppState,
    req: Request,
    tag: &mut RequestTag,
) -> Result<Response, GraphError> {
    // Split now: a borrowed `Request` is not `Send` (its body is not `Sync`).
    let (parts, body) = req.into_parts();
    let resolved = routes::resolve(parts.uri.path());
    if let Ok(r) = &resolved
        && r.route.is_public()
    {
        tag.operation = Some("document");
        return documents::serve(state, &parts, r);
    }
    // Graph authenticates before it looks at the path: no token, no information.
    let authorization = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    tag.operation = Some("unauthenticated");
    if is_admin_token(state, authorization) {
        crate::ops::metrics::token_rejected("graph");
        return Err(GraphError::InvalidAuthenticationToken(
            "The admin token is not accepted on the Graph API; send a Graph access token.".into(),
        ));
    }
    let principal = state.auth.authenticate(authorization).await.map_err(|e| {
        crate::ops::metrics::token_rejected("graph");
        GraphError::from(e)
    })?;
    tag.tenant = Some(principal.tenant.clone());
    tag.operation = Some("unknown_path");
    // Throttle and injected faults, per request (and so per `$batch` sub-request).
    if let Err(refused) = state.admission.admit(&principal, &parts.method).await {
        return Ok(refused);
    }
    let resolved = resolved?;
    let method = parts.method.clone();
    tag.operation = Some(match (&resolved.route, &method) {
        (Route::Collection | Route::CollectionRef, &Method::POST) => "create",
        (Route::Collection, &Method::GET) => "list",
        (Route::Count, &Method::GET) => "count",
        (Route::Entity(_), &Method::GET) => "get",
        (Route::Entity(_), &Method::PATCH) => "update",
        (Route::Entity(_), &Method::DELETE) => "delete",
        (Route::Metadata | Route::ServiceDocument | Route::OpenApi, _) => "document",
        _ => "method_not_allowed",
    });
    let operation = if method == Method::GET || method == Method::HEAD {
        Operation::Read
    } else {
        Operation::Write
    };
    let ctx = handlers::Ctx::new(state, &parts, resolved.versioned, principal, operation)?;
    match (resolved.route, &method) {
        (Route::Collection | Route::CollectionRef, &Method::POST) => {
            handlers::create(state, &ctx, &parts, body).await
        }
        (Route::Collection, &Method::GET) => handlers::list(state, &ctx, &parts).await,
        (Route::Collection, _) => Ok(method_not_allowed(&method, "GET, POST")),
        (Route::CollectionRef, _) => Ok(method_not_allowed(&method, "POST")),
        (Route::Count, &Method::GET) => handlers::count(state, &ctx, &parts).await,
        (Route::Count, _) => Ok(method_not_allowed(&method, "GET")),
        (Route::Entity(id), &Method::GET) => handlers::get(state, &ctx, &parts, &id).await,
        (Route::Entity(id), &Method::PATCH) => {
            handlers::update(state, &ctx, &parts, body, &id).await
        }
        (Route::Entity(id), &Method::DELETE) => handlers::delete(state, &ctx, &parts, &id).await,
        (Route::Entity(_), _) => Ok(method_not_allowed(&method, "GET, PATCH, DELETE")),
        // Only reached for a method other than POST ([`batch::middleware`] takes the POSTs).
        (Route::Batch, _) => Ok(method_not_allowed(&method, "POST")),
        (route @ (Route::Metadata | Route::ServiceDocument | Route::OpenApi), _) => {
            let resolved = routes::Resolved {
                route,
                versioned: resolved.versioned,
            };
            documents::serve(state, &parts, &resolved)
        }
    }
}
