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
use super::routes::{Resolved, Route, VERSION};
use crate::error::GraphError;
use crate::model::entity::EntityType;

/// The entity sets graphsec serves, in the metadata's order.
pub fn served() -> Vec<&'static EntityType> {
    crate::model::catalog().served().collect()
}

static METADATA: LazyLock<String> = LazyLock::new(|| super::metadata::render(&served()));
static OPENAPI: LazyLock<String> = LazyLock::new(|| {
    // The server is the version root, relative to where the document is served.
    let doc = super::openapi::render(&served(), &format!("/{VERSION}"));
    serde_json::to_string_pretty(&doc).unwrap_or_default()
});

fn with_type(body: String, content_type: &'static str) -> Response {
    let mut resp = Response::new(Body::from(body));
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// The OData service document: the singletons at the version root.
fn service_document(root: &Root) -> String {
    let mut singletons: Vec<&str> = served().iter().map(|e| e.singleton).collect();
    singletons.dedup();
    let value: Vec<_> = singletons
        .iter()
        .map(|s| json!({ "name": s, "kind": "Singleton", "url": s }))
        .collect();
    json!({ "@odata.context": format!("{}/$metadata", root.0), "value": value }).to_string()
}

/// Answers GET (or HEAD) for a public document route.
pub fn serve(state: &AppState, parts: &Parts, resolved: &Resolved) -> Result<Response, GraphError> {
    if parts.method != Method::GET && parts.method != Method::HEAD {
        return Err(GraphError::MethodNotAllowed(format!(
            "The HTTP method '{}' is not allowed on this resource; allowed: GET.",
            parts.method
        )));
    }
    Ok(match resolved.route {
        Route::Metadata => with_type(METADATA.clone(), "application/xml"),
        Route::OpenApi => with_type(OPENAPI.clone(), "application/json"),
        _ => {
            let root = Root::new(state.public_url.as_deref(), state.tls, &parts.headers, true);
            with_type(service_document(&root), ODATA_JSON)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed documents are what the table derives; a change to the table shows up as a
    /// diff to review.
    #[test]
    fn golden_documents_match_the_table() {
        for (file, derived) in [
            ("metadata.xml", METADATA.as_str()),
            ("openapi.json", OPENAPI.as_str()),
        ] {
            let path = format!("{}/docs/api/{file}", env!("CARGO_MANIFEST_DIR"));
            if std::env::var_os("GRAPHSEC_BLESS").is_some() {
                std::fs::create_dir_all(format!("{}/docs/api", env!("CARGO_MANIFEST_DIR")))
                    .unwrap();
                std::fs::write(&path, derived).unwrap();
            }
            let golden = std::fs::read_to_string(&path).unwrap_or_default();
            assert_eq!(
                golden, derived,
                "{path} is stale: rerun with GRAPHSEC_BLESS=1 and review the diff"
            );
        }
    }

    #[test]
    fn openapi_covers_every_property() {
        let doc: serde_json::Value = serde_json::from_str(&OPENAPI).unwrap();
        for e in served() {
            let props = &doc["components"]["schemas"][e.qualified_name()]["properties"];
            for p in e.properties {
                assert!(props.get(p.name).is_some(), "{}", p.name);
            }
        }
    }
}
