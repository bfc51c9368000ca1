//! Issue 8, wire fidelity, over real HTTP: compressed request bodies (gzip/deflate/br, bombs,
//! unknown and undecodable codings), BOM and charset spellings, OData's case rules, CORS,
//! response compression, HTTP/2 (h2 over TLS, h2c) and 414/431 in the Graph envelope.

use std::io::{Read, Write};

use serde_json::{Value, json};

use crate::support::{COLLECTION, Server, expect_error, tls_trusting};

pub(crate) fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// HTTP's `deflate` is the zlib format (RFC 9110 §8.4.1.2).
fn deflate(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn brotli(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
        w.write_all(data).unwrap();
    }
    out
}

/// A request-body encoder for one content coding.
type Encoder = fn(&[u8]) -> Vec<u8>;

/// Sends `body` as-is with `Content-Encoding: coding` (and a JSON content type).
async fn send_encoded(
    s: &Server,
    method: reqwest::Method,
    path: &str,
    coding: &str,
    body: Vec<u8>,
) -> reqwest::Response {
    s.client
        .request(method, s.url(path))
        .header("content-type", "application/json")
        .header("content-encoding", coding)
        .body(body)
        .send()
        .await
        .unwrap()
}

/// A client that neither asks for nor decodes compressed responses, to see them as sent.
fn raw_client(s: &Server) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        "authorization",
        format!("Bearer {}", s.token).parse().unwrap(),
    );
    reqwest::Client::builder()
        .no_gzip()
        .no_brotli()
        .default_headers(headers)
        .build()
        .unwrap()
}

#[tokio::test]
async fn gzip_deflate_and_br_request_bodies_are_decoded_on_post_and_patch() {
    let s = Server::start();
    let encoders: [(&str, Encoder); 5] = [
        ("gzip", gzip),
        ("deflate", deflate),
        ("br", brotli),
        // Content codings are case-insensitive (RFC 9110 §8.4.1).
        ("GZip", gzip),
        ("identity", |b| b.to_vec()),
    ];
    for (coding, encode) in encoders {
        let body = json!({"name": coding, "tags": ["a", "b"]}).to_string();
        let r = send_encoded(
            &s,
            reqwest::Method::POST,
            COLLECTION,
            coding,
            encode(body.as_bytes()),
        )
        .await;
        assert_eq!(r.status(), 201, "{coding}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["name"], coding);
        assert_eq!(v["tags"], json!(["a", "b"]));
        let id = v["id"].as_str().unwrap();
        let entity = format!("{COLLECTION}/{id}");
        let patch = json!({"riskScore": format!("{coding}-patched")}).to_string();
        let r = send_encoded(
            &s,
            reqwest::Method::PATCH,
            &entity,
            coding,
            encode(patch.as_bytes()),
        )
        .await;
        assert_eq!(r.status(), 200, "{coding}");
        let v: Value = s.get(&entity).await.json().await.unwrap();
        assert_eq!(v["riskScore"], format!("{coding}-patched"));
    }
    assert_eq!(s.all_ids().await.len(), 5);
}

/// A zip bomb is bounded by `--max-body-bytes` of *decoded* data: 413, and the server lives.
#[tokio::test]
async fn compressed_bombs_are_413_after_the_decoded_limit() {
    let s = Server::start_with(&["--max-body-bytes", "65536"]);
    // 16 MiB of JSON-ish text that compresses to a few KiB.
    let mut bomb = br#"{"name":""#.to_vec();
    bomb.resize(16 * 1024 * 1024, b'a');
    bomb.extend_from_slice(br#""}"#);
    for (coding, packed) in [("gzip", gzip(&bomb)), ("br", brotli(&bomb))] {
        assert!(packed.len() < 65536, "the bomb is small on the wire");
        let r = send_encoded(&s, reqwest::Method::POST, COLLECTION, coding, packed).await;
        expect_error(r, 413, "RequestEntityTooLarge").await;
    }
    // Just under the limit decoded, far over it compressed-ratio-wise: accepted.
    // (`manifest`: not indexed, so no 1,024-byte rule applies.)
    let fits = json!({"manifest": "z".repeat(60_000)}).to_string();
    let r = send_encoded(
        &s,
        reqwest::Method::POST,
        COLLECTION,
        "gzip",
        gzip(fits.as_bytes()),
    )
    .await;
    assert_eq!(r.status(), 201);
    assert_eq!(s.all_ids().await.len(), 1);
}

#[tokio::test]
async fn unknown_codings_are_415_naming_the_supported_ones_and_bad_data_is_400() {
    let s = Server::start();
    let body = br#"{"name":"x"}"#.to_vec();
    for coding in ["zstd", "compress", "x-custom", "gzip, br"] {
        let r = send_encoded(&s, reqwest::Method::POST, COLLECTION, coding, body.clone()).await;
        let accept = r.headers()["accept-encoding"].to_str().unwrap().to_string();
        for c in ["gzip", "deflate", "br"] {
            assert!(accept.contains(c), "{coding}: Accept-Encoding {accept}");
        }
        let msg = expect_error(r, 415, "UnsupportedMediaType").await;
        assert!(msg.contains("Content-Encoding"), "{msg}");
    }
    // Declared gzip, but not gzip (and truncated gzip): 400, not 500.
    let mut truncated = gzip(&body);
    truncated.truncate(truncated.len() / 2);
    for bad in [body.clone(), truncated, b"\x1f\x8b\x08garbage".to_vec()] {
        let r = send_encoded(&s, reqwest::Method::POST, COLLECTION, "gzip", bad).await;
        expect_error(r, 400, "BadRequest").await;
    }
    let r = send_encoded(&s, reqwest::Method::POST, COLLECTION, "br", body.clone()).await;
    expect_error(r, 400, "BadRequest").await;
    assert!(s.all_ids().await.is_empty(), "no partial write");
}

#[tokio::test]
async fn json_with_a_bom_and_any_spelling_of_utf8() {
    let s = Server::start();
    for ct in [
        "application/json",
        "application/json; charset=utf-8",
        "application/json;charset=UTF-8",
        "application/json; charset=utf8",
        "application/json; charset=\"utf-8\"",
        "APPLICATION/JSON; odata.metadata=minimal; CHARSET=Utf-8",
    ] {
        for bom in [false, true] {
            let mut body = if bom {
                b"\xEF\xBB\xBF".to_vec()
            } else {
                Vec::new()
            };
            body.extend_from_slice(b"{\"name\":\"caf\\u00e9 \xC3\xA9\"}");
            let r = s
                .client
                .post(s.url(COLLECTION))
                .header("content-type", ct)
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201, "{ct} bom={bom}");
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["name"], "café é");
        }
    }
    // Other charsets are not JSON on the wire (RFC 8259 §8.1).
    for ct in [
        "application/json; charset=iso-8859-1",
        "application/json; charset=utf-16",
    ] {
        let r = s
            .client
            .post(s.url(COLLECTION))
            .header("content-type", ct)
            .body(r#"{"name":"x"}"#)
            .send()
            .await
            .unwrap();
        expect_error(r, 415, "UnsupportedMediaType").await;
    }
    // A BOM inside a gzip body is a BOM too.
    let r = send_encoded(
        &s,
        reqwest::Method::POST,
        COLLECTION,
        "gzip",
        gzip(b"\xEF\xBB\xBF{\"name\":\"gz\"}"),
    )
    .await;
    assert_eq!(r.status(), 201);
    assert_eq!(s.all_ids().await.len(), 13);
}

/// CONTRACT §4 "Case" across properties, members, functions, keywords and enum members.
#[tokio::test]
async fn odata_case_rules_over_http() {
    let s = Server::start();
    for (name, perm, provider) in [
        ("a", "user", "P1"),
        ("b", "administrator", "P2"),
        ("c", "guest", "P1"),
    ] {
        s.create(&json!({
            "name": name, "permissionsRequired": perm, "isSigned": name == "b",
            "vendorInformation": {"provider": provider}, "Custom": name, "tags": [name]
        }))
        .await;
    }
    let names = |v: &Value| -> Vec<String> {
        v["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["name"].as_str().unwrap_or("?").to_string())
            .collect()
    };
    let list = |params: Vec<(&'static str, &'static str)>| {
        let s = &s;
        async move {
            let r = s.get_with(COLLECTION, &params).await;
            let status = r.status();
            let v: Value = r.json().await.unwrap();
            assert_eq!(status, 200, "{params:?}: {v}");
            v
        }
    };
    for (filter, want) in [
        ("Name eq 'b'", vec!["b"]),
        ("NAME EQ 'b'", vec!["b"]),
        ("name Eq 'b' OR Name eq 'c'", vec!["b", "c"]),
        ("NOT (name ne 'a')", vec!["a"]),
        ("IsSigned eq TRUE", vec!["b"]),
        ("isSigned EQ False AND name NE NULL", vec!["a", "c"]),
        (
            "StartsWith(NAME, 'a') or CONTAINS(name,'c')",
            vec!["a", "c"],
        ),
        ("ToUpper(name) eq 'B'", vec!["b"]),
        ("PermissionsRequired eq 'ADMINISTRATOR'", vec!["b"]),
        ("permissionsRequired IN ('User', 'Guest')", vec!["a", "c"]),
        (
            "permissionsRequired eq MICROSOFT.GRAPH.applicationPermissionsRequired'Guest'",
            vec!["c"],
        ),
        ("VendorInformation/PROVIDER eq 'P1'", vec!["a", "c"]),
        ("Tags/ANY(t: t eq 'a')", vec!["a"]),
        // Undeclared in any case: the dynamic property spelled exactly so (values stay
        // case-sensitive).
        ("Custom eq 'c'", vec!["c"]),
        ("custom eq 'c'", vec![]),
        ("name eq 'B'", vec![]),
    ] {
        let v = list(vec![("$filter", filter), ("$orderby", "name")]).await;
        assert_eq!(names(&v), want, "{filter}");
    }
    let v = list(vec![("$orderby", "Name DESC")]).await;
    assert_eq!(names(&v), ["c", "b", "a"]);
    let v = list(vec![(
        "$OrderBy",
        "VendorInformation/Provider Desc,NAME asc",
    )])
    .await;
    assert_eq!(names(&v), ["b", "a", "c"]);
    let v = list(vec![
        ("$select", "Name,RISKSCORE,Custom"),
        ("$orderby", "name"),
    ])
    .await;
    assert_eq!(names(&v), ["a", "b", "c"], "$select=Name keeps the field");
    assert!(
        v["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("(name,riskScore,Custom)"),
        "{}",
        v["@odata.context"]
    );
    let first = v["value"][0].as_object().unwrap();
    for k in ["id", "name", "riskScore", "Custom"] {
        assert!(first.contains_key(k), "{k} in {first:?}");
    }
    assert!(!first.contains_key("tags"), "{first:?}");
    // Errors still name what was wrong.
    for (params, needle) in [
        (vec![("$filter", "StartWith(name, 'a')")], "StartWith"),
        (vec![("$filter", "IsSigned eq 'yes'")], "isSigned"),
        (vec![("$filter", "permissionsRequired eq 'Admin'")], "Admin"),
        (vec![("$orderby", "Nmae")], "Nmae"),
        (vec![("$orderby", "name DOWN")], "'asc' or 'desc'"),
        (vec![("$filter", "VendorInformation/Prov eq 'x'")], "Prov"),
    ] {
        let msg = expect_error(s.get_with(COLLECTION, &params).await, 400, "BadRequest").await;
        assert!(
            msg.to_lowercase().contains(&needle.to_lowercase()),
            "{params:?}: {msg}"
        );
    }
}

/// A body property spelled like a declared one but for case would be stored as a dynamic
/// property that no query could reach (`$select=Name` means the declared `name`): refused with
/// 400 on POST and PATCH, nothing written.
#[tokio::test]
async fn body_names_differing_from_declared_ones_only_in_case_are_refused() {
    let s = Server::start();
    let created = s.create(&json!({"name": "n", "Custom": 1})).await;
    let id = created["id"].as_str().unwrap().to_string();
    for body in [
        json!({"Name": "x"}),
        json!({"RISKSCORE": "7"}),
        json!({"name": "ok", "PermissionsRequired": "administrator"}),
    ] {
        let msg = expect_error(s.post(COLLECTION, &body).await, 400, "BadRequest").await;
        assert!(msg.contains("differs only in case"), "{body}: {msg}");
    }
    let one = format!("{COLLECTION}/{id}");
    for body in [
        json!({"ID": "other"}),
        json!({"name": "p", "CreatedDateTime": "x"}),
    ] {
        let msg = expect_error(s.patch(&one, &body).await, 400, "BadRequest").await;
        assert!(msg.contains("differs only in case"), "{body}: {msg}");
    }
    assert_eq!(s.all_ids().await, vec![id.clone()], "nothing created");
    let now: Value = s.get(&one).await.json().await.unwrap();
    assert_eq!(now, created, "nothing changed");
    // Dynamic names that differ from each other only in case stay distinct and reachable.
    let v = s.create(&json!({"foo": 1, "Foo": 2})).await;
    let r: Value = s
        .get_with(
            COLLECTION,
            &[("$filter", "Foo eq 2"), ("$select", "foo,Foo")],
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["value"][0]["id"], v["id"], "{r}");
    assert_eq!(
        (&r["value"][0]["foo"], &r["value"][0]["Foo"]),
        (&json!(1), &json!(2))
    );
}

#[tokio::test]
async fn cors_preflight_needs_no_token_and_responses_expose_graph_headers() {
    let s = Server::start_with(&[
        "--cors-origin",
        "https://app.example, http://localhost:3000",
    ]);
    let anon = s.anonymous();
    let preflight = |origin: &'static str| {
        anon.request(reqwest::Method::OPTIONS, s.url(COLLECTION))
            .header("origin", origin)
            .header("access-control-request-method", "PATCH")
            .header(
                "access-control-request-headers",
                "authorization, content-type, client-request-id, prefer",
            )
            .send()
    };
    let r = preflight("https://app.example").await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let h = r.headers();
    assert_eq!(h["access-control-allow-origin"], "https://app.example");
    assert!(
        h["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("PATCH")
    );
    let allowed = h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    for want in ["authorization", "client-request-id", "prefer"] {
        assert!(allowed.contains(want), "{allowed}");
    }
    assert!(
        h.get("request-id").is_some(),
        "preflights carry a request-id"
    );
    // Another allowed origin; and one that is not: no grant.
    let r = preflight("http://localhost:3000").await.unwrap();
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "http://localhost:3000"
    );
    let r = preflight("https://evil.example").await.unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    // The actual request: allowed origin, exposed headers, on success and on error.
    let r = s
        .client
        .post(s.url(COLLECTION))
        .header("origin", "https://app.example")
        .json(&json!({"name": "cors"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let exposed = r.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    for want in [
        "request-id",
        "client-request-id",
        "location",
        "etag",
        "retry-after",
    ] {
        assert!(exposed.contains(want), "{exposed}");
    }
    let r = anon
        .get(s.url(COLLECTION))
        .header("origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    expect_error(r, 401, "InvalidAuthenticationToken").await;
    // `*` for development.
    let dev = Server::start_with(&["--cors-origin", "*"]);
    let r = dev
        .anonymous()
        .request(reqwest::Method::OPTIONS, dev.url(COLLECTION))
        .header("origin", "https://anything.example")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
}

#[tokio::test]
async fn without_cors_origin_there_is_no_cors_and_preflights_need_a_token() {
    let s = Server::start();
    let r = s
        .anonymous()
        .request(reqwest::Method::OPTIONS, s.url(COLLECTION))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    expect_error(r, 401, "InvalidAuthenticationToken").await;
}

#[tokio::test]
async fn responses_are_compressed_when_accepted_but_never_204_or_tiny() {
    let s = Server::start();
    for i in 0..20 {
        s.create(&json!({"name": format!("profile-{i}"), "tags": vec!["x"; 10]}))
            .await;
    }
    let raw = raw_client(&s);
    let plain: Value = s.get(COLLECTION).await.json().await.unwrap();
    for (accept, coding) in [
        ("gzip", "gzip"),
        ("br", "br"),
        ("br;q=0.5, gzip;q=1", "gzip"),
    ] {
        let r = raw
            .get(s.url(COLLECTION))
            .header("accept-encoding", accept)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-encoding"], coding, "{accept}");
        let bytes = r.bytes().await.unwrap();
        let mut text = Vec::new();
        if coding == "gzip" {
            flate2::read::GzDecoder::new(&bytes[..])
                .read_to_end(&mut text)
                .unwrap();
        } else {
            brotli::Decompressor::new(&bytes[..], 4096)
                .read_to_end(&mut text)
                .unwrap();
        }
        assert!(bytes.len() < text.len(), "smaller on the wire");
        let v: Value = serde_json::from_slice(&text).unwrap();
        assert_eq!(v, plain);
    }
    // Not asked for: identity.
    let r = raw.get(s.url(COLLECTION)).send().await.unwrap();
    assert!(r.headers().get("content-encoding").is_none());
    // Errors are compressed like any body, and still decode to the envelope.
    let r = s
        .get(&format!("{COLLECTION}/missing-{}", "x".repeat(40)))
        .await;
    expect_error(r, 404, "ResourceNotFound").await;
    // 204 and tiny bodies are not compressed.
    let id = plain["value"][0]["id"].as_str().unwrap();
    let r = raw
        .delete(s.url(&format!("{COLLECTION}/{id}")))
        .header("accept-encoding", "gzip, br")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert!(r.headers().get("content-encoding").is_none());
    let r = raw
        .get(s.url(&format!("{COLLECTION}/$count")))
        .header("accept-encoding", "gzip, br")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("content-encoding").is_none());
    assert_eq!(r.text().await.unwrap(), "19");
}

#[tokio::test]
async fn http2_prior_knowledge_on_plain_http() {
    let s = Server::start();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        "authorization",
        format!("Bearer {}", s.token).parse().unwrap(),
    );
    let h2c = reqwest::Client::builder()
        .http2_prior_knowledge()
        .default_headers(headers)
        .build()
        .unwrap();
    let r = h2c
        .post(s.url(COLLECTION))
        .json(&json!({"name": "h2c"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 201);
    assert!(r.headers().get("request-id").is_some());
    // HTTP/2 has no Host header: URLs come from `:authority` (regression: they said localhost).
    let location = r.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with(&s.base), "{location}");
    let v: Value = r.json().await.unwrap();
    assert!(
        v["@odata.context"].as_str().unwrap().starts_with(&s.base),
        "{v}"
    );
    // A gzip body over HTTP/2 (the Kiota clients' default) decodes the same way.
    let r = h2c
        .post(s.url(COLLECTION))
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(gzip(br#"{"name":"h2c-gzip"}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(
        (r.version(), r.status().as_u16()),
        (reqwest::Version::HTTP_2, 201)
    );
    let r = h2c
        .get(s.url(&format!("{COLLECTION}/nope")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    expect_error(r, 404, "ResourceNotFound").await;
    // HTTP/1.1 keeps working on the same port.
    assert_eq!(s.get(COLLECTION).await.version(), reqwest::Version::HTTP_11);
}

#[tokio::test]
async fn http2_is_negotiated_over_tls_and_http11_still_served() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_in(dir.path(), &["--tls-self-signed"]);
    let mut tls = tls_trusting(dir.path());
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        "authorization",
        format!("Bearer {}", s.token).parse().unwrap(),
    );
    let h2 = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .default_headers(headers)
        .build()
        .unwrap();
    let r = h2
        .post(s.url(COLLECTION))
        .json(&json!({"name": "h2"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2, "ALPN chose h2");
    assert_eq!(r.status(), 201);
    // A client offering only HTTP/1.1 (the harness client offers no ALPN at all).
    let r = s.get(COLLECTION).await;
    assert_eq!(r.version(), reqwest::Version::HTTP_11);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["value"][0]["name"], "h2");
}

#[tokio::test]
async fn uri_too_long_and_headers_too_large_use_the_graph_envelope() {
    let s = Server::start();
    let long = format!("{COLLECTION}?$filter=name eq '{}'", "a".repeat(40 * 1024));
    let msg = expect_error(s.get(&long).await, 414, "RequestUriTooLong").await;
    assert!(msg.contains("URI"), "{msg}");
    let r = s
        .client
        .get(s.url(COLLECTION))
        .header("x-big", "b".repeat(70 * 1024))
        .send()
        .await
        .unwrap();
    let msg = expect_error(r, 431, "RequestHeaderFieldsTooLarge").await;
    assert!(msg.contains("headers"), "{msg}");
    // Many small header fields: past hyper's own default of 100, still ours to answer.
    let mut many = s.client.get(s.url(COLLECTION));
    for i in 0..200 {
        many = many.header(format!("x-h{i}"), "v");
    }
    assert_eq!(many.send().await.unwrap().status(), 200);
    // Over the byte limit in fields under the field-count limit: the Graph envelope.
    let mut too_many = s.client.get(s.url(COLLECTION));
    for i in 0..240 {
        too_many = too_many.header(format!("x-h{i}"), "v".repeat(300));
    }
    expect_error(
        too_many.send().await.unwrap(),
        431,
        "RequestHeaderFieldsTooLarge",
    )
    .await;
    // Over 256 fields hyper answers 431 itself (its per-request slots are the cost; see
    // serve.rs): still the right status, and the connection is not left hanging.
    let mut too_many = s.client.get(s.url(COLLECTION));
    for i in 0..300 {
        too_many = too_many.header(format!("x-h{i}"), "v");
    }
    assert_eq!(too_many.send().await.unwrap().status(), 431);
    // Over HTTP/2 the same limits answer in the Graph envelope (hyper's 16 KiB header list,
    // path included, used to refuse a 20 KiB URL before any service ran, with no body).
    let h2c = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let auth = format!("Bearer {}", s.token);
    let medium = format!("{COLLECTION}?$filter=name eq '{}'", "a".repeat(20 * 1024));
    let r = h2c
        .get(s.url(&medium))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    // Reached the query engine, whose own limit on $filter length answers.
    let msg = expect_error(r, 400, "BadRequest").await;
    assert!(msg.contains("filter"), "{msg}");
    let r = h2c
        .get(s.url(&long))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap();
    expect_error(r, 414, "RequestUriTooLong").await;
    let r = h2c
        .get(s.url(COLLECTION))
        .header("authorization", &auth)
        .header("x-big", "b".repeat(70 * 1024))
        .send()
        .await
        .unwrap();
    expect_error(r, 431, "RequestHeaderFieldsTooLarge").await;
    assert_eq!(s.get(COLLECTION).await.status(), 200, "still serving");
}

#[test]
fn a_cors_origin_that_is_not_an_origin_stops_startup_with_the_reason() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_graphsec"))
        .args(["serve", "--in-memory", "--listen", "127.0.0.1:0"])
        .args(["--cors-origin", "https://ok.example,app.example"])
        .env("GRAPHSEC_LOG", "warn")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--cors-origin 'app.example' is not an origin"),
        "{stderr}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("listening on"));
}
