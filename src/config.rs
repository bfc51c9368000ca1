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
    about = "A self-hosted, Graph-compatible server for the Microsoft Graph Security \
             cloudAppSecurityProfiles resource (beta).",
    long_about = "graphsec serves /beta/security/cloudAppSecurityProfiles (and the same paths \
                  without /beta) on the Microsoft Graph wire contract, so code and SDKs written \
                  against Microsoft Graph work against it unmodified.\n\n\
                  Start it with `graphsec serve`: data goes to ./graphsec-data (embedded SQLite) \
                  unless --in-memory or --data-dir says otherwise."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    /// (Boxed: the flags make it much larger than the other variants.)
    Serve(Box<ServeArgs>),
    /// Print a development token that a server with the same --data-dir accepts (dev mode).
    ///
    /// Example: graphsec token --data-dir ./graphsec-data --tenant contoso --scope SecurityEvents.ReadWrite.All
    /// (--scope makes a delegated token, --role an application token; without either the token
    /// carries the SecurityEvents.ReadWrite.All scope).
    Token(TokenArgs),
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

    /// Largest accepted request body, in bytes (larger bodies get 413).
    #[arg(long, env = "GRAPHSEC_MAX_BODY_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_body_bytes: usize,

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

    /// Log filter (tracing syntax), e.g. `info`, `graphsec=debug`.
    #[arg(long, env = "GRAPHSEC_LOG", default_value = "info")]
    pub log: String,

    #[command(flatten)]
    pub auth: AuthArgs,

    #[command(flatten)]
    pub tls: TlsArgs,

    /// Origins of browser applications allowed to call graphsec (CORS), e.g.
    /// https://app.example.com; repeat the flag or separate with commas; `*` allows any origin
    /// (development only). Preflights from allowed origins are answered without a token.
    /// Default: no CORS headers (browsers refuse cross-origin calls).
    #[arg(long, env = "GRAPHSEC_CORS_ORIGIN", value_name = "ORIGIN")]
    pub cors_origin: Vec<String>,

    #[command(flatten)]
    pub database: crate::store::postgres::DatabaseArgs,
}
