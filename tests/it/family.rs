//! The legacy Security family served from Graph's metadata (issue 14): for every entity set, a
//! hand-written valid entity goes through create -> get -> list -> patch -> delete over HTTP,
//! with the shapes each set brings (nested complex values, collections of complex and enum
//! values, open complex types, Int32/Int64/Double); then Graph's per-resource rules. The random,
//! model-driven conformance suite lives elsewhere; this one pins concrete, readable cases.

use serde_json::{Value, json};

use crate::support::{Server, expect_error, json_of};

/// One set's case: a create body, a PATCH body, and what the entity looks like after the PATCH
/// (a subset of its JSON, compared member by member).
struct Case {
    set: &'static str,
    create: Value,
    patch: Value,
    after: Value,
    /// A `$filter` that selects the entity (on a simple property of the set).
    filter: &'static str,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            set: "alerts",
            create: json!({
                "azureTenantId": "t1", "severity": "high", "status": "newAlert", "title": "Suspicious",
                "confidence": 80,
                "fileStates": [{"name": "a.exe", "fileHash": {"hashType": "sha256", "hashValue": "ab12"}}],
                "networkConnections": [{"protocol": "tcp", "direction": "outbound"}, {"protocol": "unknown"}],
                "userStates": [{"userPrincipalName": "u@contoso.com", "logonType": "interactive"}],
                "historyStates": [{"comments": ["first"], "status": "newAlert"}],
                "vendorInformation": {"provider": "ASC", "vendor": "Microsoft"},
                "tags": ["a"]
            }),
            patch: json!({"status": "resolved", "feedback": "truePositive", "assignedTo": "analyst@contoso.com",
                          "vendorInformation": {"provider": "ASC", "vendor": "Microsoft", "providerVersion": "2"}}),
            after: json!({
                "status": "resolved", "feedback": "truePositive", "assignedTo": "analyst@contoso.com",
                "severity": "high", "title": "Suspicious",
                "vendorInformation": {"provider": "ASC", "providerVersion": "2", "vendor": "Microsoft"},
                "networkConnections": [{"protocol": "tcp", "direction": "outbound"}, {"protocol": "unknown"}],
                "fileStates": [{"name": "a.exe", "fileHash": {"hashType": "sha256", "hashValue": "ab12"}}]
            }),
            filter: "severity eq 'high'",
        },
        Case {
            set: "cloudAppSecurityProfiles",
            create: json!({"name": "app", "permissionsRequired": "user", "tags": ["x"]}),
            patch: json!({"riskScore": "5"}),
            after: json!({"name": "app", "riskScore": "5", "permissionsRequired": "user"}),
            filter: "name eq 'app'",
        },
        Case {
            set: "domainSecurityProfiles",
            create: json!({
                "azureTenantId": "t1", "name": "contoso.com", "countHits": 3,
                "registrant": {"organization": "Contoso"},
                "domainCategories": [{"name": "phishing", "vendor": "v"}]
            }),
            patch: json!({"registrant": {"url": "https://contoso.com"}, "countHits": 4}),
            after: json!({"countHits": 4, "registrant": {"organization": "Contoso", "url": "https://contoso.com"},
                          "domainCategories": [{"name": "phishing", "vendor": "v"}]}),
            filter: "name eq 'contoso.com'",
        },
        Case {
            set: "fileSecurityProfiles",
            create: json!({
                "azureTenantId": "t1", "size": 9_007_199_254_740_993_i64, "names": ["a.exe"],
                "hashes": [{"hashType": "md5", "hashValue": "00"}],
                "malwareStates": [{"name": "m", "wasRunning": true}]
            }),
            patch: json!({"hashes": [{"hashType": "sha1", "hashValue": "11"}]}),
            after: json!({"size": 9_007_199_254_740_993_i64, "hashes": [{"hashType": "sha1", "hashValue": "11"}]}),
            filter: "azureTenantId eq 't1'",
        },
        Case {
            set: "hostSecurityProfiles",
            create: json!({
                "azureTenantId": "t1", "fqdn": "h.contoso.com", "isAzureAdJoined": true,
                "logonUsers": [{"accountName": "u", "logonTypes": ["interactive", "remoteInteractive"]}],
                "networkInterfaces": [{"ipV4Address": "10.0.0.1"}]
            }),
            patch: json!({"logonUsers": [{"accountName": "v", "logonTypes": ["network"]}]}),
            after: json!({"fqdn": "h.contoso.com", "logonUsers": [{"accountName": "v", "logonTypes": ["network"]}]}),
            filter: "fqdn eq 'h.contoso.com'",
        },
        Case {
            set: "ipSecurityProfiles",
            create: json!({
                "azureTenantId": "t1", "address": "10.1.2.3", "countHosts": 2,
                "ipReferenceData": [{"asn": 8075, "city": "Redmond"}],
                "ipCategories": [{"name": "botnet"}]
            }),
            patch: json!({"countHits": 7}),
            after: json!({"countHits": 7, "countHosts": 2, "ipReferenceData": [{"asn": 8075, "city": "Redmond"}]}),
            filter: "address eq '10.1.2.3'",
        },
        Case {
            set: "providerTenantSettings",
            create: json!({"azureTenantId": "t1", "enabled": true, "provider": "p", "vendor": "v"}),
            patch: json!({"enabled": false}),
            after: json!({"enabled": false, "provider": "p"}),
            filter: "provider eq 'p'",
        },
        Case {
            set: "secureScoreControlProfiles",
            create: json!({
                "azureTenantId": "t1", "controlCategory": "Identity", "maxScore": 10.0, "rank": 1,
                "complianceInformation": [{"certificationName": "ISO",
                    "certificationControls": [{"name": "A.9", "url": "https://x", "extra": "kept"}]}],
                "controlStateUpdates": [{"state": "Default"}],
                "threats": ["a"]
            }),
            // The update page's body: the state members become a controlStateUpdates entry;
            // the other properties are not updatable (rank stays).
            patch: json!({"assignedTo": "a@contoso.com", "comment": "n/a", "state": "ignored", "rank": 2,
                          "vendorInformation": {"provider": "SecureScore", "vendor": "Microsoft"}}),
            after: json!({
                "rank": 1, "controlCategory": "Identity", "maxScore": 10.0,
                "controlStateUpdates": [{"state": "Default"},
                    {"state": "Ignored", "comment": "n/a", "assignedTo": "a@contoso.com"}],
                "complianceInformation": [{"certificationName": "ISO",
                    "certificationControls": [{"name": "A.9", "url": "https://x", "extra": "kept"}]}]
            }),
            filter: "controlCategory eq 'Identity'",
        },
        Case {
            set: "secureScores",
            create: json!({
                "azureTenantId": "t1", "activeUserCount": 10, "currentScore": 12.5, "maxScore": 100,
                "enabledServices": ["exchange"],
                "averageComparativeScores": [{"basis": "AllTenants", "averageScore": 40.5, "seatSizeRangeLowerValue": "100"}],
                "controlScores": [{"controlName": "mfa", "score": 1.5, "controlCategory": "Identity", "implementationStatus": "on"}]
            }),
            patch: json!({"currentScore": 13}),
            after: json!({
                "currentScore": 13.0, "maxScore": 100.0, "activeUserCount": 10,
                "controlScores": [{"controlName": "mfa", "score": 1.5, "controlCategory": "Identity", "implementationStatus": "on"}],
                "averageComparativeScores": [{"basis": "AllTenants", "averageScore": 40.5, "seatSizeRangeLowerValue": "100"}]
            }),
            filter: "azureTenantId eq 't1'",
        },
        Case {
            set: "securityActions",
            create: json!({
                "name": "blockIp", "status": "NotStarted",
                "parameters": [{"name": "ip", "value": "10.0.0.1"}],
                "errorInfo": {"code": 1, "subcode": 2, "message": "m"},
                "states": [{"status": "Running", "appId": "a"}]
            }),
            patch: json!({"status": "Completed", "errorInfo": {"subcode": 3}}),
            after: json!({"status": "Completed", "errorInfo": {"code": 1, "subcode": 3, "message": "m"},
                          "parameters": [{"name": "ip", "value": "10.0.0.1"}]}),
            filter: "name eq 'blockIp'",
        },
        Case {
            set: "tiIndicators",
            create: json!({
                "action": "alert", "description": "bad domain", "expirationDateTime": "2030-01-01T00:00:00Z",
                "targetProduct": "Azure Sentinel", "threatType": "WatchList", "tlpLevel": "green",
                "domainName": "evil.example", "confidence": 90, "networkDestinationAsn": 4_294_967_296_i64,
                "externalId": "ext-1"
            }),
            patch: json!({"confidence": 50, "expirationDateTime": "2031-01-01T00:00:00Z",
                          "targetProduct": "Azure Sentinel"}),
            after: json!({"confidence": 50, "expirationDateTime": "2031-01-01T00:00:00Z",
                          "networkDestinationAsn": 4_294_967_296_i64, "tlpLevel": "green"}),
            filter: "externalId eq 'ext-1'",
        },
        Case {
            set: "userSecurityProfiles",
            create: json!({
                "azureTenantId": "t1", "userPrincipalName": "u@contoso.com",
                "accounts": [{"displayName": "U", "status": "active"}]
            }),
            patch: json!({"displayName": "User"}),
            after: json!({"displayName": "User", "accounts": [{"displayName": "U", "status": "active"}]}),
            filter: "userPrincipalName eq 'u@contoso.com'",
        },
    ]
}

/// Every member of `want` is in `got` with the same value; objects compare member by member
/// (so `@odata.type` and null members of `got` may be extra), arrays item by item.
fn contains(got: &Value, want: &Value) -> bool {
    match (got, want) {
        (Value::Object(g), Value::Object(w)) => w
            .iter()
            .all(|(k, wv)| g.get(k).is_some_and(|gv| contains(gv, wv))),
        (Value::Array(g), Value::Array(w)) => {
            g.len() == w.len() && g.iter().zip(w).all(|(a, b)| contains(a, b))
        }
        (Value::Number(g), Value::Number(w)) => g.as_f64() == w.as_f64(),
        _ => got == want,
    }
}

#[tokio::test]
async fn every_set_goes_through_create_get_list_patch_delete() {
    let s = Server::start();
    for case in cases() {
        let coll = format!("/beta/security/{}", case.set);
        let created = json_of(s.post(&coll, &case.create).await, 201).await;
        assert!(contains(&created, &case.create), "{}: {created}", case.set);
        let id = created["id"].as_str().expect("id").to_string();
        let context = created["@odata.context"].as_str().unwrap_or("");
        assert!(
            context.ends_with(&format!("$metadata#security/{}/$entity", case.set)),
            "{context}"
        );
        let got = json_of(s.get(&format!("{coll}/{id}")).await, 200).await;
        assert_eq!(got, created, "{}: GET returns what POST returned", case.set);
        let page = json_of(s.get_with(&coll, &[("$filter", case.filter)]).await, 200).await;
        let ids: Vec<&str> = page["value"]
            .as_array()
            .expect("value")
            .iter()
            .filter_map(|e| e["id"].as_str())
            .collect();
        assert_eq!(ids, [id.as_str()], "{}: {}", case.set, case.filter);
        // Each set answers a PATCH as its update page says (204 for alerts, tiIndicators,
        // control profiles and the 2018 profiles), and 200 with the entity when asked.
        let entity = graphsec::model::catalog().set(case.set).expect("set");
        let r = s.patch(&format!("{coll}/{id}"), &case.patch).await;
        assert_eq!(
            r.status().as_u16(),
            entity.rules.update_status,
            "{}",
            case.set
        );
        let patched = json_of(s.get(&format!("{coll}/{id}")).await, 200).await;
        assert!(contains(&patched, &case.after), "{}: {patched}", case.set);
        let again = json_of(s.get(&format!("{coll}('{id}')")).await, 200).await;
        assert_eq!(again, patched, "{}", case.set);
        // `$select` of any property, complex collections included.
        let first_complex = case
            .after
            .as_object()
            .and_then(|o| o.keys().next_back().cloned())
            .unwrap_or_default();
        let selected = json_of(
            s.get_with(
                &format!("{coll}/{id}"),
                &[("$select", first_complex.as_str())],
            )
            .await,
            200,
        )
        .await;
        let keys: Vec<&String> = selected
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| !k.starts_with('@'))
            .collect();
        assert_eq!(keys, ["id", first_complex.as_str()], "{}", case.set);
        let r = s.delete(&format!("{coll}/{id}")).await;
        assert_eq!(r.status().as_u16(), 204, "{}", case.set);
        expect_error(
            s.get(&format!("{coll}/{id}")).await,
            404,
            "ResourceNotFound",
        )
        .await;
    }
}

#[tokio::test]
async fn sets_are_separate_and_names_are_case_insensitive() {
    let s = Server::start();
    let a = json_of(
        s.post(
            "/beta/security/providerTenantSettings",
            &json!({"id": "same", "azureTenantId": "t"}),
        )
        .await,
        201,
    )
    .await;
    // The same id in another set is another entity.
    json_of(
        s.post(
            "/beta/Security/UserSecurityProfiles",
            &json!({"id": "same", "azureTenantId": "t"}),
        )
        .await,
        201,
    )
    .await;
    let got = json_of(s.get("/security/PROVIDERTENANTSETTINGS/same").await, 200).await;
    assert_eq!(got["@odata.type"], "#microsoft.graph.providerTenantSetting");
    assert_eq!(got["id"], a["id"]);
    let count = s.get("/beta/security/userSecurityProfiles/$count").await;
    assert_eq!(count.text().await.unwrap(), "1");
    // providerTenantSetting is not an open type: an undeclared property is refused.
    let msg = expect_error(
        s.post(
            "/beta/security/providerTenantSettings",
            &json!({"azureTenantId": "t", "custom": 1}),
        )
        .await,
        400,
        "BadRequest",
    )
    .await;
    assert!(msg.contains("custom") && msg.contains("not open"), "{msg}");
}

#[tokio::test]
async fn graph_rules_per_resource() {
    let s = Server::start();
    // tiIndicator: the documented required properties, then at least one observable.
    let msg = expect_error(
        s.post(
            "/beta/security/tiIndicators",
            &json!({"targetProduct": "Azure Sentinel"}),
        )
        .await,
        400,
        "BadRequest",
    )
    .await;
    for p in [
        "action",
        "description",
        "expirationDateTime",
        "threatType",
        "tlpLevel",
    ] {
        assert!(msg.contains(&format!("'{p}'")), "{msg}");
    }
    let no_observable = json!({
        "action": "alert", "description": "d", "expirationDateTime": "2030-01-01T00:00:00Z",
        "targetProduct": "Azure Sentinel", "threatType": "WatchList", "tlpLevel": "green"
    });
    let msg = expect_error(
        s.post("/beta/security/tiIndicators", &no_observable).await,
        400,
        "BadRequest",
    )
    .await;
    assert!(msg.contains("at least one"), "{msg}");
    // alerts: $top at most 1000.
    json_of(
        s.get_with("/beta/security/alerts", &[("$top", "1000")])
            .await,
        200,
    )
    .await;
    let msg = expect_error(
        s.get_with("/beta/security/alerts", &[("$top", "1001")])
            .await,
        400,
        "BadRequest",
    )
    .await;
    assert!(msg.contains("1000"), "{msg}");
    // alerts: $skip at most 500 (Graph's security API error responses page); other sets have
    // no such limit.
    json_of(
        s.get_with("/beta/security/alerts", &[("$skip", "500")])
            .await,
        200,
    )
    .await;
    let msg = expect_error(
        s.get_with("/beta/security/alerts", &[("$skip", "501")])
            .await,
        400,
        "BadRequest",
    )
    .await;
    assert!(msg.contains("at most 500"), "{msg}");
    json_of(
        s.get_with("/beta/security/secureScores", &[("$skip", "501")])
            .await,
        200,
    )
    .await;
    // alerts: non-nullable properties are required and cannot be cleared; only Graph's
    // updatable properties change (the others are ignored, as OData has it).
    let msg = expect_error(
        s.post(
            "/beta/security/alerts",
            &json!({"azureTenantId": "t", "severity": "low"}),
        )
        .await,
        400,
        "BadRequest",
    )
    .await;
    assert!(msg.contains("'status'"), "{msg}");
    let alert = json_of(
        s.post(
            "/beta/security/alerts",
            &json!({"azureTenantId": "t", "severity": "low", "status": "newAlert", "title": "x"}),
        )
        .await,
        201,
    )
    .await;
    let url = format!("/beta/security/alerts/{}", alert["id"].as_str().unwrap());
    let msg = expect_error(
        s.patch(&url, &json!({"severity": null})).await,
        400,
        "BadRequest",
    )
    .await;
    assert!(
        msg.contains("severity") && msg.contains("not nullable"),
        "{msg}"
    );
    let vendor = json!({"provider": "ASC", "vendor": "Microsoft"});
    let msg = expect_error(
        s.patch(&url, &json!({"status": "resolved"})).await,
        400,
        "BadRequest",
    )
    .await;
    assert!(msg.contains("'vendorInformation/provider'"), "{msg}");
    let patched = json_of(
        s.client
            .patch(s.url(&url))
            .header("Prefer", "return=representation")
            .json(&json!({"title": "changed", "comments": ["c"], "vendorInformation": vendor}))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(patched["title"], "x", "title is not updatable on alerts");
    assert_eq!(patched["comments"], json!(["c"]));
    // securityAction.errorInfo (resultInfo): a merge must leave code and subcode set.
    let action = json_of(
        s.post(
            "/beta/security/securityActions",
            &json!({"name": "a", "parameters": [{"name": "IP", "value": "1.2.3.4"}]}),
        )
        .await,
        201,
    )
    .await;
    let url = format!(
        "/beta/security/securityActions/{}",
        action["id"].as_str().unwrap()
    );
    let msg = expect_error(
        s.patch(&url, &json!({"errorInfo": {"code": 1}})).await,
        400,
        "BadRequest",
    )
    .await;
    assert!(msg.contains("errorInfo/subcode"), "{msg}");
    let after = json_of(s.get(&url).await, 200).await;
    assert_eq!(
        after["errorInfo"],
        Value::Null,
        "a refused PATCH changes nothing"
    );
    // Doubles are finite here; Int32 is range-checked.
    let msg = expect_error(
        s.post(
            "/beta/security/secureScores",
            &json!({"azureTenantId": "t", "currentScore": "NaN"}),
        )
        .await,
        400,
        "BadRequest",
    )
    .await;
    assert!(msg.contains("finite"), "{msg}");
    let msg = expect_error(
        s.post(
            "/beta/security/secureScores",
            &json!({"azureTenantId": "t", "activeUserCount": 2_147_483_648_i64}),
        )
        .await,
        400,
        "BadRequest",
    )
    .await;
    assert!(msg.contains("Edm.Int32"), "{msg}");
}

/// Numbers order numerically and page by keyset: Double (secureScore.currentScore) and Int32
/// (rank) columns, ascending and descending, with `$top` pages followed through `@odata.nextLink`.
#[tokio::test]
async fn numeric_columns_order_and_page() {
    let s = Server::start();
    for (i, score) in [2.5, -1.0, 10.0, 2.25, 100.0, 0.0, 2.5].iter().enumerate() {
        let body = json!({"id": format!("s{i}"), "azureTenantId": "t", "currentScore": score,
                          "activeUserCount": 7 - i as i64});
        json_of(s.post("/beta/security/secureScores", &body).await, 201).await;
    }
    for (orderby, want) in [
        (
            "currentScore",
            vec!["s1", "s5", "s3", "s0", "s6", "s2", "s4"],
        ),
        (
            "currentScore desc",
            vec!["s4", "s2", "s0", "s6", "s3", "s5", "s1"],
        ),
        (
            "activeUserCount",
            vec!["s6", "s5", "s4", "s3", "s2", "s1", "s0"],
        ),
    ] {
        let mut got = Vec::new();
        let mut next = Some(format!(
            "/beta/security/secureScores?$orderby={}&$top=3&$select=id",
            orderby.replace(' ', "%20")
        ));
        while let Some(path) = next.take() {
            let page = json_of(s.get(&path).await, 200).await;
            for e in page["value"].as_array().unwrap() {
                got.push(e["id"].as_str().unwrap().to_string());
            }
            next = page["@odata.nextLink"]
                .as_str()
                .map(|l| l[l.find("/beta/").unwrap()..].to_string());
        }
        assert_eq!(got, want, "{orderby}");
    }
    let page = json_of(
        s.get_with(
            "/beta/security/secureScores",
            &[("$filter", "currentScore gt 2.3 and currentScore lt 10")],
        )
        .await,
        200,
    )
    .await;
    let mut ids: Vec<&str> = page["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, ["s0", "s6"]);
}
