//! Graph's documented behaviour of each legacy resource (issue 21): the rules Microsoft's API
//! reference pages state beyond the metadata, kept as data in `src/model/overlay.json` (each
//! with its page) and held here over real HTTP: the status of an update, the default order of
//! secure scores, values the service sets, value rules in every write path (create, PATCH,
//! bound actions, `$batch`), the control-profile state history, per-set permissions, and what
//! real clients send (a date-only `expirationDateTime`, an unencoded `+`, a bulk item's
//! `Error` member).

use serde_json::{Value, json};

use crate::support::{READ_WRITE, SA_READ, SA_RW, Server, TENANT_A, TI, expect_error, json_of};

const TI_PATH: &str = "/beta/security/tiIndicators";
const ACTIONS_PATH: &str = "/beta/security/securityActions";
const PROFILES: &str = "/beta/security/secureScoreControlProfiles";

fn indicator(external_id: &str) -> Value {
    json!({
        "action": "alert", "description": "bad domain", "expirationDateTime": "2030-01-01T00:00:00Z",
        "targetProduct": "Azure Sentinel", "threatType": "Malware", "tlpLevel": "green",
        "domainName": "evil.example", "externalId": external_id,
    })
}

fn alert() -> Value {
    json!({
        "azureTenantId": TENANT_A, "title": "a", "severity": "high", "status": "newAlert",
        "vendorInformation": {"provider": "ASC", "vendor": "Microsoft"},
    })
}

async fn patch_with(
    s: &Server,
    path: &str,
    prefer: Option<&str>,
    body: &Value,
) -> reqwest::Response {
    let mut req = s.client.patch(s.url(path)).json(body);
    if let Some(p) = prefer {
        req = req.header("Prefer", p);
    }
    req.send().await.unwrap()
}

/// alert-update.md, tiindicator-update.md, securescorecontrolprofile-update.md: "204 No
/// Content", and 200 with the entity under `Prefer: return=representation`. The
/// cloudAppSecurityProfile specification page answers 200.
#[tokio::test]
async fn updates_answer_as_each_page_says() {
    let s = Server::start();
    let a = json_of(s.post("/beta/security/alerts", &alert()).await, 201).await;
    let a_url = format!("/beta/security/alerts/{}", a["id"].as_str().unwrap());
    let t = json_of(s.post(TI_PATH, &indicator("e1")).await, 201).await;
    let t_url = format!("{TI_PATH}/{}", t["id"].as_str().unwrap());
    let c = json_of(
        s.post(
            PROFILES,
            &json!({"azureTenantId": TENANT_A, "title": "MFA"}),
        )
        .await,
        201,
    )
    .await;
    let c_url = format!("{PROFILES}/{}", c["id"].as_str().unwrap());
    let vendor = json!({"provider": "SecureScore", "vendor": "Microsoft"});
    let cases = [
        (
            a_url.clone(),
            json!({"status": "resolved", "vendorInformation": vendor}),
        ),
        (
            t_url.clone(),
            json!({"confidence": 7, "expirationDateTime": "2031-01-01T00:00:00Z", "targetProduct": "Azure Sentinel"}),
        ),
        (
            c_url.clone(),
            json!({"state": "Reviewed", "vendorInformation": vendor}),
        ),
    ];
    for (url, body) in &cases {
        let r = patch_with(&s, url, None, body).await;
        assert_eq!(r.status(), 204, "{url}");
        assert!(r.headers().get("etag").is_some());
        assert!(r.bytes().await.unwrap().is_empty());
        let r = patch_with(&s, url, Some("return=representation"), body).await;
        assert_eq!(
            r.headers()["preference-applied"],
            "return=representation",
            "{url}"
        );
        let v = json_of(r, 200).await;
        assert!(v["@odata.context"].as_str().unwrap().ends_with("/$entity"));
        let r = patch_with(&s, url, Some("return=minimal"), body).await;
        assert_eq!(r.status(), 204);
    }
    // The same rule under /v1.0 and inside $batch.
    let r = patch_with(
        &s,
        &a_url.replace("/beta/", "/v1.0/"),
        None,
        &json!({"status": "inProgress", "vendorInformation": vendor}),
    )
    .await;
    assert_eq!(r.status(), 204);
    let batch = json!({"requests": [
        {"id": "1", "method": "PATCH", "url": a_url.trim_start_matches("/beta"),
         "headers": {"Content-Type": "application/json"},
         "body": {"status": "resolved", "vendorInformation": vendor}},
        {"id": "2", "method": "PATCH", "url": a_url.trim_start_matches("/beta"),
         "headers": {"Content-Type": "application/json", "Prefer": "return=representation"},
         "body": {"status": "resolved", "vendorInformation": vendor}},
    ]});
    let v = json_of(s.post("/beta/$batch", &batch).await, 200).await;
    let status_of = |id: &str| {
        v["responses"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .map(|r| r["status"].clone())
    };
    assert_eq!(status_of("1"), Some(json!(204)), "{v}");
    assert_eq!(status_of("2"), Some(json!(200)), "{v}");
    // cloudAppSecurityProfiles keep their page's 200 with the entity.
    let p = s.create(&json!({"name": "app"})).await;
    let r = patch_with(
        &s,
        &format!(
            "/beta/security/cloudAppSecurityProfiles/{}",
            p["id"].as_str().unwrap()
        ),
        None,
        &json!({"riskScore": "5"}),
    )
    .await;
    assert_eq!(json_of(r, 200).await["riskScore"], "5");
}

/// securescore.md: "sorted by createdDateTime, from latest to earliest", so `$top=1` is the
/// current score; next links keep that order; an explicit `$orderby` wins.
#[tokio::test]
async fn secure_scores_list_newest_first() {
    let s = Server::start();
    // Created out of date order, with ids in the opposite order of their dates.
    for (id, day) in [("a", 3), ("b", 1), ("c", 4), ("d", 2), ("e", 5)] {
        let body = json!({"id": id, "azureTenantId": TENANT_A, "currentScore": day,
                          "createdDateTime": format!("2026-11-0{day}T00:00:00Z")});
        json_of(s.post("/beta/security/secureScores", &body).await, 201).await;
    }
    // The server stamps createdDateTime itself: the order is the creation order, newest first.
    for version in ["beta", "v1.0"] {
        let path = format!("/{version}/security/secureScores");
        let top = json_of(s.get_with(&path, &[("$top", "1")]).await, 200).await;
        assert_eq!(top["value"][0]["id"], "e", "{version}: {top}");
        let mut ids = Vec::new();
        let mut page = json_of(s.get_with(&path, &[("$top", "2")]).await, 200).await;
        loop {
            ids.extend(
                page["value"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v["id"].as_str().unwrap().to_string()),
            );
            let Some(next) = page["@odata.nextLink"].as_str() else {
                break;
            };
            page = json_of(s.client.get(next).send().await.unwrap(), 200).await;
        }
        assert_eq!(ids, ["e", "d", "c", "b", "a"], "{version}");
    }
    let asc = json_of(
        s.get_with(
            "/beta/security/secureScores",
            &[("$orderby", "createdDateTime asc"), ("$top", "1")],
        )
        .await,
        200,
    )
    .await;
    assert_eq!(asc["value"][0]["id"], "a");
}

/// tiindicator.md: azureTenantId is stamped by the system, isActive defaults to true,
/// passiveOnly to false, severity to 3; securityaction.md and securityactions-post.md: a new
/// action is NotStarted, lastActionDateTime is its creation time, the tenant and app come from
/// the token.
#[tokio::test]
async fn created_entities_carry_the_values_the_service_sets() {
    let s = Server::start();
    let mut body = indicator("e1");
    body["azureTenantId"] = json!("someone-else");
    let t = json_of(s.post(TI_PATH, &body).await, 201).await;
    assert_eq!(t["azureTenantId"], TENANT_A, "{t}");
    assert_eq!(t["isActive"], true);
    assert_eq!(t["passiveOnly"], false);
    assert_eq!(t["severity"], 3);
    // Values the body gives are kept where the service only defaults them.
    let mut body = indicator("e2");
    body["isActive"] = json!(false);
    body["severity"] = json!(0);
    let t = json_of(s.post(TI_PATH, &body).await, 201).await;
    assert_eq!(
        (t["isActive"].clone(), t["severity"].clone()),
        (json!(false), json!(0))
    );
    // The bulk create applies the same.
    let v = json_of(
        s.post(
            &format!("{TI_PATH}/submitTiIndicators"),
            &json!({"value": [indicator("e3")]}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(v["value"][0]["azureTenantId"], TENANT_A);
    assert_eq!(v["value"][0]["severity"], 3);
    // securityActions, with an application token of a known app.
    let token = graphsec::auth::issue_dev_token(
        &s.data_dir,
        TENANT_A,
        &[],
        &[SA_RW.to_string()],
        3600,
        Some("app-42"),
    )
    .unwrap();
    let app = s.client_with(&token);
    let r = app
        .post(s.url(ACTIONS_PATH))
        .json(
            &json!({"name": "blockIp", "status": "Completed", "azureTenantId": "x", "appId": "y",
                      "parameters": [{"name": "IP", "value": "1.2.3.4"}]}),
        )
        .send()
        .await
        .unwrap();
    let a = json_of(r, 201).await;
    assert_eq!(a["status"], "NotStarted", "{a}");
    assert_eq!(a["lastActionDateTime"], a["createdDateTime"]);
    assert!(a["createdDateTime"].is_string());
    assert_eq!(a["azureTenantId"], TENANT_A);
    assert_eq!(a["appId"], "app-42");
    assert_eq!(a["user"], Value::Null, "an application token has no user");
    // `parameters` is required.
    let r = app
        .post(s.url(ACTIONS_PATH))
        .json(&json!({"name": "blockIp"}))
        .send()
        .await
        .unwrap();
    let m = expect_error(r, 400, "BadRequest").await;
    assert!(m.contains("'parameters'"), "{m}");
}

/// tiindicator.md's value rules (confidence 0-100, severity 0-5, targetProduct and threatType
/// from their lists, description at most 100 characters) and submitTiIndicators' 100 items,
/// refused with a 400 naming the rule in single creates, PATCH and bulk actions alike, writing
/// nothing.
#[tokio::test]
async fn value_rules_hold_in_every_write_path() {
    let s = Server::start();
    let bad: Vec<(&str, Value, &str)> = vec![
        ("confidence", json!(101), "0 to 100"),
        ("confidence", json!(-1), "0 to 100"),
        ("severity", json!(6), "0 to 5"),
        (
            "targetProduct",
            json!("Splunk"),
            "Azure Sentinel, Microsoft Defender ATP",
        ),
        ("threatType", json!("Ransom"), "WatchList"),
        ("description", json!("x".repeat(101)), "at most 100"),
    ];
    for (name, value, needle) in &bad {
        let mut body = indicator("x");
        body[*name] = value.clone();
        let m = expect_error(s.post(TI_PATH, &body).await, 400, "BadRequest").await;
        assert!(m.contains(name) && m.contains(needle), "{name}: {m}");
        assert!(
            m.contains("tiindicator.md"),
            "the message cites the page: {m}"
        );
    }
    let count = |s: &Server| {
        let c = s.client.get(s.url(&format!("{TI_PATH}/$count")));
        async move { c.send().await.unwrap().text().await.unwrap() }
    };
    assert_eq!(count(&s).await, "0", "no refused create was written");
    // Listed spellings are matched ignoring case and stored as the page lists them.
    let mut body = indicator("ok");
    body["threatType"] = json!("watchlist");
    body["targetProduct"] = json!("azure sentinel");
    let t = json_of(s.post(TI_PATH, &body).await, 201).await;
    assert_eq!(t["threatType"], "WatchList");
    assert_eq!(t["targetProduct"], "Azure Sentinel");
    let url = format!("{TI_PATH}/{}", t["id"].as_str().unwrap());
    // PATCH: the same rules, and the page's required fields.
    let m = expect_error(
        s.patch(
            &url,
            &json!({"confidence": 101, "expirationDateTime": "2031-01-01T00:00:00Z", "targetProduct": "Azure Sentinel"}),
        )
        .await,
        400,
        "BadRequest",
    )
    .await;
    assert!(m.contains("confidence"), "{m}");
    let m = expect_error(
        s.patch(&url, &json!({"confidence": 5})).await,
        400,
        "BadRequest",
    )
    .await;
    assert!(
        m.contains("'expirationDateTime'") && m.contains("'targetProduct'"),
        "{m}"
    );
    // submitTiIndicators: a bad item is that item's failure (206), with the top-level `Error`
    // member Microsoft's MISP sample reads, and the good ones are written.
    let mut worse = indicator("bad");
    worse["severity"] = json!(9);
    let r = s
        .post(
            &format!("{TI_PATH}/submitTiIndicators"),
            &json!({"value": [indicator("good"), worse]}),
        )
        .await;
    let v = json_of(r, 206).await;
    assert!(v["value"][0].get("Error").is_none(), "{v}");
    assert_eq!(v["value"][1]["Error"]["code"], "BadRequest", "{v}");
    assert!(
        v["value"][1]["Error"]["message"]
            .as_str()
            .unwrap()
            .contains("severity")
    );
    assert_eq!(v["value"][1]["externalId"], "bad", "the item is echoed");
    // updateTiIndicators: the single PATCH's rules, item by item.
    let r = s
        .post(
            &format!("{TI_PATH}/updateTiIndicators"),
            &json!({"value": [
                {"id": t["id"], "confidence": 200, "expirationDateTime": "2031-01-01T00:00:00Z", "targetProduct": "Azure Sentinel"},
                {"id": t["id"], "confidence": 20},
            ]}),
        )
        .await;
    let v = json_of(r, 206).await;
    assert!(
        v["value"][0]["Error"]["message"]
            .as_str()
            .unwrap()
            .contains("confidence")
    );
    assert!(
        v["value"][1]["Error"]["message"]
            .as_str()
            .unwrap()
            .contains("expirationDateTime"),
        "{v}"
    );
    let unchanged = json_of(s.get(&url).await, 200).await;
    assert_eq!(unchanged["confidence"], Value::Null);
    // More than 100 items: refused whole, nothing written.
    let before = count(&s).await;
    let many: Vec<Value> = (0..101).map(|i| indicator(&format!("m{i}"))).collect();
    let m = expect_error(
        s.post(
            &format!("{TI_PATH}/submitTiIndicators"),
            &json!({"value": many}),
        )
        .await,
        400,
        "BadRequest",
    )
    .await;
    assert!(m.contains("at most 100"), "{m}");
    assert_eq!(count(&s).await, before);
    // securityAction clientContext: at most 256 characters.
    let m = expect_error(
        s.post(
            ACTIONS_PATH,
            &json!({"name": "n", "clientContext": "c".repeat(257),
                    "parameters": [{"name": "IP", "value": "1.2.3.4"}]}),
        )
        .await,
        400,
        "BadRequest",
    )
    .await;
    assert!(m.contains("clientContext"), "{m}");
    // alert.md: confidence 1-100.
    let mut a = alert();
    a["confidence"] = json!(0);
    let m = expect_error(s.post("/beta/security/alerts", &a).await, 400, "BadRequest").await;
    assert!(m.contains("1 to 100"), "{m}");
}

/// securescorecontrolprofile-update.md: the body carries assignedTo, comment and state (one of
/// Default, Ignored, ThirdParty, Reviewed) and must carry vendorInformation; the service
/// records them as a new controlStateUpdates entry, with who and when.
#[tokio::test]
async fn control_profile_updates_record_a_state_entry() {
    let s = Server::start();
    let c = json_of(
        s.post(
            PROFILES,
            &json!({"azureTenantId": TENANT_A, "title": "MFA",
                    "controlStateUpdates": [{"state": "Default"}]}),
        )
        .await,
        201,
    )
    .await;
    let url = format!("{PROFILES}/{}", c["id"].as_str().unwrap());
    let vendor = json!({"provider": "SecureScore", "vendor": "Microsoft"});
    let m = expect_error(
        s.patch(&url, &json!({"state": "Reviewed"})).await,
        400,
        "BadRequest",
    )
    .await;
    assert!(m.contains("vendorInformation"), "{m}");
    let m = expect_error(
        s.patch(
            &url,
            &json!({"state": "Fixed", "vendorInformation": vendor}),
        )
        .await,
        400,
        "BadRequest",
    )
    .await;
    assert!(m.contains("Default, Ignored, ThirdParty, Reviewed"), "{m}");
    let token = s.token_for(TENANT_A, &[READ_WRITE], &[]);
    let user = s.client_with(&token);
    for (state, comment) in [("reviewed", "control is reviewed"), ("Ignored", "n/a")] {
        let r = user
            .patch(s.url(&url))
            .json(
                &json!({"assignedTo": "analyst@contoso.com", "comment": comment,
                          "state": state, "vendorInformation": vendor}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
    }
    let got = json_of(s.get(&url).await, 200).await;
    let history = got["controlStateUpdates"].as_array().unwrap();
    assert_eq!(history.len(), 3, "{got}");
    assert_eq!(history[0]["state"], "Default");
    assert_eq!(history[1]["state"], "Reviewed");
    assert_eq!(history[1]["comment"], "control is reviewed");
    assert_eq!(history[1]["assignedTo"], "analyst@contoso.com");
    assert!(history[1]["updatedBy"].is_string(), "{got}");
    assert!(history[1]["updatedDateTime"].is_string(), "{got}");
    assert_eq!(history[2]["state"], "Ignored");
    assert!(
        got.get("state").is_none() && got.get("comment").is_none(),
        "not stored as stray properties: {got}"
    );
}

/// The permissions each set's pages name: tiIndicators `ThreatIndicators.ReadWrite.OwnedBy`
/// (delegated or application), securityActions `SecurityActions.Read.All`/`ReadWrite.All`
/// (application only); `--permissions-file` can change them per set.
#[tokio::test]
async fn each_set_needs_the_permissions_its_pages_name() {
    let s = Server::start();
    let as_scopes = |scopes: &[&str]| s.client_with(&s.token_for(TENANT_A, scopes, &[]));
    let as_roles = |roles: &[&str]| s.client_with(&s.token_for(TENANT_A, &[], roles));
    // OwnedBy alone reads and writes indicators; the family's permission does not.
    let owner = as_scopes(&[TI]);
    let r = owner
        .post(s.url(TI_PATH))
        .json(&indicator("o1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(
        owner.get(s.url(TI_PATH)).send().await.unwrap().status(),
        200
    );
    let family = as_scopes(&[READ_WRITE]);
    let m = expect_error(
        family.get(s.url(TI_PATH)).send().await.unwrap(),
        403,
        "Authorization_RequestDenied",
    )
    .await;
    assert!(m.contains(TI), "{m}");
    // ... and the OwnedBy token opens no other set.
    expect_error(
        owner
            .get(s.url("/beta/security/alerts"))
            .send()
            .await
            .unwrap(),
        403,
        "Authorization_RequestDenied",
    )
    .await;
    // securityActions: application roles only; Read.All reads, ReadWrite.All writes.
    let delegated = as_scopes(&[SA_RW]);
    let m = expect_error(
        delegated.get(s.url(ACTIONS_PATH)).send().await.unwrap(),
        403,
        "Authorization_RequestDenied",
    )
    .await;
    assert!(m.contains("not allowed for scopes"), "{m}");
    let reader = as_roles(&[SA_READ]);
    assert_eq!(
        reader
            .get(s.url(ACTIONS_PATH))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let body = json!({"name": "n", "parameters": [{"name": "IP", "value": "1.2.3.4"}]});
    expect_error(
        reader
            .post(s.url(ACTIONS_PATH))
            .json(&body)
            .send()
            .await
            .unwrap(),
        403,
        "Authorization_RequestDenied",
    )
    .await;
    let writer = as_roles(&[SA_RW]);
    assert_eq!(
        writer
            .post(s.url(ACTIONS_PATH))
            .json(&body)
            .send()
            .await
            .unwrap()
            .status(),
        201
    );
    // Inside $batch, each sub-request is checked against its own set.
    let batch = json!({"requests": [
        {"id": "1", "method": "GET", "url": "/security/tiIndicators"},
        {"id": "2", "method": "GET", "url": "/security/alerts"},
    ]});
    let v = json_of(
        owner
            .post(s.url("/beta/$batch"))
            .json(&batch)
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    let statuses: Vec<_> = v["responses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["id"].as_str().unwrap().to_string(), r["status"].clone()))
        .collect();
    assert!(statuses.contains(&("1".into(), json!(200))), "{v}");
    assert!(statuses.contains(&("2".into(), json!(403))), "{v}");

    // A permissions file changes one set and leaves the others documented.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("permissions.json");
    std::fs::write(
        &file,
        r#"{"read": ["SecurityEvents.Read.All", "SecurityEvents.ReadWrite.All"],
            "write": ["SecurityEvents.ReadWrite.All"],
            "sets": {"tiIndicators": {"read": ["SecurityEvents.ReadWrite.All"], "write": ["SecurityEvents.ReadWrite.All"]}}}"#,
    )
    .unwrap();
    let s2 = Server::start_with(&["--permissions-file", file.to_str().unwrap()]);
    let family = s2.client_with(&s2.token_for(TENANT_A, &[READ_WRITE], &[]));
    assert_eq!(
        family.get(s2.url(TI_PATH)).send().await.unwrap().status(),
        200
    );
    expect_error(
        family.get(s2.url(ACTIONS_PATH)).send().await.unwrap(),
        403,
        "Authorization_RequestDenied",
    )
    .await;
}

/// What real clients send: Microsoft's MISP sample posts a date-only expirationDateTime
/// (midnight UTC, as Microsoft's OData stack reads it); an unencoded `+` in a query offset
/// arrives as a space, and the error says to encode it.
#[tokio::test]
async fn what_real_clients_send() {
    let s = Server::start();
    let mut body = indicator("misp");
    body["expirationDateTime"] = json!("2026-12-11");
    let t = json_of(s.post(TI_PATH, &body).await, 201).await;
    assert_eq!(t["expirationDateTime"], "2026-12-11T00:00:00Z");
    let v = json_of(
        s.post(
            &format!("{TI_PATH}/submitTiIndicators"),
            &json!({"value": [body]}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(v["value"][0]["expirationDateTime"], "2026-12-11T00:00:00Z");
    // The raw query as a client that forgot to encode '+' sends it.
    let url = format!(
        "{}{}?$filter=createdDateTime%20gt%202026-01-01T00:00:00+01:00",
        s.base, "/beta/security/alerts"
    );
    let m = expect_error(s.client.get(url).send().await.unwrap(), 400, "BadRequest").await;
    assert!(m.contains("%2B"), "{m}");
    let url = format!(
        "{}{}?$filter=createdDateTime%20gt%202026-01-01T00:00:00%2B01:00",
        s.base, "/beta/security/alerts"
    );
    assert_eq!(s.client.get(url).send().await.unwrap().status(), 200);
}
