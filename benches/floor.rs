//! The benchmark's floor: a bare axum server over a graphsec SQLite database, doing only the
//! SQLite work of each benchmarked request. `GET …/{id}` answers the row of that id (one
//! prepared statement per thread, the table's own `(tenant, id)` key). `GET …?$filter=platform
//! eq 'X'&$top=N` answers the first N rows of that platform in id order (`{"value":[…]}`,
//! reading one row more, as a page that must say whether another follows). `POST …` inserts
//! one fixed profile row with a fresh time-ordered id (UUIDv7, as graphsec makes them) into the
//! same table, with all of its indexes, and answers 201 after its commit. `PATCH …/{id}` with
//! `{"riskScore":"…"}` sets that column and the modified stamp and version (`UPDATE … RETURNING
//! *`) and answers 200 with the row after its commit. Writes go through one writer thread that
//! groups the writes waiting for it into one transaction per commit (WAL, `synchronous=FULL`,
//! as graphsec). Rows are written as JSON by column name. No authentication, no OData, no
//! validation, no envelope beyond the rows: what axum + SQLite cost on this machine. It uses
//! graphsec's allocator (mimalloc) and connection setting (QPSG), so it is no slower than
//! graphsec for reasons of setup.
//! `scripts/bench` runs it beside the ceiling, so the gap between graphsec and the ceiling
//! splits into what SQLite itself costs and what graphsec's layers add.
//!
//! Usage: `floor 127.0.0.1:PORT DATABASE TENANT` (prints `listening on http://ADDR` once bound).

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::Write;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query};
use axum::http::{Response, StatusCode, header};
use rusqlite::config::DbConfig;
use rusqlite::types::ValueRef;
use tokio::sync::oneshot;

/// The allocator graphsec uses (`src/main.rs`), so the floor does not pay glibc's malloc where
/// graphsec does not.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const TABLE: &str = "cloud_app_security_profiles";
const SELECT: &str = "SELECT * FROM cloud_app_security_profiles WHERE tenant = ?1 AND id = ?2";
const LIST: &str = "SELECT * FROM cloud_app_security_profiles WHERE tenant = ?1 AND platform = ?2 \
    ORDER BY id LIMIT ?3";

thread_local! {
    /// This thread's read connection and the table's column names, JSON-quoted.
    static CONN: RefCell<Option<(rusqlite::Connection, Vec<Vec<u8>>)>> = const { RefCell::new(None) };
}

/// The table's column names, each JSON-quoted, in `SELECT *` order.
fn column_names(conn: &rusqlite::Connection) -> Vec<Vec<u8>> {
    conn.prepare(&format!("SELECT * FROM {TABLE}"))
        .expect("prepare")
        .column_names()
        .map(|n| serde_json::to_vec(n).expect("name"))
        .collect()
}

/// Appends one row as a JSON object keyed by column name.
fn write_row(row: &rusqlite::Row, names: &[Vec<u8>], out: &mut Vec<u8>) -> Option<()> {
    out.push(b'{');
    for (i, name) in names.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(name);
        out.push(b':');
        match row.get_ref(i).ok()? {
            ValueRef::Null | ValueRef::Blob(_) => out.extend_from_slice(b"null"),
            ValueRef::Integer(n) => write!(out, "{n}").ok()?,
            ValueRef::Real(f) => write!(out, "{f}").ok()?,
            ValueRef::Text(t) => {
                serde_json::to_writer(&mut *out, std::str::from_utf8(t).ok()?).ok()?
            }
        }
    }
    out.push(b'}');
    Some(())
}

/// Runs `f` with this thread's read connection, opened on first use.
fn with_reader<T>(
    db: &str,
    f: impl FnOnce(&rusqlite::Connection, &[Vec<u8>]) -> Option<T>,
) -> Option<T> {
    CONN.with(|c| {
        let mut c = c.borrow_mut();
        let (conn, names) = c.get_or_insert_with(|| {
            let conn = rusqlite::Connection::open(db).expect("open database");
            // As graphsec's connections: without it SQLite re-prepares the list statement on
            // every run, because rebinding its `LIMIT ?` expires the plan.
            conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
                .expect("QPSG");
            let names = column_names(&conn);
            (conn, names)
        });
        f(conn, names)
    })
}

fn lookup(db: &str, tenant: &str, id: &str) -> Option<Vec<u8>> {
    with_reader(db, |conn, names| {
        let mut stmt = conn.prepare_cached(SELECT).ok()?;
        let mut rows = stmt.query([tenant, id]).ok()?;
        let row = rows.next().ok()??;
        let mut out = Vec::with_capacity(1024);
        write_row(row, names, &mut out)?;
        Some(out)
    })
}

/// The first `top` rows of `platform` in id order; reads `top + 1`, as a page that must know
/// whether another follows.
fn list(db: &str, tenant: &str, platform: &str, top: i64) -> Option<Vec<u8>> {
    with_reader(db, |conn, names| {
        let mut stmt = conn.prepare_cached(LIST).ok()?;
        let mut rows = stmt
            .query(rusqlite::params![tenant, platform, top + 1])
            .ok()?;
        let mut out = Vec::with_capacity(16 * 1024);
        out.extend_from_slice(b"{\"value\":[");
        let mut n = 0;
        while let Some(row) = rows.next().ok()? {
            if n == top {
                break;
            }
            if n > 0 {
                out.push(b',');
            }
            write_row(row, names, &mut out)?;
            n += 1;
        }
        out.extend_from_slice(b"]}");
        Some(out)
    })
}

/// The fixed profile a POST inserts (the benchmark's create body, as graphsec stores it), then
/// tenant, id, and the creation time three times (created, last modified, version).
const INSERT: &str = "INSERT INTO cloud_app_security_profiles (tenant, id, createdDateTime, \
    lastModifiedDateTime, version, isSigned, name, permissionsRequired, platform, tags, \
    vendorInformation, vendorInformation_provider, vendorInformation_vendor, dynamic) \
    VALUES (?1, ?2, ?3, ?3, ?3, 1, 'bench', 3, 'Windows', '[\"a\",\"b\"]', 1, 'p', 'v', '{}')";

/// What a PATCH sets: the body's `riskScore`, the modified stamp and the version.
const UPDATE: &str = "UPDATE cloud_app_security_profiles SET riskScore = ?3, \
    lastModifiedDateTime = ?4, version = ?4 WHERE tenant = ?1 AND id = ?2 RETURNING *";

/// A write waiting for the writer.
enum Op {
    /// A new row: its id and its creation time (100 ns ticks).
    Insert(String, i64),
    /// A PATCH of `riskScore`: the id, the new value and the modification time.
    Update(String, String, i64),
}

/// A write and where to say it committed: the updated row's JSON for an update (`None` when
/// no row has that id), an empty body for an insert; `Err` when the transaction failed.
type Job = (Op, oneshot::Sender<Result<Option<Vec<u8>>, ()>>);

/// The one writer: takes every write waiting, runs them in one transaction, commits once,
/// then answers them all. Like graphsec's writer it yields while more writes keep arriving,
/// so that on one core a burst of requests shares one commit (one fsync).
fn writer(db: &str, tenant: &str, rx: std::sync::mpsc::Receiver<Job>) {
    let conn = rusqlite::Connection::open(db).expect("open database");
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
        .expect("QPSG");
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .expect("busy timeout");
    conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL")
        .expect("pragmas");
    let names = column_names(&conn);
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        loop {
            std::thread::yield_now();
            let before = batch.len();
            batch.extend(rx.try_iter());
            if batch.len() == before {
                break;
            }
        }
        let answers = (|| -> rusqlite::Result<Vec<Option<Vec<u8>>>> {
            let tx = conn.unchecked_transaction()?;
            let mut answers = Vec::with_capacity(batch.len());
            for (op, _) in &batch {
                answers.push(match op {
                    Op::Insert(id, ticks) => {
                        tx.prepare_cached(INSERT)?
                            .execute(rusqlite::params![tenant, id, ticks])?;
                        Some(Vec::new())
                    }
                    Op::Update(id, risk, ticks) => {
                        let mut stmt = tx.prepare_cached(UPDATE)?;
                        let mut rows = stmt.query(rusqlite::params![tenant, id, risk, ticks])?;
                        match rows.next()? {
                            Some(row) => {
                                let mut out = Vec::with_capacity(1024);
                                write_row(row, &names, &mut out)
                                    .ok_or(rusqlite::Error::InvalidQuery)?;
                                Some(out)
                            }
                            None => None,
                        }
                    }
                });
            }
            tx.commit()?;
            Ok(answers)
        })();
        match answers {
            Ok(answers) => {
                for ((_, reply), answer) in batch.into_iter().zip(answers) {
                    let _ = reply.send(Ok(answer));
                }
            }
            Err(_) => {
                for (_, reply) in batch {
                    let _ = reply.send(Err(()));
                }
            }
        }
    }
}

/// 100 ns ticks since the Unix epoch, graphsec's stored time format.
fn now_ticks() -> i64 {
    std::time::SystemTime::UNIX_EPOCH
        .elapsed()
        .map_or(0, |d| d.as_nanos() / 100) as i64
}

fn json(status: StatusCode, body: impl Into<Body>) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.into())
        .unwrap_or_default()
}

/// Sends a write to the writer and waits for its commit.
async fn submit(writes: &std::sync::mpsc::Sender<Job>, op: Op) -> Result<Option<Vec<u8>>, ()> {
    let (reply, committed) = oneshot::channel();
    writes.send((op, reply)).map_err(|_| ())?;
    committed.await.map_err(|_| ())?
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, db, tenant] = args.as_slice() else {
        eprintln!("usage: floor ADDR DATABASE TENANT");
        std::process::exit(2);
    };
    let (db, tenant): (&'static str, &'static str) = (db.clone().leak(), tenant.clone().leak());
    let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
    println!(
        "listening on http://{}",
        listener.local_addr().expect("addr")
    );
    let (writes, rx) = std::sync::mpsc::channel::<Job>();
    std::thread::spawn(move || writer(db, tenant, rx));
    let creates = writes.clone();
    let create = move || async move {
        let id = uuid::Uuid::now_v7().to_string();
        let t = now_ticks();
        match submit(&creates, Op::Insert(id.clone(), t)).await {
            Ok(_) => json(
                StatusCode::CREATED,
                format!(
                    r#"{{"tenant":"{tenant}","id":"{id}","createdDateTime":{t},"lastModifiedDateTime":{t},"version":{t},"isSigned":1,"name":"bench","permissionsRequired":3,"platform":"Windows","tags":"[\"a\",\"b\"]","vendorInformation":1,"vendorInformation_provider":"p","vendorInformation_vendor":"v","dynamic":"{{}}"}}"#
                ),
            ),
            Err(()) => json(StatusCode::INTERNAL_SERVER_ERROR, "{}"),
        }
    };
    let patch = move |Path(id): Path<String>, body: Bytes| async move {
        let risk = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("riskScore")?.as_str().map(str::to_string));
        let Some(risk) = risk else {
            return json(StatusCode::BAD_REQUEST, "{}");
        };
        match submit(&writes, Op::Update(id, risk, now_ticks())).await {
            Ok(Some(row)) => json(StatusCode::OK, row),
            Ok(None) => json(StatusCode::NOT_FOUND, "{}"),
            Err(()) => json(StatusCode::INTERNAL_SERVER_ERROR, "{}"),
        }
    };
    let collection_get = move |Query(q): Query<HashMap<String, String>>| async move {
        // Only the benchmark's shape: `platform eq 'X'` and `$top`.
        let platform = q.get("$filter").and_then(|f| {
            f.strip_prefix("platform eq '")?
                .strip_suffix('\'')
                .map(str::to_string)
        });
        let top = q.get("$top").and_then(|t| t.parse().ok()).unwrap_or(100);
        let Some(platform) = platform else {
            return json(StatusCode::BAD_REQUEST, "{}");
        };
        match list(db, tenant, &platform, top) {
            Some(body) => json(StatusCode::OK, body),
            None => json(StatusCode::INTERNAL_SERVER_ERROR, "{}"),
        }
    };
    let app = axum::Router::new()
        .route(
            "/beta/security/cloudAppSecurityProfiles",
            axum::routing::post(create).get(collection_get),
        )
        .route(
            "/beta/security/cloudAppSecurityProfiles/{id}",
            axum::routing::get(move |Path(id): Path<String>| async move {
                match lookup(db, tenant, &id) {
                    Some(body) => json(StatusCode::OK, body),
                    None => json(StatusCode::NOT_FOUND, "{}"),
                }
            })
            .patch(patch),
        );
    axum::serve(listener, app).await.expect("serve");
}
