//! The bound actions of the legacy family over HTTP (`tiIndicators/submitTiIndicators`,
//! `updateTiIndicators`, `deleteTiIndicators`, `deleteTiIndicatorsByExternalId`,
//! `alerts/updateAlerts`, `securityActions/{id}/cancelSecurityAction`): the happy paths, partial
//! failure (206, exactly the good items written), malformed bodies (400, nothing written),
//! routing (405, 400, case and namespace), permissions, and durability of an acknowledged submit.

use serde_json::{Value, json};

use crate::support::{READ, Server, TENANT_A, expect_error};

const TI: &str = "/beta/security/tiIndicators";
const ALERTS: &str = "/beta/security/alerts";
const SECURITY_ACTIONS: &str = "/beta/security/securityActions";

/// A tiIndicator with Graph's required properties and one file observable.
fn ti(external_id: &str) -> Value {
    json!({
        "action": "alert",
        "description": format!("canary {external_id}: take no action"),
        "expirationDateTime": "2027-03-01T21:44:03.1668987Z",
        "targetProduct": "Azure Sentinel",
        "threatType": "WatchList",
        "tlpLevel": "green",
        "externalId": external_id,
        "fileHashType": "sha256",
        "fileHashValue": format!("{:064x}", external_id.len()),
        "confidence": 50,
    })
}

fn alert(title: &str) -> Value {
    json!({
        "azureTenantId": TENANT_A,
        "title": title,
        "severity": "high",
        "status": "newAlert",
        "vendorInformation": {"provider": "Windows Defender ATP", "vendor": "Microsoft"},
    })
}

async fn action(s: &Server, path: &str, body: &Value) -> (u16, Value) {
    let r = s.post(path, body).await;
    let status = r.status().as_u16();
    let v = r.json().await.unwrap_or(Value::Null);
    (status, v)
}

/// Every entity of a set, as (externalId-or-title, id) pairs sorted, following next links.
async fn all(s: &Server, path: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut url = s.url(path);
    loop {
        let v: Value = s
            .client
            .get(&url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        out.extend(v["value"].as_array().expect("value").iter().cloned());
        match v["@odata.nextLink"].as_str() {
            Some(n) => url = n.to_string(),
            None => return out,
        }
    }
}

async fn external_ids(s: &Server) -> Vec<String> {
    let mut ids: Vec<String> = all(s, TI)
        .await
        .iter()
        .map(|t| t["externalId"].as_str().unwrap_or_default().to_string())
        .collect();
    ids.sort();
    ids
}

async fn submit(s: &Server, items: Vec<Value>) -> Vec<Value> {
    let (status, v) = action(
        s,
        &format!("{TI}/submitTiIndicators"),
        &json!({ "value": items }),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    v["value"].as_array().unwrap().clone()
}

#[tokio::test]
async fn submit_creates_each_item_and_answers_the_created_entities() {
    let s = Server::start();
    let (status, v) = action(
        &s,
        &format!("{TI}/submitTiIndicators"),
        &json!({"value": [ti("a"), ti("b")]}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert!(
        v["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("/$metadata#Collection(microsoft.graph.tiIndicator)"),
        "{v}"
    );
    let value = v["value"].as_array().unwrap();
    assert_eq!(value.len(), 2);
    for (item, ext) in value.iter().zip(["a", "b"]) {
        assert_eq!(item["@odata.type"], "#microsoft.graph.tiIndicator");
        assert_eq!(item["externalId"], ext);
        assert_eq!(item["targetProduct"], "Azure Sentinel");
        let id = item["id"].as_str().unwrap();
        let got: Value = s.get(&format!("{TI}/{id}")).await.json().await.unwrap();
        assert_eq!(got["externalId"], ext, "{got}");
        assert_eq!(got["confidence"], 50);
    }
    assert_eq!(external_ids(&s).await, ["a", "b"]);
}

#[tokio::test]
async fn submit_with_bad_items_answers_206_and_writes_exactly_the_good_ones() {
    let s = Server::start();
    let mut missing = ti("missing");
    missing.as_object_mut().unwrap().remove("targetProduct");
    let mut dup_a = ti("dup-1");
    dup_a["id"] = json!("same-id");
    let mut dup_b = ti("dup-2");
    dup_b["id"] = json!("same-id");
    let mut wrong_type = ti("wrong");
    wrong_type["confidence"] = json!("high");
    let (status, v) = action(
        &s,
        &format!("{TI}/submitTiIndicators"),
        &json!({"value": [ti("ok-1"), missing, dup_a, dup_b, wrong_type, ti("ok-2")]}),
    )
    .await;
    assert_eq!(status, 206, "{v}");
    let value = v["value"].as_array().unwrap();
    assert_eq!(value.len(), 6, "one result per item, in request order");
    let errors: Vec<Value> = value
        .iter()
        .map(|x| x["@graphsec.error"]["code"].clone())
        .collect();
    assert_eq!(
        errors,
        [
            Value::Null,
            json!("BadRequest"),
            Value::Null,
            json!("Conflict"),
            json!("BadRequest"),
            Value::Null
        ],
        "{v}"
    );
    let message = value[1]["@graphsec.error"]["message"].as_str().unwrap();
    assert!(
        message.contains("targetProduct") && message.starts_with("Item 1"),
        "{message}"
    );
    // The failed item comes back as sent, so the client can tell which one it was.
    assert_eq!(value[1]["externalId"], "missing");
    assert_eq!(value[2]["id"], "same-id");
    assert_eq!(external_ids(&s).await, ["dup-1", "ok-1", "ok-2"]);
}

#[tokio::test]
async fn update_ti_indicators_patches_each_item_by_id() {
    let s = Server::start();
    let created = submit(&s, vec![ti("u1"), ti("u2"), ti("u3")]).await;
    let id = |i: usize| created[i]["id"].as_str().unwrap().to_string();
    let patch = |id: String, info: &str| {
        json!({
            "id": id,
            "expirationDateTime": "2028-01-01T00:00:00Z",
            "targetProduct": "Azure Sentinel",
            "additionalInformation": info,
        })
    };
    let url = format!("{TI}/updateTiIndicators");
    let (status, v) = action(
        &s,
        &url,
        &json!({"value": [patch(id(0), "first"), patch(id(2), "third")]}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let value = v["value"].as_array().unwrap();
    assert_eq!(value[0]["id"], id(0));
    assert_eq!(value[0]["additionalInformation"], "first");
    assert_eq!(
        value[0]["description"], "canary u1: take no action",
        "merged, not replaced"
    );
    assert_eq!(value[1]["additionalInformation"], "third");
    let got: Value = s
        .get(&format!("{TI}/{}", id(2)))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got["additionalInformation"], "third");
    assert_eq!(got["expirationDateTime"], "2028-01-01T00:00:00Z");

    // Per item: a required property missing, an unknown id, a bad value; the good one lands.
    let mut no_expiry = patch(id(1), "never");
    no_expiry
        .as_object_mut()
        .unwrap()
        .remove("expirationDateTime");
    let mut bad_value = patch(id(1), "never");
    bad_value["confidence"] = json!(1.5);
    let (status, v) = action(
        &s,
        &url,
        &json!({"value": [no_expiry, patch("nope".into(), "x"), bad_value, patch(id(1), "second")]}),
    )
    .await;
    assert_eq!(status, 206, "{v}");
    let codes: Vec<Value> = v["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["@graphsec.error"]["code"].clone())
        .collect();
    assert_eq!(
        codes,
        [
            json!("BadRequest"),
            json!("ResourceNotFound"),
            json!("BadRequest"),
            Value::Null
        ],
        "{v}"
    );
    assert!(
        v["value"][0]["@graphsec.error"]["message"]
            .as_str()
            .unwrap()
            .contains("expirationDateTime"),
        "{v}"
    );
    let got: Value = s
        .get(&format!("{TI}/{}", id(1)))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got["additionalInformation"], "second");
    assert_eq!(got["confidence"], 50, "the bad item wrote nothing");
    assert_eq!(
        s.get(&format!("{TI}/nope")).await.status(),
        404,
        "no upsert"
    );
}

#[tokio::test]
async fn delete_ti_indicators_answers_a_result_info_per_id() {
    let s = Server::start();
    let created = submit(&s, vec![ti("d1"), ti("d2"), ti("d3")]).await;
    let id = |i: usize| created[i]["id"].as_str().unwrap().to_string();
    let url = format!("{TI}/deleteTiIndicators");
    let (status, v) = action(&s, &url, &json!({"value": [id(0), id(2)]})).await;
    assert_eq!(status, 200, "{v}");
    assert!(
        v["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("#Collection(microsoft.graph.resultInfo)"),
        "{v}"
    );
    for r in v["value"].as_array().unwrap() {
        assert_eq!(
            (r["code"].clone(), r["subcode"].clone()),
            (json!(200), json!(0)),
            "{v}"
        );
        assert!(r["message"].is_string());
    }
    assert_eq!(external_ids(&s).await, ["d2"]);
    let (status, v) = action(&s, &url, &json!({"value": [id(0), id(1)]})).await;
    assert_eq!(status, 206, "{v}");
    let codes: Vec<&Value> = v["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["code"])
        .collect();
    assert_eq!(codes, [&json!(404), &json!(200)]);
    assert!(external_ids(&s).await.is_empty());
}

#[tokio::test]
async fn delete_ti_indicators_by_external_id_deletes_every_match() {
    let s = Server::start();
    submit(&s, vec![ti("x"), ti("x"), ti("it's"), ti("keep")]).await;
    let url = format!("{TI}/deleteTiIndicatorsByExternalId");
    let (status, v) = action(&s, &url, &json!({"value": ["x", "it's"]})).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v["value"].as_array().unwrap().len(),
        2,
        "one result per externalId"
    );
    assert_eq!(external_ids(&s).await, ["keep"]);
    let (status, v) = action(&s, &url, &json!({"value": ["x", "keep"]})).await;
    assert_eq!(status, 206, "{v}");
    assert_eq!(v["value"][0]["code"], 404);
    assert_eq!(v["value"][1]["code"], 200);
    assert!(external_ids(&s).await.is_empty());
    // Another tenant's indicators are out of reach.
    submit(&s, vec![ti("theirs")]).await;
    let other = s.client_with(&s.token_for("tenant-b", &[crate::support::TI], &[]));
    let r = other
        .post(s.url(&url))
        .json(&json!({"value": ["theirs"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(external_ids(&s).await, ["theirs"]);
}

#[tokio::test]
async fn update_alerts_patches_each_alert() {
    let s = Server::start();
    let mut ids = Vec::new();
    for t in ["a1", "a2"] {
        let r = s.post(ALERTS, &alert(t)).await;
        let status = r.status();
        let v: Value = r.json().await.unwrap();
        assert_eq!(status, 201, "{v}");
        ids.push(v["id"].as_str().unwrap().to_string());
    }
    let vendor = json!({"provider": "Windows Defender ATP", "vendor": "Microsoft"});
    let url = format!("{ALERTS}/updateAlerts");
    let (status, v) = action(
        &s,
        &url,
        &json!({"value": [
            {"@odata.type": "#microsoft.graph.alert", "id": ids[0], "status": "inProgress",
             "assignedTo": "tier1", "vendorInformation": vendor},
            {"id": ids[1], "status": "dismissed", "feedback": "falsePositive", "vendorInformation": vendor},
        ]}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["value"][0]["status"], "inProgress");
    assert_eq!(v["value"][1]["feedback"], "falsePositive");
    let got: Value = s
        .get(&format!("{ALERTS}/{}", ids[0]))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (got["status"].clone(), got["assignedTo"].clone()),
        (json!("inProgress"), json!("tier1"))
    );
    assert_eq!(got["title"], "a1");
    // Graph requires vendorInformation in every item.
    let (status, v) = action(
        &s,
        &url,
        &json!({"value": [{"id": ids[1], "status": "resolved"}]}),
    )
    .await;
    assert_eq!(status, 206, "{v}");
    assert!(
        v["value"][0]["@graphsec.error"]["message"]
            .as_str()
            .unwrap()
            .contains("vendorInformation"),
        "{v}"
    );
    let got: Value = s
        .get(&format!("{ALERTS}/{}", ids[1]))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got["status"], "dismissed");
}

#[tokio::test]
async fn cancel_security_action_answers_200_without_a_body() {
    let s = Server::start();
    let r = s
        .post(
            SECURITY_ACTIONS,
            &json!({"name": "blockIp", "status": "Running", "azureTenantId": TENANT_A,
                    "parameters": [{"name": "IP", "value": "1.2.3.4"}]}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    // As the SDKs send it: no body, no content type.
    let r = s
        .client
        .post(s.url(&format!("{SECURITY_ACTIONS}/{id}/cancelSecurityAction")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.bytes().await.unwrap().is_empty());
    let got: Value = s
        .get(&format!("{SECURITY_ACTIONS}/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got["status"], "Failed", "{got}");
    assert_eq!(got["name"], "blockIp");
    // Key-in-parentheses, qualified, any case; an empty JSON object is accepted too.
    let r = s
        .post(
            &format!("{SECURITY_ACTIONS}('{id}')/Microsoft.Graph.CancelSecurityAction"),
            &json!({}),
        )
        .await;
    assert_eq!(r.status(), 200);
    expect_error(
        s.post(
            &format!("{SECURITY_ACTIONS}/{id}/cancelSecurityAction"),
            &json!({"reason": "x"}),
        )
        .await,
        400,
        "BadRequest",
    )
    .await;
    expect_error(
        s.client
            .post(s.url(&format!("{SECURITY_ACTIONS}/nope/cancelSecurityAction")))
            .send()
            .await
            .unwrap(),
        404,
        "ResourceNotFound",
    )
    .await;
}

#[tokio::test]
async fn malformed_bodies_are_400_and_write_nothing() {
    let s = Server::start();
    let submit_url = format!("{TI}/submitTiIndicators");
    for (body, needle) in [
        (json!([ti("a")]), "JSON object"),
        (json!({}), "missing"),
        (json!({"values": [ti("a")]}), "'values' is not a parameter"),
        (json!({"value": ti("a")}), "JSON array"),
        (json!({"value": null}), "JSON array"),
        (json!({"value": [ti("a"), "b"]}), "Item 1"),
        (json!({"value": [ti("a"), [ti("b")]]}), "must be an object"),
    ] {
        let m = expect_error(s.post(&submit_url, &body).await, 400, "BadRequest").await;
        assert!(m.contains(needle), "{body}: {m}");
    }
    for (path, body) in [
        ("deleteTiIndicators", json!({"value": [1]})),
        (
            "deleteTiIndicatorsByExternalId",
            json!({"value": ["a", {"id": "b"}]}),
        ),
        ("updateTiIndicators", json!({"value": [ti("a"), 7]})),
        ("deleteTiIndicators", json!({"value": ["a\u{0}b"]})),
        (
            "deleteTiIndicatorsByExternalId",
            json!({"value": ["\u{0}"]}),
        ),
    ] {
        expect_error(
            s.post(&format!("{TI}/{path}"), &body).await,
            400,
            "BadRequest",
        )
        .await;
    }
    let r = s
        .client
        .post(s.url(&submit_url))
        .header("content-type", "application/json")
        .body("{\"value\": [")
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "BadRequest").await;
    assert!(external_ids(&s).await.is_empty());
    // An empty collection is a valid request that does nothing.
    assert!(submit(&s, vec![]).await.is_empty());
}

#[tokio::test]
async fn routing_of_action_segments() {
    let s = Server::start();
    // Case-insensitive, bare or namespace-qualified, with or without /beta.
    for path in [
        "/beta/security/tiIndicators/SUBMITTIINDICATORS",
        "/security/tiindicators/microsoft.graph.submitTiIndicators",
    ] {
        let (status, v) = action(&s, path, &json!({"value": [ti(path)]})).await;
        assert_eq!(status, 200, "{path}: {v}");
    }
    // GET (or any method but POST) on an action is 405 with the Graph envelope.
    let r = s.get(&format!("{TI}/submitTiIndicators")).await;
    assert_eq!(r.headers()["allow"], "POST");
    expect_error(r, 405, "MethodNotAllowed").await;
    let r = s
        .delete(&format!("{SECURITY_ACTIONS}/x/cancelSecurityAction"))
        .await;
    expect_error(r, 405, "MethodNotAllowed").await;
    // Unknown actions: a qualified name, a POST to a set that has actions, a segment after a key.
    let m = expect_error(
        s.post(&format!("{TI}/microsoft.graph.launchMissiles"), &json!({}))
            .await,
        400,
        "BadRequest",
    )
    .await;
    assert!(
        m.contains("launchMissiles") && m.contains("submitTiIndicators"),
        "{m}"
    );
    let m = expect_error(
        s.post(&format!("{TI}/submitTiIndicatorz"), &json!({"value": []}))
            .await,
        400,
        "BadRequest",
    )
    .await;
    assert!(
        m.contains("submitTiIndicatorz") && m.contains("deleteTiIndicators"),
        "{m}"
    );
    let m = expect_error(
        s.post(
            &format!("{TI}/some-id/submitTiIndicators"),
            &json!({"value": []}),
        )
        .await,
        400,
        "BadRequest",
    )
    .await;
    assert!(m.contains("submitTiIndicators"), "{m}");
    // An action of another set, and an entity-bound action on the collection.
    expect_error(
        s.post(
            &format!("{ALERTS}/submitTiIndicators"),
            &json!({"value": []}),
        )
        .await,
        400,
        "BadRequest",
    )
    .await;
    expect_error(
        s.post(
            &format!("{SECURITY_ACTIONS}/cancelSecurityAction"),
            &json!({}),
        )
        .await,
        405,
        "MethodNotAllowed",
    )
    .await;
    // An id that merely looks like an action elsewhere is still an id.
    assert_eq!(s.get(&format!("{ALERTS}/updateAlertz")).await.status(), 404);
    assert!(external_ids(&s).await.len() == 2);
}

#[tokio::test]
async fn write_actions_need_the_read_write_permission() {
    let s = Server::start();
    let reader = s.client_with(&s.token_for(TENANT_A, &[READ], &[]));
    for (path, body) in [
        ("submitTiIndicators", json!({"value": [ti("r")]})),
        ("deleteTiIndicatorsByExternalId", json!({"value": ["r"]})),
    ] {
        let r = reader
            .post(s.url(&format!("{TI}/{path}")))
            .json(&body)
            .send()
            .await
            .unwrap();
        expect_error(r, 403, "Authorization_RequestDenied").await;
    }
    assert!(external_ids(&s).await.is_empty());
}

#[tokio::test]
async fn an_acknowledged_submit_survives_kill_dash_nine() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start_in(dir.path(), &[]);
    let items: Vec<Value> = (0..40).map(|i| ti(&format!("k{i:02}"))).collect();
    let created = submit(&s, items).await;
    assert_eq!(created.len(), 40);
    s.kill9();
    let s = Server::start_in(dir.path(), &[]);
    let expected: Vec<String> = (0..40).map(|i| format!("k{i:02}")).collect();
    assert_eq!(external_ids(&s).await, expected);
}

#[tokio::test]
async fn actions_run_inside_batch_with_their_own_status() {
    let s = Server::start();
    let mut bad = ti("bad");
    bad.as_object_mut().unwrap().remove("tlpLevel");
    let json_ct = json!({"Content-Type": "application/json"});
    let r = s
        .post(
            "/beta/$batch",
            &json!({"requests": [
                {"id": "1", "method": "POST", "url": "/security/tiIndicators/submitTiIndicators",
                 "headers": json_ct, "body": {"value": [ti("b1"), bad]}},
                {"id": "2", "method": "POST", "url": "/security/tiIndicators/deleteTiIndicatorsByExternalId",
                 "headers": json_ct, "body": {"value": ["b1"]}, "dependsOn": ["1"]},
            ]}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let responses = v["responses"].as_array().unwrap();
    let by_id = |id: &str| responses.iter().find(|r| r["id"] == id).unwrap();
    assert_eq!(by_id("1")["status"], 206, "{v}");
    assert_eq!(by_id("1")["body"]["value"][0]["externalId"], "b1");
    assert_eq!(by_id("2")["status"], 200, "{v}");
    assert!(external_ids(&s).await.is_empty());
}

#[tokio::test]
async fn an_action_call_counts_once_against_the_throttle() {
    // Two requests per hour: a submit of five items is one of them.
    let s = Server::start_with(&["--throttle", "2/1h"]);
    let items: Vec<Value> = (0..5).map(|i| ti(&format!("t{i}"))).collect();
    assert_eq!(submit(&s, items).await.len(), 5);
    assert_eq!(s.get(TI).await.status(), 200);
    let r = s
        .post(
            &format!("{TI}/submitTiIndicators"),
            &json!({"value": [ti("late")]}),
        )
        .await;
    expect_error(r, 429, "TooManyRequests").await;
}
