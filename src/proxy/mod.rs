//! `--https-proxy` (development mode): graphsec as the HTTPS proxy of an unmodified application,
//! so that it keeps Microsoft's URLs (`https://login.microsoftonline.com/…`,
//! `https://graph.microsoft.com/…`) and reaches graphsec with nothing but two environment
//! settings: `HTTPS_PROXY=http://127.0.0.1:PORT` and trust of graphsec's development CA
//! (`SSL_CERT_FILE`/`REQUESTS_CA_BUNDLE` for Python, `NODE_EXTRA_CA_CERTS` for Node.js). This is
//! how emulators such as LocalStack, and mitmproxy, meet clients that cannot be re-pointed.
//!
//! # What happens on the wire
//!
//! The client sends `CONNECT graph.microsoft.com:443 HTTP/1.1` to graphsec's listener
//! (`crate::serve` takes CONNECT aside before the Graph router, since its authority-form target
//! has no path). For a host of [`INTERCEPTED_HOSTS`] on port 443 graphsec answers 200, takes the
//! connection over (`hyper::upgrade`), completes the client's TLS handshake with a leaf
//! certificate for that host signed by the development CA ([`ca`]), and serves the same
//! application on it (HTTP/2 or HTTP/1.1 by ALPN) with the same per-connection limits. Requests
//! in the tunnel carry [`Intercepted`], so the URLs graphsec writes (`@odata.context`,
//! `@odata.nextLink`, `Location`, the token service's documents) are `https://` URLs of the
//! host the client named, and go back through the proxy.
//!
//! Any other host or port gets 403 with the reason: graphsec never opens a connection anywhere,
//! so it is not an open proxy and sends nothing to the internet. Applications set `NO_PROXY` for
//! the hosts they reach directly.
//!
//! Without `--https-proxy`, CONNECT gets 405 ([`not_a_proxy`]), saying so.

pub mod ca;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use http::{HeaderValue, Request, Response, StatusCode, Version, header};
use hyper_util::rt::TokioIo;
use rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

pub use ca::DevCa;

/// The hosts graphsec answers for as a proxy, each on port 443: Entra ID's and Microsoft Graph's
/// in the global cloud and in the national clouds (Microsoft's "National cloud deployments" and
/// Entra's instance discovery aliases, `crate::auth::sts::ENTRA_CLOUDS`). The development CA is
/// name-constrained to exactly these.
///
/// | host | what it is |
/// |---|---|
/// | `login.microsoftonline.com` | Entra ID (global): token endpoint, discovery, keys |
/// | `login.microsoft.com`, `login.windows.net`, `sts.windows.net` | its aliases (`sts.windows.net` issues v1 tokens) |
/// | `graph.microsoft.com` | Microsoft Graph (global) |
/// | `login.microsoftonline.us`, `login.usgovcloudapi.net` | Entra ID for US Government |
/// | `graph.microsoft.us`, `dod-graph.microsoft.us` | Microsoft Graph for US Government (L4, L5/DoD) |
/// | `login.partner.microsoftonline.cn`, `login.chinacloudapi.cn` | Entra ID operated by 21Vianet (China) |
/// | `microsoftgraph.chinacloudapi.cn` | Microsoft Graph operated by 21Vianet |
pub const INTERCEPTED_HOSTS: [&str; 12] = [
    "login.microsoftonline.com",
    "login.microsoft.com",
    "login.windows.net",
    "sts.windows.net",
    "graph.microsoft.com",
    "login.microsoftonline.us",
    "login.usgovcloudapi.net",
    "graph.microsoft.us",
    "dod-graph.microsoft.us",
    "login.partner.microsoftonline.cn",
    "login.chinacloudapi.cn",
    "microsoftgraph.chinacloudapi.cn",
];
/// The one port intercepted: where those hosts serve HTTPS.
const INTERCEPTED_PORT: u16 = 443;

/// Proxy flags of `graphsec serve`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ProxyArgs {
    /// Development mode only: also be the HTTPS proxy (HTTP/1.1 CONNECT) of applications that
    /// keep Microsoft's URLs: login.microsoftonline.com, graph.microsoft.com and their national
    /// clouds' equivalents are answered by graphsec itself over TLS with certificates of a
    /// development CA (graphsec-dev-ca.pem); every other host is refused (403) and graphsec
    /// connects nowhere. Run the application with HTTPS_PROXY=http://HOST:PORT and that CA
    /// trusted (the startup line says how).
    #[arg(long, env = "GRAPHSEC_HTTPS_PROXY")]
    pub https_proxy: bool,

    /// Directory of --https-proxy's development CA (graphsec-dev-ca.pem, the file to trust, and
    /// graphsec-dev-ca-key.pem), created on first use and reused. Default: the data directory;
    /// with --in-memory, a CA of this process whose certificate is written to a temporary file
    /// named at startup.
    #[arg(
        long,
        env = "GRAPHSEC_DEV_CA",
        value_name = "DIR",
        requires = "https_proxy"
    )]
    pub dev_ca: Option<PathBuf>,
}

/// Marks a request that arrived through an intercepted tunnel: it was sent over TLS (to the
/// host in its `Host`), whatever the listener speaks.
#[derive(Debug, Clone, Copy)]
pub struct Intercepted;

/// Whether the request reached graphsec over TLS: on a TLS listener, or inside an intercepted
/// tunnel. URLs written back to the client use `https` then.
pub fn https(listener_tls: bool, extensions: &http::Extensions) -> bool {
    listener_tls || extensions.get::<Intercepted>().is_some()
}

/// The proxy of `--https-proxy`: the hosts it answers for and the CA of their certificates.
pub struct Interceptor {
    ca: DevCa,
}

impl Interceptor {
    /// `None` without `--https-proxy`; else the CA in `--dev-ca`, the data directory
    /// (`data_dir`, `None` with `--in-memory`) or a temporary file ([`ca`]). Whether the server
    /// is in development mode is the caller's check (`crate::server`).
    pub fn from_args(
        args: &ProxyArgs,
        data_dir: Option<&Path>,
    ) -> Result<Option<Arc<Interceptor>>, String> {
        if !args.https_proxy {
            return Ok(None);
        }
        let dir = args.dev_ca.as_deref().or(data_dir);
        Ok(Some(Arc::new(Interceptor {
            ca: DevCa::open(dir)?,
        })))
    }

    /// The CA certificate file applications must trust.
    pub fn ca_path(&self) -> &Path {
        self.ca.cert_path()
    }

    /// Removes what the process wrote for itself alone (an in-memory CA's certificate file).
    pub fn cleanup(&self) {
        self.ca.cleanup();
    }

    /// Answers a CONNECT request. For an intercepted host and port: 200, with the tunnel left in
    /// `slot` for the connection's task to serve once hyper hands the connection over. Otherwise
    /// 403 (another host or port), 400 (no `host:port` target) or 405 (a CONNECT inside a
    /// tunnel, or over HTTP/2), each with the reason in the body and, for HTTP/1.1 clients that
    /// only show the status line, in the reason phrase.
    ///
    /// `slot` is `None` inside a tunnel (there is nothing further to connect to).
    pub fn answer_connect<B>(
        &self,
        req: &mut Request<B>,
        slot: Option<&PendingSlot>,
    ) -> Response<Body> {
        let Some(slot) = slot else {
            return refusal(
                StatusCode::METHOD_NOT_ALLOWED,
                "connectInTunnel",
                "CONNECT inside an intercepted tunnel",
                "This connection is already a tunnel to an intercepted host; CONNECT goes to the proxy itself.".into(),
            );
        };
        if !matches!(req.version(), Version::HTTP_11 | Version::HTTP_10) {
            return refusal(
                StatusCode::METHOD_NOT_ALLOWED,
                "connectOverHttp2",
                "graphsec's proxy takes CONNECT over HTTP/1.1",
                "graphsec's proxy takes CONNECT over HTTP/1.1 (as HTTPS_PROXY=http://… clients send it).".into(),
            );
        }
        let Some(authority) = req.uri().authority() else {
            return refusal(
                StatusCode::BAD_REQUEST,
                "badConnectTarget",
                "CONNECT needs a host:port target",
                "CONNECT needs a host:port target (RFC 9110 §9.3.6).".into(),
            );
        };
        let host = authority.host().trim_end_matches('.').to_ascii_lowercase();
        let intercepted = INTERCEPTED_HOSTS.contains(&host.as_str())
            && authority.port_u16() == Some(INTERCEPTED_PORT);
        if !intercepted {
            let target: String = authority.as_str().chars().take(200).collect();
            tracing::info!(
                connect = target.as_str(),
                "proxy: refused CONNECT to a host graphsec does not intercept (the application needs NO_PROXY for it)"
            );
            return refusal(
                StatusCode::FORBIDDEN,
                "hostNotIntercepted",
                "graphsec intercepts only Microsoft's identity and Graph hosts; set NO_PROXY for others",
                format!(
                    "graphsec intercepts only Microsoft's identity and Graph hosts on port {INTERCEPTED_PORT} ({}), not {target}, and opens no connection to any other host; set NO_PROXY for the hosts your application reaches directly.",
                    INTERCEPTED_HOSTS.join(", ")
                ),
            );
        }
        let config = match self.ca.server_config(&host) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(host = host.as_str(), error = %e, "proxy: cannot make a certificate");
                return refusal(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "certificateUnavailable",
                    "no certificate for this host; see graphsec's log",
                    format!("graphsec could not make a certificate for {host}; see its log."),
                );
            }
        };
        let upgrade = hyper::upgrade::on(req);
        if let Ok(mut s) = slot.lock() {
            *s = Some(Pending {
                host,
                config,
                upgrade,
            });
        }
        Response::new(Body::empty())
    }
}

/// The answer to CONNECT without `--https-proxy`: 405, with the flag that would change it.
pub fn not_a_proxy() -> Response<Body> {
    refusal(
        StatusCode::METHOD_NOT_ALLOWED,
        "notAProxy",
        "graphsec is a proxy only with --https-proxy",
        "graphsec is an HTTPS proxy for Microsoft's identity and Graph hosts only when started with --https-proxy (development mode).".into(),
    )
}

/// A CONNECT graphsec accepted: the host, its TLS configuration, and the connection once hyper
/// hands it over (after writing the 200).
pub struct Pending {
    host: String,
    config: Arc<ServerConfig>,
    upgrade: hyper::upgrade::OnUpgrade,
}

/// Where a connection's service leaves the CONNECT it accepted, for the connection's task.
pub type PendingSlot = Mutex<Option<Pending>>;

/// The TLS stream inside a tunnel.
pub type Tunnel = TlsStream<TokioIo<hyper::upgrade::Upgraded>>;

impl Pending {
    /// The host the client connected to.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Waits for hyper to hand the connection over, then for the client's TLS handshake (at most
    /// [`crate::tls::HANDSHAKE_TIMEOUT`]). `None` when either fails (logged: the usual cause is
    /// a client that does not trust the development CA).
    pub async fn accept(self) -> Option<Tunnel> {
        let host = self.host;
        let upgraded = match self.upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(host = host.as_str(), error = %e, "proxy: the tunnel was not handed over");
                return None;
            }
        };
        let acceptor = TlsAcceptor::from(self.config);
        match tokio::time::timeout(
            crate::tls::HANDSHAKE_TIMEOUT,
            acceptor.accept(TokioIo::new(upgraded)),
        )
        .await
        {
            Ok(Ok(tls)) => Some(tls),
            Ok(Err(e)) => {
                tracing::info!(
                    host = host.as_str(),
                    error = %e,
                    "proxy: TLS handshake in the tunnel failed (does the application trust graphsec-dev-ca.pem?)"
                );
                None
            }
            Err(_) => {
                tracing::debug!(
                    host = host.as_str(),
                    "proxy: TLS handshake in the tunnel timed out"
                );
                None
            }
        }
    }
}

/// A refused CONNECT: JSON `{"error": {"code", "message"}}`, and `short` in the HTTP/1.1 reason
/// phrase (requests and curl show only the status line of a failed CONNECT).
fn refusal(status: StatusCode, code: &str, short: &'static str, message: String) -> Response<Body> {
    let body = serde_json::json!({"error": {"code": code, "message": message}});
    let mut resp = Response::new(Body::from(body.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let canonical = status.canonical_reason().unwrap_or("Refused");
    // The reason phrase allows visible ASCII and spaces only (RFC 9112 §4): `short` is.
    if let Ok(p) = hyper::ext::ReasonPhrase::try_from(format!("{canonical} ({short})")) {
        resp.extensions_mut().insert(p);
    }
    if status == StatusCode::METHOD_NOT_ALLOWED {
        resp.headers_mut().insert(
            header::ALLOW,
            HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"),
        );
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    #[test]
    fn every_entra_cloud_host_is_intercepted() {
        for cloud in crate::auth::sts::ENTRA_CLOUDS {
            for host in cloud.aliases.iter().chain(cloud.graph_hosts) {
                assert!(INTERCEPTED_HOSTS.contains(host), "{host}");
            }
        }
    }

    fn interceptor() -> (tempfile::TempDir, Interceptor) {
        let dir = tempfile::tempdir().unwrap();
        let ca = DevCa::open(Some(dir.path())).unwrap();
        (dir, Interceptor { ca })
    }

    fn connect(target: &str) -> Request<()> {
        Request::builder()
            .method(Method::CONNECT)
            .uri(target)
            .body(())
            .unwrap()
    }

    #[test]
    fn only_microsoft_hosts_on_443_are_intercepted() {
        let (_dir, proxy) = interceptor();
        let slot = PendingSlot::default();
        for ok in ["graph.microsoft.com:443", "LOGIN.microsoftonline.com.:443"] {
            let resp = proxy.answer_connect(&mut connect(ok), Some(&slot));
            assert_eq!(resp.status(), StatusCode::OK, "{ok}");
            let pending = slot.lock().unwrap().take().unwrap();
            assert!(
                pending.host().ends_with(".com")
                    && pending.host() == pending.host().to_ascii_lowercase()
            );
        }
        for refused in [
            "example.com:443",
            "graph.microsoft.com:80",
            "graph.microsoft.com.evil.test:443",
        ] {
            let resp = proxy.answer_connect(&mut connect(refused), Some(&slot));
            assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{refused}");
            let phrase = resp.extensions().get::<hyper::ext::ReasonPhrase>().unwrap();
            assert!(String::from_utf8_lossy(phrase.as_bytes()).contains("NO_PROXY"));
            assert!(slot.lock().unwrap().is_none());
        }
        // Inside a tunnel, and over HTTP/2: refused.
        let resp = proxy.answer_connect(&mut connect("graph.microsoft.com:443"), None);
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
        let mut h2 = connect("graph.microsoft.com:443");
        *h2.version_mut() = Version::HTTP_2;
        assert_eq!(
            proxy.answer_connect(&mut h2, Some(&slot)).status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
    }

    #[test]
    fn intercepted_requests_are_https() {
        let mut ext = http::Extensions::new();
        assert!(!https(false, &ext));
        assert!(https(true, &ext));
        ext.insert(Intercepted);
        assert!(https(false, &ext));
    }
}
