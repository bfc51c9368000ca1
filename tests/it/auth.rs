//! Authentication, permissions and tenants over real HTTP (issue 4): rejections, the permission
//! matrix, tenant isolation on every operation, HTTPS, the `token` command and JWKS mode.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::support::{COLLECTION, READ, READ_WRITE, Server, TENANT_A, expect_error};

const PERSONAL: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";

async fn status(
    c: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    body: Option<Value>,
) -> u16 {
    let mut b = c.request(method, url);
    if let Some(body) = body {
        b = b.json(&body);
    }
    b.send().await.expect("request").status().as_u16()
}

/// A GET with query options, as client `c` (which carries its own token).
async fn get(c: &reqwest::Client, url: String, query: &[(&str, &str)]) -> reqwest::Response {
    c.get(url).query(query).send().await.expect("request")
}

#[tokio::test]
async fn requests_without_a_valid_token_are_401_with_www_authenticate() {
    let s = Server::start();
    let other = Server::start();
    let anon = s.anonymous();
    let url = s.url(COLLECTION);
    let r = anon.get(&url).send().await.unwrap();
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    expect_error(r, 401, "InvalidAuthenticationToken").await;
    // Unknown paths do not leak anything before authentication.
    expect_error(
        anon.get(s.url("/beta/whatever")).send().await.unwrap(),
        401,
        "InvalidAuthenticationToken",
    )
    .await;
    let good = s.token.clone();
    let (h, p, sig) = {
        let mut it = good.split('.');
        (
            it.next().unwrap().to_string(),
            it.next().unwrap().to_string(),
            it.next().unwrap().to_string(),
        )
    };
    let mut claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&p).unwrap()).unwrap();
    claims["tid"] = json!("tenant-evil");
    let tampered = format!("{h}.{}.{sig}", URL_SAFE_NO_PAD.encode(claims.to_string()));
    let none_alg = format!(
        "{}.{p}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#)
    );
    for (name, header) in [
        ("basic scheme", "Basic dXNlcjpwYXNz".to_string()),
        ("empty bearer", "Bearer ".to_string()),
        ("garbage", "Bearer not.a.jwt".to_string()),
        ("foreign key", format!("Bearer {}", other.token)),
        ("tampered payload", format!("Bearer {tampered}")),
        ("alg none", format!("Bearer {none_alg}")),
    ] {
        let r = anon
            .get(&url)
            .header("authorization", header)
            .send()
            .await
            .unwrap();
        let msg = expect_error(r, 401, "InvalidAuthenticationToken").await;
        assert!(!msg.is_empty(), "{name}");
    }
    // The scheme is case-insensitive; a token in the query string is never accepted.
    let r = anon
        .get(&url)
        .header("authorization", format!("bEaReR {good}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = anon
        .get(format!("{url}?access_token={good}"))
        .send()
        .await
        .unwrap();
    expect_error(r, 401, "InvalidAuthenticationToken").await;
    // Refused requests wrote nothing.
    let w = anon
        .post(&url)
        .header("authorization", format!("Bearer {}", other.token))
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    expect_error(w, 401, "InvalidAuthenticationToken").await;
    assert!(s.all_ids().await.is_empty());
}

#[tokio::test]
async fn permission_matrix_delegated_and_application() {
    let s = Server::start();
    let id = s.create(&json!({"id": "p1", "name": "n"})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let entity = s.url(&format!("{COLLECTION}/{id}"));
    let coll = s.url(COLLECTION);
    let count = s.url(&format!("{COLLECTION}/$count"));
    use reqwest::Method as M;
    // (scopes, roles, may read, may write)
    let cases: Vec<(Vec<&str>, Vec<&str>, bool, bool)> = vec![
        (vec![READ_WRITE], vec![], true, true),
        (vec![READ], vec![], true, false),
        (vec![], vec![READ_WRITE], true, true),
        (vec![], vec![READ], true, false),
        (vec!["User.Read"], vec![], false, false),
        (vec![], vec!["Mail.Read"], false, false),
    ];
    for (scopes, roles, read, write) in cases {
        let c = s.client_with(&s.token_for(TENANT_A, &scopes, &roles));
        let want = |ok: bool, success: u16| if ok { success } else { 403 };
        let label = format!("scp={scopes:?} roles={roles:?}");
        assert_eq!(
            status(&c, M::GET, coll.clone(), None).await,
            want(read, 200),
            "list {label}"
        );
        assert_eq!(
            status(&c, M::GET, entity.clone(), None).await,
            want(read, 200),
            "get {label}"
        );
        assert_eq!(
            status(&c, M::GET, count.clone(), None).await,
            want(read, 200),
            "count {label}"
        );
        assert_eq!(
            status(&c, M::PATCH, entity.clone(), Some(json!({"name": "m"}))).await,
            want(write, 200),
            "patch {label}"
        );
        let new_id = format!(
            "new-{}",
            scopes.len() * 10 + roles.len() + usize::from(read) * 100 + usize::from(write) * 1000
        );
        assert_eq!(
            status(&c, M::POST, coll.clone(), Some(json!({"id": new_id}))).await,
            want(write, 201),
            "create {label}"
        );
        let del = s.url(&format!("{COLLECTION}/{new_id}"));
        assert_eq!(
            status(&c, M::DELETE, del, None).await,
            if write { 204 } else { 403 },
            "delete {label}"
        );
    }
    // A 403 is a Graph error with the right code, and it changed nothing.
    let ro = s.client_with(&s.token_for(TENANT_A, &[READ], &[]));
    let r = ro.delete(&entity).send().await.unwrap();
    expect_error(r, 403, "Authorization_RequestDenied").await;
    assert_eq!(s.all_ids().await, vec!["p1".to_string()]);
}

#[tokio::test]
async fn personal_accounts_and_tokens_without_permissions_are_403() {
    let s = Server::start();
    let personal = s.client_with(&s.token_for(PERSONAL, &[READ_WRITE], &[]));
    expect_error(
        personal.get(s.url(COLLECTION)).send().await.unwrap(),
        403,
        "Authorization_RequestDenied",
    )
    .await;
    // A token whose only scope is unrelated carries no permission for this API.
    let none = s.client_with(&s.token_for(TENANT_A, &["openid"], &[]));
    expect_error(
        none.get(s.url(COLLECTION)).send().await.unwrap(),
        403,
        "Authorization_RequestDenied",
    )
    .await;
}

#[tokio::test]
async fn tenants_are_isolated_on_every_operation() {
    let s = Server::start();
    let b = s.client_with(&s.token_for("tenant-b", &[READ_WRITE], &[]));
    s.create(&json!({"id": "shared", "name": "A's"})).await;
    s.create(&json!({"id": "a-only", "name": "A's", "platform": "win"}))
        .await;
    let r = b
        .post(s.url(COLLECTION))
        .json(&json!({"id": "shared", "name": "B's"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        201,
        "the same id exists independently in two tenants"
    );
    let ent = |id: &str| s.url(&format!("{COLLECTION}/{id}"));
    expect_error(
        b.get(ent("a-only")).send().await.unwrap(),
        404,
        "ResourceNotFound",
    )
    .await;
    expect_error(
        b.get(s.url(&format!("{COLLECTION}('a-only')")))
            .send()
            .await
            .unwrap(),
        404,
        "ResourceNotFound",
    )
    .await;
    expect_error(
        b.patch(ent("a-only"))
            .json(&json!({"name": "pwned"}))
            .send()
            .await
            .unwrap(),
        404,
        "ResourceNotFound",
    )
    .await;
    expect_error(
        b.delete(ent("a-only")).send().await.unwrap(),
        404,
        "ResourceNotFound",
    )
    .await;
    let list = get(&b, s.url(COLLECTION), &[("$count", "true")])
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(list["@odata.count"], 1);
    assert_eq!(list["value"][0]["name"], "B's");
    let filter = [("$filter", "id eq 'a-only' or platform eq 'win'")];
    let filtered = get(&b, s.url(COLLECTION), &filter)
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(filtered["value"], json!([]));
    let count = s.url(&format!("{COLLECTION}/$count"));
    assert_eq!(get(&b, count.clone(), &[]).await.text().await.unwrap(), "1");
    let n = get(&b, count, &[("$filter", "name eq 'A''s'")])
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(n, "0");
    // B deleting its own "shared" leaves A's untouched.
    assert_eq!(b.delete(ent("shared")).send().await.unwrap().status(), 204);
    let a_shared: Value = s
        .get(&format!("{COLLECTION}/shared"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(a_shared["name"], "A's");
    let a_only: Value = s
        .get(&format!("{COLLECTION}/a-only"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(a_only["name"], "A's", "B's refused PATCH changed nothing");
    let mut ids = s.all_ids().await;
    ids.sort();
    assert_eq!(ids, vec!["a-only".to_string(), "shared".to_string()]);
}

#[tokio::test]
async fn https_with_a_generated_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_in(dir.path(), &["--tls-self-signed"]);
    assert!(s.base.starts_with("https://127.0.0.1:"), "{}", s.base);
    let v = s.create(&json!({"name": "over tls"})).await;
    assert!(
        v["@odata.context"]
            .as_str()
            .unwrap()
            .starts_with("https://")
    );
    let r = s.get(COLLECTION).await;
    assert_eq!(r.status(), 200);
    // Plain http to the TLS port gets no HTTP answer.
    let plain = reqwest::Client::new();
    let err = plain
        .get(s.url(COLLECTION).replace("https://", "http://"))
        .send()
        .await;
    assert!(err.is_err() || !err.unwrap().status().is_success());
    // The certificate is generated once and reused on restart.
    let cert_file = dir.path().join(graphsec::tls::SELF_SIGNED_CERT_FILE);
    let cert = std::fs::read(&cert_file).unwrap();
    drop(s);
    let again = Server::start_in(dir.path(), &["--tls-self-signed"]);
    assert_eq!(std::fs::read(&cert_file).unwrap(), cert);
    assert_eq!(again.get(COLLECTION).await.status(), 200);
}

#[tokio::test]
async fn the_token_command_prints_a_token_the_server_accepts() {
    let s = Server::start();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_graphsec"))
        .args(["token", "--data-dir"])
        .arg(&s.data_dir)
        .args(["--tenant", "cli-tenant", "--role", READ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(token.split('.').count(), 3);
    let c = s.client_with(&token);
    assert_eq!(c.get(s.url(COLLECTION)).send().await.unwrap().status(), 200);
    let r = c
        .post(s.url(COLLECTION))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "Authorization_RequestDenied").await;
}

#[tokio::test]
async fn jwks_file_mode_accepts_tokens_signed_by_a_listed_key_only() {
    // Use the dev key of one data dir as the "identity provider": its public JWKS becomes the
    // --jwks-file of a second server running in production (jwks) mode.
    let idp = tempfile::tempdir().unwrap();
    let args = graphsec::auth::AuthArgs::default();
    let dev = graphsec::auth::Authenticator::from_args(&args, Some(idp.path())).unwrap();
    let jwks = dev.dev_public_jwks().expect("dev jwks");
    let jwks_file = idp.path().join("jwks.json");
    std::fs::write(&jwks_file, jwks.to_string()).unwrap();
    let s = Server::start_with(&[
        "--jwks-file",
        jwks_file.to_str().unwrap(),
        "--issuer",
        graphsec::auth::DEV_ISSUER_TEMPLATE,
    ]);
    let scopes = vec![READ_WRITE.to_string()];
    let token = graphsec::auth::issue_dev_token(idp.path(), "prod-tenant", &scopes, &[], 600, None)
        .unwrap();
    let c = s.client_with(&token);
    let r = c
        .post(s.url(COLLECTION))
        .json(&json!({"name": "via jwks"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    // The server's own dev tokens are not valid in jwks mode.
    let r = s.get(COLLECTION).await;
    expect_error(r, 401, "InvalidAuthenticationToken").await;
}

#[test]
fn auth_none_is_refused_on_a_non_loopback_address() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_graphsec"))
        .args([
            "serve",
            "--listen",
            "0.0.0.0:0",
            "--auth",
            "none",
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("loopback"), "{err}");
}

#[tokio::test]
async fn auth_none_on_loopback_serves_one_tenant() {
    let s = Server::start_open();
    let r = s
        .anonymous()
        .post(s.url(COLLECTION))
        .json(&json!({"name": "open"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(s.all_ids().await.len(), 1);
}
