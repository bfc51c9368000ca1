//! Command-line and environment configuration of authentication: the `serve` flags
//! ([`AuthArgs`]) and the `graphsec token` subcommand ([`TokenArgs`]).

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::dev::{TokenSpec, dev_key_path, issue_dev_token_with_key};

/// How bearer tokens are verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthMode {
    /// Tokens signed by a local key kept in the data dir; issue them with `graphsec token`.
    Dev,
    /// Tokens from a real identity provider (Entra ID), verified with keys from --jwks-file
    /// and/or --jwks-url.
    Jwks,
    /// No authentication: every request acts for one fixed tenant with every permission.
    /// Loopback only.
    None,
}

/// Authentication flags of `graphsec serve`.
// The field docs are clap's --help text, where bare URLs read best; rustdoc would want <...>.
// (`allow`, not `expect`: rustdoc lints are not evaluated by ordinary builds.)
#[allow(rustdoc::bare_urls)]
#[derive(Debug, Clone, Default, Args)]
pub struct AuthArgs {
    /// How bearer tokens are verified [default: jwks if --jwks-file or --jwks-url is given,
    /// else dev]
    #[arg(long = "auth", value_enum, env = "GRAPHSEC_AUTH", value_name = "MODE")]
    pub auth: Option<AuthMode>,

    /// JWK Set file with the token signing keys (RS256/ES256), e.g. a saved copy of
    /// https://login.microsoftonline.com/common/discovery/v2.0/keys. Re-read when a token names
    /// an unknown key id.
    #[arg(long, env = "GRAPHSEC_JWKS_FILE", value_name = "PATH")]
    pub jwks_file: Option<PathBuf>,

    /// JWK Set URL with the token signing keys, e.g.
    /// https://login.microsoftonline.com/common/discovery/v2.0/keys. Cached; fetched again when a
    /// token names an unknown key id (at most once per 5 minutes) and daily.
    #[arg(long, env = "GRAPHSEC_JWKS_URL", value_name = "URL")]
    pub jwks_url: Option<String>,

    /// Accepted token issuer (repeatable; comma-separated in the environment). `{tenantid}` is
    /// replaced by the token's own tid before comparing. [default (jwks):
    /// https://sts.windows.net/{tenantid}/ and
    /// https://login.microsoftonline.com/{tenantid}/v2.0]
    #[arg(
        long = "issuer",
        env = "GRAPHSEC_ISSUER",
        value_name = "ISS",
        value_delimiter = ','
    )]
    pub issuers: Vec<String>,

    /// Accepted token audience (repeatable; comma-separated in the environment). [default:
    /// https://graph.microsoft.com and 00000003-0000-0000-c000-000000000000]
    #[arg(
        long = "audience",
        env = "GRAPHSEC_AUDIENCE",
        value_name = "AUD",
        value_delimiter = ','
    )]
    pub audiences: Vec<String>,

    /// JSON file mapping operations to the scopes/roles that allow them, e.g.
    /// {"read": ["SecurityEvents.Read.All", "SecurityEvents.ReadWrite.All"],
    /// "write": ["SecurityEvents.ReadWrite.All"]}. [default: that mapping]
    #[arg(long, env = "GRAPHSEC_PERMISSIONS_FILE", value_name = "PATH")]
    pub permissions_file: Option<PathBuf>,

    /// Development mode: the signing key file (PKCS#8 PEM, created mode 0600 if missing) instead
    /// of <data dir>/dev-jwt-signing-key.pem or an in-memory key. Lets servers (also
    /// --in-memory ones) and `graphsec token --dev-key FILE` share one key between runs.
    #[arg(long, env = "GRAPHSEC_DEV_KEY", value_name = "FILE")]
    pub dev_key: Option<PathBuf>,

    /// Development mode: the applications the Entra ID-compatible token endpoint
    /// (POST /{tenant}/oauth2/v2.0/token) knows, as a JSON list of {"clientId", "clientSecret",
    /// "tenant" (optional: any tenant when absent), "roles"}. Without it the endpoint accepts
    /// any client id and secret (on a loopback listener, or with --accept-any-client) and grants
    /// every application permission.
    #[arg(long, env = "GRAPHSEC_APP_REGISTRATIONS", value_name = "FILE")]
    pub app_registrations: Option<PathBuf>,

    /// Development mode without --app-registrations: let the token endpoint (and
    /// /_graphsec/token) issue tokens to anyone even when graphsec listens on a non-loopback
    /// address (by default open issuance is for loopback listeners only).
    #[arg(long, env = "GRAPHSEC_ACCEPT_ANY_CLIENT")]
    pub accept_any_client: bool,
}

/// `graphsec token`: print a development token, signed with a server's key or asked of a
/// running server.
#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// Ask the running graphsec at this base URL (e.g. http://127.0.0.1:7470) for the token
    /// (its development endpoint POST /_graphsec/token); works for --in-memory servers too.
    /// HTTPS servers must be trusted: system roots, SSL_CERT_FILE, or --cacert.
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,

    /// Sign with this key file (the one the server was given as --dev-key). It must exist.
    #[arg(long, env = "GRAPHSEC_DEV_KEY", value_name = "FILE")]
    pub dev_key: Option<PathBuf>,

    /// Sign with the key in this data dir (<DIR>/dev-jwt-signing-key.pem, written by `graphsec
    /// serve --data-dir DIR` on first start). It must exist: nothing is created. Used when
    /// neither --url nor --dev-key is given.
    #[arg(long, env = "GRAPHSEC_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// With --url: also trust this PEM certificate (e.g. the server's
    /// tls-self-signed-cert.pem).
    #[arg(long, value_name = "PEM")]
    pub cacert: Option<PathBuf>,

    /// Tenant id (the token's tid); the server scopes all data by it.
    #[arg(long, value_name = "TID")]
    pub tenant: String,

    /// Delegated permission (scp) to grant (repeatable). [default, when neither --scope nor
    /// --role is given: SecurityEvents.ReadWrite.All]
    #[arg(long = "scope", value_name = "SCOPE")]
    pub scopes: Vec<String>,

    /// Application permission (roles) to grant (repeatable); makes an app-only token when no
    /// --scope is given.
    #[arg(long = "role", value_name = "ROLE")]
    pub roles: Vec<String>,

    /// Lifetime of the token in seconds.
    #[arg(long, default_value_t = 3600, value_name = "SECONDS")]
    pub ttl: u64,

    /// Client application id (the azp claim), which also keys throttling. [default: no azp;
    /// sub is graphsec-dev]
    #[arg(long, value_name = "ID")]
    pub app_id: Option<String>,
}

/// The permission a token gets when it names none.
pub const DEFAULT_TOKEN_SCOPE: &str = "SecurityEvents.ReadWrite.All";

impl TokenArgs {
    /// What the token says (the default scope applied).
    pub fn spec(&self) -> TokenSpec {
        let mut scopes = self.scopes.clone();
        if scopes.is_empty() && self.roles.is_empty() {
            scopes.push(DEFAULT_TOKEN_SCOPE.to_owned());
        }
        TokenSpec {
            tenant: self.tenant.clone(),
            scopes,
            roles: self.roles.clone(),
            ttl_seconds: self.ttl,
            app_id: self.app_id.clone(),
            issuer: None,
            app_only: false,
        }
    }

    /// Issues the token; the caller prints it (alone, on stdout, so `$(graphsec token ...)`
    /// works). `--url` wins over `--dev-key`, which wins over `--data-dir` (which may come from
    /// the environment).
    pub async fn run(&self) -> Result<String, String> {
        let spec = self.spec();
        if let Some(url) = &self.url {
            if self.dev_key.is_some() {
                return Err("give --url or --dev-key, not both".into());
            }
            return super::sts::request_dev_token(url, &spec, self.cacert.as_deref()).await;
        }
        let key = match (&self.dev_key, &self.data_dir) {
            (Some(file), _) => file.clone(),
            (None, Some(dir)) => dev_key_path(dir),
            (None, None) => {
                return Err(
                    "say which server the token is for: --url http://HOST:PORT (a running \
                     server), --dev-key FILE (the server's --dev-key) or --data-dir DIR (the \
                     server's data directory)"
                        .into(),
                );
            }
        };
        issue_dev_token_with_key(&key, &spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        auth: AuthArgs,
    }

    #[test]
    fn flags_parse() {
        let cli = Cli::try_parse_from([
            "graphsec",
            "--auth",
            "jwks",
            "--jwks-url",
            "https://example/keys",
            "--issuer",
            "https://a/{tenantid}/",
            "--issuer",
            "https://b",
            "--audience",
            "api://x",
        ])
        .unwrap();
        assert_eq!(cli.auth.auth, Some(AuthMode::Jwks));
        assert_eq!(cli.auth.issuers, vec!["https://a/{tenantid}/", "https://b"]);
        assert_eq!(cli.auth.audiences, vec!["api://x"]);
        assert!(Cli::try_parse_from(["graphsec", "--auth", "basic"]).is_err());
    }
}
