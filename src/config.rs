//! Command-line interface and configuration: every flag has a `GRAPHSEC_*` environment
//! equivalent, and the defaults work with zero configuration.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::auth::{AuthArgs, TokenArgs};
use crate::tls::TlsArgs;

/// The address `graphsec serve` listens on when none is given.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7470";

#[derive(Debug, Parser)]
#[command(
    name = "graphsec",
    version,
    about = "A self-hosted, Graph-compatible server for Microsoft Graph's legacy Security API \
             (beta and v1.0): alerts, tiIndicators, secureScores, cloudAppSecurityProfiles and \
             the rest of the family.",
    long_about = "graphsec serves the entity sets of Microsoft Graph's legacy Security API under \
                  /beta/security/ (alerts, cloudAppSecurityProfiles, secureScores, \
                  secureScoreControlProfiles, tiIndicators and the rest of the family, with \
                  their bound actions, $batch and $metadata; the /beta prefix is optional), and \
                  the three sets Graph v1.0 kept under /v1.0/security/, on the \
                  Microsoft Graph wire contract, so code and SDKs written against Microsoft Graph \
                  work against it unmodified.\n\n\
                  Start it with `graphsec serve`: data goes to ./graphsec-data (embedded SQLite) \
                  unless --in-memory, --data-dir or --database-url (PostgreSQL) says \
                  otherwise. Then `graphsec token --url http://127.0.0.1:7470 --tenant contoso` \
                  prints a bearer token that server accepts, and MSAL or Azure Identity \
                  applications get theirs from its Entra ID-compatible token endpoint (authority \
                  http://127.0.0.1:7470, or https:// with --tls-self-signed; or, with \
                  --https-proxy, Microsoft's own URLs through HTTPS_PROXY)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (see `graphsec serve --help` for every flag).
    // Boxed: the flags make it much larger than the other variants.
    Serve(Box<ServeArgs>),
    /// Print a development token a server accepts (development mode): asked of the running
    /// server (--url), or signed with its key (--dev-key FILE, or --data-dir DIR).
    ///
    /// Example: graphsec token --url http://127.0.0.1:7470 --tenant contoso --scope SecurityEvents.ReadWrite.All
    /// (--scope makes a delegated token, --role an application token; without either the token
    /// carries the SecurityEvents.ReadWrite.All scope).
    Token(TokenArgs),
    /// Write the entities of every served set as NDJSON (one a line, with `@graphsec.tenant`,
    /// `@graphsec.set` and the server's timestamps).
    ///
    /// Example: graphsec export --data-dir ./graphsec-data --tenant contoso --out contoso.ndjson
    /// (safe while a server runs on the same data directory).
    Export(ExportArgs),
    /// Read NDJSON entities (as `export` writes them) into the store.
    ///
    /// Idempotent by tenant and id (an existing profile is replaced), keeps the timestamps,
    /// validates every line like the API, writes in chunks: rerun it after a crash.
    /// Example: graphsec import --data-dir ./graphsec-data contoso.ndjson
    Import(ImportArgs),
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object a line, for log shippers.
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// Directory of the embedded SQLite database.
    #[arg(long, env = "GRAPHSEC_DATA_DIR", default_value = "./graphsec-data")]
    pub data_dir: PathBuf,
    /// Export only this tenant's profiles.
    #[arg(long)]
    pub tenant: Option<String>,
    /// Write to this file instead of standard output.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Log filter (tracing syntax).
    #[arg(long, env = "GRAPHSEC_LOG", default_value = "info")]
    pub log: String,
    /// `--database-url` exports from PostgreSQL instead of the data directory.
    #[command(flatten)]
    pub database: crate::store::postgres::DatabaseArgs,
}

#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// The NDJSON file, or `-` for standard input.
    pub file: String,
    /// Directory of the embedded SQLite database (created if missing).
    #[arg(long, env = "GRAPHSEC_DATA_DIR", default_value = "./graphsec-data")]
    pub data_dir: PathBuf,
    /// Tenant of lines that carry no `@graphsec.tenant`.
    #[arg(long)]
    pub tenant: Option<String>,
    /// On a line that does not validate: report it and go on, or report it and stop (the
    /// chunk it is in is then not written).
    #[arg(long, value_enum, default_value = "stop")]
    pub on_error: crate::ops::transfer::OnError,
    /// Lines per transaction (larger chunks import faster; each holds the database's write
    /// lock for longer, which a running server's writes wait for).
    #[arg(long, default_value_t = crate::ops::transfer::DEFAULT_CHUNK)]
    pub chunk_size: usize,
    /// Refuse undeclared properties, as `serve --strict-properties` does.
    #[arg(long, env = "GRAPHSEC_STRICT_PROPERTIES")]
    pub strict_properties: bool,
    /// Log filter (tracing syntax).
    #[arg(long, env = "GRAPHSEC_LOG", default_value = "info")]
    pub log: String,
    /// `--database-url` imports into PostgreSQL instead of the data directory.
    #[command(flatten)]
    pub database: crate::store::postgres::DatabaseArgs,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on. Use 127.0.0.1:0 to pick a free port; the chosen address is printed
    /// as `listening on http://HOST:PORT` once the server accepts connections.
    #[arg(long, env = "GRAPHSEC_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: String,

    /// Directory of the embedded SQLite database (created if missing).
    #[arg(long, env = "GRAPHSEC_DATA_DIR", default_value = "./graphsec-data")]
    pub data_dir: PathBuf,

    /// Keep everything in memory: nothing touches the disk, and all data is gone at exit.
    #[arg(long, env = "GRAPHSEC_IN_MEMORY")]
    pub in_memory: bool,

    /// `/readyz` answers 503 while the disk holding the data directory has less free space than
    /// this, in bytes (0: no check), so a load balancer stops sending writes before they fail.
    /// Whatever this says, a write refused for lack of space makes the server not ready until
    /// a write succeeds again (or for 30 s).
    #[arg(long, env = "GRAPHSEC_MIN_FREE_DISK_BYTES",
          default_value_t = crate::store::sqlite::DEFAULT_MIN_FREE_DISK)]
    pub min_free_disk_bytes: u64,

    /// Largest accepted request body, in bytes (larger bodies get 413).
    #[arg(long, env = "GRAPHSEC_MAX_BODY_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Most bytes one entity may take (about, as JSON): a create or PATCH that would make an
    /// entity larger is refused with 400 and changes nothing, so PATCHes (each within
    /// --max-body-bytes) cannot grow one entity without bound. Default: twice --max-body-bytes
    /// (8 MiB with its default), so every create the body limit accepts fits. 0: no limit.
    #[arg(long, env = "GRAPHSEC_MAX_ENTITY_BYTES")]
    pub max_entity_bytes: Option<usize>,

    /// Most bytes of entities in one list page: a page ends early (with its `@odata.nextLink`)
    /// once its entities take this much, whatever `$top` asks, as Graph's server-driven paging
    /// does, so one request's memory stays bounded. At least one entity per page. 0: no budget.
    #[arg(long, env = "GRAPHSEC_MAX_PAGE_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_page_bytes: usize,

    /// Page size of list responses when the client sends no $top (1 to 1000).
    #[arg(long, env = "GRAPHSEC_PAGE_SIZE", default_value_t = 100,
          value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub page_size: u16,

    /// Public base URL (scheme and host, e.g. https://graphsec.example.com) used in
    /// @odata.context, @odata.nextLink and Location when graphsec runs behind a proxy.
    /// Default: derived from the Host header the client sent.
    #[arg(long, env = "GRAPHSEC_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Refuse undeclared properties with 400 instead of storing them as dynamic properties of
    /// the open type (typo safety over openness).
    #[arg(long, env = "GRAPHSEC_STRICT_PROPERTIES")]
    pub strict_properties: bool,

    /// Log filter (tracing syntax), e.g. `info`, `graphsec=debug`. The access log (target
    /// `graphsec::access`) writes every error and up to 100 successful requests a second at
    /// info, the others at debug: `info,graphsec::access=debug` writes a line for every request.
    #[arg(long, env = "GRAPHSEC_LOG", default_value = "info")]
    pub log: String,

    #[command(flatten)]
    pub auth: AuthArgs,

    #[command(flatten)]
    pub tls: TlsArgs,

    #[command(flatten)]
    pub proxy: crate::proxy::ProxyArgs,

    /// Enable the admin API (`POST /_graphsec/reset`, `GET /_graphsec/info`) for requests
    /// carrying `Authorization: Bearer SECRET`. Off when unset.
    #[arg(
        long,
        env = "GRAPHSEC_ADMIN_TOKEN",
        value_name = "SECRET",
        hide_env_values = true,
        // A random token (base64url) may start with "-": it is the value, not a flag.
        allow_hyphen_values = true
    )]
    pub admin_token: Option<String>,

    /// Do not serve the data explorer (`/_graphsec/explorer`). Without this flag it is open
    /// without a token on a loopback listener when no --admin-token is set, and needs the admin
    /// token whenever one is set (required off loopback).
    #[arg(long, env = "GRAPHSEC_NO_EXPLORER")]
    pub no_explorer: bool,

    /// Serve `/metrics` (no token) on this address, e.g. 127.0.0.1:9470, instead of the main
    /// listener (where `/metrics` then is an ordinary, authenticated Graph path).
    #[arg(long, env = "GRAPHSEC_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,

    /// Log line format.
    #[arg(long, env = "GRAPHSEC_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Import this NDJSON file (as `graphsec import` does) before accepting connections.
    #[arg(long, env = "GRAPHSEC_SEED")]
    pub seed: Option<String>,
    /// Origins of browser applications allowed to call graphsec (CORS), e.g.
    /// https://app.example.com; repeat the flag or separate with commas; `*` allows any origin
    /// (development only). Preflights from allowed origins are answered without a token.
    /// Default: no CORS headers (browsers refuse cross-origin calls).
    #[arg(long, env = "GRAPHSEC_CORS_ORIGIN", value_name = "ORIGIN")]
    pub cors_origin: Vec<String>,

    #[command(flatten)]
    pub admission: crate::api::admission::AdmissionArgs,

    #[command(flatten)]
    pub limits: crate::api::limits::LimitArgs,

    #[command(flatten)]
    pub database: crate::store::postgres::DatabaseArgs,

    #[command(flatten)]
    pub notify: crate::notify::NotifyArgs,
}
