//! `--https-proxy`: an unmodified client keeps Microsoft's URLs and reaches graphsec through
//! HTTP CONNECT, trusting only graphsec's development CA; other hosts are refused without any
//! connection being opened, and the flag is for development mode only.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use rustls::pki_types::pem::PemObject;
use serde_json::{Value, json};

use crate::support::{Server, json_of};

const GRAPH_DEFAULT: &str = "https://graph.microsoft.com/.default";
const CA_FILE: &str = "graphsec-dev-ca.pem";

/// A client whose only route to https URLs is graphsec as its proxy, trusting exactly the CA in
/// `ca` (ALPN `alpn`: empty for HTTP/1.1 only).
fn proxied_client(s: &Server, ca: &Path, alpn: &[&[u8]]) -> reqwest::Client {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_file_iter(ca).expect("CA file") {
        roots.add(c.expect("certificate")).expect("root");
    }
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("tls versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    reqwest::Client::builder()
        // No proxy from the environment: this test decides where requests go.
        .no_proxy()
        .proxy(reqwest::Proxy::https(&s.base).expect("proxy url"))
        .use_preconfigured_tls(tls)
        .build()
        .expect("client")
}

fn alert(title: &str) -> Value {
    json!({"title": title, "azureTenantId": "t", "severity": "high", "status": "newAlert",
           "vendorInformation": {"provider": "p", "vendor": "v"}})
}

fn claims(token: &str) -> Value {
    use base64::Engine;
    let part = token.split('.').nth(1).expect("payload");
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .expect("base64"),
    )
    .expect("claims")
}

/// Sends `request` on a fresh TCP connection to the server; the response head and what
/// followed it in the same reads (a CONNECT answer has at most a small body).
fn raw(s: &Server, request: &str) -> String {
    let addr = s.base.trim_start_matches("http://");
    let mut tcp = std::net::TcpStream::connect(addr).expect("connect");
    tcp.write_all(request.as_bytes()).expect("write");
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    // Read the head, then the body by its Content-Length (the server keeps the connection).
    loop {
        let n = tcp.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&out).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                })
                .unwrap_or(0);
            if body.len() >= length {
                return text;
            }
        }
    }
    String::from_utf8_lossy(&out).to_string()
}

#[tokio::test]
async fn an_unmodified_client_gets_its_token_and_graph_data_through_the_proxy() {
    let s = Server::start_with(&["--https-proxy"]);
    let ca = s.data_dir.join(CA_FILE);
    let c = proxied_client(&s, &ca, &[]);

    // Entra's token endpoint, at Entra's URL.
    let r = c
        .post("https://login.microsoftonline.com/contoso/oauth2/v2.0/token")
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "an-app"),
            ("client_secret", "its-secret"),
            ("scope", GRAPH_DEFAULT),
        ])
        .send()
        .await
        .unwrap();
    let t = json_of(r, 200).await;
    let token = t["access_token"].as_str().unwrap().to_string();
    assert_eq!(
        claims(&token)["iss"],
        "https://login.microsoftonline.com/contoso/v2.0"
    );
    // Discovery names Entra's host, as Entra does for itself.
    let doc = json_of(
        c.get("https://login.microsoftonline.com/contoso/v2.0/.well-known/openid-configuration")
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(
        doc["token_endpoint"],
        "https://login.microsoftonline.com/contoso/oauth2/v2.0/token"
    );
    assert_eq!(doc["msgraph_host"], "graph.microsoft.com");
    let inst = json_of(
        c.get("https://login.microsoftonline.com/common/discovery/instance")
            .query(&[
                ("api-version", "1.1"),
                (
                    "authorization_endpoint",
                    "https://login.microsoftonline.com/contoso/oauth2/v2.0/authorize",
                ),
            ])
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(
        inst["tenant_discovery_endpoint"],
        "https://login.microsoftonline.com/contoso/v2.0/.well-known/openid-configuration"
    );
    assert_eq!(
        inst["metadata"][0]["preferred_network"],
        "login.microsoftonline.com"
    );

    // Graph, at Graph's URL, with that token; the URLs graphsec writes are Graph's.
    for title in ["first", "second"] {
        let r = c
            .post("https://graph.microsoft.com/beta/security/alerts")
            .bearer_auth(&token)
            .json(&alert(title))
            .send()
            .await
            .unwrap();
        let location = r.headers()["location"].to_str().unwrap().to_string();
        assert!(
            location.starts_with("https://graph.microsoft.com/beta/security/alerts('"),
            "{location}"
        );
        json_of(r, 201).await;
    }
    let page = json_of(
        c.get("https://graph.microsoft.com/beta/security/alerts")
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(
        page["@odata.context"],
        "https://graph.microsoft.com/beta/$metadata#security/alerts"
    );
    assert_eq!(page["value"].as_array().unwrap().len(), 2);
    // v1.0, and a next link that goes back through the proxy.
    let first = json_of(
        c.get("https://graph.microsoft.com/v1.0/security/alerts?$top=1")
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(
        first["@odata.context"],
        "https://graph.microsoft.com/v1.0/$metadata#security/alerts"
    );
    let next = first["@odata.nextLink"].as_str().unwrap().to_string();
    assert!(
        next.starts_with("https://graph.microsoft.com/v1.0/security/alerts?"),
        "{next}"
    );
    let second = json_of(c.get(&next).bearer_auth(&token).send().await.unwrap(), 200).await;
    assert_eq!(second["value"].as_array().unwrap().len(), 1);
    assert_ne!(second["value"][0]["id"], first["value"][0]["id"]);
    // $batch sub-requests write Graph's URLs too.
    let batch = json_of(
        c.post("https://graph.microsoft.com/v1.0/$batch")
            .bearer_auth(&token)
            .json(&json!({"requests": [{"id": "1", "method": "GET", "url": "/security/alerts?$top=1"}]}))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    let sub = &batch["responses"][0]["body"];
    assert!(
        sub["@odata.nextLink"]
            .as_str()
            .unwrap()
            .starts_with("https://graph.microsoft.com/v1.0/"),
        "{sub}"
    );

    // HTTP/2 inside the tunnel, by ALPN.
    let h2 = proxied_client(&s, &ca, &[b"h2", b"http/1.1"]);
    let r = h2
        .get("https://graph.microsoft.com/v1.0/security/alerts")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(json_of(r, 200).await["value"].as_array().unwrap().len(), 2);

    // Direct requests are as before: graphsec's own address in the URLs.
    let direct = json_of(
        s.client_with(&token)
            .get(s.url("/beta/security/alerts"))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(
        direct["@odata.context"],
        format!("{}/beta/$metadata#security/alerts", s.base)
    );

    // The CA is kept: a restart on the same data directory serves with the same one.
    let pem = std::fs::read(&ca).unwrap();
    let dir = s.data_dir.clone();
    // Waited for off the runtime: the HTTP/2 client answers the server's shutdown PING from
    // this runtime, and an unanswered one holds the graceful shutdown until its timeout.
    let _s = tokio::task::spawn_blocking(move || {
        let mut s = s;
        assert!(s.terminate().success());
        s
    })
    .await
    .unwrap();
    drop(h2);
    let again = Server::start_in(&dir, &["--https-proxy"]);
    assert_eq!(std::fs::read(&ca).unwrap(), pem);
    let c = proxied_client(&again, &ca, &[]);
    let r = c
        .get("https://graph.microsoft.com/beta/security/alerts")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(r, 200).await["value"].as_array().unwrap().len(), 2);
}

/// On a TLS listener the proxy is an https:// one: the client trusts the listener's certificate
/// and the development CA.
#[tokio::test]
async fn over_a_tls_listener_the_proxy_is_https() {
    let s = Server::start_with(&["--tls-self-signed", "--https-proxy"]);
    assert!(s.base.starts_with("https://"));
    let mut roots = rustls::RootCertStore::empty();
    for file in [CA_FILE, graphsec::tls::SELF_SIGNED_CERT_FILE] {
        for c in rustls::pki_types::CertificateDer::pem_file_iter(s.data_dir.join(file)).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
    }
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let c = reqwest::Client::builder()
        .no_proxy()
        .proxy(reqwest::Proxy::https(s.base.replace("127.0.0.1", "localhost")).unwrap())
        .use_preconfigured_tls(tls)
        .build()
        .unwrap();
    let page = json_of(
        c.get("https://graph.microsoft.com/beta/security/alerts")
            .bearer_auth(&s.token)
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(
        page["@odata.context"],
        "https://graph.microsoft.com/beta/$metadata#security/alerts"
    );
}

#[tokio::test]
async fn other_hosts_are_refused_and_no_connection_is_opened() {
    let s = Server::start_with(&["--https-proxy"]);
    // A host graphsec could reach, were it a forwarding proxy: a listener of this test.
    let bystander = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target = bystander.local_addr().unwrap().to_string();
    let answer = raw(
        &s,
        &format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n"),
    );
    // The reason is in the status line too: proxy clients often show nothing else.
    let status_line = answer.lines().next().unwrap();
    assert!(status_line.starts_with("HTTP/1.1 403 "), "{answer}");
    assert!(status_line.contains("set NO_PROXY"), "{status_line}");
    let (_, body) = answer.split_once("\r\n\r\n").unwrap();
    let body: Value = serde_json::from_str(body).unwrap();
    assert_eq!(body["error"]["code"], "hostNotIntercepted");
    // Nothing reached the bystander: graphsec answered without connecting anywhere (a
    // forwarding proxy connects before it answers 200, and the kernel would have queued it).
    bystander.set_nonblocking(true).unwrap();
    assert_eq!(
        bystander.accept().map(|_| ()).unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock
    );
    for target in ["example.com:443", "graph.microsoft.com:8443"] {
        let answer = raw(
            &s,
            &format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n"),
        );
        assert!(answer.starts_with("HTTP/1.1 403 "), "{target}: {answer}");
    }
    // A client using the proxy for such a host fails, with the reason.
    let c = proxied_client(&s, &s.data_dir.join(CA_FILE), &[]);
    let err = c.get("https://example.com/").send().await.unwrap_err();
    assert!(
        err.is_connect() || err.to_string().contains("403"),
        "{err:?}"
    );
    // A client that does not trust the CA cannot talk to the intercepted hosts.
    let untrusting = reqwest::Client::builder()
        .no_proxy()
        .proxy(reqwest::Proxy::https(&s.base).unwrap())
        .use_preconfigured_tls(
            rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
                rustls::crypto::aws_lc_rs::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth(),
        )
        .build()
        .unwrap();
    assert!(
        untrusting
            .get("https://graph.microsoft.com/v1.0/security/alerts")
            .send()
            .await
            .is_err()
    );
    // The server is unharmed.
    assert_eq!(s.get("/healthz").await.status(), 200);
}

#[tokio::test]
async fn without_the_flag_connect_is_refused() {
    let s = Server::start();
    // With a token or without one (the router would ask for one, then find no resource).
    for auth in [
        String::new(),
        format!("Authorization: Bearer {}\r\n", s.token),
    ] {
        let answer = raw(
            &s,
            &format!(
                "CONNECT graph.microsoft.com:443 HTTP/1.1\r\nHost: graph.microsoft.com:443\r\n{auth}\r\n"
            ),
        );
        assert!(answer.starts_with("HTTP/1.1 405 "), "{answer}");
        assert!(answer.contains("--https-proxy"), "{answer}");
    }
    assert!(!s.data_dir.join(CA_FILE).exists());
}

#[test]
fn the_flag_is_for_development_mode_only() {
    let idp = tempfile::tempdir().unwrap();
    let dev = graphsec::auth::Authenticator::from_args(
        &graphsec::auth::AuthArgs::default(),
        Some(idp.path()),
    )
    .unwrap();
    let jwks = idp.path().join("jwks.json");
    std::fs::write(&jwks, dev.dev_public_jwks().unwrap().to_string()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_graphsec"))
        .args([
            "serve",
            "--in-memory",
            "--listen",
            "127.0.0.1:0",
            "--jwks-file",
        ])
        .arg(&jwks)
        .arg("--https-proxy")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("development mode only"),
        "{err}"
    );
    // --dev-ca belongs to --https-proxy.
    let out = Command::new(env!("CARGO_BIN_EXE_graphsec"))
        .args(["serve", "--in-memory", "--dev-ca", "x"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--https-proxy"));
}

/// In memory, the CA lives in the process: its certificate goes to a temporary file the startup
/// line names, removed at shutdown. `--dev-ca DIR` keeps one instead.
#[tokio::test]
async fn in_memory_the_startup_line_names_the_ca_file() {
    // reqwest has no crypto provider of its own (one stack: aws-lc-rs).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let kept = tempfile::tempdir().unwrap();
    for dev_ca in [None, Some(kept.path())] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_graphsec"));
        cmd.args([
            "serve",
            "--in-memory",
            "--listen",
            "127.0.0.1:0",
            "--https-proxy",
        ]);
        if let Some(dir) = dev_ca {
            cmd.arg("--dev-ca").arg(dir);
        }
        let mut child = cmd
            .env("GRAPHSEC_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        let (mut ca, mut proxy) = (None, None);
        while ca.is_none() {
            line.clear();
            assert!(out.read_line(&mut line).unwrap() > 0, "no proxy line");
            if let Some((_, rest)) = line.split_once("HTTPS_PROXY=") {
                proxy = rest.split_whitespace().next().map(str::to_owned);
                let (_, trust) = rest.split_once(" and trust ").unwrap();
                ca = trust
                    .split_whitespace()
                    .next()
                    .map(std::path::PathBuf::from);
            }
        }
        let (ca, proxy) = (ca.unwrap(), proxy.unwrap());
        assert!(proxy.starts_with("http://127.0.0.1:"), "{proxy}");
        match dev_ca {
            None => assert!(ca.starts_with(std::env::temp_dir()), "{}", ca.display()),
            Some(dir) => assert_eq!(ca, dir.canonicalize().unwrap().join(CA_FILE)),
        }
        let pem = std::fs::read_to_string(&ca).unwrap();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
        // Once a request is answered, the server is in its loop and handles SIGTERM.
        let health = reqwest::get(format!("{proxy}/healthz")).await.unwrap();
        assert_eq!(health.status(), 200);
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let status = child.wait().unwrap();
        assert!(status.success(), "{status:?}");
        assert_eq!(ca.exists(), dev_ca.is_some(), "{}", ca.display());
    }
}
