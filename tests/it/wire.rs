//! CONTRACT §5 (errors) and §6 (headers) over HTTP, including raw malformed requests.

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{COLLECTION, Server, expect_error};

#[tokio::test]
async fn success_headers() {
    let s = Server::start();
    let r = s.post(COLLECTION, &json!({"name": "h"})).await;
    let h = r.headers().clone();
    assert_eq!(
        h["content-type"],
        "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"
    );
    assert_eq!(h["odata-version"], "4.0");
    let rid = h["request-id"].to_str().unwrap();
    assert!(
        uuid::Uuid::parse_str(rid).is_ok(),
        "request-id is a GUID: {rid}"
    );
    assert_eq!(
        h["client-request-id"], rid,
        "client-request-id defaults to request-id"
    );
    assert!(h.get("date").is_some());
    assert!(h.get("location").is_some());
    // Every request gets its own id.
    let r2 = s.get(COLLECTION).await;
    assert_ne!(r2.headers()["request-id"], rid);
}

#[tokio::test]
async fn client_request_id_is_echoed_on_success_and_error() {
    let s = Server::start();
    let r = s
        .client
        .get(s.url(COLLECTION))
        .header("client-request-id", "my-correlation-42")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["client-request-id"], "my-correlation-42");
    let r = s
        .client
        .get(s.url(&format!("{COLLECTION}/missing")))
        .header("client-request-id", "corr-7")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["client-request-id"], "corr-7");
    let rid = r.headers()["request-id"].to_str().unwrap().to_string();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["innerError"]["client-request-id"], "corr-7");
    assert_eq!(v["error"]["innerError"]["request-id"], rid);
}

#[tokio::test]
async fn unknown_segments_are_400_naming_the_segment() {
    let s = Server::start();
    for (path, seg) in [
        ("/beta/users", "users"),
        ("/beta/security/alertz", "alertz"),
        ("/security/cloudAppSecurityProfiles/a/b", "b"),
        ("/", ""),
    ] {
        let msg = expect_error(s.get(path).await, 400, "BadRequest").await;
        assert!(msg.contains(&format!("segment '{seg}'")), "{path}: {msg}");
    }
}

#[tokio::test]
async fn wrong_methods_are_405_with_allow() {
    let s = Server::start();
    let id = s.create(&json!({})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    for (method, path, allow) in [
        (
            reqwest::Method::PUT,
            format!("{COLLECTION}/{id}"),
            "GET, PATCH, DELETE",
        ),
        (
            reqwest::Method::POST,
            format!("{COLLECTION}/{id}"),
            "GET, PATCH, DELETE",
        ),
        (reqwest::Method::DELETE, COLLECTION.to_string(), "GET, POST"),
        (reqwest::Method::PATCH, COLLECTION.to_string(), "GET, POST"),
        (reqwest::Method::POST, format!("{COLLECTION}/$count"), "GET"),
        (reqwest::Method::GET, format!("{COLLECTION}/$ref"), "POST"),
    ] {
        let r = s
            .client
            .request(method.clone(), s.url(&path))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["allow"], allow, "{method} {path}");
        expect_error(r, 405, "MethodNotAllowed").await;
    }
    // Nothing was changed by the refused calls.
    assert_eq!(s.all_ids().await, vec![id]);
}

#[tokio::test]
async fn non_json_bodies_are_415() {
    let s = Server::start();
    let id = s.create(&json!({})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    for ct in [
        Some("text/plain"),
        Some("application/xml"),
        Some("application/jsonx"),
        None,
    ] {
        let mut b = s.client.post(s.url(COLLECTION)).body(r#"{"name":"x"}"#);
        if let Some(ct) = ct {
            b = b.header("content-type", ct);
        }
        expect_error(b.send().await.unwrap(), 415, "UnsupportedMediaType").await;
        let b = s
            .client
            .patch(s.url(&format!("{COLLECTION}/{id}")))
            .body(r#"{"name":"x"}"#);
        let b = match ct {
            Some(ct) => b.header("content-type", ct),
            None => b,
        };
        expect_error(b.send().await.unwrap(), 415, "UnsupportedMediaType").await;
    }
    // Parameters and case do not matter.
    let r = s
        .client
        .post(s.url(COLLECTION))
        .header(
            "content-type",
            "Application/JSON; charset=utf-8; odata.metadata=minimal",
        )
        .body(r#"{"name":"ok"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(s.all_ids().await.len(), 2);
}

#[tokio::test]
async fn malformed_and_empty_json_are_400() {
    let s = Server::start();
    for body in [
        "{",
        "{\"name\": }",
        "",
        "   ",
        "nul",
        "{\"a\":1}{",
        "\u{feff}",
        "\u{feff}\u{feff}{}",
    ] {
        let r = s
            .client
            .post(s.url(COLLECTION))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        expect_error(r, 400, "BadRequest").await;
    }
    assert!(s.all_ids().await.is_empty());
}

#[tokio::test]
async fn bodies_over_the_limit_are_413_with_or_without_content_length() {
    let s = Server::start_with(&["--max-body-bytes", "1024"]);
    let big = json!({"name": "x".repeat(2000)});
    expect_error(s.post(COLLECTION, &big).await, 413, "RequestEntityTooLarge").await;
    // Chunked (no Content-Length): the limit still holds while streaming.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = vec![
        Ok(br#"{"name":""#.to_vec()),
        Ok(vec![b'y'; 3000]),
        Ok(br#""}"#.to_vec()),
    ];
    let stream = futures_stream(chunks);
    let r = s
        .client
        .post(s.url(COLLECTION))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    expect_error(r, 413, "RequestEntityTooLarge").await;
    s.create(&json!({"name": "small"})).await;
    assert_eq!(s.all_ids().await.len(), 1);
}

fn futures_stream(
    chunks: Vec<Result<Vec<u8>, std::io::Error>>,
) -> impl futures_core::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send + Sync + 'static {
    struct Iter(std::vec::IntoIter<Result<Vec<u8>, std::io::Error>>);
    impl futures_core::Stream for Iter {
        type Item = Result<Vec<u8>, std::io::Error>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            std::task::Poll::Ready(self.0.next())
        }
    }
    Iter(chunks.into_iter())
}

#[tokio::test]
async fn unsupported_query_options_on_get_are_named() {
    let s = Server::start();
    let msg = expect_error(
        s.get(&format!("{COLLECTION}?$bogus=1")).await,
        400,
        "BadRequest",
    )
    .await;
    assert!(msg.contains("$bogus"), "{msg}");
}

/// Raw bytes on a socket: nothing a client sends may produce a 500 or kill the server.
#[tokio::test]
async fn garbage_requests_never_500_and_the_server_survives() {
    let s = Server::start();
    let addr = s.base.trim_start_matches("http://").to_string();
    let samples: Vec<Vec<u8>> = vec![
        b"GET /security/cloudAppSecurityProfiles/%ZZ HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        b"GET /security/cloudAppSecurityProfiles('unterminated HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        b"POST /security/cloudAppSecurityProfiles HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\n\xff\xfe\x00\x01\x02".to_vec(),
        b"PATCH /security/cloudAppSecurityProfiles/%F0%9F%98%80 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}".to_vec(),
        b"GET /security/cloudAppSecurityProfiles?$filter=%FF HTTP/1.1\r\nHost: \xff\r\n\r\n".to_vec(),
        b"BREW /security HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        b"GET /beta/security/cloudAppSecurityProfiles/$count/$count HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
    ];
    let auth = format!("Authorization: Bearer {}\r\n", s.token);
    for raw in samples {
        // Authenticated, so the garbage reaches routing and the handlers.
        let raw = String::from_utf8_lossy(&raw)
            .replacen("\r\n", &format!("\r\n{auth}"), 1)
            .into_bytes();
        let mut sock = tokio::net::TcpStream::connect(&addr).await.unwrap();
        sock.write_all(&raw).await.unwrap();
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            sock.read_to_end(&mut buf),
        )
        .await;
        let text = String::from_utf8_lossy(&buf);
        let status: u16 = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        assert!(
            (400..500).contains(&status) || status == 200 || status == 404,
            "{:?} -> {text}",
            String::from_utf8_lossy(&raw)
        );
    }
    // Random JSON-ish bodies: only 201 or 400.
    let mut seed: u64 = 0x9e3779b97f4a7c15;
    let alphabet = br#"{}[]":,0123456789.-+eEtrufalsn\ abcxyz@/#"#;
    for _ in 0..300 {
        let len = (seed % 40) as usize;
        let mut body = Vec::with_capacity(len);
        for _ in 0..len {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            body.push(alphabet[(seed % alphabet.len() as u64) as usize]);
        }
        let r = s
            .client
            .post(s.url(COLLECTION))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let st = r.status().as_u16();
        assert!(
            st == 201 || st == 400,
            "{:?} -> {st}",
            String::from_utf8_lossy(&body)
        );
    }
    assert_eq!(s.get(COLLECTION).await.status(), 200, "still serving");
}
