//! The data explorer (`/_graphsec/explorer`) over real HTTP: who may open it (loopback without a
//! token, the admin token otherwise, closed off loopback without one, gone with
//! `--no-explorer`), lists through the OData engine with Graph's error messages, a
//! create/edit/delete round trip that the Graph API sees, and overview counts that stop above
//! 10,000.

use reqwest::StatusCode;
use reqwest::redirect::Policy;
use serde_json::{Value, json};

use crate::support::{Server, TENANT_A};

const EXPLORER: &str = "/_graphsec/explorer";
const ADMIN: &str = "explorer-admin-secret";

/// A client that sends no Graph token and does not follow redirects.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

fn alert(severity: &str, title: &str) -> Value {
    json!({
        "azureTenantId": TENANT_A, "title": title, "severity": severity, "status": "newAlert",
        "vendorInformation": {"provider": "ASC", "vendor": "Microsoft"},
    })
}

/// Text as the page shows it (maud's escapes undone).
fn unescape(html: &str) -> String {
    html.replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The value of the first `name="NAME" value="..."` on the page.
fn field(html: &str, name: &str) -> String {
    let at = html
        .find(&format!("name=\"{name}\" value=\""))
        .unwrap_or_else(|| panic!("no field {name} in {html}"));
    let rest = &html[at + name.len() + 15..];
    unescape(&rest[..rest.find('"').unwrap()])
}

fn etag_on(html: &str) -> String {
    let at = html.find("id=\"etag\">").expect("etag on the page");
    let rest = &html[at + 10..];
    unescape(&rest[..rest.find('<').unwrap()])
}

async fn page(c: &reqwest::Client, url: &str) -> (StatusCode, String) {
    let r = c.get(url).send().await.unwrap();
    let status = r.status();
    if status == StatusCode::OK {
        let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(ct.starts_with("text/html"), "{ct}");
        let csp = r.headers()["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    }
    (status, r.text().await.unwrap())
}

#[tokio::test]
async fn loopback_without_admin_token_is_open_and_lists_every_set() {
    let s = Server::start();
    for sev in ["high", "low"] {
        assert_eq!(
            s.post("/beta/security/alerts", &alert(sev, sev))
                .await
                .status(),
            201
        );
    }
    let c = browser();
    let (status, home) = page(&c, &s.url(EXPLORER)).await;
    assert_eq!(status, 200, "{home}");
    assert!(home.contains(TENANT_A) && home.contains("alerts"), "{home}");
    // The tenant page lists every served set of every version, from the catalogs.
    let (status, tenant) = page(&c, &s.url(&format!("{EXPLORER}/tenant?tenant={TENANT_A}"))).await;
    assert_eq!(status, 200);
    for set in [
        "alerts",
        "tiIndicators",
        "secureScores",
        "secureScoreControlProfiles",
        "cloudAppSecurityProfiles",
        "securityActions",
    ] {
        assert!(tenant.contains(&format!(">{set}<")), "{set}: {tenant}");
    }
    assert!(tenant.contains("/v1.0") && tenant.contains("/beta"));
    // A Host that is not loopback (DNS rebinding) is refused.
    let r = c
        .get(s.url(EXPLORER))
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn list_filters_through_the_odata_engine_and_shows_graph_errors() {
    let s = Server::start();
    let mut high = Vec::new();
    for (sev, title) in [("high", "h1"), ("low", "l1"), ("high", "h2")] {
        let r = s.post("/beta/security/alerts", &alert(sev, title)).await;
        let v: Value = r.json().await.unwrap();
        if sev == "high" {
            high.push(v["id"].as_str().unwrap().to_owned());
        }
    }
    let c = browser();
    let list = |filter: &str| {
        let mut url = reqwest::Url::parse(&s.url(&format!("{EXPLORER}/list"))).unwrap();
        url.query_pairs_mut()
            .append_pair("tenant", TENANT_A)
            .append_pair("version", "v1.0")
            .append_pair("set", "alerts")
            .append_pair("filter", filter);
        url.to_string()
    };
    let (status, body) = page(&c, &list("severity eq 'high'")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("2 matching entities"), "{body}");
    for id in &high {
        assert!(body.contains(id.as_str()), "{id}");
    }
    // A bad filter: the page shows Graph's own code and message for the same query.
    let bad = "severity eq 'nope' and";
    let r = c.get(list(bad)).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let body = unescape(&r.text().await.unwrap());
    let api = s
        .get_with("/v1.0/security/alerts", &[("$filter", bad)])
        .await;
    let message = crate::support::expect_error(api, 400, "BadRequest").await;
    assert!(
        body.contains(&format!(
            "BadRequest</strong>: <span class=\"message\">{message}</span>"
        )),
        "{message} in {body}"
    );
}

#[tokio::test]
async fn create_edit_delete_round_trip_is_what_the_graph_api_sees() {
    let s = Server::start();
    let c = browser();
    let new = format!("{EXPLORER}/new?tenant={TENANT_A}&version=beta&set=alerts");
    let (status, form) = page(&c, &s.url(&new)).await;
    assert_eq!(status, 200);
    let csrf = field(&form, "csrf");
    // The template validates as it is (required members filled from the model).
    let template = {
        let at = form.find("name=\"body\"").unwrap();
        let rest = &form[at..];
        let start = rest.find('>').unwrap() + 1;
        unescape(&rest[start..rest.find("</textarea>").unwrap()])
    };
    let template: Value = serde_json::from_str(&template).unwrap();
    assert!(template.get("vendorInformation").is_some(), "{template}");
    let mut body = template.clone();
    body["severity"] = json!("high");
    body["title"] = json!("from the explorer <&>");
    let post = |path: &str, pairs: Vec<(&str, String)>| {
        c.post(s.url(&format!("{EXPLORER}/{path}")))
            .form(&pairs)
            .send()
    };
    // Without the CSRF token nothing is written.
    let r = post(
        "create",
        vec![
            ("tenant", TENANT_A.into()),
            ("version", "beta".into()),
            ("set", "alerts".into()),
            ("body", body.to_string()),
        ],
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 403);
    let r = post(
        "create",
        vec![
            ("csrf", csrf.clone()),
            ("tenant", TENANT_A.into()),
            ("version", "beta".into()),
            ("set", "alerts".into()),
            ("body", body.to_string()),
        ],
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let (status, entity) = page(&c, &s.url(&location)).await;
    assert_eq!(status, 200);
    let id = field(&entity, "id");
    let etag = etag_on(&entity);
    let api = s.get(&format!("/beta/security/alerts/{id}")).await;
    assert_eq!(api.status(), 200);
    assert_eq!(api.headers()["etag"].to_str().unwrap(), etag);
    let v: Value = api.json().await.unwrap();
    assert_eq!(v["title"], "from the explorer <&>");
    // The creation is the API's: caller values and validation applied; a bad body is the API's
    // 400 with its message.
    let r = post(
        "create",
        vec![
            ("csrf", csrf.clone()),
            ("tenant", TENANT_A.into()),
            ("version", "beta".into()),
            ("set", "alerts".into()),
            ("body", json!({"severity": "extreme"}).to_string()),
        ],
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    let api_message = crate::support::expect_error(
        s.post("/beta/security/alerts", &json!({"severity": "extreme"}))
            .await,
        400,
        "BadRequest",
    )
    .await;
    assert!(unescape(&r.text().await.unwrap()).contains(&api_message));

    // Edit: a PATCH with If-Match of the page's ETag.
    let edit = json!({"status": "resolved", "vendorInformation": {"provider": "ASC", "vendor": "Microsoft"}});
    let update = |etag: String| {
        post(
            "update",
            vec![
                ("csrf", csrf.clone()),
                ("tenant", TENANT_A.into()),
                ("version", "beta".into()),
                ("set", "alerts".into()),
                ("id", id.clone()),
                ("etag", etag.trim_matches('"').to_owned()),
                ("body", edit.to_string()),
            ],
        )
    };
    let r = update(etag.clone()).await.unwrap();
    assert_eq!(r.status(), 303);
    let (_, entity) = page(&c, &s.url(r.headers()["location"].to_str().unwrap())).await;
    let new_etag = etag_on(&entity);
    assert_ne!(new_etag, etag);
    let api = s.get(&format!("/v1.0/security/alerts/{id}")).await;
    assert_eq!(api.headers()["etag"].to_str().unwrap(), new_etag);
    let v: Value = api.json().await.unwrap();
    assert_eq!(v["status"], "resolved");
    // The old ETag no longer matches: Graph's 412, nothing written.
    let r = update(etag).await.unwrap();
    assert_eq!(r.status(), 412);

    // Delete.
    let r = post(
        "delete",
        vec![
            ("csrf", csrf.clone()),
            ("tenant", TENANT_A.into()),
            ("version", "beta".into()),
            ("set", "alerts".into()),
            ("id", id.clone()),
            ("etag", new_etag.trim_matches('"').to_owned()),
        ],
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(
        s.get(&format!("/beta/security/alerts/{id}")).await.status(),
        404
    );
}

#[tokio::test]
async fn admin_token_is_required_when_set_and_the_login_sets_a_session_cookie() {
    let s = Server::start_with(&["--admin-token", ADMIN]);
    let c = browser();
    let (status, body) = page(&c, &s.url(EXPLORER)).await;
    assert_eq!(status, 401);
    assert!(body.contains("name=\"token\""), "the login form: {body}");
    let r = c
        .get(s.url(EXPLORER))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // A Graph token does not open it.
    let r = c
        .get(s.url(EXPLORER))
        .bearer_auth(&s.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // The login form: a wrong token is refused, the right one sets an HttpOnly cookie.
    let r = c
        .post(s.url(&format!("{EXPLORER}/login")))
        .form(&[("token", "wrong")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = c
        .post(s.url(&format!("{EXPLORER}/login")))
        .form(&[("token", ADMIN)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(
        !cookie.contains(ADMIN),
        "the cookie is not the token: {cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_owned();
    let r = c
        .get(s.url(EXPLORER))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The admin token still opens nothing of the Graph API.
    let r = c
        .get(s.url("/beta/security/alerts"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn off_loopback_the_explorer_needs_the_admin_token() {
    for (extra, open_with_token) in [
        (vec!["--listen", "0.0.0.0:0"], false),
        (vec!["--listen", "0.0.0.0:0", "--admin-token", ADMIN], true),
    ] {
        let s = Server::start_with(&extra);
        let base = s.base.replace("0.0.0.0", "127.0.0.1");
        let url = format!("{base}{EXPLORER}");
        let c = browser();
        let r = c.get(&url).send().await.unwrap();
        assert!(
            r.status() == 401 || r.status() == 403,
            "{extra:?}: {}",
            r.status()
        );
        let r = c.get(&url).bearer_auth(ADMIN).send().await.unwrap();
        assert_eq!(r.status() == 200, open_with_token, "{extra:?}");
    }
}

#[tokio::test]
async fn no_explorer_turns_it_off() {
    let s = Server::start_with(&["--no-explorer"]);
    let r = browser().get(s.url(EXPLORER)).send().await.unwrap();
    assert_ne!(r.status(), 200);
    assert!(
        !r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
}

#[tokio::test]
async fn bound_actions_run_through_the_api_action_code() {
    let s = Server::start();
    let r = s.post("/beta/security/alerts", &alert("low", "a")).await;
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let c = browser();
    let (status, list) = page(
        &c,
        &s.url(&format!(
            "{EXPLORER}/list?tenant={TENANT_A}&version=beta&set=alerts"
        )),
    )
    .await;
    assert_eq!(status, 200);
    assert!(list.contains("Run updateAlerts"), "{list}");
    let csrf = field(&list, "csrf");
    let body = json!({"value": [{"id": id, "status": "inProgress",
        "vendorInformation": {"provider": "ASC", "vendor": "Microsoft"}}]});
    let r = c
        .post(s.url(&format!("{EXPLORER}/action")))
        .form(&[
            ("csrf", csrf.as_str()),
            ("tenant", TENANT_A),
            ("version", "beta"),
            ("set", "alerts"),
            ("action", "updateAlerts"),
            ("body", &body.to_string()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("id=\"status\">200<"));
    let v: Value = s
        .get(&format!("/beta/security/alerts/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["status"], "inProgress");
    // The subscriptions page of the tenant.
    let (status, subs) = page(
        &c,
        &s.url(&format!("{EXPLORER}/subscriptions?tenant={TENANT_A}")),
    )
    .await;
    assert_eq!(status, 200);
    assert!(subs.contains("No live subscription"), "{subs}");
}

#[tokio::test]
async fn overview_counts_stop_above_ten_thousand_and_the_list_counts_them_all() {
    // Seeded from a file (as `graphsec import`): 10,001 alerts of one tenant, 3 of another.
    let work = tempfile::tempdir().unwrap();
    let seed = work.path().join("seed.ndjson");
    let line = |tenant: &str, i: usize| {
        let mut v = alert("low", &format!("alert {i}"));
        v["azureTenantId"] = json!(tenant);
        v["@graphsec.tenant"] = json!(tenant);
        v["@graphsec.set"] = json!("alerts");
        v["id"] = json!(format!("{tenant}-{i:05}"));
        v.to_string() + "\n"
    };
    let lines: String = (0..10_001)
        .map(|i| line(TENANT_A, i))
        .chain((0..3).map(|i| line("tenant-b", i)))
        .collect();
    std::fs::write(&seed, lines).unwrap();
    let s = Server::start_with(&["--seed", seed.to_str().unwrap()]);
    let c = browser();
    let (status, home) = page(&c, &s.url(EXPLORER)).await;
    assert_eq!(status, 200);
    assert!(
        home.contains(&format!(
            "aria-label=\"more than 10,000 alerts of tenant {TENANT_A}\">10,000+<"
        )),
        "{home}"
    );
    assert!(
        home.contains("aria-label=\"3 alerts of tenant tenant-b\">3<"),
        "{home}"
    );
    assert!(home.contains("Counts stop above 10,000"), "{home}");
    let (_, tenant) = page(&c, &s.url(&format!("{EXPLORER}/tenant?tenant={TENANT_A}"))).await;
    assert!(tenant.contains(">10,000+<"), "{tenant}");
    let (_, other) = page(&c, &s.url(&format!("{EXPLORER}/tenant?tenant=tenant-b"))).await;
    assert!(
        !other.contains("10,000+") && other.contains(">3<"),
        "{other}"
    );
    // The set's own page counts every entity.
    let (_, list) = page(
        &c,
        &s.url(&format!(
            "{EXPLORER}/list?tenant={TENANT_A}&version=beta&set=alerts"
        )),
    )
    .await;
    assert!(list.contains("10001 matching entities"), "{list}");
}
