//! Startup and shutdown: open the store, bind, announce the address, serve until SIGTERM/SIGINT,
//! then finish in-flight requests and let the writer drain before exiting.

use std::io::Write;
use std::sync::Arc;

use crate::api::{self, AppState};
use crate::config::ServeArgs;
use crate::model::validate;
use crate::store::sqlite::{Location, SqliteStore};

/// The tenant every request uses until authentication supplies one.
pub const DEFAULT_TENANT: &str = "00000000-0000-0000-0000-000000000001";

/// Runs the server until a shutdown signal arrives.
pub async fn run(args: ServeArgs) -> Result<(), String> {
    let location = if args.in_memory {
        Location::Memory
    } else {
        Location::File(args.data_dir.clone())
    };
    let store = SqliteStore::open(&location)?;
    match &location {
        Location::File(dir) => tracing::info!(
            database = %SqliteStore::database_path(dir).display(),
            "embedded SQLite store (WAL, synchronous=FULL)"
        ),
        Location::Memory => tracing::info!("in-memory store: nothing is written to disk"),
    }
    let state = Arc::new(AppState {
        store: Arc::new(store),
        validation: validate::Options {
            strict: args.strict_properties,
        },
        max_body_bytes: args.max_body_bytes,
        page_size: usize::from(args.page_size),
        public_url: args.public_url.clone(),
        tls: false,
        default_tenant: DEFAULT_TENANT.to_string(),
    });
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    // Scripts and tests wait for this exact form on stdout.
    println!("graphsec listening on http://{addr}");
    let _ = std::io::stdout().flush();
    axum::serve(listener, api::router(state))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| format!("server error: {e}"))?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown requested: finishing in-flight requests");
}
