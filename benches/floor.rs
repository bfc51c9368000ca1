//! The benchmark's floor for reads: a bare axum server that answers `GET …/{id}` with the row
//! of that id read from a graphsec SQLite database (one prepared statement per thread, the
//! table's own `(tenant, id)` key), serialized as JSON by column name. No authentication, no
//! OData, no envelope beyond the row: what an axum + SQLite point lookup costs on this machine.
//! `scripts/bench` runs it beside the ceiling for GET by id, so the gap between graphsec and the
//! ceiling splits into what the lookup itself costs and what graphsec's layers add.
//!
//! Usage: `floor 127.0.0.1:PORT DATABASE TENANT` (prints `listening on http://ADDR` once bound).

use std::cell::RefCell;
use std::io::Write;

use axum::body::Body;
use axum::extract::Path;
use axum::http::{Response, StatusCode, header};
use rusqlite::types::ValueRef;

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
    let app = axum::Router::new().route(
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
