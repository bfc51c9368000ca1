//! The two spec pages' examples replayed verbatim, and with a valid enum member.

use serde_json::{Value, json};

use crate::support::{COLLECTION, Server, expect_error};

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/it/fixtures/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture")).expect("fixture json")
}

/// The page's request with the placeholder enum value replaced by a real member.
fn with_valid_member(mut body: Value) -> Value {
    body["permissionsRequired"] = json!("administrator");
    body
}

fn keys(v: &Value) -> Vec<String> {
    v.as_object().expect("object").keys().cloned().collect()
}

/// Checks a response body against the page's response: same keys in the same order (after
/// `@odata.context`), same values for everything the client sent.
fn assert_page_shape(got: &Value, request: &Value) {
    let page = fixture("create_response");
    let mut expected_keys = vec!["@odata.context".to_string()];
    expected_keys.extend(keys(&page));
    assert_eq!(
        keys(got),
        expected_keys,
        "field order of the page's response"
    );
    for (k, v) in request.as_object().expect("object") {
        assert_eq!(&got[k], v, "property {k}");
    }
    assert_eq!(
        keys(&got["vendorInformation"]),
        keys(&page["vendorInformation"])
    );
    for k in ["createdDateTime", "lastModifiedDateTime"] {
        let t = got[k].as_str().expect("timestamp");
        assert!(t.ends_with('Z'), "{k} is UTC: {t}");
    }
}

#[tokio::test]
async fn create_page_example_verbatim_is_refused_for_its_placeholder_enum_and_stores_nothing() {
    let s = Server::start();
    let msg = expect_error(
        s.post(COLLECTION, &fixture("create_request")).await,
        400,
        "BadRequest",
    )
    .await;
    assert!(msg.contains("permissionsRequired"), "{msg}");
    for member in [
        "unknown",
        "anonymous",
        "guest",
        "user",
        "administrator",
        "system",
    ] {
        assert!(msg.contains(member), "{msg} lists {member}");
    }
    assert!(s.all_ids().await.is_empty(), "nothing stored");
    // The page's own request line (`…/$ref`) gets the same answer.
    let r = s
        .post(
            "/Security/cloudAppSecurityProfiles/$ref",
            &fixture("create_request"),
        )
        .await;
    expect_error(r, 400, "BadRequest").await;
    assert!(s.all_ids().await.is_empty());
}

#[tokio::test]
async fn create_page_example_with_a_valid_member_gives_the_pages_response_shape() {
    let s = Server::start();
    let request = with_valid_member(fixture("create_request"));
    let r = s.post("/Security/cloudAppSecurityProfiles", &request).await;
    assert_eq!(r.status(), 201);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let got: Value = r.json().await.unwrap();
    assert_page_shape(&got, &request);
    let id = got["id"].as_str().unwrap();
    assert!(
        uuid::Uuid::parse_str(id).is_ok() && id == id.to_lowercase(),
        "lowercase GUID id {id}"
    );
    assert!(location.contains(id), "{location}");
    // The page's literal request line with `$ref` creates the same way.
    let r = s
        .post("/Security/cloudAppSecurityProfiles/$ref", &request)
        .await;
    assert_eq!(r.status(), 201);
    let second: Value = r.json().await.unwrap();
    assert_page_shape(&second, &request);
    assert_eq!(s.all_ids().await.len(), 2);
    // The Location header addresses the created profile.
    let fetched: Value = s
        .client
        .get(&location)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(fetched["id"], got["id"]);
}

#[tokio::test]
async fn update_page_example_verbatim_is_refused_then_succeeds_with_a_valid_member() {
    let s = Server::start();
    let created = s.create(&json!({"name": "before"})).await;
    let id = created["id"].as_str().unwrap();
    let path = format!("/Security/cloudAppSecurityProfiles/{id}");
    let msg = expect_error(
        s.patch(&path, &fixture("update_request")).await,
        400,
        "BadRequest",
    )
    .await;
    assert!(
        msg.contains("permissionsRequired") && msg.contains("administrator"),
        "{msg}"
    );
    let unchanged: Value = s.get(&path).await.json().await.unwrap();
    assert_eq!(
        unchanged["name"], "before",
        "a refused PATCH changes nothing"
    );
    assert_eq!(
        unchanged["lastModifiedDateTime"],
        created["lastModifiedDateTime"]
    );

    let request = with_valid_member(fixture("update_request"));
    let r = s.patch(&path, &request).await;
    assert_eq!(r.status(), 200);
    let got: Value = r.json().await.unwrap();
    assert_page_shape(&got, &request);
    assert_eq!(got["id"], created["id"]);
    assert_eq!(got["createdDateTime"], created["createdDateTime"]);
    assert_eq!(
        fixture("update_response"),
        fixture("create_response"),
        "both pages show one shape"
    );
}
