//! `/subscriptions` (v1.0 and beta): create (with the validation handshake), get, list,
//! update (renew, re-point), delete and `reauthorize`. Thin: bodies are read by
//! [`crate::notify::subscription`], receivers are checked by [`crate::notify::Notifier`], rows
//! live in the store ([`crate::store::notify::NotifyStore`]).
//!
//! Permissions and visibility follow Graph's subscription pages: `SecurityEvents.ReadWrite.All`
//! (the alerts' write permission, as configured) for everything; reading also with delegated
//! `Subscription.Read.All`. A caller sees its own application's subscriptions (delegated: the
//! signed-in user's); `Subscription.Read.All` shows any application's of the signed-in user.
//! Anything else is 404, as if it did not exist.

use axum::body::Body;
use axum::response::Response;
use http::request::Parts;
use http::{HeaderValue, Method, StatusCode, header};
use serde_json::{Value as Json, json};

use super::AppState;
use super::envelope::{self, Root};
use super::handlers::{json_body, store_error};
use super::routes::{Resolved, Route};
use crate::auth::{Operation, Principal, PrincipalKind};
use crate::error::GraphError;
use crate::model::edm::now_ticks;
use crate::notify::subscription::{self, to_json};
use crate::notify::{Notifier, UrlRole};
use crate::store::StoreError;
use crate::store::notify::SubscriptionRow;

/// The delegated permission that lists other applications' subscriptions of the user.
const SUBSCRIPTION_READ_ALL: &str = "Subscription.Read.All";

/// The operation name of a subscription route, for metrics and the access log.
pub fn operation(route: &Route, method: &Method) -> &'static str {
    match (route, method) {
        (Route::Subscriptions, &Method::POST) => "subscription_create",
        (Route::Subscriptions, &Method::GET) => "subscription_list",
        (Route::Subscription(_), &Method::GET) => "subscription_get",
        (Route::Subscription(_), &Method::PATCH) => "subscription_update",
        (Route::Subscription(_), &Method::DELETE) => "subscription_delete",
        (Route::SubscriptionReauthorize(_), &Method::POST) => "subscription_reauthorize",
        _ => "method_not_allowed",
    }
}

fn not_found(id: &str) -> GraphError {
    GraphError::NotFound(format!("The subscription with id '{id}' was not found."))
}

fn subscription_store_error(e: StoreError, id: &str) -> GraphError {
    match e {
        StoreError::NotFound => not_found(id),
        other => {
            let alerts = crate::store::notify::subscribable_set(crate::model::catalog());
            match alerts {
                Some(a) => store_error(other, a, id),
                None => GraphError::Internal,
            }
        }
    }
}

/// Graph's refusal of an operation without the permission (an `ExtensionError` wrapping the
/// provider's 403).
fn forbidden(operation: &str, why: &str) -> GraphError {
    GraphError::Coded {
        status: StatusCode::FORBIDDEN,
        code: "ExtensionError",
        message: format!(
            "Operation: {operation}; Exception: [Status Code: Forbidden; Reason: {why}]"
        ),
    }
}

fn has_scope(p: &Principal, name: &str) -> bool {
    matches!(&p.kind, PrincipalKind::Delegated { scopes } if scopes.iter().any(|s| s.eq_ignore_ascii_case(name)))
}

/// Whether the principal may see (`read`) or change the subscription.
fn visible(p: &Principal, row: &SubscriptionRow, read: bool) -> bool {
    let app = p.app.as_deref().unwrap_or("");
    match &p.kind {
        PrincipalKind::Unrestricted => true,
        PrincipalKind::Application { .. } => row.app == app,
        PrincipalKind::Delegated { .. } => {
            let same_user = row.creator.is_some() && row.creator == p.subject;
            same_user && (row.app == app || (read && has_scope(p, SUBSCRIPTION_READ_ALL)))
        }
    }
}

/// Serves a subscription route for an authenticated principal.
pub async fn serve(
    state: &AppState,
    parts: &Parts,
    body: Body,
    resolved: &Resolved,
    principal: Principal,
) -> Result<Response, GraphError> {
    let method = &parts.method;
    let write = !(method == Method::GET || method == Method::HEAD);
    let alerts =
        crate::store::notify::subscribable_set(resolved.catalog).ok_or(GraphError::Internal)?;
    let op_name = match (&resolved.route, method) {
        (Route::Subscriptions, &Method::POST) => "Create",
        (_, &Method::PATCH) => "Update",
        (_, &Method::DELETE) => "Delete",
        (Route::SubscriptionReauthorize(_), _) => "Reauthorize",
        _ => "Read",
    };
    let allowed = state
        .auth
        .authorize_set(&principal, Operation::Write, Some(alerts));
    if let Err(e) = allowed
        && (write || !has_scope(&principal, SUBSCRIPTION_READ_ALL))
    {
        return Err(forbidden(op_name, e.message()));
    }
    let root = Root::new(
        state.public_url.as_deref(),
        crate::proxy::https(state.tls, &parts.extensions),
        &parts.headers,
        resolved.prefix,
    );
    let beta = resolved.catalog.version != "v1.0";
    let tenant = principal.tenant.clone();
    let store = state.store.notify();
    let notifier = &state.notify;
    match (&resolved.route, method) {
        (Route::Subscriptions, &Method::POST) => {
            let body = json_body(state, parts, body).await?;
            create(state, notifier, &root, beta, resolved, &principal, body).await
        }
        (Route::Subscriptions, &Method::GET) => {
            refuse_query(parts)?;
            let rows = store
                .list_subscriptions(&tenant, now_ticks())
                .await
                .map_err(|e| subscription_store_error(e, ""))?;
            let value: Vec<Json> = rows
                .iter()
                .filter(|r| visible(&principal, r, true))
                .map(|r| Json::Object(to_json(r, beta, false)))
                .collect();
            Ok(envelope::json_response(
                StatusCode::OK,
                &json!({
                    "@odata.context": format!("{}/$metadata#subscriptions", root.0),
                    "value": value,
                }),
            ))
        }
        (Route::Subscription(id), &Method::GET) => {
            refuse_query(parts)?;
            let row = fetch(state, &principal, id, true).await?;
            Ok(entity(StatusCode::OK, &root, &row, beta))
        }
        (Route::Subscription(id), &Method::PATCH) => {
            let body = json_body(state, parts, body).await?;
            let now = now_ticks();
            let (expiration, url) = subscription::parse_patch(
                &body,
                now,
                notifier.args.subscription_min_lifetime_secs,
            )?;
            let row = fetch(state, &principal, id, false).await?;
            // A changed notification URL is validated like a new one (the docs are silent;
            // Graph's create rule applied).
            if let Some(u) = &url
                && *u != row.notification_url
            {
                let checked = notifier.check_url(u, UrlRole::Notification)?;
                notifier.validate(&checked, UrlRole::Notification).await?;
            }
            let row = store
                .update_subscription(&tenant, id, now, expiration, url)
                .await
                .map_err(|e| subscription_store_error(e, id))?;
            Ok(entity(StatusCode::OK, &root, &row, beta))
        }
        (Route::Subscription(id), &Method::DELETE) => {
            fetch(state, &principal, id, false).await?;
            store
                .delete_subscription(&tenant, id)
                .await
                .map_err(|e| subscription_store_error(e, id))?;
            Ok(no_content())
        }
        (Route::SubscriptionReauthorize(id), &Method::POST) => {
            fetch(state, &principal, id, false).await?;
            store
                .update_subscription(&tenant, id, now_ticks(), None, None)
                .await
                .map_err(|e| subscription_store_error(e, id))?;
            Ok(no_content())
        }
        (Route::Subscriptions, _) => Err(method_not_allowed(method, "GET, POST")),
        (Route::Subscription(_), _) => Err(method_not_allowed(method, "GET, PATCH, DELETE")),
        _ => Err(method_not_allowed(method, "POST")),
    }
}

fn method_not_allowed(method: &Method, allowed: &str) -> GraphError {
    GraphError::MethodNotAllowed(format!(
        "The HTTP method '{method}' is not allowed on this resource; allowed: {allowed}."
    ))
}

/// The subscription capability annotations allow no query option (no `$filter`, `$select`,
/// `$top`, …): refuse them rather than ignore them.
fn refuse_query(parts: &Parts) -> Result<(), GraphError> {
    if let Some(q) = parts.uri.query()
        && let Some((k, _)) = form_urlencoded::parse(q.as_bytes()).next()
    {
        return Err(GraphError::BadRequest(format!(
            "The query option '{k}' is not supported on subscriptions."
        )));
    }
    Ok(())
}

fn no_content() -> Response {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::NO_CONTENT;
    resp
}

fn entity(status: StatusCode, root: &Root, row: &SubscriptionRow, beta: bool) -> Response {
    let mut body = serde_json::Map::new();
    body.insert(
        "@odata.context".into(),
        json!(format!("{}/$metadata#subscriptions/$entity", root.0)),
    );
    body.extend(to_json(row, beta, true));
    envelope::json_response(status, &Json::Object(body))
}

/// A live subscription the principal may see (`read`) or change; 404 otherwise.
async fn fetch(
    state: &AppState,
    principal: &Principal,
    id: &str,
    read: bool,
) -> Result<SubscriptionRow, GraphError> {
    let row = state
        .store
        .notify()
        .get_subscription(&principal.tenant, id, now_ticks())
        .await
        .map_err(|e| subscription_store_error(e, id))?;
    if visible(principal, &row, read) {
        Ok(row)
    } else {
        Err(not_found(id))
    }
}

async fn create(
    state: &AppState,
    notifier: &Notifier,
    root: &Root,
    beta: bool,
    resolved: &Resolved,
    principal: &Principal,
    body: Json,
) -> Result<Response, GraphError> {
    let now = now_ticks();
    let new = subscription::parse_create(
        &body,
        resolved.catalog.version,
        now,
        notifier.args.subscription_min_lifetime_secs,
    )?;
    let url = notifier.check_url(&new.notification_url, UrlRole::Notification)?;
    let lifecycle = match &new.lifecycle_url {
        Some(u) => Some(notifier.check_url(u, UrlRole::Lifecycle)?),
        None => None,
    };
    notifier.validate(&url, UrlRole::Notification).await?;
    if let Some(l) = &lifecycle {
        notifier.validate(l, UrlRole::Lifecycle).await?;
    }
    let row = SubscriptionRow {
        tenant: principal.tenant.clone(),
        id: uuid::Uuid::new_v4().to_string(),
        app: principal.app.clone().unwrap_or_default(),
        creator: principal.subject.clone(),
        set_name: new.resource.entity.collection.to_string(),
        entity_id: new.resource.entity_id.clone(),
        filter: new.resource.filter.clone(),
        resource: new.resource_text.clone(),
        dedupe: new.resource.dedupe(&new.change_types),
        change_types: new.change_types,
        notification_url: new.notification_url,
        lifecycle_url: new.lifecycle_url,
        client_state: new.client_state,
        expiration: new.expiration,
        created: now,
        extra: Json::Object(new.extra).to_string(),
        reauth_sent: false,
    };
    let existing = state
        .store
        .notify()
        .create_subscription(row.clone())
        .await
        .map_err(|e| subscription_store_error(e, &row.id))?;
    if let Some(id) = existing {
        return Err(GraphError::Conflict(format!(
            "Subscription Id {id} already exists for the requested combination"
        )));
    }
    tracing::info!(
        tenant = %row.tenant,
        subscription = %row.id,
        resource = %row.resource,
        change_type = %row.change_types,
        url = %crate::notify::redacted(&row.notification_url),
        "subscription created"
    );
    let mut resp = entity(StatusCode::CREATED, root, &row, beta);
    if let Ok(v) = HeaderValue::from_str(&format!("{}/subscriptions/{}", root.0, row.id)) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}
