//! The documents that describe the service: `$metadata` (CSDL XML), the OData service document
//! (`GET /beta/`) and OpenAPI. They are public, as Graph's `$metadata` is: they say what the
//! service is, never anything about a tenant's data. Rendered once from the entity types.

use std::sync::LazyLock;

use axum::body::Body;
use axum::response::Response;
use http::request::Parts;
use http::{HeaderValue, Method, header};
use serde_json::json;

use super::AppState;
use super::envelope::{ODATA_JSON, Root};
use super::routes::{Resolved, Route};
use crate::error::GraphError;
use crate::model::catalog::{Catalog, catalogs};
use crate::model::entity::EntityType;

/// The entity sets a version serves, in its metadata's order.
pub fn served(catalog: &Catalog) -> Vec<&'static EntityType> {
    catalog.served().collect()
}

/// One version's rendered documents.
struct Documents {
    metadata: String,
    openapi: String,
}

/// Each version's documents, in [`catalogs`] order, rendered on first use.
static DOCUMENTS: LazyLock<Vec<Documents>> = LazyLock::new(|| {
    catalogs()
        .iter()
        .map(|c| Documents {
            metadata: super::metadata::render(&c.registry, &served(c)),
            // The server is the version root, relative to where the document is served.
            openapi: serde_json::to_string_pretty(&super::openapi::render(
                &served(c),
                &format!("/{}", c.version),
            ))
            .unwrap_or_default(),
        })
        .collect()
});

fn documents(catalog: &Catalog) -> &'static Documents {
    let i = catalogs().iter().position(|c| c == catalog).unwrap_or(0);
    &DOCUMENTS[i]
}

/// The committed copy of a version's document: `docs/api/{file}` for the default version,
/// `docs/api/{version}/{file}` for the others.
pub fn golden_path(catalog: &Catalog, file: &str) -> String {
    if std::ptr::eq(catalog, crate::model::catalog()) {
        format!("docs/api/{file}")
    } else {
        format!("docs/api/{}/{file}", catalog.version)
    }
}

fn with_type(body: String, content_type: &'static str) -> Response {
    let mut resp = Response::new(Body::from(body));
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// The OData service document: the singletons at the version root.
fn service_document(catalog: &Catalog, root: &Root) -> String {
    let mut singletons: Vec<&str> = served(catalog).iter().map(|e| e.singleton).collect();
    singletons.dedup();
    let value: Vec<_> = singletons
        .iter()
        .map(|s| json!({ "name": s, "kind": "Singleton", "url": s }))
        .collect();
    json!({ "@odata.context": format!("{}/$metadata", root.0), "value": value }).to_string()
}

/// Answers GET (or HEAD) for a public document route, from the version the path named.
pub fn serve(state: &AppState, parts: &Parts, resolved: &Resolved) -> Result<Response, GraphError> {
    if parts.method != Method::GET && parts.method != Method::HEAD {
        return Err(GraphError::MethodNotAllowed(format!(
            "The HTTP method '{}' is not allowed on this resource; allowed: GET.",
            parts.method
        )));
    }
    let docs = documents(resolved.catalog);
    Ok(match resolved.route {
        Route::Metadata => with_type(docs.metadata.clone(), "application/xml"),
        Route::OpenApi => with_type(docs.openapi.clone(), "application/json"),
        _ => {
            let root = Root::new(
                state.public_url.as_deref(),
                crate::proxy::https(state.tls, &parts.extensions),
                &parts.headers,
                Some(resolved.catalog.version),
            );
            with_type(service_document(resolved.catalog, &root), ODATA_JSON)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed documents are what the catalogs derive; a change to the model shows up
    /// as a diff to review.
    #[test]
    fn golden_documents_match_the_catalogs() {
        for c in catalogs() {
            let docs = documents(c);
            for (file, derived) in [
                ("metadata.xml", docs.metadata.as_str()),
                ("openapi.json", docs.openapi.as_str()),
            ] {
                let path = format!("{}/{}", env!("CARGO_MANIFEST_DIR"), golden_path(c, file));
                if std::env::var_os("GRAPHSEC_BLESS").is_some() {
                    if let Some(dir) = std::path::Path::new(&path).parent() {
                        std::fs::create_dir_all(dir).unwrap();
                    }
                    std::fs::write(&path, derived).unwrap();
                }
                let golden = std::fs::read_to_string(&path).unwrap_or_default();
                assert_eq!(
                    golden, derived,
                    "{path} is stale: rerun with GRAPHSEC_BLESS=1 and review the diff"
                );
            }
        }
    }

    #[test]
    fn openapi_covers_every_declared_property() {
        for c in catalogs() {
            let doc: serde_json::Value = serde_json::from_str(&documents(c).openapi).unwrap();
            for e in served(c) {
                let props = &doc["components"]["schemas"][e.qualified_name()]["properties"];
                for p in e.declared() {
                    assert!(props.get(p.name).is_some(), "{} {}", c.version, p.name);
                }
            }
        }
    }

    /// v1.0's documents say what Graph v1.0 has of the family: its three sets, no
    /// `updateAlerts` (shared/spec/legacy-security-v1.0.md, rules 5-7).
    #[test]
    fn v1_documents_have_the_three_sets_and_no_update_alerts() {
        let v1 = crate::model::catalog::version("v1.0").unwrap();
        let docs = documents(v1);
        assert!(
            docs.metadata
                .contains("<NavigationProperty Name=\"alerts\"")
        );
        assert!(
            docs.metadata
                .contains("<NavigationProperty Name=\"secureScores\"")
        );
        assert!(
            docs.metadata
                .contains("<NavigationProperty Name=\"secureScoreControlProfiles\"")
        );
        assert_eq!(docs.metadata.matches("<NavigationProperty ").count(), 3);
        assert!(!docs.metadata.contains("updateAlerts"));
        assert!(!docs.metadata.contains("tiIndicator"));
        assert!(!docs.openapi.contains("updateAlerts"));
        assert!(docs.openapi.contains("\"/v1.0\""));
        let beta = documents(crate::model::catalog());
        assert!(beta.metadata.contains("updateAlerts"));
    }
}
