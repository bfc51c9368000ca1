//! PostgreSQL for the harness: which server to test against, and one database per test.
//!
//! `./scripts/test` runs the data tests twice, the second time with
//! `GRAPHSEC_TEST_STORE=postgres`. PostgreSQL comes from `$DATABASE_URL` (an admin URL whose
//! role may CREATE DATABASE), else `postgres://postgres@127.0.0.1:5432/postgres`. Unreachable:
//! outside CI the PostgreSQL tests are skipped with one loud line; under `CI=true` they fail.

use std::path::Path;
use std::sync::OnceLock;

/// The admin URL the harness creates databases through.
pub fn admin_url() -> String {
    std::env::var("DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// The URL of database `name` on the admin URL's server (same credentials and options).
pub fn url(name: &str) -> String {
    let admin = admin_url();
    let (base, query) = match admin.split_once('?') {
        Some((b, q)) => (b.to_string(), format!("?{q}")),
        None => (admin.clone(), String::new()),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let authority_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    format!("{}/{name}{query}", &base[..authority_end])
}

/// Runs one async PostgreSQL job to completion on a thread of its own (the harness is called
/// from inside tests' runtimes, which must not be blocked on).
fn blocking<T: Send + 'static>(
    job: impl FnOnce(tokio_postgres::Client) -> std::pin::Pin<Box<dyn Future<Output = T> + Send>>
    + Send
    + 'static,
) -> Result<T, String> {
    blocking_on(admin_url(), job)
}

/// [`blocking`] on the database at `url`.
fn blocking_on<T: Send + 'static>(
    url: String,
    job: impl FnOnce(tokio_postgres::Client) -> std::pin::Pin<Box<dyn Future<Output = T> + Send>>
    + Send
    + 'static,
) -> Result<T, String> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async move {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            Ok(job(client).await)
        })
    })
    .join()
    .map_err(|_| "PostgreSQL helper thread panicked".to_string())?
}

/// The first column of the first row `sql` returns in database `name`, as text (`None` for
/// SQL NULL or no row).
pub fn scalar(name: &str, sql: &str) -> Option<String> {
    let sql = sql.to_string();
    blocking_on(url(name), move |c| {
        Box::pin(async move {
            let messages = c.simple_query(&sql).await.expect("query");
            messages.into_iter().find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => Some(r.get(0).map(str::to_string)),
                _ => None,
            })?
        })
    })
    .expect("PostgreSQL helper")
}

/// Whether PostgreSQL is reachable: checked once; outside CI a miss is one loud line, under
/// `CI=true` it is a failure.
pub fn available() -> bool {
    static UP: OnceLock<bool> = OnceLock::new();
    *UP.get_or_init(|| {
        match blocking(|c| Box::pin(async move { c.simple_query("SELECT 1").await.map(|_| ()) })) {
            Ok(Ok(())) => true,
            Ok(Err(e)) => unreachable_pg(&e.to_string()),
            Err(e) => unreachable_pg(&e),
        }
    })
}

fn unreachable_pg(why: &str) -> bool {
    let msg = format!(
        "PostgreSQL at {} is unreachable ({why}); set DATABASE_URL",
        admin_url()
    );
    crate::support::skip_loudly("PostgreSQL tests", &msg)
}

/// Whether this run tests the PostgreSQL store (`GRAPHSEC_TEST_STORE=postgres` and reachable).
pub fn selected() -> bool {
    std::env::var("GRAPHSEC_TEST_STORE").is_ok_and(|v| v == "postgres") && available()
}

/// A fresh database; dropped by [`drop_database`].
pub fn create_database() -> String {
    let name = format!("graphsec_it_{}", uuid::Uuid::new_v4().simple());
    ensure_database(&name);
    name
}

/// Creates database `name` unless it exists.
fn ensure_database(name: &str) {
    let sql = format!("CREATE DATABASE {name}");
    let r = blocking(move |c| Box::pin(async move { c.batch_execute(&sql).await }))
        .expect("PostgreSQL helper");
    if let Err(e) = r
        && e.code() != Some(&tokio_postgres::error::SqlState::DUPLICATE_DATABASE)
    {
        panic!("CREATE DATABASE {name}: {e}");
    }
}

/// How many running servers use each database: the last one to stop drops it.
fn users() -> &'static std::sync::Mutex<std::collections::HashMap<String, usize>> {
    static USERS: OnceLock<std::sync::Mutex<std::collections::HashMap<String, usize>>> =
        OnceLock::new();
    USERS.get_or_init(Default::default)
}

/// The database of a data directory (named in a file there, so a server restarted on the same
/// directory finds it again), created when missing. Pair with [`release`].
pub fn database_for(dir: &Path) -> String {
    let marker = dir.join("postgres-test-database");
    let name = std::fs::read_to_string(&marker)
        .unwrap_or_else(|_| format!("graphsec_it_{}", uuid::Uuid::new_v4().simple()));
    ensure_database(&name);
    std::fs::create_dir_all(dir).expect("data dir");
    std::fs::write(&marker, &name).expect("database marker");
    *users()
        .lock()
        .expect("users")
        .entry(name.clone())
        .or_default() += 1;
    name
}

/// A server on `name` stopped: the database is dropped when no other server uses it (a
/// restart on the same directory creates it again, empty; the restart tests that need the data
/// to survive are SQLite's `durability` tests).
pub fn release(name: &str) {
    let last = {
        let mut users = users().lock().expect("users");
        let n = users.entry(name.to_string()).or_default();
        *n = n.saturating_sub(1);
        *n == 0
    };
    if last {
        drop_database(name);
    }
}

pub fn drop_database(name: &str) {
    let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
    let _ = blocking(move |c| Box::pin(async move { c.batch_execute(&sql).await }));
}
