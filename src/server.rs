//! Startup and shutdown: open the store, bind, announce the address, serve until SIGTERM/SIGINT,
//! then finish in-flight requests and let the writer drain before exiting.

use std::io::Write;
use std::sync::Arc;

use crate::api::admission::Admission;
use crate::api::{self, AppState};
use crate::auth::Authenticator;
use crate::config::ServeArgs;
use crate::model::validate;
use crate::ops;
use crate::store::Store;
use crate::store::postgres::PostgresStore;
use crate::store::sqlite::{Location, SqliteStore};
use crate::tls;

/// The token printed at startup in `--in-memory` dev mode.
pub const DEV_TOKEN_TENANT: &str = "default";
const DEV_TOKEN_TTL_SECS: u64 = 24 * 3600;

/// Runs the server until a shutdown signal arrives.
pub async fn run(args: ServeArgs) -> Result<(), String> {
    let store = open_store(&args).await?;
    // Recorder first: the store and the request path record into it from here on.
    let metrics = ops::metrics::install()?;
    let store: Arc<dyn Store> = Arc::new(ops::metrics::Instrumented(store));
    if let Some(seed) = &args.seed {
        seed_store(store.clone(), seed, args.strict_properties).await?;
    }
    let data_dir = (!args.in_memory).then_some(args.data_dir.as_path());
    // Development mode (dev tokens or no authentication) accepts loopback http receivers and
    // may act for Microsoft's hosts (--https-proxy).
    let development = development_mode(&args.auth);
    if args.proxy.https_proxy && !development {
        return Err("--https-proxy is for development mode only (--auth dev or --auth none): graphsec would answer as login.microsoftonline.com and graph.microsoft.com, which a server verifying a real identity provider's tokens (--auth jwks, --jwks-url, --jwks-file) must never do".into());
    }
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
        // An application token with every role the permissions accept, so it reaches every
        // set (tiIndicators and securityActions have permissions of their own).
        let roles = auth.every_application_role();
        if let Ok(token) =
            auth.issue_dev_token(DEV_TOKEN_TENANT, &[], &roles, DEV_TOKEN_TTL_SECS, None)
        {
            println!(
                "graphsec dev token (tenant '{DEV_TOKEN_TENANT}', application roles {}, valid {} h): {token}",
                roles.join(" "),
                DEV_TOKEN_TTL_SECS / 3600
            );
        }
    }
    let sts = token_service(&args, &auth, &listen_addrs)?;
    if let Some(sts) = &sts {
        tracing::info!(clients = %sts.describe(), "Entra ID-compatible token service (development mode)");
    }
    let tls_setup = tls::server_config(&args.tls, data_dir)?;
    if let Some((_, Some(cert))) = &tls_setup {
        tracing::info!(certificate = %cert.display(), "HTTPS with a self-signed certificate: trust this file in clients");
    }
    let proxy = crate::proxy::Interceptor::from_args(&args.proxy, data_dir)?;
    let notifier = Arc::new(crate::notify::Notifier::new(
        args.notify.clone(),
        development,
    )?);
    if !args.notify.notify_disable_dispatcher {
        crate::notify::dispatcher::spawn(store.clone(), notifier.clone());
    }
    let state = Arc::new(AppState {
        notify: notifier,
        auth,
        store: store.clone(),
        validation: validate::Options {
            strict: args.strict_properties,
            max_entity_bytes: args
                .max_entity_bytes
                .unwrap_or(args.max_body_bytes.saturating_mul(2)),
        },
        max_body_bytes: args.max_body_bytes,
        page_size: usize::from(args.page_size),
        max_page_bytes: args.max_page_bytes,
        public_url: args.public_url.clone(),
        tls: tls_setup.is_some(),
        admin_token: args.admin_token.clone(),
        cors: api::wire::cors_layer(&args.cors_origin)?,
        admission: Admission::from_args(&args.admission)?,
        limits: args.limits.clone(),
    });
    tracing::info!(
        admission = Admission::describe(&args.admission),
        "throttling"
    );
    state.admission.spawn_housekeeping();
    let mut features = vec![format!("auth: {}", state.auth.describe())];
    for (on, name) in [
        (tls_setup.is_some(), "tls"),
        (args.admin_token.is_some(), "admin"),
        (args.strict_properties, "strictProperties"),
        (args.in_memory, "inMemory"),
        (args.seed.is_some(), "seed"),
        (proxy.is_some(), "httpsProxy"),
    ] {
        if on {
            features.push(name.to_string());
        }
    }
    let dev_mode = sts.is_some();
    let ops_state = Arc::new(ops::http::OpsState {
        store: store.clone(),
        admin_token: args.admin_token.clone(),
        sts,
        public_url: args.public_url.clone(),
        tls: tls_setup.is_some(),
        metrics: args.metrics_listen.is_none().then(|| metrics.clone()),
        info: ops::http::Info {
            store: if args.database.database_url.is_some() {
                "postgresql"
            } else {
                "sqlite"
            },
            // Never the database URL itself: it may carry a password.
            location: if args.database.database_url.is_some() {
                None
            } else {
                data_dir.map(|d| d.display().to_string())
            },
            features,
        },
    });
    if let Some(addr) = &args.metrics_listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen on --metrics-listen {addr}: {e}"))?;
        let bound = listener.local_addr().map_err(|e| e.to_string())?;
        let app: axum::Router = ops::http::metrics_router(metrics.clone());
        println!("graphsec metrics on http://{bound}/metrics");
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "metrics listener failed");
            }
        });
    }
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    // Operator endpoints first (exact paths); everything else is the Graph API.
    // The same wire layers (request ids, error envelope, compression), without CORS: browsers
    // have no business with operator endpoints.
    let mut operator = ops::http::router(ops_state);
    if args.no_explorer {
        tracing::info!("the data explorer is off (--no-explorer)");
    } else {
        let access = crate::explorer::Access::decide(args.admin_token.as_deref(), &listen_addrs);
        tracing::info!(
            access = access.describe(),
            "data explorer at {}",
            crate::explorer::BASE
        );
        operator = operator.merge(crate::explorer::router(Arc::new(
            crate::explorer::Explorer::new(state.clone(), access),
        )));
    }
    let app =
        api::wire::layer(operator, None, args.limits.max_url_length).merge(api::router(state));
    let scheme = if tls_setup.is_some() { "https" } else { "http" };
    // Before the listening line: from then on SIGTERM means a graceful shutdown.
    let shutdown = shutdown_signal();
    let connections = crate::serve::Connections::new(&args.limits);
    match tls_setup {
        None => {
            announce("http", addr);
            if dev_mode {
                announce_dev_mode(scheme, addr, args.public_url.as_deref(), None);
            }
            if let Some(p) = &proxy {
                announce_proxy(scheme, addr, p.ca_path(), None);
            }
            // Responses leave in one write each, but a large one spans several segments and
            // Nagle's algorithm would hold its last one until the client's delayed ACK.
            let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                let _ = tcp.set_nodelay(true);
            });
            let proxy = proxy.clone();
            crate::serve::serve(listener, app, &args.limits, connections, proxy, shutdown).await;
        }
        Some((config, trust)) => {
            let listener = tls::TlsListener::with_connections(
                listener,
                config,
                args.limits.max_connections,
                Some(connections.clone()),
            )
            .map_err(|e| e.to_string())?;
            announce("https", addr);
            if dev_mode {
                announce_dev_mode(scheme, addr, args.public_url.as_deref(), trust.as_deref());
            }
            if let Some(p) = &proxy {
                announce_proxy(scheme, addr, p.ca_path(), trust.as_deref());
            }
            let proxy = proxy.clone();
            crate::serve::serve(listener, app, &args.limits, connections, proxy, shutdown).await;
        }
    }
    if let Some(p) = &proxy {
        p.cleanup();
    }
    tracing::info!("stopped");
    Ok(())
}

/// `--seed`: imports a file before the server accepts connections; any bad line aborts startup.
async fn seed_store(store: Arc<dyn Store>, path: &str, strict: bool) -> Result<(), String> {
    let opts = ops::transfer::ImportOptions {
        tenant: None,
        on_error: ops::transfer::OnError::Stop,
        chunk_size: ops::transfer::DEFAULT_CHUNK,
        validation: validate::Options {
            strict,
            ..Default::default()
        },
        bar: false,
    };
    let report = ops::transfer::import_path(store, path, &opts)
        .await
        .map_err(|e| format!("--seed {path}: {e}"))?;
    if let Some(line) = report.stopped_at {
        return Err(format!(
            "--seed {path}: line {line} is invalid (see the log)"
        ));
    }
    tracing::info!(file = path, profiles = report.imported, "seeded the store");
    Ok(())
}

/// The PostgreSQL store when --database-url is given, else the embedded SQLite store.
async fn open_store(args: &ServeArgs) -> Result<Arc<dyn Store>, String> {
    if let Some(url) = &args.database.database_url {
        // A statement never outlives its request: PostgreSQL's own limit is at most the
        // request timeout (a request that ends early also cancels its statement).
        let mut database = args.database.clone();
        let request_ms = u64::try_from(args.limits.request_timeout.as_millis()).unwrap_or(u64::MAX);
        if request_ms > 0 {
            database.database_statement_timeout_ms =
                database.database_statement_timeout_ms.min(request_ms);
        }
        return Ok(Arc::new(PostgresStore::open(&database, url).await?));
    }
    let location = if args.in_memory {
        Location::Memory
    } else {
        Location::File(args.data_dir.clone())
    };
    let store = SqliteStore::open(&location)?;
    store.set_min_free_disk(args.min_free_disk_bytes);
    match &location {
        Location::File(dir) => tracing::info!(
            database = %SqliteStore::database_path(dir).display(),
            "embedded SQLite store (WAL, synchronous=FULL)"
        ),
        Location::Memory => tracing::info!("in-memory store: nothing is written to disk"),
    }
    Ok(Arc::new(store))
}

/// The development token service, in dev mode (`None` otherwise): for the registered
/// applications, or for anyone when graphsec listens on loopback only (or the operator says so).
fn token_service(
    args: &ServeArgs,
    auth: &Authenticator,
    listen_addrs: &[std::net::SocketAddr],
) -> Result<Option<Arc<crate::auth::sts::TokenService>>, String> {
    use crate::auth::sts::{AppRegistrations, ClientPolicy, TokenService};
    let Some(signer) = auth.dev_signer() else {
        return Ok(None);
    };
    let policy = if let Some(path) = &args.auth.app_registrations {
        ClientPolicy::Registered(AppRegistrations::from_file(path)?)
    } else if args.auth.accept_any_client || listen_addrs.iter().all(|a| a.ip().is_loopback()) {
        ClientPolicy::AnyClient {
            roles: auth.application_permissions(),
        }
    } else {
        tracing::warn!(
            "the token endpoint accepts no client: graphsec listens on {} (not loopback only) without --app-registrations; pass --app-registrations FILE, or --accept-any-client to let anyone who can connect get a token",
            args.listen
        );
        ClientPolicy::Closed {
            reason: format!(
                "graphsec issues tokens to any client only when it listens on loopback, and it listens on {}; start it with --app-registrations FILE (the applications and their roles) or --accept-any-client",
                args.listen
            ),
        }
    };
    Ok(Some(Arc::new(TokenService::new(signer, policy))))
}

/// The second startup line in development mode: where the API is and how to get a token.
fn announce_dev_mode(
    scheme: &str,
    addr: std::net::SocketAddr,
    public_url: Option<&str>,
    certificate: Option<&std::path::Path>,
) {
    let cacert = certificate
        .map(|c| format!(" --cacert {}", c.display()))
        .unwrap_or_default();
    let base = public_url
        .map(|u| u.trim_end_matches('/').to_owned())
        .unwrap_or_else(|| format!("{scheme}://{addr}"));
    let sets: Vec<&str> = crate::model::catalog()
        .served()
        .map(|e| e.collection)
        .collect();
    println!(
        "graphsec development mode: Microsoft Graph's legacy security API at {base}/beta/security/{{{}}}; get a token with `graphsec token --url {base}{cacert} --tenant contoso`, or as an Entra ID application from the OAuth 2.0 token endpoint {base}/{{tenant}}/oauth2/v2.0/token (MSAL/Azure Identity authority {base})",
        sets.join(",")
    );
    let _ = std::io::stdout().flush();
}

/// Whether the flags put graphsec in development mode: dev tokens (the default without
/// `--jwks-file`/`--jwks-url`) or no authentication.
fn development_mode(auth: &crate::auth::AuthArgs) -> bool {
    match auth.auth {
        Some(crate::auth::AuthMode::Dev | crate::auth::AuthMode::None) => true,
        Some(crate::auth::AuthMode::Jwks) => false,
        None => auth.jwks_file.is_none() && auth.jwks_url.is_none(),
    }
}

/// The startup line of `--https-proxy`: the two settings an application needs. Over a TLS
/// listener the application must trust the listener's certificate too (`listener_cert`).
fn announce_proxy(
    scheme: &str,
    addr: std::net::SocketAddr,
    ca: &std::path::Path,
    listener_cert: Option<&std::path::Path>,
) {
    let also = listener_cert
        .map(|c| format!(" and {}", c.display()))
        .unwrap_or_default();
    println!(
        "graphsec HTTPS proxy for Microsoft's identity and Graph hosts (login.microsoftonline.com, graph.microsoft.com, their aliases and national clouds): run applications with HTTPS_PROXY={scheme}://{addr} and trust {}{also} (SSL_CERT_FILE and REQUESTS_CA_BUNDLE for Python, NODE_EXTRA_CA_CERTS for Node.js); other hosts are refused (set NO_PROXY for them), nothing goes to the internet",
        ca.display()
    );
    let _ = std::io::stdout().flush();
}

/// Scripts and tests wait for this exact form on stdout.
fn announce(scheme: &str, addr: std::net::SocketAddr) {
    println!("graphsec listening on {scheme}://{addr}");
    let _ = std::io::stdout().flush();
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C). The handlers are installed by this call, not when the
/// future is first polled: `run` calls it before printing the listening line, so a supervisor or
/// test that signals as soon as it reads that line gets the graceful shutdown, never the signal's
/// default action (the accept loop may first poll the future only after serving a connection).
fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let (term, int) = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::terminate()).ok(),
            signal(SignalKind::interrupt()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = wait(term) => {},
                _ = wait(int) => {},
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("shutdown requested: finishing in-flight requests");
    }
}
