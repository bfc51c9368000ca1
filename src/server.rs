//! Startup and shutdown: open the store, bind, announce the address, serve until SIGTERM/SIGINT,
//! then finish in-flight requests and let the writer drain before exiting.

use std::io::Write;
use std::sync::Arc;

use crate::api::{self, AppState};
use crate::auth::Authenticator;
use crate::config::ServeArgs;
use crate::model::validate;
use crate::store::Store;
use crate::store::postgres::PostgresStore;
use crate::store::sqlite::{Location, SqliteStore};
use crate::tls;

/// The token printed at startup in `--in-memory` dev mode.
pub const DEV_TOKEN_TENANT: &str = "default";
const DEV_TOKEN_SCOPE: &str = "SecurityEvents.ReadWrite.All";
const DEV_TOKEN_TTL_SECS: u64 = 24 * 3600;

/// Runs the server until a shutdown signal arrives.
pub async fn run(args: ServeArgs) -> Result<(), String> {
    let store = open_store(&args).await?;
    let data_dir = (!args.in_memory).then_some(args.data_dir.as_path());
    let auth = Authenticator::from_args(&args.auth, data_dir)?;
    let listen_addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host(&args.listen)
        .await
        .map_err(|e| format!("cannot resolve --listen {}: {e}", args.listen))?
        .collect();
    if auth.is_disabled() {
        // Without authentication anyone who can connect owns the data: loopback only.
        if listen_addrs.iter().any(|a| !a.ip().is_loopback()) {
            return Err(format!(
                "--auth none is only allowed on a loopback address (127.0.0.1, ::1), not {}",
                args.listen
            ));
        }
        tracing::warn!(
            "authentication is DISABLED (--auth none): every request acts for one tenant with full permissions"
        );
    }
    match auth.warm_up().await {
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(error = %e, "could not fetch the signing keys yet; will retry on demand")
        }
    }
    tracing::info!(auth = auth.describe(), "authentication");
    if data_dir.is_none() {
        // An in-memory dev key exists only in this process, so `graphsec token` cannot sign for
        // it: hand out a ready token instead (the key and the token die with the process).
        let scopes = vec![DEV_TOKEN_SCOPE.to_string()];
        if let Ok(token) =
            auth.issue_dev_token(DEV_TOKEN_TENANT, &scopes, &[], DEV_TOKEN_TTL_SECS, None)
        {
            println!(
                "graphsec dev token (tenant '{DEV_TOKEN_TENANT}', {DEV_TOKEN_SCOPE}, valid {} h): {token}",
                DEV_TOKEN_TTL_SECS / 3600
            );
        }
    }
    let tls_setup = tls::server_config(&args.tls, data_dir)?;
    if let Some((_, Some(cert))) = &tls_setup {
        tracing::info!(certificate = %cert.display(), "HTTPS with a self-signed certificate: trust this file in clients");
    }
    let state = Arc::new(AppState {
        auth,
        store,
        validation: validate::Options {
            strict: args.strict_properties,
        },
        max_body_bytes: args.max_body_bytes,
        page_size: usize::from(args.page_size),
        public_url: args.public_url.clone(),
        tls: tls_setup.is_some(),
        cors: api::wire::cors_layer(&args.cors_origin)?,
    });
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let app = api::router(state);
    match tls_setup {
        None => {
            announce("http", addr);
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown_signal())
                .await
                .map_err(|e| format!("server error: {e}"))?;
        }
        Some((config, _)) => {
            let listener = tls::TlsListener::new(listener, config).map_err(|e| e.to_string())?;
            announce("https", addr);
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown_signal())
                .await
                .map_err(|e| format!("server error: {e}"))?;
        }
    }
    tracing::info!("stopped");
    Ok(())
}

/// The PostgreSQL store when --database-url is given, else the embedded SQLite store.
async fn open_store(args: &ServeArgs) -> Result<Arc<dyn Store>, String> {
    if let Some(url) = &args.database.database_url {
        return Ok(Arc::new(PostgresStore::open(&args.database, url).await?));
    }
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
    Ok(Arc::new(store))
}

/// Scripts and tests wait for this exact form on stdout.
fn announce(scheme: &str, addr: std::net::SocketAddr) {
    println!("graphsec listening on {scheme}://{addr}");
    let _ = std::io::stdout().flush();
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
