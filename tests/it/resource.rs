//! CONTRACT §2 (operations) and §3 (bodies) over HTTP.

use serde_json::{Value, json};

use crate::support::{COLLECTION, Server, expect_error};

fn entity(id: &str) -> String {
    format!("{COLLECTION}/{id}")
}

#[tokio::test]
async fn get_by_path_and_key_syntax_with_case_insensitive_segments_and_case_sensitive_ids() {
    let s = Server::start();
    let c = s.create(&json!({"id": "Profile-1", "name": "n"})).await;
    assert_eq!(c["id"], "Profile-1");
    for path in [
        "/beta/security/cloudAppSecurityProfiles/Profile-1",
        "/security/cloudAppSecurityProfiles/Profile-1",
        "/BETA/Security/CLOUDAPPSECURITYPROFILES/Profile-1",
        "/beta/security/cloudAppSecurityProfiles('Profile-1')",
        "/security/cloudAppSecurityProfiles(id='Profile-1')",
    ] {
        let r = s.get(path).await;
        assert_eq!(r.status(), 200, "{path}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["name"], "n", "{path}");
        let ctx = v["@odata.context"].as_str().unwrap();
        assert!(
            ctx.ends_with("$metadata#security/cloudAppSecurityProfiles/$entity"),
            "{ctx}"
        );
    }
    expect_error(s.get(&entity("profile-1")).await, 404, "ResourceNotFound").await;
    expect_error(
        s.get("/security/cloudAppSecurityProfiles('PROFILE-1')")
            .await,
        404,
        "ResourceNotFound",
    )
    .await;
}

#[tokio::test]
async fn unversioned_paths_get_unversioned_context_and_location() {
    let s = Server::start();
    let r = s
        .post("/security/cloudAppSecurityProfiles", &json!({"name": "x"}))
        .await;
    assert_eq!(r.status(), 201);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let v: Value = r.json().await.unwrap();
    assert!(!loc.contains("/beta/"), "{loc}");
    assert!(
        v["@odata.context"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}/$metadata#", s.base))
    );
}

#[tokio::test]
async fn list_and_count() {
    let s = Server::start();
    let empty: Value = s.get(COLLECTION).await.json().await.unwrap();
    assert_eq!(empty["value"], json!([]));
    assert!(
        empty["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("$metadata#security/cloudAppSecurityProfiles")
    );
    for i in 0..3 {
        s.create(&json!({"name": format!("p{i}")})).await;
    }
    let r = s.get(COLLECTION).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["value"].as_array().unwrap().len(), 3);
    let r = s.get(&format!("{COLLECTION}/$count")).await;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(r.text().await.unwrap(), "3");
}

#[tokio::test]
async fn patch_merge_rules() {
    let s = Server::start();
    let c = s
        .create(&json!({
            "name": "n", "platform": "p", "tags": ["a", "b"], "isSigned": true,
            "vendorInformation": {"provider": "prov", "vendor": "ven"},
            "dynA": 1, "dynB": {"x": [1]}
        }))
        .await;
    let id = c["id"].as_str().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(5));
    let r = s
        .patch(
            &entity(id),
            &json!({
                "platform": null, "tags": ["c"],
                "vendorInformation": {"vendor": "ven2", "subProvider": null},
                "dynB": "replaced", "dynC": true
            }),
        )
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["name"], "n", "absent keeps");
    assert_eq!(v["isSigned"], true, "absent keeps");
    assert_eq!(v["platform"], Value::Null, "null clears");
    assert_eq!(v["tags"], json!(["c"]), "collections replace");
    assert_eq!(
        v["vendorInformation"],
        json!({"@odata.type": "microsoft.graph.securityVendorInformation",
               "provider": "prov", "providerVersion": null, "subProvider": null, "vendor": "ven2"}),
        "complex merges member by member"
    );
    assert_eq!(v["dynA"], 1);
    assert_eq!(v["dynB"], "replaced");
    assert_eq!(v["dynC"], true);
    assert_eq!(v["createdDateTime"], c["createdDateTime"]);
    assert!(
        v["lastModifiedDateTime"].as_str().unwrap() > c["lastModifiedDateTime"].as_str().unwrap()
    );
    // The stored state is what the PATCH answered.
    let got: Value = s.get(&entity(id)).await.json().await.unwrap();
    assert_eq!(got, v);
    // Clearing the complex value as a whole.
    let v: Value = s
        .patch(&entity(id), &json!({"vendorInformation": null}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["vendorInformation"], Value::Null);
    // Merging into a null complex value starts from all-null members.
    let v: Value = s
        .patch(&entity(id), &json!({"vendorInformation": {"vendor": "v3"}}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["vendorInformation"]["vendor"], "v3");
    assert_eq!(v["vendorInformation"]["provider"], Value::Null);
}

#[tokio::test]
async fn patch_prefer_return_minimal_gives_204_and_still_writes() {
    let s = Server::start();
    let id = s.create(&json!({"name": "a"})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = s
        .client
        .patch(s.url(&entity(&id)))
        .header("Prefer", "odata.maxpagesize=5, return=minimal")
        .json(&json!({"name": "b"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers()["preference-applied"], "return=minimal");
    assert_eq!(r.text().await.unwrap(), "");
    let v: Value = s.get(&entity(&id)).await.json().await.unwrap();
    assert_eq!(v["name"], "b");
}

#[tokio::test]
async fn patch_and_delete_of_missing_profiles_are_404() {
    let s = Server::start();
    expect_error(
        s.patch(&entity("nope"), &json!({"name": "x"})).await,
        404,
        "ResourceNotFound",
    )
    .await;
    expect_error(s.delete(&entity("nope")).await, 404, "ResourceNotFound").await;
}

#[tokio::test]
async fn delete_removes_and_then_404s() {
    let s = Server::start();
    let id = s.create(&json!({})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = s.delete(&entity(&id)).await;
    assert_eq!(r.status(), 204);
    assert_eq!(r.text().await.unwrap(), "");
    expect_error(s.get(&entity(&id)).await, 404, "ResourceNotFound").await;
    expect_error(s.delete(&entity(&id)).await, 404, "ResourceNotFound").await;
    assert!(s.all_ids().await.is_empty());
}

#[tokio::test]
async fn client_chosen_ids_duplicates_and_bad_ids() {
    let s = Server::start();
    s.create(&json!({"id": "fixed id ü", "name": "first"}))
        .await;
    let msg = expect_error(
        s.post(COLLECTION, &json!({"id": "fixed id ü", "name": "second"}))
            .await,
        409,
        "Conflict",
    )
    .await;
    assert!(msg.contains("fixed id ü"), "{msg}");
    let v: Value = s
        .get("/beta/security/cloudAppSecurityProfiles/fixed%20id%20%C3%BC")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["name"], "first", "the duplicate changed nothing");
    // Ids differing only in case are different profiles.
    s.create(&json!({"id": "FIXED ID Ü"})).await;
    for bad in [
        json!(""),
        json!("a/b"),
        json!("a?b"),
        json!("a#b"),
        json!("x".repeat(257)),
        json!(5),
    ] {
        expect_error(
            s.post(COLLECTION, &json!({"id": bad})).await,
            400,
            "BadRequest",
        )
        .await;
    }
    // A null id means "generate one".
    let v = s.create(&json!({"id": null})).await;
    let first = v["id"].as_str().unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&first).is_ok());
    assert_eq!(s.all_ids().await.len(), 3);
    // Generated ids are lowercase UUIDv7 text: a later create sorts after an earlier one
    // (the millisecond timestamp leads), which keeps index inserts at the end of the B-trees.
    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    let later = s.create(&json!({})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for id in [&first, &later] {
        let u = uuid::Uuid::parse_str(id).unwrap();
        assert_eq!(u.get_version_num(), 7, "{id}");
        assert_eq!(*id, u.hyphenated().to_string(), "lowercase, hyphenated");
    }
    assert!(first < later, "{first} sorts before {later}");
}

/// CONTRACT §3 "Changed": a key value in a PATCH body is ignored like the other read-only
/// values, so the entity in the URL (and only it) is written.
#[tokio::test]
async fn patch_ignores_a_foreign_id_and_read_only_values() {
    let s = Server::start();
    let id = s.create(&json!({"name": "a"})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let other = s.create(&json!({"name": "other"})).await;
    let other_id = other["id"].as_str().unwrap().to_string();
    let before: Value = s.get(&entity(&id)).await.json().await.unwrap();
    let r = s
        .patch(
            &entity(&id),
            &json!({
                "id": other_id,
                "name": "b",
                "createdDateTime": "2001-01-01T00:00:00Z",
                "lastModifiedDateTime": "2001-01-01T00:00:00Z"
            }),
        )
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["id"], id.as_str(), "the URL names the entity");
    assert_eq!(v["name"], "b");
    assert_eq!(v["createdDateTime"], before["createdDateTime"]);
    assert_ne!(v["lastModifiedDateTime"], "2001-01-01T00:00:00Z");
    // The other entity is untouched, and no third one appeared.
    let o: Value = s.get(&entity(&other_id)).await.json().await.unwrap();
    assert_eq!(o["name"], "other");
    assert_eq!(s.all_ids().await.len(), 2);
    // GET -> modify -> PATCH: the whole body read back (context, type, key, timestamps) is
    // accepted, on the same entity and onto another one.
    let mut copy = o.clone();
    copy["name"] = json!("copied");
    let r = s.patch(&entity(&id), &copy).await;
    assert_eq!(r.status(), 200);
    let v: Value = s.get(&entity(&id)).await.json().await.unwrap();
    assert_eq!(
        (v["id"].as_str(), v["name"].as_str()),
        (Some(id.as_str()), Some("copied"))
    );
    // A key of the wrong type is still a type error, and nothing is written.
    let msg = expect_error(
        s.patch(&entity(&id), &json!({"id": 5, "name": "no"})).await,
        400,
        "BadRequest",
    )
    .await;
    assert!(msg.contains("id") && msg.contains("Edm.String"), "{msg}");
    let v: Value = s.get(&entity(&id)).await.json().await.unwrap();
    assert_eq!(v["name"], "copied");
}

#[tokio::test]
async fn server_managed_timestamps_are_type_checked_then_overridden() {
    let s = Server::start();
    let v = s
        .create(&json!({"createdDateTime": "2001-01-01T00:00:00Z", "lastModifiedDateTime": "2001-01-01T00:00:00+03:00"}))
        .await;
    assert!(
        v["createdDateTime"].as_str().unwrap().starts_with("20")
            && !v["createdDateTime"].as_str().unwrap().starts_with("2001")
    );
    assert_eq!(v["createdDateTime"], v["lastModifiedDateTime"]);
    let msg = expect_error(
        s.post(COLLECTION, &json!({"createdDateTime": "yesterday"}))
            .await,
        400,
        "BadRequest",
    )
    .await;
    assert!(
        msg.contains("createdDateTime") && msg.contains("Edm.DateTimeOffset"),
        "{msg}"
    );
    expect_error(
        s.post(
            COLLECTION,
            &json!({"lastModifiedDateTime": "2020-01-01T00:00:00"}),
        )
        .await,
        400,
        "BadRequest",
    )
    .await;
    expect_error(
        s.post(COLLECTION, &json!({"createdDateTime": 5})).await,
        400,
        "BadRequest",
    )
    .await;
    // Non-ASCII where the offset is sliced out: a 400, never a panic (body and $filter literal).
    let bad = "2021-05-06T07:08:09€abcd";
    expect_error(
        s.post(COLLECTION, &json!({"createdDateTime": bad})).await,
        400,
        "BadRequest",
    )
    .await;
    let filter = format!("createdDateTime gt {bad}");
    let r = s
        .client
        .get(s.url(COLLECTION))
        .query(&[("$filter", filter.as_str())])
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "BadRequest").await;
    let id = v["id"].as_str().unwrap();
    let p: Value = s
        .patch(
            &entity(id),
            &json!({"createdDateTime": "2001-01-01T00:00:00Z"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(p["createdDateTime"], v["createdDateTime"]);
}

#[tokio::test]
async fn timestamps_are_utc_with_at_most_seven_fraction_digits() {
    let s = Server::start();
    let v = s.create(&json!({})).await;
    let t = v["createdDateTime"].as_str().unwrap();
    assert!(t.ends_with('Z'));
    let frac = t
        .split('.')
        .nth(1)
        .map_or(0, |f| f.trim_end_matches('Z').len());
    assert!(frac <= 7 && !t.contains(".Z"), "{t}");
}

#[tokio::test]
async fn wrong_json_types_are_400_naming_property_and_type_and_store_nothing() {
    let s = Server::start();
    for (body, needles) in [
        (json!({"name": 5}), vec!["name", "Edm.String"]),
        (json!({"riskScore": 7}), vec!["riskScore", "Edm.String"]),
        (
            json!({"isSigned": "Boolean"}),
            vec!["isSigned", "Edm.Boolean"],
        ),
        (
            json!({"tags": {"a": "b"}}),
            vec!["tags", "Collection(Edm.String)"],
        ),
        (json!({"tags": ["ok", 3]}), vec!["tags", "Edm.String"]),
        (
            json!({"vendorInformation": ["x"]}),
            vec!["vendorInformation", "securityVendorInformation"],
        ),
        (
            json!({"vendorInformation": {"provider": 1}}),
            vec!["provider", "Edm.String"],
        ),
        (json!({"vendorInformation": {"nope": "x"}}), vec!["nope"]),
        (
            json!({"permissionsRequired": "root"}),
            vec!["permissionsRequired", "administrator"],
        ),
        (
            json!({"permissionsRequired": "unknownFutureValue"}),
            vec!["permissionsRequired"],
        ),
        (
            json!({"permissionsRequired": 4}),
            vec!["permissionsRequired"],
        ),
        (
            json!({"@odata.type": "#microsoft.graph.alert"}),
            vec!["@odata.type"],
        ),
        (
            json!({"vendorInformation": {"@odata.type": "microsoft.graph.x"}}),
            vec!["@odata.type"],
        ),
        (
            json!({"@odata.id": "https://graph.microsoft.com/beta/security/cloudAppSecurityProfiles/x"}),
            vec!["contained"],
        ),
        (json!(["not", "an", "object"]), vec!["JSON object"]),
        (json!("text"), vec!["JSON object"]),
        (json!({"name": "nul\u{0}byte"}), vec!["name", "U+0000"]),
        (json!({"custom\u{0}key": 1}), vec!["U+0000"]),
    ] {
        let msg = expect_error(s.post(COLLECTION, &body).await, 400, "BadRequest").await;
        for n in needles {
            assert!(msg.contains(n), "{body}: {msg} should mention {n}");
        }
    }
    assert!(s.all_ids().await.is_empty(), "nothing stored");
}

#[tokio::test]
async fn enum_numeric_strings_normalise_and_sentinel_in_patch_is_ignored() {
    let s = Server::start();
    let v = s.create(&json!({"permissionsRequired": "5"})).await;
    assert_eq!(v["permissionsRequired"], "system");
    let id = v["id"].as_str().unwrap();
    let p: Value = s
        .patch(
            &entity(id),
            &json!({"permissionsRequired": "unknownFutureValue", "name": "n"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(p["permissionsRequired"], "system");
    assert_eq!(p["name"], "n");
    let p: Value = s
        .patch(&entity(id), &json!({"permissionsRequired": null}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(p["permissionsRequired"], Value::Null);
}

#[tokio::test]
async fn control_information_is_ignored_and_accepted_type_forms() {
    let s = Server::start();
    for t in [
        "#microsoft.graph.cloudAppSecurityProfile",
        "microsoft.graph.cloudAppSecurityProfile",
    ] {
        let v = s
            .create(&json!({
                "@odata.context": "https://graph.microsoft.com/beta/$metadata#x", "@odata.type": t,
                "@odata.etag": "W/\"1\"", "@odata.editLink": "x", "name@odata.type": "#String",
                "@custom.annotation": 5, "name": "ok",
                "vendorInformation": {"@odata.type": "#microsoft.graph.securityVendorInformation", "vendor": "v"}
            }))
            .await;
        assert_eq!(v["name"], "ok");
        assert!(v.get("@custom.annotation").is_none() && v.get("name@odata.type").is_none());
        assert_eq!(v["@odata.type"], "#microsoft.graph.cloudAppSecurityProfile");
    }
    // The SDK idiom: GET, change, PATCH the whole object back.
    let id = s.all_ids().await.remove(0);
    let mut whole: Value = s.get(&entity(&id)).await.json().await.unwrap();
    whole["name"] = json!("round-tripped");
    let r = s.patch(&entity(&id), &whole).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["name"], "round-tripped");
    assert_eq!(v["createdDateTime"], whole["createdDateTime"]);
}

#[tokio::test]
async fn open_type_dynamic_properties_come_back_after_declared_ones() {
    let s = Server::start();
    let v = s
        .create(&json!({"zeta": {"deep": [1, "two", null]}, "name": "n", "alpha": 1.5, "nothing": null}))
        .await;
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    let n = keys.len();
    assert_eq!(keys[n - 3..], ["zeta", "alpha", "nothing"]);
    assert_eq!(keys[..3], ["@odata.context", "@odata.type", "id"]);
    assert_eq!(v["zeta"], json!({"deep": [1, "two", null]}));
    assert_eq!(v["alpha"], 1.5);
    let got: Value = s
        .get(&entity(v["id"].as_str().unwrap()))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got, v);
    expect_error(
        s.post(COLLECTION, &json!({"not valid": 1})).await,
        400,
        "BadRequest",
    )
    .await;
}

#[tokio::test]
async fn strict_mode_refuses_undeclared_properties() {
    let s = Server::start_with(&["--strict-properties"]);
    let msg = expect_error(
        s.post(COLLECTION, &json!({"nmae": "typo"})).await,
        400,
        "BadRequest",
    )
    .await;
    assert!(msg.contains("nmae"), "{msg}");
    s.create(&json!({"name": "fine"})).await;
}

#[tokio::test]
async fn query_options_on_writes_are_ignored() {
    let s = Server::start();
    let r = s
        .client
        .post(s.url(&format!("{COLLECTION}?$select=name&$bogus=1")))
        .json(&json!({"name": "q"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["name"], "q");
    assert!(v.get("platform").is_some(), "no $select applied to a write");
}
