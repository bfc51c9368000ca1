//! The documents that describe the service: `$metadata`, the service document and OpenAPI are
//! served without a token and are exactly the committed golden files (`docs/api/`).

use serde_json::Value;

use crate::support::{Server, expect_error};

fn golden(file: &str) -> String {
    std::fs::read_to_string(format!("{}/docs/api/{file}", env!("CARGO_MANIFEST_DIR")))
        .expect("golden file")
}

async fn fetch(client: &reqwest::Client, url: String) -> (String, String) {
    let r = client.get(url).send().await.expect("request");
    assert_eq!(r.status(), 200);
    let ct = r.headers()["content-type"].to_str().unwrap().to_string();
    (ct, r.text().await.unwrap())
}

#[tokio::test]
async fn metadata_and_openapi_are_the_golden_files_and_public() {
    let s = Server::start();
    let anonymous = s.anonymous();
    for path in ["/beta/$metadata", "/$metadata", "/beta/$METADATA"] {
        let (ct, body) = fetch(&anonymous, s.url(path)).await;
        assert!(ct.starts_with("application/xml"), "{ct}");
        assert_eq!(body, golden("metadata.xml"), "{path}");
    }
    for path in ["/openapi.json", "/beta/openapi.json"] {
        let (ct, body) = fetch(&anonymous, s.url(path)).await;
        assert!(ct.starts_with("application/json"), "{ct}");
        assert_eq!(body, golden("openapi.json"), "{path}");
        let doc: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        assert!(doc["paths"]["/security/cloudAppSecurityProfiles/{id}"]["patch"].is_object());
    }
    let r = s
        .client
        .post(s.url("/beta/$metadata"))
        .send()
        .await
        .unwrap();
    expect_error(r, 405, "MethodNotAllowed").await;
}

#[tokio::test]
async fn service_document_lists_the_security_singleton() {
    let s = Server::start();
    let (ct, body) = fetch(&s.anonymous(), s.url("/beta/")).await;
    assert!(ct.starts_with("application/json"), "{ct}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["@odata.context"], s.url("/beta/$metadata"));
    assert_eq!(v["value"][0]["name"], "security");
    assert_eq!(v["value"][0]["kind"], "Singleton");
    assert_eq!(v["value"][0]["url"], "security");
}
