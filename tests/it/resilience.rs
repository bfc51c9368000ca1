//! Throttling, fault injection, protective limits and graceful shutdown (issue 12). No timing
//! asserts: counts, statuses and headers; "succeeds after Retry-After" really waits.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{COLLECTION, READ_WRITE, Server, TENANT_A, expect_error};

const FAULT_HEADER: &str = "x-graphsec-fault";

fn retry_after(r: &reqwest::Response) -> u64 {
    r.headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in whole seconds")
}

/// A client for `tenant` with the app id `app` (dev token).
fn client_of(s: &Server, tenant: &str, app: &str) -> reqwest::Client {
    let token = graphsec::auth::issue_dev_token(
        &s.data_dir,
        tenant,
        &[READ_WRITE.to_string(), crate::support::TI.to_string()],
        &[],
        3600,
        Some(app),
    )
    .expect("token");
    s.client_with(&token)
}

async fn get_status(client: &reqwest::Client, s: &Server) -> reqwest::Response {
    client.get(s.url(COLLECTION)).send().await.expect("request")
}

#[tokio::test]
async fn graph_profile_throttles_per_tenant_and_app_and_honours_retry_after() {
    let s = Server::start_with(&["--throttle", "graph"]);
    let app1 = client_of(&s, TENANT_A, "app-1");
    // Spend the bucket: at least Graph's 150 requests pass, then 429.
    let mut passed = 0;
    let throttled = loop {
        let r = get_status(&app1, &s).await;
        if r.status() == 429 {
            break r;
        }
        assert_eq!(r.status(), 200);
        passed += 1;
        assert!(passed < 1000, "never throttled");
    };
    assert!(passed >= 150, "throttled after {passed} requests");
    let wait = retry_after(&throttled);
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    assert!(throttled.headers().get(FAULT_HEADER).is_none());
    let msg = expect_error(throttled, 429, "TooManyRequests").await;
    assert!(msg.contains("Retry after"), "{msg}");
    // Graph's figures are per resource: tiIndicators (1,000 a minute) has its own bucket.
    let ti = app1
        .get(s.url("/beta/security/tiIndicators"))
        .send()
        .await
        .expect("request");
    assert_eq!(ti.status(), 200);
    // Another app of the same tenant, and the same app in another tenant: their own buckets.
    assert_eq!(
        get_status(&client_of(&s, TENANT_A, "app-2"), &s)
            .await
            .status(),
        200
    );
    assert_eq!(
        get_status(&client_of(&s, "tenant-b", "app-1"), &s)
            .await
            .status(),
        200
    );
    // Waiting what the server said is enough.
    tokio::time::sleep(Duration::from_secs(wait)).await;
    assert_eq!(get_status(&app1, &s).await.status(), 200);
}

#[tokio::test]
async fn throttle_off_and_unauthenticated_requests_are_not_counted() {
    let s = Server::start_with(&["--throttle", "2/1h"]);
    for _ in 0..5 {
        let r = s.anonymous().get(s.url(COLLECTION)).send().await.unwrap();
        assert_eq!(r.status(), 401);
    }
    assert_eq!(s.get(COLLECTION).await.status(), 200);
    assert_eq!(s.get(COLLECTION).await.status(), 200);
    let r = s.get(COLLECTION).await;
    assert!(retry_after(&r) > 60, "one cell per 30 min");
    expect_error(r, 429, "TooManyRequests").await;

    let open = Server::start_with(&["--throttle", "off"]);
    for _ in 0..300 {
        assert_eq!(open.get(COLLECTION).await.status(), 200);
    }
}

/// The statuses a fresh server with this fault profile gives `n` sequential GETs.
async fn fault_sequence(extra: &[&str], n: usize) -> Vec<u16> {
    let s = Server::start_with(extra);
    let mut out = Vec::new();
    for _ in 0..n {
        let r = s.get(COLLECTION).await;
        let status = r.status().as_u16();
        if status != 200 {
            assert_eq!(r.headers()[FAULT_HEADER], "injected");
            if status == 429 || status == 503 {
                assert_eq!(retry_after(&r), 2);
            }
        }
        out.push(status);
    }
    out
}

#[tokio::test]
async fn a_fault_seed_gives_the_same_sequence_of_statuses() {
    let args = [
        "--fault-rate",
        "0.5",
        "--fault-seed",
        "42",
        "--fault-statuses",
        "429,500,503",
        "--fault-retry-after",
        "2",
    ];
    let first = fault_sequence(&args, 60).await;
    let second = fault_sequence(&args, 60).await;
    assert_eq!(first, second);
    for status in [200, 429, 500, 503] {
        assert!(first.contains(&status), "{status} missing from {first:?}");
    }
    let mut other = args;
    other[3] = "43";
    assert_ne!(
        fault_sequence(&other, 60).await,
        first,
        "seed changes nothing"
    );
}

#[tokio::test]
async fn faults_are_confined_to_their_tenant_and_method() {
    let s = Server::start_with(&[
        "--fault-rate",
        "1",
        "--fault-tenant",
        TENANT_A,
        "--fault-statuses",
        "PATCH=502,GET=429",
    ]);
    let r = s.get(COLLECTION).await;
    assert_eq!(r.headers()[FAULT_HEADER], "injected");
    expect_error(r, 429, "TooManyRequests").await;
    let r = s
        .patch(&format!("{COLLECTION}/x"), &json!({"name": "n"}))
        .await;
    assert_eq!(r.status(), 502);
    assert_eq!(r.headers()[FAULT_HEADER], "injected");
    // POST has no entry for its method and there is no method-less one: never faulted.
    s.create(&json!({"id": "p"})).await;
    let other = client_of(&s, "tenant-b", "app");
    let r = get_status(&other, &s).await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().get(FAULT_HEADER).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_third_of_a_thousand_writes_fail_by_injection_and_none_of_them_is_stored() {
    // Only writes are faulted (per-method statuses), so the listing afterwards is clean.
    let s = Server::start_with(&[
        "--fault-rate",
        "0.3",
        "--fault-seed",
        "7",
        "--fault-statuses",
        "POST=500,POST=503",
        "--throttle",
        "off",
    ]);
    let created: Arc<Mutex<HashSet<String>>> = Arc::default();
    let injected = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for w in 0..10 {
        let (client, url) = (s.client.clone(), s.url(COLLECTION));
        let (created, injected) = (created.clone(), injected.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..100 {
                let id = format!("f{w}-{i}");
                let r = client
                    .post(&url)
                    .json(&json!({"id": id, "name": "n"}))
                    .send()
                    .await
                    .unwrap();
                match r.status().as_u16() {
                    201 => {
                        created.lock().unwrap().insert(id);
                    }
                    500 | 503 => {
                        assert_eq!(r.headers()[FAULT_HEADER], "injected");
                        injected.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    other => panic!("unexpected status {other}"),
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let injected = injected.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        (230..=370).contains(&injected),
        "{injected} of 1000 injected"
    );
    let stored: HashSet<String> = s.all_ids().await.into_iter().collect();
    assert_eq!(stored, *created.lock().unwrap());
    assert_eq!(stored.len() + injected, 1000);
}

#[tokio::test]
async fn an_oversize_url_gets_414_in_the_graph_envelope() {
    let s = Server::start_with(&["--max-url-length", "2000"]);
    let long = format!("name eq '{}'", "x".repeat(3000));
    let r = s.get_with(COLLECTION, &[("$filter", &long)]).await;
    let msg = expect_error(r, 414, "RequestUriTooLong").await;
    assert!(msg.contains("2000"), "{msg}");
    let short = s.get_with(COLLECTION, &[("$filter", "name eq 'x'")]).await;
    assert_eq!(short.status(), 200);
}

/// Reads until the server closes the connection (or sends something); false if it stays open
/// for `patience` reads of 500 ms each while `trickle` keeps writing.
async fn server_closes(
    stream: &mut tokio::net::TcpStream,
    trickle: Option<&[u8]>,
    patience: usize,
) -> bool {
    let mut buf = [0u8; 4096];
    for _ in 0..patience {
        if let Some(bytes) = trickle
            && stream.write_all(bytes).await.is_err()
        {
            return true;
        }
        match tokio::time::timeout(Duration::from_millis(500), stream.read(&mut buf)).await {
            Err(_) => continue,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            // Bytes of a response to a request still being written: not a slowloris victory
            // either way, but keep reading until the close.
            Ok(Ok(_)) => continue,
        }
    }
    false
}

#[tokio::test]
async fn a_slowloris_client_is_cut_off_and_others_are_served() {
    let s = Server::start_with(&["--header-read-timeout", "1s"]);
    let addr = s.base.trim_start_matches("http://").to_string();
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(format!("GET {COLLECTION} HTTP/1.1\r\nHost: x\r\n").as_bytes())
        .await
        .unwrap();
    // One header line every half second, forever: the server must hang up (within 60 tries).
    assert!(
        server_closes(&mut slow, Some(b"x-slow: 1\r\n"), 60).await,
        "slow client kept its connection"
    );
    assert_eq!(s.get(COLLECTION).await.status(), 200);
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_but_a_slow_request_is_not() {
    // A long header read timeout, so only the keep-alive timeout can close the connection; a
    // request that takes longer than the keep-alive timeout (injected latency) still completes.
    let s = Server::start_with(&[
        "--latency",
        "1500",
        "--keep-alive-timeout",
        "1s",
        "--header-read-timeout",
        "10m",
        "--auth",
        "none",
    ]);
    let addr = s.base.trim_start_matches("http://").to_string();
    let mut c = tokio::net::TcpStream::connect(&addr).await.unwrap();
    c.write_all(format!("GET {COLLECTION} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let n = c.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &buf[..n]);
    assert!(
        server_closes(&mut c, None, 60).await,
        "idle connection kept open"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn beyond_the_concurrency_cap_requests_get_503_with_retry_after() {
    // Injected latency keeps the first requests in flight while the others arrive.
    let s = Server::start_with(&["--max-concurrent-requests", "2", "--latency", "3000..3000"]);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (client, url) = (s.client.clone(), s.url(COLLECTION));
        tasks.push(tokio::spawn(async move {
            client.get(url).send().await.unwrap()
        }));
    }
    let (mut ok, mut busy) = (0, 0);
    for t in tasks {
        let r = t.await.unwrap();
        match r.status().as_u16() {
            200 => ok += 1,
            503 => {
                assert_eq!(retry_after(&r), 1);
                assert!(r.headers().get(FAULT_HEADER).is_none());
                expect_error(r, 503, "ServiceNotAvailable").await;
                busy += 1;
            }
            other => panic!("status {other}"),
        }
    }
    assert!(ok >= 1 && busy >= 1, "{ok} served, {busy} refused");
    assert!(ok <= 8 - busy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_during_a_write_storm_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start_in(dir.path(), &[]);
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let odd: Arc<Mutex<Vec<u16>>> = Arc::default();
    let url = s.url(COLLECTION);
    let mut writers = Vec::new();
    for w in 0..8 {
        let (client, url, acked, odd) = (s.client.clone(), url.clone(), acked.clone(), odd.clone());
        writers.push(tokio::spawn(async move {
            for i in 0.. {
                let id = format!("t{w}-{i}");
                match client.post(&url).json(&json!({"id": id})).send().await {
                    Ok(r) if r.status() == 201 => acked.lock().unwrap().push(id),
                    Ok(r) => odd.lock().unwrap().push(r.status().as_u16()),
                    // Refused or cut off by the shutdown: never acknowledged.
                    Err(_) => break,
                }
            }
        }));
    }
    while acked.lock().unwrap().len() < 200 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let status = tokio::task::spawn_blocking(move || s.terminate())
        .await
        .unwrap();
    assert!(status.success(), "exit status {status:?}");
    for w in writers {
        w.await.unwrap();
    }
    assert!(
        odd.lock().unwrap().is_empty(),
        "statuses {:?}",
        odd.lock().unwrap()
    );
    let acked = acked.lock().unwrap().clone();
    let s = Server::start_in(dir.path(), &[]);
    let present: HashSet<String> = s.all_ids().await.into_iter().collect();
    let lost: Vec<&String> = acked.iter().filter(|id| !present.contains(*id)).collect();
    assert!(lost.is_empty(), "{} acknowledged writes lost", lost.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_is_bounded_by_the_shutdown_timeout() {
    let mut s = Server::start_with(&["--latency", "600000", "--shutdown-timeout", "1s"]);
    let (client, url) = (s.client.clone(), s.url(COLLECTION));
    let stuck = tokio::spawn(async move { client.get(url).send().await });
    // Let the request reach the server (it then sleeps ten minutes).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let exited = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::task::spawn_blocking(move || s.terminate()),
    )
    .await
    .expect("graphsec did not exit within a minute of SIGTERM")
    .unwrap();
    assert!(exited.success(), "exit status {exited:?}");
    // The stuck request was never answered: no acknowledgement of anything.
    assert!(stuck.await.unwrap().is_err());
}

#[tokio::test]
async fn a_request_over_the_request_timeout_gets_408_and_a_slow_body_is_cut_off() {
    let s = Server::start_with(&["--request-timeout", "1s", "--latency", "600000"]);
    // A handler that would take ten minutes (injected latency).
    let r = s.get(COLLECTION).await;
    expect_error(r, 408, "RequestTimeout").await;
    // A body that trickles in, one byte every half second, never complete (no latency here:
    // the handler waits for the body).
    let s = Server::start_with(&["--request-timeout", "1s"]);
    let addr = s.base.trim_start_matches("http://").to_string();
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST {COLLECTION} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{",
        s.token
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    for _ in 0..60 {
        if slow.write_all(b" ").await.is_err() {
            break;
        }
        let mut buf = [0u8; 4096];
        match tokio::time::timeout(Duration::from_millis(500), slow.read(&mut buf)).await {
            Err(_) => continue,
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
        if got.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_close_the_idlest_one() {
    let s = Server::start_with(&[
        "--max-connections",
        "1",
        "--keep-alive-timeout",
        "10m",
        "--header-read-timeout",
        "10m",
        "--auth",
        "none",
    ]);
    let addr = s.base.trim_start_matches("http://").to_string();
    // The one connection slot, held by an idle client: closed to make room (issue 24: silent
    // sockets never keep a real client out).
    let mut holder = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let (client, url) = (s.client.clone(), s.url(COLLECTION));
    let waiting = tokio::spawn(async move { client.get(url).send().await.unwrap().status() });
    assert_eq!(waiting.await.unwrap(), 200);
    let mut buf = [0u8; 8];
    let read = tokio::time::timeout(Duration::from_secs(30), holder.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0))),
        "the idle holder was closed: {read:?}"
    );
}

#[tokio::test]
async fn keep_alive_off_closes_after_each_response() {
    let s = Server::start_with(&["--keep-alive-timeout", "0", "--auth", "none"]);
    let addr = s.base.trim_start_matches("http://").to_string();
    let mut c = tokio::net::TcpStream::connect(&addr).await.unwrap();
    c.write_all(format!("GET {COLLECTION} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut got = Vec::new();
    // The server answers and closes: read to the end (bounded by the harness's patience).
    let read = tokio::time::timeout(Duration::from_secs(30), c.read_to_end(&mut got)).await;
    assert!(read.is_ok(), "connection kept open");
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("connection: close"),
        "{text}"
    );
}

#[tokio::test]
async fn batch_sub_requests_are_throttled_one_by_one() {
    let s = Server::start_with(&["--throttle", "3/1h"]);
    let requests: Vec<serde_json::Value> = (0..5)
        .map(|i| json!({"id": format!("r{i}"), "method": "GET", "url": "/security/cloudAppSecurityProfiles"}))
        .collect();
    let r = s
        .client
        .post(s.url("/beta/$batch"))
        .json(&json!({ "requests": requests }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    let responses = v["responses"].as_array().expect("responses");
    let statuses: Vec<i64> = responses
        .iter()
        .map(|r| r["status"].as_i64().unwrap())
        .collect();
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 3, "{v}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 2, "{v}");
    for r in responses.iter().filter(|r| r["status"] == 429) {
        assert_eq!(r["body"]["error"]["code"], "TooManyRequests", "{r}");
        let headers = r["headers"].as_object().expect("headers");
        let retry = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("retry-after"))
            .map(|(_, v)| v.clone());
        assert!(retry.is_some(), "no Retry-After in {r}");
    }
    // The budget is spent for direct calls too.
    expect_error(s.get(COLLECTION).await, 429, "TooManyRequests").await;
}

/// A sub-second throttle period: the wait is under a second, and `Retry-After` (whole seconds,
/// RFC 9110) rounds it up to 1, never 0 (a client honouring 0 would retry at once, forever);
/// after that wait the same caller is served again.
#[tokio::test]
async fn a_sub_second_wait_says_retry_after_one_and_is_over_after_it() {
    let s = Server::start_with(&["--throttle", "2/400ms,burst=2"]);
    let c = client_of(&s, TENANT_A, "app-subsecond");
    let mut passed = 0;
    let throttled = loop {
        let r = get_status(&c, &s).await;
        if r.status() == 429 {
            break r;
        }
        assert_eq!(r.status(), 200);
        passed += 1;
        assert!(passed < 100, "never throttled");
    };
    let wait = retry_after(&throttled);
    assert_eq!(wait, 1, "a wait under a second is announced as 1 s");
    expect_error(throttled, 429, "TooManyRequests").await;
    tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
    assert_eq!(get_status(&c, &s).await.status(), 200);
}
