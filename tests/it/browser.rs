//! The data explorer in a real browser: Debian's Chromium (headless) driven by chromedriver over
//! the W3C WebDriver HTTP JSON protocol, spoken by the few functions of [`Browser`] over reqwest
//! (no WebDriver client crate). It picks a tenant and a set, filters, opens an entity, edits it
//! with the form and reads the change back through the Graph API; shows a bad filter's Graph
//! error; signs in off loopback; and checks the keyboard path, a narrow window and dark mode.
//!
//! A PNG of every page visited is written to `target/explorer-screenshots/` (kept by CI as an
//! artifact). Without `/usr/bin/chromium` or `chromedriver` (`scripts/install-test-tools`
//! installs both) the tests are skipped with one loud line; under `CI=true` they fail.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{self, READ_WRITE, Server, TENANT_A, json_of};

const EXPLORER: &str = "/_graphsec/explorer";
/// Debian's Chromium (the `chromium` package); chromedriver is looked up on `PATH`.
const CHROMIUM: &str = "/usr/bin/chromium";
/// The W3C key of an element reference in WebDriver answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
/// WebDriver's code points for the Enter and Tab keys.
const ENTER: &str = "\u{E007}";
const TAB: &str = "\u{E004}";
const TENANT_B: &str = "tenant-b";
const ADMIN: &str = "browser-admin-secret";
/// How long a page may take to show what a step waits for (a bound, not a measurement: slow CI
/// machines only make the wait longer).
const PATIENCE: Duration = Duration::from_secs(20);

/// chromedriver on `PATH`, else where Debian's `chromium-driver` puts it.
fn chromedriver() -> Option<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/bin")])
        .map(|d| d.join("chromedriver"))
        .find(|p| p.is_file())
}

/// Where the screenshots go: `target/explorer-screenshots/` (or under `$CARGO_TARGET_DIR`).
fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("explorer-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot directory");
    dir
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// One headless Chromium session behind its own chromedriver. Dropping it (also while a test
/// panics) ends the session, which closes Chromium, then kills chromedriver's process group.
struct Browser {
    http: reqwest::Client,
    port: u16,
    /// Empty until the session exists.
    session: String,
    driver: Child,
    // The browser profile; outlives Chromium (dropped after the fields above).
    profile: tempfile::TempDir,
}

impl Browser {
    /// A 1280x800 session, or `None` (after [`support::skip_or_fail`]) without the browser.
    async fn start(test: &str) -> Option<Browser> {
        let what = format!("browser::{test}");
        let Some(driver) = chromedriver() else {
            support::skip_or_fail(
                &what,
                "chromedriver not found; run scripts/install-test-tools",
            );
            return None;
        };
        if !Path::new(CHROMIUM).is_file() {
            support::skip_or_fail(
                &what,
                &format!("{CHROMIUM} not found; run scripts/install-test-tools"),
            );
            return None;
        }
        let profile = tempfile::tempdir().expect("profile dir");
        let port = free_port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group, so the guard can kill chromedriver and whatever it started.
            .process_group(0)
            .spawn()
            .expect("spawn chromedriver");
        let mut b = Browser {
            // A bound on every command, so a hung driver fails the test instead of hanging it.
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .expect("client"),
            port,
            session: String::new(),
            driver: child,
            profile,
        };
        let deadline = Instant::now() + PATIENCE;
        loop {
            let ready = match b.http.get(b.driver_url("/status")).send().await {
                Ok(r) => r
                    .json::<Value>()
                    .await
                    .is_ok_and(|v| v["value"]["ready"] == true),
                Err(_) => false,
            };
            if ready {
                break;
            }
            if let Ok(Some(status)) = b.driver.try_wait() {
                panic!("chromedriver exited ({status}) before it was ready");
            }
            assert!(Instant::now() < deadline, "chromedriver did not get ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,800",
                    // Containers often have a small /dev/shm.
                    "--disable-dev-shm-usage", "--no-first-run", "--lang=en-US",
                    format!("--user-data-dir={}", b.profile.path().display()),
                ],
            },
        }}});
        let v = b.raw(Method::POST, "/session", Some(caps)).await;
        b.session = v["sessionId"].as_str().expect("sessionId").to_owned();
        // Finding an element waits for it this long (pages load after a click or a key).
        b.cmd(
            Method::POST,
            "/timeouts",
            json!({"implicit": PATIENCE.as_millis() as u64}),
        )
        .await;
        Some(b)
    }

    fn driver_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// One WebDriver command against chromedriver; its `value`, or a panic with its error.
    async fn raw(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method.clone(), self.driver_url(path));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.expect("chromedriver request");
        let status = r.status();
        let v: Value = r.json().await.expect("WebDriver JSON");
        assert!(status.is_success(), "WebDriver {method} {path}: {v}");
        v["value"].clone()
    }

    /// A command of this session.
    async fn cmd(&self, method: Method, path: &str, body: Value) -> Value {
        let path = format!("/session/{}{path}", self.session);
        let body = (method != Method::GET && method != Method::DELETE).then_some(body);
        self.raw(method, &path, body).await
    }

    async fn goto(&self, url: &str) {
        self.cmd(Method::POST, "/url", json!({"url": url})).await;
    }

    async fn url(&self) -> String {
        let v = self.cmd(Method::GET, "/url", Value::Null).await;
        v.as_str().expect("url").to_owned()
    }

    /// The first element matching `css` (waiting up to [`PATIENCE`] for it).
    async fn find(&self, css: &str) -> String {
        let v = self
            .cmd(
                Method::POST,
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        v[ELEMENT].as_str().expect("element").to_owned()
    }

    async fn find_all(&self, css: &str) -> Vec<String> {
        let v = self
            .cmd(
                Method::POST,
                "/elements",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        v.as_array()
            .expect("elements")
            .iter()
            .map(|e| e[ELEMENT].as_str().expect("element").to_owned())
            .collect()
    }

    async fn text(&self, el: &str) -> String {
        let v = self
            .cmd(Method::GET, &format!("/element/{el}/text"), Value::Null)
            .await;
        v.as_str().expect("text").to_owned()
    }

    /// The text of the first element matching `css`.
    async fn text_of(&self, css: &str) -> String {
        let el = self.find(css).await;
        self.text(&el).await
    }

    async fn attribute(&self, el: &str, name: &str) -> Option<String> {
        let v = self
            .cmd(
                Method::GET,
                &format!("/element/{el}/attribute/{name}"),
                Value::Null,
            )
            .await;
        v.as_str().map(str::to_owned)
    }

    async fn click(&self, el: &str) {
        self.cmd(Method::POST, &format!("/element/{el}/click"), json!({}))
            .await;
    }

    async fn clear(&self, el: &str) {
        self.cmd(Method::POST, &format!("/element/{el}/clear"), json!({}))
            .await;
    }

    /// Types `text` into the element (focusing it first), as a keyboard would.
    async fn type_into(&self, el: &str, text: &str) {
        self.cmd(
            Method::POST,
            &format!("/element/{el}/value"),
            json!({"text": text}),
        )
        .await;
    }

    /// Presses and releases `key` on whatever has the focus (WebDriver actions: a real key
    /// event, so the browser moves the focus or activates the focused control itself).
    async fn press(&self, key: &str) {
        self.cmd(
            Method::POST,
            "/actions",
            json!({"actions": [{"type": "key", "id": "keyboard", "actions": [
                {"type": "keyDown", "value": key}, {"type": "keyUp", "value": key},
            ]}]}),
        )
        .await;
    }

    async fn script(&self, js: &str) -> Value {
        self.cmd(
            Method::POST,
            "/execute/sync",
            json!({"script": js, "args": []}),
        )
        .await
    }

    async fn set_window(&self, width: u32, height: u32) {
        self.cmd(
            Method::POST,
            "/window/rect",
            json!({"width": width, "height": height}),
        )
        .await;
    }

    /// A Chrome DevTools Protocol command (chromedriver's `goog/cdp/execute`).
    async fn cdp(&self, command: &str, params: Value) -> Value {
        self.cmd(
            Method::POST,
            "/goog/cdp/execute",
            json!({"cmd": command, "params": params}),
        )
        .await
    }

    /// A PNG of the whole page at the window's width, saved as
    /// `target/explorer-screenshots/NAME.png`. A page that fits the window is WebDriver's own
    /// screenshot (as the window shows it, scrollbars included); a longer one is DevTools'
    /// capture beyond the viewport, so the artifact shows what is below (the edit form under
    /// the JSON, say).
    async fn screenshot(&self, name: &str) {
        let metrics = self.cdp("Page.getLayoutMetrics", json!({})).await;
        let size = &metrics["cssContentSize"];
        let fits = size["height"].as_f64().unwrap()
            <= metrics["cssLayoutViewport"]["clientHeight"]
                .as_f64()
                .unwrap();
        let data = if fits {
            self.cmd(Method::GET, "/screenshot", Value::Null).await
        } else {
            let clip = json!({"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1});
            self.cdp(
                "Page.captureScreenshot",
                json!({"format": "png", "captureBeyondViewport": true, "clip": clip}),
            )
            .await["data"]
                .clone()
        };
        let png = base64::engine::general_purpose::STANDARD
            .decode(data.as_str().expect("base64 screenshot"))
            .expect("screenshot base64");
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        let path = screenshot_dir().join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write screenshot");
    }

    /// Waits until the address contains `part` (a click or a key navigates asynchronously).
    async fn wait_for_url(&self, part: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let url = self.url().await;
            if url.contains(part) {
                return url;
            }
            assert!(Instant::now() < deadline, "{url} never contained {part}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the first element matching `css` reads `expected`, asked in one script so a
    /// page being replaced cannot leave a stale reference.
    async fn wait_for_text(&self, css: &str, expected: &str) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let shown = self.text_now(css).await;
            if shown.as_deref() == Some(expected) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{css} never read {expected:?} (last {shown:?})"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The text of the first element matching `css` now, without waiting for it.
    async fn text_now(&self, css: &str) -> Option<String> {
        let v = self
            .cmd(
                Method::POST,
                "/execute/sync",
                json!({"script": "const e = document.querySelector(arguments[0]); return e && e.textContent.trim();", "args": [css]}),
            )
            .await;
        v.as_str().map(str::to_owned)
    }

    /// The page fits its window: no horizontal scrolling of the page itself (wide tables
    /// scroll inside their own container).
    async fn assert_fits(&self, page: &str) {
        let v = self
            .script(
                "return [document.documentElement.scrollWidth, window.innerWidth, location.href];",
            )
            .await;
        let (scroll, inner) = (v[0].as_u64().unwrap(), v[1].as_u64().unwrap());
        assert!(
            scroll <= inner,
            "{page} ({}) is {scroll}px wide in a {inner}px window",
            v[2]
        );
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Drop cannot await: the session's DELETE (which closes Chromium) goes over a plain
        // socket, bounded by timeouts so a hung driver cannot hang the test run.
        if !self.session.is_empty() {
            let _ = (|| -> std::io::Result<()> {
                let addr = ([127, 0, 0, 1], self.port).into();
                let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
                s.set_read_timeout(Some(Duration::from_secs(20)))?;
                write!(
                    s,
                    "DELETE /session/{} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    self.session, self.port
                )?;
                // chromedriver keeps the connection open despite `Connection: close`: read
                // until the answer's head has arrived (the answer means Chromium has quit).
                let mut answer = Vec::new();
                let mut chunk = [0u8; 4096];
                while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut chunk)? {
                        0 => break,
                        n => answer.extend_from_slice(&chunk[..n]),
                    }
                }
                Ok(())
            })();
        }
        // The whole group: chromedriver and anything of Chromium still alive.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.driver.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn alert(tenant: &str, severity: &str, title: &str) -> Value {
    json!({
        "azureTenantId": tenant, "title": title, "severity": severity, "status": "newAlert",
        "vendorInformation": {"provider": "ASC", "vendor": "Microsoft"},
    })
}

/// The table of the page, as rows of cell texts (the header row first).
async fn table(b: &Browser) -> Vec<Vec<String>> {
    let v = b
        .script(
            "return Array.from(document.querySelectorAll('main table tr'))
               .map(r => Array.from(r.cells).map(c => c.textContent.trim()));",
        )
        .await;
    serde_json::from_value(v).expect("rows of strings")
}

/// Relative luminance-ish of a CSS `rgb(r, g, b)` colour: enough to tell dark from light.
fn brightness(css: &str) -> u32 {
    css.trim_start_matches("rgba(")
        .trim_start_matches("rgb(")
        .trim_end_matches(')')
        .split(',')
        .take(3)
        .map(|c| c.trim().parse::<u32>().expect("colour component"))
        .sum()
}

#[tokio::test]
async fn pick_filter_open_edit_and_read_back_through_the_api() {
    let s = Server::start();
    // Two tenants' alerts, seeded through the Graph API.
    let mut high = Vec::new();
    for (severity, title) in [
        ("high", "Suspicious sign-in"),
        ("low", "Port scan"),
        ("high", "Ransomware behaviour"),
        ("medium", "Unusual download"),
        ("high", "Credential theft"),
    ] {
        let r = s
            .post("/beta/security/alerts", &alert(TENANT_A, severity, title))
            .await;
        let v = json_of(r, 201).await;
        if severity == "high" {
            high.push(v["id"].as_str().unwrap().to_owned());
        }
    }
    let other = s.client_with(&s.token_for(TENANT_B, &[], &[READ_WRITE]));
    let mut theirs = Vec::new();
    for title in ["Other tenant's breach", "Other tenant's malware"] {
        let r = other
            .post(s.url("/beta/security/alerts"))
            .json(&alert(TENANT_B, "high", title))
            .send()
            .await
            .unwrap();
        theirs.push(json_of(r, 201).await["id"].as_str().unwrap().to_owned());
    }

    let Some(b) = Browser::start("pick_filter_open_edit_and_read_back_through_the_api").await
    else {
        return;
    };

    // Home: both tenants with their alert counts.
    b.goto(&s.url(EXPLORER)).await;
    b.wait_for_text("h1", "Tenants").await;
    b.find(&format!("a[aria-label='5 alerts of tenant {TENANT_A}']"))
        .await;
    b.find(&format!("a[aria-label='2 alerts of tenant {TENANT_B}']"))
        .await;
    b.assert_fits("home").await;
    b.screenshot("01-home").await;

    // Without a mouse: the first Tab shows the skip link, further Tabs reach the tenant's link
    // with a visible focus ring, Enter follows it.
    b.press(TAB).await;
    let skip = b
        .script(
            "const a = document.activeElement;
             return [a.textContent, a.getBoundingClientRect().left];",
        )
        .await;
    assert_eq!(skip[0], "Skip to content", "{skip}");
    assert!(skip[1].as_f64().unwrap() >= 0.0, "visible when focused");
    let mut reached = false;
    for _ in 0..20 {
        b.press(TAB).await;
        let focused = b
            .script("return document.activeElement.textContent.trim();")
            .await;
        if focused == TENANT_A {
            reached = true;
            break;
        }
    }
    assert!(reached, "Tab never reached the tenant link");
    let outline = b
        .script("return getComputedStyle(document.activeElement).outlineStyle;")
        .await;
    assert_eq!(outline, "solid", "the keyboard focus is visible");
    b.press(ENTER).await;
    b.wait_for_url("/tenant?").await;
    b.wait_for_text("h1", &format!("Tenant {TENANT_A}")).await;
    b.assert_fits("tenant").await;
    b.screenshot("02-tenant").await;

    // Pick `alerts` of /beta (with the mouse this time).
    let mut alerts = None;
    for a in b
        .find_all("section[aria-labelledby='v-beta'] tbody th a")
        .await
    {
        if b.text(&a).await == "alerts" {
            alerts = Some(a);
        }
    }
    b.click(&alerts.expect("beta alerts link")).await;
    b.wait_for_url("set=alerts").await;
    b.wait_for_text("h1", &format!("alerts of {TENANT_A}"))
        .await;
    b.wait_for_text("p.count", "5 matching entities · New alert")
        .await;
    b.assert_fits("list").await;
    b.screenshot("03-alerts").await;

    // Filter with the keyboard: type, Enter submits the form.
    let filter = b.find("#filter").await;
    b.type_into(&filter, "severity eq 'high'").await;
    b.type_into(&filter, ENTER).await;
    let filtered_url = b.wait_for_url("filter=").await;
    b.wait_for_text("p.count", "3 matching entities · New alert")
        .await;
    let rows = table(&b).await;
    let severity = rows[0]
        .iter()
        .position(|h| h == "severity")
        .expect("a severity column");
    let mut listed: Vec<String> = rows[1..].iter().map(|r| r[0].clone()).collect();
    for r in &rows[1..] {
        assert_eq!(r[severity], "high", "{r:?}");
    }
    listed.sort();
    high.sort();
    assert_eq!(listed, high, "only tenant A's high alerts");
    assert!(theirs.iter().all(|id| !listed.contains(id)));
    assert_eq!(
        b.attribute(&b.find("#filter").await, "value")
            .await
            .as_deref(),
        Some("severity eq 'high'"),
        "the form keeps the filter"
    );
    b.assert_fits("filtered list").await;
    b.screenshot("04-alerts-high").await;

    // Open one.
    let first = b.find("main tbody th a").await;
    let id = b.text(&first).await;
    b.click(&first).await;
    b.wait_for_url("/entity?").await;
    let etag = b.text_of("#etag").await;
    assert!(
        b.text_of("pre.json")
            .await
            .contains("\"severity\": \"high\"")
    );
    b.assert_fits("entity").await;
    b.screenshot("05-entity").await;

    // Change its status with the edit form: the page shows the new ETag.
    let edit = b.find("#edit").await;
    b.clear(&edit).await;
    b.type_into(
        &edit,
        r#"{"status": "resolved", "vendorInformation": {"provider": "ASC", "vendor": "Microsoft"}}"#,
    )
    .await;
    b.click(&b.find("form[action$='/update'] button[type=submit]").await)
        .await;
    let deadline = Instant::now() + PATIENCE;
    let new_etag = loop {
        match b.text_now("#etag").await {
            Some(shown) if shown != etag => break shown,
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "the ETag on the page never changed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        b.text_of("pre.json")
            .await
            .contains("\"status\": \"resolved\"")
    );
    b.screenshot("06-entity-edited").await;

    // The Graph API sees the change, with the ETag the page shows.
    for version in ["beta", "v1.0"] {
        let r = s.get(&format!("/{version}/security/alerts/{id}")).await;
        let header = r.headers()["etag"].to_str().unwrap().to_owned();
        let v = json_of(r, 200).await;
        assert_eq!(v["status"], "resolved", "{v}");
        assert_eq!(header, new_etag, "{version}");
    }

    // A bad filter shows Graph's own error code and message.
    let bad = "severity eq 'nope' and";
    b.goto(&filtered_url).await;
    let filter = b.find("#filter").await;
    b.clear(&filter).await;
    b.type_into(&filter, &format!("{bad}{ENTER}")).await;
    let message = b.text_of(".error .message").await;
    let api = s
        .get_with("/v1.0/security/alerts", &[("$filter", bad)])
        .await;
    let expected = support::expect_error(api, 400, "BadRequest").await;
    assert_eq!(message, expected);
    assert_eq!(b.text_of(".error strong").await, "BadRequest");
    b.screenshot("07-bad-filter").await;

    // A narrow window: every page fits, wide tables scroll inside their own box.
    b.set_window(420, 800).await;
    let entity_url = s.url(&format!(
        "{EXPLORER}/entity?tenant={TENANT_A}&version=beta&set=alerts&id={id}"
    ));
    for (name, url) in [
        ("home", s.url(EXPLORER)),
        (
            "tenant",
            s.url(&format!("{EXPLORER}/tenant?tenant={TENANT_A}")),
        ),
        ("entity", entity_url.clone()),
        ("filtered list", filtered_url.clone()),
    ] {
        b.goto(&url).await;
        b.find("h1").await;
        b.assert_fits(name).await;
    }
    b.screenshot("08-narrow-alerts-high").await;
    b.goto(&entity_url).await;
    b.screenshot("09-narrow-entity").await;
    b.set_window(1280, 800).await;

    // Dark mode when the system asks for it (prefers-color-scheme emulated through CDP).
    b.goto(&filtered_url).await;
    let colours = "const s = getComputedStyle(document.body); return [s.backgroundColor, s.color];";
    let light = b.script(colours).await;
    b.cdp(
        "Emulation.setEmulatedMedia",
        json!({"features": [{"name": "prefers-color-scheme", "value": "dark"}]}),
    )
    .await;
    let dark = b.script(colours).await;
    assert_ne!(light, dark);
    let (light_bg, dark_bg) = (
        brightness(light[0].as_str().unwrap()),
        brightness(dark[0].as_str().unwrap()),
    );
    assert!(dark_bg < light_bg, "{light} -> {dark}");
    assert!(
        brightness(dark[1].as_str().unwrap()) > dark_bg,
        "light text on the dark background: {dark}"
    );
    b.screenshot("10-dark-alerts-high").await;
    b.goto(&entity_url).await;
    b.find("#etag").await;
    b.screenshot("11-dark-entity").await;
}

#[tokio::test]
async fn off_loopback_the_browser_needs_the_admin_token() {
    // Without --admin-token, off loopback: closed, and the page says how to open it.
    let closed = Server::start_with(&["--listen", "0.0.0.0:0"]);
    let s = Server::start_with(&["--listen", "0.0.0.0:0", "--admin-token", ADMIN]);
    json_of(
        s.post(
            "/beta/security/alerts",
            &alert(TENANT_A, "high", "Seen after sign-in"),
        )
        .await,
        201,
    )
    .await;
    let Some(b) = Browser::start("off_loopback_the_browser_needs_the_admin_token").await else {
        return;
    };
    let explorer = |s: &Server| format!("{}{EXPLORER}", s.base.replace("0.0.0.0", "127.0.0.1"));

    b.goto(&explorer(&closed)).await;
    assert!(
        b.text_of(".error .message")
            .await
            .contains("Start it with --admin-token"),
    );
    b.screenshot("12-closed-off-loopback").await;

    // With --admin-token: the sign-in form, focused on the token field.
    b.goto(&explorer(&s)).await;
    b.wait_for_text("h1", "Sign in").await;
    let focused = b.script("return document.activeElement.id;").await;
    assert_eq!(focused, "token", "the token field has the focus");
    b.screenshot("13-sign-in").await;
    // A wrong token is refused on the page; the right one, typed and sent with Enter, opens it.
    let token = b.find("#token").await;
    b.type_into(&token, &format!("wrong{ENTER}")).await;
    b.wait_for_text(".error", "That is not the server's admin token.")
        .await;
    b.screenshot("14-sign-in-refused").await;
    let token = b.find("#token").await;
    b.type_into(&token, &format!("{ADMIN}{ENTER}")).await;
    b.wait_for_text("h1", "Tenants").await;
    b.find(&format!("a[aria-label='1 alerts of tenant {TENANT_A}']"))
        .await;
    b.screenshot("15-signed-in").await;
    // The session cookie opens the other pages too.
    b.goto(&format!("{}/tenant?tenant={TENANT_A}", explorer(&s)))
        .await;
    b.wait_for_text("h1", &format!("Tenant {TENANT_A}")).await;
    // Signing out closes it again.
    b.goto(&explorer(&s)).await;
    b.click(&b.find("form[action$='/logout'] button").await)
        .await;
    b.wait_for_text("h1", "Sign in").await;
}
