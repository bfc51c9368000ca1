//! The benchmark's ceiling: a bare axum server that answers every GET with one fixed profile
//! (200), every POST with it (201) and every PATCH with it (200), doing no parsing, no
//! authentication and no storage. `scripts/bench` runs it on the same core as graphsec, in the
//! same run, so graphsec's figures read as a fraction of what this machine can serve at all.
//!
//! Usage: `ceiling 127.0.0.1:PORT` (prints `listening on http://ADDR` once bound).

use axum::body::Body;
use axum::http::{Method, Response, StatusCode, header};

/// A profile as graphsec returns it (same size and shape), with its `@odata.context`.
const PROFILE: &str = r#"{"@odata.context":"http://127.0.0.1/beta/$metadata#security/cloudAppSecurityProfiles/$entity","id":"0123456789abcdef0123456789abcdef","azureSubscriptionId":null,"azureTenantId":"tenant-0042","createdDateTime":"2025-11-25T00:00:00Z","deploymentPackageUrl":null,"destinationServiceName":null,"isSigned":true,"lastModifiedDateTime":"2025-11-26T03:14:15Z","manifest":null,"name":"profile 0000042","permissionsRequired":"user","platform":"Linux","policyName":null,"publisher":"publisher 42","riskScore":"42","tags":["t2","t0"],"type":null,"vendorInformation":{"provider":"MCAS","providerVersion":"1.0","subProvider":null,"vendor":"Microsoft"}}"#;

async fn answer(method: Method) -> Response<Body> {
    let status = match method {
        Method::GET | Method::PATCH => StatusCode::OK,
        Method::POST => StatusCode::CREATED,
        _ => StatusCode::METHOD_NOT_ALLOWED,
    };
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(PROFILE))
        .unwrap_or_default()
}

#[tokio::main]
async fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
    println!(
        "listening on http://{}",
        listener.local_addr().expect("addr")
    );
    let app = axum::Router::new().fallback(answer);
    axum::serve(listener, app).await.expect("serve");
}
