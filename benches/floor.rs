//! The benchmark's floor: a bare axum server over a graphsec SQLite database. `GET …/{id}`
//! answers the row of that id (one prepared statement per thread, the table's own
//! `(tenant, id)` key), serialized as JSON by column name. `POST …` inserts one fixed profile
//! row with a fresh time-ordered id (UUIDv7, as graphsec makes them) into the same table, with
//! all of its indexes, and answers 201 with the row only after its commit: one writer thread
//! groups the inserts waiting for it into one transaction per commit (WAL, `synchronous=FULL`,
//! as graphsec). No authentication, no OData, no validation, no envelope beyond the row: what an
//! axum + SQLite point lookup or durable insert costs on this machine. `scripts/bench` runs it
//! beside the ceiling for GET by id and POST, so the gap between graphsec and the ceiling
//! splits into what SQLite itself costs and what graphsec's layers add.
//!
//! Usage: `floor 127.0.0.1:PORT DATABASE TENANT` (prints `listening on http://ADDR` once bound).

use std::cell::RefCell;
use std::io::Write;

use axum::body::Body;
use axum::extract::Path;
use axum::http::{Response, StatusCode, header};
use rusqlite::types::ValueRef;
use tokio::sync::oneshot;

const SELECT: &str = "SELECT * FROM cloud_app_security_profiles WHERE tenant = ?1 AND id = ?2";

thread_local! {
    /// This thread's connection and the table's column names, JSON-quoted.
    static CONN: RefCell<Option<(rusqlite::Connection, Vec<Vec<u8>>)>> = const { RefCell::new(None) };
}

fn lookup(db: &str, tenant: &str, id: &str) -> Option<Vec<u8>> {
    CONN.with(|c| {
        let mut c = c.borrow_mut();
        let (conn, names) = c.get_or_insert_with(|| {
            let conn = rusqlite::Connection::open(db).expect("open database");
            let names = conn
                .prepare(SELECT)
                .expect("prepare")
                .column_names()
                .map(|n| serde_json::to_vec(n).expect("name"))
                .collect();
            (conn, names)
        });
        let mut stmt = conn.prepare_cached(SELECT).ok()?;
        let mut rows = stmt.query([tenant, id]).ok()?;
        let row = rows.next().ok()??;
        let mut out = Vec::with_capacity(1024);
        out.push(b'{');
        for (i, name) in names.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(name);
            out.push(b':');
            match row.get_ref(i).ok()? {
                ValueRef::Null => out.extend_from_slice(b"null"),
                ValueRef::Integer(n) => write!(out, "{n}").ok()?,
                ValueRef::Real(f) => write!(out, "{f}").ok()?,
                ValueRef::Text(t) => {
                    serde_json::to_writer(&mut out, std::str::from_utf8(t).ok()?).ok()?
                }
                ValueRef::Blob(_) => out.extend_from_slice(b"null"),
            }
        }
        out.push(b'}');
        Some(out)
    })
}

/// The fixed profile a POST inserts (the benchmark's create body, as graphsec stores it), then
/// tenant, id, and the creation time three times (created, last modified, version).
const INSERT: &str = "INSERT INTO cloud_app_security_profiles (tenant, id, createdDateTime, \
    lastModifiedDateTime, version, isSigned, name, permissionsRequired, platform, tags, \
    vendorInformation, vendorInformation_provider, vendorInformation_vendor, dynamic) \
    VALUES (?1, ?2, ?3, ?3, ?3, 1, 'bench', 3, 'Windows', '[\"a\",\"b\"]', 1, 'p', 'v', '{}')";

/// An insert waiting for the writer: its id, its creation time, and where to say it committed.
type Insert = (String, i64, oneshot::Sender<bool>);

/// The one writer: takes every insert waiting, runs them in one transaction, commits once,
/// then answers them all. Like graphsec's writer it yields while more inserts keep arriving,
/// so that on one core a burst of requests shares one commit (one fsync).
fn writer(db: &str, tenant: &str, rx: std::sync::mpsc::Receiver<Insert>) {
    let conn = rusqlite::Connection::open(db).expect("open database");
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .expect("busy timeout");
    conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL")
        .expect("pragmas");
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
        let ok = (|| -> rusqlite::Result<()> {
            let tx = conn.unchecked_transaction()?;
            let mut stmt = tx.prepare_cached(INSERT)?;
            for (id, ticks, _) in &batch {
                stmt.execute(rusqlite::params![tenant, id, ticks])?;
            }
            drop(stmt);
            tx.commit()
        })()
        .is_ok();
        for (_, _, reply) in batch {
            let _ = reply.send(ok);
        }
    }
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
    let (inserts, rx) = std::sync::mpsc::channel::<Insert>();
    std::thread::spawn(move || writer(db, tenant, rx));
    let create = move || {
        let inserts = inserts.clone();
        async move {
            let id = uuid::Uuid::now_v7().to_string();
            // 100 ns ticks since the Unix epoch, graphsec's stored time format.
            let t = std::time::SystemTime::UNIX_EPOCH
                .elapsed()
                .map_or(0, |d| d.as_nanos() / 100) as i64;
            let (reply, committed) = oneshot::channel();
            let ok = inserts.send((id.clone(), t, reply)).is_ok() && committed.await == Ok(true);
            let (status, body) = if ok {
                (
                    StatusCode::CREATED,
                    format!(
                        r#"{{"tenant":"{tenant}","id":"{id}","createdDateTime":{t},"lastModifiedDateTime":{t},"version":{t},"isSigned":1,"name":"bench","permissionsRequired":3,"platform":"Windows","tags":"[\"a\",\"b\"]","vendorInformation":1,"vendorInformation_provider":"p","vendorInformation_vendor":"v","dynamic":"{{}}"}}"#
                    ),
                )
            } else {
                (StatusCode::INTERNAL_SERVER_ERROR, "{}".to_string())
            };
            Response::builder()
                .status(status)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body))
                .unwrap_or_default()
        }
    };
    let app = axum::Router::new()
        .route(
            "/beta/security/cloudAppSecurityProfiles",
            axum::routing::post(create),
        )
        .route(
            "/beta/security/cloudAppSecurityProfiles/{id}",
            axum::routing::get(move |Path(id): Path<String>| async move {
                let (status, body) = match lookup(db, tenant, &id) {
                    Some(body) => (StatusCode::OK, body),
                    None => (StatusCode::NOT_FOUND, b"{}".to_vec()),
                };
                Response::builder()
                    .status(status)
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from(body))
                    .unwrap_or_default()
            }),
        );
    axum::serve(listener, app).await.expect("serve");
}
