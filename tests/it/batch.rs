//! JSON batching (`POST /beta/$batch`): every rule of CONTRACT §7 over a real server, through
//! the same routing, authentication, permissions, tenant scope and validation as direct calls.

use serde_json::{Value, json};

use crate::support::{COLLECTION, READ, READ_WRITE, Server, expect_error};

const SET: &str = "/security/cloudAppSecurityProfiles";

fn create(id: &str, body: Value) -> Value {
    json!({"id": id, "method": "POST", "url": SET,
           "headers": {"Content-Type": "application/json"}, "body": body})
}

async fn batch_with(
    s: &Server,
    client: &reqwest::Client,
    path: &str,
    body: &Value,
) -> reqwest::Response {
    client
        .post(s.url(path))
        .json(body)
        .send()
        .await
        .expect("request")
}

/// Posts a batch (200 expected) and returns its responses in request order.
async fn batch(s: &Server, requests: Value) -> Vec<Value> {
    let r = batch_with(
        s,
        &s.client,
        "/beta/$batch",
        &json!({ "requests": requests }),
    )
    .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.expect("json");
    v["responses"].as_array().expect("responses").clone()
}

fn by_id<'a>(responses: &'a [Value], id: &str) -> &'a Value {
    responses
        .iter()
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("no response '{id}' in {responses:?}"))
}

#[tokio::test]
async fn create_two_then_patch_one_with_depends_on() {
    let s = Server::start();
    let responses = batch(
        &s,
        json!([
            create("1", json!({"id": "p1", "name": "one"})),
            create("2", json!({"id": "p2", "name": "two"})),
            {"id": "3", "method": "PATCH", "url": format!("{SET}/p1"), "dependsOn": ["1", "2"],
             "headers": {"Content-Type": "application/json"}, "body": {"riskScore": "9"}},
            // A sub-request asking for compression still gets its body as JSON inside the batch.
            {"id": "4", "method": "GET", "url": format!("security/cloudAppSecurityProfiles('p1')?$select=riskScore"),
             "dependsOn": ["3"], "headers": {"Accept-Encoding": "gzip"}},
        ]),
    )
    .await;
    assert_eq!(responses.len(), 4);
    for (id, status) in [("1", 201), ("2", 201), ("3", 200), ("4", 200)] {
        assert_eq!(by_id(&responses, id)["status"], status, "{responses:?}");
    }
    let created = by_id(&responses, "1");
    assert_eq!(created["body"]["name"], "one");
    assert!(
        created["headers"]["Location"]
            .as_str()
            .is_some_and(|l| l.ends_with("/beta/security/cloudAppSecurityProfiles('p1')")),
        "{created}"
    );
    assert!(created["headers"]["request-id"].is_string());
    assert!(
        created["headers"]["Content-Type"]
            .as_str()
            .is_some_and(|t| t.starts_with("application/json")),
        "{created}"
    );
    assert_eq!(by_id(&responses, "3")["body"]["riskScore"], "9");
    assert_eq!(by_id(&responses, "4")["body"]["riskScore"], "9");
    // The writes are real: a direct call sees them.
    let v: Value = s
        .get(&format!("{COLLECTION}/p1"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["riskScore"], "9");
    assert_eq!(s.all_ids().await.len(), 2);
}

#[tokio::test]
async fn a_failed_dependency_gives_424_down_the_chain() {
    let s = Server::start();
    let responses = batch(
        &s,
        json!([
            {"id": "a", "method": "PATCH", "url": format!("{SET}/missing"),
             "headers": {"content-type": "application/json"}, "body": {"name": "x"}},
            create("b", json!({"id": "never", "name": "x"})),
            create("c", json!({"id": "never2"})),
            create("ok", json!({"id": "independent"})),
        ])
        .as_array()
        .cloned()
        .map(|mut v| {
            v[1]["dependsOn"] = json!(["A"]);
            v[2]["dependsOn"] = json!(["b"]);
            Value::Array(v)
        })
        .unwrap(),
    )
    .await;
    assert_eq!(by_id(&responses, "a")["status"], 404);
    assert_eq!(
        by_id(&responses, "a")["body"]["error"]["code"],
        "ResourceNotFound"
    );
    for id in ["b", "c"] {
        let r = by_id(&responses, id);
        assert_eq!(r["status"], 424, "{r}");
        assert_eq!(r["body"]["error"]["code"], "FailedDependency");
        assert!(r["body"]["error"]["innerError"]["request-id"].is_string());
    }
    assert_eq!(by_id(&responses, "ok")["status"], 201);
    assert_eq!(s.all_ids().await, vec!["independent".to_string()]);
}

#[tokio::test]
async fn sub_requests_keep_the_tenant_scope_and_the_permissions() {
    let s = Server::start();
    let other = s.client_with(&s.token_for("tenant-b", &[READ_WRITE], &[]));
    let r = other
        .post(s.url(COLLECTION))
        .json(&json!({"id": "theirs"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let responses = batch(
        &s,
        json!([
            {"id": "get", "method": "GET", "url": format!("{SET}/theirs")},
            {"id": "patch", "method": "PATCH", "url": format!("{SET}/theirs"),
             "headers": {"Content-Type": "application/json"}, "body": {"name": "mine now"}},
            {"id": "delete", "method": "DELETE", "url": format!("{SET}/theirs")},
        ]),
    )
    .await;
    for id in ["get", "patch", "delete"] {
        assert_eq!(by_id(&responses, id)["status"], 404, "{responses:?}");
    }
    // A read-only token: reads pass, the write in the same batch is refused.
    let reader = s.client_with(&s.token_for(crate::support::TENANT_A, &[READ], &[]));
    let body = json!({"requests": [
        {"id": "read", "method": "GET", "url": SET},
        create("write", json!({"name": "x"})),
    ]});
    let v: Value = batch_with(&s, &reader, "/beta/$batch", &body)
        .await
        .json()
        .await
        .unwrap();
    let responses = v["responses"].as_array().unwrap();
    assert_eq!(by_id(responses, "read")["status"], 200);
    assert_eq!(by_id(responses, "write")["status"], 403);
    assert_eq!(
        by_id(responses, "write")["body"]["error"]["code"],
        "Authorization_RequestDenied"
    );
    // The outer token authenticates the batch itself.
    let r = batch_with(&s, &s.anonymous(), "/beta/$batch", &body).await;
    expect_error(r, 401, "InvalidAuthenticationToken").await;
    assert!(s.all_ids().await.is_empty());
}

#[tokio::test]
async fn an_invalid_body_fails_alone() {
    let s = Server::start();
    let responses = batch(
        &s,
        json!([
            create("bad", json!({"isSigned": "yes"})),
            create("good", json!({"id": "g", "isSigned": true})),
            {"id": "count", "method": "GET", "url": "/security/cloudAppSecurityProfiles/$count", "dependsOn": ["good"]},
        ]),
    )
    .await;
    let bad = by_id(&responses, "bad");
    assert_eq!(bad["status"], 400);
    assert!(
        bad["body"]["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("isSigned")),
        "{bad}"
    );
    assert_eq!(by_id(&responses, "good")["status"], 201);
    assert_eq!(by_id(&responses, "count")["body"], "1");
}

#[tokio::test]
async fn malformed_batches_are_refused_whole_and_write_nothing() {
    let s = Server::start();
    let valid = create("w", json!({"name": "must not be written"}));
    let get = |id: &str| json!({"id": id, "method": "GET", "url": SET});
    let mut many: Vec<Value> = (0..21).map(|i| get(&format!("r{i}"))).collect();
    many[0] = valid.clone();
    let cases: Vec<(&str, Value)> = vec![
        ("no requests", json!({"value": []})),
        ("empty", json!({"requests": []})),
        ("not an array", json!({"requests": {}})),
        ("21 requests", json!({"requests": many})),
        (
            "duplicate ids",
            json!({"requests": [valid.clone(), get("W")]}),
        ),
        (
            "unknown dependsOn",
            json!({"requests": [valid.clone(), {"id": "x", "method": "GET", "url": SET, "dependsOn": ["nope"]}]}),
        ),
        (
            "cycle",
            json!({"requests": [valid.clone(),
            {"id": "x", "method": "GET", "url": SET, "dependsOn": ["y"]},
            {"id": "y", "method": "GET", "url": SET, "dependsOn": ["x"]}]}),
        ),
        (
            "nested batch",
            json!({"requests": [valid.clone(), {"id": "n", "method": "POST", "url": "/$batch",
            "headers": {"Content-Type": "application/json"}, "body": {"requests": []}}]}),
        ),
        (
            "body without content type",
            json!({"requests": [valid.clone(),
            {"id": "n", "method": "POST", "url": SET, "body": {"name": "x"}}]}),
        ),
        (
            "missing url",
            json!({"requests": [valid.clone(), {"id": "n", "method": "GET"}]}),
        ),
        (
            "missing id",
            json!({"requests": [valid.clone(), {"method": "GET", "url": SET}]}),
        ),
    ];
    for (what, body) in cases {
        let r = batch_with(&s, &s.client, "/beta/$batch", &body).await;
        let msg = expect_error(r, 400, "BadRequest").await;
        assert!(!msg.is_empty(), "{what}");
    }
    let r = s
        .client
        .post(s.url("/beta/$batch"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "BadRequest").await;
    let r = s.get("/beta/$batch").await;
    expect_error(r, 405, "MethodNotAllowed").await;
    assert!(
        s.all_ids().await.is_empty(),
        "a malformed batch wrote something"
    );
}

/// Client input quoted in a malformed batch's message is shortened: a 100 KB url, id, method,
/// header name or dependsOn entry is not echoed back whole.
#[tokio::test]
async fn messages_quote_huge_batch_input_shortened() {
    let s = Server::start();
    let huge = "q".repeat(100_000);
    let get = |id: &str| json!({"id": id, "method": "GET", "url": SET});
    let cases = [
        json!([{"id": "1", "method": "GET", "url": format!("{SET}?$filter={huge} x")}]),
        json!([{"id": "1", "method": format!("{huge} X"), "url": SET}]),
        json!([{"id": "1", "method": "GET", "url": SET, "headers": {format!("{huge} x"): "v"}}]),
        json!([{"id": "1", "method": "GET", "url": SET, "dependsOn": [huge.clone()]}]),
        json!([get(&huge), get(&huge.to_uppercase())]),
        json!([{"id": huge.clone(), "method": "GET", "url": SET, "dependsOn": [huge.clone()]}]),
    ];
    for requests in cases {
        let r = batch_with(
            &s,
            &s.client,
            "/beta/$batch",
            &json!({ "requests": requests }),
        )
        .await;
        let msg = expect_error(r, 400, "BadRequest").await;
        assert!(msg.contains("..."), "{}", &msg[..msg.len().min(300)]);
        assert!(msg.len() < 1000, "{} bytes: {}", msg.len(), &msg[..300]);
    }
}

#[tokio::test]
async fn batch_without_version_prefix_and_with_any_case() {
    let s = Server::start();
    for path in ["/$batch", "/BETA/$Batch"] {
        let body = json!({"requests": [{"id": "1", "method": "get", "url": SET}]});
        let v: Value = batch_with(&s, &s.client, path, &body)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(v["responses"][0]["status"], 200, "{path}: {v}");
        assert!(v["responses"][0]["body"]["value"].is_array());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_batch_creates_survive_kill_dash_nine() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start_in(dir.path(), &[]);
    let requests: Vec<Value> = (0..20)
        .map(|i| {
            create(
                &i.to_string(),
                json!({"id": format!("b{i:02}"), "name": "durable"}),
            )
        })
        .collect();
    let responses = batch(&s, Value::Array(requests)).await;
    assert!(
        responses.iter().all(|r| r["status"] == 201),
        "{responses:?}"
    );
    s.kill9();
    let s = Server::start_in(dir.path(), &[]);
    let mut ids = s.all_ids().await;
    ids.sort();
    let expected: Vec<String> = (0..20).map(|i| format!("b{i:02}")).collect();
    assert_eq!(ids, expected);
}

/// msgraph-core for Python writes `depends_on`; it orders requests like `dependsOn`.
#[tokio::test]
async fn the_python_sdk_spelling_depends_on_orders_too() {
    let s = Server::start();
    let responses = batch(
        &s,
        json!([
            {"id": "patch", "method": "PATCH", "url": format!("{SET}/late"), "depends_on": ["create"],
             "headers": {"Content-Type": "application/json"}, "body": {"name": "patched"}},
            create("create", json!({"id": "late"})),
        ]),
    )
    .await;
    assert_eq!(by_id(&responses, "create")["status"], 201);
    assert_eq!(by_id(&responses, "patch")["status"], 200, "{responses:?}");
    assert_eq!(by_id(&responses, "patch")["body"]["name"], "patched");
}

/// The batch is an ordinary request to the wire layers: a gzip-compressed batch body is decoded.
#[tokio::test]
async fn a_compressed_batch_body_is_decoded() {
    let s = Server::start();
    let body = json!({"requests": [create("1", json!({"id": "zipped"}))]}).to_string();
    let r = s
        .client
        .post(s.url("/beta/$batch"))
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(crate::fidelity::gzip(body.as_bytes()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["responses"][0]["status"], 201, "{v}");
    assert_eq!(s.all_ids().await, vec!["zipped".to_string()]);
}
