//! Change notifications (issue 22): `/subscriptions` on both version roots, the validation
//! handshake, delivery from the outbox through every write path (direct, `$batch`,
//! `updateAlerts`), `clientState`, retries until a failing receiver recovers, at-least-once
//! delivery across `kill -9`, expiry and renewal, duplicates, tenant isolation, lifecycle
//! notifications; two nodes on one PostgreSQL database (always PostgreSQL; see `pg.rs`); an HTTPS
//! receiver trusted through `SSL_CERT_FILE`. Receivers are tiny axum servers on 127.0.0.1:0
//! started by each test.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::{Value, json};

use crate::support::{READ_WRITE, Server, TENANT_A, expect_error, json_of};

const ADMIN: &str = "notify-admin";

/// How a receiver answers the validation handshake.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Handshake {
    Echo,
    WrongBody,
    Hang,
    Refuse,
}

#[derive(Default)]
struct Inbox {
    /// Every notification item received, in arrival order.
    items: Vec<Value>,
    /// Handshakes answered.
    handshakes: usize,
    /// Notification POSTs still to refuse with 503.
    fail: usize,
    /// Notification POSTs refused so far.
    refused: usize,
    /// How long each notification POST is held before it is recorded and answered (a slow
    /// receiver keeps a delivery, and its node's lease, in flight).
    hold: Duration,
}

struct Receiver {
    url: String,
    inbox: Arc<Mutex<Inbox>>,
}

impl Receiver {
    async fn start(mode: Handshake) -> Receiver {
        let inbox = Arc::new(Mutex::new(Inbox::default()));
        let app = axum::Router::new()
            .fallback(receive)
            .with_state((inbox.clone(), mode));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            url: format!("http://{addr}/hook?route=a"),
            inbox,
        }
    }

    /// The same receiver over HTTPS, serving the certificate chain `cert_pem` with `key_pem`.
    async fn start_tls(mode: Handshake, cert_pem: &str, key_pem: &str) -> Receiver {
        use rustls::pki_types::pem::PemObject;
        let inbox = Arc::new(Mutex::new(Inbox::default()));
        let app = axum::Router::new()
            .fallback(receive)
            .with_state((inbox.clone(), mode));
        let chain = rustls::pki_types::CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, app) = (acceptor.clone(), app.clone());
                tokio::spawn(async move {
                    // A client that does not trust the certificate ends the handshake: nothing
                    // to serve.
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper_util::service::TowerToHyperService::new(app);
                    let _ = hyper_util::server::conn::auto::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
                });
            }
        });
        Receiver {
            url: format!("https://{addr}/hook?route=a"),
            inbox,
        }
    }

    fn fail_next(&self, n: usize) {
        self.inbox.lock().unwrap().fail = n;
    }

    fn items(&self) -> Vec<Value> {
        self.inbox.lock().unwrap().items.clone()
    }

    /// Waits (bounded) until `pred` holds for the received items.
    async fn wait_for(&self, what: &str, pred: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        for _ in 0..600 {
            let items = self.items();
            if pred(&items) {
                return items;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("receiver never got {what}: {:#?}", self.items());
    }
}

async fn receive(
    State((inbox, mode)): State<(Arc<Mutex<Inbox>>, Handshake)>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let token = query.as_deref().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "validationToken")
            .map(|(_, v)| v.into_owned())
    });
    if let Some(token) = token {
        inbox.lock().unwrap().handshakes += 1;
        let plain = [(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")];
        return match mode {
            Handshake::Echo => (plain, token).into_response(),
            Handshake::WrongBody => (plain, "not the token").into_response(),
            Handshake::Hang => {
                tokio::time::sleep(Duration::from_secs(30)).await;
                (plain, token).into_response()
            }
            Handshake::Refuse => StatusCode::FORBIDDEN.into_response(),
        };
    }
    let hold = inbox.lock().unwrap().hold;
    if !hold.is_zero() {
        tokio::time::sleep(hold).await;
    }
    let mut inbox = inbox.lock().unwrap();
    if inbox.fail > 0 {
        inbox.fail -= 1;
        inbox.refused += 1;
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if let Some(items) = v["value"].as_array() {
        inbox.items.extend(items.iter().cloned());
    }
    StatusCode::ACCEPTED.into_response()
}

fn start(extra: &[&str]) -> Server {
    let mut args = vec![
        "--admin-token",
        ADMIN,
        "--notify-poll-ms",
        "50",
        "--notify-retry-base-ms",
        "50",
    ];
    args.extend_from_slice(extra);
    Server::start_with(&args)
}

fn expiry_in(minutes: i64) -> String {
    let t = (time::OffsetDateTime::now_utc() + time::Duration::minutes(minutes))
        .replace_nanosecond(0)
        .unwrap();
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

fn subscription(resource: &str, url: &str) -> Value {
    json!({
        "changeType": "created,updated",
        "notificationUrl": url,
        "resource": resource,
        "expirationDateTime": expiry_in(60),
        "clientState": "secretClientValue",
    })
}

fn alert(severity: &str) -> Value {
    json!({
        "azureTenantId": TENANT_A, "title": "a", "severity": severity, "status": "newAlert",
        "vendorInformation": {"provider": "ASC", "vendor": "Microsoft"},
    })
}

/// An alert update: Graph's alert pages require the vendor in every update.
fn with_vendor(mut v: Value) -> Value {
    v["vendorInformation"] = json!({"provider": "ASC", "vendor": "Microsoft"});
    v
}

async fn create_alert(s: &Server, root: &str, severity: &str) -> String {
    let v = json_of(
        s.post(&format!("{root}/security/alerts"), &alert(severity))
            .await,
        201,
    )
    .await;
    v["id"].as_str().unwrap().to_string()
}

/// (changeType, alert id) of each received change notification.
fn changes(items: &[Value]) -> Vec<(String, String)> {
    items
        .iter()
        .filter(|i| i["changeType"].is_string())
        .map(|i| {
            (
                i["changeType"].as_str().unwrap().to_string(),
                i["resourceData"]["id"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_crud_on_both_roots() {
    let s = start(&[]);
    let rx = Receiver::start(Handshake::Echo).await;
    for root in ["/v1.0", "/beta", ""] {
        let body = subscription(
            &format!("security/alerts?$filter=severity eq 'high' and title ne '{root}'"),
            &rx.url,
        );
        let r = s.post(&format!("{root}/subscriptions"), &body).await;
        let location = r.headers()["location"].to_str().unwrap().to_string();
        let v = json_of(r, 201).await;
        let id = v["id"].as_str().unwrap().to_string();
        assert!(
            location.ends_with(&format!("/subscriptions/{id}")),
            "{location}"
        );
        assert!(
            v["@odata.context"]
                .as_str()
                .unwrap()
                .ends_with("$metadata#subscriptions/$entity")
        );
        assert_eq!(v["changeType"], "created,updated");
        assert_eq!(v["clientState"], "secretClientValue");
        assert_eq!(v["latestSupportedTlsVersion"], "v1_2");
        assert_eq!(v["notificationUrl"], rx.url);
        let n = v.as_object().unwrap().len();
        // @odata.context, id, then v1.0's 14 properties (beta: 18).
        assert_eq!(n, if root == "/v1.0" { 16 } else { 20 }, "{v}");
        let url = format!("{root}/subscriptions/{id}");
        let got = json_of(s.get(&url).await, 200).await;
        assert_eq!(got["resource"], v["resource"]);
        // Lists never show clientState.
        let list = json_of(s.get(&format!("{root}/subscriptions")).await, 200).await;
        let mine = list["value"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["id"] == id.as_str())
            .cloned()
            .unwrap();
        assert_eq!(mine["clientState"], Value::Null);
        // Renew.
        let later = expiry_in(120);
        let p = json_of(
            s.patch(&url, &json!({"expirationDateTime": later})).await,
            200,
        )
        .await;
        assert_ne!(p["expirationDateTime"], v["expirationDateTime"]);
        let r = s
            .client
            .post(s.url(&format!("{url}/reauthorize")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
        assert_eq!(s.delete(&url).await.status(), 204);
        expect_error(s.get(&url).await, 404, "ResourceNotFound").await;
        expect_error(
            s.patch(&url, &json!({"expirationDateTime": later})).await,
            404,
            "ResourceNotFound",
        )
        .await;
    }
    assert!(rx.inbox.lock().unwrap().handshakes >= 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_are_refused_as_graph_refuses_them() {
    let s = start(&["--notify-validation-timeout-ms", "300"]);
    let rx = Receiver::start(Handshake::Echo).await;
    let s = &s;
    let post = move |b: Value| async move { s.post("/v1.0/subscriptions", &b).await };
    let m = expect_error(
        post(subscription("security/alerts", &rx.url)).await,
        400,
        "ExtensionError",
    )
    .await;
    assert!(m.contains("$filter"), "{m}");
    let m = expect_error(
        post(subscription(
            "security/alerts?$filter=status eq 'New'",
            &rx.url,
        ))
        .await,
        400,
        "BadRequest",
    )
    .await;
    assert!(m.starts_with("Invalid filter clause"), "{m}");
    for resource in [
        "security/secureScores?$filter=azureTenantId eq 'x'",
        "users",
        "me/messages",
    ] {
        expect_error(
            post(subscription(resource, &rx.url)).await,
            400,
            "InvalidRequest",
        )
        .await;
    }
    let mut b = subscription("security/alerts/x", &rx.url);
    b["changeType"] = json!("deleted");
    let m = expect_error(post(b).await, 400, "InvalidRequest").await;
    assert_eq!(m, "Invalid 'changeType' attribute: 'deleted'.");
    let mut b = subscription("security/alerts/x", &rx.url);
    b["expirationDateTime"] = json!(expiry_in(43_200 + 60));
    expect_error(post(b).await, 400, "ExtensionError").await;
    let m = expect_error(
        post(subscription(
            "security/alerts/x",
            "http://hooks.example.com/x",
        ))
        .await,
        400,
        "InvalidRequest",
    )
    .await;
    assert!(m.contains("scheme='http'"), "{m}");
    // The handshake: a wrong body, a refusal, a receiver that does not answer in time.
    for (mode, code) in [
        (Handshake::WrongBody, "ValidationError"),
        (Handshake::Refuse, "ValidationError"),
        (Handshake::Hang, "InvalidRequest"),
    ] {
        let bad = Receiver::start(mode).await;
        let m = expect_error(
            post(subscription("security/alerts/x", &bad.url)).await,
            400,
            code,
        )
        .await;
        assert!(m.contains("validation request"), "{m}");
    }
    let mut b = subscription("security/alerts/x", &rx.url);
    let bad = Receiver::start(Handshake::WrongBody).await;
    b["lifecycleNotificationUrl"] = json!(bad.url);
    expect_error(post(b).await, 400, "ValidationError").await;
    // Nothing was created by the refused requests.
    let list = json_of(s.get("/v1.0/subscriptions").await, 200).await;
    assert_eq!(list["value"].as_array().unwrap().len(), 0, "{list}");
    // A short lifetime is raised to the minimum (45 minutes).
    let mut b = subscription("security/alerts/x", &rx.url);
    b["expirationDateTime"] = json!(expiry_in(1));
    let v = json_of(post(b.clone()).await, 201).await;
    let exp = time::OffsetDateTime::parse(
        v["expirationDateTime"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert!(exp > time::OffsetDateTime::now_utc() + time::Duration::minutes(44));
    // The same resource and change types again: 409 naming the first.
    let m = expect_error(post(b).await, 409, "Conflict").await;
    assert!(m.contains(v["id"].as_str().unwrap()), "{m}");
    // Without the write permission: 403.
    let reader = s.client_with(&s.token_for(TENANT_A, &[], &[crate::support::READ]));
    let r = reader
        .post(s.url("/v1.0/subscriptions"))
        .json(&subscription("security/alerts/y", &rx.url))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "ExtensionError").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filtered_subscription_is_notified_of_matching_writes_on_every_path() {
    let s = start(&[]);
    let rx = Receiver::start(Handshake::Echo).await;
    let v = json_of(
        s.post(
            "/v1.0/subscriptions",
            &subscription(
                "security/alerts?$filter=severity eq 'high' and status ne 'dismissed'",
                &rx.url,
            ),
        )
        .await,
        201,
    )
    .await;
    let sub_id = v["id"].as_str().unwrap().to_string();
    // Direct creates on both roots: only the high one matches.
    let high = create_alert(&s, "/v1.0", "high").await;
    let low = create_alert(&s, "/beta", "low").await;
    // PATCH: matched against the alert as written.
    for (root, id, status) in [
        ("/beta", &low, "inProgress"),  // low: no
        ("/v1.0", &high, "dismissed"),  // dismissed now: no
        ("/v1.0", &high, "inProgress"), // matches again: updated
    ] {
        let r = s
            .patch(
                &format!("{root}/security/alerts/{id}"),
                &with_vendor(json!({ "status": status })),
            )
            .await;
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    }
    // $batch and updateAlerts go through the same writes.
    let batch = json!({"requests": [
        {"id": "1", "method": "POST", "url": "/security/alerts",
         "headers": {"content-type": "application/json"}, "body": alert("high")},
        {"id": "2", "method": "POST", "url": "/security/alerts",
         "headers": {"content-type": "application/json"}, "body": alert("medium")},
    ]});
    let b = json_of(s.post("/beta/$batch", &batch).await, 200).await;
    let batched: Vec<String> = b["responses"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["id"] == "1")
        .map(|r| r["body"]["id"].as_str().unwrap().to_string())
        .collect();
    let vendor = json!({"provider": "ASC", "vendor": "Microsoft"});
    let r = s
        .post(
            "/beta/security/alerts/updateAlerts",
            &json!({"value": [
                {"id": high, "comments": ["x"], "vendorInformation": vendor},
                {"id": low, "comments": ["x"], "vendorInformation": vendor},
            ]}),
        )
        .await;
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let expected = vec![
        ("created".to_string(), high.clone()),
        ("updated".to_string(), high.clone()),
        ("created".to_string(), batched[0].clone()),
        ("updated".to_string(), high.clone()),
    ];
    let items = rx.wait_for("four changes", |i| changes(i).len() >= 4).await;
    // Delivered in commit order, matching writes only.
    assert_eq!(changes(&items), expected);
    let first = &items[0];
    assert_eq!(first["subscriptionId"], sub_id.as_str());
    assert_eq!(first["clientState"], "secretClientValue");
    assert_eq!(first["tenantId"], TENANT_A);
    assert_eq!(first["resource"], format!("security/alerts/{high}"));
    assert_eq!(
        first["resourceData"]["@odata.type"],
        "#Microsoft.Graph.alert"
    );
    assert_eq!(
        first["resourceData"]["@odata.id"],
        format!("security/alerts/{high}")
    );
    assert!(first["subscriptionExpirationDateTime"].is_string());
    // The admin API shows the deliveries (recorded once the receiver's answer is in, so
    // possibly a moment after the receiver saw them: polled, bounded).
    let mut log = Value::Null;
    let mut delivered = 0;
    for _ in 0..300 {
        log = s
            .anonymous()
            .get(s.url(&format!("/_graphsec/subscriptions/{sub_id}/deliveries")))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        delivered = log["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["outcome"] == "delivered")
            .map(|d| d["notifications"].as_i64().unwrap())
            .sum::<i64>();
        if delivered >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(delivered >= 4, "{log}");
    // A subscription to one alert hears about that alert only.
    let rx1 = Receiver::start(Handshake::Echo).await;
    let mut one = subscription(&format!("/beta/security/alerts/{high}"), &rx1.url);
    one["changeType"] = json!("updated");
    one["clientState"] = Value::Null;
    json_of(s.post("/beta/subscriptions", &one).await, 201).await;
    for id in [&low, &high] {
        let r = s
            .patch(
                &format!("/beta/security/alerts/{id}"),
                &with_vendor(json!({"assignedTo": "tier2"})),
            )
            .await;
        assert!(r.status().is_success());
    }
    let items = rx1.wait_for("one change", |i| !i.is_empty()).await;
    assert_eq!(changes(&items), [("updated".to_string(), high.clone())]);
    assert!(items[0].get("clientState").is_none(), "{}", items[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_receiver_gets_retries_until_it_recovers() {
    let s = start(&[]);
    let rx = Receiver::start(Handshake::Echo).await;
    let v = json_of(
        s.post(
            "/v1.0/subscriptions",
            &subscription("security/alerts?$filter=severity eq 'high'", &rx.url),
        )
        .await,
        201,
    )
    .await;
    rx.fail_next(3);
    let a = create_alert(&s, "/v1.0", "high").await;
    let b = create_alert(&s, "/v1.0", "high").await;
    let items = rx.wait_for("both changes", |i| changes(i).len() >= 2).await;
    let got = changes(&items);
    assert_eq!(got[0], ("created".to_string(), a));
    assert!(got.contains(&("created".to_string(), b)));
    assert_eq!(rx.inbox.lock().unwrap().refused, 3);
    let metrics = s
        .anonymous()
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("graphsec_notifications_retried_total"),
        "{metrics}"
    );
    assert!(metrics.contains("graphsec_notifications_delivered_total"));
    let id = v["id"].as_str().unwrap();
    let log: Value = s
        .anonymous()
        .get(s.url(&format!("/_graphsec/subscriptions/{id}/deliveries")))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let outcomes: Vec<&str> = log["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["outcome"].as_str().unwrap())
        .collect();
    assert!(
        outcomes.iter().filter(|o| **o == "retry").count() >= 3,
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_write_is_notified_across_kill_dash_nine() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start(Handshake::Echo).await;
    let args = [
        "--notify-poll-ms",
        "50",
        "--notify-retry-base-ms",
        "50",
        "--notify-lease-secs",
        "1",
    ];
    let mut s = Server::start_in(dir.path(), &args);
    json_of(
        s.post(
            "/v1.0/subscriptions",
            &subscription("security/alerts?$filter=severity eq 'high'", &rx.url),
        )
        .await,
        201,
    )
    .await;
    // The receiver refuses at first, so notifications are still queued at the kill.
    rx.fail_next(2);
    let mut acked = Vec::new();
    for _ in 0..20 {
        acked.push(create_alert(&s, "/v1.0", "high").await);
    }
    s.kill9();
    let _s = Server::start_in(dir.path(), &args);
    let items = rx
        .wait_for("every acknowledged write", |i| {
            let got: Vec<String> = changes(i).into_iter().map(|(_, id)| id).collect();
            acked.iter().all(|a| got.contains(a))
        })
        .await;
    // In commit order (repeats allowed: at least once).
    let mut seen = Vec::new();
    for (_, id) in changes(&items) {
        if !seen.contains(&id) {
            seen.push(id);
        }
    }
    assert_eq!(seen, acked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_expire_renew_and_stay_in_their_tenant() {
    let s = start(&[
        "--subscription-min-lifetime-secs",
        "2",
        "--notify-reauthorize-before-secs",
        "3600",
    ]);
    let rx = Receiver::start(Handshake::Echo).await;
    // Expires almost at once (raised to the 2 s minimum the flag sets).
    let mut short = subscription("security/alerts?$filter=severity eq 'low'", &rx.url);
    short["expirationDateTime"] = json!(expiry_in(0));
    let v = json_of(s.post("/v1.0/subscriptions", &short).await, 201).await;
    let url = format!("/v1.0/subscriptions/{}", v["id"].as_str().unwrap());
    let mut gone = false;
    for _ in 0..200 {
        if s.get(&url).await.status() == 404 {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gone, "the subscription never expired");
    expect_error(
        s.patch(&url, &json!({"expirationDateTime": expiry_in(60)}))
            .await,
        404,
        "ResourceNotFound",
    )
    .await;
    // An expired subscription no longer blocks its duplicate, and hears nothing.
    create_alert(&s, "/v1.0", "low").await;
    // A subscription with a lifecycle URL, expiring within the challenge window, gets one
    // reauthorizationRequired; renewing it clears the challenge.
    let life = Receiver::start(Handshake::Echo).await;
    let mut b = subscription("security/alerts?$filter=severity eq 'medium'", &rx.url);
    b["lifecycleNotificationUrl"] = json!(life.url);
    let v = json_of(s.post("/beta/subscriptions", &b).await, 201).await;
    let items = life
        .wait_for("a lifecycle notification", |i| !i.is_empty())
        .await;
    assert_eq!(items[0]["lifecycleEvent"], "reauthorizationRequired");
    assert_eq!(items[0]["subscriptionId"], v["id"]);
    assert_eq!(items[0]["clientState"], "secretClientValue");
    assert!(items[0].get("resource").is_none());
    let url = format!("/beta/subscriptions/{}", v["id"].as_str().unwrap());
    json_of(
        s.patch(&url, &json!({"expirationDateTime": expiry_in(90)}))
            .await,
        200,
    )
    .await;
    // Another tenant sees nothing of it and cannot touch it.
    let other = s.client_with(&s.token_for("tenant-b", &[], &[READ_WRITE]));
    let list: Value = other
        .get(s.url("/beta/subscriptions"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["value"].as_array().unwrap().len(), 0, "{list}");
    let r = other.get(s.url(&url)).send().await.unwrap();
    expect_error(r, 404, "ResourceNotFound").await;
    let r = other.delete(s.url(&url)).send().await.unwrap();
    expect_error(r, 404, "ResourceNotFound").await;
    // Its own tenant still has it; no low alert was ever notified.
    json_of(s.get(&url).await, 200).await;
    assert!(changes(&rx.items()).is_empty(), "{:?}", rx.items());
}

/// Waits (bounded) until the outbox of PostgreSQL database `db` is empty: every notification was
/// delivered and its delivery recorded, so no late repeat can follow.
async fn outbox_drains(db: &str) {
    for _ in 0..600 {
        let db = db.to_string();
        let left = tokio::task::spawn_blocking(move || {
            crate::pg::scalar(&db, "SELECT count(*) FROM graphsec_outbox")
        })
        .await
        .unwrap();
        if left.as_deref() == Some("0") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the outbox of {db} never drained");
}

/// `n` high alerts created on `s` under `root`, one after the other; their ids.
async fn high_alerts(s: &Server, root: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        ids.push(create_alert(s, root, "high").await);
    }
    ids
}

/// Alert ids in the order they were first notified (repeats dropped).
fn first_seen(items: &[Value]) -> Vec<String> {
    let mut seen = Vec::new();
    for (_, id) in changes(items) {
        if !seen.contains(&id) {
            seen.push(id);
        }
    }
    seen
}

/// Two nodes on one PostgreSQL database, both running dispatchers. Normal operation: writes
/// spread over both nodes are each notified exactly once (a subscription's deliveries are claimed
/// by one node at a time, `FOR UPDATE SKIP LOCKED` and a lease). Then a node is killed with
/// `kill -9` right after acknowledging writes, while a slow receiver keeps deliveries in flight:
/// the other node takes over once the lease (2 s here) runs out and every acknowledged write is
/// still notified, in commit order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_postgresql_notify_each_write_once_and_lose_none_when_one_dies() {
    let Some(db) = crate::cluster::Db::create() else {
        return;
    };
    let url = crate::pg::url(&db.0);
    let node = || {
        Server::start_with(&[
            "--auth",
            "none",
            "--database-url",
            &url,
            "--database-pool-size",
            "4",
            "--database-startup-wait-secs",
            "30",
            "--notify-poll-ms",
            "50",
            "--notify-retry-base-ms",
            "50",
            "--notify-lease-secs",
            "2",
        ])
    };
    let a = node();
    let mut b = node();
    let rx = Receiver::start(Handshake::Echo).await;
    let v = json_of(
        a.post(
            "/v1.0/subscriptions",
            &subscription("security/alerts?$filter=severity eq 'high'", &rx.url),
        )
        .await,
        201,
    )
    .await;
    let sub_id = v["id"].as_str().unwrap().to_string();

    // Normal operation: 30 writes, half on each node, at the same time.
    let (on_a, on_b) = tokio::join!(high_alerts(&a, "/v1.0", 15), high_alerts(&b, "/beta", 15));
    let written: Vec<String> = on_a.iter().chain(&on_b).cloned().collect();
    rx.wait_for("every write's notification", |i| {
        let got = first_seen(i);
        written.iter().all(|w| got.contains(w))
    })
    .await;
    outbox_drains(&db.0).await;
    let items = rx.items();
    let mut ids: Vec<&str> = items.iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids.len(),
        written.len(),
        "a write was notified twice: {items:#?}"
    );
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), written.len(), "a notification id arrived twice");
    for i in &items {
        assert_eq!(i["subscriptionId"], sub_id.as_str());
        assert_eq!(i["changeType"], "created");
    }
    // Each node's writes are notified in the order that node committed them.
    let order = first_seen(&items);
    for mine in [&on_a, &on_b] {
        let theirs: Vec<&String> = order.iter().filter(|id| mine.contains(id)).collect();
        assert_eq!(theirs, mine.iter().collect::<Vec<_>>());
    }

    // A node dies: the receiver refuses twice and then answers slowly, so the dying node's
    // deliveries are still queued or in flight (under its lease) when it is killed.
    {
        let mut inbox = rx.inbox.lock().unwrap();
        inbox.fail = 2;
        inbox.hold = Duration::from_millis(300);
    }
    let before = rx.items().len();
    let acked = high_alerts(&b, "/v1.0", 20).await;
    b.kill9();
    let items = rx
        .wait_for("every acknowledged write after the kill", |i| {
            let got = first_seen(&i[before..]);
            acked.iter().all(|w| got.contains(w))
        })
        .await;
    // In commit order (repeats allowed: a delivery in flight at the kill is delivered again).
    assert_eq!(first_seen(&items[before..]), acked);
    outbox_drains(&db.0).await;
    drop(a);
}

/// An HTTPS receiver with a self-signed certificate: graphsec's outgoing client trusts the
/// operating system's store, which `SSL_CERT_FILE` replaces. Without the certificate in it the
/// handshake fails (400 `ValidationError`, nothing created); with it, the subscription is created
/// over HTTPS and notified there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_receiver_is_validated_and_notified_when_its_certificate_is_trusted() {
    let (cert, key) = graphsec::tls::generate_self_signed().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cert_file = dir.path().join("receiver-cert.pem");
    std::fs::write(&cert_file, &cert).unwrap();
    let rx = Receiver::start_tls(Handshake::Echo, &cert, &key).await;
    let body = subscription("security/alerts?$filter=severity eq 'high'", &rx.url);

    let untrusting = start(&[]);
    let m = expect_error(
        untrusting.post("/v1.0/subscriptions", &body).await,
        400,
        "ValidationError",
    )
    .await;
    assert!(m.contains("validation request"), "{m}");
    assert_eq!(rx.inbox.lock().unwrap().handshakes, 0);
    let list = json_of(untrusting.get("/v1.0/subscriptions").await, 200).await;
    assert_eq!(list["value"].as_array().unwrap().len(), 0, "{list}");

    let s = Server::start_with_env(
        &[
            "--admin-token",
            ADMIN,
            "--notify-poll-ms",
            "50",
            "--notify-retry-base-ms",
            "50",
        ],
        &[("SSL_CERT_FILE", cert_file.to_str().unwrap())],
    );
    let v = json_of(s.post("/v1.0/subscriptions", &body).await, 201).await;
    assert_eq!(rx.inbox.lock().unwrap().handshakes, 1);
    assert_eq!(v["notificationUrl"], rx.url);
    let id = create_alert(&s, "/v1.0", "high").await;
    let items = rx
        .wait_for("the alert's notification", |i| !i.is_empty())
        .await;
    assert_eq!(changes(&items), [("created".to_string(), id.clone())]);
    assert_eq!(items[0]["subscriptionId"], v["id"]);
    assert_eq!(items[0]["clientState"], "secretClientValue");
    assert_eq!(items[0]["resource"], format!("security/alerts/{id}"));
}

/// Graph's throttling of slow endpoints (change-notifications.md rule 21): a receiver whose
/// answers keep taking longer than the retry timeout is judged "drop" once enough answers are
/// in, and its notifications are then dropped (and said so in the deliveries log); a fast
/// receiver of the same server is not affected.
#[tokio::test]
async fn a_receiver_that_keeps_timing_out_is_dropped_as_graph_does() {
    // Retries 1 ms apart (doubling), so the ten answers a verdict needs come quickly.
    let s = Server::start_with(&[
        "--admin-token",
        ADMIN,
        "--notify-poll-ms",
        "50",
        "--notify-retry-base-ms",
        "1",
        "--notify-timeout-ms",
        "100",
        "--notify-retry-timeout-ms",
        "150",
        "--notify-endpoint-window-secs",
        "120",
    ]);
    let slow = Receiver::start(Handshake::Echo).await;
    slow.inbox.lock().unwrap().hold = Duration::from_millis(400);
    let fast = Receiver::start(Handshake::Echo).await;
    let filter = "security/alerts?$filter=severity eq 'high'";
    let slow_sub = json_of(
        s.post("/v1.0/subscriptions", &subscription(filter, &slow.url))
            .await,
        201,
    )
    .await;
    // (Another change type: the same tenant, app, resource and types would be a duplicate.)
    let mut fast_sub = subscription(filter, &fast.url);
    fast_sub["changeType"] = json!("created");
    json_of(s.post("/v1.0/subscriptions", &fast_sub).await, 201).await;
    for _ in 0..14 {
        json_of(s.post("/v1.0/security/alerts", &alert("high")).await, 201).await;
    }
    // Every write reaches the fast receiver.
    fast.wait_for("every change", |i| i.len() >= 14).await;
    // The slow one's attempts time out and count against it until it is dropped.
    let id = slow_sub["id"].as_str().unwrap();
    let mut log = Value::Null;
    let mut dropped = false;
    for _ in 0..300 {
        log = s
            .anonymous()
            .get(s.url(&format!("/_graphsec/subscriptions/{id}/deliveries")))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        dropped = log["deliveries"].as_array().unwrap().iter().any(|d| {
            d["outcome"] == "dropped"
                && d["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("the endpoint is dropped"))
        });
        if dropped {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(dropped, "{log}");
}
