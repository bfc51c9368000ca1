//! Command-line and environment configuration of authentication: the `serve` flags
//! ([`AuthArgs`]) and the `graphsec token` subcommand ([`TokenArgs`]).

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::dev::issue_dev_token;

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
}

/// `graphsec token`: print a development token signed with the data dir's key.
#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// Data dir of the server that should accept the token (the key is created there if missing).
    #[arg(long, env = "GRAPHSEC_DATA_DIR", value_name = "DIR")]
    pub data_dir: PathBuf,

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

impl TokenArgs {
    /// Issues the token; the caller prints it (alone, on stdout, so `$(graphsec token ...)` works).
    pub fn run(&self) -> Result<String, String> {
        let mut scopes = self.scopes.clone();
        if scopes.is_empty() && self.roles.is_empty() {
            scopes.push("SecurityEvents.ReadWrite.All".to_owned());
        }
        issue_dev_token(
            &self.data_dir,
            &self.tenant,
            &scopes,
            &self.roles,
            self.ttl,
            self.app_id.as_deref(),
        )
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
