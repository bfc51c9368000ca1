//! The shared store for several graphsec nodes: PostgreSQL (and, by design, the
//! PostgreSQL-compatible distributed engines) through tokio-postgres with a bounded deadpool.
//!
//! Semantics are the SQLite store's, exactly: the same columns derived from the entity table
//! (`schema::create_ddl`), the same compiled `$filter`/`$orderby` (strings `COLLATE "C"`,
//! explicit null placement), 100 ns ticks as BIGINT, the same version stamps. Differences kept
//! inside this module:
//! - JSONB normalises object key order, so the dynamic properties are also kept verbatim in
//!   `dynamic_doc` (TEXT) and returned from there; the JSONB `dynamic` column serves `$filter`.
//! - Every write is one transaction; PATCH and DELETE lock the row (`SELECT ... FOR UPDATE`)
//!   and check the precondition under that lock, so racing nodes serialise per entity.
//! - Migrations are numbered and run under a row lock on `graphsec_migrations` (portable to
//!   CockroachDB, YugabyteDB and Citus, unlike advisory locks), so nodes may start together.
//! - Connection failures are `StoreError::Unavailable` (503 with `Retry-After`); the pool drops
//!   broken connections and reconnects on demand, so service resumes by itself.
//! - Statistics: PostgreSQL plans a prepared statement once for all executions (its generic
//!   plan) from the statistics it has then. Made on an empty, never-analyzed table, the plan of
//!   a lookup by `(tenant, id)` may pick a secondary `(tenant, X, id)` index and scan the whole
//!   tenant per lookup, and keeps it until the table is analyzed. Where autovacuum is off (it
//!   often is on CI and development servers) that never happens, and imports and creates went
//!   quadratic. So the store runs `ANALYZE` on a table itself as rows arrive: after 1,000 rows,
//!   then each time the rows written since the last one double (a handful of times per order of
//!   magnitude; each ANALYZE samples at most 30,000 rows). ANALYZE invalidates the cached plans.

use std::error::Error as StdError;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use deadpool_postgres::GenericClient;
use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};

use super::compile::{self, SqlParam};
use super::notify::{self, Change};
use super::schema::{self, Cell, CellRef, Dialect, quote};
use super::{BoxFuture, ListSpec, Page, PerSet, Precondition, Store, StoreError, TenantRecord};
use crate::model::edm::unique_ticks;
use crate::model::entity::EntityType;
use crate::model::record::{Changes, Record};
use crate::odata::typecheck::TypedFilter;

/// The column that keeps the dynamic properties as sent (JSONB reorders object keys).
const DYNAMIC_DOC_COLUMN: &str = "dynamic_doc";

/// `graphsec serve` flags of the PostgreSQL store.
#[derive(Debug, Clone, clap::Args)]
pub struct DatabaseArgs {
    /// PostgreSQL URL, e.g. postgres://graphsec:secret@db:5432/graphsec?sslmode=require.
    /// Selects the PostgreSQL store (several graphsec nodes may share it); without it the
    /// embedded SQLite store under --data-dir is used. sslmode=require (or verify-full)
    /// encrypts and verifies the server certificate against the system trust store
    /// (SSL_CERT_FILE honoured); without sslmode the connection is not encrypted.
    #[arg(long, env = "GRAPHSEC_DATABASE_URL")]
    pub database_url: Option<String>,

    /// Most connections this node opens to PostgreSQL.
    #[arg(long, env = "GRAPHSEC_DATABASE_POOL_SIZE", default_value_t = 16)]
    pub database_pool_size: usize,

    /// Server-side limit of one SQL statement, in milliseconds (PostgreSQL statement_timeout);
    /// a statement cut by it is a 503 for that request.
    #[arg(
        long,
        env = "GRAPHSEC_DATABASE_STATEMENT_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    pub database_statement_timeout_ms: u64,

    /// How long startup waits for the database to become reachable (logging each attempt)
    /// before giving up.
    #[arg(
        long,
        env = "GRAPHSEC_DATABASE_STARTUP_WAIT_SECS",
        default_value_t = 60
    )]
    pub database_startup_wait_secs: u64,
}

/// The PostgreSQL store.
pub struct PostgresStore {
    pool: Pool,
    /// For cancel requests ([`CancelOnDrop`]), which open a connection of their own.
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    analyze: Analyze,
    /// One per entity set of the catalog.
    sql: Arc<PerSet<Arc<Statements>>>,
    secret: Vec<u8>,
    /// Each tenant's share of the pool for reads: half of it, so one tenant's expensive
    /// queries leave the other half to everyone else.
    tenant_shares: super::TenantShares,
}

/// How long a request waits for a pooled connection (or its tenant's share of them) before
/// it is answered 503 with Retry-After.
const POOL_WAIT: Duration = Duration::from_secs(10);

/// The fixed SQL of one entity set, derived from the catalog once at open.
struct Statements {
    entity: &'static EntityType,
    /// Every record column in `schema::record_columns` order, as read (JSONB as text, the
    /// dynamic properties from their verbatim column).
    select_list: String,
    width: usize,
    get: String,
    get_for_update: String,
    insert: String,
    update: String,
    version_for_update: String,
    delete: String,
}

impl Statements {
    fn new(entity: &'static EntityType) -> Statements {
        let table = quote(entity.table);
        let tenant = quote(schema::TENANT_COLUMN);
        let key = quote(schema::column(entity.key()));
        let cols: Vec<(String, &str, bool)> = schema::columns(entity, Dialect::Postgres)
            .into_iter()
            .skip(1)
            .collect();
        let select_list = cols
            .iter()
            .map(|(c, ty, _)| {
                if c == schema::DYNAMIC_COLUMN {
                    quote(DYNAMIC_DOC_COLUMN)
                } else if *ty == "JSONB" {
                    format!("{}::text", quote(c))
                } else {
                    quote(c)
                }
            })
            .collect::<Vec<_>>()
            .join(", ");
        // Written columns: the record's, then the verbatim dynamic document.
        let mut written: Vec<String> = cols.iter().map(|(c, _, _)| quote(c)).collect();
        written.push(quote(DYNAMIC_DOC_COLUMN));
        let n = written.len();
        let get = format!("SELECT {select_list} FROM {table} WHERE {tenant} = $1 AND {key} = $2");
        Statements {
            entity,
            get_for_update: format!("{get} FOR UPDATE"),
            get,
            insert: format!(
                "INSERT INTO {table} ({tenant}, {}) VALUES ({})",
                written.join(", "),
                (1..=n + 1)
                    .map(|i| format!("${i}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            update: format!(
                "UPDATE {table} SET {} WHERE {tenant} = ${} AND {key} = ${}",
                written
                    .iter()
                    .enumerate()
                    .map(|(i, c)| format!("{c} = ${}", i + 1))
                    .collect::<Vec<_>>()
                    .join(", "),
                n + 1,
                n + 2
            ),
            version_for_update: format!(
                "SELECT {} FROM {table} WHERE {tenant} = $1 AND {key} = $2 FOR UPDATE",
                quote(schema::VERSION_COLUMN)
            ),
            delete: format!("DELETE FROM {table} WHERE {tenant} = $1 AND {key} = $2"),
            select_list,
            width: cols.len(),
        }
    }
}

/// The numbered migrations; index + 1 is the schema version each one produces: the tables of
/// the sets [`schema::migration_sets`] assigns to it, each with its verbatim dynamic-document
/// column (and, in the first, the metadata table). Released entries never change: a schema
/// change is a new entry.
fn migrations() -> Vec<Vec<String>> {
    let mut all: Vec<Vec<String>> = schema::migration_sets()
        .into_iter()
        .map(|sets| {
            let mut out = Vec::new();
            for e in sets {
                out.extend(schema::create_ddl(e, Dialect::Postgres));
                out.push(format!(
                    "ALTER TABLE {} ADD COLUMN {} TEXT NOT NULL",
                    quote(e.table),
                    quote(DYNAMIC_DOC_COLUMN)
                ));
            }
            out
        })
        .collect();
    if let Some(first) = all.first_mut() {
        first.push(
            "CREATE TABLE graphsec_meta (key TEXT COLLATE \"C\" PRIMARY KEY, value TEXT NOT NULL)"
                .into(),
        );
    }
    while all.len() < notify::MIGRATION {
        all.push(Vec::new());
    }
    all[notify::MIGRATION - 1].extend(notify::ddl(Dialect::Postgres));
    all
}

/// A bind value that encodes itself for whatever type PostgreSQL inferred for its placeholder
/// (INTEGER and BIGINT columns, TEXT and JSONB, BOOLEAN), so one `SqlParam` serves every
/// statement.
#[derive(Debug)]
struct Param(SqlParam);

impl ToSql for Param {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        match &self.0 {
            SqlParam::Null => return Ok(IsNull::Yes),
            SqlParam::Int(i) if *ty == Type::INT8 => out.put_i64(*i),
            SqlParam::Int(i) if *ty == Type::INT4 => out.put_i32(i32::try_from(*i)?),
            SqlParam::Int(i) if *ty == Type::INT2 => out.put_i16(i16::try_from(*i)?),
            SqlParam::Int(i) if *ty == Type::FLOAT8 => out.put_f64(*i as f64),
            SqlParam::Real(f) if *ty == Type::FLOAT8 => out.put_f64(*f),
            SqlParam::Bool(b) if *ty == Type::BOOL => out.put_u8(u8::from(*b)),
            SqlParam::Text(t) if *ty == Type::JSONB => {
                // JSONB's binary form: a version byte, then the JSON text.
                out.put_u8(1);
                out.put_slice(t.as_bytes());
            }
            SqlParam::Text(t)
                if matches!(
                    *ty,
                    Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::JSON
                ) =>
            {
                out.put_slice(t.as_bytes())
            }
            other => return Err(format!("cannot bind {other:?} as {ty}").into()),
        }
        Ok(IsNull::No)
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

fn cell_param(c: Cell) -> Param {
    Param(match c {
        Cell::Null => SqlParam::Null,
        Cell::Int(i) => SqlParam::Int(i),
        Cell::Real(f) => SqlParam::Real(f),
        Cell::Bool(b) => SqlParam::Bool(b),
        Cell::Text(t) => SqlParam::Text(t),
    })
}

fn refs(params: &[Param]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}

/// SQLSTATEs that mean "the database is not serving right now", not "this request is wrong".
fn transient(code: &SqlState) -> bool {
    let c = code.code();
    c.starts_with("08") // connection exception
        || c.starts_with("53") // insufficient resources (too many connections, disk full)
        || c.starts_with("57") // operator intervention: shutdown, statement timeout (57014)
        || c == "40001" // serialization failure
        || c == "40P01" // deadlock detected
}

/// An error as text with the server's own message and SQLSTATE: tokio-postgres displays a
/// server error as `db error` alone, which tells an operator nothing.
fn pg_text(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{e}: {} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

fn map_pg(e: tokio_postgres::Error) -> StoreError {
    let text = pg_text(&e);
    match e.code() {
        Some(code) if *code == SqlState::UNIQUE_VIOLATION => StoreError::Duplicate,
        Some(code) if transient(code) => StoreError::Unavailable(text),
        Some(_) => StoreError::Internal(text),
        // No SQLSTATE: the connection broke or could not be made (I/O, closed, timeout).
        None if e.is_closed() || e.source().is_some_and(|s| s.is::<std::io::Error>()) => {
            StoreError::Unavailable(e.to_string())
        }
        None if e.to_string().contains("timed out") => StoreError::Unavailable(e.to_string()),
        None => StoreError::Internal(e.to_string()),
    }
}

/// [`pg_text`] for a pool error (a failed connect carries the server's error).
fn pool_text(e: &PoolError) -> String {
    match e {
        PoolError::Backend(e) => pg_text(e),
        other => other.to_string(),
    }
}

fn map_pool(e: PoolError) -> StoreError {
    match e {
        PoolError::Backend(e) => map_pg(e),
        other => StoreError::Unavailable(other.to_string()),
    }
}

/// Decodes a row straight from the driver's column values (text borrowed, not a `String` per
/// column).
fn read_record(row: &Row, sql: &Statements) -> Result<Record, StoreError> {
    let columns = row.columns();
    if columns.len() < sql.width {
        return Err(StoreError::Internal(
            "corrupt row: row has too few columns".into(),
        ));
    }
    schema::decode_with(sql.entity, |i| {
        let ty = columns[i].type_();
        let cell = if *ty == Type::INT8 {
            row.try_get::<_, Option<i64>>(i)
                .map(|v| v.map(CellRef::Int))
        } else if *ty == Type::INT4 {
            row.try_get::<_, Option<i32>>(i)
                .map(|v| v.map(|v| CellRef::Int(i64::from(v))))
        } else if *ty == Type::FLOAT8 {
            row.try_get::<_, Option<f64>>(i)
                .map(|v| v.map(CellRef::Real))
        } else if *ty == Type::BOOL {
            row.try_get::<_, Option<bool>>(i)
                .map(|v| v.map(CellRef::Bool))
        } else {
            row.try_get::<_, Option<&str>>(i)
                .map(|v| v.map(CellRef::Text))
        };
        cell.map(|c| c.unwrap_or(CellRef::Null))
            .map_err(|e| e.to_string())
    })
    .map_err(|e| StoreError::Internal(format!("corrupt row: {e}")))
}

/// A record's written columns (see `Statements::insert`/`update`), after `lead`.
fn write_params(lead: Vec<Param>, record: &Record, trail: Vec<Param>) -> Vec<Param> {
    let mut out = lead;
    out.extend(schema::encode(record).into_iter().map(cell_param));
    out.push(Param(SqlParam::Text(
        serde_json::Value::Object(record.dynamic.clone()).to_string(),
    )));
    out.extend(trail);
    out
}

fn text(s: &str) -> Param {
    Param(SqlParam::Text(s.to_string()))
}

/// The rustls connector: the process's one crypto stack (aws-lc-rs) and the system roots.
fn tls_connector() -> Result<tokio_postgres_rustls::MakeRustlsConnect, String> {
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(
        crate::tls::client_config()?,
    ))
}

/// Applies the migrations this node knows, under the row lock every node takes first.
async fn migrate(client: &mut deadpool_postgres::Object) -> Result<(), String> {
    // Creating the lock row is idempotent; two nodes racing on CREATE TABLE IF NOT EXISTS can
    // still collide in the catalog, so that step is retried.
    let mut attempt = 0;
    loop {
        let r = client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS graphsec_migrations \
                 (id INTEGER PRIMARY KEY, version BIGINT NOT NULL); \
                 INSERT INTO graphsec_migrations (id, version) VALUES (1, 0) \
                 ON CONFLICT (id) DO NOTHING",
            )
            .await;
        match r {
            Ok(()) => break,
            Err(e) if attempt < 5 => {
                tracing::debug!(error = %e, "migration table setup raced another node; retrying");
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
            }
            Err(e) => {
                return Err(format!(
                    "cannot create the migration table: {}",
                    pg_text(&e)
                ));
            }
        }
    }
    let tx = client.transaction().await.map_err(|e| pg_text(&e))?;
    let current: i64 = tx
        .query_one(
            "SELECT version FROM graphsec_migrations WHERE id = 1 FOR UPDATE",
            &[],
        )
        .await
        .map_err(|e| format!("cannot lock the migration row: {}", pg_text(&e)))?
        .get(0);
    let all = migrations();
    if current > all.len() as i64 {
        return Err(format!(
            "the database has schema version {current}, newer than this graphsec knows ({}); use a newer graphsec",
            all.len()
        ));
    }
    for (i, statements) in all.iter().enumerate().skip(current as usize) {
        for sql in statements {
            tx.batch_execute(sql)
                .await
                .map_err(|e| format!("migration {}: {}", i + 1, pg_text(&e)))?;
        }
        tx.execute(
            "UPDATE graphsec_migrations SET version = $1 WHERE id = 1",
            &[&(i as i64 + 1)],
        )
        .await
        .map_err(|e| pg_text(&e))?;
        tracing::info!(version = i + 1, "applied schema migration");
    }
    tx.commit().await.map_err(|e| pg_text(&e))
}

/// Reads (creating on first start) the paging-token secret, shared by every node.
async fn load_secret(client: &deadpool_postgres::Object) -> Result<Vec<u8>, String> {
    let fresh = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    client
        .execute(
            "INSERT INTO graphsec_meta (key, value) VALUES ('paging_secret', $1) \
             ON CONFLICT (key) DO NOTHING",
            &[&fresh],
        )
        .await
        .map_err(|e| pg_text(&e))?;
    let secret: String = client
        .query_one(
            "SELECT value FROM graphsec_meta WHERE key = 'paging_secret'",
            &[],
        )
        .await
        .map_err(|e| pg_text(&e))?
        .get(0);
    Ok(secret.into_bytes())
}

/// Parses `--database-url`. TLS is used when the URL asks for it: `sslmode=require` (and
/// libpq's `verify-ca` / `verify-full`, which mean the same here) encrypts and always verifies
/// the server certificate; without `sslmode` the connection is plain, as `sslmode=disable`.
/// (tokio-postgres would otherwise default to `prefer`, which fails outright on a server whose
/// certificate the system does not trust instead of falling back.)
fn parse_url(url: &str) -> Result<tokio_postgres::Config, String> {
    let normalised = url
        .replace("sslmode=verify-full", "sslmode=require")
        .replace("sslmode=verify-ca", "sslmode=require");
    let mut config = tokio_postgres::Config::from_str(&normalised)
        .map_err(|e| format!("--database-url is not a valid PostgreSQL URL: {e}"))?;
    if !url.contains("sslmode=") {
        config.ssl_mode(tokio_postgres::config::SslMode::Disable);
    }
    Ok(config)
}

/// Where a URL points, without credentials, for the log.
fn describe(config: &tokio_postgres::Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(h) => h.clone(),
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .collect();
    format!(
        "{}:{:?}/{}",
        hosts.join(","),
        config.get_ports(),
        config.get_dbname().unwrap_or("")
    )
}

/// When to `ANALYZE` a table as rows arrive (module docs, "Statistics").
#[derive(Default)]
struct Analyze {
    /// Per table: rows written since its last ANALYZE, and the count that triggers the next.
    tables: std::sync::Mutex<std::collections::HashMap<&'static str, (u64, u64)>>,
}

impl Analyze {
    const FIRST: u64 = 1_000;

    /// Counts `rows` written to `table`; true when it is time to analyze it.
    fn due(&self, table: &'static str, rows: u64) -> bool {
        let mut tables = self.tables.lock().unwrap_or_else(|p| p.into_inner());
        let (since, next) = tables.entry(table).or_insert((0, Self::FIRST));
        *since += rows;
        if *since < *next {
            return false;
        }
        *next = (*since).max(Self::FIRST) * 2;
        *since = 0;
        true
    }
}

impl PostgresStore {
    /// Counts rows written to `entity`'s table and analyzes it when due (module docs,
    /// "Statistics"). A failed ANALYZE is logged, never the write's failure: the rows are in.
    async fn note_rows(&self, client: &impl GenericClient, entity: &EntityType, rows: u64) {
        if !self.analyze.due(entity.table, rows) {
            return;
        }
        let started = Instant::now();
        match client
            .batch_execute(&format!("ANALYZE {}", quote(entity.table)))
            .await
        {
            Ok(()) => tracing::debug!(
                table = entity.table,
                ms = started.elapsed().as_millis() as u64,
                "analyzed"
            ),
            Err(e) => tracing::warn!(table = entity.table, error = %e, "ANALYZE failed"),
        }
    }

    /// Connects (waiting up to `--database-startup-wait-secs` for the database), migrates and
    /// loads the paging secret.
    pub async fn open(args: &DatabaseArgs, url: &str) -> Result<PostgresStore, String> {
        let mut config = parse_url(url)?;
        let timeout = format!(
            "-c statement_timeout={}",
            args.database_statement_timeout_ms
        );
        let options = match config.get_options() {
            Some(o) if !o.is_empty() => format!("{o} {timeout}"),
            _ => timeout,
        };
        config
            .options(&options)
            .connect_timeout(Duration::from_secs(5))
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30))
            .application_name("graphsec");
        let target = describe(&config);
        let manager = Manager::from_config(
            config,
            tls_connector()?,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let cancel_tls = tls_connector()?;
        let pool = Pool::builder(manager)
            .max_size(args.database_pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(Duration::from_secs(5)))
            .recycle_timeout(Some(Duration::from_secs(5)))
            .build()
            .map_err(|e| format!("database pool: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(args.database_startup_wait_secs);
        let mut delay = Duration::from_millis(200);
        let mut client = loop {
            match pool.get().await {
                Ok(c) => break c,
                Err(e) if Instant::now() < deadline => {
                    let e = pool_text(&e);
                    tracing::warn!(database = %target, error = %e, retry_in_ms = delay.as_millis() as u64,
                        "database not reachable yet; waiting");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                Err(e) => {
                    return Err(format!(
                        "database {target} not reachable after {} s: {}",
                        args.database_startup_wait_secs,
                        pool_text(&e)
                    ));
                }
            }
        };
        migrate(&mut client).await?;
        let secret = load_secret(&client).await?;
        tracing::info!(database = %target, pool = args.database_pool_size, "PostgreSQL store");
        Ok(PostgresStore {
            pool,
            tls: cancel_tls,
            analyze: Analyze::default(),
            sql: Arc::new(PerSet::new(|e| Arc::new(Statements::new(e)))),
            secret,
            tenant_shares: super::TenantShares::new(args.database_pool_size / 2),
        })
    }

    /// The statements of an entity set (every catalog set has them).
    fn sql(&self, entity: &'static EntityType) -> Result<Arc<Statements>, StoreError> {
        self.sql.get(entity).cloned()
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(map_pool)
    }

    /// A pooled connection whose guarded statements are cancelled with their request.
    async fn leased(&self) -> Result<Leased, StoreError> {
        Ok(Leased {
            client: Some(self.client().await?),
            armed: std::sync::atomic::AtomicBool::new(false),
            tls: self.tls.clone(),
            _share: None,
        })
    }

    /// [`PostgresStore::leased`] within `tenant`'s share of the pool (a tenant's read).
    async fn leased_for(&self, tenant: &str) -> Result<Leased, StoreError> {
        let share = self.tenant_shares.acquire(tenant, POOL_WAIT).await?;
        let mut leased = self.leased().await?;
        leased._share = Some(share);
        Ok(leased)
    }
}

/// A pooled connection that cancels the statement it runs when the request awaiting it goes
/// away (timeout, client gone, shutdown). Without it the query runs on for up to
/// `statement_timeout`, and the connection, back in the pool, makes the next request wait
/// behind it. While armed, dropping it sends PostgreSQL a cancel request and takes the
/// connection out of the pool (closed once the cancel is sent), so the cancel can never hit
/// another request's statement.
struct Leased {
    client: Option<deadpool_postgres::Object>,
    armed: std::sync::atomic::AtomicBool,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    /// The tenant's share permit of a read, returned with the connection.
    _share: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Leased {
    /// Runs `query` armed: cancelled if this future is dropped before it answers.
    async fn guarded<T>(
        &self,
        query: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        use std::sync::atomic::Ordering::Relaxed;
        self.armed.store(true, Relaxed);
        let r = query.await;
        self.armed.store(false, Relaxed);
        r
    }
}

impl std::ops::Deref for Leased {
    type Target = deadpool_postgres::Object;
    fn deref(&self) -> &deadpool_postgres::Object {
        // Present until drop.
        self.client.as_ref().expect("a leased connection")
    }
}

impl Drop for Leased {
    fn drop(&mut self) {
        if !self.armed.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        let (Some(client), Ok(rt)) = (self.client.take(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        let token = client.cancel_token();
        let detached = deadpool_postgres::Object::take(client);
        let tls = self.tls.clone();
        rt.spawn(async move {
            if let Err(e) = token.cancel_query(tls).await {
                tracing::warn!(error = %e, "could not cancel an abandoned query");
            }
            drop(detached);
        });
    }
}

/// Runs a fixed statement (prepared once per connection) and returns its rows.
async fn query_cached(
    client: &impl GenericClient,
    sql: &str,
    params: &[Param],
) -> Result<Vec<Row>, StoreError> {
    let stmt = client.prepare_cached(sql).await.map_err(map_pg)?;
    client.query(&stmt, &refs(params)).await.map_err(map_pg)
}

/// The live subscriptions of the tenant on `entity`'s set (none for a set that cannot be
/// subscribed to), read in the write's transaction.
async fn subscribers(
    client: &impl GenericClient,
    entity: &'static EntityType,
    tenant: &str,
    now: i64,
) -> Result<Vec<notify::Subscriber>, StoreError> {
    if !notify::subscribable(entity) {
        return Ok(Vec::new());
    }
    let rows = query_cached(
        client,
        &notify::subscribers_sql(Dialect::Postgres),
        &[
            text(tenant),
            text(entity.collection),
            Param(SqlParam::Int(now)),
        ],
    )
    .await?;
    rows.iter()
        .map(|r| {
            Ok(notify::Subscriber {
                id: r.try_get(0).map_err(internal)?,
                entity_id: r.try_get(1).map_err(internal)?,
                filter: r.try_get(2).map_err(internal)?,
                change_types: r.try_get(3).map_err(internal)?,
            })
        })
        .collect()
}

fn internal(e: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(e.to_string())
}

/// Queues the notifications of one change for the subscribers it matches (as written).
async fn enqueue(
    client: &impl GenericClient,
    entity: &'static EntityType,
    tenant: &str,
    id: &str,
    change: Change,
    subs: &[notify::Subscriber],
    now: i64,
) -> Result<(), StoreError> {
    let mut queued = 0;
    for sub in subs {
        let Some((sql, params)) =
            notify::enqueue_sql(entity, Dialect::Postgres, tenant, id, change, sub, now)
        else {
            continue;
        };
        let params: Vec<Param> = params.into_iter().map(Param).collect();
        let stmt = client.prepare_cached(&sql).await.map_err(map_pg)?;
        queued += client
            .execute(&stmt, &refs(&params))
            .await
            .map_err(map_pg)?;
    }
    notify::count_queued(queued);
    Ok(())
}

fn read_subscription(r: &Row) -> Result<notify::SubscriptionRow, StoreError> {
    Ok(notify::SubscriptionRow {
        tenant: r.try_get(0).map_err(internal)?,
        id: r.try_get(1).map_err(internal)?,
        app: r.try_get(2).map_err(internal)?,
        creator: r.try_get(3).map_err(internal)?,
        set_name: r.try_get(4).map_err(internal)?,
        entity_id: r.try_get(5).map_err(internal)?,
        filter: r.try_get(6).map_err(internal)?,
        resource: r.try_get(7).map_err(internal)?,
        change_types: r.try_get(8).map_err(internal)?,
        notification_url: r.try_get(9).map_err(internal)?,
        lifecycle_url: r.try_get(10).map_err(internal)?,
        client_state: r.try_get(11).map_err(internal)?,
        expiration: r.try_get(12).map_err(internal)?,
        created: r.try_get(13).map_err(internal)?,
        extra: r.try_get(14).map_err(internal)?,
        reauth_sent: r.try_get::<_, i64>(15).map_err(internal)? != 0,
        dedupe: r.try_get(16).map_err(internal)?,
    })
}

async fn fetch_subscription(
    client: &impl GenericClient,
    tenant: &str,
    id: &str,
    now: i64,
    lock: bool,
) -> Result<notify::SubscriptionRow, StoreError> {
    let sql = format!(
        "SELECT {} FROM graphsec_subscriptions WHERE tenant = $1 AND id = $2 AND expiration > $3{}",
        notify::SUBSCRIPTION_COLUMNS,
        if lock { " FOR UPDATE" } else { "" }
    );
    let rows = query_cached(
        client,
        &sql,
        &[text(tenant), text(id), Param(SqlParam::Int(now))],
    )
    .await?;
    match rows.first() {
        Some(r) => read_subscription(r),
        None => Err(StoreError::NotFound),
    }
}

async fn drop_subscription(
    client: &impl GenericClient,
    tenant: &str,
    id: &str,
) -> Result<(), StoreError> {
    for sql in [
        "DELETE FROM graphsec_outbox WHERE tenant = $1 AND subscription_id = $2",
        "DELETE FROM graphsec_deliveries WHERE tenant = $1 AND subscription_id = $2",
        "DELETE FROM graphsec_subscriptions WHERE tenant = $1 AND id = $2",
    ] {
        query_cached(client, sql, &[text(tenant), text(id)]).await?;
    }
    Ok(())
}

fn int(i: i64) -> Param {
    Param(SqlParam::Int(i))
}

impl notify::NotifyStore for PostgresStore {
    fn create_subscription(
        &self,
        row: notify::SubscriptionRow,
    ) -> BoxFuture<'_, Result<Option<String>, StoreError>> {
        Box::pin(async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(map_pg)?;
            let now = crate::model::edm::now_ticks();
            query_cached(
                &tx,
                "DELETE FROM graphsec_subscriptions WHERE tenant = $1 AND app = $2 AND dedupe = $3 AND expiration <= $4",
                &[text(&row.tenant), text(&row.app), text(&row.dedupe), int(now)],
            )
            .await?;
            let sql = format!(
                "INSERT INTO graphsec_subscriptions ({}) VALUES ({}) ON CONFLICT (tenant, app, dedupe) DO NOTHING",
                notify::SUBSCRIPTION_COLUMNS,
                notify::placeholders(Dialect::Postgres, 1, 17)
            );
            let params: Vec<Param> = notify::subscription_params(&row)
                .into_iter()
                .map(Param)
                .collect();
            let stmt = tx.prepare_cached(&sql).await.map_err(map_pg)?;
            let n = tx.execute(&stmt, &refs(&params)).await.map_err(map_pg)?;
            let existing = if n == 0 {
                let rows = query_cached(
                    &tx,
                    "SELECT id FROM graphsec_subscriptions WHERE tenant = $1 AND app = $2 AND dedupe = $3",
                    &[text(&row.tenant), text(&row.app), text(&row.dedupe)],
                )
                .await?;
                Some(match rows.first() {
                    Some(r) => r.try_get::<_, String>(0).map_err(internal)?,
                    None => {
                        return Err(StoreError::Unavailable(
                            "a duplicate subscription raced this one; retry".into(),
                        ));
                    }
                })
            } else {
                None
            };
            tx.commit().await.map_err(map_pg)?;
            Ok(existing)
        })
    }

    fn get_subscription(
        &self,
        tenant: &str,
        id: &str,
        now: i64,
    ) -> BoxFuture<'_, Result<notify::SubscriptionRow, StoreError>> {
        let (tenant, id) = (tenant.to_string(), id.to_string());
        Box::pin(async move {
            let client = self.client().await?;
            fetch_subscription(&client, &tenant, &id, now, false).await
        })
    }

    fn list_subscriptions(
        &self,
        tenant: &str,
        now: i64,
    ) -> BoxFuture<'_, Result<Vec<notify::SubscriptionRow>, StoreError>> {
        let tenant = tenant.to_string();
        Box::pin(async move {
            let client = self.client().await?;
            let rows = query_cached(
                &client,
                &format!(
                    "SELECT {} FROM graphsec_subscriptions WHERE tenant = $1 AND expiration > $2 ORDER BY id",
                    notify::SUBSCRIPTION_COLUMNS
                ),
                &[text(&tenant), int(now)],
            )
            .await?;
            rows.iter().map(read_subscription).collect()
        })
    }

    fn update_subscription(
        &self,
        tenant: &str,
        id: &str,
        now: i64,
        expiration: Option<i64>,
        notification_url: Option<String>,
    ) -> BoxFuture<'_, Result<notify::SubscriptionRow, StoreError>> {
        let (tenant, id) = (tenant.to_string(), id.to_string());
        Box::pin(async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(map_pg)?;
            let mut row = fetch_subscription(&tx, &tenant, &id, now, true).await?;
            if let Some(e) = expiration {
                row.expiration = e;
            }
            if let Some(u) = notification_url {
                row.notification_url = u;
            }
            // A renewal answers a reauthorization challenge; a bare reauthorize acknowledges it.
            if expiration.is_some() {
                row.reauth_sent = false;
            }
            query_cached(
                &tx,
                "UPDATE graphsec_subscriptions SET expiration = $3, notification_url = $4, reauth_sent = $5 \
                 WHERE tenant = $1 AND id = $2",
                &[
                    text(&tenant),
                    text(&id),
                    int(row.expiration),
                    text(&row.notification_url),
                    int(i64::from(row.reauth_sent)),
                ],
            )
            .await?;
            tx.commit().await.map_err(map_pg)?;
            Ok(row)
        })
    }

    fn delete_subscription(&self, tenant: &str, id: &str) -> BoxFuture<'_, Result<(), StoreError>> {
        let (tenant, id) = (tenant.to_string(), id.to_string());
        Box::pin(async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(map_pg)?;
            let now = crate::model::edm::now_ticks();
            fetch_subscription(&tx, &tenant, &id, now, true).await?;
            drop_subscription(&tx, &tenant, &id).await?;
            tx.commit().await.map_err(map_pg)
        })
    }

    fn sweep(
        &self,
        now: i64,
        challenge_before: i64,
    ) -> BoxFuture<'_, Result<notify::Sweep, StoreError>> {
        Box::pin(async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(map_pg)?;
            let expired = query_cached(
                &tx,
                "SELECT tenant, id FROM graphsec_subscriptions WHERE expiration <= $1 LIMIT 1000 FOR UPDATE SKIP LOCKED",
                &[int(now)],
            )
            .await?;
            for r in &expired {
                let t: String = r.try_get(0).map_err(internal)?;
                let id: String = r.try_get(1).map_err(internal)?;
                drop_subscription(&tx, &t, &id).await?;
            }
            // One statement marks and queues, so two nodes sweeping together challenge once.
            let challenged = query_cached(
                &tx,
                "WITH due AS (UPDATE graphsec_subscriptions SET reauth_sent = 1 \
                 WHERE lifecycle_url IS NOT NULL AND reauth_sent = 0 AND expiration > $1 AND expiration <= $2 \
                 RETURNING tenant, id) \
                 INSERT INTO graphsec_outbox (tenant, subscription_id, kind, event, created) \
                 SELECT tenant, id, 'lifecycle', $3::TEXT, $1::BIGINT FROM due RETURNING seq",
                &[int(now), int(challenge_before), text(notify::REAUTHORIZATION_REQUIRED)],
            )
            .await?
            .len() as u64;
            tx.commit().await.map_err(map_pg)?;
            notify::count_queued(challenged);
            Ok(notify::Sweep {
                expired: expired.len() as u64,
                challenged,
            })
        })
    }

    fn claim(
        &self,
        owner: &str,
        now: i64,
        lease_until: i64,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<(String, String)>, StoreError>> {
        let owner = owner.to_string();
        Box::pin(async move {
            let client = self.client().await?;
            // SKIP LOCKED: nodes claiming together take different subscriptions; a lease that
            // ran out (its node died) is claimable again.
            let rows = query_cached(
                &client,
                "UPDATE graphsec_subscriptions SET lease_owner = $1, lease_until = $3 \
                 WHERE (tenant, id) IN (SELECT tenant, id FROM graphsec_subscriptions s \
                 WHERE s.next_attempt <= $2 AND s.lease_until <= $2 AND EXISTS \
                 (SELECT 1 FROM graphsec_outbox o WHERE o.tenant = s.tenant AND o.subscription_id = s.id) \
                 ORDER BY s.next_attempt LIMIT $4 FOR UPDATE SKIP LOCKED) RETURNING tenant, id",
                &[text(&owner), int(now), int(lease_until), int(limit as i64)],
            )
            .await?;
            rows.iter()
                .map(|r| {
                    Ok((
                        r.try_get(0).map_err(internal)?,
                        r.try_get(1).map_err(internal)?,
                    ))
                })
                .collect()
        })
    }

    fn pending(
        &self,
        tenant: &str,
        id: &str,
        limit: usize,
    ) -> BoxFuture<'_, Result<notify::Pending, StoreError>> {
        let (tenant, id) = (tenant.to_string(), id.to_string());
        Box::pin(async move {
            let client = self.client().await?;
            let rows = query_cached(
                &client,
                &format!(
                    "SELECT {}, attempts FROM graphsec_subscriptions WHERE tenant = $1 AND id = $2",
                    notify::SUBSCRIPTION_COLUMNS
                ),
                &[text(&tenant), text(&id)],
            )
            .await?;
            let Some(r) = rows.first() else {
                return Err(StoreError::NotFound);
            };
            let subscription = read_subscription(r)?;
            let attempts: i64 = r.try_get(17).map_err(internal)?;
            let rows = query_cached(
                &client,
                "SELECT seq, kind, event, set_name, resource_id, created FROM graphsec_outbox \
                 WHERE tenant = $1 AND subscription_id = $2 ORDER BY seq LIMIT $3",
                &[text(&tenant), text(&id), int(limit as i64)],
            )
            .await?;
            let rows = rows
                .iter()
                .map(|r| {
                    Ok(notify::OutboxRow {
                        seq: r.try_get(0).map_err(internal)?,
                        kind: r.try_get(1).map_err(internal)?,
                        event: r.try_get(2).map_err(internal)?,
                        set_name: r.try_get(3).map_err(internal)?,
                        resource_id: r.try_get(4).map_err(internal)?,
                        created: r.try_get(5).map_err(internal)?,
                    })
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            Ok(notify::Pending {
                subscription,
                attempts,
                rows,
            })
        })
    }

    fn finish(
        &self,
        tenant: &str,
        id: &str,
        outcome: notify::Outcome,
        log: Option<notify::DeliveryLog>,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        let (tenant, id) = (tenant.to_string(), id.to_string());
        Box::pin(async move {
            let (done, attempts, next) = match outcome {
                notify::Outcome::Delivered(seqs) | notify::Outcome::Dropped(seqs) => (seqs, 0, 0),
                notify::Outcome::Retry {
                    next_attempt,
                    attempts,
                } => (Vec::new(), attempts, next_attempt),
            };
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(map_pg)?;
            if !done.is_empty() {
                tx.execute(
                    "DELETE FROM graphsec_outbox WHERE tenant = $1 AND subscription_id = $2 AND seq = ANY($3)",
                    &[&tenant, &id, &done],
                )
                .await
                .map_err(map_pg)?;
            }
            query_cached(
                &tx,
                "UPDATE graphsec_subscriptions SET attempts = $3, next_attempt = $4, lease_owner = NULL, lease_until = 0 \
                 WHERE tenant = $1 AND id = $2",
                &[text(&tenant), text(&id), int(attempts), int(next)],
            )
            .await?;
            let Some(log) = log else {
                return tx.commit().await.map_err(map_pg);
            };
            query_cached(
                &tx,
                "INSERT INTO graphsec_deliveries (tenant, subscription_id, at, kind, attempt, notifications, status, outcome, error) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                &[
                    text(&tenant),
                    text(&id),
                    int(log.at),
                    text(&log.kind),
                    int(log.attempt),
                    int(log.notifications),
                    Param(log.status.map_or(SqlParam::Null, SqlParam::Int)),
                    text(&log.outcome),
                    Param(log.error.clone().map_or(SqlParam::Null, SqlParam::Text)),
                ],
            )
            .await?;
            query_cached(
                &tx,
                "DELETE FROM graphsec_deliveries WHERE tenant = $1 AND subscription_id = $2 AND seq <= \
                 (SELECT seq FROM graphsec_deliveries WHERE tenant = $1 AND subscription_id = $2 \
                 ORDER BY seq DESC LIMIT 1 OFFSET $3)",
                &[text(&tenant), text(&id), int(notify::DELIVERY_LOG)],
            )
            .await?;
            tx.commit().await.map_err(map_pg)
        })
    }

    fn outbox_stats(&self) -> BoxFuture<'_, Result<(u64, Option<i64>), StoreError>> {
        Box::pin(async move {
            let client = self.client().await?;
            let rows = query_cached(
                &client,
                "SELECT COUNT(*), MIN(created) FROM graphsec_outbox",
                &[],
            )
            .await?;
            let Some(r) = rows.first() else {
                return Ok((0, None));
            };
            let n: i64 = r.try_get(0).map_err(internal)?;
            Ok((
                u64::try_from(n).unwrap_or(0),
                r.try_get(1).map_err(internal)?,
            ))
        })
    }

    fn deliveries(
        &self,
        tenant: Option<&str>,
        id: &str,
    ) -> BoxFuture<'_, Result<Vec<notify::DeliveryLog>, StoreError>> {
        let (tenant, id) = (tenant.map(str::to_string), id.to_string());
        Box::pin(async move {
            let client = self.client().await?;
            let rows = query_cached(
                &client,
                "SELECT at, kind, attempt, notifications, status, outcome, error FROM graphsec_deliveries \
                 WHERE ($1::TEXT IS NULL OR tenant = $1) AND subscription_id = $2 ORDER BY seq DESC",
                &[Param(tenant.map_or(SqlParam::Null, SqlParam::Text)), text(&id)],
            )
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(notify::DeliveryLog {
                        at: r.try_get(0).map_err(internal)?,
                        kind: r.try_get(1).map_err(internal)?,
                        attempt: r.try_get(2).map_err(internal)?,
                        notifications: r.try_get(3).map_err(internal)?,
                        status: r.try_get(4).map_err(internal)?,
                        outcome: r.try_get(5).map_err(internal)?,
                        error: r.try_get(6).map_err(internal)?,
                    })
                })
                .collect()
        })
    }
}

impl Store for PostgresStore {
    fn create(
        &self,
        tenant: &str,
        changes: Changes,
        id: String,
    ) -> BoxFuture<'_, Result<Record, StoreError>> {
        let sql = try_or_fail!(self.sql(changes.entity));
        let tenant = tenant.to_string();
        Box::pin(async move {
            let mut client = self.client().await?;
            let record =
                Record::create(changes, id, unique_ticks()).map_err(StoreError::Invalid)?;
            let params = write_params(vec![text(&tenant)], &record, vec![]);
            if notify::subscribable(sql.entity) {
                // The row and its notifications in one transaction (the outbox).
                let tx = client.transaction().await.map_err(map_pg)?;
                let now = crate::model::edm::now_ticks();
                let subs = subscribers(&tx, sql.entity, &tenant, now).await?;
                query_cached(&tx, &sql.insert, &params).await?;
                enqueue(
                    &tx,
                    sql.entity,
                    &tenant,
                    record.id(),
                    Change::Created,
                    &subs,
                    now,
                )
                .await?;
                tx.commit().await.map_err(map_pg)?;
            } else {
                query_cached(&client, &sql.insert, &params).await?;
            }
            self.note_rows(&client, sql.entity, 1).await;
            Ok(record)
        })
    }

    fn get(
        &self,
        entity: &'static EntityType,
        tenant: &str,
        id: &str,
    ) -> BoxFuture<'_, Result<Record, StoreError>> {
        let sql = try_or_fail!(self.sql(entity));
        let params = vec![text(tenant), text(id)];
        let tenant = tenant.to_string();
        Box::pin(async move {
            let client = self.leased_for(&tenant).await?;
            let rows = client
                .guarded(query_cached(&*client, &sql.get, &params))
                .await?;
            match rows.first() {
                Some(row) => read_record(row, &sql),
                None => Err(StoreError::NotFound),
            }
        })
    }

    fn update(
        &self,
        tenant: &str,
        id: &str,
        changes: Changes,
        pre: Precondition,
    ) -> BoxFuture<'_, Result<Record, StoreError>> {
        let sql = try_or_fail!(self.sql(changes.entity));
        let (tenant, id) = (tenant.to_string(), id.to_string());
        Box::pin(async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(map_pg)?;
            // The row lock serialises writers of this entity on every node until COMMIT.
            let rows = query_cached(&tx, &sql.get_for_update, &[text(&tenant), text(&id)]).await?;
            let mut record = match rows.first() {
                Some(row) => read_record(row, &sql)?,
                None => return Err(StoreError::NotFound),
            };
            pre.check(record.version)?;
            record
                .apply(changes, unique_ticks())
                .map_err(StoreError::Invalid)?;
            let params = write_params(vec![], &record, vec![text(&tenant), text(&id)]);
            query_cached(&tx, &sql.update, &params).await?;
            if notify::subscribable(sql.entity) {
                let now = crate::model::edm::now_ticks();
                let subs = subscribers(&tx, sql.entity, &tenant, now).await?;
                enqueue(&tx, sql.entity, &tenant, &id, Change::Updated, &subs, now).await?;
            }
            tx.commit().await.map_err(map_pg)?;
            Ok(record)
        })
    }

    fn delete(
        &self,
        entity: &'static EntityType,
        tenant: &str,
        id: &str,
        pre: Precondition,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        let sql = try_or_fail!(self.sql(entity));
        let params = vec![text(tenant), text(id)];
        Box::pin(async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(map_pg)?;
            let rows = query_cached(&tx, &sql.version_for_update, &params).await?;
            let version: i64 = match rows.first() {
                Some(row) => row
                    .try_get(0)
                    .map_err(|e| StoreError::Internal(e.to_string()))?,
                None => return Err(StoreError::NotFound),
            };
            pre.check(version)?;
            query_cached(&tx, &sql.delete, &params).await?;
            tx.commit().await.map_err(map_pg)?;
            Ok(())
        })
    }

    fn list(
        &self,
        entity: &'static EntityType,
        tenant: &str,
        spec: ListSpec,
    ) -> BoxFuture<'_, Result<Page, StoreError>> {
        let sql = try_or_fail!(self.sql(entity));
        let tenant = tenant.to_string();
        Box::pin(async move {
            let q = compile::list_sql(entity, Dialect::Postgres, &sql.select_list, &tenant, &spec)
                .map_err(|e| StoreError::Internal(format!("keyset: {}", e.0)))?;
            let client = self.leased_for(&tenant).await?;
            let page: Vec<Param> = q.page_params.into_iter().map(Param).collect();
            // Rows are read as they arrive and the page stops at its limit or its byte budget,
            // so a page of large entities is never held whole in memory.
            let (records, more) = client
                .guarded(async {
                    use futures_util::TryStreamExt;
                    let stream = client
                        .query_raw(q.page.as_str(), refs(&page))
                        .await
                        .map_err(map_pg)?;
                    let mut stream = std::pin::pin!(stream);
                    let mut records = Vec::with_capacity(spec.limit.min(1000));
                    let mut bytes = 0;
                    while let Some(row) = stream.try_next().await.map_err(map_pg)? {
                        // The row past the page only says that more remain: not decoded.
                        if records.len() == spec.limit
                            || super::page_is_full(&spec, records.len(), bytes)
                        {
                            return Ok((records, true));
                        }
                        let record = read_record(&row, &sql)?;
                        if spec.max_bytes > 0 {
                            bytes += record.approx_wire_bytes();
                        }
                        records.push(record);
                    }
                    Ok((records, false))
                })
                .await?;
            let count = if spec.count {
                let params: Vec<Param> = q.count_params.into_iter().map(Param).collect();
                Some(
                    client
                        .guarded(count_rows(&client, &q.count, &params))
                        .await?,
                )
            } else {
                None
            };
            Ok(Page {
                records,
                more,
                count,
            })
        })
    }

    fn count(
        &self,
        entity: &'static EntityType,
        tenant: &str,
        filter: Option<TypedFilter>,
    ) -> BoxFuture<'_, Result<u64, StoreError>> {
        let tenant = tenant.to_string();
        Box::pin(async move {
            let (sql, params) =
                compile::count_sql(entity, Dialect::Postgres, &tenant, filter.as_ref());
            let params: Vec<Param> = params.into_iter().map(Param).collect();
            let client = self.leased_for(&tenant).await?;
            client.guarded(count_rows(&client, &sql, &params)).await
        })
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let client = self.client().await?;
            // A read-only standby (after a failover) would accept the SELECT but refuse writes.
            let row = client
                .query_one("SELECT pg_is_in_recovery()", &[])
                .await
                .map_err(map_pg)?;
            let in_recovery: bool = row
                .try_get(0)
                .map_err(|e| StoreError::Internal(e.to_string()))?;
            if in_recovery {
                return Err(StoreError::Unavailable(
                    "the database is a read-only standby".into(),
                ));
            }
            Ok(())
        })
    }

    fn reset(
        &self,
        entity: &'static EntityType,
        tenant: Option<&str>,
    ) -> BoxFuture<'_, Result<u64, StoreError>> {
        let tenant = tenant.map(str::to_string);
        Box::pin(async move {
            let client = self.client().await?;
            let table = quote(entity.table);
            let n = match tenant {
                Some(t) => {
                    let sql = format!(
                        "DELETE FROM {table} WHERE {} = $1",
                        quote(schema::TENANT_COLUMN)
                    );
                    client.execute(sql.as_str(), &[&t]).await
                }
                None => {
                    client
                        .execute(format!("DELETE FROM {table}").as_str(), &[])
                        .await
                }
            }
            .map_err(map_pg)?;
            Ok(n)
        })
    }

    fn tenant_counts(
        &self,
        entity: &'static EntityType,
        tenant: Option<&str>,
        limit: Option<u64>,
    ) -> BoxFuture<'_, Result<Vec<(String, u64)>, StoreError>> {
        let only = tenant.map(str::to_owned);
        Box::pin(async move {
            let client = self.client().await?;
            let table = quote(entity.table);
            let col = quote(schema::TENANT_COLUMN);
            let tenant_of = |r: &Row| -> Result<Option<String>, StoreError> {
                r.try_get(0)
                    .map_err(|e| StoreError::Internal(e.to_string()))
            };
            if only.is_none() && limit.is_none() {
                // Every tenant's exact count: one pass over an index.
                let sql =
                    format!("SELECT {col}, COUNT(*) FROM {table} GROUP BY {col} ORDER BY {col}");
                let rows = client.query(sql.as_str(), &[]).await.map_err(map_pg)?;
                return rows
                    .iter()
                    .map(|r| {
                        let t: String = r
                            .try_get(0)
                            .map_err(|e| StoreError::Internal(e.to_string()))?;
                        let n: i64 = r
                            .try_get(1)
                            .map_err(|e| StoreError::Internal(e.to_string()))?;
                        Ok((t, u64::try_from(n).unwrap_or(0)))
                    })
                    .collect();
            }
            let tenants = match only {
                Some(t) => vec![t],
                None => {
                    // A skip scan of the (tenant, …) keys: one index seek per tenant.
                    let first = format!("SELECT MIN({col}) FROM {table}");
                    let next = format!("SELECT MIN({col}) FROM {table} WHERE {col} > $1");
                    let mut out = Vec::new();
                    let row = client
                        .query_one(first.as_str(), &[])
                        .await
                        .map_err(map_pg)?;
                    let mut at = tenant_of(&row)?;
                    while let Some(t) = at {
                        let row = client
                            .query_one(next.as_str(), &[&t])
                            .await
                            .map_err(map_pg)?;
                        at = tenant_of(&row)?;
                        out.push(t);
                    }
                    out
                }
            };
            // PostgreSQL reads LIMIT NULL as none.
            let limit = limit.map(|l| i64::try_from(l).unwrap_or(i64::MAX));
            let sql = format!(
                "SELECT COUNT(*) FROM (SELECT 1 FROM {table} WHERE {col} = $1 LIMIT $2) AS capped"
            );
            let mut out = Vec::with_capacity(tenants.len());
            for t in tenants {
                let row = client
                    .query_one(sql.as_str(), &[&t, &limit])
                    .await
                    .map_err(map_pg)?;
                let n: i64 = row
                    .try_get(0)
                    .map_err(|e| StoreError::Internal(e.to_string()))?;
                if n > 0 {
                    out.push((t, u64::try_from(n).unwrap_or(0)));
                }
            }
            Ok(out)
        })
    }

    fn export_page(
        &self,
        entity: &'static EntityType,
        tenant: Option<&str>,
        after: Option<(String, String)>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<TenantRecord>, StoreError>> {
        let statements = try_or_fail!(self.sql(entity));
        let tenant = tenant.map(str::to_string);
        Box::pin(async move {
            let sql = schema::export_page_sql(
                entity,
                Dialect::Postgres,
                &statements.select_list,
                tenant.is_some(),
                after.is_some(),
            );
            let mut params: Vec<Param> = Vec::new();
            if let Some(tenant) = &tenant {
                params.push(text(tenant));
            }
            if let Some((after_tenant, after_id)) = &after {
                params.push(text(after_tenant));
                params.push(text(after_id));
            }
            params.push(Param(SqlParam::Int(
                i64::try_from(limit).unwrap_or(i64::MAX),
            )));
            let client = self.client().await?;
            let rows = query_cached(&client, &sql, &params).await?;
            rows.iter()
                .map(|row| {
                    Ok(TenantRecord {
                        record: read_record(row, &statements)?,
                        tenant: row
                            .try_get(statements.width)
                            .map_err(|e| StoreError::Internal(e.to_string()))?,
                    })
                })
                .collect()
        })
    }

    fn import_chunk(&self, rows: Vec<TenantRecord>) -> BoxFuture<'_, Result<(), StoreError>> {
        let mut statements = Vec::with_capacity(rows.len());
        for row in &rows {
            statements.push(try_or_fail!(self.sql(row.record.entity)));
        }
        Box::pin(async move {
            // A key repeated within the chunk: the last line wins, as when the lines replace
            // each other one after another (and as on SQLite). Deduplicated first because the
            // rows below run concurrently.
            let mut seen = std::collections::HashSet::new();
            let mut keep = vec![false; rows.len()];
            for (i, row) in rows.iter().enumerate().rev() {
                keep[i] = seen.insert((row.record.entity.table, &row.tenant, row.record.id()));
            }
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(map_pg)?;
            // Every row's DELETE then INSERT, all rows at once: tokio-postgres pipelines the
            // queries of concurrent futures on its one connection, so a chunk costs a few round
            // trips instead of two per row (one at a time, 1,000,000 rows took over an hour).
            let t = &tx;
            let work = rows
                .iter()
                .zip(&statements)
                .zip(keep)
                .filter(|(_, keep)| *keep)
                .map(|((row, sql), _)| async move {
                    let key = vec![text(&row.tenant), text(row.record.id())];
                    let stmt = t.prepare_cached(&sql.delete).await.map_err(map_pg)?;
                    let replaced = t.execute(&stmt, &refs(&key)).await.map_err(map_pg)?;
                    let params = write_params(vec![text(&row.tenant)], &row.record, vec![]);
                    query_cached(t, &sql.insert, &params).await?;
                    if notify::subscribable(sql.entity) {
                        let now = crate::model::edm::now_ticks();
                        let subs = subscribers(t, sql.entity, &row.tenant, now).await?;
                        let change = if replaced > 0 {
                            Change::Updated
                        } else {
                            Change::Created
                        };
                        enqueue(
                            t,
                            sql.entity,
                            &row.tenant,
                            row.record.id(),
                            change,
                            &subs,
                            now,
                        )
                        .await?;
                    }
                    Ok::<(), StoreError>(())
                });
            futures_util::future::try_join_all(work).await?;
            tx.commit().await.map_err(map_pg)?;
            let mut per_set: Vec<(&'static EntityType, u64)> = Vec::new();
            for row in &rows {
                match per_set
                    .iter_mut()
                    .find(|(e, _)| std::ptr::eq(*e, row.record.entity))
                {
                    Some((_, n)) => *n += 1,
                    None => per_set.push((row.record.entity, 1)),
                }
            }
            for (entity, n) in per_set {
                self.note_rows(&client, entity, n).await;
            }
            Ok(())
        })
    }

    fn paging_secret(&self) -> &[u8] {
        &self.secret
    }

    fn notify(&self) -> &dyn notify::NotifyStore {
        self
    }
}

async fn count_rows(
    client: &deadpool_postgres::Object,
    sql: &str,
    params: &[Param],
) -> Result<u64, StoreError> {
    let row = client.query_one(sql, &refs(params)).await.map_err(map_pg)?;
    let n: i64 = row
        .try_get(0)
        .map_err(|e| StoreError::Internal(e.to_string()))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::Analyze;

    #[test]
    fn analyze_is_due_after_the_first_thousand_rows_then_at_each_doubling() {
        let a = Analyze::default();
        let mut due_at = Vec::new();
        for row in 1..=100_000u64 {
            if a.due("t", 1) {
                due_at.push(row);
            }
        }
        assert_eq!(due_at, [1_000, 3_000, 7_000, 15_000, 31_000, 63_000]);
        // A bulk chunk counts all its rows; tables count separately.
        let b = Analyze::default();
        assert!(b.due("t", 5_000));
        assert!(!b.due("u", 999));
        assert!(b.due("u", 1));
        assert!(!b.due("t", 9_999));
        assert!(b.due("t", 1));
    }
}
