//! Change notifications for security alerts (Graph subscriptions and webhooks).
//!
//! The API answers `/subscriptions` ([`crate::api::subscriptions`]) with the help of
//! [`subscription`] (bodies, resources, the entity's JSON) and [`Notifier`] (which URLs may be
//! called, and the validation handshake). Writes never call a receiver: the store queues what
//! to notify in the write's own transaction ([`crate::store::notify`]), and the [`dispatcher`]
//! delivers from that outbox with retries, on every node, in commit order per subscription.

pub mod dispatcher;
pub mod endpoint;
pub mod subscription;

use std::net::IpAddr;
use std::time::Duration;

use crate::error::GraphError;

/// `graphsec serve` flags of change notifications.
#[derive(Debug, Clone, clap::Args)]
pub struct NotifyArgs {
    /// Accept plain `http://` notification URLs on any host (Graph requires HTTPS; development
    /// mode, --auth dev or none, already accepts http on loopback receivers).
    #[arg(long, env = "GRAPHSEC_NOTIFY_ALLOW_HTTP")]
    pub notify_allow_http: bool,

    /// Hosts notification URLs may name (repeatable; `*.example.com` matches subdomains).
    /// When given, every other host is refused. Without it any public host is accepted, and IP
    /// literals in private, loopback and link-local ranges are refused outside development mode.
    #[arg(
        long = "notify-allow-host",
        env = "GRAPHSEC_NOTIFY_ALLOW_HOST",
        value_name = "HOST",
        value_delimiter = ','
    )]
    pub notify_allow_hosts: Vec<String>,

    /// Deliveries in flight at once on this node (each to one subscription).
    #[arg(long, env = "GRAPHSEC_NOTIFY_CONCURRENCY", default_value_t = 16)]
    pub notify_concurrency: usize,

    /// How long a receiver has to answer a first delivery with 2xx (Graph: 3 s).
    #[arg(long, env = "GRAPHSEC_NOTIFY_TIMEOUT_MS", default_value_t = 3_000)]
    pub notify_timeout_ms: u64,

    /// How long a receiver has to answer a retried delivery (Graph: 10 s).
    #[arg(
        long,
        env = "GRAPHSEC_NOTIFY_RETRY_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    pub notify_retry_timeout_ms: u64,

    /// How long a receiver has to answer the validation handshake (Graph: 10 s).
    #[arg(
        long,
        env = "GRAPHSEC_NOTIFY_VALIDATION_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    pub notify_validation_timeout_ms: u64,

    /// First retry delay; each further failure doubles it (up to 30 minutes).
    #[arg(long, env = "GRAPHSEC_NOTIFY_RETRY_BASE_MS", default_value_t = 10_000)]
    pub notify_retry_base_ms: u64,

    /// A notification not delivered this long after its write is dropped (Graph: 4 hours).
    #[arg(long, env = "GRAPHSEC_NOTIFY_MAX_AGE_SECS", default_value_t = 4 * 3600)]
    pub notify_max_age_secs: u64,

    /// How often the dispatcher looks for due notifications.
    #[arg(long, env = "GRAPHSEC_NOTIFY_POLL_MS", default_value_t = 200)]
    pub notify_poll_ms: u64,

    /// How long a node's claim on a subscription's queue lasts (another node takes over a dead
    /// node's work after it).
    #[arg(long, env = "GRAPHSEC_NOTIFY_LEASE_SECS", default_value_t = 60)]
    pub notify_lease_secs: u64,

    /// Subscriptions expiring within this many seconds get one `reauthorizationRequired`
    /// lifecycle notification (those with a lifecycleNotificationUrl).
    #[arg(
        long,
        env = "GRAPHSEC_NOTIFY_REAUTHORIZE_BEFORE_SECS",
        default_value_t = 600
    )]
    pub notify_reauthorize_before_secs: u64,

    /// Shortest subscription lifetime: a shorter expirationDateTime is raised to it (Graph:
    /// 45 minutes). Lower it only for tests.
    #[arg(long, env = "GRAPHSEC_SUBSCRIPTION_MIN_LIFETIME_SECS", default_value_t = 45 * 60)]
    pub subscription_min_lifetime_secs: u64,

    /// Do not run the dispatcher on this node (it still accepts subscriptions and queues
    /// notifications; other nodes deliver them).
    #[arg(long, env = "GRAPHSEC_NOTIFY_DISABLE_DISPATCHER")]
    pub notify_disable_dispatcher: bool,

    /// The window over which a receiver's answers are judged, and how long a slow or dropped
    /// endpoint stays so (Graph: 10 minutes; see `notify::endpoint`). Lower it only for tests.
    #[arg(
        long,
        env = "GRAPHSEC_NOTIFY_ENDPOINT_WINDOW_SECS",
        default_value_t = 600
    )]
    pub notify_endpoint_window_secs: u64,
}

impl Default for NotifyArgs {
    fn default() -> Self {
        NotifyArgs {
            notify_allow_http: false,
            notify_allow_hosts: Vec::new(),
            notify_concurrency: 16,
            notify_timeout_ms: 3_000,
            notify_retry_timeout_ms: 10_000,
            notify_validation_timeout_ms: 10_000,
            notify_retry_base_ms: 10_000,
            notify_max_age_secs: 4 * 3600,
            notify_poll_ms: 200,
            notify_lease_secs: 60,
            notify_reauthorize_before_secs: 600,
            subscription_min_lifetime_secs: 45 * 60,
            notify_disable_dispatcher: false,
            notify_endpoint_window_secs: 600,
        }
    }
}

/// Graph's longest subscription lifetime for alerts: 43,200 minutes.
pub const MAX_LIFETIME_MINUTES: i64 = 43_200;
/// 100 ns ticks per second.
pub const TICKS_PER_SEC: i64 = 10_000_000;

/// The outgoing side: which receivers may be called and the HTTP client that calls them.
pub struct Notifier {
    pub args: NotifyArgs,
    /// Development mode (`--auth dev` or `none`): loopback `http://` receivers are accepted.
    pub development: bool,
    client: reqwest::Client,
    /// See [`Notifier::wake`].
    wake: tokio::sync::Notify,
    /// Graph's slow/drop verdicts on receivers ([`endpoint`]).
    pub endpoints: endpoint::Endpoints,
}

/// Which URL of a subscription is checked (Graph's messages name it).
#[derive(Debug, Clone, Copy)]
pub enum UrlRole {
    Notification,
    Lifecycle,
}

impl UrlRole {
    fn name(self) -> &'static str {
        match self {
            UrlRole::Notification => "NotificationUrl",
            UrlRole::Lifecycle => "LifecycleNotificationUrl",
        }
    }
}

fn invalid_request(message: String) -> GraphError {
    GraphError::Coded {
        status: http::StatusCode::BAD_REQUEST,
        code: "InvalidRequest",
        message,
    }
}

/// Private, loopback, link-local and unspecified addresses: not a public receiver.
fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| is_internal(IpAddr::V4(v4)))
        }
    }
}

fn host_ip(host: &str) -> Option<IpAddr> {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost") || host_ip(host).is_some_and(|ip| ip.is_loopback())
}

impl Notifier {
    pub fn new(args: NotifyArgs, development: bool) -> Result<Notifier, String> {
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(crate::tls::client_config()?)
            // A receiver answers; it never sends graphsec elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(Duration::from_secs(5))
            .pool_idle_timeout(Duration::from_secs(30))
            .user_agent(concat!("graphsec/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("notification HTTP client: {e}"))?;
        let window = Duration::from_secs(args.notify_endpoint_window_secs.max(1));
        let endpoints = endpoint::Endpoints::new(
            window,
            window,
            Duration::from_millis(args.notify_timeout_ms),
            Duration::from_millis(args.notify_retry_timeout_ms),
        );
        Ok(Notifier {
            args,
            development,
            client,
            wake: tokio::sync::Notify::new(),
            endpoints,
        })
    }

    /// Tells this node's dispatcher that a write may have queued notifications, so it claims
    /// them now instead of at its next poll (`--notify-poll-ms`; other nodes still poll).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Resolves at the next [`Notifier::wake`] (or at once if one came since the last call).
    pub async fn woken(&self) {
        self.wake.notified().await;
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Checks a receiver URL against the hosting policy (HTTPS, allowed hosts).
    pub fn check_url(&self, raw: &str, role: UrlRole) -> Result<reqwest::Url, GraphError> {
        let name = role.name();
        let url = reqwest::Url::parse(raw)
            .map_err(|_| invalid_request(format!("{name} '{raw}' is not an absolute URL.")))?;
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| invalid_request(format!("{name} '{raw}' names no host.")))?
            .to_string();
        let dev_loopback = self.development && is_loopback_host(&host);
        match url.scheme() {
            "https" => {}
            "http" if self.args.notify_allow_http || dev_loopback => {}
            scheme => {
                return Err(invalid_request(format!(
                    "{name} scheme='{scheme}' is not supported."
                )));
            }
        }
        let allowed = &self.args.notify_allow_hosts;
        if !allowed.is_empty() {
            let listed = allowed.iter().any(|a| {
                let a = a.trim();
                match a.strip_prefix("*.") {
                    Some(suffix) => {
                        host.len() > suffix.len()
                            && host
                                .to_ascii_lowercase()
                                .ends_with(&format!(".{}", suffix.to_ascii_lowercase()))
                    }
                    None => a.eq_ignore_ascii_case(&host),
                }
            });
            if !listed && !dev_loopback {
                return Err(invalid_request(format!(
                    "{name} host '{host}' is not allowed on this server (--notify-allow-host)."
                )));
            }
        } else if !dev_loopback && host_ip(&host).is_some_and(is_internal) {
            return Err(invalid_request(format!(
                "{name} host '{host}' is an internal address; allow it with --notify-allow-host."
            )));
        }
        Ok(url)
    }

    /// Graph's validation handshake: `POST {url}?validationToken=…` (text/plain), answered
    /// within the validation timeout by 200 with a `text/plain` body that is the decoded token.
    pub async fn validate(&self, url: &reqwest::Url, role: UrlRole) -> Result<(), GraphError> {
        let token = format!(
            "Validation: Testing client application reachability for subscription Request-Id: {}",
            uuid::Uuid::new_v4()
        );
        // Percent-encoded (a space is %20, never `+`), so any URL decoder reads it back.
        let encoded =
            percent_encoding::utf8_percent_encode(&token, percent_encoding::NON_ALPHANUMERIC)
                .to_string();
        let mut target = url.clone();
        let query = match url.query() {
            Some(q) if !q.is_empty() => format!("{q}&validationToken={encoded}"),
            _ => format!("validationToken={encoded}"),
        };
        target.set_query(Some(&query));
        let timeout = Duration::from_millis(self.args.notify_validation_timeout_ms);
        let failed = |why: String| GraphError::Coded {
            status: http::StatusCode::BAD_REQUEST,
            code: "ValidationError",
            message: format!(
                "Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request. ({} {why})",
                role.name()
            ),
        };
        let sent = self
            .client
            .post(target)
            .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .timeout(timeout)
            .send();
        let resp = match tokio::time::timeout(timeout, sent).await {
            Err(_) => return Err(timed_out()),
            Ok(Err(e)) if e.is_timeout() => return Err(timed_out()),
            Ok(Err(e)) => return Err(failed(format!("could not be reached: {}", short(e)))),
            Ok(Ok(r)) => r,
        };
        let status = resp.status();
        let text_plain = resp
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(';')
                    .next()
                    .is_some_and(|e| e.trim().eq_ignore_ascii_case("text/plain"))
            });
        let body = match tokio::time::timeout(timeout, resp.bytes()).await {
            Err(_) => return Err(timed_out()),
            Ok(Err(e)) if e.is_timeout() => return Err(timed_out()),
            Ok(Err(e)) => return Err(failed(format!("answer could not be read: {}", short(e)))),
            Ok(Ok(b)) => b,
        };
        if status != http::StatusCode::OK {
            return Err(failed(format!("answered {}", status.as_u16())));
        }
        if !text_plain {
            return Err(failed("answered without Content-Type: text/plain".into()));
        }
        if body.as_ref() != token.as_bytes() {
            return Err(failed(
                "answered a body that is not the decoded validationToken".into(),
            ));
        }
        Ok(())
    }
}

fn timed_out() -> GraphError {
    invalid_request("Subscription validation request timed out.".into())
}

/// A reqwest error without the URL (which may carry secrets in its query).
pub fn short(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut s = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s.chars().take(300).collect()
}

/// A URL for logs: scheme, host, port and path (no query, which may carry secrets).
pub fn redacted(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => format!(
            "{}://{}{}{}",
            u.scheme(),
            u.host_str().unwrap_or(""),
            u.port().map(|p| format!(":{p}")).unwrap_or_default(),
            u.path()
        ),
        Err(_) => "<invalid url>".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notifier(dev: bool, allow: &[&str]) -> Notifier {
        let args = NotifyArgs {
            notify_allow_hosts: allow.iter().map(|s| s.to_string()).collect(),
            ..NotifyArgs::default()
        };
        Notifier::new(args, dev).unwrap()
    }

    #[test]
    fn urls_follow_the_hosting_policy() {
        let prod = notifier(false, &[]);
        assert!(
            prod.check_url("https://hooks.example.com/x?a=1", UrlRole::Notification)
                .is_ok()
        );
        let e = prod
            .check_url("http://hooks.example.com/x", UrlRole::Notification)
            .unwrap_err();
        assert_eq!(e.code(), "InvalidRequest");
        assert!(e.message().contains("scheme='http'"), "{}", e.message());
        assert!(
            prod.check_url("https://127.0.0.1/x", UrlRole::Notification)
                .is_err()
        );
        assert!(
            prod.check_url("https://10.1.2.3/x", UrlRole::Notification)
                .is_err()
        );
        assert!(
            prod.check_url("https://[::1]/x", UrlRole::Lifecycle)
                .is_err()
        );
        assert!(
            prod.check_url("ftp://example.com/x", UrlRole::Notification)
                .is_err()
        );
        assert!(prod.check_url("not a url", UrlRole::Notification).is_err());
        let dev = notifier(true, &[]);
        assert!(
            dev.check_url("http://127.0.0.1:9/x", UrlRole::Notification)
                .is_ok()
        );
        assert!(
            dev.check_url("http://localhost:9/x", UrlRole::Notification)
                .is_ok()
        );
        assert!(
            dev.check_url("http://example.com/x", UrlRole::Notification)
                .is_err()
        );
        let listed = notifier(false, &["hooks.example.com", "*.corp.example"]);
        assert!(
            listed
                .check_url("https://hooks.example.com/", UrlRole::Notification)
                .is_ok()
        );
        assert!(
            listed
                .check_url("https://a.corp.example/", UrlRole::Notification)
                .is_ok()
        );
        assert!(
            listed
                .check_url("https://corp.example/", UrlRole::Notification)
                .is_err()
        );
        assert!(
            listed
                .check_url("https://other.example.com/", UrlRole::Notification)
                .is_err()
        );
    }

    #[test]
    fn logged_urls_lose_their_query() {
        assert_eq!(
            redacted("https://h.example:8443/p/q?secret=1"),
            "https://h.example:8443/p/q"
        );
    }
}
