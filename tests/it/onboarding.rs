//! Onboarding (issue 23): the development token service as an Entra ID application sees it
//! (OpenID discovery, signing keys, the OAuth 2.0 client credentials grant and its errors),
//! tokens from it against the Graph API (tenants, permissions, app registrations),
//! `graphsec token --url`, `--dev-key` shared between runs, the refusal of a data directory
//! without a key, and `--strict-properties` in queries. All over HTTP to real servers.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::support::{COLLECTION, Server, expect_error};

const GRAPH_DEFAULT: &str = "https://graph.microsoft.com/.default";
const ALERTS: &str = "/beta/security/alerts";

/// A form body, encoded.
fn form(pairs: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

/// `POST /{tenant}/oauth2/v2.0/token` with a form body, no credentials but the form's.
async fn token_request(s: &Server, tenant: &str, pairs: &[(&str, &str)]) -> reqwest::Response {
    s.anonymous()
        .post(s.url(&format!("/{tenant}/oauth2/v2.0/token")))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(pairs))
        .send()
        .await
        .expect("token request")
}

/// A client credentials token for `client_id` in `tenant` (asserting success).
async fn app_token(s: &Server, tenant: &str, client_id: &str, secret: &str) -> String {
    let r = token_request(
        s,
        tenant,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", secret),
            ("scope", GRAPH_DEFAULT),
        ],
    )
    .await;
    let status = r.status();
    let v: Value = r.json().await.expect("json");
    assert_eq!(status, 200, "{v}");
    v["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

/// Asserts an Entra-shaped OAuth 2.0 error and returns its body.
async fn expect_oauth_error(
    r: reqwest::Response,
    status: u16,
    error: &str,
    aadsts: Option<u64>,
) -> Value {
    assert_eq!(r.status().as_u16(), status, "status");
    let ct = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("application/json"), "{ct}");
    assert_eq!(r.headers()["cache-control"], "no-store, no-cache");
    let request_id = r.headers()["request-id"].to_str().unwrap().to_string();
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["error"], error, "{v}");
    let description = v["error_description"].as_str().expect("error_description");
    match aadsts {
        Some(n) => {
            assert!(
                description.starts_with(&format!("AADSTS{n}: ")),
                "{description}"
            );
            assert_eq!(v["error_codes"], json!([n]), "{v}");
        }
        None => assert_eq!(v["error_codes"], json!([]), "{v}"),
    }
    assert!(
        description.contains(&format!("Trace ID: {request_id}")),
        "{v}"
    );
    assert_eq!(v["trace_id"], request_id.as_str());
    assert!(
        v["correlation_id"].is_string() && v["timestamp"].is_string(),
        "{v}"
    );
    assert!(
        v.get("code").is_none() && v["error"].is_string(),
        "not the Graph envelope: {v}"
    );
    v
}

fn alert() -> Value {
    json!({"title": "onboarding", "azureTenantId": "t", "severity": "high", "status": "newAlert",
           "vendorInformation": {"provider": "p", "vendor": "v"}})
}

/// Runs `graphsec` with `args`; (success, stdout trimmed, stderr).
fn graphsec(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_graphsec"))
        .args(args)
        .output()
        .expect("run graphsec");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write_registrations(dir: &Path, apps: &Value) -> String {
    let path = dir.join("apps.json");
    std::fs::write(&path, apps.to_string()).unwrap();
    path.to_str().unwrap().to_string()
}

#[tokio::test]
async fn discovery_and_keys_point_back_at_the_url_the_client_used() {
    let s = Server::start_with(&["--tls-self-signed"]);
    assert!(s.base.starts_with("https://"));
    let c = s.anonymous();
    let doc: Value = c
        .get(s.url("/Contoso.onmicrosoft.com/v2.0/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["issuer"], s.url("/contoso/v2.0"));
    assert_eq!(doc["token_endpoint"], s.url("/contoso/oauth2/v2.0/token"));
    assert_eq!(doc["jwks_uri"], s.url("/contoso/discovery/v2.0/keys"));
    assert_eq!(
        doc["authorization_endpoint"],
        s.url("/contoso/oauth2/v2.0/authorize")
    );
    // Reached by another name, the document names that one.
    let by_name = s.base.replace("127.0.0.1", "localhost");
    let doc: Value = c
        .get(format!(
            "{by_name}/common/v2.0/.well-known/openid-configuration"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["issuer"], format!("{by_name}/{{tenantid}}/v2.0"));
    assert_eq!(
        doc["token_endpoint"],
        format!("{by_name}/common/oauth2/v2.0/token")
    );
    // The keys: the same set for any tenant, and it verifies the endpoint's tokens' kid.
    let keys: Value = c
        .get(s.url("/common/discovery/v2.0/keys"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tenant_keys: Value = c
        .get(s.url("/contoso/discovery/v2.0/keys"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(keys, tenant_keys);
    assert_eq!(keys["keys"][0]["kty"], "EC");
    assert_eq!(keys["keys"][0]["alg"], "ES256");
    let token = app_token(&s, "contoso", "app", "secret").await;
    let header: Value =
        serde_json::from_slice(&base64_url(token.split('.').next().unwrap())).unwrap();
    assert_eq!(header["kid"], keys["keys"][0]["kid"]);
    // Instance discovery names the tenant's discovery document and graphsec's host.
    let host = s.base.trim_start_matches("https://").to_string();
    let inst: Value = c
        .get(s.url("/common/discovery/instance"))
        .query(&[
            ("api-version", "1.1"),
            (
                "authorization_endpoint",
                &format!("https://{host}/contoso/oauth2/v2.0/authorize"),
            ),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        inst["tenant_discovery_endpoint"],
        s.url("/contoso/v2.0/.well-known/openid-configuration")
    );
    assert_eq!(inst["metadata"][0]["aliases"], json!([host]));
    let r = c
        .get(s.url("/no%20such/v2.0/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap();
    expect_oauth_error(r, 400, "invalid_tenant", Some(90002)).await;
}

fn base64_url(part: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .expect("base64url")
}

#[tokio::test]
async fn the_token_endpoint_answers_like_entra_and_its_token_works_on_alerts() {
    let s = Server::start_with(&["--in-memory"]);
    let r = token_request(
        &s,
        "contoso",
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "any-app"),
            ("client_secret", "any-secret"),
            ("scope", GRAPH_DEFAULT),
        ],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store, no-cache");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 3599);
    assert_eq!(v["ext_expires_in"], 3599);
    let token = v["access_token"].as_str().unwrap();
    let claims: Value =
        serde_json::from_slice(&base64_url(token.split('.').nth(1).unwrap())).unwrap();
    assert_eq!(claims["tid"], "contoso");
    assert_eq!(claims["azp"], "any-app");
    assert_eq!(claims["iss"], s.url("/contoso/v2.0"));
    assert_eq!(claims["aud"], "https://graph.microsoft.com");
    assert_eq!(claims["idtyp"], "app");
    // Without app registrations: every application permission graphsec knows.
    assert_eq!(
        claims["roles"],
        json!([
            "SecurityActions.Read.All",
            "SecurityActions.ReadWrite.All",
            "SecurityEvents.Read.All",
            "SecurityEvents.ReadWrite.All",
            "ThreatIndicators.ReadWrite.OwnedBy"
        ])
    );
    // The token works on the Graph API.
    let c = s.client_with(token);
    let r = c.post(s.url(ALERTS)).json(&alert()).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let list: Value = c
        .get(s.url(ALERTS))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["value"].as_array().unwrap().len(), 1);
    // HTTP Basic client authentication (client_secret_basic) works too.
    let r = s
        .anonymous()
        .post(s.url("/contoso/oauth2/v2.0/token"))
        .basic_auth("basic-app", Some("s"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[
            ("grant_type", "client_credentials"),
            ("scope", GRAPH_DEFAULT),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Each mistake gets Entra's error and status.
    let good = [
        ("grant_type", "client_credentials"),
        ("client_id", "app"),
        ("client_secret", "secret"),
        ("scope", GRAPH_DEFAULT),
    ];
    let without = |name: &str| -> Vec<(&str, &str)> {
        good.iter().copied().filter(|(k, _)| *k != name).collect()
    };
    let with = |name: &'static str, value: &'static str| -> Vec<(&'static str, &'static str)> {
        let mut v: Vec<(&str, &str)> = good.iter().copied().filter(|(k, _)| *k != name).collect();
        v.push((name, value));
        v
    };
    let r = token_request(&s, "contoso", &with("grant_type", "password")).await;
    expect_oauth_error(r, 400, "unsupported_grant_type", Some(70003)).await;
    let r = token_request(&s, "contoso", &without("grant_type")).await;
    expect_oauth_error(r, 400, "invalid_request", Some(900144)).await;
    let r = token_request(&s, "contoso", &without("client_id")).await;
    let v = expect_oauth_error(r, 400, "invalid_request", Some(900144)).await;
    assert!(
        v["error_description"]
            .as_str()
            .unwrap()
            .contains("'client_id'")
    );
    let r = token_request(&s, "contoso", &without("client_secret")).await;
    expect_oauth_error(r, 401, "invalid_client", Some(7000218)).await;
    let r = token_request(&s, "contoso", &without("scope")).await;
    expect_oauth_error(r, 400, "invalid_request", Some(900144)).await;
    let r = token_request(
        &s,
        "contoso",
        &with("scope", "https://graph.microsoft.com/User.Read"),
    )
    .await;
    expect_oauth_error(r, 400, "invalid_scope", Some(1002012)).await;
    let r = token_request(
        &s,
        "contoso",
        &with("scope", "https://management.azure.com/.default"),
    )
    .await;
    expect_oauth_error(r, 400, "invalid_resource", Some(500011)).await;
    let r = token_request(&s, "common", &good).await;
    expect_oauth_error(r, 400, "invalid_request", Some(50059)).await;
    let r = token_request(&s, "bad%20tenant", &good).await;
    expect_oauth_error(r, 400, "invalid_tenant", Some(90002)).await;
    // Not a form: none of the parameters arrived.
    let r = s
        .anonymous()
        .post(s.url("/contoso/oauth2/v2.0/token"))
        .json(&json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    expect_oauth_error(r, 400, "invalid_request", Some(900144)).await;
    let r = s
        .anonymous()
        .get(s.url("/contoso/oauth2/v2.0/token"))
        .send()
        .await
        .unwrap();
    expect_oauth_error(r, 400, "invalid_request", Some(900561)).await;
    // The client's correlation id comes back as Entra's correlation_id.
    let r = s
        .anonymous()
        .post(s.url("/contoso/oauth2/v2.0/token"))
        .header("client-request-id", "my-correlation")
        .send()
        .await
        .unwrap();
    let v = expect_oauth_error(r, 400, "invalid_request", Some(900144)).await;
    assert_eq!(v["correlation_id"], "my-correlation");
}

#[tokio::test]
async fn endpoint_tokens_keep_tenants_apart_and_read_only_apps_get_403() {
    let dir = tempfile::tempdir().unwrap();
    let apps = write_registrations(
        dir.path(),
        &json!([
            {"clientId": "writer", "clientSecret": "w-secret", "roles": ["SecurityEvents.ReadWrite.All"]},
            {"clientId": "reader", "clientSecret": "r-secret", "tenant": "contoso.onmicrosoft.com",
             "roles": ["SecurityEvents.Read.All"]},
            {"clientId": "nothing", "clientSecret": "n-secret", "roles": []}
        ]),
    );
    let s = Server::start_with(&["--in-memory", "--app-registrations", &apps]);
    let contoso = s.client_with(&app_token(&s, "contoso", "writer", "w-secret").await);
    let fabrikam =
        s.client_with(&app_token(&s, "fabrikam.onmicrosoft.com", "writer", "w-secret").await);
    let r = contoso
        .post(s.url(ALERTS))
        .json(&alert())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Another tenant sees nothing of it.
    let r = fabrikam
        .get(s.url(&format!("{ALERTS}/{id}")))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "ResourceNotFound").await;
    let list: Value = fabrikam
        .get(s.url(ALERTS))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["value"], json!([]));
    // The reader reads, and may not write.
    let reader = s.client_with(&app_token(&s, "Contoso", "READER", "r-secret").await);
    let r = reader
        .get(s.url(&format!("{ALERTS}/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = reader
        .post(s.url(ALERTS))
        .json(&alert())
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "Authorization_RequestDenied").await;
    let r = reader
        .delete(s.url(&format!("{ALERTS}/{id}")))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "Authorization_RequestDenied").await;
    // An app granted no roles gets a token that opens nothing, as on Entra and Graph.
    let none = s.client_with(&app_token(&s, "contoso", "nothing", "n-secret").await);
    let r = none.get(s.url(ALERTS)).send().await.unwrap();
    expect_error(r, 403, "Authorization_RequestDenied").await;
    // The registrations decide who gets a token.
    let req = |id: &'static str, secret: &'static str| {
        [
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
            ("scope", GRAPH_DEFAULT),
        ]
    };
    let r = token_request(&s, "contoso", &req("writer", "wrong")).await;
    expect_oauth_error(r, 401, "invalid_client", Some(7000215)).await;
    let r = token_request(&s, "contoso", &req("stranger", "x")).await;
    expect_oauth_error(r, 400, "unauthorized_client", Some(700016)).await;
    // The reader is registered in contoso only.
    let r = token_request(&s, "fabrikam", &req("reader", "r-secret")).await;
    expect_oauth_error(r, 400, "unauthorized_client", Some(700016)).await;
    // And no token of one's choice: /_graphsec/token is off with registrations.
    let r = s
        .anonymous()
        .post(s.url("/_graphsec/token"))
        .json(&json!({"tenant": "contoso"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "Authorization_RequestDenied").await;
}

#[tokio::test]
async fn the_token_command_asks_a_running_in_memory_server() {
    let s = Server::start_with(&["--in-memory"]);
    let (ok, token, err) = graphsec(&[
        "token",
        "--url",
        &s.base,
        "--tenant",
        "cli-tenant",
        "--role",
        "SecurityEvents.Read.All",
    ]);
    assert!(ok, "{err}");
    let c = s.client_with(&token);
    assert_eq!(c.get(s.url(ALERTS)).send().await.unwrap().status(), 200);
    let r = c.post(s.url(ALERTS)).json(&alert()).send().await.unwrap();
    expect_error(r, 403, "Authorization_RequestDenied").await;
    // The default is the read-write scope.
    let (ok, token, err) = graphsec(&["token", "--url", &s.base, "--tenant", "cli-tenant"]);
    assert!(ok, "{err}");
    let r = s
        .client_with(&token)
        .post(s.url(ALERTS))
        .json(&alert())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    // A bad request is reported with the server's message.
    let (ok, _, err) = graphsec(&["token", "--url", &s.base, "--tenant", "a b"]);
    assert!(!ok && err.contains("invalid tenant"), "{err}");
    // Nobody listening: a clear message.
    let (ok, _, err) = graphsec(&["token", "--url", "http://127.0.0.1:1", "--tenant", "t"]);
    assert!(!ok && err.contains("cannot reach graphsec"), "{err}");
}

#[tokio::test]
async fn the_token_command_trusts_a_self_signed_server_with_cacert() {
    let s = Server::start_with(&["--tls-self-signed"]);
    let cert = s.data_dir.join(graphsec::tls::SELF_SIGNED_CERT_FILE);
    let (ok, token, err) = graphsec(&[
        "token",
        "--url",
        &s.base,
        "--cacert",
        cert.to_str().unwrap(),
        "--tenant",
        "tls-tenant",
    ]);
    assert!(ok, "{err}");
    assert_eq!(
        s.client_with(&token)
            .get(s.url(COLLECTION))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn a_dev_key_file_is_shared_by_server_runs_and_the_token_command() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("suite-key.pem");
    let key_arg = key.to_str().unwrap();
    // The token command never creates the key.
    let (ok, _, err) = graphsec(&["token", "--dev-key", key_arg, "--tenant", "t"]);
    assert!(
        !ok && err.contains("suite-key.pem") && err.contains("--url"),
        "{err}"
    );
    let mut first = Server::start_with(&["--in-memory", "--dev-key", key_arg]);
    assert!(key.exists(), "the first server wrote the key");
    let (ok, token, err) = graphsec(&["token", "--dev-key", key_arg, "--tenant", "t"]);
    assert!(ok, "{err}");
    assert_eq!(
        first
            .client_with(&token)
            .get(first.url(ALERTS))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let endpoint_token = app_token(&first, "t", "app", "secret").await;
    first.terminate();
    // A second run, in memory again, with the same key: the same tokens work.
    let second = Server::start_with(&["--in-memory", "--dev-key", key_arg]);
    for t in [&token, &endpoint_token] {
        assert_eq!(
            second
                .client_with(t)
                .get(second.url(ALERTS))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    // A server with its own key refuses them, and says why.
    let other = Server::start_with(&["--in-memory"]);
    let r = other
        .client_with(&token)
        .get(other.url(ALERTS))
        .send()
        .await
        .unwrap();
    let message = expect_error(r, 401, "InvalidAuthenticationToken").await;
    assert!(
        message.contains("signing key (kid) is not known")
            && message.contains("--dev-key")
            && message.contains("--data-dir"),
        "{message}"
    );
}

#[test]
fn the_token_command_refuses_a_data_dir_without_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("never-served");
    let (ok, out, err) = graphsec(&[
        "token",
        "--data-dir",
        empty.to_str().unwrap(),
        "--tenant",
        "t",
    ]);
    assert!(!ok && out.is_empty());
    assert!(
        err.contains(
            &empty
                .join(graphsec::auth::DEV_KEY_FILE)
                .display()
                .to_string()
        ) && err.contains("--dev-key")
            && err.contains("--url"),
        "{err}"
    );
    assert!(!empty.exists(), "nothing was created");
    // Neither flag: it says which to give.
    let out = Command::new(env!("CARGO_BIN_EXE_graphsec"))
        .args(["token", "--tenant", "t"])
        .env_remove("GRAPHSEC_DATA_DIR")
        .env_remove("GRAPHSEC_DEV_KEY")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--data-dir DIR"));
}

#[tokio::test]
async fn the_token_service_is_off_with_real_identity_provider_keys() {
    let idp = tempfile::tempdir().unwrap();
    let dev = graphsec::auth::Authenticator::from_args(
        &graphsec::auth::AuthArgs::default(),
        Some(idp.path()),
    )
    .unwrap();
    let jwks = idp.path().join("jwks.json");
    std::fs::write(&jwks, dev.dev_public_jwks().unwrap().to_string()).unwrap();
    let s = Server::start_with(&["--jwks-file", jwks.to_str().unwrap()]);
    let r = token_request(&s, "contoso", &[("grant_type", "client_credentials")]).await;
    let v = expect_oauth_error(r, 404, "invalid_request", None).await;
    assert!(
        v["error_description"]
            .as_str()
            .unwrap()
            .contains("--jwks-url"),
        "{v}"
    );
    let r = s
        .anonymous()
        .get(s.url("/contoso/v2.0/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap();
    expect_oauth_error(r, 404, "invalid_request", None).await;
    let r = s
        .anonymous()
        .post(s.url("/_graphsec/token"))
        .json(&json!({"tenant": "t"}))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "ResourceNotFound").await;
    // And the dev-mode flags are refused at startup.
    let (ok, _, err) = graphsec(&[
        "serve",
        "--in-memory",
        "--listen",
        "127.0.0.1:0",
        "--jwks-file",
        jwks.to_str().unwrap(),
        "--app-registrations",
        "x.json",
    ]);
    assert!(!ok && err.contains("development mode only"), "{err}");
}

#[tokio::test]
async fn open_issuance_is_for_loopback_listeners() {
    use std::io::{BufRead, BufReader};
    // 0.0.0.0 is not loopback: without --app-registrations or --accept-any-client, no client.
    let mut child = Command::new(env!("CARGO_BIN_EXE_graphsec"))
        .args(["serve", "--in-memory", "--listen", "0.0.0.0:0"])
        .env("GRAPHSEC_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    let port = loop {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "no listening line");
        if let Some((_, b)) = line.split_once("listening on ") {
            break b.trim().rsplit(':').next().unwrap().to_string();
        }
    };
    let r = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/contoso/oauth2/v2.0/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "a"),
            ("client_secret", "b"),
            ("scope", GRAPH_DEFAULT),
        ]))
        .send()
        .await
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let v = expect_oauth_error(r, 401, "invalid_client", None).await;
    assert!(
        v["error_description"]
            .as_str()
            .unwrap()
            .contains("--accept-any-client"),
        "{v}"
    );
}

#[tokio::test]
async fn strict_properties_name_unknown_query_properties_and_the_closest_declared() {
    let s = Server::start_with(&["--strict-properties"]);
    for (option, value) in [
        ("$filter", "severty eq 'high'"),
        ("$select", "title,severty"),
        ("$orderby", "severty desc"),
    ] {
        let r = s.get_with(ALERTS, &[(option, value)]).await;
        let message = expect_error(r, 400, "BadRequest").await;
        assert!(
            message.contains("'severty'")
                && message.contains("'severity'")
                && message.contains("--strict-properties"),
            "{option}: {message}"
        );
    }
    // Declared names still work, in any case.
    let r = s
        .get_with(
            ALERTS,
            &[("$filter", "Severity eq 'high'"), ("$select", "title")],
        )
        .await;
    assert_eq!(r.status(), 200);
    // Without the flag the open type reads an unknown name as a dynamic property.
    let open = Server::start();
    let r = open
        .get_with(ALERTS, &[("$filter", "severty eq 'high'")])
        .await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn the_security_singleton_hint_lists_the_served_sets() {
    let s = Server::start();
    let message = expect_error(s.get("/beta/security").await, 400, "BadRequest").await;
    for set in [
        "'security/alerts'",
        "'security/cloudAppSecurityProfiles'",
        "'security/tiIndicators'",
    ] {
        assert!(message.contains(set), "{message}");
    }
}
