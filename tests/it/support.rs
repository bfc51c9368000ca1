//! The test harness: runs the real `graphsec` binary on 127.0.0.1:0 with its own data directory,
//! waits for its `listening on` line, and gives tests an HTTP client pointed at it.

use std::io::{BufRead, BufReader};
use std::path::Path;

use rustls::pki_types::pem::PemObject;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::pg;

use serde_json::Value;

pub const COLLECTION: &str = "/beta/security/cloudAppSecurityProfiles";
/// The tenant of the default client's token.
pub const TENANT_A: &str = "tenant-a";
pub const READ_WRITE: &str = "SecurityEvents.ReadWrite.All";
pub const READ: &str = "SecurityEvents.Read.All";
/// The permission Graph's tiIndicator pages name (delegated and application).
pub const TI: &str = "ThreatIndicators.ReadWrite.OwnedBy";
/// The permissions Graph's securityAction pages name (application only).
pub const SA_READ: &str = "SecurityActions.Read.All";
pub const SA_RW: &str = "SecurityActions.ReadWrite.All";
/// The default client's application roles: every set's documented write permission.
pub const EVERY_ROLE: [&str; 3] = [READ_WRITE, TI, SA_RW];

/// A running graphsec process.
pub struct Server {
    child: Option<Child>,
    pub base: String,
    pub data_dir: std::path::PathBuf,
    /// An application token for [`TENANT_A`] with [`EVERY_ROLE`] (empty with `--auth none`).
    pub token: String,
    // Held so the directory outlives the server; `None` when the caller owns the directory.
    _temp: Option<tempfile::TempDir>,
    pub client: reqwest::Client,
    /// The PostgreSQL database this server runs on, when the harness runs on PostgreSQL.
    pub database: Option<String>,
}

impl Server {
    /// A server on a fresh temporary data directory.
    pub fn start() -> Server {
        Self::start_with(&[])
    }

    pub fn start_with(extra: &[&str]) -> Server {
        let temp = tempfile::tempdir().expect("temp dir");
        let dir = temp.path().to_path_buf();
        let mut s = Self::start_in(&dir, extra);
        s._temp = Some(temp);
        s
    }

    /// A server with authentication off (every request is one tenant with full permissions).
    pub fn start_open() -> Server {
        Self::start_with(&["--auth", "none"])
    }

    /// [`Server::start_with`] with extra environment variables for the process.
    pub fn start_with_env(extra: &[&str], env: &[(&str, &str)]) -> Server {
        let temp = tempfile::tempdir().expect("temp dir");
        let dir = temp.path().to_path_buf();
        let mut s = Self::start_in_env(&dir, extra, env);
        s._temp = Some(temp);
        s
    }

    /// A server on a caller-owned data directory (for restarts).
    pub fn start_in(dir: &Path, extra: &[&str]) -> Server {
        Self::start_in_env(dir, extra, &[])
    }

    /// [`Server::start_in`] with extra environment variables for the process.
    pub fn start_in_env(dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
        // Under GRAPHSEC_TEST_STORE=postgres every server keeps its data in its own database
        // (named in its data directory, so a restart on the same directory finds it again),
        // unless the test names a store of its own.
        let database = (pg::selected()
            && !extra.contains(&"--in-memory")
            && !extra.contains(&"--database-url"))
        .then(|| pg::database_for(dir));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_graphsec"));
        cmd.arg("serve");
        // A test may name its own listener (e.g. 0.0.0.0:0, still reached via 127.0.0.1).
        if !extra.contains(&"--listen") {
            cmd.args(["--listen", "127.0.0.1:0"]);
        }
        cmd.arg("--data-dir").arg(dir).args(extra);
        if let Some(db) = &database {
            cmd.args(["--database-url", &pg::url(db)]);
        }
        cmd.envs(env.iter().copied());
        cmd.env("GRAPHSEC_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("spawn graphsec");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        let (token_tx, token_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(at) = line.find("listening on ") {
                    let _ = tx.send(line[at + "listening on ".len()..].trim().to_string());
                }
                if line.starts_with("graphsec dev token")
                    && let Some((_, token)) = line.rsplit_once(": ")
                {
                    let _ = token_tx.send(token.trim().to_string());
                }
            }
        });
        let base = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("graphsec did not print its listening line");
        // In-memory dev mode prints its token before the listening line.
        let printed_token = token_rx.try_recv().ok();
        let auth_off = extra.windows(2).any(|w| w == ["--auth", "none"]);
        // With real identity-provider keys the server has no dev key (and `graphsec token`
        // creates none): the default client then carries a dev token of a key of its own,
        // which such a server refuses, as it refuses every dev token.
        let jwks = extra.iter().any(|a| a.starts_with("--jwks"));
        let token = match printed_token {
            Some(t) => t,
            None if auth_off => String::new(),
            None if jwks => foreign_dev_token(TENANT_A, &[READ_WRITE]),
            None => match try_dev_token(dir, TENANT_A, &[], &EVERY_ROLE) {
                Ok(t) => t,
                Err(e) => {
                    // Not leaked: no `Server` owns the process yet.
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("dev token: {e}");
                }
            },
        };
        let client = client_for(
            dir,
            base.starts_with("https"),
            (!token.is_empty()).then_some(token.as_str()),
        );
        Server {
            child: Some(child),
            base,
            data_dir: dir.to_path_buf(),
            token,
            _temp: None,
            client,
            database,
        }
    }

    /// A dev token this server accepts.
    pub fn token_for(&self, tenant: &str, scopes: &[&str], roles: &[&str]) -> String {
        dev_token(&self.data_dir, tenant, scopes, roles)
    }

    /// A client that sends no credentials (but trusts the server's certificate).
    pub fn anonymous(&self) -> reqwest::Client {
        client_for(&self.data_dir, self.base.starts_with("https"), None)
    }

    /// A client that authenticates with `token`.
    pub fn client_with(&self, token: &str) -> reqwest::Client {
        client_for(&self.data_dir, self.base.starts_with("https"), Some(token))
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// The listener's `host:port`.
    pub fn addr(&self) -> String {
        self.base
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .to_string()
    }

    /// The server process's id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        c.wait().expect("wait")
    }

    pub async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn patch(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .patch(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request")
    }

    /// GET with query options (given unencoded; reqwest encodes them).
    pub async fn get_with(&self, path: &str, params: &[(&str, &str)]) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .query(params)
            .send()
            .await
            .expect("request")
    }

    pub async fn delete(&self, path: &str) -> reqwest::Response {
        self.client
            .delete(self.url(path))
            .send()
            .await
            .expect("request")
    }

    /// Creates a profile and returns its body (asserting 201).
    pub async fn create(&self, body: &Value) -> Value {
        let r = self.post(COLLECTION, body).await;
        let status = r.status();
        let v: Value = r.json().await.expect("json");
        assert_eq!(status, 201, "{v}");
        v
    }

    /// Every profile id of the default tenant, following next links.
    pub async fn all_ids(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut url = self.url(COLLECTION);
        loop {
            let v: Value = self
                .client
                .get(&url)
                .send()
                .await
                .expect("list")
                .json()
                .await
                .expect("json");
            for item in v["value"].as_array().expect("value array") {
                out.push(item["id"].as_str().expect("id").to_string());
            }
            match v["@odata.nextLink"].as_str() {
                Some(next) => url = next.to_string(),
                None => break,
            }
        }
        out
    }
}

fn dev_token(dir: &Path, tenant: &str, scopes: &[&str], roles: &[&str]) -> String {
    try_dev_token(dir, tenant, scopes, roles).expect("dev token")
}

fn try_dev_token(
    dir: &Path,
    tenant: &str,
    scopes: &[&str],
    roles: &[&str],
) -> Result<String, String> {
    let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
    let roles: Vec<String> = roles.iter().map(|s| s.to_string()).collect();
    graphsec::auth::issue_dev_token(dir, tenant, &scopes, &roles, 3600, None)
}

/// A well-formed dev token signed by a key no server knows.
fn foreign_dev_token(tenant: &str, scopes: &[&str]) -> String {
    let auth = graphsec::auth::Authenticator::new(graphsec::auth::AuthConfig::new(
        graphsec::auth::AuthMode::Dev,
    ))
    .expect("in-memory dev key");
    let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
    auth.issue_dev_token(tenant, &scopes, &[], 3600, None)
        .expect("dev token")
}

/// A reqwest client; over https it trusts exactly the server's self-signed certificate.
fn client_for(dir: &Path, https: bool, token: Option<&str>) -> reqwest::Client {
    // reqwest is built without a bundled crypto provider (one stack: aws-lc-rs).
    static PROVIDER: std::sync::Once = std::sync::Once::new();
    PROVIDER.call_once(|| {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    });
    let mut b = reqwest::Client::builder();
    if let Some(t) = token {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {t}").parse().expect("header"),
        );
        b = b.default_headers(headers);
    }
    if https {
        b = b.use_preconfigured_tls(tls_trusting(dir));
    }
    b.build().expect("client")
}

/// A rustls client configuration that trusts exactly the self-signed certificate in `dir`
/// (no ALPN: add `alpn_protocols` to offer HTTP/2).
pub fn tls_trusting(dir: &Path) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    let cert = dir.join(graphsec::tls::SELF_SIGNED_CERT_FILE);
    for c in rustls::pki_types::CertificateDer::pem_file_iter(&cert).expect("certificate file") {
        roots.add(c.expect("certificate")).expect("root");
    }
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("tls versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
        if let Some(db) = &self.database {
            pg::release(db);
        }
    }
}

/// Asserts a Graph error response and returns its message.
pub async fn expect_error(resp: reqwest::Response, status: u16, code: &str) -> String {
    assert_eq!(resp.status().as_u16(), status, "status");
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    assert!(ct.starts_with("application/json"), "content-type {ct}");
    assert!(
        resp.headers().get("request-id").is_some(),
        "request-id header"
    );
    let v: Value = resp.json().await.expect("error json");
    let e = &v["error"];
    assert_eq!(e["code"], code, "{v}");
    let inner = &e["innerError"];
    let date = inner["date"].as_str().expect("innerError.date");
    assert_eq!(date.len(), 19, "date {date} has no offset or fraction");
    assert!(
        inner["request-id"].is_string() && inner["client-request-id"].is_string(),
        "{v}"
    );
    e["message"].as_str().expect("message").to_string()
}

/// A service a test needs (PostgreSQL, haproxy, Chromium) is missing: outside CI one loud line
/// (the caller then returns, skipped); under `CI=true` a failure, so CI never passes without
/// running it. `what` names what is skipped, `why` what is missing and how to get it.
pub fn skip_or_fail(what: &str, why: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{why} (CI=true: {what} must run)");
    }
    // Straight to the process's stderr: the harness captures `eprintln!` of a passing test, and
    // a skip nobody sees would pass for a run.
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "!!!!!!!! SKIPPING {what}: {why} !!!!!!!!"
    );
}

/// The JSON body of a response, asserting its status (the body is in the failure message).
pub async fn json_of(r: reqwest::Response, status: u16) -> Value {
    let got = r.status().as_u16();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    assert_eq!(got, status, "{v}");
    v
}
