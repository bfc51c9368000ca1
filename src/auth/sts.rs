//! The development token service's rules: an Entra ID-compatible OAuth 2.0 client credentials
//! grant, OpenID Connect discovery and the signing keys, as data in and JSON out. The HTTP
//! side (paths, headers, status lines) is `crate::ops::sts`.
//!
//! It exists in development mode only (graphsec's own signing key, no `--jwks-url`/
//! `--jwks-file`), so that an unmodified MSAL or Azure Identity application can get its token
//! from graphsec the way it gets one from Entra ID, and a test suite needs no real tenant.
//!
//! # Tenants in the path
//!
//! Entra accepts a tenant id (a GUID) or a domain name of the tenant (`contoso.onmicrosoft.com`,
//! `contoso.com`); its tokens always carry the tenant's GUID as `tid`. graphsec has no
//! directory to look names up in, so **a name is its own tenant id**: the path segment,
//! lowercased (domain names are case-insensitive), with a trailing `.onmicrosoft.com` removed,
//! is the token's `tid` and the tenant graphsec stores the data under. `/contoso/`,
//! `/Contoso.onmicrosoft.com/` and `graphsec token --tenant contoso` all mean tenant `contoso`;
//! a GUID is used as it is, lowercased. `common`, `organizations` and `consumers` name no
//! tenant: discovery answers for them (with `{tenantid}` in the issuer, as Entra does), the
//! token endpoint refuses them (the client credentials grant needs a tenant).
//!
//! # Who gets a token
//!
//! - With `--app-registrations FILE` (a JSON list of `{"clientId", "clientSecret", "tenant"
//!   (optional), "roles"}`), only those clients, with their secret, in their tenant (any
//!   tenant when the registration names none), each with its roles.
//! - Without it, any client id and secret (as LocalStack accepts any key), with every
//!   application permission graphsec's permission map names. Because that hands anyone who can
//!   connect a token, it is on for loopback listeners only unless `--accept-any-client` says
//!   otherwise.
//!
//! Errors have Entra's shape and codes (`{"error", "error_description": "AADSTS…: …",
//! "error_codes", "timestamp", "trace_id", "correlation_id", "error_uri"}`), so MSAL and Azure
//! Identity report them as they report Entra's.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use super::{DevSigner, GRAPH_APP_ID, GRAPH_AUDIENCE, TokenSpec, valid_tenant};

/// Lifetime of tokens from the token endpoint (Entra's default for app-only tokens is 60-90
/// minutes; an hour keeps clients' refresh logic exercised).
pub const TOKEN_TTL_SECONDS: u64 = 3600;
/// The suffix Entra strips from a tenant's initial domain name in graphsec's mapping.
const ONMICROSOFT: &str = ".onmicrosoft.com";
/// The OIDC scopes an app may add to any request; they grant nothing in this flow.
const OIDC_SCOPES: [&str; 4] = ["openid", "profile", "offline_access", "email"];

/// One of Entra ID's clouds, as its instance discovery and OpenID discovery documents describe
/// it (the metadata MSAL also carries built in): the login hosts that are one authority
/// (`aliases`), the one to call (`preferred_network`), the one tokens are cached under
/// (`preferred_cache`), and the cloud's Microsoft Graph hosts.
#[derive(Debug, Clone, Copy)]
pub struct EntraCloud {
    pub preferred_network: &'static str,
    pub preferred_cache: &'static str,
    pub aliases: &'static [&'static str],
    /// OpenID discovery's `cloud_instance_name`.
    pub instance_name: &'static str,
    /// OpenID discovery's `cloud_graph_host_name` (Azure AD Graph).
    pub aad_graph_host: &'static str,
    /// Microsoft Graph's hosts in this cloud; the first is discovery's `msgraph_host`.
    pub graph_hosts: &'static [&'static str],
}

/// The clouds whose login hosts graphsec answers for when an application reaches it under their
/// names (`--https-proxy`, `crate::proxy`): global, US Government, China (21Vianet).
pub const ENTRA_CLOUDS: [EntraCloud; 3] = [
    EntraCloud {
        preferred_network: "login.microsoftonline.com",
        preferred_cache: "login.windows.net",
        aliases: &[
            "login.microsoftonline.com",
            "login.windows.net",
            "login.microsoft.com",
            "sts.windows.net",
        ],
        instance_name: "microsoftonline.com",
        aad_graph_host: "graph.windows.net",
        graph_hosts: &["graph.microsoft.com"],
    },
    EntraCloud {
        preferred_network: "login.microsoftonline.us",
        preferred_cache: "login.microsoftonline.us",
        aliases: &["login.microsoftonline.us", "login.usgovcloudapi.net"],
        instance_name: "microsoftonline.us",
        aad_graph_host: "graph.windows.net",
        graph_hosts: &["graph.microsoft.us", "dod-graph.microsoft.us"],
    },
    EntraCloud {
        preferred_network: "login.partner.microsoftonline.cn",
        preferred_cache: "login.partner.microsoftonline.cn",
        aliases: &["login.partner.microsoftonline.cn", "login.chinacloudapi.cn"],
        instance_name: "partner.microsoftonline.cn",
        aad_graph_host: "graph.chinacloudapi.cn",
        graph_hosts: &["microsoftgraph.chinacloudapi.cn"],
    },
];

/// The Entra cloud `host` (as in a URL, without a port) is a login host of.
fn entra_cloud(host: &str) -> Option<&'static EntraCloud> {
    ENTRA_CLOUDS
        .iter()
        .find(|c| c.aliases.iter().any(|a| a.eq_ignore_ascii_case(host)))
}

/// The host of a base URL (`https://host[:port]`).
fn base_host(base: &str) -> &str {
    base.split_once("://").map_or(base, |(_, rest)| rest)
}

/// A tenant as named in a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantSegment {
    /// A tenant: its id (the token's `tid`, the tenant the data is stored under).
    Tenant(String),
    /// `common`, `organizations` or `consumers` (lowercase): no tenant in particular.
    Meta(&'static str),
}

/// Maps a path segment to a tenant (module doc, "Tenants in the path").
pub fn tenant_from_path(segment: &str) -> Result<TenantSegment, OAuthError> {
    let lower = segment.to_ascii_lowercase();
    for meta in ["common", "organizations", "consumers"] {
        if lower == meta {
            return Ok(TenantSegment::Meta(meta));
        }
    }
    let id = if lower.len() == 36
        && let Ok(guid) = uuid::Uuid::try_parse(&lower)
    {
        guid.hyphenated().to_string()
    } else {
        match lower.strip_suffix(ONMICROSOFT) {
            Some(name) if !name.is_empty() => name.to_owned(),
            _ => lower,
        }
    };
    if valid_tenant(&id) && segment.is_ascii() {
        Ok(TenantSegment::Tenant(id))
    } else {
        Err(OAuthError::tenant_not_found(segment))
    }
}

/// One application of `--app-registrations`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawRegistration {
    client_id: String,
    client_secret: String,
    #[serde(default)]
    tenant: Option<String>,
    roles: Vec<String>,
}

/// An application the token service knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRegistration {
    pub client_id: String,
    pub client_secret: String,
    /// The tenant it is registered in (mapped as a path segment is); `None`: every tenant.
    pub tenant: Option<String>,
    /// Application permissions its tokens carry.
    pub roles: Vec<String>,
}

/// The applications of `--app-registrations`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppRegistrations {
    apps: Vec<AppRegistration>,
}

impl AppRegistrations {
    /// Parses the file's JSON text.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let raw: Vec<RawRegistration> = serde_json::from_str(text).map_err(|e| {
            format!(
                "app registrations: {e} (expected a JSON list of {{\"clientId\", \"clientSecret\", \"tenant\" (optional), \"roles\": [...]}})"
            )
        })?;
        let mut apps: Vec<AppRegistration> = Vec::with_capacity(raw.len());
        for (i, r) in raw.into_iter().enumerate() {
            let at = format!("app registrations: entry {} ({:?})", i + 1, r.client_id);
            if r.client_id.trim().is_empty() || r.client_id.chars().any(char::is_control) {
                return Err(format!("{at}: clientId must be a non-empty string"));
            }
            if r.client_secret.is_empty() {
                return Err(format!("{at}: clientSecret must not be empty"));
            }
            let tenant = match r.tenant.as_deref().map(tenant_from_path) {
                None => None,
                Some(Ok(TenantSegment::Tenant(t))) => Some(t),
                Some(_) => {
                    return Err(format!(
                        "{at}: tenant must be a tenant id or name (not common, organizations or consumers)"
                    ));
                }
            };
            for role in &r.roles {
                if role.is_empty() || role.chars().any(char::is_whitespace) {
                    return Err(format!("{at}: invalid role name {role:?}"));
                }
            }
            let clash = apps.iter().any(|a| {
                a.client_id.eq_ignore_ascii_case(&r.client_id)
                    && (a.tenant.is_none() || tenant.is_none() || a.tenant == tenant)
            });
            if clash {
                return Err(format!(
                    "{at}: registered twice for the same tenant (client ids compare ignoring case)"
                ));
            }
            apps.push(AppRegistration {
                client_id: r.client_id,
                client_secret: r.client_secret,
                tenant,
                roles: r.roles,
            });
        }
        Ok(AppRegistrations { apps })
    }

    /// Reads and parses a file.
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read --app-registrations {}: {e}", path.display()))?;
        Self::from_json(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// How many applications are registered.
    pub fn len(&self) -> usize {
        self.apps.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.apps.is_empty()
    }

    /// The application `client_id` as registered in `tenant`.
    fn find(&self, client_id: &str, tenant: &str) -> Option<&AppRegistration> {
        self.apps.iter().find(|a| {
            a.client_id.eq_ignore_ascii_case(client_id)
                && a.tenant.as_deref().is_none_or(|t| t == tenant)
        })
    }
}

/// Who may get tokens from the token service.
#[derive(Debug, Clone)]
pub enum ClientPolicy {
    /// Only the registered applications.
    Registered(AppRegistrations),
    /// Any client id and secret, with these roles.
    AnyClient { roles: Vec<String> },
    /// Nobody, for this reason (open issuance on a non-loopback listener without
    /// `--accept-any-client`).
    Closed { reason: String },
}

/// An Entra-shaped OAuth 2.0 error (RFC 6749 §5.2 plus Entra's members).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    /// 400 or 401, as Entra answers.
    pub status: u16,
    /// RFC 6749's error code (`invalid_client`, `invalid_request`, ...).
    pub error: &'static str,
    /// Entra's AADSTS number, when this is an error Entra has.
    pub aadsts: Option<u32>,
    /// The message after `AADSTSnnn: `.
    pub message: String,
}

impl OAuthError {
    fn new(status: u16, error: &'static str, aadsts: Option<u32>, message: String) -> Self {
        OAuthError {
            status,
            error,
            aadsts,
            message,
        }
    }

    fn missing(parameter: &str) -> Self {
        Self::new(
            400,
            "invalid_request",
            Some(900144),
            format!("The request body must contain the following parameter: '{parameter}'."),
        )
    }

    /// Entra's answer for a tenant it does not know (here: a segment that is no valid id).
    pub fn tenant_not_found(segment: &str) -> Self {
        let shown: String = segment.chars().take(80).collect();
        Self::new(
            400,
            "invalid_tenant",
            Some(90002),
            format!(
                "Tenant '{shown}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. (graphsec: a tenant is a GUID or a name of 1-128 letters, digits, '.', '_', '-'.)"
            ),
        )
    }

    /// The token endpoint asked with another method than POST.
    pub fn post_only(method: &str) -> Self {
        Self::new(
            400,
            "invalid_request",
            Some(900561),
            format!(
                "The endpoint only accepts POST, OPTIONS requests. Received a {method} request."
            ),
        )
    }

    /// The service is off (real identity-provider keys are configured).
    pub fn service_off() -> Self {
        Self::new(
            404,
            "invalid_request",
            None,
            "graphsec's token service is off: this server verifies tokens of a real identity provider (--jwks-url/--jwks-file); get tokens from that provider.".into(),
        )
    }

    /// Anything but the client credentials grant's endpoints (authorize, devicecode, ...).
    pub fn unsupported_endpoint(what: &str) -> Self {
        Self::new(
            400,
            "invalid_request",
            None,
            format!(
                "graphsec's token service has no {what} endpoint: it issues application tokens with the client credentials grant only (POST /{{tenant}}/oauth2/v2.0/token)."
            ),
        )
    }

    /// The JSON body, with the request's ids and the current time.
    pub fn body(&self, trace_id: &str, correlation_id: &str) -> Value {
        let timestamp = entra_timestamp();
        let head = match self.aadsts {
            Some(n) => format!("AADSTS{n}: {}", self.message),
            None => self.message.clone(),
        };
        let mut body = json!({
            "error": self.error,
            "error_description": format!(
                "{head}\r\nTrace ID: {trace_id}\r\nCorrelation ID: {correlation_id}\r\nTimestamp: {timestamp}"
            ),
            "error_codes": self.aadsts.map_or_else(Vec::new, |n| vec![n]),
            "timestamp": timestamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
        });
        if let Some(n) = self.aadsts {
            body["error_uri"] = json!(format!("https://login.microsoftonline.com/error?code={n}"));
        }
        body
    }
}

/// Entra's timestamp format: `2026-11-25 10:00:00Z`.
fn entra_timestamp() -> String {
    let now = time::OffsetDateTime::now_utc();
    now.format(time::macros::format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second]Z"
    ))
    .unwrap_or_default()
}

/// A successful token response, as Entra's v2.0 endpoint writes it.
#[derive(Debug, Clone)]
pub struct TokenResponse {
    pub access_token: String,
    pub expires_in: u64,
}

impl TokenResponse {
    pub fn body(&self) -> Value {
        json!({
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "ext_expires_in": self.expires_in,
            "access_token": self.access_token,
        })
    }
}

/// The development token service (module doc).
pub struct TokenService {
    signer: DevSigner,
    policy: ClientPolicy,
}

impl TokenService {
    pub fn new(signer: DevSigner, policy: ClientPolicy) -> Self {
        TokenService { signer, policy }
    }

    /// One line for the startup log.
    pub fn describe(&self) -> String {
        match &self.policy {
            ClientPolicy::Registered(apps) => {
                format!("{} registered application(s)", apps.len())
            }
            ClientPolicy::AnyClient { roles } => {
                format!("any client id and secret, roles {}", roles.join(", "))
            }
            ClientPolicy::Closed { reason } => format!("closed: {reason}"),
        }
    }

    /// Whether `/_graphsec/token` may mint arbitrary tokens: only when anyone may get one from
    /// the token endpoint anyway. `Err` says why not.
    pub fn mint(&self, spec: &TokenSpec) -> Result<String, MintRefusal> {
        match &self.policy {
            ClientPolicy::AnyClient { .. } => self.signer.issue(spec).map_err(MintRefusal::Invalid),
            ClientPolicy::Registered(_) => Err(MintRefusal::Forbidden(
                "Tokens of your choice are off while --app-registrations is given: get a token for a registered application from POST /{tenant}/oauth2/v2.0/token.".into(),
            )),
            ClientPolicy::Closed { reason } => Err(MintRefusal::Forbidden(format!(
                "Tokens of your choice are off: {reason}."
            ))),
        }
    }

    /// The signing keys as a JWK Set.
    pub fn jwks(&self) -> Value {
        self.signer.public_jwks()
    }

    /// The OpenID Connect discovery document for the tenant segment, with every endpoint under
    /// `base` (the URL the client reached graphsec at).
    pub fn openid_configuration(&self, segment: &str, base: &str) -> Result<Value, OAuthError> {
        let (path_tenant, issuer_tenant) = match tenant_from_path(segment)? {
            TenantSegment::Tenant(t) => (t.clone(), t),
            TenantSegment::Meta(m) => (m.to_owned(), "{tenantid}".to_owned()),
        };
        let host = base_host(base);
        // Reached under an Entra host's name (`--https-proxy`), the cloud's names as Entra
        // writes them; otherwise graphsec's own host stands for all of them.
        let (instance_name, aad_graph_host, msgraph_host) = match entra_cloud(host) {
            Some(c) => (c.instance_name, c.aad_graph_host, c.graph_hosts[0]),
            None => (host, host, host),
        };
        let at = |path: &str| format!("{base}/{path_tenant}/{path}");
        Ok(json!({
            "token_endpoint": at("oauth2/v2.0/token"),
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "jwks_uri": at("discovery/v2.0/keys"),
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "grant_types_supported": ["client_credentials"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": format!("{base}/{issuer_tenant}/v2.0"),
            "request_uri_parameter_supported": false,
            "userinfo_endpoint": format!("{base}/oidc/userinfo"),
            "authorization_endpoint": at("oauth2/v2.0/authorize"),
            "device_authorization_endpoint": at("oauth2/v2.0/devicecode"),
            "http_logout_supported": true,
            "frontchannel_logout_supported": true,
            "end_session_endpoint": at("oauth2/v2.0/logout"),
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "tid", "azp", "azpacr", "oid", "idtyp", "roles", "scp", "ver"],
            "tenant_region_scope": "WW",
            "cloud_instance_name": instance_name,
            "cloud_graph_host_name": aad_graph_host,
            "msgraph_host": msgraph_host,
            "rbac_url": base,
        }))
    }

    /// Entra's instance discovery (`/common/discovery/instance?authorization_endpoint=…`):
    /// where the tenant's discovery document is (under `base`), and the hosts that are one
    /// authority. Reached at graphsec's own address, that is graphsec's host (and the
    /// authority's, when the client named graphsec by another name). Reached under an Entra
    /// login host's name (`--https-proxy`), the answer is Entra's for its own host: every cloud
    /// of [`ENTRA_CLOUDS`], plus an entry of its own for an authority host that is none of
    /// theirs (an application whose authority is graphsec's address), so that MSAL keeps
    /// calling the authority it was given.
    pub fn instance_discovery(
        &self,
        authorization_endpoint: Option<&str>,
        api_version: Option<&str>,
        base: &str,
    ) -> Result<Value, OAuthError> {
        let Some(endpoint) = authorization_endpoint.filter(|e| !e.is_empty()) else {
            return Err(OAuthError::new(
                400,
                "invalid_request",
                Some(90014),
                "The required field 'authorization_endpoint' is missing from the credential. Ensure that you have all the necessary parameters for the login request.".into(),
            ));
        };
        // `https://host[:port]/{tenant}/oauth2/v2.0/authorize` (or v1's `/oauth2/authorize`).
        let after_scheme = endpoint
            .split_once("://")
            .map(|(_, rest)| rest)
            .unwrap_or(endpoint);
        let mut parts = after_scheme.split('/');
        let authority_host = parts.next().unwrap_or_default();
        let segment = parts.next().unwrap_or_default();
        let tenant = match tenant_from_path(segment)? {
            TenantSegment::Tenant(t) => t,
            TenantSegment::Meta(m) => m.to_owned(),
        };
        let own_host = base_host(base);
        let metadata = if entra_cloud(own_host).is_some() {
            let mut clouds: Vec<Value> = ENTRA_CLOUDS
                .iter()
                .map(|c| {
                    json!({
                        "preferred_network": c.preferred_network,
                        "preferred_cache": c.preferred_cache,
                        "aliases": c.aliases,
                    })
                })
                .collect();
            let authority_host = authority_host.to_ascii_lowercase();
            if !authority_host.is_empty() && entra_cloud(&authority_host).is_none() {
                clouds.push(json!({
                    "preferred_network": authority_host,
                    "preferred_cache": authority_host,
                    "aliases": [authority_host],
                }));
            }
            clouds
        } else {
            let mut aliases = vec![own_host.to_owned()];
            if !authority_host.is_empty() && !authority_host.eq_ignore_ascii_case(own_host) {
                aliases.push(authority_host.to_ascii_lowercase());
            }
            vec![json!({
                "preferred_network": own_host,
                "preferred_cache": own_host,
                "aliases": aliases,
            })]
        };
        Ok(json!({
            "tenant_discovery_endpoint": format!("{base}/{tenant}/v2.0/.well-known/openid-configuration"),
            "api-version": api_version.unwrap_or("1.1"),
            "metadata": metadata,
        }))
    }

    /// `POST /{tenant}/oauth2/v2.0/token`: the client credentials grant (module doc).
    /// `form` is the decoded body, `basic` the `Authorization: Basic` credentials if any, and
    /// `base` the URL the client reached graphsec at (the token's issuer is under it).
    pub fn token(
        &self,
        segment: &str,
        form: &[(String, String)],
        basic: Option<(String, String)>,
        base: &str,
    ) -> Result<TokenResponse, OAuthError> {
        let tenant = tenant_from_path(segment)?;
        let param = |name: &str| {
            form.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
                .filter(|v| !v.is_empty())
        };
        let grant_type = param("grant_type").ok_or_else(|| OAuthError::missing("grant_type"))?;
        if grant_type != "client_credentials" {
            let shown: String = grant_type.chars().take(80).collect();
            return Err(OAuthError::new(
                400,
                "unsupported_grant_type",
                Some(70003),
                format!(
                    "The app requested an unsupported grant type '{shown}'. (graphsec's token service supports the client credentials grant only.)"
                ),
            ));
        }
        let (basic_id, basic_secret) = match basic {
            Some((id, secret)) => (Some(id), Some(secret)),
            None => (None, None),
        };
        let client_id = match (param("client_id"), basic_id.as_deref()) {
            (Some(a), Some(b)) if a != b => {
                return Err(OAuthError::new(
                    401,
                    "invalid_client",
                    None,
                    "The client_id in the body differs from the one in the Authorization header."
                        .into(),
                ));
            }
            (Some(id), _) | (None, Some(id)) => id.to_owned(),
            (None, None) => return Err(OAuthError::missing("client_id")),
        };
        let scope = param("scope").ok_or_else(|| OAuthError::missing("scope"))?;
        check_scope(scope)?;
        let tenant = match tenant {
            TenantSegment::Tenant(t) => t,
            TenantSegment::Meta(m) => {
                return Err(OAuthError::new(
                    400,
                    "invalid_request",
                    Some(50059),
                    format!(
                        "No tenant-identifying information found in either the request or implied by any provided credentials. (graphsec: the client credentials grant needs a tenant in the path, not '{m}'.)"
                    ),
                ));
            }
        };
        let secret = match (param("client_secret"), basic_secret.as_deref()) {
            (Some(s), _) | (None, Some(s)) if !s.is_empty() => s.to_owned(),
            _ if param("client_assertion").is_some() => {
                return Err(OAuthError::new(
                    401,
                    "invalid_client",
                    None,
                    "graphsec's token service authenticates clients with a client secret only (client_secret or HTTP Basic), not with a certificate (client_assertion).".into(),
                ));
            }
            _ => {
                return Err(OAuthError::new(
                    401,
                    "invalid_client",
                    Some(7000218),
                    "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.".into(),
                ));
            }
        };
        let roles = match &self.policy {
            ClientPolicy::AnyClient { roles } => roles.clone(),
            ClientPolicy::Closed { reason } => {
                return Err(OAuthError::new(
                    401,
                    "invalid_client",
                    None,
                    format!("{reason}."),
                ));
            }
            ClientPolicy::Registered(apps) => {
                let Some(app) = apps.find(&client_id, &tenant) else {
                    let shown: String = client_id.chars().take(80).collect();
                    return Err(OAuthError::new(
                        400,
                        "unauthorized_client",
                        Some(700016),
                        format!(
                            "Application with identifier '{shown}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant. (graphsec: the applications are those of --app-registrations.)"
                        ),
                    ));
                };
                let matches: bool = app.client_secret.as_bytes().ct_eq(secret.as_bytes()).into();
                if !matches {
                    return Err(OAuthError::new(
                        401,
                        "invalid_client",
                        Some(7000215),
                        format!(
                            "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{}'.",
                            app.client_id
                        ),
                    ));
                }
                app.roles.clone()
            }
        };
        let spec = TokenSpec {
            tenant: tenant.clone(),
            scopes: Vec::new(),
            roles,
            ttl_seconds: TOKEN_TTL_SECONDS,
            app_id: Some(client_id),
            issuer: Some(format!("{base}/{tenant}/v2.0")),
            app_only: true,
        };
        let access_token = self.signer.issue(&spec).map_err(|e| {
            OAuthError::new(
                400,
                "invalid_request",
                None,
                format!("Cannot issue the token: {e}."),
            )
        })?;
        Ok(TokenResponse {
            access_token,
            // Entra answers a second under the lifetime.
            expires_in: TOKEN_TTL_SECONDS - 1,
        })
    }
}

/// Why `/_graphsec/token` did not mint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MintRefusal {
    /// Minting is off (403).
    Forbidden(String),
    /// The request is invalid (400).
    Invalid(String),
}

/// The client credentials grant's scope: exactly Graph's `/.default` (the OIDC scopes may come
/// along and are ignored).
fn check_scope(scope: &str) -> Result<(), OAuthError> {
    let scopes: Vec<&str> = scope
        .split_whitespace()
        .filter(|s| !OIDC_SCOPES.iter().any(|o| s.eq_ignore_ascii_case(o)))
        .collect();
    let [only] = scopes.as_slice() else {
        let shown: String = scope.chars().take(200).collect();
        return Err(OAuthError::new(
            400,
            "invalid_scope",
            Some(70011),
            format!(
                "The provided value for the input parameter 'scope' is not valid. The scope '{shown}' is not valid: the client credentials grant takes one scope, {GRAPH_AUDIENCE}/.default."
            ),
        ));
    };
    let Some(resource) = only.strip_suffix("/.default") else {
        return Err(OAuthError::new(
            400,
            "invalid_scope",
            Some(1002012),
            format!(
                "The provided value for scope {only} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
            ),
        ));
    };
    let resource = resource.trim_end_matches('/');
    if resource.eq_ignore_ascii_case(GRAPH_AUDIENCE) || resource.eq_ignore_ascii_case(GRAPH_APP_ID)
    {
        return Ok(());
    }
    Err(OAuthError::new(
        400,
        "invalid_resource",
        Some(500011),
        format!(
            "The resource principal named {resource} was not found in the tenant. (graphsec issues tokens for Microsoft Graph only: scope {GRAPH_AUDIENCE}/.default.)"
        ),
    ))
}

/// The credentials of an `Authorization: Basic` header (RFC 6749 §2.3.1: each part
/// form-urlencoded before base64), if the header is one.
pub fn basic_credentials(header: Option<&str>) -> Option<(String, String)> {
    let (scheme, value) = header?.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(value.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    let unescape = |s: &str| {
        form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Some((unescape(id), unescape(secret)))
}

/// How long `graphsec token --url` keeps trying to connect to a server that is starting.
const CONNECT_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

/// `graphsec token --url`: asks a running graphsec's `POST /_graphsec/token` for a token.
pub async fn request_dev_token(
    base: &str,
    spec: &TokenSpec,
    cacert: Option<&Path>,
) -> Result<String, String> {
    let base = base.trim_end_matches('/');
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        return Err(format!(
            "--url {base}: expected graphsec's base URL, e.g. http://127.0.0.1:7470"
        ));
    }
    let tls = crate::tls::client_config_trusting(cacert)?;
    let client = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(std::time::Duration::from_secs(30))
        .user_agent(concat!("graphsec/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("HTTP client setup: {e}"))?;
    let url = format!("{base}/_graphsec/token");
    let body = json!({
        "tenant": spec.tenant,
        "scopes": spec.scopes,
        "roles": spec.roles,
        "ttl": spec.ttl_seconds,
        "appId": spec.app_id,
    });
    // A server started a moment ago (`graphsec serve & T=$(graphsec token --url …)`) may not
    // listen yet: connection failures are retried for a few seconds.
    let started = std::time::Instant::now();
    let resp = loop {
        let sent = client
            .post(&url)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await;
        match sent {
            Ok(resp) => break resp,
            Err(e) if e.is_connect() && started.elapsed() < CONNECT_PATIENCE => {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            Err(e) => return Err(format!("cannot reach graphsec at {url}: {e}")),
        }
    };
    let status = resp.status();
    let text = resp
        .text()
        .await
        .map_err(|e| format!("{url}: cannot read the answer: {e}"))?;
    let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    if status.is_success()
        && let Some(token) = json["access_token"].as_str()
    {
        return Ok(token.to_owned());
    }
    let message = json["error"]["message"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| text.chars().take(500).collect());
    Err(format!("{url} answered {status}: {message}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{AuthConfig, AuthMode, Authenticator};

    fn service(policy: ClientPolicy) -> (Authenticator, TokenService) {
        let auth = Authenticator::new(AuthConfig::new(AuthMode::Dev)).unwrap();
        let signer = auth.dev_signer().unwrap();
        (auth, TokenService::new(signer, policy))
    }

    fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const BASE: &str = "https://127.0.0.1:7470";

    fn good() -> Vec<(String, String)> {
        form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "app-1"),
            ("client_secret", "s3cret"),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
    }

    #[test]
    fn tenant_names_map_to_tenant_ids() {
        let t = |s: &str| tenant_from_path(s).map_err(|e| e.error);
        assert_eq!(t("contoso"), Ok(TenantSegment::Tenant("contoso".into())));
        assert_eq!(
            t("Contoso.OnMicrosoft.com"),
            Ok(TenantSegment::Tenant("contoso".into()))
        );
        assert_eq!(
            t("contoso.com"),
            Ok(TenantSegment::Tenant("contoso.com".into()))
        );
        assert_eq!(
            t("11111111-1111-4111-8111-11111111111A"),
            Ok(TenantSegment::Tenant(
                "11111111-1111-4111-8111-11111111111a".into()
            ))
        );
        assert_eq!(t("Common"), Ok(TenantSegment::Meta("common")));
        assert_eq!(t("organizations"), Ok(TenantSegment::Meta("organizations")));
        assert_eq!(t("a b"), Err("invalid_tenant"));
        assert_eq!(t(""), Err("invalid_tenant"));
        assert_eq!(
            t(".onmicrosoft.com"),
            Ok(TenantSegment::Tenant(".onmicrosoft.com".into()))
        );
    }

    #[tokio::test]
    async fn any_client_gets_every_application_permission_and_the_server_accepts_it() {
        let (auth, sts) = service(ClientPolicy::AnyClient {
            roles: vec!["SecurityEvents.ReadWrite.All".into()],
        });
        let r = sts
            .token("Contoso.onmicrosoft.com", &good(), None, BASE)
            .unwrap();
        assert_eq!(r.expires_in, TOKEN_TTL_SECONDS - 1);
        let body = r.body();
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["ext_expires_in"], body["expires_in"]);
        let p = auth
            .authenticate(Some(&format!("Bearer {}", r.access_token)))
            .await
            .unwrap();
        assert_eq!(p.tenant, "contoso");
        assert_eq!(p.app.as_deref(), Some("app-1"));
        assert_eq!(
            p.kind,
            crate::auth::PrincipalKind::Application {
                roles: vec!["SecurityEvents.ReadWrite.All".into()]
            }
        );
        // HTTP Basic (client_secret_basic) works as well as the body.
        let basic = form(&[
            ("grant_type", "client_credentials"),
            (
                "scope",
                "00000003-0000-0000-c000-000000000000/.default openid profile",
            ),
        ]);
        let creds = basic_credentials(Some(&format!(
            "Basic {}",
            STANDARD.encode("app%3A2:p%40ss")
        )));
        assert_eq!(creds, Some(("app:2".into(), "p@ss".into())));
        assert!(sts.token("t", &basic, creds, BASE).is_ok());
    }

    #[test]
    fn mistakes_get_entras_errors() {
        let (_auth, sts) = service(ClientPolicy::AnyClient { roles: vec![] });
        let with = |k: &str, v: Option<&str>| {
            let mut f: Vec<(String, String)> = good().into_iter().filter(|(n, _)| n != k).collect();
            if let Some(v) = v {
                f.push((k.to_string(), v.to_string()));
            }
            sts.token("contoso", &f, None, BASE).unwrap_err()
        };
        let e = with("grant_type", None);
        assert_eq!(
            (e.status, e.error, e.aadsts),
            (400, "invalid_request", Some(900144))
        );
        let e = with("grant_type", Some("password"));
        assert_eq!(
            (e.status, e.error, e.aadsts),
            (400, "unsupported_grant_type", Some(70003))
        );
        let e = with("client_id", None);
        assert_eq!((e.status, e.error), (400, "invalid_request"));
        assert!(e.message.contains("'client_id'"));
        let e = with("client_secret", None);
        assert_eq!(
            (e.status, e.error, e.aadsts),
            (401, "invalid_client", Some(7000218))
        );
        let e = with("scope", None);
        assert_eq!((e.status, e.error), (400, "invalid_request"));
        let e = with("scope", Some("https://graph.microsoft.com/User.Read"));
        assert_eq!(
            (e.status, e.error, e.aadsts),
            (400, "invalid_scope", Some(1002012))
        );
        let e = with("scope", Some("https://management.azure.com/.default"));
        assert_eq!((e.status, e.error), (400, "invalid_resource"));
        let e = with("scope", Some("a/.default b/.default"));
        assert_eq!((e.status, e.error), (400, "invalid_scope"));
        let e = sts.token("common", &good(), None, BASE).unwrap_err();
        assert_eq!((e.status, e.error), (400, "invalid_request"));
        let e = sts.token("no such", &good(), None, BASE).unwrap_err();
        assert_eq!(
            (e.status, e.error, e.aadsts),
            (400, "invalid_tenant", Some(90002))
        );
        let body = e.body("trace", "corr");
        let desc = body["error_description"].as_str().unwrap();
        assert!(
            desc.starts_with("AADSTS90002: Tenant 'no such' not found."),
            "{desc}"
        );
        assert!(desc.contains("\r\nTrace ID: trace\r\nCorrelation ID: corr\r\nTimestamp: "));
        assert_eq!(body["error_codes"], json!([90002]));
        assert_eq!(body["trace_id"], "trace");
        assert_eq!(body["correlation_id"], "corr");
        assert_eq!(body["timestamp"].as_str().unwrap().len(), 20);
    }

    #[tokio::test]
    async fn registered_applications_get_their_roles_in_their_tenant() {
        let apps = AppRegistrations::from_json(
            r#"[{"clientId": "reader", "clientSecret": "r", "tenant": "Contoso.onmicrosoft.com", "roles": ["SecurityEvents.Read.All"]},
                {"clientId": "writer", "clientSecret": "w", "roles": ["SecurityEvents.ReadWrite.All"]}]"#,
        )
        .unwrap();
        assert_eq!(apps.len(), 2);
        let (auth, sts) = service(ClientPolicy::Registered(apps));
        let req = |id: &str, secret: &str| {
            form(&[
                ("grant_type", "client_credentials"),
                ("client_id", id),
                ("client_secret", secret),
                ("scope", "https://graph.microsoft.com/.default"),
            ])
        };
        let r = sts
            .token("contoso", &req("READER", "r"), None, BASE)
            .unwrap();
        let p = auth
            .authenticate(Some(&format!("Bearer {}", r.access_token)))
            .await
            .unwrap();
        assert_eq!(
            p.kind,
            crate::auth::PrincipalKind::Application {
                roles: vec!["SecurityEvents.Read.All".into()]
            }
        );
        let e = sts
            .token("fabrikam", &req("reader", "r"), None, BASE)
            .unwrap_err();
        assert_eq!(
            (e.status, e.error, e.aadsts),
            (400, "unauthorized_client", Some(700016))
        );
        let e = sts
            .token("contoso", &req("reader", "R"), None, BASE)
            .unwrap_err();
        assert_eq!(
            (e.status, e.error, e.aadsts),
            (401, "invalid_client", Some(7000215))
        );
        let e = sts
            .token("contoso", &req("nobody", "x"), None, BASE)
            .unwrap_err();
        assert_eq!(e.error, "unauthorized_client");
        assert!(
            sts.token("fabrikam", &req("writer", "w"), None, BASE)
                .is_ok()
        );
        assert!(matches!(
            sts.mint(&TokenSpec::default()),
            Err(MintRefusal::Forbidden(_))
        ));
    }

    #[test]
    fn registrations_files_are_checked() {
        for (text, want) in [
            ("{}", "expected a JSON list"),
            (
                r#"[{"clientId": "a", "clientSecret": "s", "role": []}]"#,
                "unknown field",
            ),
            (
                r#"[{"clientId": "", "clientSecret": "s", "roles": []}]"#,
                "clientId",
            ),
            (
                r#"[{"clientId": "a", "clientSecret": "", "roles": []}]"#,
                "clientSecret",
            ),
            (
                r#"[{"clientId": "a", "clientSecret": "s", "tenant": "common", "roles": []}]"#,
                "tenant",
            ),
            (
                r#"[{"clientId": "a", "clientSecret": "s", "roles": ["a b"]}]"#,
                "invalid role",
            ),
            (
                r#"[{"clientId": "a", "clientSecret": "s", "roles": []}, {"clientId": "A", "clientSecret": "t", "tenant": "x", "roles": []}]"#,
                "registered twice",
            ),
        ] {
            let e = AppRegistrations::from_json(text).unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
        }
        assert!(
            AppRegistrations::from_json(
                r#"[{"clientId": "a", "clientSecret": "s", "tenant": "x", "roles": []}, {"clientId": "a", "clientSecret": "t", "tenant": "y", "roles": []}]"#
            )
            .is_ok()
        );
    }

    #[test]
    fn discovery_points_back_at_the_base_url() {
        let (_auth, sts) = service(ClientPolicy::AnyClient { roles: vec![] });
        let d = sts
            .openid_configuration("Contoso.onmicrosoft.com", BASE)
            .unwrap();
        assert_eq!(d["issuer"], format!("{BASE}/contoso/v2.0"));
        assert_eq!(
            d["token_endpoint"],
            format!("{BASE}/contoso/oauth2/v2.0/token")
        );
        assert_eq!(d["jwks_uri"], format!("{BASE}/contoso/discovery/v2.0/keys"));
        assert_eq!(
            d["authorization_endpoint"],
            format!("{BASE}/contoso/oauth2/v2.0/authorize")
        );
        let c = sts.openid_configuration("common", BASE).unwrap();
        assert_eq!(c["issuer"], format!("{BASE}/{{tenantid}}/v2.0"));
        assert_eq!(
            c["token_endpoint"],
            format!("{BASE}/common/oauth2/v2.0/token")
        );
        assert!(sts.openid_configuration("a b", BASE).is_err());
        let i = sts
            .instance_discovery(
                Some("https://127.0.0.1:7470/contoso/oauth2/v2.0/authorize"),
                Some("1.1"),
                BASE,
            )
            .unwrap();
        assert_eq!(
            i["tenant_discovery_endpoint"],
            format!("{BASE}/contoso/v2.0/.well-known/openid-configuration")
        );
        assert_eq!(i["metadata"][0]["aliases"], json!(["127.0.0.1:7470"]));
        assert_eq!(
            sts.instance_discovery(None, None, BASE).unwrap_err().aadsts,
            Some(90014)
        );
    }

    /// Reached as login.microsoftonline.com (`--https-proxy`), discovery answers as Entra does
    /// for its own host.
    #[test]
    fn discovery_under_an_entra_host_answers_as_entra() {
        let (_auth, sts) = service(ClientPolicy::AnyClient { roles: vec![] });
        let entra = "https://login.microsoftonline.com";
        let d = sts.openid_configuration("contoso", entra).unwrap();
        assert_eq!(d["issuer"], format!("{entra}/contoso/v2.0"));
        assert_eq!(
            d["token_endpoint"],
            format!("{entra}/contoso/oauth2/v2.0/token")
        );
        assert_eq!(d["msgraph_host"], "graph.microsoft.com");
        assert_eq!(d["cloud_instance_name"], "microsoftonline.com");
        let i = sts
            .instance_discovery(
                Some("https://login.microsoftonline.com/contoso/oauth2/v2.0/authorize"),
                Some("1.1"),
                entra,
            )
            .unwrap();
        assert_eq!(
            i["tenant_discovery_endpoint"],
            format!("{entra}/contoso/v2.0/.well-known/openid-configuration")
        );
        assert_eq!(i["metadata"].as_array().unwrap().len(), ENTRA_CLOUDS.len());
        assert_eq!(
            i["metadata"][0]["preferred_network"],
            "login.microsoftonline.com"
        );
        assert_eq!(i["metadata"][0]["preferred_cache"], "login.windows.net");
        assert_eq!(
            i["metadata"][0]["aliases"],
            json!([
                "login.microsoftonline.com",
                "login.windows.net",
                "login.microsoft.com",
                "sts.windows.net"
            ])
        );
        // An authority that is graphsec's own address gets an entry of its own.
        let own = sts
            .instance_discovery(
                Some("https://127.0.0.1:7470/contoso/oauth2/v2.0/authorize"),
                None,
                entra,
            )
            .unwrap();
        let last = own["metadata"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(
            last,
            json!({"preferred_network": "127.0.0.1:7470", "preferred_cache": "127.0.0.1:7470", "aliases": ["127.0.0.1:7470"]})
        );
    }
}
