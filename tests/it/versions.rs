//! Graph's two version roots (issue 20): `/v1.0` serves exactly what Graph v1.0 has of the
//! family (alerts, secureScores, secureScoreControlProfiles, from its own metadata slice) and
//! `/beta` all twelve sets, over one store. Rows cross versions freely; documents, links and
//! refusals are per version (`shared/spec/legacy-security-v1.0.md`, rules 1-8).

use serde_json::{Value, json};

use crate::support::{Server, TENANT_A, expect_error, json_of};

fn alert(title: &str) -> Value {
    json!({
        "azureTenantId": TENANT_A,
        "title": title,
        "severity": "high",
        "status": "newAlert",
        "createdDateTime": "2026-12-01T10:00:00Z",
        "vendorInformation": {"provider": "Windows Defender ATP", "vendor": "Microsoft"},
    })
}

/// Created through one root, read, patched and deleted through the other, both ways round; every
/// answer speaks its own version's URLs.
#[tokio::test]
async fn rows_cross_versions_and_each_answer_names_its_version() {
    let s = Server::start();
    for (create_in, other) in [("beta", "v1.0"), ("v1.0", "beta")] {
        let r = s
            .post(&format!("/{create_in}/security/alerts"), &alert(create_in))
            .await;
        let location = r.headers()["location"].to_str().unwrap().to_string();
        let created = json_of(r, 201).await;
        let id = created["id"].as_str().unwrap();
        assert!(
            location.contains(&format!("/{create_in}/security/alerts('{id}')")),
            "{location}"
        );
        assert!(
            created["@odata.context"]
                .as_str()
                .unwrap()
                .ends_with(&format!("/{create_in}/$metadata#security/alerts/$entity")),
            "{created}"
        );
        // Read through the other root: the same row, the other version's context.
        let read = json_of(s.get(&format!("/{other}/security/alerts/{id}")).await, 200).await;
        assert_eq!(read["title"], create_in);
        assert_eq!(read["@odata.type"], "#microsoft.graph.alert");
        assert!(
            read["@odata.context"]
                .as_str()
                .unwrap()
                .ends_with(&format!("/{other}/$metadata#security/alerts/$entity")),
            "{read}"
        );
        // Both versions declare the same alert: the same members in the same order.
        let keys = |v: &Value| -> Vec<String> {
            v.as_object()
                .unwrap()
                .keys()
                .filter(|k| *k != "@odata.context")
                .cloned()
                .collect()
        };
        assert_eq!(keys(&read), keys(&created));
        // Patched through the other root, seen through the first.
        let r = s
            .client
            .patch(s.url(&format!("/{other}/security/alerts/{id}")))
            .header("Prefer", "return=representation")
            .json(&json!({
                "status": "resolved",
                "vendorInformation": {"provider": "Windows Defender ATP", "vendor": "Microsoft"},
            }))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.status());
        let back = json_of(
            s.get(&format!("/{create_in}/security/alerts/{id}")).await,
            200,
        )
        .await;
        assert_eq!(back["status"], "resolved");
        assert_eq!(
            back["title"], create_in,
            "a PATCH keeps what it does not name"
        );
        // Listed and counted under both roots.
        for v in ["beta", "v1.0"] {
            let list = json_of(
                s.get_with(
                    &format!("/{v}/security/alerts"),
                    &[("$filter", &format!("id eq '{id}'")), ("$count", "true")],
                )
                .await,
                200,
            )
            .await;
            assert_eq!(list["@odata.count"], 1, "{v}: {list}");
            assert!(
                list["@odata.context"]
                    .as_str()
                    .unwrap()
                    .ends_with(&format!("/{v}/$metadata#security/alerts")),
                "{list}"
            );
        }
        // Deleted through the other root: gone from both.
        assert_eq!(
            s.delete(&format!("/{other}/security/alerts/{id}"))
                .await
                .status(),
            204
        );
        for v in ["beta", "v1.0"] {
            expect_error(
                s.get(&format!("/{v}/security/alerts/{id}")).await,
                404,
                "ResourceNotFound",
            )
            .await;
        }
    }
}

/// Paging and `$count` stay under the version the client used.
#[tokio::test]
async fn next_links_and_count_stay_under_v1() {
    let s = Server::start();
    for i in 0..3 {
        let body = json!({
            "azureTenantId": TENANT_A,
            "currentScore": f64::from(i),
            "createdDateTime": format!("2026-11-0{}T00:00:00Z", i + 1),
        });
        json_of(s.post("/v1.0/security/secureScores", &body).await, 201).await;
    }
    let first = json_of(
        s.get_with("/v1.0/security/secureScores", &[("$top", "2")])
            .await,
        200,
    )
    .await;
    let next = first["@odata.nextLink"].as_str().expect("a next link");
    assert!(next.contains("/v1.0/security/secureScores?"), "{next}");
    let second = json_of(s.client.get(next).send().await.unwrap(), 200).await;
    assert_eq!(second["value"].as_array().unwrap().len(), 1);
    let r = s.get("/v1.0/security/secureScores/$count").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "3");
    // The beta view of the same rows.
    let r = s.get("/beta/security/secureScores/$count").await;
    assert_eq!(r.text().await.unwrap(), "3");
}

/// What v1.0 does not have is refused as Graph refuses it: a beta-only set or bound action is an
/// unknown segment; an unknown version names the versions served; unversioned paths stay beta.
#[tokio::test]
async fn v1_refuses_what_only_beta_has_and_unknown_versions() {
    let s = Server::start();
    for set in [
        "tiIndicators",
        "securityActions",
        "cloudAppSecurityProfiles",
        "userSecurityProfiles",
    ] {
        let m = expect_error(
            s.get(&format!("/v1.0/security/{set}")).await,
            400,
            "BadRequest",
        )
        .await;
        assert_eq!(m, format!("Resource not found for the segment '{set}'."));
        // The same set is there under beta.
        assert_eq!(s.get(&format!("/beta/security/{set}")).await.status(), 200);
    }
    let created = json_of(s.post("/v1.0/security/alerts", &alert("a")).await, 201).await;
    let body = json!({"value": [{"id": created["id"], "status": "resolved",
        "vendorInformation": {"provider": "Windows Defender ATP", "vendor": "Microsoft"}}]});
    let m = expect_error(
        s.post("/v1.0/security/alerts/updateAlerts", &body).await,
        400,
        "BadRequest",
    )
    .await;
    assert!(
        m.starts_with("Resource not found for the segment 'updateAlerts'."),
        "{m}"
    );
    assert!(m.contains("beta"), "{m}");
    let unchanged = json_of(
        s.get(&format!(
            "/v1.0/security/alerts/{}",
            created["id"].as_str().unwrap()
        ))
        .await,
        200,
    )
    .await;
    assert_eq!(
        unchanged["status"], "newAlert",
        "the refused action wrote nothing"
    );
    // Beta runs it.
    let r = s.post("/beta/security/alerts/updateAlerts", &body).await;
    assert_eq!(r.status(), 200);
    for path in [
        "/v2.0/security/alerts",
        "/V3/security/alerts",
        "/v1/$metadata",
    ] {
        let m = expect_error(s.get(path).await, 400, "BadRequest").await;
        assert!(m.starts_with("Invalid version: "), "{path}: {m}");
        assert!(m.contains("/beta") && m.contains("/v1.0"), "{m}");
    }
    // Unversioned paths are beta: every set, beta's context.
    let v = json_of(s.get("/security/tiIndicators").await, 200).await;
    assert!(
        v["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("/$metadata#security/tiIndicators"),
        "{v}"
    );
    // Segments are case-insensitive under v1.0 too.
    assert_eq!(s.get("/V1.0/Security/Alerts").await.status(), 200);
    let m = expect_error(s.get("/v1.0/security").await, 400, "BadRequest").await;
    assert!(
        m.contains("security/alerts") && !m.contains("tiIndicators"),
        "{m}"
    );
}

/// `$metadata`, the service document and OpenAPI describe each version as served.
#[tokio::test]
async fn each_version_has_its_own_documents() {
    let s = Server::start();
    let anon = s.anonymous();
    let v1 = anon
        .get(s.url("/v1.0/$metadata"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(v1.matches("<NavigationProperty ").count(), 3, "{v1}");
    assert!(!v1.contains("updateAlerts") && !v1.contains("tiIndicator"));
    let beta = anon
        .get(s.url("/beta/$metadata"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(beta.matches("<NavigationProperty ").count(), 12);
    assert!(beta.contains("updateAlerts"));
    let doc: Value = anon
        .get(s.url("/v1.0/"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        doc["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("/v1.0/$metadata"),
        "{doc}"
    );
    assert_eq!(doc["value"][0]["name"], "security");
    let api: Value = anon
        .get(s.url("/v1.0/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(api["servers"][0]["url"], "/v1.0", "{}", api["servers"]);
    let paths = api["paths"].as_object().unwrap();
    assert!(paths.contains_key("/security/alerts"));
    assert!(
        !paths
            .keys()
            .any(|p| p.contains("tiIndicators") || p.contains("updateAlerts"))
    );
}

/// `/v1.0/$batch`: sub-request URLs are relative to v1.0, whatever form they take.
#[tokio::test]
async fn v1_batch_runs_relative_to_v1() {
    let s = Server::start();
    let body = json!({"requests": [
        {"id": "1", "method": "POST", "url": "/security/alerts",
         "headers": {"Content-Type": "application/json"}, "body": alert("batched")},
        {"id": "2", "method": "GET", "url": "security/alerts?$filter=title%20eq%20'batched'", "dependsOn": ["1"]},
        {"id": "3", "method": "GET", "url": "/security/tiIndicators"},
        {"id": "4", "method": "GET", "url": "https://graph.microsoft.com/v1.0/security/secureScores"},
    ]});
    let v = json_of(s.post("/v1.0/$batch", &body).await, 200).await;
    let by_id = |id: &str| {
        v["responses"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .cloned()
            .unwrap()
    };
    assert_eq!(by_id("1")["status"], 201, "{v}");
    let listed = by_id("2");
    assert_eq!(listed["status"], 200, "{v}");
    assert_eq!(listed["body"]["value"].as_array().unwrap().len(), 1);
    assert!(
        listed["body"]["@odata.context"]
            .as_str()
            .unwrap()
            .contains("/v1.0/$metadata#security/alerts"),
        "{listed}"
    );
    let refused = by_id("3");
    assert_eq!(refused["status"], 400, "{v}");
    assert_eq!(
        refused["body"]["error"]["message"],
        "Resource not found for the segment 'tiIndicators'."
    );
    assert_eq!(by_id("4")["status"], 200, "{v}");
}
