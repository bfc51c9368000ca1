//! Thin handlers: parse the input into typed values, call the store, wrap the result.

use axum::body::Body;
use axum::response::Response;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::Value as Json;

use super::AppState;
use super::envelope::{self, Root};
use super::paging;
use crate::error::GraphError;
use crate::model::entity::ENTITY;
use crate::model::validate::{self, Mode};
use crate::store::{ListQuery, StoreError};

/// What every handler knows about the request besides its body.
pub struct Ctx {
    pub root: Root,
    pub tenant: String,
}

impl Ctx {
    pub fn new(state: &AppState, parts: &Parts, versioned: bool) -> Ctx {
        Ctx {
            root: Root::new(
                state.public_url.as_deref(),
                state.tls,
                &parts.headers,
                versioned,
            ),
            tenant: state.default_tenant.clone(),
        }
    }
}

/// Maps a store outcome to the wire. Internal causes are logged here, never sent.
fn store_error(e: StoreError, id: &str) -> GraphError {
    match e {
        StoreError::NotFound => {
            GraphError::NotFound(format!("The {} with id '{id}' was not found.", ENTITY.name))
        }
        StoreError::Duplicate => {
            GraphError::Conflict(format!("A {} with id '{id}' already exists.", ENTITY.name))
        }
        StoreError::VersionMismatch => GraphError::PreconditionFailed(format!(
            "The {} with id '{id}' has changed since the version named in If-Match.",
            ENTITY.name
        )),
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

fn is_json_content_type(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

/// Reads and parses a JSON body under the size limit.
async fn json_body(state: &AppState, parts: &Parts, body: Body) -> Result<Json, GraphError> {
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
            "The request body must be sent with Content-Type: application/json (got {}).",
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
                GraphError::BadRequest("The request body could not be read.".into())
            });
        }
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(GraphError::BadRequest(
            "The request body is empty; send a JSON object.".into(),
        ));
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| GraphError::BadRequest(format!("The request body is not valid JSON: {e}.")))
}

/// Does the `Prefer` header ask for `return=minimal`?
fn prefers_minimal(headers: &HeaderMap) -> bool {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',')
                .any(|p| p.trim().eq_ignore_ascii_case("return=minimal"))
        })
}

/// GET query options are the query engine's; until a route supports them, they are refused by
/// name rather than silently ignored.
fn refuse_query_options(parts: &Parts) -> Result<(), GraphError> {
    let Some(q) = parts.uri.query() else {
        return Ok(());
    };
    for (name, _) in form_urlencoded::parse(q.as_bytes()) {
        if name.starts_with('$') {
            return Err(GraphError::BadRequest(format!(
                "The query option '{name}' is not supported."
            )));
        }
    }
    Ok(())
}

pub async fn create(
    state: &AppState,
    ctx: &Ctx,
    parts: &Parts,
    body: Body,
) -> Result<Response, GraphError> {
    let body = json_body(state, parts, body).await?;
    let changes = validate::changes_from_json(&body, Mode::Create, state.validation)
        .map_err(|e| GraphError::BadRequest(e.0))?;
    let id = changes
        .requested_id()
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let record = state
        .store
        .create(&ctx.tenant, changes, id.clone())
        .await
        .map_err(|e| store_error(e, &id))?;
    let mut resp = envelope::json_response(
        StatusCode::CREATED,
        &envelope::entity_body(&ctx.root, &record, None, None),
    );
    if let Ok(v) = HeaderValue::from_str(&ctx.root.entity_url(record.id())) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

pub async fn get(
    state: &AppState,
    ctx: &Ctx,
    parts: &Parts,
    id: &str,
) -> Result<Response, GraphError> {
    refuse_query_options(parts)?;
    let record = state
        .store
        .get(&ctx.tenant, id)
        .await
        .map_err(|e| store_error(e, id))?;
    Ok(envelope::json_response(
        StatusCode::OK,
        &envelope::entity_body(&ctx.root, &record, None, None),
    ))
}

pub async fn list(state: &AppState, ctx: &Ctx, parts: &Parts) -> Result<Response, GraphError> {
    let mut token = None;
    for (name, value) in form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes()) {
        if name
            .trim_start_matches('$')
            .eq_ignore_ascii_case("skiptoken")
        {
            token = Some(value.into_owned());
        } else if name.starts_with('$') {
            return Err(GraphError::BadRequest(format!(
                "The query option '{name}' is not supported."
            )));
        }
    }
    let secret = state.store.paging_secret();
    let fingerprint = paging::fingerprint(&[]);
    let after_id = match token {
        Some(t) => match paging::decode(secret, &t, &fingerprint)?.as_slice() {
            [Json::String(id)] => Some(id.clone()),
            _ => return Err(GraphError::BadRequest("The $skiptoken is invalid.".into())),
        },
        None => None,
    };
    let query = ListQuery {
        limit: state.page_size,
        after_id,
        ..ListQuery::default()
    };
    let page = state
        .store
        .list(&ctx.tenant, query)
        .await
        .map_err(|e| store_error(e, ""))?;
    let next = match page.records.last() {
        Some(last) if page.more => {
            let t = paging::encode(secret, &[Json::String(last.id().to_string())], &fingerprint);
            Some(format!("{}?$skiptoken={t}", ctx.root.collection_path()))
        }
        _ => None,
    };
    let body = envelope::collection_body(
        ctx.root.collection_context(None),
        page.count,
        &page.records,
        None,
        next,
    );
    Ok(envelope::json_response(StatusCode::OK, &body))
}

pub async fn count(state: &AppState, ctx: &Ctx, parts: &Parts) -> Result<Response, GraphError> {
    refuse_query_options(parts)?;
    let n = state
        .store
        .count(&ctx.tenant)
        .await
        .map_err(|e| store_error(e, ""))?;
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
    parts: &Parts,
    body: Body,
    id: &str,
) -> Result<Response, GraphError> {
    let minimal = prefers_minimal(&parts.headers);
    let body = json_body(state, parts, body).await?;
    let changes = validate::changes_from_json(&body, Mode::Patch(id), state.validation)
        .map_err(|e| GraphError::BadRequest(e.0))?;
    let record = state
        .store
        .update(&ctx.tenant, id, changes, None)
        .await
        .map_err(|e| store_error(e, id))?;
    if minimal {
        let mut resp = Response::new(Body::empty());
        *resp.status_mut() = StatusCode::NO_CONTENT;
        resp.headers_mut().insert(
            "preference-applied",
            HeaderValue::from_static("return=minimal"),
        );
        return Ok(resp);
    }
    Ok(envelope::json_response(
        StatusCode::OK,
        &envelope::entity_body(&ctx.root, &record, None, None),
    ))
}

pub async fn delete(state: &AppState, ctx: &Ctx, id: &str) -> Result<Response, GraphError> {
    state
        .store
        .delete(&ctx.tenant, id, None)
        .await
        .map_err(|e| store_error(e, id))?;
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::NO_CONTENT;
    Ok(resp)
}
