//! The HTTP API: state, the router, and the dispatch from a [`routes::Route`] to a thin handler.

pub mod actions;
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
pub mod subscriptions;
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
use crate::model::entity::EntityType;
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
    /// A list page's byte budget (`--max-page-bytes`; 0: none).
    pub max_page_bytes: usize,
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
    /// Change notifications: the receiver policy and the handshake's HTTP client.
    pub notify: Arc<crate::notify::Notifier>,
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

    fn call(&mut self, mut req: Request) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let Some(outer) = &this.outer else {
                return Ok(dispatch(State(this.state), req).await);
            };
            // Only a POST writes several items (a bound action, `$batch`): the others need no
            // flag (and no allocation).
            let committed = (req.method() == Method::POST).then(|| {
                let c = limits::Committed::default();
                req.extensions_mut().insert(c.clone());
                c
            });
            let budget = req
                .extensions()
                .get::<crate::serve::budget::ConnectionBudget>()
                .cloned();
            let discardable = req.method() == Method::GET;
            let work = async {
                if req.method() == Method::POST && routes::may_be_batch(req.uri().path()) {
                    use tower::ServiceExt;
                    let Ok(resp) = outer.batch.clone().oneshot(req).await;
                    resp
                } else {
                    dispatch(State(this.state.clone()), req).await
                }
            };
            Ok(outer
                .guard
                .run(work, committed.as_ref(), budget.as_ref(), discardable)
                .await)
        })
    }
}

async fn dispatch(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let mut tag = RequestTag::default();
    // Boxed: the handler's future is large, and every wrapper that builds or awaits it would
    // otherwise copy it (memcpy was ~5% of a GET's instructions under callgrind).
    let mut resp = match Box::pin(route(&state, req, &mut tag)).await {
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

/// The error for a write the set's capability annotations (Insert/Update/DeleteRestrictions)
/// forbid: one wording for the API and the explorer.
pub fn refused_by_metadata(entity: &EntityType, method: &Method) -> GraphError {
    GraphError::MethodNotAllowed(format!(
        "The HTTP method '{method}' is not allowed on '{}': Graph's metadata does not allow it.",
        entity.collection
    ))
}

/// An operation the set's capability annotations forbid (Insert/Update/DeleteRestrictions,
/// CountRestrictions): 405 with the methods that remain, or 400 for `/$count`.
fn forbidden_by_metadata(route: &Route, method: &Method) -> Option<Response> {
    let (entity, allowed) = match route {
        Route::Count(e) if !e.capabilities.countable => {
            let e =
                GraphError::BadRequest(format!("Counting is not supported on '{}'.", e.collection));
            return Some(e.into_response());
        }
        Route::Collection(e) | Route::CollectionRef(e) if *method == Method::POST => {
            (*e, e.capabilities.insertable)
        }
        Route::Entity(e, _) if *method == Method::PATCH => (*e, e.capabilities.updatable),
        Route::Entity(e, _) if *method == Method::DELETE => (*e, e.capabilities.deletable),
        _ => return None,
    };
    if allowed {
        return None;
    }
    let caps = &entity.capabilities;
    let remaining: Vec<&str> = match route {
        Route::Entity(..) => [
            ("GET", true),
            ("PATCH", caps.updatable),
            ("DELETE", caps.deletable),
        ]
        .iter()
        .filter(|(_, ok)| *ok)
        .map(|(m, _)| *m)
        .collect(),
        _ => vec!["GET"],
    };
    let mut resp = refused_by_metadata(entity, method).into_response();
    if let Ok(v) = HeaderValue::from_str(&remaining.join(", ")) {
        resp.headers_mut().insert(header::ALLOW, v);
    }
    Some(resp)
}

async fn route(
    state: &AppState,
    req: Request,
    tag: &mut RequestTag,
) -> Result<Response, GraphError> {
    // Split now: a borrowed `Request` is not `Send` (its body is not `Sync`).
    let (parts, body) = req.into_parts();
    let resolved = routes::resolve(parts.uri.path());
    tag.set = resolved
        .as_ref()
        .ok()
        .and_then(|r| r.route.entity_set())
        .map(|e| e.collection);
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
    let set = resolved.as_ref().ok().and_then(|r| r.route.entity_set());
    if let Err(refused) = state.admission.admit(&principal, &parts.method, set).await {
        return Ok(refused);
    }
    let resolved = resolved?;
    let method = parts.method.clone();
    if matches!(
        resolved.route,
        Route::Subscriptions | Route::Subscription(_) | Route::SubscriptionReauthorize(_)
    ) {
        tag.operation = Some(subscriptions::operation(&resolved.route, &method));
        return subscriptions::serve(state, &parts, body, &resolved, principal).await;
    }
    tag.operation = Some(match (&resolved.route, &method) {
        (Route::Collection(_) | Route::CollectionRef(_), &Method::POST) => "create",
        (Route::Collection(_), &Method::GET) => "list",
        (Route::Count(_), &Method::GET) => "count",
        (Route::Entity(..), &Method::GET) => "get",
        (Route::Entity(..), &Method::PATCH) => "update",
        (Route::Entity(..), &Method::DELETE) => "delete",
        (Route::CollectionAction(_) | Route::EntityAction(..), &Method::POST) => "action",
        (Route::Metadata | Route::ServiceDocument | Route::OpenApi, _) => "document",
        _ => "method_not_allowed",
    });
    let operation = if method == Method::GET || method == Method::HEAD {
        Operation::Read
    } else {
        Operation::Write
    };
    let ctx = handlers::Ctx::new(
        state,
        &parts,
        resolved.prefix,
        principal,
        operation,
        resolved.route.entity_set(),
    )?;
    if let Some(refused) = forbidden_by_metadata(&resolved.route, &method) {
        return Ok(refused);
    }
    // A write to a set that notifies wakes the dispatcher once it succeeded (it also polls).
    let wakes = method != Method::GET
        && method != Method::HEAD
        && resolved
            .route
            .entity_set()
            .is_some_and(|e| e.rules.change_notifications);
    let result = match (resolved.route, &method) {
        (Route::Collection(e) | Route::CollectionRef(e), &Method::POST) => {
            handlers::create(state, &ctx, e, &parts, body).await
        }
        (Route::Collection(e), &Method::GET) => handlers::list(state, &ctx, e, &parts).await,
        (Route::Collection(_), _) => Ok(method_not_allowed(&method, "GET, POST")),
        (Route::CollectionRef(_), _) => Ok(method_not_allowed(&method, "POST")),
        (Route::Count(e), &Method::GET) => handlers::count(state, &ctx, e, &parts).await,
        (Route::Count(_), _) => Ok(method_not_allowed(&method, "GET")),
        (Route::Entity(e, id), &Method::GET) => handlers::get(state, &ctx, e, &parts, &id).await,
        (Route::Entity(e, id), &Method::PATCH) => {
            handlers::update(state, &ctx, e, &parts, body, &id).await
        }
        (Route::Entity(e, id), &Method::DELETE) => {
            handlers::delete(state, &ctx, e, &parts, &id).await
        }
        (Route::Entity(e, id), &Method::POST) if actions::names_an_action(e, &id) => {
            Err(actions::not_an_action(e, &id))
        }
        (Route::Entity(..), _) => Ok(method_not_allowed(&method, "GET, PATCH, DELETE")),
        (Route::CollectionAction(a), &Method::POST) => {
            actions::invoke(state, &ctx, a, None, &parts, body).await
        }
        (Route::EntityAction(a, id), &Method::POST) => {
            actions::invoke(state, &ctx, a, Some(&id), &parts, body).await
        }
        (Route::CollectionAction(_) | Route::EntityAction(..), _) => {
            Ok(method_not_allowed(&method, "POST"))
        }
        // Only reached for a method other than POST ([`batch::middleware`] takes the POSTs).
        (Route::Batch, _) => Ok(method_not_allowed(&method, "POST")),
        (route @ (Route::Metadata | Route::ServiceDocument | Route::OpenApi), _) => {
            let resolved = routes::Resolved { route, ..resolved };
            documents::serve(state, &parts, &resolved)
        }
        // Answered above.
        (Route::Subscriptions | Route::Subscription(_) | Route::SubscriptionReauthorize(_), _) => {
            Err(GraphError::Internal)
        }
    };
    if wakes && result.as_ref().is_ok_and(|r| r.status().is_success()) {
        state.notify.wake();
    }
    result
}
