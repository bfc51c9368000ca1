//! CONTRACT §6: strong ETags on single-entity responses, `If-Match` / `If-None-Match`.

use serde_json::{Value, json};

use crate::support::{COLLECTION, Server, expect_error};

fn etag(r: &reqwest::Response) -> String {
    let tag = r
        .headers()
        .get("etag")
        .unwrap_or_else(|| panic!("no ETag on a {} response", r.status()))
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        tag.starts_with('"') && tag.ends_with('"') && tag.len() > 2,
        "a strong tag: {tag}"
    );
    tag
}

/// A request with one precondition header (and a JSON body when given).
async fn send_if(
    s: &Server,
    method: reqwest::Method,
    path: &str,
    header: &str,
    tag: &str,
    body: Option<&Value>,
) -> reqwest::Response {
    let mut req = s.client.request(method, s.url(path)).header(header, tag);
    if let Some(b) = body {
        req = req.json(b);
    }
    req.send().await.unwrap()
}

async fn patch_if(
    s: &Server,
    path: &str,
    header: &str,
    tag: &str,
    body: &Value,
) -> reqwest::Response {
    send_if(s, reqwest::Method::PATCH, path, header, tag, Some(body)).await
}

async fn get_if_none_match(s: &Server, path: &str, tag: &str) -> reqwest::Response {
    send_if(s, reqwest::Method::GET, path, "if-none-match", tag, None).await
}

async fn delete_if_match(s: &Server, path: &str, tag: &str) -> reqwest::Response {
    send_if(s, reqwest::Method::DELETE, path, "if-match", tag, None).await
}

async fn name_of(s: &Server, path: &str) -> Value {
    let v: Value = s.get(path).await.json().await.unwrap();
    v["name"].clone()
}

#[tokio::test]
async fn if_match_guards_patch_and_delete_and_the_tag_changes_on_every_write() {
    let s = Server::start();
    let path = format!("{COLLECTION}/p1");
    let created = s.post(COLLECTION, &json!({"id": "p1", "name": "v1"})).await;
    assert_eq!(created.status(), 201);
    let t1 = etag(&created);
    let got = s.get(&path).await;
    assert_eq!(etag(&got), t1, "GET returns the tag of the create");

    // The reproduction: a weak or stale tag must never give an unconditional write.
    for stale in ["W/\"stale\"", "\"stale\"", "\"1\"", &format!("W/{t1}")] {
        let r = patch_if(&s, &path, "if-match", stale, &json!({"name": "lost"})).await;
        expect_error(r, 412, "PreconditionFailed").await;
        expect_error(
            delete_if_match(&s, &path, stale).await,
            412,
            "PreconditionFailed",
        )
        .await;
    }
    assert_eq!(
        name_of(&s, &path).await,
        "v1",
        "no refused write was applied"
    );

    let r = patch_if(&s, &path, "if-match", &t1, &json!({"name": "v2"})).await;
    assert_eq!(r.status(), 200);
    let t2 = etag(&r);
    assert_ne!(t1, t2, "a write changes the tag");
    assert_eq!(etag(&s.get(&path).await), t2);
    // The tag the first writer saw is now stale.
    let r = patch_if(&s, &path, "if-match", &t1, &json!({"name": "late"})).await;
    expect_error(r, 412, "PreconditionFailed").await;

    // `*` matches any existing entity; a list matches when one member does.
    let r = s
        .client
        .patch(s.url(&path))
        .header("if-match", "*")
        .header("prefer", "return=minimal")
        .json(&json!({"name": "v3"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let t3 = etag(&r);
    assert!(t3 != t2 && t3 != t1);
    let r = patch_if(
        &s,
        &path,
        "if-match",
        &format!("\"9\", {t3}"),
        &json!({"name": "v4"}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let t4 = etag(&r);
    assert_eq!(name_of(&s, &path).await, "v4");

    let r = delete_if_match(&s, &path, &t4).await;
    assert_eq!(r.status(), 204);
    expect_error(
        delete_if_match(&s, &path, "*").await,
        404,
        "ResourceNotFound",
    )
    .await;

    // Re-created under the same id: a fresh tag, and every old tag is stale.
    let r = s
        .post(COLLECTION, &json!({"id": "p1", "name": "again"}))
        .await;
    assert_eq!(r.status(), 201);
    let t5 = etag(&r);
    for old in [&t1, &t2, &t3, &t4] {
        assert_ne!(&t5, old, "a re-created entity never repeats a tag");
        let r = patch_if(&s, &path, "if-match", old, &json!({"name": "x"})).await;
        expect_error(r, 412, "PreconditionFailed").await;
    }
    assert_eq!(name_of(&s, &path).await, "again");
}

#[tokio::test]
async fn if_none_match_gives_304_on_get_and_412_on_patch_of_an_existing_entity() {
    let s = Server::start();
    let path = format!("{COLLECTION}/p2");
    let t1 = etag(&s.post(COLLECTION, &json!({"id": "p2", "name": "a"})).await);

    for tag in [
        t1.clone(),
        format!("W/{t1}"),
        "*".into(),
        format!("\"5\", {t1}"),
    ] {
        let r = get_if_none_match(&s, &path, &tag).await;
        assert_eq!(r.status(), 304, "{tag}");
        assert_eq!(etag(&r), t1);
        assert!(r.bytes().await.unwrap().is_empty());
    }
    let r = get_if_none_match(&s, &path, "\"5\"").await;
    assert_eq!(r.status(), 200);
    assert_eq!(etag(&r), t1);
    let v: Value = r.json().await.unwrap();
    assert!(
        v.get("@odata.etag").is_none(),
        "bodies keep the seed pages' shape: {v}"
    );

    let r = patch_if(&s, &path, "if-none-match", "*", &json!({"name": "b"})).await;
    expect_error(r, 412, "PreconditionFailed").await;
    assert_eq!(name_of(&s, &path).await, "a");
    let r = patch_if(&s, &path, "if-none-match", "\"5\"", &json!({"name": "b"})).await;
    assert_eq!(r.status(), 200);
    let t2 = etag(&r);
    let r = get_if_none_match(&s, &path, &t1).await;
    assert_eq!(r.status(), 200, "the old tag no longer matches");
    assert_eq!(etag(&r), t2);
    // A GET with If-Match that fails is 412, as RFC 9110 says.
    let r = send_if(&s, reqwest::Method::GET, &path, "if-match", &t1, None).await;
    expect_error(r, 412, "PreconditionFailed").await;
}
