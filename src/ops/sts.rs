//! The development token service on the wire: the paths an MSAL or Azure Identity application
//! calls when its authority host is graphsec, and graphsec's own `POST /_graphsec/token`. The
//! rules (tenants, clients, scopes, the documents) are `crate::auth::sts`.
//!
//! | path | answer |
//! |---|---|
//! | `GET /{tenant}/v2.0/.well-known/openid-configuration` | OpenID Connect discovery, every URL under the base URL the client used |
//! | `GET /{tenant}/discovery/v2.0/keys` (and v1's `/{tenant}/discovery/keys`) | the development key as a JWK Set |
//! | `POST /{tenant}/oauth2/v2.0/token` | the client credentials grant, Entra's JSON and errors |
//! | `GET /common/discovery/instance?authorization_endpoint=…` | Entra's instance discovery, naming graphsec's host |
//! | `POST /_graphsec/token` | a token of the caller's choice (`graphsec token --url`) |
//!
//! None of them needs a token, as on Entra. With real identity-provider keys (`--jwks-url`,
//! `--jwks-file`) the service is off and every one of them says so (404). The OAuth 2.0 errors
//! keep their own shape: the request-context layer leaves bodies marked [`ProtocolError`]
//! alone.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde::Deserialize;
use serde_json::{Value, json};

use super::http::OpsState;
use crate::api::context::{ProtocolError, RequestIds};
use crate::api::envelope::Root;
use crate::auth::TokenSpec;
use crate::auth::sts::{MintRefusal, OAuthError, basic_credentials};
use crate::error::GraphError;
use crate::proxy::Intercepted;

/// The token service's routes (merged into the operator router).
pub fn routes() -> Router<Arc<OpsState>> {
    Router::new()
        .route(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            get(openid_configuration),
        )
        .route("/{tenant}/discovery/v2.0/keys", get(keys))
        .route("/{tenant}/discovery/keys", get(keys))
        .route("/common/discovery/instance", get(instance_discovery))
        .route("/{tenant}/oauth2/v2.0/token", any(token))
        .route("/{tenant}/oauth2/v2.0/authorize", any(authorize))
        .route("/{tenant}/oauth2/v2.0/devicecode", any(device_code))
        .route("/_graphsec/token", post(mint))
}

/// A request that came through `--https-proxy`'s tunnel (its URLs are `https://` ones).
type Tunneled = Option<axum::Extension<Intercepted>>;

/// The base URL the client reached graphsec at (or `--public-url`): through `--https-proxy`,
/// `https://login.microsoftonline.com` for a client that kept Microsoft's authority.
fn base(state: &OpsState, headers: &HeaderMap, tunneled: &Tunneled) -> String {
    let https = state.tls || tunneled.is_some();
    Root::new(state.public_url.as_deref(), https, headers, None).0
}

/// A JSON answer of the token service: never cached (RFC 6749 §5.1).
fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut resp = (status, body.to_string()).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, no-cache"),
    );
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}

/// An Entra-shaped error, marked so the request-context layer keeps its body.
fn oauth_error(e: &OAuthError, ids: Option<&RequestIds>) -> Response {
    let (trace, correlation) = ids.map_or(("", ""), |i| {
        (i.request_id.as_str(), i.client_request_id.as_str())
    });
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    let mut resp = json_response(status, &e.body(trace, correlation));
    resp.extensions_mut()
        .insert(ProtocolError { code: e.error });
    resp
}

type Ids = Option<axum::Extension<RequestIds>>;

fn ids(ids: &Ids) -> Option<&RequestIds> {
    ids.as_ref().map(|axum::Extension(i)| i)
}

async fn openid_configuration(
    State(state): State<Arc<OpsState>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    request_ids: Ids,
    tunneled: Tunneled,
) -> Response {
    let Some(sts) = &state.sts else {
        return oauth_error(&OAuthError::service_off(), ids(&request_ids));
    };
    match sts.openid_configuration(&tenant, &base(&state, &headers, &tunneled)) {
        Ok(doc) => json_response(StatusCode::OK, &doc),
        Err(e) => oauth_error(&e, ids(&request_ids)),
    }
}

async fn keys(State(state): State<Arc<OpsState>>, request_ids: Ids) -> Response {
    match &state.sts {
        Some(sts) => json_response(StatusCode::OK, &sts.jwks()),
        None => oauth_error(&OAuthError::service_off(), ids(&request_ids)),
    }
}

#[derive(Debug, Deserialize)]
struct InstanceQuery {
    authorization_endpoint: Option<String>,
    #[serde(rename = "api-version")]
    api_version: Option<String>,
}

async fn instance_discovery(
    State(state): State<Arc<OpsState>>,
    Query(q): Query<InstanceQuery>,
    headers: HeaderMap,
    request_ids: Ids,
    tunneled: Tunneled,
) -> Response {
    let Some(sts) = &state.sts else {
        return oauth_error(&OAuthError::service_off(), ids(&request_ids));
    };
    match sts.instance_discovery(
        q.authorization_endpoint.as_deref(),
        q.api_version.as_deref(),
        &base(&state, &headers, &tunneled),
    ) {
        Ok(doc) => json_response(StatusCode::OK, &doc),
        Err(e) => oauth_error(&e, ids(&request_ids)),
    }
}

async fn token(
    State(state): State<Arc<OpsState>>,
    Path(tenant): Path<String>,
    method: Method,
    headers: HeaderMap,
    request_ids: Ids,
    tunneled: Tunneled,
    body: Bytes,
) -> Response {
    let Some(sts) = &state.sts else {
        return oauth_error(&OAuthError::service_off(), ids(&request_ids));
    };
    if method != Method::POST {
        return oauth_error(&OAuthError::post_only(method.as_str()), ids(&request_ids));
    }
    // RFC 6749 §4.4.2: form-encoded parameters. A body of another type has none of them, so
    // the first missing parameter is named, as Entra does.
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| {
            t.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    let form: Vec<(String, String)> = if is_form {
        form_urlencoded::parse(&body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    } else {
        Vec::new()
    };
    let basic = basic_credentials(
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok()),
    );
    match sts.token(&tenant, &form, basic, &base(&state, &headers, &tunneled)) {
        Ok(t) => json_response(StatusCode::OK, &t.body()),
        Err(e) => {
            tracing::info!(
                tenant = tenant.as_str(),
                error = e.error,
                aadsts = e.aadsts,
                "token request refused: {}",
                e.message
            );
            oauth_error(&e, ids(&request_ids))
        }
    }
}

async fn authorize(State(state): State<Arc<OpsState>>, request_ids: Ids) -> Response {
    let e = match state.sts {
        Some(_) => OAuthError::unsupported_endpoint("authorization (interactive sign-in)"),
        None => OAuthError::service_off(),
    };
    oauth_error(&e, ids(&request_ids))
}

async fn device_code(State(state): State<Arc<OpsState>>, request_ids: Ids) -> Response {
    let e = match state.sts {
        Some(_) => OAuthError::unsupported_endpoint("device code"),
        None => OAuthError::service_off(),
    };
    oauth_error(&e, ids(&request_ids))
}

/// The body of `POST /_graphsec/token`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct MintRequest {
    tenant: String,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    ttl: Option<u64>,
    #[serde(default)]
    app_id: Option<String>,
}

/// `POST /_graphsec/token` (`graphsec token --url`): a development token of the caller's
/// choice, when anyone may get one from the token endpoint anyway (no `--app-registrations`).
async fn mint(State(state): State<Arc<OpsState>>, body: Bytes) -> Result<Response, GraphError> {
    let Some(sts) = &state.sts else {
        return Err(GraphError::NotFound(
            "Development tokens exist in development mode only; this server verifies tokens of a real identity provider (--jwks-url/--jwks-file).".into(),
        ));
    };
    let req: MintRequest = serde_json::from_slice(&body).map_err(|e| {
        GraphError::BadRequest(format!(
            "Expected a JSON object {{\"tenant\", \"scopes\", \"roles\", \"ttl\", \"appId\"}}: {e}."
        ))
    })?;
    let mut scopes = req.scopes;
    if scopes.is_empty() && req.roles.is_empty() {
        scopes.push(crate::auth::DEFAULT_TOKEN_SCOPE.to_owned());
    }
    let ttl = req.ttl.unwrap_or(3600);
    let spec = TokenSpec {
        tenant: req.tenant,
        scopes,
        roles: req.roles,
        ttl_seconds: ttl,
        app_id: req.app_id,
        issuer: None,
        app_only: false,
    };
    match sts.mint(&spec) {
        Ok(token) => Ok(json_response(
            StatusCode::OK,
            &json!({"token_type": "Bearer", "expires_in": ttl, "access_token": token}),
        )),
        Err(MintRefusal::Forbidden(m)) => Err(GraphError::AccessDenied(m)),
        Err(MintRefusal::Invalid(m)) => Err(GraphError::BadRequest(format!("{m}."))),
    }
}
