//! Authentication (bearer JWT -> [`Principal`]) and authorization ([`Operation`] -> required
//! permission), as CONTRACT §1 and §5 describe.
//!
//! # Modes (`--auth`)
//!
//! - `dev` (default): tokens signed by a local ES256 key kept in the data dir
//!   (`dev-jwt-signing-key.pem`, mode 0600, created on first start, reused after), in the file
//!   `--dev-key` names, or in memory when there is neither. Issue tokens with `graphsec token
//!   --data-dir DIR --tenant TID` or [`issue_dev_token`] / [`Authenticator::issue_dev_token`]
//!   (issuer `https://dev.graphsec.invalid/{tenantid}/v2.0`), or from the Entra ID-compatible
//!   token endpoint ([`sts`]; issuer `{base URL}/{tenantid}/v2.0`). Audience
//!   `https://graph.microsoft.com`.
//! - `jwks`: tokens from a real identity provider. Keys come from `--jwks-file` and/or
//!   `--jwks-url` (cached; fetched again when a token names an unknown `kid`, at most once per
//!   5 minutes, and when older than a day). Issuers (`--issuer`, `{tenantid}` replaced by the
//!   token's `tid`) default to Entra's v1 and v2 shapes; audiences (`--audience`) default to
//!   `https://graph.microsoft.com` and `00000003-0000-0000-c000-000000000000`.
//! - `none`: no verification; every request is the tenant [`NONE_MODE_TENANT`] with every
//!   permission. The caller (the server) restricts this to loopback and warns.
//!
//! Only RS256 and ES256 are accepted, and the algorithm is pinned by the key (RSA key -> RS256,
//! P-256 key -> ES256), never by the token header. Clock skew leeway is 5 minutes (Entra's
//! default, and the maximum the contract allows).
//!
//! # Errors
//!
//! Every failure to authenticate is [`AuthError::Unauthenticated`] (401
//! `InvalidAuthenticationToken`, with `WWW-Authenticate`); a genuine token that may not do the
//! operation, or a personal Microsoft account, is [`AuthError::Forbidden`] (403
//! `Authorization_RequestDenied`). Messages say what is wrong and never contain key material.
//!
//! # Permissions file (`--permissions-file`)
//!
//! JSON with exactly the members `read` and `write`. Each is a list of permission names accepted
//! both as delegated scope (`scp`) and application role (`roles`), or an object with separate
//! `delegated` and `application` lists. Any one listed permission allows the operation; names
//! compare case-insensitively; `"*"` means any valid token of that kind; an empty list means no
//! token of that kind may do the operation. The default is:
//!
//! ```json
//! {
//!   "read":  ["SecurityEvents.Read.All", "SecurityEvents.ReadWrite.All"],
//!   "write": ["SecurityEvents.ReadWrite.All"]
//! }
//! ```
//!
//! Example: reads open to any token of the tenant, writes only for one application role:
//!
//! ```json
//! {
//!   "read":  ["*"],
//!   "write": {"delegated": [], "application": ["Profiles.Manage"]}
//! }
//! ```
//!
//! # Cache
//!
//! Successful verifications are cached (bounded, keyed by the SHA-256 of the token, until the
//! token's `exp`), so a client repeating its token costs one hash per request, not one signature
//! check. A consequence to know: a key removed from the JWKS keeps already-verified tokens valid
//! until they expire (Entra tokens live about an hour).

mod cache;
mod config;
mod dev;
mod keys;
mod permissions;
pub mod sts;
mod verify;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub use config::{AuthArgs, AuthMode, DEFAULT_TOKEN_SCOPE, TokenArgs};
pub use dev::{
    DEV_ISSUER_TEMPLATE, DEV_KEY_FILE, TokenSpec, dev_key_path, issue_dev_token,
    issue_dev_token_with_key,
};
pub use permissions::{Accepted, PermissionMap};

// Shared with `crate::tls`, which keeps private keys the same way.
pub(crate) use dev::{
    to_pem as pem_encode, warn_if_readable_by_others as warn_file_mode,
    write_private as write_private_file,
};

use cache::{TokenCache, hash_token};
use dev::DevKey;
use keys::KeyStore;
use verify::Verifier;

/// Tenant id of personal Microsoft accounts (MSA); their tokens are refused (403).
pub const PERSONAL_ACCOUNT_TENANT: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";
/// Tenant of every request in `--auth none` mode.
pub const NONE_MODE_TENANT: &str = "00000000-0000-0000-0000-000000000000";
/// Graph's audience as an App ID URI.
pub const GRAPH_AUDIENCE: &str = "https://graph.microsoft.com";
/// The issuer of tokens from graphsec's own token endpoint ([`sts`]): the base URL the client
/// reached graphsec at, then the tenant, as Entra's v2.0 issuer
/// (`https://login.microsoftonline.com/{tenantid}/v2.0`). Accepted in `dev` mode only.
pub const SELF_ISSUER_TEMPLATE: &str = "{origin}/{tenantid}/v2.0";
/// Graph's audience as an application id.
pub const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";
/// Entra's issuer shapes (v1 and v2 tokens); the default in `jwks` mode.
pub const ENTRA_ISSUERS: [&str; 2] = [
    "https://sts.windows.net/{tenantid}/",
    "https://login.microsoftonline.com/{tenantid}/v2.0",
];
/// The `WWW-Authenticate` value Graph sends with its 401s; SDKs parse it, so we send the same.
pub const WWW_AUTHENTICATE: &str = "Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", client_id=\"00000003-0000-0000-c000-000000000000\"";

/// What a development-mode 401 for an unknown signing key adds: the usual cause is a token made
/// for another server (another data directory or `--dev-key`, or an in-memory server's key).
/// It names no path: the message goes to whoever sent the token.
const UNKNOWN_DEV_KEY_HINT: &str = " This server runs in development mode and signs with its own key: a token from `graphsec token` must use the same --data-dir or --dev-key as the server, or ask this server with `graphsec token --url <its base URL>`; tokens from another or restarted in-memory server are not valid here.";

/// Clock skew tolerated on `exp` and `nbf`.
const DEFAULT_LEEWAY: Duration = Duration::from_secs(300);
/// Floor between two JWKS refreshes triggered by unknown `kid`s.
const DEFAULT_MIN_REFRESH: Duration = Duration::from_secs(300);
/// JWKS older than this is fetched again (Entra rotates keys every few weeks, with overlap).
const DEFAULT_MAX_KEY_AGE: Duration = Duration::from_secs(24 * 3600);
/// Verified tokens kept in the cache.
const DEFAULT_CACHE_CAPACITY: usize = 10_000;

/// Who is calling: the verified facts of a token that the rest of the server uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The tenant (`tid`); every store call is scoped by it.
    pub tenant: String,
    /// The client application (`azp`, or `appid` in v1 tokens); keys throttling.
    pub app: Option<String>,
    /// The user or service principal object id (`oid`, else `sub`), for logs.
    pub subject: Option<String>,
    /// What the token may do.
    pub kind: PrincipalKind,
    /// Token expiry (Unix seconds); `None` in `none` mode.
    pub expires_at: Option<i64>,
}

/// The permissions a principal holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrincipalKind {
    /// A user acting through an app: scopes from `scp` (space-separated).
    Delegated { scopes: Vec<String> },
    /// An app acting as itself: roles from `roles`.
    Application { roles: Vec<String> },
    /// `--auth none`: everything is allowed.
    Unrestricted,
}

/// What a request does, for the permission check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Read,
    Write,
}

/// Why a request is refused. The messages are client-facing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// Becomes 401 `InvalidAuthenticationToken`, with [`WWW_AUTHENTICATE`].
    Unauthenticated(String),
    /// Becomes 403 `Authorization_RequestDenied`.
    Forbidden(String),
}

impl AuthError {
    /// Client-facing message. Status, Graph code and headers are the wire's business: see
    /// `From<AuthError> for GraphError` in `crate::error`.
    pub fn message(&self) -> &str {
        match self {
            AuthError::Unauthenticated(m) | AuthError::Forbidden(m) => m,
        }
    }
}

impl std::fmt::Display for AuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self {
            AuthError::Unauthenticated(_) => "unauthenticated",
            AuthError::Forbidden(_) => "forbidden",
        };
        write!(f, "{kind}: {}", self.message())
    }
}

impl std::error::Error for AuthError {}

/// Settings of an [`Authenticator`]; [`Authenticator::from_args`] fills it from the flags.
/// Tests set the tuning fields directly.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub mode: AuthMode,
    pub jwks_file: Option<std::path::PathBuf>,
    pub jwks_url: Option<String>,
    /// Issuer templates (`jwks` mode; empty = [`ENTRA_ISSUERS`]).
    pub issuers: Vec<String>,
    /// Accepted audiences (empty = Graph's two).
    pub audiences: Vec<String>,
    pub permissions: PermissionMap,
    /// Where the development key lives (`dev` mode); `None` = ephemeral key.
    pub data_dir: Option<std::path::PathBuf>,
    /// The development key file (`--dev-key`); wins over `data_dir`.
    pub dev_key_file: Option<std::path::PathBuf>,
    /// Clock skew leeway; capped at 5 minutes.
    pub leeway: Duration,
    pub min_jwks_refresh: Duration,
    pub max_jwks_age: Duration,
    /// Verified-token cache size; 0 disables the cache.
    pub cache_capacity: usize,
}

impl AuthConfig {
    /// Defaults for a mode: Graph audiences, default permissions, default tuning.
    pub fn new(mode: AuthMode) -> Self {
        AuthConfig {
            mode,
            jwks_file: None,
            jwks_url: None,
            issuers: Vec::new(),
            audiences: Vec::new(),
            permissions: PermissionMap::default(),
            data_dir: None,
            dev_key_file: None,
            leeway: DEFAULT_LEEWAY,
            min_jwks_refresh: DEFAULT_MIN_REFRESH,
            max_jwks_age: DEFAULT_MAX_KEY_AGE,
            cache_capacity: DEFAULT_CACHE_CAPACITY,
        }
    }
}

enum Mode {
    None,
    // Boxed: the enum is built once, and clippy rightly dislikes a 350-byte size gap.
    Verify {
        verifier: Box<Verifier>,
        dev_key: Option<Arc<DevKey>>,
    },
}

/// Verifies bearer tokens and checks permissions. Build once, share (`Arc`) across requests.
pub struct Authenticator {
    mode: Mode,
    permissions: PermissionMap,
    cache: TokenCache,
    /// For log lines: where the dev key is, or which JWKS sources are used.
    description: String,
}

impl Authenticator {
    /// Builds from the `serve` flags. `data_dir` holds the development key in `dev` mode.
    pub fn from_args(args: &AuthArgs, data_dir: Option<&Path>) -> Result<Self, String> {
        let has_jwks = args.jwks_file.is_some() || args.jwks_url.is_some();
        let mode = args.auth.unwrap_or(if has_jwks {
            AuthMode::Jwks
        } else {
            AuthMode::Dev
        });
        // Flags that would be silently ignored are errors: a forgotten `--auth jwks` must not
        // leave a server accepting dev tokens while the operator believes it checks Entra's.
        if mode != AuthMode::Jwks && has_jwks {
            return Err("--jwks-file/--jwks-url need --auth jwks".into());
        }
        if mode != AuthMode::Jwks && !args.issuers.is_empty() {
            return Err(
                "--issuer applies to --auth jwks only (dev tokens have a fixed issuer)".into(),
            );
        }
        // The development key and token service exist in dev mode only: with real keys, tokens
        // come from the real identity provider.
        if mode != AuthMode::Dev {
            for (given, flag) in [
                (args.dev_key.is_some(), "--dev-key"),
                (args.app_registrations.is_some(), "--app-registrations"),
                (args.accept_any_client, "--accept-any-client"),
            ] {
                if given {
                    return Err(format!(
                        "{flag} applies to development mode only (--auth dev, without --jwks-url/--jwks-file)"
                    ));
                }
            }
        }
        let mut config = AuthConfig::new(mode);
        config.jwks_file = args.jwks_file.clone();
        config.jwks_url = args.jwks_url.clone();
        config.issuers = args.issuers.clone();
        config.audiences = args.audiences.clone();
        config.data_dir = data_dir.map(Path::to_path_buf);
        config.dev_key_file = args.dev_key.clone();
        if let Some(path) = &args.permissions_file {
            config.permissions = PermissionMap::from_file(path)?;
        }
        Self::new(config)
    }

    /// Builds from explicit settings.
    pub fn new(config: AuthConfig) -> Result<Self, String> {
        let audiences = if config.audiences.is_empty() {
            vec![GRAPH_AUDIENCE.to_owned(), GRAPH_APP_ID.to_owned()]
        } else {
            config.audiences.clone()
        };
        let leeway = i64::try_from(config.leeway.min(DEFAULT_LEEWAY).as_secs()).unwrap_or(300);
        let (mode, description) = match config.mode {
            AuthMode::None => (
                Mode::None,
                format!("none (every request is tenant {NONE_MODE_TENANT})"),
            ),
            AuthMode::Dev => {
                let (key, where_) = match (&config.dev_key_file, &config.data_dir) {
                    (Some(file), _) => (
                        DevKey::load_or_create_file(file)?,
                        file.display().to_string(),
                    ),
                    (None, Some(dir)) => (
                        DevKey::load_or_create(dir)?,
                        dev_key_path(dir).display().to_string(),
                    ),
                    (None, None) => (DevKey::generate()?, "an in-memory key".to_owned()),
                };
                let verifier = Box::new(Verifier {
                    keys: KeyStore::fixed(vec![key.verifying_key()?]),
                    issuers: vec![
                        DEV_ISSUER_TEMPLATE.to_owned(),
                        SELF_ISSUER_TEMPLATE.to_owned(),
                    ],
                    audiences,
                    leeway,
                    unknown_key_hint: Some(UNKNOWN_DEV_KEY_HINT),
                });
                (
                    Mode::Verify {
                        verifier,
                        dev_key: Some(Arc::new(key)),
                    },
                    format!("dev (tokens signed by {where_})"),
                )
            }
            AuthMode::Jwks => {
                for iss in &config.issuers {
                    if iss.is_empty() {
                        return Err("--issuer must not be empty".into());
                    }
                }
                let issuers = if config.issuers.is_empty() {
                    ENTRA_ISSUERS.iter().map(|s| (*s).to_owned()).collect()
                } else {
                    config.issuers.clone()
                };
                let keys = KeyStore::jwks(
                    config.jwks_file.clone(),
                    config.jwks_url.clone(),
                    config.min_jwks_refresh,
                    config.max_jwks_age,
                )?;
                let sources: Vec<String> = config
                    .jwks_file
                    .iter()
                    .map(|p| p.display().to_string())
                    .chain(config.jwks_url.iter().cloned())
                    .collect();
                let description = format!(
                    "jwks (keys from {}; issuers {})",
                    sources.join(" and "),
                    issuers.join(", ")
                );
                (
                    Mode::Verify {
                        verifier: Box::new(Verifier {
                            keys,
                            issuers,
                            audiences,
                            leeway,
                            unknown_key_hint: None,
                        }),
                        dev_key: None,
                    },
                    description,
                )
            }
        };
        Ok(Authenticator {
            mode,
            permissions: config.permissions,
            cache: TokenCache::new(config.cache_capacity),
            description,
        })
    }

    /// One line for the startup log.
    pub fn describe(&self) -> &str {
        &self.description
    }

    /// Whether this is `--auth none` (the server then enforces loopback and warns).
    pub fn is_disabled(&self) -> bool {
        matches!(self.mode, Mode::None)
    }

    /// In `jwks` mode with a URL, fetches the keys now (call at startup so a wrong URL is
    /// reported at once). Returns how many keys are loaded. A no-op in other modes.
    pub async fn warm_up(&self) -> Result<usize, String> {
        match &self.mode {
            Mode::Verify {
                verifier,
                dev_key: None,
            } => verifier.keys.warm_up().await,
            Mode::Verify {
                dev_key: Some(_), ..
            } => Ok(1),
            Mode::None => Ok(0),
        }
    }

    /// Verifies the `Authorization` header value and returns the caller.
    pub async fn authenticate(
        &self,
        authorization_header: Option<&str>,
    ) -> Result<Principal, AuthError> {
        let verifier = match &self.mode {
            Mode::None => {
                return Ok(Principal {
                    tenant: NONE_MODE_TENANT.to_owned(),
                    app: None,
                    subject: None,
                    kind: PrincipalKind::Unrestricted,
                    expires_at: None,
                });
            }
            Mode::Verify { verifier, .. } => verifier,
        };
        let token = bearer_token(authorization_header)?;
        let now = unix_now();
        let key = hash_token(token);
        if let Some(p) = self.cache.get(&key, now) {
            return Ok(p);
        }
        let (principal, exp) = verifier.verify(token, now).await?;
        self.cache.insert(key, principal.clone(), exp, now);
        Ok(principal)
    }

    /// Checks that the principal may perform `op` under the configured permission map.
    pub fn authorize(&self, p: &Principal, op: Operation) -> Result<(), AuthError> {
        self.permissions.check(&p.kind, op)
    }

    /// Every application role this server's permissions accept somewhere (see
    /// [`PermissionMap::every_application_role`]).
    pub fn every_application_role(&self) -> Vec<String> {
        self.permissions.every_application_role()
    }

    /// Checks the principal may do `op` on the entity set `set` (its documented permissions,
    /// see [`PermissionMap::check_set`]); the family's for a route without a set.
    pub fn authorize_set(
        &self,
        p: &Principal,
        op: Operation,
        set: Option<&crate::model::entity::EntityType>,
    ) -> Result<(), AuthError> {
        self.permissions.check_set(&p.kind, op, set)
    }

    /// Issues a token this authenticator accepts (`dev` mode only): for tests and for printing
    /// a token at startup when running without a data dir.
    pub fn issue_dev_token(
        &self,
        tenant: &str,
        scopes: &[String],
        roles: &[String],
        ttl_seconds: u64,
        app_id: Option<&str>,
    ) -> Result<String, String> {
        match &self.mode {
            Mode::Verify {
                dev_key: Some(key), ..
            } => key.issue(tenant, scopes, roles, ttl_seconds, app_id),
            _ => Err("development tokens exist only with --auth dev".into()),
        }
    }

    /// The development public key as a JWK Set (`dev` mode), e.g. to let another graphsec verify
    /// this one's tokens with `--auth jwks --jwks-file`.
    pub fn dev_public_jwks(&self) -> Option<serde_json::Value> {
        self.dev_signer().map(|s| s.public_jwks())
    }

    /// The development key as a token signer (`dev` mode only): what the token service uses.
    pub fn dev_signer(&self) -> Option<DevSigner> {
        match &self.mode {
            Mode::Verify {
                dev_key: Some(key), ..
            } => Some(DevSigner(key.clone())),
            _ => None,
        }
    }

    /// Every application permission (role) the permissions name, the sets' documented ones
    /// included ([`PermissionMap::every_application_role`]): what an application gets from the
    /// development token service when no app registrations are configured. A map that names
    /// none (only `"*"`) gives the default read-write role.
    pub fn application_permissions(&self) -> Vec<String> {
        let mut names = self.every_application_role();
        if names.is_empty() {
            names.push("SecurityEvents.ReadWrite.All".to_owned());
        }
        names
    }

    /// Verified-token cache (hits, misses), for metrics.
    pub fn cache_stats(&self) -> (u64, u64) {
        self.cache.stats()
    }
}

/// Signs development tokens with the server's development key (`dev` mode); cheap to clone.
#[derive(Clone)]
pub struct DevSigner(Arc<DevKey>);

impl DevSigner {
    /// Signs a token as `spec` says.
    pub fn issue(&self, spec: &TokenSpec) -> Result<String, String> {
        self.0.issue_spec(spec)
    }

    /// The public key as a JWK Set (what `/{tenant}/discovery/v2.0/keys` serves).
    pub fn public_jwks(&self) -> serde_json::Value {
        self.0.public_jwks()
    }

    /// The key id tokens name (`kid`).
    pub fn kid(&self) -> &str {
        self.0.kid()
    }
}

/// Extracts the token from `Bearer <token>` (scheme case-insensitive, RFC 7235).
fn bearer_token(header: Option<&str>) -> Result<&str, AuthError> {
    let header = header.map(str::trim).unwrap_or_default();
    if header.is_empty() {
        return Err(AuthError::Unauthenticated("Access token is empty.".into()));
    }
    let (scheme, rest) = header.split_once([' ', '\t']).unwrap_or((header, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Unauthenticated(
            "The Authorization header must use the Bearer scheme.".into(),
        ));
    }
    let token = rest.trim();
    if token.is_empty() {
        return Err(AuthError::Unauthenticated("Access token is empty.".into()));
    }
    Ok(token)
}

/// Tenant ids are GUIDs in Entra; we accept any short token-safe identifier (tests like
/// readable names), but nothing that could confuse issuer matching, logs or storage keys.
pub(crate) fn valid_tenant(t: &str) -> bool {
    (1..=128).contains(&t.len())
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Current time in Unix seconds (0 if the clock reads before 1970).
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
