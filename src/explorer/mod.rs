//! The data explorer: server-rendered HTML pages at `/_graphsec/explorer` to look at and change
//! every tenant's entities of every set of each version, driven by the catalogs (a set the
//! metadata adds appears with no code here).
//!
//! It is a client of the same layers as the Graph API (`shared/ARCHITECTURE.md`): queries go
//! through [`crate::odata::query::parse_list_query_with`], writes through
//! [`validate::changes_from_caller`] and the store's
//! `create`/`update`/`delete`, bound actions through [`crate::api::actions::invoke`], errors through
//! the API's own mapping ([`crate::api::handlers::store_error`]); never SQL of its own. Every
//! change is logged with `actor = "admin"`.
//!
//! Access ([`Access`]): open on a loopback listener without `--admin-token` (development; the
//! `Host` must then be a loopback name, against DNS rebinding); with `--admin-token` only that
//! token opens it, as `Authorization: Bearer` or as the HttpOnly `SameSite=Strict` session
//! cookie the login form sets (a value derived from the token, never the token itself); off
//! loopback without a token it stays closed. Every write form carries a CSRF token.
//! `--no-explorer` removes the routes.

// A refusal is the page the request answers, returned at once: the size of `Response` in an
// `Err` costs nothing that matters on these (rare, operator-only) requests.
#![allow(clippy::result_large_err)]

mod render;
pub mod template;

use std::collections::HashMap;
use std::sync::Arc;

use aws_lc_rs::hmac;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::Value as Json;
use subtle::ConstantTimeEq;

use crate::api::AppState;
use crate::api::envelope::Root;
use crate::api::handlers::{Ctx, store_error};
use crate::error::GraphError;
use crate::model::actions::{self, Binding};
use crate::model::entity::EntityType;
use crate::model::record::Record;
use crate::model::validate::{self, Mode};
use crate::store::{ListSpec, Precondition, Tags, compile, key_values};

/// Where the explorer lives.
pub const BASE: &str = "/_graphsec/explorer";
/// The session cookie's name.
const COOKIE: &str = "graphsec_explorer";
/// Entities per list page.
const PAGE: usize = 25;

/// Who may open the explorer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Loopback listener, no `--admin-token`: anyone on this machine (development).
    Open,
    /// `--admin-token`: that token only.
    Token(String),
    /// Off loopback without `--admin-token`: nobody (the page says how to enable it).
    Closed,
}

impl Access {
    /// The access the flags give: the token when there is one, else open on loopback only.
    pub fn decide(admin_token: Option<&str>, listen: &[std::net::SocketAddr]) -> Access {
        match admin_token {
            Some(t) => Access::Token(t.to_owned()),
            None if !listen.is_empty() && listen.iter().all(|a| a.ip().is_loopback()) => {
                Access::Open
            }
            None => Access::Closed,
        }
    }

    pub fn describe(&self) -> &'static str {
        match self {
            Access::Open => "open (loopback, no --admin-token)",
            Access::Token(_) => "the admin token",
            Access::Closed => "closed (not loopback and no --admin-token)",
        }
    }
}

/// The explorer's state: the Graph API's (store, validation, notifier, ...) and its own keys.
pub struct Explorer {
    app: Arc<AppState>,
    access: Access,
    /// Signs the CSRF token (derived from the admin token, so every node agrees; random per
    /// process when open).
    csrf_key: hmac::Key,
    /// The session cookie's value in token mode.
    session: Option<String>,
    secure_cookie: bool,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Explorer {
    pub fn new(app: Arc<AppState>, access: Access) -> Explorer {
        let (csrf_key, session) = match &access {
            Access::Token(t) => {
                let key = hmac::Key::new(hmac::HMAC_SHA256, t.as_bytes());
                let session = hex(hmac::sign(&key, b"graphsec explorer session v1").as_ref());
                let csrf = hmac::Key::new(
                    hmac::HMAC_SHA256,
                    hmac::sign(&key, b"graphsec explorer csrf v1").as_ref(),
                );
                (csrf, Some(session))
            }
            _ => {
                let secret: [u8; 32] = std::array::from_fn(|_| 0)
                    .map(|_: u8| 0)
                    .map(|_| fastrand_secure_byte());
                (hmac::Key::new(hmac::HMAC_SHA256, &secret), None)
            }
        };
        let secure_cookie = app.tls;
        Explorer {
            app,
            access,
            csrf_key,
            session,
            secure_cookie,
        }
    }

    fn csrf(&self) -> String {
        hex(&hmac::sign(&self.csrf_key, b"csrf").as_ref()[..16])
    }

    /// Whether the request may see the explorer; the page to answer instead if not.
    fn gate(&self, headers: &HeaderMap) -> Result<(), Response> {
        match &self.access {
            Access::Closed => Err(html_error(
                StatusCode::FORBIDDEN,
                &GraphError::AccessDenied(
                    "The explorer is closed: graphsec listens on a non-loopback address without --admin-token. Start it with --admin-token to open the explorer with that token.".into(),
                ),
            )),
            Access::Open => {
                let host = headers
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or("");
                if is_loopback_host(host) {
                    Ok(())
                } else {
                    Err(html_error(
                        StatusCode::FORBIDDEN,
                        &GraphError::AccessDenied(
                            "The explorer without a token answers loopback host names only (localhost, 127.0.0.1, [::1]).".into(),
                        ),
                    ))
                }
            }
            Access::Token(token) => {
                let bearer = headers
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.split_once(' '))
                    .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                    .is_some_and(|(_, t)| bool::from(t.trim().as_bytes().ct_eq(token.as_bytes())));
                let cookie = self.session.as_deref().is_some_and(|s| {
                    cookie_value(headers, COOKIE)
                        .is_some_and(|c| bool::from(c.as_bytes().ct_eq(s.as_bytes())))
                });
                if bearer || cookie {
                    Ok(())
                } else {
                    crate::ops::metrics::token_rejected("explorer");
                    Err(page_response(
                        StatusCode::UNAUTHORIZED,
                        render::login(None),
                        Some("InvalidAuthenticationToken"),
                    ))
                }
            }
        }
    }

    /// The gate, then the CSRF token of a write form.
    fn gate_write(
        &self,
        headers: &HeaderMap,
        form: &HashMap<String, String>,
    ) -> Result<(), Response> {
        self.gate(headers)?;
        let ok = form
            .get("csrf")
            .is_some_and(|c| bool::from(c.as_bytes().ct_eq(self.csrf().as_bytes())));
        if ok {
            Ok(())
        } else {
            Err(html_error(
                StatusCode::FORBIDDEN,
                &GraphError::AccessDenied(
                    "The form's CSRF token is missing or stale; reload the page and try again."
                        .into(),
                ),
            ))
        }
    }

    fn ctx(&self, headers: &HeaderMap, entity: &EntityType, tenant: &str) -> Ctx {
        Ctx {
            root: Root::new(
                self.app.public_url.as_deref(),
                self.app.tls,
                headers,
                Some(entity.version),
            ),
            tenant: tenant.to_owned(),
            caller: validate::Caller {
                tenant: tenant.to_owned(),
                app: Some("graphsec-explorer".into()),
                user: Some("admin".into()),
            },
        }
    }
}

/// A random byte from the OS generator (the open mode's CSRF key).
fn fastrand_secure_byte() -> u8 {
    let mut b = [0u8; 1];
    let _ = aws_lc_rs::rand::fill(&mut b);
    b[0]
}

fn is_loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The explorer's routes (under [`BASE`]).
pub fn router(state: Arc<Explorer>) -> Router {
    Router::new()
        .route(BASE, get(home))
        .route(&format!("{BASE}/"), get(home))
        .route(&format!("{BASE}/style.css"), get(style))
        .route(&format!("{BASE}/app.js"), get(script))
        .route(&format!("{BASE}/login"), post(login))
        .route(&format!("{BASE}/logout"), post(logout))
        .route(&format!("{BASE}/tenant"), get(tenant_page))
        .route(&format!("{BASE}/list"), get(list))
        .route(&format!("{BASE}/entity"), get(entity_page))
        .route(&format!("{BASE}/new"), get(new_page))
        .route(&format!("{BASE}/create"), post(create))
        .route(&format!("{BASE}/update"), post(update))
        .route(&format!("{BASE}/delete"), post(delete))
        .route(&format!("{BASE}/action"), post(action))
        .route(&format!("{BASE}/reset"), post(reset))
        .route(&format!("{BASE}/subscriptions"), get(subscriptions))
        .with_state(state)
}

type Q = Query<HashMap<String, String>>;

/// Adds the explorer's security headers to an HTML response; an error status keeps its page
/// (the wire layer would otherwise replace it by the Graph error JSON).
fn page_response(status: StatusCode, body: maud::Markup, code: Option<&'static str>) -> Response {
    let mut resp = (status, body.into_string()).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    secure_headers(h);
    if status.is_client_error() || status.is_server_error() {
        resp.extensions_mut()
            .insert(crate::api::context::ProtocolError {
                code: code.unwrap_or("explorer"),
            });
    }
    resp
}

fn secure_headers(h: &mut HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

fn html(body: maud::Markup) -> Response {
    page_response(StatusCode::OK, body, None)
}

/// A page that shows a Graph error as Graph returns it (code and message).
fn html_error(status: StatusCode, e: &GraphError) -> Response {
    page_response(
        status,
        render::error_page(e.code(), &e.message()),
        Some(e.code()),
    )
}

fn err(e: GraphError) -> Response {
    html_error(e.status(), &e)
}

fn see_other(location: &str) -> Response {
    let mut resp = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    secure_headers(resp.headers_mut());
    resp
}

/// A link into the explorer with these query parameters (encoded).
pub(crate) fn href(page: &str, pairs: &[(&str, &str)]) -> String {
    let mut url = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        url.append_pair(k, v);
    }
    let q = url.finish();
    if q.is_empty() {
        format!("{BASE}/{page}")
    } else {
        format!("{BASE}/{page}?{q}")
    }
}

fn form(bytes: &Bytes) -> HashMap<String, String> {
    form_urlencoded::parse(bytes).into_owned().collect()
}

fn param<'a>(q: &'a HashMap<String, String>, name: &str) -> Result<&'a str, Response> {
    match q.get(name).map(|s| s.as_str()) {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(err(GraphError::BadRequest(format!(
            "The parameter '{name}' is required."
        )))),
    }
}

/// The served set `set` of the version `version`.
fn resolve(q: &HashMap<String, String>) -> Result<&'static EntityType, Response> {
    let version = param(q, "version")?;
    let set = param(q, "set")?;
    crate::model::catalog::version(version)
        .and_then(|c| c.set(set))
        .filter(|e| e.served)
        .ok_or_else(|| {
            err(GraphError::NotFound(format!(
                "No served entity set '{set}' in version '{version}'."
            )))
        })
}

fn store_failure(e: crate::store::StoreError, entity: &EntityType, id: &str) -> Response {
    err(store_error(e, entity, id))
}

async fn style(State(_): State<Arc<Explorer>>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        render::CSS,
    )
        .into_response()
}

async fn script(State(_): State<Arc<Explorer>>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        render::JS,
    )
        .into_response()
}

/// `POST login`: the admin token from the form; a session cookie if it is right.
async fn login(State(x): State<Arc<Explorer>>, body: Bytes) -> Response {
    let f = form(&body);
    let (Access::Token(token), Some(session)) = (&x.access, &x.session) else {
        return see_other(BASE);
    };
    let presented = f.get("token").map(|s| s.trim()).unwrap_or("");
    if !bool::from(presented.as_bytes().ct_eq(token.as_bytes())) {
        crate::ops::metrics::token_rejected("explorer");
        tracing::warn!(actor = "admin", "explorer login refused: wrong token");
        return page_response(
            StatusCode::UNAUTHORIZED,
            render::login(Some("That is not the server's admin token.")),
            Some("InvalidAuthenticationToken"),
        );
    }
    tracing::info!(actor = "admin", "explorer login");
    with_session_cookie(&x, &format!("{COOKIE}={session}"))
}

async fn logout(State(x): State<Arc<Explorer>>) -> Response {
    with_session_cookie(&x, &format!("{COOKIE}=; Max-Age=0"))
}

/// A redirect to the explorer's home that sets the session cookie to `value` (`name=…` plus
/// any extra attributes), with the attributes every session cookie carries.
fn with_session_cookie(x: &Explorer, value: &str) -> Response {
    let mut resp = see_other(BASE);
    let secure = if x.secure_cookie { "; Secure" } else { "" };
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{value}; Path={BASE}; HttpOnly; SameSite=Strict{secure}"
    )) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

/// Every tenant's (or `tenant`'s) count per served set of the storage catalog, each stopping
/// above [`render::COUNT_CAP`]: exact counts cost a pass over every row of every set (150 ms at
/// 100,000 entities per set, scripts/bench-explorer), capped ones a few index entries per
/// tenant and set.
async fn counts(x: &Explorer, tenant: Option<&str>) -> Result<render::Counts, Response> {
    let mut counts = render::Counts::default();
    for entity in crate::model::catalog().served() {
        let per = x
            .app
            .store
            .tenant_counts(entity, tenant, Some(render::COUNT_CAP + 1))
            .await
            .map_err(|e| store_failure(e, entity, ""))?;
        for (tenant, n) in per {
            counts.entry(tenant).or_default().insert(entity.index, n);
        }
    }
    Ok(counts)
}

/// The home page: tenants by set.
async fn home(State(x): State<Arc<Explorer>>, headers: HeaderMap) -> Response {
    if let Err(r) = x.gate(&headers) {
        return r;
    }
    match counts(&x, None).await {
        Ok(c) => html(render::home(
            &c,
            matches!(x.access, Access::Token(_)),
            &x.csrf(),
        )),
        Err(r) => r,
    }
}

/// One tenant: its sets per version, reset, subscriptions.
async fn tenant_page(State(x): State<Arc<Explorer>>, headers: HeaderMap, Query(q): Q) -> Response {
    if let Err(r) = x.gate(&headers) {
        return r;
    }
    let tenant = match param(&q, "tenant") {
        Ok(t) => t,
        Err(r) => return r,
    };
    match counts(&x, Some(tenant)).await {
        Ok(c) => html(render::tenant(tenant, c.get(tenant), &x.csrf())),
        Err(r) => r,
    }
}

/// A list query as the explorer's form gives it.
pub(crate) struct ListForm<'a> {
    pub tenant: &'a str,
    pub entity: &'static EntityType,
    pub filter: &'a str,
    pub orderby: &'a str,
}

async fn list(State(x): State<Arc<Explorer>>, headers: HeaderMap, Query(q): Q) -> Response {
    if let Err(r) = x.gate(&headers) {
        return r;
    }
    let (tenant, entity) = match (param(&q, "tenant"), resolve(&q)) {
        (Ok(t), Ok(e)) => (t, e),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let lf = ListForm {
        tenant,
        entity,
        filter: q.get("filter").map_or("", |s| s.as_str()),
        orderby: q.get("orderby").map_or("", |s| s.as_str()),
    };
    let mut pairs = Vec::new();
    if !lf.filter.trim().is_empty() {
        pairs.push(("$filter".to_string(), lf.filter.to_string()));
    }
    if !lf.orderby.trim().is_empty() {
        pairs.push(("$orderby".to_string(), lf.orderby.to_string()));
    }
    let csrf = x.csrf();
    let parsed =
        crate::odata::query::parse_list_query_with(entity, &pairs, x.app.validation.strict)
            .and_then(|mut lq| {
                if lq.order_by.is_empty() {
                    lq.order_by = crate::odata::query::default_order(entity)?;
                }
                Ok(lq)
            });
    let lq = match parsed {
        Ok(lq) => lq,
        Err(e) => {
            let e = GraphError::BadRequest(e.message);
            return page_response(
                StatusCode::BAD_REQUEST,
                render::list(&lf, Err((e.code(), e.message())), &csrf),
                Some(e.code()),
            );
        }
    };
    let after = match q.get("after").filter(|a| !a.is_empty()) {
        None => None,
        Some(a) => {
            let values = serde_json::from_str::<Vec<Json>>(a)
                .ok()
                .and_then(|v| {
                    v.iter()
                        .map(crate::api::handlers::json_to_param)
                        .collect::<Option<Vec<_>>>()
                })
                .filter(|v| compile::check_keyset(entity, &lq.order_by, v).is_ok());
            match values {
                Some(v) => Some(v),
                None => {
                    return err(GraphError::BadRequest(
                        "The page position is invalid for this query.".into(),
                    ));
                }
            }
        }
    };
    let spec = ListSpec {
        filter: lq.filter.clone(),
        order_by: lq.order_by.clone(),
        limit: PAGE,
        skip: 0,
        after,
        count: true,
        max_bytes: x.app.max_page_bytes,
    };
    let page = match x.app.store.list(entity, tenant, spec).await {
        Ok(p) => p,
        Err(e) => return store_failure(e, entity, ""),
    };
    let next = match page.records.last() {
        Some(last) if page.more => {
            let position: Vec<Json> = key_values(last, &lq.order_by)
                .iter()
                .map(crate::api::handlers::param_to_json)
                .collect();
            Some(Json::Array(position).to_string())
        }
        _ => None,
    };
    let first = q.get("after").is_some_and(|a| !a.is_empty());
    html(render::list(
        &lf,
        Ok(render::ListPage {
            records: &page.records,
            count: page.count,
            next: next.as_deref(),
            not_first: first,
        }),
        &csrf,
    ))
}

async fn entity_page(State(x): State<Arc<Explorer>>, headers: HeaderMap, Query(q): Q) -> Response {
    if let Err(r) = x.gate(&headers) {
        return r;
    }
    let (tenant, entity, id) = match (param(&q, "tenant"), resolve(&q), param(&q, "id")) {
        (Ok(t), Ok(e), Ok(id)) => (t, e, id),
        (Err(r), _, _) | (_, Err(r), _) | (_, _, Err(r)) => return r,
    };
    match x.app.store.get(entity, tenant, id).await {
        Ok(record) => html(render::entity(tenant, &record, &x.csrf(), None)),
        Err(e) => store_failure(e, entity, id),
    }
}

async fn new_page(State(x): State<Arc<Explorer>>, headers: HeaderMap, Query(q): Q) -> Response {
    if let Err(r) = x.gate(&headers) {
        return r;
    }
    let (tenant, entity) = match (param(&q, "tenant"), resolve(&q)) {
        (Ok(t), Ok(e)) => (t, e),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let body = serde_json::to_string_pretty(&template::create_body(entity)).unwrap_or_default();
    html(render::new_entity(tenant, entity, &body, &x.csrf(), None))
}

/// Parses a form's JSON body as the API reads a request body.
fn json_of(text: &str) -> Result<Json, GraphError> {
    if text.trim().is_empty() {
        return Err(GraphError::BadRequest(
            "The request body is empty; send a JSON object.".into(),
        ));
    }
    serde_json::from_str(text)
        .map_err(|e| GraphError::BadRequest(format!("The request body is not valid JSON: {e}.")))
}

/// Reads a write form: gate + CSRF, tenant and set.
fn write_form(
    x: &Explorer,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<(HashMap<String, String>, String, &'static EntityType), Response> {
    let f = form(body);
    x.gate_write(headers, &f)?;
    let tenant = param(&f, "tenant")?.to_owned();
    let entity = resolve(&f)?;
    Ok((f, tenant, entity))
}

async fn create(State(x): State<Arc<Explorer>>, headers: HeaderMap, body: Bytes) -> Response {
    let (f, tenant, entity) = match write_form(&x, &headers, &body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let text = f.get("body").map_or("", |s| s.as_str());
    let ctx = x.ctx(&headers, entity, &tenant);
    let outcome = async {
        if !entity.capabilities.insertable {
            return Err(crate::api::refused_by_metadata(entity, &http::Method::POST));
        }
        let json = json_of(text)?;
        let changes = validate::changes_from_caller(
            entity,
            &json,
            Mode::Create,
            x.app.validation,
            &ctx.caller,
        )
        .map_err(|e| GraphError::BadRequest(e.0))?;
        let id = changes
            .requested_id()
            .map(str::to_owned)
            .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
        x.app
            .store
            .create(&tenant, changes, id.clone())
            .await
            .map_err(|e| store_error(e, entity, &id))
    }
    .await;
    match outcome {
        Ok(record) => {
            tracing::info!(actor = "admin", operation = "create", tenant = %tenant, set = entity.collection, version = entity.version, id = record.id(), "explorer change");
            see_other(&entity_href(&tenant, &record))
        }
        Err(e) => page_response(
            e.status(),
            render::new_entity(
                &tenant,
                entity,
                text,
                &x.csrf(),
                Some((e.code(), e.message())),
            ),
            Some(e.code()),
        ),
    }
}

pub(crate) fn entity_href(tenant: &str, record: &Record) -> String {
    href(
        "entity",
        &[
            ("tenant", tenant),
            ("version", record.entity.version),
            ("set", record.entity.collection),
            ("id", record.id()),
        ],
    )
}

fn if_match(f: &HashMap<String, String>) -> Precondition {
    Precondition {
        if_match: Some(Tags::Versions(
            f.get("etag")
                .and_then(|e| e.trim().trim_matches('"').parse::<i64>().ok())
                .into_iter()
                .collect(),
        )),
        if_none_match: None,
    }
}

async fn update(State(x): State<Arc<Explorer>>, headers: HeaderMap, body: Bytes) -> Response {
    let (f, tenant, entity) = match write_form(&x, &headers, &body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let id = match param(&f, "id") {
        Ok(id) => id.to_owned(),
        Err(r) => return r,
    };
    let text = f.get("body").map_or("", |s| s.as_str());
    let ctx = x.ctx(&headers, entity, &tenant);
    let outcome = async {
        if !entity.capabilities.updatable {
            return Err(crate::api::refused_by_metadata(
                entity,
                &http::Method::PATCH,
            ));
        }
        let json = json_of(text)?;
        let changes = validate::changes_from_caller(
            entity,
            &json,
            Mode::Patch,
            x.app.validation,
            &ctx.caller,
        )
        .map_err(|e| GraphError::BadRequest(e.0))?;
        x.app
            .store
            .update(&tenant, &id, changes, if_match(&f))
            .await
            .map_err(|e| store_error(e, entity, &id))
    }
    .await;
    match outcome {
        Ok(record) => {
            tracing::info!(actor = "admin", operation = "update", tenant = %tenant, set = entity.collection, version = entity.version, id = %id, etag = record.version, "explorer change");
            see_other(&entity_href(&tenant, &record))
        }
        Err(e) => {
            // The page again, with the error and the body as sent.
            let current = x.app.store.get(entity, &tenant, &id).await;
            match current {
                Ok(record) => page_response(
                    e.status(),
                    render::entity(
                        &tenant,
                        &record,
                        &x.csrf(),
                        Some((e.code(), e.message(), text)),
                    ),
                    Some(e.code()),
                ),
                Err(_) => err(e),
            }
        }
    }
}

async fn delete(State(x): State<Arc<Explorer>>, headers: HeaderMap, body: Bytes) -> Response {
    let (f, tenant, entity) = match write_form(&x, &headers, &body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let id = match param(&f, "id") {
        Ok(id) => id.to_owned(),
        Err(r) => return r,
    };
    if !entity.capabilities.deletable {
        return err(crate::api::refused_by_metadata(
            entity,
            &http::Method::DELETE,
        ));
    }
    match x.app.store.delete(entity, &tenant, &id, if_match(&f)).await {
        Ok(()) => {
            tracing::info!(actor = "admin", operation = "delete", tenant = %tenant, set = entity.collection, version = entity.version, id = %id, "explorer change");
            see_other(&href(
                "list",
                &[
                    ("tenant", &tenant),
                    ("version", entity.version),
                    ("set", entity.collection),
                ],
            ))
        }
        Err(e) => store_failure(e, entity, &id),
    }
}

/// Runs a bound action through the API's own code ([`crate::api::actions::invoke`]) and shows
/// its answer.
async fn action(State(x): State<Arc<Explorer>>, headers: HeaderMap, body: Bytes) -> Response {
    let (f, tenant, entity) = match write_form(&x, &headers, &body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let name = match param(&f, "action") {
        Ok(n) => n,
        Err(r) => return r,
    };
    let id = f.get("id").map(|s| s.as_str()).filter(|s| !s.is_empty());
    let binding = if id.is_some() {
        Binding::Entity
    } else {
        Binding::Collection
    };
    let Some(bound) = actions::find(entity, binding, name) else {
        return err(crate::api::actions::not_an_action(entity, name));
    };
    let text = f.get("body").map_or("", |s| s.as_str()).to_owned();
    let ctx = x.ctx(&headers, entity, &tenant);
    let (parts, ()) = match http::Request::builder()
        .method(http::Method::POST)
        .header(header::CONTENT_TYPE, "application/json")
        .body(())
    {
        Ok(r) => r.into_parts(),
        Err(_) => return err(GraphError::Internal),
    };
    let resp = match crate::api::actions::invoke(
        &x.app,
        &ctx,
        bound,
        id,
        &parts,
        Body::from(text.clone()),
    )
    .await
    {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    let status = resp.status();
    let rendered = resp
        .extensions()
        .get::<crate::error::ErrorBody>()
        .map(|b| (b.code, b.message.clone()));
    let bytes = axum::body::to_bytes(resp.into_body(), 64 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let answer = match rendered {
        Some((code, message)) => format!("{code}: {message}"),
        None => serde_json::from_slice::<Json>(&bytes)
            .ok()
            .and_then(|j| serde_json::to_string_pretty(&j).ok())
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned()),
    };
    tracing::info!(actor = "admin", operation = "action", action = bound.name, tenant = %tenant, set = entity.collection, version = entity.version, id = id.unwrap_or(""), status = status.as_u16(), "explorer change");
    page_response(
        if status.is_success() {
            StatusCode::OK
        } else {
            status
        },
        render::action_result(
            &tenant,
            bound,
            id,
            status.as_u16(),
            &answer,
            &text,
            &x.csrf(),
        ),
        (!status.is_success()).then_some("action"),
    )
}

/// Deletes every entity of the tenant in every served set (the admin reset).
async fn reset(State(x): State<Arc<Explorer>>, headers: HeaderMap, body: Bytes) -> Response {
    let f = form(&body);
    if let Err(r) = x.gate_write(&headers, &f) {
        return r;
    }
    let tenant = match param(&f, "tenant") {
        Ok(t) => t.to_owned(),
        Err(r) => return r,
    };
    let mut deleted = 0;
    for entity in crate::model::catalog().served() {
        match x.app.store.reset(entity, Some(&tenant)).await {
            Ok(n) => deleted += n,
            Err(e) => return store_failure(e, entity, ""),
        }
    }
    tracing::info!(actor = "admin", operation = "reset", tenant = %tenant, deleted, "explorer change");
    see_other(&href("tenant", &[("tenant", &tenant)]))
}

/// The tenant's live subscriptions and each one's latest deliveries.
async fn subscriptions(
    State(x): State<Arc<Explorer>>,
    headers: HeaderMap,
    Query(q): Q,
) -> Response {
    if let Err(r) = x.gate(&headers) {
        return r;
    }
    let tenant = match param(&q, "tenant") {
        Ok(t) => t,
        Err(r) => return r,
    };
    let notify = x.app.store.notify();
    let any = crate::model::catalog().default_set();
    let subs = match notify
        .list_subscriptions(tenant, crate::model::edm::now_ticks())
        .await
    {
        Ok(s) => s,
        Err(e) => return store_failure(e, any, ""),
    };
    let mut rows = Vec::with_capacity(subs.len());
    for s in subs {
        let log = match notify.deliveries(Some(tenant), &s.id).await {
            Ok(l) => l,
            Err(e) => return store_failure(e, any, ""),
        };
        rows.push((s, log));
    }
    html(render::subscriptions(tenant, &rows))
}
