//! The `subscription` entity: request bodies into typed values (the resource, its `$filter`
//! type-checked against alerts, change types, lifetime, URLs) and the entity back into JSON, in
//! the property order of Graph's CSDL slice (`shared/spec/change-notifications.csdl.xml`).
//!
//! Every property graphsec does not act on is kept and echoed (`extra`); the four beta-only
//! properties (web push) appear in `/beta` answers only, and may only be null.

use serde_json::{Map, Value as Json, json};

use crate::error::GraphError;
use crate::model::edm::{format_datetime, parse_datetime};
use crate::model::entity::EntityType;
use crate::store::notify::{self, SubscriptionRow};

use super::{MAX_LIFETIME_MINUTES, TICKS_PER_SEC};

/// The v1.0 properties after `id`, in CSDL order.
pub const V1_PROPERTIES: [&str; 14] = [
    "applicationId",
    "changeType",
    "clientState",
    "creatorId",
    "encryptionCertificate",
    "encryptionCertificateId",
    "expirationDateTime",
    "includeResourceData",
    "latestSupportedTlsVersion",
    "lifecycleNotificationUrl",
    "notificationQueryOptions",
    "notificationUrl",
    "notificationUrlAppId",
    "resource",
];

/// Beta's four more (web push, which alerts do not use).
pub const BETA_PROPERTIES: [&str; 4] = [
    "notificationContentType",
    "vapidPublicKey",
    "webPushEncryptionP256dhPublicKey",
    "webPushEncryptionSecret",
];

/// Echoed properties kept in `extra`.
const ECHOED: [&str; 6] = [
    "encryptionCertificate",
    "encryptionCertificateId",
    "includeResourceData",
    "latestSupportedTlsVersion",
    "notificationQueryOptions",
    "notificationUrlAppId",
];

/// `clientState` at most (the subscription page's 128; the changeNotification page says 255).
pub const MAX_CLIENT_STATE: usize = 128;

const TLS_VERSIONS: [&str; 4] = ["v1_0", "v1_1", "v1_2", "v1_3"];

fn bad(message: impl Into<String>) -> GraphError {
    GraphError::BadRequest(message.into())
}

fn invalid(message: impl Into<String>) -> GraphError {
    GraphError::Coded {
        status: http::StatusCode::BAD_REQUEST,
        code: "InvalidRequest",
        message: message.into(),
    }
}

fn extension(message: impl Into<String>) -> GraphError {
    GraphError::Coded {
        status: http::StatusCode::BAD_REQUEST,
        code: "ExtensionError",
        message: message.into(),
    }
}

/// What a `resource` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    pub entity: &'static EntityType,
    pub entity_id: Option<String>,
    pub filter: Option<String>,
}

impl Resource {
    /// The duplicate key: what is watched, independent of how it was spelled.
    pub fn dedupe(&self, change_types: &str) -> String {
        match (&self.entity_id, &self.filter) {
            (Some(id), _) => format!("{}/{id}|{change_types}", self.entity.collection),
            (None, f) => format!(
                "{}?{}|{change_types}",
                self.entity.collection,
                f.as_deref().unwrap_or("")
            ),
        }
    }
}

/// Reads `resource`: `security/alerts/{id}` (or `('{id}')`) or `security/alerts?$filter=…`,
/// with or without a leading `/` and a version root (without one, the request's version). The
/// path goes through the API's own router, and the filter through the same type check as a
/// GET's `$filter`.
pub fn parse_resource(raw: &str, version: &str) -> Result<Resource, GraphError> {
    let unsupported = || {
        invalid(format!(
            "The resource '{raw}' is not supported for change notifications. This server notifies \
             security/alerts/{{id}} and security/alerts?$filter=..."
        ))
    };
    let (path, query) = match raw.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (raw, None),
    };
    let path = path.trim().trim_start_matches('/');
    let first = path.split('/').next().unwrap_or("");
    let full = if crate::model::catalog::version(first).is_some() {
        format!("/{path}")
    } else {
        format!("/{version}/{path}")
    };
    let resolved = crate::api::routes::resolve(&full).map_err(|_| unsupported())?;
    let mut filter = None;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| bad(format!("The resource's query '{pair}' is not valid UTF-8.")))
        };
        let k = decode(k)?;
        if !k.trim_start_matches('$').eq_ignore_ascii_case("filter") {
            return Err(invalid(format!(
                "The query option '{k}' is not supported in a subscription's resource; only $filter is."
            )));
        }
        if filter.is_some() {
            return Err(bad("The resource's $filter is given twice."));
        }
        filter = Some(decode(v)?);
    }
    use crate::api::routes::Route;
    match resolved.route {
        Route::Entity(e, id) if notify::subscribable(e) => {
            if filter.is_some() {
                return Err(invalid(
                    "A subscription to one alert takes no $filter; subscribe to security/alerts?$filter=... instead.",
                ));
            }
            Ok(Resource {
                entity: e,
                entity_id: Some(id),
                filter: None,
            })
        }
        Route::Collection(e) if notify::subscribable(e) => {
            let Some(text) = filter.filter(|f| !f.trim().is_empty()) else {
                return Err(extension(
                    "Subscribing to every alert (security/alerts without a $filter) is not supported: \
                     subscribe to security/alerts?$filter=... or to security/alerts/{id}.",
                ));
            };
            crate::odata::query::parse_list_query(e, &[("$filter".into(), text.clone())])
                .map_err(|e| bad(format!("Invalid filter clause: {}", e.message)))?;
            Ok(Resource {
                entity: e,
                entity_id: None,
                filter: Some(text),
            })
        }
        _ => Err(unsupported()),
    }
}

/// Reads `changeType`: a comma list of `created` and `updated` (`deleted` is refused: Graph's
/// alerts are never deleted), normalised to `created,updated` order without repeats.
pub fn parse_change_types(raw: &str) -> Result<String, GraphError> {
    let mut created = false;
    let mut updated = false;
    for part in raw.split(',') {
        match part.trim() {
            p if p.eq_ignore_ascii_case("created") => created = true,
            p if p.eq_ignore_ascii_case("updated") => updated = true,
            p => {
                return Err(invalid(format!("Invalid 'changeType' attribute: '{p}'.")));
            }
        }
    }
    Ok(match (created, updated) {
        (true, true) => "created,updated",
        (true, false) => "created",
        _ => "updated",
    }
    .into())
}

/// Reads `expirationDateTime` and applies the lifetime rules: at most 43,200 minutes ahead
/// (else 400), at least `min_lifetime_secs` ahead (a shorter one is raised to it).
pub fn parse_expiration(raw: &Json, now: i64, min_lifetime_secs: u64) -> Result<i64, GraphError> {
    let text = raw
        .as_str()
        .ok_or_else(|| bad("expirationDateTime must be a DateTimeOffset string."))?;
    let ticks = parse_datetime(text)
        .map_err(|e| bad(format!("expirationDateTime '{text}' is invalid: {}.", e.0)))?;
    let max = now + MAX_LIFETIME_MINUTES * 60 * TICKS_PER_SEC;
    if ticks > max {
        return Err(extension(format!(
            "Subscription expiration can only be {MAX_LIFETIME_MINUTES} minutes in the future."
        )));
    }
    let min = now + i64::try_from(min_lifetime_secs).unwrap_or(i64::MAX / 2) * TICKS_PER_SEC;
    Ok(ticks.max(min))
}

fn string_or_null(body: &Map<String, Json>, name: &str) -> Result<Option<String>, GraphError> {
    match body.get(name) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(bad(format!("The property '{name}' must be an Edm.String."))),
    }
}

fn required(body: &Map<String, Json>, name: &str) -> Result<String, GraphError> {
    string_or_null(body, name)?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| bad(format!("The property '{name}' is required.")))
}

/// Refuses properties the `subscription` type does not declare (it is not an open type);
/// instance annotations (`@odata.type`, …) are ignored as in entity bodies.
fn check_names(body: &Map<String, Json>) -> Result<(), GraphError> {
    for (k, v) in body {
        if k.starts_with('@') || k == "id" {
            continue;
        }
        if k == "@odata.type" {
            continue;
        }
        if !V1_PROPERTIES.contains(&k.as_str()) && !BETA_PROPERTIES.contains(&k.as_str()) {
            return Err(bad(format!(
                "The property '{k}' does not exist on type 'microsoft.graph.subscription'."
            )));
        }
        if let Some(t) = v.get("@odata.type").and_then(Json::as_str)
            && !t
                .trim_start_matches('#')
                .eq_ignore_ascii_case("microsoft.graph.subscription")
        {
            return Err(bad(format!("Unexpected @odata.type '{t}' in '{k}'.")));
        }
    }
    if let Some(t) = body.get("@odata.type").and_then(Json::as_str)
        && !t
            .trim_start_matches('#')
            .eq_ignore_ascii_case("microsoft.graph.subscription")
    {
        return Err(bad(format!(
            "The @odata.type '{t}' is not microsoft.graph.subscription."
        )));
    }
    Ok(())
}

/// A create body, checked (but not yet validated against the receivers).
pub struct NewSubscription {
    pub resource: Resource,
    pub resource_text: String,
    pub change_types: String,
    pub notification_url: String,
    pub lifecycle_url: Option<String>,
    pub client_state: Option<String>,
    pub expiration: i64,
    pub extra: Map<String, Json>,
}

/// Reads a create body.
pub fn parse_create(
    body: &Json,
    version: &str,
    now: i64,
    min_lifetime_secs: u64,
) -> Result<NewSubscription, GraphError> {
    let body = body
        .as_object()
        .ok_or_else(|| bad("The request body must be a JSON object."))?;
    check_names(body)?;
    let change_types = parse_change_types(&required(body, "changeType")?)?;
    let resource_text = required(body, "resource")?;
    let resource = parse_resource(&resource_text, version)?;
    let notification_url = required(body, "notificationUrl")?;
    let lifecycle_url = string_or_null(body, "lifecycleNotificationUrl")?;
    let client_state = string_or_null(body, "clientState")?;
    if client_state
        .as_deref()
        .is_some_and(|c| c.chars().count() > MAX_CLIENT_STATE)
    {
        return Err(bad(format!(
            "clientState is longer than {MAX_CLIENT_STATE} characters."
        )));
    }
    let expiration = parse_expiration(
        body.get("expirationDateTime")
            .ok_or_else(|| bad("The property 'expirationDateTime' is required."))?,
        now,
        min_lifetime_secs,
    )?;
    let mut extra = Map::new();
    for name in ECHOED {
        match (name, body.get(name)) {
            (_, None | Some(Json::Null)) => {}
            ("includeResourceData", Some(Json::Bool(false))) => {
                extra.insert(name.into(), Json::Bool(false));
            }
            ("includeResourceData", Some(Json::Bool(true))) => {
                return Err(invalid(
                    "Change notifications with resource data (includeResourceData) are not supported for security/alerts.",
                ));
            }
            ("includeResourceData", Some(_)) => {
                return Err(bad(
                    "The property 'includeResourceData' must be an Edm.Boolean.",
                ));
            }
            ("latestSupportedTlsVersion", Some(Json::String(v))) => {
                let Some(v) = TLS_VERSIONS.iter().find(|t| t.eq_ignore_ascii_case(v)) else {
                    return Err(bad(format!(
                        "latestSupportedTlsVersion '{v}' is not one of {}.",
                        TLS_VERSIONS.join(", ")
                    )));
                };
                extra.insert(name.into(), Json::String((*v).into()));
            }
            (_, Some(Json::String(v))) => {
                extra.insert(name.into(), Json::String(v.clone()));
            }
            (_, Some(_)) => {
                return Err(bad(format!("The property '{name}' must be an Edm.String.")));
            }
        }
    }
    if !extra.contains_key("latestSupportedTlsVersion") {
        extra.insert("latestSupportedTlsVersion".into(), json!("v1_2"));
    }
    match body.get("notificationContentType") {
        None | Some(Json::Null) => {}
        Some(Json::String(s)) if s.eq_ignore_ascii_case("application/json") => {
            extra.insert("notificationContentType".into(), json!("application/json"));
        }
        Some(_) => {
            return Err(invalid(
                "notificationContentType must be application/json for security/alerts.",
            ));
        }
    }
    for name in &BETA_PROPERTIES[1..] {
        if body.get(*name).is_some_and(|v| !v.is_null()) {
            return Err(invalid(format!(
                "Web push ({name}) is not supported for security/alerts."
            )));
        }
    }
    Ok(NewSubscription {
        resource,
        resource_text,
        change_types,
        notification_url,
        lifecycle_url,
        client_state,
        expiration,
        extra,
    })
}

/// A PATCH body: a new expiration and/or notification URL (at least one).
pub fn parse_patch(
    body: &Json,
    now: i64,
    min_lifetime_secs: u64,
) -> Result<(Option<i64>, Option<String>), GraphError> {
    let body = body
        .as_object()
        .ok_or_else(|| bad("The request body must be a JSON object."))?;
    check_names(body)?;
    for k in body.keys() {
        if k.starts_with('@') {
            continue;
        }
        if k == "lifecycleNotificationUrl" {
            return Err(invalid(
                "lifecycleNotificationUrl cannot be added or changed by an update; create a new subscription.",
            ));
        }
        if k != "expirationDateTime" && k != "notificationUrl" {
            return Err(bad(format!(
                "The property '{k}' cannot be updated; only expirationDateTime and notificationUrl can."
            )));
        }
    }
    let expiration = match body.get("expirationDateTime") {
        None => None,
        Some(v) => Some(parse_expiration(v, now, min_lifetime_secs)?),
    };
    let url = match body.get("notificationUrl") {
        None => None,
        Some(_) => Some(required(body, "notificationUrl")?),
    };
    if expiration.is_none() && url.is_none() {
        return Err(bad(
            "The update must carry expirationDateTime or notificationUrl.",
        ));
    }
    Ok((expiration, url))
}

/// The entity as JSON (without `@odata.context`), for `version` (`beta` adds its four
/// properties). `with_client_state: false` for lists, which never show it.
pub fn to_json(row: &SubscriptionRow, beta: bool, with_client_state: bool) -> Map<String, Json> {
    let extra: Map<String, Json> = serde_json::from_str(&row.extra).unwrap_or_default();
    let opt = |v: &Option<String>| v.clone().map_or(Json::Null, Json::String);
    let mut out = Map::new();
    out.insert("id".into(), json!(row.id));
    let mut names: Vec<&str> = V1_PROPERTIES.to_vec();
    if beta {
        names.extend(BETA_PROPERTIES);
        names.sort_unstable();
    }
    for name in names {
        let v = match name {
            "applicationId" => {
                if row.app.is_empty() {
                    Json::Null
                } else {
                    json!(row.app)
                }
            }
            "changeType" => json!(row.change_types),
            "clientState" if with_client_state => opt(&row.client_state),
            "clientState" => Json::Null,
            "creatorId" => opt(&row.creator),
            "expirationDateTime" => json!(format_datetime(row.expiration)),
            "lifecycleNotificationUrl" => opt(&row.lifecycle_url),
            "notificationUrl" => json!(row.notification_url),
            "resource" => json!(row.resource),
            other => extra.get(other).cloned().unwrap_or(Json::Null),
        };
        out.insert(name.into(), v);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_are_read_by_the_router_and_the_filter_engine() {
        let r = parse_resource("security/alerts?$filter=status eq 'newAlert'", "v1.0").unwrap();
        assert_eq!(r.entity.collection, "alerts");
        assert_eq!(r.filter.as_deref(), Some("status eq 'newAlert'"));
        let r = parse_resource("/beta/Security/Alerts/abc", "v1.0").unwrap();
        assert_eq!(r.entity_id.as_deref(), Some("abc"));
        let r = parse_resource("security/alerts('a''b')", "beta").unwrap();
        assert_eq!(r.entity_id.as_deref(), Some("a'b"));
        let r = parse_resource("security/alerts?filter=severity%20eq%20'high'", "beta").unwrap();
        assert_eq!(r.filter.as_deref(), Some("severity eq 'high'"));
        // The docs' own example is not a valid filter (the member is newAlert).
        let e = parse_resource("security/alerts?$filter=status eq 'New'", "beta").unwrap_err();
        assert_eq!(e.code(), "BadRequest");
        assert!(
            e.message().starts_with("Invalid filter clause"),
            "{}",
            e.message()
        );
        assert_eq!(
            parse_resource("security/alerts", "beta")
                .unwrap_err()
                .code(),
            "ExtensionError"
        );
        for bad in [
            "security/secureScores?$filter=azureTenantId eq 'x'",
            "security/tiIndicators/x",
            "users",
            "me/messages",
            "security/alerts?$top=5",
        ] {
            assert_eq!(
                parse_resource(bad, "beta").unwrap_err().code(),
                "InvalidRequest",
                "{bad}"
            );
        }
    }

    #[test]
    fn change_types_and_lifetimes() {
        assert_eq!(
            parse_change_types("updated, created,updated").unwrap(),
            "created,updated"
        );
        assert_eq!(parse_change_types("updated").unwrap(), "updated");
        assert_eq!(
            parse_change_types("created,deleted").unwrap_err().message(),
            "Invalid 'changeType' attribute: 'deleted'."
        );
        assert!(parse_change_types("").is_err());
        let now = parse_datetime("2026-01-01T00:00:00Z").unwrap();
        let soon = parse_expiration(&json!("2026-01-01T00:10:00Z"), now, 2700).unwrap();
        assert_eq!(format_datetime(soon), "2026-01-01T00:45:00Z");
        let ok = parse_expiration(&json!("2026-01-30T23:00:00Z"), now, 2700).unwrap();
        assert_eq!(format_datetime(ok), "2026-01-30T23:00:00Z");
        let e = parse_expiration(&json!("2026-02-01T00:00:00Z"), now, 2700).unwrap_err();
        assert_eq!(e.code(), "ExtensionError");
    }
}
