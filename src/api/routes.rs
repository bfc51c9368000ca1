//! The only place URL paths are understood: a request path becomes a [`Route`].
//!
//! Graph's routing is case-insensitive for segments (`/Security/CloudAppSecurityProfiles`) and
//! case-sensitive for keys. The first segment names the version root (`/beta`, `/v1.0`), whose
//! catalog resolves everything after it; it is optional (meaning beta) because the spec pages
//! write paths without it. `$batch` sub-requests are routed by the same function.

use std::borrow::Cow;

use crate::error::GraphError;
use crate::model::actions::{self, Binding, BoundAction};
use crate::model::catalog::{self, Catalog};
use crate::model::entity::EntityType;

/// What a path addresses. The entity set is resolved once here, from the catalog, and handed
/// down to the handlers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/security/cloudAppSecurityProfiles`
    Collection(&'static EntityType),
    /// `/security/cloudAppSecurityProfiles/$ref` (the spec page's create request line)
    CollectionRef(&'static EntityType),
    /// `/security/cloudAppSecurityProfiles/$count`
    Count(&'static EntityType),
    /// `/security/cloudAppSecurityProfiles/{id}` or `…('{id}')`
    Entity(&'static EntityType, String),
    /// `/security/tiIndicators/submitTiIndicators`: an action bound to the collection
    /// (answered by [`crate::api::actions`]).
    CollectionAction(&'static BoundAction),
    /// `/security/securityActions/{id}/cancelSecurityAction`: an action bound to one entity.
    EntityAction(&'static BoundAction, String),
    /// `/beta/$batch` or `/$batch`: JSON batching (answered by [`crate::api::batch`]).
    Batch,
    /// `/beta/$metadata` or `/$metadata`: the CSDL document.
    Metadata,
    /// `/beta/` (the version root): the OData service document.
    ServiceDocument,
    /// `/openapi.json` or `/beta/openapi.json`.
    OpenApi,
    /// `/v1.0/subscriptions` (change notifications; answered by [`crate::api::subscriptions`]).
    Subscriptions,
    /// `/v1.0/subscriptions/{id}`
    Subscription(String),
    /// `/v1.0/subscriptions/{id}/reauthorize`
    SubscriptionReauthorize(String),
}

impl Route {
    /// The entity set the route addresses (for an action, the set it is bound to).
    pub fn entity_set(&self) -> Option<&'static EntityType> {
        match self {
            Route::Collection(e)
            | Route::CollectionRef(e)
            | Route::Count(e)
            | Route::Entity(e, _) => Some(e),
            Route::CollectionAction(a) | Route::EntityAction(a, _) => Some(a.entity),
            Route::Batch
            | Route::Metadata
            | Route::ServiceDocument
            | Route::OpenApi
            | Route::Subscriptions
            | Route::Subscription(_)
            | Route::SubscriptionReauthorize(_) => None,
        }
    }

    /// Documents anyone may read, as on Graph (`$metadata` needs no token): they describe the
    /// service, never a tenant's data.
    pub fn is_public(&self) -> bool {
        matches!(
            self,
            Route::Metadata | Route::ServiceDocument | Route::OpenApi
        )
    }
}

/// The segment that addresses JSON batching.
pub const BATCH_SEGMENT: &str = "$batch";

/// A cheap test run on every request before [`resolve`]: could this path be `$batch`?
pub fn may_be_batch(path: &str) -> bool {
    let tail = path.trim_end_matches('/');
    tail.len() >= BATCH_SEGMENT.len()
        && tail.as_bytes()[tail.len() - BATCH_SEGMENT.len()..]
            .eq_ignore_ascii_case(BATCH_SEGMENT.as_bytes())
}

/// A resolved path: the route, the version whose catalog resolved it, and the version root
/// segment the client wrote (`None` for an unversioned path, which means the default version;
/// links in the answer keep the client's form).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub route: Route,
    pub catalog: &'static Catalog,
    pub prefix: Option<&'static str>,
}

/// Does `seg` look like a Graph version root (`v1.0`, `v2`, `V3.1`) rather than a resource?
fn looks_like_version(seg: &str) -> bool {
    let b = seg.as_bytes();
    b.len() >= 2
        && b[0].eq_ignore_ascii_case(&b'v')
        && b[1].is_ascii_digit()
        && b[1..].iter().all(|c| c.is_ascii_digit() || *c == b'.')
}

/// The 400 for a version root graphsec does not serve, naming those it does.
fn unknown_version(seg: &str) -> GraphError {
    let served: Vec<String> = catalog::catalogs()
        .iter()
        .map(|c| format!("/{}", c.version))
        .collect();
    GraphError::BadRequest(format!(
        "Invalid version: {seg}. This server serves {} (a path without a version is /{}).",
        served.join(" and "),
        catalog::catalog().version
    ))
}

fn not_found_segment(seg: &str) -> GraphError {
    GraphError::BadRequest(format!("Resource not found for the segment '{seg}'."))
}

fn decode(seg: &str) -> Result<Cow<'_, str>, GraphError> {
    // Most segments have no escape: they are already UTF-8 text and need no copy.
    if !seg.contains('%') {
        return Ok(Cow::Borrowed(seg));
    }
    let decoded = percent_encoding::percent_decode_str(seg)
        .decode_utf8()
        .map_err(|_| {
            GraphError::BadRequest(format!(
                "The path segment '{seg}' is not valid UTF-8 once decoded."
            ))
        })?;
    // No id or name holds U+0000 (bodies refuse it), and PostgreSQL cannot bind it: a 400 on
    // every store alike.
    if decoded.contains('\0') {
        return Err(GraphError::BadRequest(format!(
            "The path segment '{seg}' contains the character U+0000 (%00), which is not supported."
        )));
    }
    Ok(decoded)
}

/// Parses an OData key predicate body: `'abc'`, `'it''s'` or `id='abc'`.
fn parse_key(entity: &EntityType, inner: &str) -> Option<String> {
    let key_name = entity.key().name;
    let literal = match inner.split_once('=') {
        Some((name, rest)) if name.trim() == key_name => rest.trim(),
        Some(_) => return None,
        None => inner.trim(),
    };
    let body = literal.strip_prefix('\'')?.strip_suffix('\'')?;
    // Inside the quotes, a quote must be doubled.
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' && chars.next() != Some('\'') {
            return None;
        }
        out.push(c);
    }
    Some(out)
}

/// Resolves a request path (without the query string).
pub fn resolve(path: &str) -> Result<Resolved, GraphError> {
    // Empty segments address the same resource, as on Graph: a trailing slash, and a doubled
    // one, which the Python SDKs send with their default base URL (httpx ends
    // `https://graph.microsoft.com/v1.0` with a slash, the URL templates start with one:
    // `/v1.0//security/alerts`).
    let segs: Vec<Cow<'_, str>> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(decode)
        .collect::<Result<_, _>>()?;
    let mut i = 0;
    let (cat, prefix) = match segs.first().and_then(|s| catalog::version(s)) {
        Some(c) => {
            i += 1;
            (c, Some(c.version))
        }
        None => match segs.first() {
            Some(s) if looks_like_version(s) => return Err(unknown_version(s)),
            _ => (catalog::catalog(), None),
        },
    };
    let versioned = prefix.is_some();
    let resolved = |route| Resolved {
        route,
        catalog: cat,
        prefix,
    };
    let seg = |i: usize| segs.get(i).map(|s| &**s);
    // The service-level resources, each a single segment under the (optional) version root.
    let service = match seg(i) {
        None if versioned => Some(Route::ServiceDocument),
        Some(s) if s.eq_ignore_ascii_case(BATCH_SEGMENT) => Some(Route::Batch),
        Some(s) if s.eq_ignore_ascii_case("$metadata") => Some(Route::Metadata),
        Some(s) if s.eq_ignore_ascii_case("openapi.json") => Some(Route::OpenApi),
        _ => None,
    };
    if let Some(route) = service {
        return match seg(i + 1) {
            Some(extra) => Err(not_found_segment(extra)),
            _ => Ok(resolved(route)),
        };
    }
    if seg(i).is_some_and(|s| s.eq_ignore_ascii_case("subscriptions")) {
        return subscription_route(&segs[i + 1..]).map(resolved);
    }
    let sets = cat.sets();
    let singleton = match seg(i) {
        Some(s) => match sets.iter().find(|e| s.eq_ignore_ascii_case(e.singleton)) {
            Some(e) => e.singleton,
            None => return Err(not_found_segment(s)),
        },
        None => return Err(not_found_segment("")),
    };
    i += 1;
    let Some(coll) = seg(i) else {
        let sets: Vec<String> = cat
            .served()
            .filter(|e| e.singleton == singleton)
            .map(|e| format!("'{singleton}/{}'", e.collection))
            .collect();
        return Err(GraphError::BadRequest(format!(
            "The '{singleton}' singleton itself is not served; address one of its entity sets: {}.",
            if sets.is_empty() {
                format!("'{singleton}/<collection>'")
            } else {
                sets.join(", ")
            }
        )));
    };
    let (name, key) = match coll.split_once('(') {
        Some((name, rest)) => (name, Some(rest)),
        None => (coll, None),
    };
    let entity = match cat.set(name) {
        Some(e) if e.singleton == singleton => e,
        _ => return Err(not_found_segment(coll)),
    };
    if !entity.served {
        return Err(GraphError::BadRequest(format!(
            "The entity set '{}' is described by Graph's metadata but not served by this version of graphsec yet.",
            entity.collection
        )));
    }
    let route = match key {
        Some(rest) => {
            let inner = rest
                .strip_suffix(')')
                .ok_or_else(|| not_found_segment(coll))?;
            let id = parse_key(entity, inner).ok_or_else(|| {
                GraphError::BadRequest(format!(
                    "Invalid key in '{coll}': write the id as a quoted string, e.g. {}('my-id').",
                    entity.collection
                ))
            })?;
            i += 1;
            Route::Entity(entity, id)
        }
        // Graph reads a segment after the collection as a bound action's name before it reads
        // it as a key (OData URL conventions §4.3.1 and §4.5.8): `submitTiIndicators` is never
        // an id.
        None if seg(i + 1).is_some_and(|s| {
            actions::find(entity, Binding::Collection, s).is_some()
                || actions::strip_namespace(s).is_some()
        }) =>
        {
            let s = seg(i + 1).unwrap_or_default();
            i += 2;
            match actions::find(entity, Binding::Collection, s) {
                Some(a) => Route::CollectionAction(a),
                None => return Err(unknown_action(entity, Binding::Collection, s)),
            }
        }
        None => {
            i += 1;
            match seg(i) {
                None => Route::Collection(entity),
                Some(s) if s.eq_ignore_ascii_case("$ref") => {
                    i += 1;
                    Route::CollectionRef(entity)
                }
                Some(s) if s.eq_ignore_ascii_case("$count") => {
                    i += 1;
                    Route::Count(entity)
                }
                Some("") => {
                    return Err(GraphError::BadRequest("The id in the URL is empty.".into()));
                }
                Some(id) => {
                    i += 1;
                    Route::Entity(entity, id.to_string())
                }
            }
        }
    };
    // A segment after an entity's key can only be an action bound to the entity type.
    let route = match (route, seg(i)) {
        (Route::Entity(entity, id), Some(s)) if !s.is_empty() => {
            i += 1;
            match actions::find(entity, Binding::Entity, s) {
                Some(a) => Route::EntityAction(a, id),
                None => return Err(unknown_action(entity, Binding::Entity, s)),
            }
        }
        (route, _) => route,
    };
    if let Some(extra) = seg(i) {
        return Err(not_found_segment(extra));
    }
    Ok(resolved(route))
}

/// The segments after `subscriptions`: none, `{id}` (or `('{id}')`), then `reauthorize`.
fn subscription_route(rest: &[Cow<'_, str>]) -> Result<Route, GraphError> {
    let Some(first) = rest.first() else {
        return Ok(Route::Subscriptions);
    };
    let id = match first.strip_prefix('(').and_then(|r| r.strip_suffix(')')) {
        Some(inner) => inner
            .trim()
            .strip_prefix('\'')
            .and_then(|r| r.strip_suffix('\''))
            .map(|s| s.replace("''", "'"))
            .ok_or_else(|| not_found_segment(first))?,
        None if first.is_empty() => {
            return Err(GraphError::BadRequest("The id in the URL is empty.".into()));
        }
        None => first.to_string(),
    };
    match rest.get(1).map(|s| &**s) {
        None => Ok(Route::Subscription(id)),
        Some(s)
            if rest.len() == 2
                && (s.eq_ignore_ascii_case("reauthorize")
                    || s.eq_ignore_ascii_case("microsoft.graph.reauthorize")) =>
        {
            Ok(Route::SubscriptionReauthorize(id))
        }
        Some(s) => Err(not_found_segment(s)),
    }
}

/// A segment where only a bound action may stand names none: Graph's 400 for an unknown
/// segment, listing the actions that are bound there.
fn unknown_action(entity: &'static EntityType, binding: Binding, seg: &str) -> GraphError {
    let names: Vec<&str> = actions::of(entity, binding).map(|a| a.name).collect();
    let place = match binding {
        Binding::Collection => format!("the collection '{}'", entity.collection),
        Binding::Entity => format!("an entity of '{}'", entity.collection),
    };
    GraphError::BadRequest(if names.is_empty() {
        format!("Resource not found for the segment '{seg}'.")
    } else {
        format!(
            "Resource not found for the segment '{seg}'. The actions bound to {place} are: {}.",
            names.join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(p: &str) -> Route {
        resolve(p).unwrap().route
    }

    fn profiles() -> &'static EntityType {
        catalog::catalog().set("cloudAppSecurityProfiles").unwrap()
    }

    #[test]
    fn resolves_every_form() {
        assert_eq!(
            r("/beta/security/cloudAppSecurityProfiles"),
            Route::Collection(profiles())
        );
        assert_eq!(
            r("/Security/CloudAppSecurityProfiles/"),
            Route::Collection(profiles())
        );
        assert_eq!(
            r("/BETA/security/cloudappsecurityprofiles/$REF"),
            Route::CollectionRef(profiles())
        );
        assert_eq!(
            r("/security/cloudAppSecurityProfiles/$count"),
            Route::Count(profiles())
        );
        assert_eq!(
            r("/security/cloudAppSecurityProfiles/AbC"),
            Route::Entity(profiles(), "AbC".into())
        );
        assert_eq!(
            r("/security/cloudAppSecurityProfiles('AbC')"),
            Route::Entity(profiles(), "AbC".into())
        );
        assert_eq!(
            r("/security/cloudAppSecurityProfiles(id='it''s')"),
            Route::Entity(profiles(), "it's".into())
        );
        assert_eq!(
            r("/security/cloudAppSecurityProfiles/a%20b"),
            Route::Entity(profiles(), "a b".into())
        );
        assert_eq!(r("/beta/$batch"), Route::Batch);
        assert_eq!(r("/$BATCH"), Route::Batch);
        assert_eq!(r("/beta/$metadata"), Route::Metadata);
        assert_eq!(r("/beta/"), Route::ServiceDocument);
        assert_eq!(r("/beta"), Route::ServiceDocument);
        assert_eq!(r("/openapi.json"), Route::OpenApi);
        assert_eq!(r("/beta/openapi.json"), Route::OpenApi);
        assert!(resolve("/beta/$batch/x").is_err());
        assert!(resolve("/").is_err());
        assert!(resolve("//").is_err());
        // Doubled slashes (the Python SDKs' default base URL ends with one).
        assert_eq!(
            r("/v1.0//security/alerts"),
            Route::Collection(catalog::version("v1.0").unwrap().set("alerts").unwrap())
        );
        assert_eq!(
            r("//beta//security//cloudAppSecurityProfiles//AbC//"),
            Route::Entity(profiles(), "AbC".into())
        );
        assert!(may_be_batch("/beta/$Batch/") && !may_be_batch("/beta/security"));
        assert_eq!(
            resolve("/beta/security/cloudAppSecurityProfiles")
                .unwrap()
                .prefix,
            Some("beta")
        );
        assert_eq!(
            resolve("/security/cloudAppSecurityProfiles")
                .unwrap()
                .prefix,
            None
        );
    }

    #[test]
    fn action_segments_resolve_before_keys() {
        let ti = catalog::catalog().set("tiIndicators").unwrap();
        let submit = actions::find(ti, Binding::Collection, "submitTiIndicators").unwrap();
        for p in [
            "/beta/security/tiIndicators/submitTiIndicators",
            "/security/TIINDICATORS/submittiindicators/",
            "/security/tiIndicators/Microsoft.Graph.submitTiIndicators",
        ] {
            assert_eq!(r(p), Route::CollectionAction(submit), "{p}");
        }
        let sa = catalog::catalog().set("securityActions").unwrap();
        let cancel = actions::find(sa, Binding::Entity, "cancelSecurityAction").unwrap();
        assert_eq!(
            r("/security/securityActions/a1/cancelSecurityAction"),
            Route::EntityAction(cancel, "a1".into())
        );
        assert_eq!(
            r("/security/securityActions('a''1')/microsoft.graph.cancelsecurityaction"),
            Route::EntityAction(cancel, "a'1".into())
        );
        // Bindings do not mix; unknown qualified names and segments after a key are 400.
        assert_eq!(
            r("/security/securityActions/cancelSecurityAction"),
            Route::Entity(sa, "cancelSecurityAction".into())
        );
        for (p, needle) in [
            (
                "/security/tiIndicators/microsoft.graph.nope",
                "submitTiIndicators",
            ),
            (
                "/security/tiIndicators/x/submitTiIndicators",
                "submitTiIndicators",
            ),
            ("/security/securityActions/x/nope", "cancelSecurityAction"),
            ("/security/alerts/x/updateAlerts", "updateAlerts"),
        ] {
            match resolve(p) {
                Err(GraphError::BadRequest(m)) => assert!(m.contains(needle), "{p}: {m}"),
                other => panic!("{p}: {other:?}"),
            }
        }
    }

    #[test]
    fn unknown_segments_are_named() {
        for (p, seg) in [
            ("/beta/users", "users"),
            ("/security/alertz", "alertz"),
            ("/security/cloudAppSecurityProfiles/a/b", "b"),
            ("/security/cloudAppSecurityProfiles('a')/x", "x"),
        ] {
            match resolve(p) {
                Err(GraphError::BadRequest(m)) => {
                    assert!(m.contains(&format!("'{seg}'")), "{p}: {m}")
                }
                other => panic!("{p}: {other:?}"),
            }
        }
        assert!(resolve("/security/cloudAppSecurityProfiles('a''')x").is_err());
        assert!(resolve("/security/cloudAppSecurityProfiles(a)").is_err());
        assert!(resolve("/security/cloudAppSecurityProfiles('it's')").is_err());
        assert!(resolve("/security/cloudAppSecurityProfiles/%FF").is_err());
        // Every set of the catalog is routed, in any case.
        assert!(
            matches!(r("/security/ALERTS('a')"), Route::Entity(e, _) if e.collection == "alerts")
        );
    }
}
