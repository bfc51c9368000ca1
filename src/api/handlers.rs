//! Thin handlers: parse the input into typed values, call the store, wrap the result.

use axum::body::Body;
use axum::response::Response;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::Value as Json;

use super::AppState;
use super::envelope::{self, Root};
use super::{etag, paging};
use crate::auth::{Operation, Principal};
use crate::error::GraphError;
use crate::model::entity::EntityType;
use crate::model::record::Selection;
use crate::model::validate::{self, Mode};
use crate::odata::query::{ListQuery, Select, SelectItem, parse_list_query_with};
use crate::store::compile::{self, SqlParam};
use crate::store::{ListSpec, StoreError, key_values};

/// What every handler knows about the request besides its body. It can only be built from an
/// authenticated principal that is authorized for the operation, so no handler can reach the
/// store without both.
pub struct Ctx {
    pub root: Root,
    /// The principal's tenant: every store call is scoped by it.
    pub tenant: String,
    /// Who writes, for the values the service sets from the caller.
    pub caller: validate::Caller,
}

impl Ctx {
    pub fn new(
        state: &AppState,
        parts: &Parts,
        version: Option<&str>,
        principal: Principal,
        operation: Operation,
        set: Option<&EntityType>,
    ) -> Result<Ctx, GraphError> {
        state
            .auth
            .authorize_set(&principal, operation, set)
            .map_err(GraphError::from)?;
        // Only writes use the caller's values; reads skip the copies.
        let caller = if operation == Operation::Write {
            validate::Caller {
                tenant: principal.tenant.clone(),
                app: principal.app.clone(),
                user: match principal.kind {
                    crate::auth::PrincipalKind::Delegated { .. } => principal.subject.clone(),
                    _ => None,
                },
            }
        } else {
            validate::Caller::default()
        };
        Ok(Ctx {
            root: Root::new(
                state.public_url.as_deref(),
                crate::proxy::https(state.tls, &parts.extensions),
                &parts.headers,
                version,
            ),
            tenant: principal.tenant,
            caller,
        })
    }
}

/// Maps a store outcome on an entity of `entity`'s set to the wire. Internal causes are logged
/// here, never sent.
pub(crate) fn store_error(e: StoreError, entity: &EntityType, id: &str) -> GraphError {
    match e {
        StoreError::NotFound => {
            GraphError::NotFound(format!("The {} with id '{id}' was not found.", entity.name))
        }
        StoreError::Duplicate => {
            GraphError::Conflict(format!("A {} with id '{id}' already exists.", entity.name))
        }
        StoreError::VersionMismatch => precondition_failed(entity, id),
        StoreError::Invalid(m) => GraphError::BadRequest(m),
        StoreError::Unavailable(m) => {
            tracing::warn!(error = %m, "store unavailable");
            GraphError::ServiceUnavailable {
                message:
                    "The data store is temporarily unavailable. Retry after the indicated delay."
                        .into(),
                retry_after_secs: 5,
            }
        }
        StoreError::Internal(m) => {
            tracing::error!(error = %m, "store failure");
            GraphError::Internal
        }
    }
}

fn precondition_failed(entity: &EntityType, id: &str) -> GraphError {
    GraphError::PreconditionFailed(format!(
        "The {} with id '{id}' does not satisfy the request's If-Match or If-None-Match \
         condition (it has changed, or the tag is not a current strong ETag).",
        entity.name
    ))
}

/// Adds the entity's `ETag` to a single-entity response.
fn with_etag(mut resp: Response, version: i64) -> Response {
    resp.headers_mut()
        .insert(header::ETAG, etag::header_value(version));
    resp
}

/// `application/json`, in any case, with any parameters, and a `charset` (if any) that spells
/// UTF-8 (`utf-8`, `UTF8`, `"utf-8"`): JSON is UTF-8 on the wire (RFC 8259 §8.1).
fn is_json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mut parts = value.split(';');
    let essence_ok = parts
        .next()
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"));
    essence_ok
        && parts.filter_map(|p| p.split_once('=')).all(|(k, v)| {
            !k.trim().eq_ignore_ascii_case("charset")
                || matches!(
                    v.trim().trim_matches('"').to_ascii_lowercase().as_str(),
                    "utf-8" | "utf8"
                )
        })
}

/// RFC 8259 §8.1 lets a parser ignore a leading byte order mark; some clients send one.
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Reads and parses a JSON body under the size limit.
pub(crate) async fn json_body(
    state: &AppState,
    parts: &Parts,
    body: Body,
) -> Result<Json, GraphError> {
    let too_large = || {
        GraphError::PayloadTooLarge(format!(
            "The request body is larger than {} bytes.",
            state.max_body_bytes
        ))
    };
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > state.max_body_bytes as u64) {
        return Err(too_large());
    }
    if !is_json_content_type(&parts.headers) {
        return Err(GraphError::UnsupportedMediaType(format!(
            "The request body must be sent with Content-Type: application/json and UTF-8 (got {}).",
            parts
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map_or("none".to_string(), |v| format!("'{v}'"))
        )));
    }
    let bytes = match axum::body::to_bytes(body, state.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => {
            let limit = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            return Err(if limit {
                too_large()
            } else {
                GraphError::BadRequest(
                    "The request body could not be read or does not decode as its Content-Encoding declares."
                        .into(),
                )
            });
        }
    };
    let bytes = bytes.strip_prefix(UTF8_BOM).unwrap_or(&bytes);
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(GraphError::BadRequest(
            "The request body is empty; send a JSON object.".into(),
        ));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| GraphError::BadRequest(format!("The request body is not valid JSON: {e}.")))
}

/// The `return` preference of the `Prefer` header (RFC 7240 §4.2): `Some(true)` for
/// `return=minimal`, `Some(false)` for `return=representation`, `None` without one (the first
/// one given wins).
fn return_preference(headers: &HeaderMap) -> Option<bool> {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|p| {
            let p = p.trim();
            if p.eq_ignore_ascii_case("return=minimal") {
                Some(true)
            } else if p.eq_ignore_ascii_case("return=representation") {
                Some(false)
            } else {
                None
            }
        })
}

/// The decoded query string, in request order (`+` is a space, as ASP.NET decodes it).
fn query_pairs(parts: &Parts) -> Vec<(String, String)> {
    form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn parse_query(
    state: &AppState,
    entity: &'static EntityType,
    parts: &Parts,
) -> Result<(Vec<(String, String)>, ListQuery), GraphError> {
    let pairs = query_pairs(parts);
    let q = parse_list_query_with(entity, &pairs, state.validation.strict)
        .map_err(|e| GraphError::BadRequest(e.message))?;
    Ok((pairs, q))
}

/// A system option's canonical name (`$Filter` and `filter` are `filter`).
fn option_name(raw: &str) -> String {
    raw.trim_start_matches('$').to_ascii_lowercase()
}

/// The options that define a result set, canonicalised: a `$skiptoken` is bound to them.
fn fingerprint(pairs: &[(String, String)]) -> String {
    let mut defining: Vec<(String, &str)> = pairs
        .iter()
        .map(|(k, v)| (option_name(k), v.as_str()))
        .filter(|(k, _)| {
            matches!(
                k.as_str(),
                "filter" | "select" | "orderby" | "top" | "count"
            )
        })
        .collect();
    defining.sort();
    let refs: Vec<(&str, &str)> = defining.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    paging::fingerprint(&refs)
}

fn refuse_options(
    q: &ListQuery,
    pairs: &[(String, String)],
    allowed: &[&str],
    place: &str,
) -> Result<(), GraphError> {
    let used = |name: &str| match name {
        "filter" => q.filter.is_some(),
        "select" => q.select.is_some(),
        "orderby" => !q.order_by.is_empty(),
        "top" => q.top.is_some(),
        "skip" => q.skip.is_some(),
        "skiptoken" => q.skiptoken.is_some(),
        "count" => pairs.iter().any(|(k, _)| option_name(k) == "count"),
        _ => false,
    };
    for name in [
        "filter",
        "select",
        "orderby",
        "top",
        "skip",
        "skiptoken",
        "count",
    ] {
        if used(name) && !allowed.contains(&name) {
            return Err(GraphError::BadRequest(format!(
                "The query option '${name}' does not apply to {place}."
            )));
        }
    }
    Ok(())
}

/// `$select` as the serializer wants it, and its `@odata.context` list.
fn selection(select: Option<&Select>) -> (Option<Selection>, Option<String>) {
    match select {
        None => (None, None),
        Some(s) => (
            Some(Selection {
                props: (0..s.entity.properties.len())
                    .filter(|i| s.includes_declared(*i))
                    .collect(),
                dynamic: s
                    .items
                    .iter()
                    .filter_map(|i| match i {
                        SelectItem::Dynamic(n) => Some(n.clone()),
                        SelectItem::Declared(_) => None,
                    })
                    .collect(),
            }),
            Some(s.context_list()),
        ),
    }
}

/// `Prefer: odata.maxpagesize=N`, if the client sent it.
fn preferred_page_size(headers: &HeaderMap) -> Option<usize> {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("odata.maxpagesize"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .map(|n| n.clamp(1, crate::odata::query::MAX_TOP as usize))
}

pub(crate) fn param_to_json(p: &SqlParam) -> Json {
    match p {
        SqlParam::Null => Json::Null,
        SqlParam::Int(i) => Json::from(*i),
        SqlParam::Real(f) => Json::from(*f),
        SqlParam::Text(t) => Json::String(t.clone()),
        SqlParam::Bool(b) => Json::Bool(*b),
    }
}

pub(crate) fn json_to_param(v: &Json) -> Option<SqlParam> {
    Some(match v {
        Json::Null => SqlParam::Null,
        Json::Bool(b) => SqlParam::Bool(*b),
        Json::String(s) => SqlParam::Text(s.clone()),
        Json::Number(n) => match n.as_i64() {
            Some(i) => SqlParam::Int(i),
            None => SqlParam::Real(n.as_f64()?),
        },
        _ => return None,
    })
}

pub async fn create(
    state: &AppState,
    ctx: &Ctx,
    entity: &'static EntityType,
    parts: &Parts,
    body: Body,
) -> Result<Response, GraphError> {
    let body = json_body(state, parts, body).await?;
    let changes =
        validate::changes_from_caller(entity, &body, Mode::Create, state.validation, &ctx.caller)
            .map_err(|e| GraphError::BadRequest(e.0))?;
    let id = changes
        .requested_id()
        .map(str::to_owned)
        // Time-ordered (UUIDv7, still a lowercase GUID): new rows land at the end of the
        // primary key and of the tenant's index ranges instead of on random pages, so a commit
        // writes (and fsyncs) fewer WAL pages.
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let record = state
        .store
        .create(&ctx.tenant, changes, id.clone())
        .await
        .map_err(|e| store_error(e, entity, &id))?;
    let mut resp = envelope::entity_response(StatusCode::CREATED, &ctx.root, &record, None, None);
    if let Ok(v) = HeaderValue::from_str(&ctx.root.entity_url(entity, record.id())) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(with_etag(resp, record.version))
}

pub async fn get(
    state: &AppState,
    ctx: &Ctx,
    entity: &'static EntityType,
    parts: &Parts,
    id: &str,
) -> Result<Response, GraphError> {
    let (pairs, q) = parse_query(state, entity, parts)?;
    refuse_options(&q, &pairs, &["select"], "a single entity")?;
    let record = state
        .store
        .get(entity, &ctx.tenant, id)
        .await
        .map_err(|e| store_error(e, entity, id))?;
    // RFC 9110 §13.2.2: If-Match first (412), then If-None-Match (304 for a GET).
    let pre = etag::precondition(&parts.headers);
    if pre.if_match.is_some_and(|t| !t.matches(record.version)) {
        return Err(precondition_failed(entity, id));
    }
    if pre.if_none_match.is_some_and(|t| t.matches(record.version)) {
        let mut resp = Response::new(Body::empty());
        *resp.status_mut() = StatusCode::NOT_MODIFIED;
        return Ok(with_etag(resp, record.version));
    }
    let (sel, names) = selection(q.select.as_ref());
    Ok(with_etag(
        envelope::entity_response(
            StatusCode::OK,
            &ctx.root,
            &record,
            sel.as_ref(),
            names.as_deref(),
        ),
        record.version,
    ))
}

pub async fn list(
    state: &AppState,
    ctx: &Ctx,
    entity: &'static EntityType,
    parts: &Parts,
) -> Result<Response, GraphError> {
    let (pairs, mut q) = parse_query(state, entity, parts)?;
    if q.order_by.is_empty() {
        // The set's documented order (secure scores: newest first); a next link carries no
        // `$orderby` either, so each page applies the same order.
        q.order_by = crate::odata::query::default_order(entity)
            .map_err(|e| GraphError::BadRequest(e.message))?;
    }
    let secret = state.store.paging_secret();
    let fp = fingerprint(&pairs);
    let after = match &q.skiptoken {
        None => None,
        Some(token) => {
            let invalid =
                || GraphError::BadRequest("The $skiptoken is invalid for this query.".into());
            let values = paging::decode(secret, token, &fp)?
                .iter()
                .map(json_to_param)
                .collect::<Option<Vec<_>>>()
                .ok_or_else(invalid)?;
            // The token is signed, so this only fails for tokens of an incompatible server version.
            compile::check_keyset(entity, &q.order_by, &values).map_err(|_| invalid())?;
            Some(values)
        }
    };
    let preferred = preferred_page_size(&parts.headers);
    let limit = match q.top {
        Some(top) => top as usize,
        None => preferred.unwrap_or(state.page_size),
    };
    let spec = ListSpec {
        filter: q.filter.clone(),
        order_by: q.order_by.clone(),
        limit,
        // A next link carries the position; `$skip` applied to the first page only.
        skip: if after.is_some() {
            0
        } else {
            q.skip.unwrap_or(0)
        },
        after,
        count: q.count,
        max_bytes: state.max_page_bytes,
    };
    let page = state
        .store
        .list(entity, &ctx.tenant, spec)
        .await
        .map_err(|e| store_error(e, entity, ""))?;
    let next = match page.records.last() {
        Some(last) if page.more => {
            let position: Vec<Json> = key_values(last, &q.order_by)
                .iter()
                .map(param_to_json)
                .collect();
            let token = paging::encode(secret, &position, &fp);
            let mut url = form_urlencoded::Serializer::new(String::new());
            for (k, v) in &pairs {
                if !matches!(option_name(k).as_str(), "skip" | "skiptoken") {
                    url.append_pair(k, v);
                }
            }
            url.append_pair("$skiptoken", &token);
            Some(format!(
                "{}?{}",
                ctx.root.collection_path(entity),
                url.finish()
            ))
        }
        _ => None,
    };
    let (sel, names) = selection(q.select.as_ref());
    let mut resp = envelope::collection_response(
        &ctx.root.collection_context(entity, names.as_deref()),
        page.count,
        &page.records,
        sel.as_ref(),
        next.as_deref(),
    );
    if let (Some(n), None) = (preferred, q.top)
        && let Ok(v) = HeaderValue::from_str(&format!("odata.maxpagesize={n}"))
    {
        resp.headers_mut().insert("preference-applied", v);
    }
    Ok(resp)
}

pub async fn count(
    state: &AppState,
    ctx: &Ctx,
    entity: &'static EntityType,
    parts: &Parts,
) -> Result<Response, GraphError> {
    let (pairs, q) = parse_query(state, entity, parts)?;
    refuse_options(&q, &pairs, &["filter"], "/$count")?;
    let n = state
        .store
        .count(entity, &ctx.tenant, q.filter)
        .await
        .map_err(|e| store_error(e, entity, ""))?;
    let mut resp = Response::new(Body::from(n.to_string()));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain;charset=utf-8"),
    );
    Ok(resp)
}

pub async fn update(
    state: &AppState,
    ctx: &Ctx,
    entity: &'static EntityType,
    parts: &Parts,
    body: Body,
    id: &str,
) -> Result<Response, GraphError> {
    // The set's update page decides the answer without a preference (204 for alerts,
    // tiIndicators, control profiles; 200 for cloudAppSecurityProfiles, as its page shows).
    let preference = return_preference(&parts.headers);
    let minimal = preference.unwrap_or(entity.rules.update_status == 204);
    let body = json_body(state, parts, body).await?;
    let changes =
        validate::changes_from_caller(entity, &body, Mode::Patch, state.validation, &ctx.caller)
            .map_err(|e| GraphError::BadRequest(e.0))?;
    let record = state
        .store
        .update(&ctx.tenant, id, changes, etag::precondition(&parts.headers))
        .await
        .map_err(|e| store_error(e, entity, id))?;
    let mut resp = if minimal {
        let mut resp = Response::new(Body::empty());
        *resp.status_mut() = StatusCode::NO_CONTENT;
        resp
    } else {
        envelope::entity_response(StatusCode::OK, &ctx.root, &record, None, None)
    };
    if let Some(minimal) = preference {
        resp.headers_mut().insert(
            "preference-applied",
            HeaderValue::from_static(if minimal {
                "return=minimal"
            } else {
                "return=representation"
            }),
        );
    }
    Ok(with_etag(resp, record.version))
}

pub async fn delete(
    state: &AppState,
    ctx: &Ctx,
    entity: &'static EntityType,
    parts: &Parts,
    id: &str,
) -> Result<Response, GraphError> {
    state
        .store
        .delete(entity, &ctx.tenant, id, etag::precondition(&parts.headers))
        .await
        .map_err(|e| store_error(e, entity, id))?;
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::NO_CONTENT;
    Ok(resp)
}
