//! The embedded default store: SQLite in WAL mode with `synchronous=FULL`.
//!
//! Writes go through one writer thread that drains every queued write into one transaction and
//! commits once (group commit): N concurrent writers pay one fsync, and a write is acknowledged
//! only after its transaction's COMMIT returned. One client's failure (a duplicate id, a stale
//! If-Match) never undoes another's: a write of several statements runs in its own savepoint,
//! and a write of one statement (every create, PATCH and delete) needs none, because SQLite
//! makes a one-row statement atomic by itself (see [`SqliteStore::write_one`]).
//!
//! Reads (WAL readers never block the writer) run inline on the calling async worker thread, on
//! a read connection that thread owns, because handing each read to a blocking thread and back
//! cost far more than the read itself (futex wake-ups dominated a GET by id). A budget guards
//! the worker: a read that runs more than [`INLINE_BUDGET`] SQLite steps is interrupted and run
//! again on the blocking pool, so a full scan never stalls the other requests of its worker.
//!
//! `--in-memory` uses SQLite's `memdb` VFS, shared by the same connections, so both modes run
//! the same code.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::config::DbConfig;
use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::{Connection, OpenFlags, params_from_iter};
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::compile::{self, SqlParam};
use super::notify::{self, Change};
use super::schema::{self, Cell, CellRef, Dialect, quote};
use super::{BoxFuture, ListSpec, Page, PerSet, Precondition, Store, StoreError, TenantRecord};
use crate::model::edm::unique_ticks;
use crate::model::entity::{EntityType, Managed};
use crate::model::record::{Changes, Record};
use crate::odata::typecheck::TypedFilter;

/// How many writes one transaction takes at most.
const MAX_BATCH: usize = 512;
/// Read connections in the blocking pool (reads too long to run inline).
const READERS: usize = 4;
/// The blocking readers one tenant may hold at once: the others stay free for the other
/// tenants, so one tenant's expensive queries cannot starve everyone's reads.
const TENANT_SHARE: usize = READERS / 2;
/// The longest a read waits for a blocking reader (its tenant's share, then the pool) before
/// it is refused as `Unavailable` (503 with Retry-After): a busy pool sheds load instead of
/// queueing requests until they time out.
const POOL_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
/// SQLite VM steps between two calls of the inline connections' progress handler.
const PROGRESS_STEP: i32 = 1000;
/// Progress-handler calls an inline read may take (about 100,000 VM steps, well under a
/// millisecond) before it is interrupted and moved to the blocking pool. Index lookups and
/// `$top`-bounded index walks take a few hundred steps; scans take millions.
const INLINE_BUDGET: u32 = 100;

/// Hands each thread its own inline-reader slot: threads get consecutive slot numbers on first
/// use, so the async workers (as many as the slots, by default) never share one.
static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);
thread_local! {
    static SLOT: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

fn thread_slot() -> usize {
    SLOT.with(|s| {
        s.get().unwrap_or_else(|| {
            let n = NEXT_SLOT.fetch_add(1, Ordering::Relaxed);
            s.set(Some(n));
            n
        })
    })
}

/// A read connection used inline by the thread that owns its slot, with the step budget that
/// keeps it short.
struct InlineReader {
    conn: Mutex<Connection>,
    /// Progress-handler calls since the current read started.
    ticks: Arc<AtomicU64>,
    /// Set when the handler interrupted the current read.
    interrupted: Arc<AtomicBool>,
}

/// A blocking-pool read connection, with the flag its progress handler checks: set when the
/// request that runs a read on it ends early (timeout, client gone), which interrupts the
/// statement so the connection comes back to the pool at once instead of running on.
struct PooledReader {
    conn: Connection,
    cancelled: Arc<AtomicBool>,
}

/// Interrupts the read of a request whose future is dropped before the read finished. The
/// mutex orders it with the read's end, so it never interrupts the next user of the
/// connection.
struct CancelOnDrop {
    state: Arc<Mutex<ReadState>>,
}

#[derive(Default)]
struct ReadState {
    finished: bool,
    cancelled: Option<Arc<AtomicBool>>,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Ok(st) = self.state.lock()
            && !st.finished
            && let Some(flag) = &st.cancelled
        {
            flag.store(true, Ordering::Relaxed);
        }
    }
}

/// Where the database lives.
#[derive(Debug, Clone)]
pub enum Location {
    File(PathBuf),
    Memory,
}

/// A unit of work for the writer thread: run inside the batch's transaction, then told how the
/// commit went.
trait Job: Send {
    /// Whether the write needs a savepoint of its own (it may run several statements).
    fn savepoint(&self) -> bool;
    /// Runs the write; `false` asks for its savepoint (if any) to be rolled back.
    fn run(&mut self, conn: &Connection) -> bool;
    fn finish(self: Box<Self>, commit: Result<(), StoreError>);
}

struct WriteJob<F, R> {
    savepoint: bool,
    work: Option<F>,
    result: Option<Result<R, StoreError>>,
    reply: oneshot::Sender<Result<R, StoreError>>,
}

impl<F, R> Job for WriteJob<F, R>
where
    F: FnOnce(&Connection) -> Result<R, StoreError> + Send,
    R: Send,
{
    fn savepoint(&self) -> bool {
        self.savepoint
    }

    fn run(&mut self, conn: &Connection) -> bool {
        let Some(work) = self.work.take() else {
            return false;
        };
        let r = work(conn);
        let ok = r.is_ok();
        self.result = Some(r);
        ok
    }

    fn finish(self: Box<Self>, commit: Result<(), StoreError>) {
        let this = *self;
        let outcome = match (commit, this.result) {
            (Err(e), _) => Err(e),
            (Ok(()), Some(r)) => r,
            (Ok(()), None) => Err(StoreError::Internal("write was never run".into())),
        };
        // The caller may have gone away (client disconnected); the write stands regardless.
        let _ = this.reply.send(outcome);
    }
}

/// Counters of the write path, to observe group commit.
#[derive(Debug, Default)]
pub struct WriteStats {
    pub commits: AtomicU64,
    pub writes: AtomicU64,
    /// Reads that ran over the inline step budget and were re-run on the blocking pool.
    pub slow_reads: AtomicU64,
}

/// The SQLite store.
pub struct SqliteStore {
    pub stats: Arc<WriteStats>,
    jobs: mpsc::Sender<Box<dyn Job>>,
    readers: Arc<Mutex<Vec<PooledReader>>>,
    permits: Arc<Semaphore>,
    /// Each tenant's share of the blocking readers ([`TENANT_SHARE`]).
    tenant_shares: super::TenantShares,
    inline: Vec<InlineReader>,
    /// One per entity set of the catalog.
    sql: Arc<PerSet<Arc<Statements>>>,
    secret: Vec<u8>,
    /// The data directory's free space and recent out-of-space writes (none in memory).
    disk: Option<DiskWatch>,
}

/// Default of `--min-free-disk-bytes`: below 64 MiB free the WAL (which grows by up to a
/// group commit's pages before a checkpoint) and the database could not take a burst of writes.
pub const DEFAULT_MIN_FREE_DISK: u64 = 64 * 1024 * 1024;

/// How long after a write failed for lack of disk space the store stays not ready, unless a
/// write succeeds first: long enough for a load balancer's probe to see it, short enough that
/// a store nobody writes to any more (the balancer sent its traffic elsewhere) comes back.
const DISK_FULL_HOLD: std::time::Duration = std::time::Duration::from_secs(30);

/// The start of a [`StoreError::Unavailable`] message for SQLite's `SQLITE_FULL`.
const DISK_FULL: &str = "the disk is full";

/// Readiness of the disk under the data directory: a store that cannot grow its database or
/// its WAL accepts reads but refuses every write, so the readiness probe says so before the
/// writes fail (free space under `--min-free-disk-bytes`) and while they fail (a recent
/// `SQLITE_FULL`).
struct DiskWatch {
    dir: PathBuf,
    min_free: AtomicU64,
    /// The watch's start, the origin of `full_at_ms`.
    opened: std::time::Instant,
    /// Milliseconds after `opened` (plus one, so 0 means none) of the last write that failed
    /// with `SQLITE_FULL`; cleared by the next write that succeeds. An atomic: every write
    /// reports here, and a successful one costs a load.
    full_at_ms: AtomicU64,
}

/// Bytes as MiB with one decimal, for messages.
fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

impl DiskWatch {
    /// Bytes the file system holding the data directory grants an unprivileged writer
    /// (`statvfs`'s `f_bavail` blocks of `f_frsize` bytes).
    fn available(&self) -> std::io::Result<u64> {
        let v = rustix::fs::statvfs(&self.dir)?;
        Ok(v.f_bavail.saturating_mul(v.f_frsize))
    }

    fn note(&self, outcome: Result<(), &StoreError>) {
        match outcome {
            Ok(()) => {
                if self.full_at_ms.load(Ordering::Relaxed) != 0 {
                    self.full_at_ms.store(0, Ordering::Relaxed);
                }
            }
            Err(StoreError::Unavailable(m)) if m.starts_with(DISK_FULL) => {
                let ms = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
                self.full_at_ms
                    .store(ms.saturating_add(1), Ordering::Relaxed);
            }
            Err(_) => {}
        }
    }

    /// Unavailable, with the reason, while the disk cannot take writes.
    fn check(&self) -> Result<(), StoreError> {
        let at = self.full_at_ms.load(Ordering::Relaxed);
        let now = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        let ago = std::time::Duration::from_millis(now.saturating_sub(at.saturating_sub(1)));
        if at != 0 && ago < DISK_FULL_HOLD {
            return Err(StoreError::Unavailable(format!(
                "{DISK_FULL}: a write failed {} s ago for lack of space on the disk holding {}",
                ago.as_secs(),
                self.dir.display()
            )));
        }
        let min = self.min_free.load(Ordering::Relaxed);
        if min == 0 {
            return Ok(());
        }
        match self.available() {
            Ok(free) if free < min => Err(StoreError::Unavailable(format!(
                "low disk space: the disk holding {} has {} free ({free} bytes), below \
                 --min-free-disk-bytes ({} = {min} bytes)",
                self.dir.display(),
                mib(free),
                mib(min)
            ))),
            // A file system that cannot say (some FUSE mounts) is not held against the store.
            _ => Ok(()),
        }
    }
}

/// The fixed SQL of one entity set, derived from the catalog once at open (statement caches
/// are keyed by this text, so it is built once rather than on every call).
struct Statements {
    entity: &'static EntityType,
    /// Every record column, quoted, in `schema::record_columns` order.
    select_list: String,
    /// Columns a record row has.
    width: usize,
    get: String,
    insert: String,
    /// Every record column, quoted (the SET list of an update picks from these).
    columns: Vec<String>,
    /// ` WHERE tenant = ?{n+1} AND key = ?{n+2}` needs the two quoted names.
    table: String,
    tenant: String,
    key: String,
    delete: String,
    /// The current version of one entity (its precondition check before a delete).
    version: String,
    /// The first record column of each declared property (then the version and the dynamic
    /// properties' columns follow the last property's).
    offsets: Vec<usize>,
    /// The UPDATE text of each set of changed columns seen so far (see [`Statements::update`]).
    updates: Mutex<HashMap<Box<[usize]>, Arc<str>>>,
}

/// How many distinct UPDATE texts one entity set keeps (a PATCH sets a handful of columns, so
/// real clients use few shapes; past the bound a text is built per call, as before).
const UPDATE_SHAPES: usize = 256;

impl Statements {
    fn new(entity: &'static EntityType) -> Statements {
        let d = Dialect::Sqlite;
        let cols = schema::record_columns(entity, d);
        let table = quote(entity.table);
        let tenant = quote(schema::TENANT_COLUMN);
        let key = quote(schema::column(entity.key()));
        let select_list = cols.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ");
        let n = cols.len();
        debug_assert_eq!(
            entity
                .properties
                .iter()
                .map(schema::property_width)
                .sum::<usize>()
                + 2,
            n,
            "record columns: the properties', then the version and the dynamic properties"
        );
        Statements {
            get: format!("SELECT {select_list} FROM {table} WHERE {tenant} = ?1 AND {key} = ?2"),
            insert: schema::insert_sql(entity, d),
            delete: format!("DELETE FROM {table} WHERE {tenant} = ?1 AND {key} = ?2"),
            version: format!(
                "SELECT {} FROM {table} WHERE {tenant} = ?1 AND {key} = ?2",
                quote(schema::VERSION_COLUMN)
            ),
            select_list,
            width: n,
            columns: cols.iter().map(|c| quote(c)).collect(),
            table,
            tenant,
            key,
            entity,
            offsets: entity
                .properties
                .iter()
                .scan(0, |next, p| {
                    let first = *next;
                    *next += schema::property_width(p);
                    Some(first)
                })
                .collect(),
            updates: Mutex::new(HashMap::new()),
        }
    }

    /// [`Statements::update_sql`] from the cache: the statement cache is keyed by text, so
    /// only building the text was left per PATCH.
    fn update(&self, changed: &[usize]) -> Arc<str> {
        let mut cache = self.updates.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(sql) = cache.get(changed) {
            return sql.clone();
        }
        let sql: Arc<str> = self.update_sql(changed).into();
        if cache.len() < UPDATE_SHAPES {
            cache.insert(changed.into(), sql.clone());
        }
        sql
    }

    /// `UPDATE … SET` only the `changed` columns (indices into the record columns), bound as
    /// `?1..?k`, then the tenant and key. Setting only what changed lets SQLite leave every
    /// index whose columns are untouched alone (a PATCH of one property otherwise rewrote
    /// all of them).
    fn update_sql(&self, changed: &[usize]) -> String {
        let assignments = changed
            .iter()
            .enumerate()
            .map(|(i, &c)| format!("{} = ?{}", self.columns[c], i + 1))
            .collect::<Vec<_>>()
            .join(", ");
        let k = changed.len();
        format!(
            "UPDATE {} SET {assignments} WHERE {} = ?{} AND {} = ?{}",
            self.table,
            self.tenant,
            k + 1,
            self.key,
            k + 2
        )
    }
}

fn internal(e: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(e.to_string())
}

fn map_sqlite(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode::*;
    match e.sqlite_error_code() {
        Some(DiskFull) => StoreError::Unavailable(format!("{DISK_FULL}: {e}")),
        Some(DatabaseBusy | DatabaseLocked | CannotOpen | SystemIoFailure) => {
            StoreError::Unavailable(e.to_string())
        }
        _ => StoreError::Internal(e.to_string()),
    }
}

fn to_sql(cell: Cell) -> SqlValue {
    match cell {
        Cell::Null => SqlValue::Null,
        Cell::Int(i) => SqlValue::Integer(i),
        Cell::Bool(b) => SqlValue::Integer(i64::from(b)),
        Cell::Real(f) => SqlValue::Real(f),
        Cell::Text(t) => SqlValue::Text(t),
    }
}

/// One column of a row, borrowed (text stays in SQLite's buffer until decoded).
fn cell_ref<'r>(row: &'r rusqlite::Row<'r>, i: usize) -> Result<CellRef<'r>, String> {
    Ok(match row.get_ref(i).map_err(|e| e.to_string())? {
        ValueRef::Null => CellRef::Null,
        ValueRef::Integer(i) => CellRef::Int(i),
        ValueRef::Real(f) => CellRef::Real(f),
        ValueRef::Text(t) => CellRef::Text(std::str::from_utf8(t).map_err(|e| e.to_string())?),
        other => return Err(format!("unexpected column type {:?}", other.data_type())),
    })
}

/// Decodes a row straight from SQLite's column values (no `Cell` or `String` per column).
fn read_record(row: &rusqlite::Row<'_>, sql: &Statements) -> Result<Record, StoreError> {
    schema::decode_with(sql.entity, |i| cell_ref(row, i))
        .map_err(|e| StoreError::Internal(format!("corrupt row: {e}")))
}

/// The numbered migrations; index + 1 is the schema version each one produces: the tables of
/// the sets [`schema::migration_sets`] assigns to it.
fn migrations() -> Vec<Vec<String>> {
    let mut all: Vec<Vec<String>> = schema::migration_sets()
        .into_iter()
        .map(|sets| {
            sets.into_iter()
                .flat_map(|e| schema::create_ddl(e, Dialect::Sqlite))
                .collect()
        })
        .collect();
    while all.len() < notify::MIGRATION {
        all.push(Vec::new());
    }
    all[notify::MIGRATION - 1].extend(notify::ddl(Dialect::Sqlite));
    all
}

fn migrate(conn: &mut Connection) -> Result<(), String> {
    let tx = conn.transaction().map_err(|e| e.to_string())?;
    tx.execute_batch("CREATE TABLE IF NOT EXISTS graphsec_schema (version INTEGER NOT NULL)")
        .map_err(|e| e.to_string())?;
    let current: i64 = tx
        .query_row(
            "SELECT COALESCE(MAX(version), 0) FROM graphsec_schema",
            [],
            |r| r.get(0),
        )
        .map_err(|e| e.to_string())?;
    let all = migrations();
    if current > all.len() as i64 {
        return Err(format!(
            "the database has schema version {current}, newer than this graphsec knows ({}); use a newer graphsec",
            all.len()
        ));
    }
    for (i, statements) in all.iter().enumerate().skip(current as usize) {
        for sql in statements {
            tx.execute_batch(sql)
                .map_err(|e| format!("migration {}: {e}", i + 1))?;
        }
        tx.execute("DELETE FROM graphsec_schema", [])
            .map_err(|e| e.to_string())?;
        tx.execute(
            "INSERT INTO graphsec_schema (version) VALUES (?1)",
            [i as i64 + 1],
        )
        .map_err(|e| e.to_string())?;
        tracing::info!(version = i + 1, "applied schema migration");
    }
    tx.commit().map_err(|e| e.to_string())
}

/// Reads (creating on first start) the paging-token secret.
fn load_secret(conn: &Connection) -> Result<Vec<u8>, String> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS graphsec_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    )
    .map_err(|e| e.to_string())?;
    let fresh = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    conn.execute(
        "INSERT INTO graphsec_meta (key, value) VALUES ('paging_secret', ?1) ON CONFLICT (key) DO NOTHING",
        [&fresh],
    )
    .map_err(|e| e.to_string())?;
    let secret: String = conn
        .query_row(
            "SELECT value FROM graphsec_meta WHERE key = 'paging_secret'",
            [],
            |r| r.get(0),
        )
        .map_err(|e| e.to_string())?;
    Ok(secret.into_bytes())
}

impl SqliteStore {
    /// Opens (creating if needed) the database and starts the writer thread.
    pub fn open(location: &Location) -> Result<SqliteStore, String> {
        let (uri, flags) = match location {
            Location::File(dir) => {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("cannot create data directory {}: {e}", dir.display()))?;
                (
                    dir.join("graphsec.db").to_string_lossy().into_owned(),
                    OpenFlags::default(),
                )
            }
            Location::Memory => (
                format!("file:/graphsec-{}?vfs=memdb", uuid::Uuid::new_v4()),
                OpenFlags::default() | OpenFlags::SQLITE_OPEN_URI,
            ),
        };
        let open = |flags: OpenFlags| -> Result<Connection, String> {
            let conn = Connection::open_with_flags(&uri, flags)
                .map_err(|e| format!("cannot open {uri}: {e}"))?;
            conn.busy_timeout(std::time::Duration::from_secs(10))
                .map_err(|e| e.to_string())?;
            // Query planner stability: plans never depend on bound values. Without it SQLite
            // re-prepares (re-parses and re-plans) a cached list statement on every run,
            // because rebinding `LIMIT ?` expires it; graphsec runs no ANALYZE, so value-
            // dependent plans could not help anyway.
            conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
                .map_err(|e| e.to_string())?;
            Ok(conn)
        };
        let mut writer = open(flags)?;
        if let Location::File(_) = location {
            let mode: String = writer
                .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
                .map_err(|e| e.to_string())?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(format!(
                    "could not switch the database to WAL mode (got {mode})"
                ));
            }
        }
        // FULL: the WAL is fsynced at every commit, so an acknowledged write survives power loss.
        writer
            .execute_batch("PRAGMA synchronous=FULL")
            .map_err(|e| e.to_string())?;
        // PATCHes prepare one UPDATE per set of changed columns: keep the common ones cached.
        writer.set_prepared_statement_cache_capacity(64);
        migrate(&mut writer)?;
        let secret = load_secret(&writer)?;
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let mut conn = open(flags)?;
            conn.execute_batch("PRAGMA query_only=1")
                .map_err(|e| e.to_string())?;
            let cancelled = Arc::new(AtomicBool::new(false));
            let flag = cancelled.clone();
            // true interrupts the statement (SQLITE_INTERRUPT): its request has ended.
            conn.progress_handler(PROGRESS_STEP, Some(move || flag.load(Ordering::Relaxed)))
                .map_err(|e| e.to_string())?;
            readers.push(PooledReader { conn, cancelled });
        }
        // One inline reader per async worker thread (tokio starts one per available core).
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        let mut inline = Vec::with_capacity(workers);
        for _ in 0..workers {
            let mut conn = open(flags)?;
            conn.execute_batch("PRAGMA query_only=1")
                .map_err(|e| e.to_string())?;
            let ticks = Arc::new(AtomicU64::new(0));
            let interrupted = Arc::new(AtomicBool::new(false));
            let (t, i) = (ticks.clone(), interrupted.clone());
            conn.progress_handler(
                PROGRESS_STEP,
                Some(move || {
                    // true interrupts the statement (SQLITE_INTERRUPT).
                    let over = t.fetch_add(1, Ordering::Relaxed) >= u64::from(INLINE_BUDGET);
                    if over {
                        i.store(true, Ordering::Relaxed);
                    }
                    over
                }),
            )
            .map_err(|e| e.to_string())?;
            inline.push(InlineReader {
                conn: Mutex::new(conn),
                ticks,
                interrupted,
            });
        }
        let (tx, rx) = mpsc::channel::<Box<dyn Job>>(4 * MAX_BATCH);
        let stats = Arc::new(WriteStats::default());
        let writer_stats = stats.clone();
        std::thread::Builder::new()
            .name("graphsec-sqlite-writer".into())
            .spawn(move || writer_loop(writer, rx, &writer_stats))
            .map_err(|e| e.to_string())?;
        Ok(SqliteStore {
            stats,
            jobs: tx,
            readers: Arc::new(Mutex::new(readers)),
            permits: Arc::new(Semaphore::new(READERS)),
            tenant_shares: super::TenantShares::new(TENANT_SHARE),
            inline,
            sql: Arc::new(PerSet::new(|e| Arc::new(Statements::new(e)))),
            secret,
            disk: match location {
                Location::File(dir) => Some(DiskWatch {
                    dir: dir.clone(),
                    min_free: AtomicU64::new(DEFAULT_MIN_FREE_DISK),
                    opened: std::time::Instant::now(),
                    full_at_ms: AtomicU64::new(0),
                }),
                Location::Memory => None,
            },
        })
    }

    /// Sets the free space (bytes) under which the store is not ready; 0 turns the check off
    /// (an out-of-space write still makes it not ready for a while).
    pub fn set_min_free_disk(&self, bytes: u64) {
        if let Some(d) = &self.disk {
            d.min_free.store(bytes, Ordering::Relaxed);
        }
    }

    /// The statements of an entity set (every catalog set has them).
    fn sql(&self, entity: &'static EntityType) -> Result<Arc<Statements>, StoreError> {
        self.sql.get(entity).cloned()
    }

    /// The database file for a data directory.
    pub fn database_path(dir: &Path) -> PathBuf {
        dir.join("graphsec.db")
    }

    /// Runs `work` on the writer thread, in the next group-committed transaction, inside a
    /// savepoint of its own: an error rolls back everything it wrote and nothing else.
    async fn write<R, F>(&self, work: F) -> Result<R, StoreError>
    where
        F: FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        self.write_job(true, work).await
    }

    /// [`SqliteStore::write`] without the savepoint, for `work` that runs at most one
    /// statement that writes and returns an error only before that statement or from it,
    /// never after it. SQLite makes such a statement atomic without a savepoint: a one-row
    /// INSERT, UPDATE or DELETE checks every constraint before it writes a page (so a
    /// duplicate key changes nothing), a many-row DELETE checks none, and an I/O or
    /// out-of-space error rolls back the whole transaction (which `run_batch` detects). A
    /// savepoint made SQLite copy every page the write touched into its sub-journal first.
    async fn write_one<R, F>(&self, work: F) -> Result<R, StoreError>
    where
        F: FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        self.write_job(false, work).await
    }

    async fn write_job<R, F>(&self, savepoint: bool, work: F) -> Result<R, StoreError>
    where
        F: FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        let result = self.submit(savepoint, work).await;
        if let Some(d) = &self.disk {
            d.note(result.as_ref().map(|_| ()));
        }
        result
    }

    /// Runs `work` on the writer thread, without telling the disk watch how it went (the
    /// readiness probe's read through the writer is no evidence that writes succeed).
    async fn submit<R, F>(&self, savepoint: bool, work: F) -> Result<R, StoreError>
    where
        F: FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let job: Box<dyn Job> = Box::new(WriteJob {
            savepoint,
            work: Some(work),
            result: None,
            reply,
        });
        self.jobs
            .send(job)
            .await
            .map_err(|_| StoreError::Unavailable("the store is shutting down".into()))?;
        rx.await
            .map_err(|_| StoreError::Unavailable("the writer stopped before answering".into()))?
    }

    /// Runs a read inline on this thread's own connection when it is short; a read that exceeds
    /// the step budget (or finds the thread's connection busy) runs on the blocking pool, within
    /// `tenant`'s share of it (`None`: an operator read of every tenant).
    async fn read<R, F>(&self, tenant: Option<String>, work: F) -> Result<R, StoreError>
    where
        F: Fn(&Connection) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        if let Some(reader) = self.inline.get(thread_slot() % self.inline.len().max(1))
            && let Ok(conn) = reader.conn.try_lock()
        {
            reader.ticks.store(0, Ordering::Relaxed);
            reader.interrupted.store(false, Ordering::Relaxed);
            let r = work(&conn);
            if !reader.interrupted.load(Ordering::Relaxed) {
                return r;
            }
            self.stats.slow_reads.fetch_add(1, Ordering::Relaxed);
        }
        self.read_blocking(tenant.as_deref(), work).await
    }

    /// Runs `work` on a connection of the blocking pool. The pool permit and the connection
    /// travel together into the blocking task and come back together when `work` ends, so a
    /// request that ends early never leaves a permit without a connection; and its statement is
    /// interrupted ([`CancelOnDrop`]), so the connection is free again at once.
    async fn read_blocking<R, F>(&self, tenant: Option<&str>, work: F) -> Result<R, StoreError>
    where
        F: FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        let share = match tenant {
            Some(t) => Some(self.tenant_shares.acquire(t, POOL_WAIT).await?),
            None => None,
        };
        let permit = match tokio::time::timeout(POOL_WAIT, self.permits.clone().acquire_owned())
            .await
        {
            Ok(Ok(p)) => p,
            Ok(Err(_)) => return Err(StoreError::Unavailable("the store is shutting down".into())),
            Err(_) => {
                return Err(StoreError::Unavailable(format!(
                    "all read connections stayed busy for {} s",
                    POOL_WAIT.as_secs()
                )));
            }
        };
        let reader = self
            .readers
            .lock()
            .map_err(|_| internal("reader pool poisoned"))?
            .pop()
            // A permit is only free while its connection is in the pool.
            .ok_or_else(|| internal("the reader pool lost a connection"))?;
        let state = Arc::new(Mutex::new(ReadState {
            finished: false,
            cancelled: Some(reader.cancelled.clone()),
        }));
        let _cancel = CancelOnDrop {
            state: state.clone(),
        };
        let pool = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            // The flag is clear here (cleared when the reader came back to the pool); if the
            // request ended before this task started, it is already set and the read stops at
            // its first steps.
            let r = work(&reader.conn);
            if let Ok(mut st) = state.lock() {
                st.finished = true;
            }
            let interrupted = reader.cancelled.swap(false, Ordering::Relaxed);
            if let Ok(mut p) = pool.lock() {
                p.push(reader);
            }
            drop(permit);
            drop(share);
            if interrupted {
                return Err(StoreError::Unavailable(
                    "the read was interrupted: its request ended".into(),
                ));
            }
            r
        })
        .await
        .map_err(internal)?
    }
}

fn writer_loop(conn: Connection, mut rx: mpsc::Receiver<Box<dyn Job>>, stats: &WriteStats) {
    while let Some(first) = rx.blocking_recv() {
        let mut batch = vec![first];
        // Let the request threads run before committing: on a server with one core the writer
        // wakes as soon as the first write is queued, and without yielding it would commit
        // that write alone while the others wait for the next fsync. Keep yielding while more
        // writes arrive, so a burst becomes one transaction (on idle cores this costs one
        // sched_yield per batch).
        loop {
            std::thread::yield_now();
            let before = batch.len();
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(j) => batch.push(j),
                    Err(_) => break,
                }
            }
            if batch.len() == before || batch.len() >= MAX_BATCH {
                break;
            }
        }
        let commit = run_batch(&conn, &mut batch);
        metrics::histogram!(crate::ops::metrics::GROUP_COMMIT_BATCH).record(batch.len() as f64);
        stats.commits.fetch_add(1, Ordering::Relaxed);
        stats
            .writes
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        tracing::debug!(
            writes = batch.len(),
            ok = commit.is_ok(),
            "committed a batch"
        );
        if let Err(e) = &commit {
            tracing::error!(error = %e, writes = batch.len(), "commit failed; the batch's writes are refused");
        }
        for job in batch {
            job.finish(commit.clone());
        }
    }
    tracing::debug!("writer thread stopped");
}

/// Runs one control statement (`BEGIN`, `SAVEPOINT`, …) from the connection's statement cache:
/// `execute_batch` parsed and planned the text again for each of the four to six statements a
/// write costs.
fn control(conn: &Connection, sql: &str) -> Result<(), StoreError> {
    conn.prepare_cached(sql)
        .and_then(|mut s| s.raw_execute())
        .map(|_| ())
        .map_err(map_sqlite)
}

fn run_batch(conn: &Connection, batch: &mut [Box<dyn Job>]) -> Result<(), StoreError> {
    control(conn, "BEGIN IMMEDIATE")?;
    for job in batch.iter_mut() {
        let step = (|| -> Result<(), StoreError> {
            if !job.savepoint() {
                if job.run(conn) || !conn.is_autocommit() {
                    return Ok(());
                }
                // SQLite rolled the whole transaction back (an I/O or out-of-space error):
                // the writes before this one are gone, so the batch fails.
                return Err(StoreError::Unavailable(
                    "a write failed and rolled back its transaction".into(),
                ));
            }
            control(conn, "SAVEPOINT w")?;
            if !job.run(conn) {
                control(conn, "ROLLBACK TO w")?;
            }
            control(conn, "RELEASE w")
        })();
        if let Err(e) = step {
            let _ = control(conn, "ROLLBACK");
            return Err(e);
        }
    }
    if let Err(e) = control(conn, "COMMIT") {
        let _ = control(conn, "ROLLBACK");
        return Err(e);
    }
    Ok(())
}

fn bind(p: SqlParam) -> SqlValue {
    match p {
        SqlParam::Null => SqlValue::Null,
        SqlParam::Int(i) => SqlValue::Integer(i),
        SqlParam::Real(f) => SqlValue::Real(f),
        SqlParam::Text(t) => SqlValue::Text(t),
        SqlParam::Bool(b) => SqlValue::Integer(i64::from(b)),
    }
}

fn fetch_one(
    conn: &Connection,
    sql: &Statements,
    tenant: &str,
    id: &str,
) -> Result<Record, StoreError> {
    let mut stmt = conn.prepare_cached(&sql.get).map_err(map_sqlite)?;
    let mut rows = stmt.query([tenant, id]).map_err(map_sqlite)?;
    match rows.next().map_err(map_sqlite)? {
        Some(row) => read_record(row, sql),
        None => Err(StoreError::NotFound),
    }
}

/// The live subscriptions of the tenant on `entity`'s set (none for a set that cannot be
/// subscribed to).
fn subscribers(
    conn: &Connection,
    entity: &'static EntityType,
    tenant: &str,
    now: i64,
) -> Result<Vec<notify::Subscriber>, StoreError> {
    if !notify::subscribable(entity) {
        return Ok(Vec::new());
    }
    let mut stmt = conn
        .prepare_cached(&notify::subscribers_sql(Dialect::Sqlite))
        .map_err(map_sqlite)?;
    let rows = stmt
        .query_map(rusqlite::params![tenant, entity.collection, now], |r| {
            Ok(notify::Subscriber {
                id: r.get(0)?,
                entity_id: r.get(1)?,
                filter: r.get(2)?,
                change_types: r.get(3)?,
            })
        })
        .map_err(map_sqlite)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(map_sqlite)
}

/// Queues the notifications of one change for the subscribers it matches (as written).
fn enqueue(
    conn: &Connection,
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
            notify::enqueue_sql(entity, Dialect::Sqlite, tenant, id, change, sub, now)
        else {
            continue;
        };
        queued += conn
            .prepare_cached(&sql)
            .and_then(|mut s| s.execute(params_from_iter(params.into_iter().map(bind))))
            .map_err(map_sqlite)? as u64;
    }
    notify::count_queued(queued);
    Ok(())
}

/// Runs a write of `entity`'s set and, when the tenant has live subscriptions on it, queues
/// the notifications of the changes it reports in the same transaction, inside a savepoint so
/// the write and its notifications stand or fall together. Without subscribers (the common
/// case, and every set but alerts) it is the bare write: one indexed read on the writer thread.
fn notifying<R>(
    conn: &Connection,
    entity: &'static EntityType,
    tenant: &str,
    write: impl FnOnce(&Connection) -> Result<(R, Vec<(String, Change)>), StoreError>,
) -> Result<R, StoreError> {
    let now = crate::model::edm::now_ticks();
    let subs = subscribers(conn, entity, tenant, now)?;
    if subs.is_empty() {
        return write(conn).map(|(r, _)| r);
    }
    control(conn, "SAVEPOINT notify")?;
    let r = write(conn).and_then(|(r, changes)| {
        for (id, change) in changes {
            enqueue(conn, entity, tenant, &id, change, &subs, now)?;
        }
        Ok(r)
    });
    if r.is_err() && !conn.is_autocommit() {
        control(conn, "ROLLBACK TO notify")?;
    }
    if !conn.is_autocommit() {
        control(conn, "RELEASE notify")?;
    }
    r
}

fn read_subscription(r: &rusqlite::Row<'_>) -> rusqlite::Result<notify::SubscriptionRow> {
    Ok(notify::SubscriptionRow {
        tenant: r.get(0)?,
        id: r.get(1)?,
        app: r.get(2)?,
        creator: r.get(3)?,
        set_name: r.get(4)?,
        entity_id: r.get(5)?,
        filter: r.get(6)?,
        resource: r.get(7)?,
        change_types: r.get(8)?,
        notification_url: r.get(9)?,
        lifecycle_url: r.get(10)?,
        client_state: r.get(11)?,
        expiration: r.get(12)?,
        created: r.get(13)?,
        extra: r.get(14)?,
        reauth_sent: r.get::<_, i64>(15)? != 0,
        dedupe: r.get(16)?,
    })
}

fn fetch_subscription(
    conn: &Connection,
    tenant: &str,
    id: &str,
    now: i64,
) -> Result<notify::SubscriptionRow, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT {} FROM graphsec_subscriptions WHERE tenant = ?1 AND id = ?2 AND expiration > ?3",
        notify::SUBSCRIPTION_COLUMNS
    ))
    .and_then(|mut s| s.query_row(rusqlite::params![tenant, id, now], read_subscription))
    .map_err(|e| match e {
        rusqlite::Error::QueryReturnedNoRows => StoreError::NotFound,
        e => map_sqlite(e),
    })
}

/// Deletes a subscription's rows everywhere.
fn drop_subscription(conn: &Connection, tenant: &str, id: &str) -> Result<usize, StoreError> {
    let mut n = 0;
    for sql in [
        "DELETE FROM graphsec_outbox WHERE tenant = ?1 AND subscription_id = ?2",
        "DELETE FROM graphsec_deliveries WHERE tenant = ?1 AND subscription_id = ?2",
        "DELETE FROM graphsec_subscriptions WHERE tenant = ?1 AND id = ?2",
    ] {
        n = conn
            .prepare_cached(sql)
            .and_then(|mut s| s.execute([tenant, id]))
            .map_err(map_sqlite)?;
    }
    Ok(n)
}

impl SqliteStore {
    /// [`notify::NotifyStore::sweep`]'s writes, once a read found something to do.
    async fn sweep_now(
        &self,
        now: i64,
        challenge_before: i64,
    ) -> Result<notify::Sweep, StoreError> {
        self.write(move |conn| {
            let expired: Vec<(String, String)> = {
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT tenant, id FROM graphsec_subscriptions WHERE expiration <= ?1 LIMIT 1000",
                    )
                    .map_err(map_sqlite)?;
                let rows = stmt
                    .query_map([now], |r| Ok((r.get(0)?, r.get(1)?)))
                    .map_err(map_sqlite)?;
                rows.collect::<Result<_, _>>().map_err(map_sqlite)?
            };
            for (t, id) in &expired {
                drop_subscription(conn, t, id)?;
            }
            let challenged = conn
                .prepare_cached(
                    "INSERT INTO graphsec_outbox (tenant, subscription_id, kind, event, created) \
                     SELECT tenant, id, 'lifecycle', ?3, ?1 FROM graphsec_subscriptions \
                     WHERE lifecycle_url IS NOT NULL AND reauth_sent = 0 AND expiration > ?1 AND expiration <= ?2",
                )
                .and_then(|mut s| {
                    s.execute(rusqlite::params![
                        now,
                        challenge_before,
                        notify::REAUTHORIZATION_REQUIRED
                    ])
                })
                .map_err(map_sqlite)?;
            conn.prepare_cached(
                "UPDATE graphsec_subscriptions SET reauth_sent = 1 \
                 WHERE lifecycle_url IS NOT NULL AND reauth_sent = 0 AND expiration > ?1 AND expiration <= ?2",
            )
            .and_then(|mut s| s.execute([now, challenge_before]))
            .map_err(map_sqlite)?;
            notify::count_queued(challenged as u64);
            Ok(notify::Sweep {
                expired: expired.len() as u64,
                challenged: challenged as u64,
            })
        })
        .await
    }
}

impl notify::NotifyStore for SqliteStore {
    fn create_subscription(
        &self,
        row: notify::SubscriptionRow,
    ) -> BoxFuture<'_, Result<Option<String>, StoreError>> {
        Box::pin(self.write(move |conn| {
            let now = crate::model::edm::now_ticks();
            // An expired duplicate is gone already as far as clients can tell.
            conn.prepare_cached(
                "DELETE FROM graphsec_subscriptions WHERE tenant = ?1 AND app = ?2 AND dedupe = ?3 AND expiration <= ?4",
            )
            .and_then(|mut s| s.execute(rusqlite::params![row.tenant, row.app, row.dedupe, now]))
            .map_err(map_sqlite)?;
            let sql = format!(
                "INSERT INTO graphsec_subscriptions ({}) VALUES ({})",
                notify::SUBSCRIPTION_COLUMNS,
                notify::placeholders(Dialect::Sqlite, 1, 17)
            );
            let params = notify::subscription_params(&row);
            match conn
                .prepare_cached(&sql)
                .and_then(|mut s| s.execute(params_from_iter(params.into_iter().map(bind))))
            {
                Ok(_) => Ok(None),
                Err(e)
                    if e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation) =>
                {
                    let existing: String = conn
                        .query_row(
                            "SELECT id FROM graphsec_subscriptions WHERE tenant = ?1 AND app = ?2 AND dedupe = ?3",
                            rusqlite::params![row.tenant, row.app, row.dedupe],
                            |r| r.get(0),
                        )
                        .map_err(|_| StoreError::Duplicate)?;
                    Ok(Some(existing))
                }
                Err(e) => Err(map_sqlite(e)),
            }
        }))
    }

    fn get_subscription(
        &self,
        tenant: &str,
        id: &str,
        now: i64,
    ) -> BoxFuture<'_, Result<notify::SubscriptionRow, StoreError>> {
        let (tenant, id) = (tenant.to_string(), id.to_string());
        Box::pin(self.read(None, move |conn: &Connection| {
            fetch_subscription(conn, &tenant, &id, now)
        }))
    }

    fn list_subscriptions(
        &self,
        tenant: &str,
        now: i64,
    ) -> BoxFuture<'_, Result<Vec<notify::SubscriptionRow>, StoreError>> {
        let tenant = tenant.to_string();
        Box::pin(self.read(None, move |conn: &Connection| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {} FROM graphsec_subscriptions WHERE tenant = ?1 AND expiration > ?2 ORDER BY id",
                    notify::SUBSCRIPTION_COLUMNS
                ))
                .map_err(map_sqlite)?;
            let rows = stmt
                .query_map(rusqlite::params![tenant, now], read_subscription)
                .map_err(map_sqlite)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(map_sqlite)
        }))
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
        Box::pin(self.write(move |conn| {
            let mut row = fetch_subscription(conn, &tenant, &id, now)?;
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
            conn.prepare_cached(
                "UPDATE graphsec_subscriptions SET expiration = ?3, notification_url = ?4, reauth_sent = ?5 \
                 WHERE tenant = ?1 AND id = ?2",
            )
            .and_then(|mut s| {
                s.execute(rusqlite::params![
                    tenant,
                    id,
                    row.expiration,
                    row.notification_url,
                    i64::from(row.reauth_sent)
                ])
            })
            .map_err(map_sqlite)?;
            Ok(row)
        }))
    }

    fn delete_subscription(&self, tenant: &str, id: &str) -> BoxFuture<'_, Result<(), StoreError>> {
        let (tenant, id) = (tenant.to_string(), id.to_string());
        Box::pin(self.write(move |conn| {
            let now = crate::model::edm::now_ticks();
            // Only a live subscription can be deleted (an expired one is already gone).
            fetch_subscription(conn, &tenant, &id, now)?;
            drop_subscription(conn, &tenant, &id)?;
            Ok(())
        }))
    }

    fn sweep(
        &self,
        now: i64,
        challenge_before: i64,
    ) -> BoxFuture<'_, Result<notify::Sweep, StoreError>> {
        Box::pin(async move {
            // A read first: an idle server does not commit (and fsync) every sweep.
            let due = self
                .read(None, move |conn: &Connection| {
                    conn.prepare_cached(
                        "SELECT 1 FROM graphsec_subscriptions WHERE expiration <= ?1 OR \
                         (lifecycle_url IS NOT NULL AND reauth_sent = 0 AND expiration <= ?2) LIMIT 1",
                    )
                    .and_then(|mut s| s.exists([now, challenge_before]))
                    .map_err(map_sqlite)
                })
                .await?;
            if !due {
                return Ok(notify::Sweep::default());
            }
            self.sweep_now(now, challenge_before).await
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
            // A read first: the writer thread is only asked when there is work.
            let due = self
                .read(None, move |conn: &Connection| {
                    conn.prepare_cached(CLAIMABLE_EXISTS)
                        .and_then(|mut s| s.exists([now]))
                        .map_err(map_sqlite)
                })
                .await?;
            if !due {
                return Ok(Vec::new());
            }
            self.write(move |conn| {
                let mut stmt = conn
                    .prepare_cached(&format!(
                        "UPDATE graphsec_subscriptions SET lease_owner = ?1, lease_until = ?3 \
                         WHERE (tenant, id) IN (SELECT tenant, id FROM graphsec_subscriptions s {CLAIMABLE} \
                         ORDER BY next_attempt LIMIT ?4) RETURNING tenant, id"
                    ))
                    .map_err(map_sqlite)?;
                let rows = stmt
                    .query_map(
                        rusqlite::params![owner, now, lease_until, limit as i64],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .map_err(map_sqlite)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(map_sqlite)
            })
            .await
        })
    }

    fn pending(
        &self,
        tenant: &str,
        id: &str,
        limit: usize,
    ) -> BoxFuture<'_, Result<notify::Pending, StoreError>> {
        let (tenant, id) = (tenant.to_string(), id.to_string());
        Box::pin(self.read(None, move |conn: &Connection| {
            let (subscription, attempts) = conn
                .prepare_cached(&format!(
                    "SELECT {}, attempts FROM graphsec_subscriptions WHERE tenant = ?1 AND id = ?2",
                    notify::SUBSCRIPTION_COLUMNS
                ))
                .and_then(|mut s| {
                    s.query_row([&tenant, &id], |r| Ok((read_subscription(r)?, r.get(17)?)))
                })
                .map_err(|e| match e {
                    rusqlite::Error::QueryReturnedNoRows => StoreError::NotFound,
                    e => map_sqlite(e),
                })?;
            let mut stmt = conn
                .prepare_cached(
                    "SELECT seq, kind, event, set_name, resource_id, created FROM graphsec_outbox \
                     WHERE tenant = ?1 AND subscription_id = ?2 ORDER BY seq LIMIT ?3",
                )
                .map_err(map_sqlite)?;
            let rows = stmt
                .query_map(rusqlite::params![tenant, id, limit as i64], |r| {
                    Ok(notify::OutboxRow {
                        seq: r.get(0)?,
                        kind: r.get(1)?,
                        event: r.get(2)?,
                        set_name: r.get(3)?,
                        resource_id: r.get(4)?,
                        created: r.get(5)?,
                    })
                })
                .map_err(map_sqlite)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(map_sqlite)?;
            Ok(notify::Pending {
                subscription,
                attempts,
                rows,
            })
        }))
    }

    fn finish(
        &self,
        tenant: &str,
        id: &str,
        outcome: notify::Outcome,
        log: Option<notify::DeliveryLog>,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        let (tenant, id) = (tenant.to_string(), id.to_string());
        Box::pin(self.write(move |conn| {
            let (done, attempts, next) = match &outcome {
                notify::Outcome::Delivered(seqs) | notify::Outcome::Dropped(seqs) => {
                    (seqs.as_slice(), 0, 0)
                }
                notify::Outcome::Retry {
                    next_attempt,
                    attempts,
                } => (&[][..], *attempts, *next_attempt),
            };
            let mut delete = conn
                .prepare_cached(
                    "DELETE FROM graphsec_outbox WHERE tenant = ?1 AND subscription_id = ?2 AND seq = ?3",
                )
                .map_err(map_sqlite)?;
            for seq in done {
                delete
                    .execute(rusqlite::params![tenant, id, seq])
                    .map_err(map_sqlite)?;
            }
            conn.prepare_cached(
                "UPDATE graphsec_subscriptions SET attempts = ?3, next_attempt = ?4, lease_owner = NULL, lease_until = 0 \
                 WHERE tenant = ?1 AND id = ?2",
            )
            .and_then(|mut s| s.execute(rusqlite::params![tenant, id, attempts, next]))
            .map_err(map_sqlite)?;
            let Some(log) = log else {
                return Ok(());
            };
            conn.prepare_cached(
                "INSERT INTO graphsec_deliveries (tenant, subscription_id, at, kind, attempt, notifications, status, outcome, error) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )
            .and_then(|mut s| {
                s.execute(rusqlite::params![
                    tenant,
                    id,
                    log.at,
                    log.kind,
                    log.attempt,
                    log.notifications,
                    log.status,
                    log.outcome,
                    log.error
                ])
            })
            .map_err(map_sqlite)?;
            conn.prepare_cached(
                "DELETE FROM graphsec_deliveries WHERE tenant = ?1 AND subscription_id = ?2 AND seq <= \
                 (SELECT seq FROM graphsec_deliveries WHERE tenant = ?1 AND subscription_id = ?2 \
                 ORDER BY seq DESC LIMIT 1 OFFSET ?3)",
            )
            .and_then(|mut s| s.execute(rusqlite::params![tenant, id, notify::DELIVERY_LOG]))
            .map_err(map_sqlite)?;
            Ok(())
        }))
    }

    fn outbox_stats(&self) -> BoxFuture<'_, Result<(u64, Option<i64>), StoreError>> {
        Box::pin(self.read(None, |conn: &Connection| {
            conn.prepare_cached("SELECT COUNT(*), MIN(created) FROM graphsec_outbox")
                .and_then(|mut s| s.query_row([], |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?))))
                .map_err(map_sqlite)
        }))
    }

    fn deliveries(
        &self,
        tenant: Option<&str>,
        id: &str,
    ) -> BoxFuture<'_, Result<Vec<notify::DeliveryLog>, StoreError>> {
        let (tenant, id) = (tenant.map(str::to_string), id.to_string());
        Box::pin(self.read(None, move |conn: &Connection| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT at, kind, attempt, notifications, status, outcome, error FROM graphsec_deliveries \
                     WHERE (?1 IS NULL OR tenant = ?1) AND subscription_id = ?2 ORDER BY seq DESC",
                )
                .map_err(map_sqlite)?;
            let rows = stmt
                .query_map(rusqlite::params![tenant, id], |r| {
                    Ok(notify::DeliveryLog {
                        at: r.get(0)?,
                        kind: r.get(1)?,
                        attempt: r.get(2)?,
                        notifications: r.get(3)?,
                        status: r.get(4)?,
                        outcome: r.get(5)?,
                        error: r.get(6)?,
                    })
                })
                .map_err(map_sqlite)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(map_sqlite)
        }))
    }
}

/// The subscriptions with due notifications and no live lease (`?2` is now).
const CLAIMABLE: &str = "WHERE s.next_attempt <= ?2 AND s.lease_until <= ?2 AND EXISTS \
     (SELECT 1 FROM graphsec_outbox o WHERE o.tenant = s.tenant AND o.subscription_id = s.id)";
const CLAIMABLE_EXISTS: &str = "SELECT 1 FROM graphsec_subscriptions s WHERE s.next_attempt <= ?1 \
     AND s.lease_until <= ?1 AND EXISTS (SELECT 1 FROM graphsec_outbox o WHERE o.tenant = s.tenant \
     AND o.subscription_id = s.id) LIMIT 1";

impl Store for SqliteStore {
    fn create(
        &self,
        tenant: &str,
        changes: Changes,
        id: String,
    ) -> BoxFuture<'_, Result<Record, StoreError>> {
        let sql = try_or_fail!(self.sql(changes.entity));
        let tenant = tenant.to_string();
        Box::pin(self.write_one(move |conn| {
            notifying(conn, sql.entity, &tenant.clone(), move |conn| {
                let record =
                    Record::create(changes, id, unique_ticks()).map_err(StoreError::Invalid)?;
                let mut cells = vec![to_sql(Cell::Text(tenant))];
                cells.extend(schema::encode(&record).into_iter().map(to_sql));
                let mut stmt = conn.prepare_cached(&sql.insert).map_err(map_sqlite)?;
                match stmt.execute(params_from_iter(cells)) {
                    Ok(_) => {
                        let id = record.id().to_string();
                        Ok((record, vec![(id, Change::Created)]))
                    }
                    Err(e)
                        if e.sqlite_error_code()
                            == Some(rusqlite::ErrorCode::ConstraintViolation) =>
                    {
                        Err(StoreError::Duplicate)
                    }
                    Err(e) => Err(map_sqlite(e)),
                }
            })
        }))
    }

    fn get(
        &self,
        entity: &'static EntityType,
        tenant: &str,
        id: &str,
    ) -> BoxFuture<'_, Result<Record, StoreError>> {
        let sql = try_or_fail!(self.sql(entity));
        let (tenant, id) = (tenant.to_string(), id.to_string());
        Box::pin(self.read(Some(tenant.clone()), move |conn| {
            fetch_one(conn, &sql, &tenant, &id)
        }))
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
        // The single writer thread makes read-check-write atomic: no other write runs between.
        Box::pin(self.write_one(move |conn| {
            let t = tenant.clone();
            notifying(conn, sql.entity, &t, move |conn| {
                let mut record = fetch_one(conn, &sql, &tenant, &id)?;
                pre.check(record.version)?;
                // Only the properties in the body and the modified stamp can change (and the
                // version and, with dynamic properties in the body, their column): encode and
                // compare just those, not the whole row twice.
                let entity = sql.entity;
                let modified = entity.managed_index(Managed::Modified);
                let touched: Vec<usize> = (changes.props.iter().enumerate())
                    .filter(|&(i, c)| c.is_some() || Some(i) == modified)
                    .map(|(i, _)| i)
                    .collect();
                let cells_of = |r: &Record| {
                    let mut out = Vec::with_capacity(touched.len());
                    for &p in &touched {
                        schema::encode_property(&entity.properties[p], &r.values[p], &mut out);
                    }
                    out
                };
                let before = cells_of(&record);
                let version = record.version;
                let dynamic =
                    (!changes.dynamic.is_empty()).then(|| schema::encode_dynamic(&record));
                record
                    .apply(changes, unique_ticks())
                    .map_err(StoreError::Invalid)?;
                let columns = touched.iter().flat_map(|&p| {
                    sql.offsets[p]..sql.offsets[p] + schema::property_width(&entity.properties[p])
                });
                let (mut changed, mut cells): (Vec<usize>, Vec<SqlValue>) = columns
                    .zip(cells_of(&record).into_iter().zip(before))
                    .filter(|(_, (now, was))| now != was)
                    .map(|(i, (now, _))| (i, to_sql(now)))
                    .unzip();
                let version_column = sql.width - 2;
                if record.version != version {
                    changed.push(version_column);
                    cells.push(SqlValue::Integer(record.version));
                }
                if let Some(was) = dynamic {
                    let now = schema::encode_dynamic(&record);
                    if now != was {
                        changed.push(version_column + 1);
                        cells.push(to_sql(now));
                    }
                }
                cells.push(SqlValue::Text(tenant));
                cells.push(SqlValue::Text(id.clone()));
                let mut stmt = conn
                    .prepare_cached(&sql.update(&changed))
                    .map_err(map_sqlite)?;
                stmt.execute(params_from_iter(cells)).map_err(map_sqlite)?;
                Ok((record, vec![(id, Change::Updated)]))
            })
        }))
    }

    fn delete(
        &self,
        entity: &'static EntityType,
        tenant: &str,
        id: &str,
        pre: Precondition,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        let sql = try_or_fail!(self.sql(entity));
        let (tenant, id) = (tenant.to_string(), id.to_string());
        Box::pin(self.write_one(move |conn| {
            let version: Option<i64> = conn
                .prepare_cached(&sql.version)
                .and_then(|mut s| s.query_row([&tenant, &id], |r| r.get(0)))
                .map(Some)
                .or_else(|e| match e {
                    rusqlite::Error::QueryReturnedNoRows => Ok(None),
                    e => Err(e),
                })
                .map_err(map_sqlite)?;
            pre.check(version.ok_or(StoreError::NotFound)?)?;
            conn.prepare_cached(&sql.delete)
                .and_then(|mut s| s.execute([&tenant, &id]))
                .map_err(map_sqlite)?;
            Ok(())
        }))
    }

    fn list(
        &self,
        entity: &'static EntityType,
        tenant: &str,
        spec: ListSpec,
    ) -> BoxFuture<'_, Result<Page, StoreError>> {
        let statements = try_or_fail!(self.sql(entity));
        let tenant = tenant.to_string();
        Box::pin(self.read(Some(tenant.clone()), move |conn| {
            let q = compile::list_sql(
                entity,
                Dialect::Sqlite,
                &statements.select_list,
                &tenant,
                &spec,
            )
            .map_err(|e| StoreError::Internal(format!("keyset: {}", e.0)))?;
            let (count_sql, count_params) = (q.count, q.count_params);
            let mut stmt = conn.prepare_cached(&q.page).map_err(map_sqlite)?;
            let mut rows = stmt
                .query(params_from_iter(q.page_params.into_iter().map(bind)))
                .map_err(map_sqlite)?;
            let mut records = Vec::with_capacity(spec.limit.min(1000));
            let mut more = false;
            let mut bytes = 0;
            while let Some(row) = rows.next().map_err(map_sqlite)? {
                // The query asks for one row past the page only to learn whether more remain:
                // that row is not decoded.
                if records.len() == spec.limit || super::page_is_full(&spec, records.len(), bytes) {
                    more = true;
                    break;
                }
                let record = read_record(row, &statements)?;
                if spec.max_bytes > 0 {
                    bytes += record.approx_wire_bytes();
                }
                records.push(record);
            }
            let count = if spec.count {
                let n: i64 = conn
                    .prepare_cached(&count_sql)
                    .and_then(|mut s| {
                        s.query_row(params_from_iter(count_params.into_iter().map(bind)), |r| {
                            r.get(0)
                        })
                    })
                    .map_err(map_sqlite)?;
                Some(n as u64)
            } else {
                None
            };
            Ok(Page {
                records,
                more,
                count,
            })
        }))
    }

    fn count(
        &self,
        entity: &'static EntityType,
        tenant: &str,
        filter: Option<TypedFilter>,
    ) -> BoxFuture<'_, Result<u64, StoreError>> {
        let tenant = tenant.to_string();
        Box::pin(self.read(Some(tenant.clone()), move |conn| {
            let (sql, params) =
                compile::count_sql(entity, Dialect::Sqlite, &tenant, filter.as_ref());
            let n: i64 = conn
                .prepare_cached(&sql)
                .and_then(|mut s| {
                    s.query_row(params_from_iter(params.into_iter().map(bind)), |r| r.get(0))
                })
                .map_err(map_sqlite)?;
            Ok(n as u64)
        }))
    }

    fn paging_secret(&self) -> &[u8] {
        &self.secret
    }

    fn notify(&self) -> &dyn notify::NotifyStore {
        self
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let probe = |conn: &Connection| {
                conn.query_row("SELECT COUNT(*) FROM graphsec_schema", [], |r| {
                    r.get::<_, i64>(0)
                })
                .map(|_| ())
                .map_err(map_sqlite)
            };
            self.read(None, probe).await?;
            // Through the writer: a database another process holds the write lock of is not
            // ready, though its readers still answer.
            self.submit(false, probe).await?;
            match &self.disk {
                Some(d) => d.check(),
                None => Ok(()),
            }
        })
    }

    fn reset(
        &self,
        entity: &'static EntityType,
        tenant: Option<&str>,
    ) -> BoxFuture<'_, Result<u64, StoreError>> {
        let tenant = tenant.map(str::to_string);
        Box::pin(self.write_one(move |conn| {
            let table = quote(entity.table);
            let n = match tenant {
                Some(t) => conn.execute(
                    &format!(
                        "DELETE FROM {table} WHERE {} = ?1",
                        quote(schema::TENANT_COLUMN)
                    ),
                    [t],
                ),
                None => conn.execute(&format!("DELETE FROM {table}"), []),
            }
            .map_err(map_sqlite)?;
            Ok(n as u64)
        }))
    }

    fn tenant_counts(
        &self,
        entity: &'static EntityType,
        tenant: Option<&str>,
        limit: Option<u64>,
    ) -> BoxFuture<'_, Result<Vec<(String, u64)>, StoreError>> {
        let only = tenant.map(str::to_owned);
        Box::pin(self.read(None, move |conn| {
            let table = quote(entity.table);
            let col = quote(schema::TENANT_COLUMN);
            if only.is_none() && limit.is_none() {
                // Every tenant's exact count: one pass over an index.
                let mut stmt = conn
                    .prepare(&format!(
                        "SELECT {col}, COUNT(*) FROM {table} GROUP BY {col} ORDER BY {col}"
                    ))
                    .map_err(map_sqlite)?;
                let rows = stmt
                    .query_map([], |r| {
                        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
                    })
                    .map_err(map_sqlite)?;
                return rows.collect::<Result<Vec<_>, _>>().map_err(map_sqlite);
            }
            let tenants = match &only {
                Some(t) => vec![t.clone()],
                None => {
                    // A skip scan of the (tenant, …) keys: one index seek per tenant.
                    let mut next = conn
                        .prepare_cached(&format!("SELECT MIN({col}) FROM {table} WHERE {col} > ?1"))
                        .map_err(map_sqlite)?;
                    let mut first = conn
                        .prepare_cached(&format!("SELECT MIN({col}) FROM {table}"))
                        .map_err(map_sqlite)?;
                    let mut out = Vec::new();
                    let mut at: Option<String> =
                        first.query_row([], |r| r.get(0)).map_err(map_sqlite)?;
                    while let Some(t) = at {
                        at = next.query_row([&t], |r| r.get(0)).map_err(map_sqlite)?;
                        out.push(t);
                    }
                    out
                }
            };
            // SQLite reads a negative LIMIT as none.
            let limit = limit.map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX));
            let mut count = conn
                .prepare_cached(&format!(
                    "SELECT COUNT(*) FROM (SELECT 1 FROM {table} WHERE {col} = ?1 LIMIT ?2)"
                ))
                .map_err(map_sqlite)?;
            let mut out = Vec::with_capacity(tenants.len());
            for t in tenants {
                let n: i64 = count
                    .query_row(rusqlite::params![t, limit], |r| r.get(0))
                    .map_err(map_sqlite)?;
                if n > 0 {
                    out.push((t, n as u64));
                }
            }
            Ok(out)
        }))
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
        Box::pin(self.read(None, move |conn| {
            let sql = schema::export_page_sql(
                entity,
                Dialect::Sqlite,
                &statements.select_list,
                tenant.is_some(),
                after.is_some(),
            );
            // `read` may run this closure twice (inline, then on the blocking pool): clone.
            let mut params: Vec<SqlValue> = Vec::new();
            if let Some(tenant) = tenant.clone() {
                params.push(SqlValue::Text(tenant));
            }
            if let Some((after_tenant, after_id)) = after.clone() {
                params.push(SqlValue::Text(after_tenant));
                params.push(SqlValue::Text(after_id));
            }
            params.push(SqlValue::Integer(i64::try_from(limit).unwrap_or(i64::MAX)));
            let mut stmt = conn.prepare_cached(&sql).map_err(map_sqlite)?;
            let mut rows = stmt.query(params_from_iter(params)).map_err(map_sqlite)?;
            let mut out = Vec::with_capacity(limit.min(10_000));
            while let Some(row) = rows.next().map_err(map_sqlite)? {
                out.push(TenantRecord {
                    record: read_record(row, &statements)?,
                    tenant: row.get(statements.width).map_err(map_sqlite)?,
                });
            }
            Ok(out)
        }))
    }

    fn import_chunk(&self, rows: Vec<TenantRecord>) -> BoxFuture<'_, Result<(), StoreError>> {
        let mut statements = Vec::with_capacity(rows.len());
        for row in &rows {
            statements.push(try_or_fail!(self.sql(row.record.entity)));
        }
        Box::pin(self.write(move |conn| {
            let now = crate::model::edm::now_ticks();
            for (row, sql) in rows.into_iter().zip(&statements) {
                let mut delete = conn.prepare_cached(&sql.delete).map_err(map_sqlite)?;
                let mut insert = conn.prepare_cached(&sql.insert).map_err(map_sqlite)?;
                let replaced = delete
                    .execute(rusqlite::params![row.tenant, row.record.id()])
                    .map_err(map_sqlite)?;
                let id = row.record.id().to_string();
                let tenant = row.tenant.clone();
                let mut cells = vec![to_sql(Cell::Text(row.tenant))];
                cells.extend(schema::encode(&row.record).into_iter().map(to_sql));
                insert
                    .execute(params_from_iter(cells))
                    .map_err(map_sqlite)?;
                if notify::subscribable(sql.entity) {
                    // In this write's savepoint: the import and its notifications are one.
                    let subs = subscribers(conn, sql.entity, &tenant, now)?;
                    let change = if replaced > 0 {
                        Change::Updated
                    } else {
                        Change::Created
                    };
                    enqueue(conn, sql.entity, &tenant, &id, change, &subs, now)?;
                }
            }
            Ok(())
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::record::Changes;

    fn profiles() -> &'static EntityType {
        crate::model::catalog()
            .set("cloudAppSecurityProfiles")
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_writes_share_commits_and_failures_stay_isolated() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(&Location::File(dir.path().to_path_buf())).unwrap());
        let mut tasks = Vec::new();
        for i in 0..200 {
            let s = store.clone();
            // Every tenth write collides with an earlier id: it fails alone.
            let id = if i % 10 == 9 {
                format!("id-{}", i - 1)
            } else {
                format!("id-{i}")
            };
            tasks.push(tokio::spawn(async move {
                s.create("t", Changes::empty(profiles()), id).await
            }));
        }
        let mut ok = 0;
        let mut dup = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => ok += 1,
                Err(StoreError::Duplicate) => dup += 1,
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!((ok, dup), (180, 20));
        assert_eq!(store.count(profiles(), "t", None).await.unwrap(), 180);
        // A refused duplicate (no savepoint: `write_one`) left no index entry behind.
        let check: String = Connection::open(SqliteStore::database_path(dir.path()))
            .unwrap()
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok");
        let commits = store.stats.commits.load(Ordering::Relaxed);
        let writes = store.stats.writes.load(Ordering::Relaxed);
        assert_eq!(writes, 200);
        assert!(
            commits < writes,
            "group commit: {commits} commits for {writes} writes"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_read_over_the_inline_budget_finishes_on_the_blocking_pool() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&Location::File(dir.path().to_path_buf())).unwrap();
        let short = store.get(profiles(), "t", "missing").await;
        assert_eq!(short, Err(StoreError::NotFound));
        assert_eq!(store.stats.slow_reads.load(Ordering::Relaxed), 0);
        // Far more VM steps than the inline budget: interrupted inline, then run to the end.
        let n: i64 = store
            .read(Some("t".into()), |conn: &Connection| {
                conn.query_row(
                    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 300000) \
                     SELECT count(*) FROM c",
                    [],
                    |r| r.get(0),
                )
                .map_err(map_sqlite)
            })
            .await
            .unwrap();
        assert_eq!(n, 300_000);
        assert_eq!(store.stats.slow_reads.load(Ordering::Relaxed), 1);
    }

    /// Issue 24: a read whose request ends early is interrupted and gives its connection back
    /// at once, so the pool never runs dry behind abandoned statements; one tenant holds at
    /// most its share of the readers.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn abandoned_reads_are_interrupted_and_tenants_share_the_pool() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(&Location::File(dir.path().to_path_buf())).unwrap());
        // Endless statements (a recursive CTE without a bound), far past the inline budget.
        let endless = |conn: &Connection| {
            conn.query_row(
                "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map_err(map_sqlite)
        };
        // Tenant "noisy" starts more endless reads than the pool has readers; each is
        // abandoned after a short while, as a request timeout would.
        let mut noisy = Vec::new();
        for _ in 0..READERS * 2 {
            let s = store.clone();
            noisy.push(tokio::spawn(async move {
                tokio::time::timeout(
                    std::time::Duration::from_millis(300),
                    s.read(Some("noisy".into()), endless),
                )
                .await
            }));
        }
        // Meanwhile another tenant's long read still gets a reader (the noisy tenant holds at
        // most its share).
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let other = store
            .read(Some("quiet".into()), |conn: &Connection| {
                conn.query_row(
                    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 300000) \
                     SELECT count(*) FROM c",
                    [],
                    |r| r.get::<_, i64>(0),
                )
                .map_err(map_sqlite)
            })
            .await;
        assert_eq!(other, Ok(300_000));
        for t in noisy {
            assert!(t.await.unwrap().is_err(), "abandoned");
        }
        // Every connection came back: READERS reads at once all find one.
        let mut again = Vec::new();
        for i in 0..READERS {
            let s = store.clone();
            again.push(tokio::spawn(async move {
                s.read_blocking(Some(&format!("t{i}")), |conn: &Connection| {
                    conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
                        .map_err(map_sqlite)
                })
                .await
            }));
        }
        for t in again {
            assert_eq!(t.await.unwrap(), Ok(1));
        }
    }

    #[test]
    fn a_database_from_a_newer_graphsec_is_refused_clearly() {
        let dir = tempfile::tempdir().unwrap();
        drop(SqliteStore::open(&Location::File(dir.path().to_path_buf())).unwrap());
        let conn = Connection::open(SqliteStore::database_path(dir.path())).unwrap();
        conn.execute("UPDATE graphsec_schema SET version = 999", [])
            .unwrap();
        drop(conn);
        let err = SqliteStore::open(&Location::File(dir.path().to_path_buf()))
            .err()
            .unwrap();
        assert!(err.contains("999") && err.contains("newer"), "{err}");
    }

    #[test]
    fn reopening_keeps_the_schema_and_the_paging_secret() {
        let dir = tempfile::tempdir().unwrap();
        let loc = Location::File(dir.path().to_path_buf());
        let first = SqliteStore::open(&loc).unwrap().paging_secret().to_vec();
        let second = SqliteStore::open(&loc).unwrap().paging_secret().to_vec();
        assert_eq!(first, second);
        assert!(first.len() >= 32);
    }
}
