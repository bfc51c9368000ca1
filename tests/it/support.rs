//! The test harness: runs the real `graphsec` binary on 127.0.0.1:0 with its own data directory,
//! waits for its `listening on` line, and gives tests an HTTP client pointed at it.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

pub const COLLECTION: &str = "/beta/security/cloudAppSecurityProfiles";

/// A running graphsec process.
pub struct Server {
    child: Option<Child>,
    pub base: String,
    // Held so the directory outlives the server; `None` when the caller owns the directory.
    _temp: Option<tempfile::TempDir>,
    pub client: reqwest::Client,
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

    /// A server on a caller-owned data directory (for restarts).
    pub fn start_in(dir: &Path, extra: &[&str]) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_graphsec"));
        cmd.arg("serve")
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir)
            .args(extra)
            .env("GRAPHSEC_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("spawn graphsec");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(at) = line.find("listening on ") {
                    let _ = tx.send(line[at + "listening on ".len()..].trim().to_string());
                }
            }
        });
        let base = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("graphsec did not print its listening line");
        Server {
            child: Some(child),
            base,
            _temp: None,
            client: reqwest::Client::builder().build().expect("client"),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
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

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
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
