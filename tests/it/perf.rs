//! The query-latency benchmark of docs/PERFORMANCE.md (ignored by default: it needs a release
//! build and a minute or two). Run it with
//!
//! ```sh
//! cargo test --release --test it perf -- --ignored --nocapture
//! ```
//!
//! It seeds 1,000,000 profiles straight into a graphsec data directory with rusqlite (through the
//! crate's own schema and `encode`, so the rows are exactly what the server writes; ingest speed
//! is not what is measured), starts the real server on it, and times list requests over HTTP.
//! `GRAPHSEC_BENCH_DIR=<dir>` keeps the seeded directory between runs; `GRAPHSEC_BENCH_ROWS`
//! changes the row count; `GRAPHSEC_BENCH_ANALYZE=1` runs SQLite's ANALYZE first (`=0` drops
//! the statistics again). It also prints SQLite's `EXPLAIN QUERY PLAN` for each query, built the
//! way `SqliteStore::list` builds it, to show which queries use an index. Nothing here asserts
//! a timing: the output is the result.

use std::path::Path;
use std::time::{Duration, Instant};

use graphsec::odata::query::parse_list_query;
use graphsec::store::compile::{SqlParam, compile_filter, compile_keyset, compile_order_by};
use graphsec::store::schema::{self, Dialect, quote};
use rusqlite::types::Value as Sql;
use serde_json::Value;

use crate::support::{COLLECTION, Server};

#[path = "../../benches/data.rs"]
mod data;

use data::{created_ticks, existing_rows, mix, seed};

fn bind(p: &SqlParam) -> Sql {
    match p {
        SqlParam::Null => Sql::Null,
        SqlParam::Int(i) => Sql::Integer(*i),
        SqlParam::Real(f) => Sql::Real(*f),
        SqlParam::Text(t) => Sql::Text(t.clone()),
        SqlParam::Bool(b) => Sql::Integer(i64::from(*b)),
    }
}

/// `EXPLAIN QUERY PLAN` of the page query `SqliteStore::list` runs for these options (and of
/// its count query with `$count=true`), mirroring its SQL assembly. The real tenant and keyset
/// values are bound: with the statistics ANALYZE gathers, SQLite's plan depends on them.
fn plan(db: &Path, tenant: &str, options: &[(&str, &str)], after: Option<&[Value]>) -> Vec<String> {
    let pairs: Vec<(String, String)> = options
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let q = parse_list_query(data::profiles(), &pairs).expect("options");
    let mut sql = format!(
        "{} WHERE {} = ?1",
        quote(data::profiles().table),
        quote(schema::TENANT_COLUMN)
    );
    let mut params = vec![SqlParam::Text(tenant.into())];
    if let Some(f) = &q.filter {
        let frag = compile_filter(f, Dialect::Sqlite, 2);
        sql.push_str(&format!(" AND ({})", frag.sql));
        params.extend(frag.params);
    }
    let count_sql = format!("SELECT COUNT(*) FROM {sql}");
    let count_params = params.clone();
    if let Some(after) = after {
        let after: Vec<SqlParam> = after
            .iter()
            .map(|v| match v {
                Value::String(t) => SqlParam::Text(t.clone()),
                Value::Number(n) => SqlParam::Int(n.as_i64().expect("integer key")),
                Value::Bool(b) => SqlParam::Bool(*b),
                _ => SqlParam::Null,
            })
            .collect();
        let frag = compile_keyset(
            data::profiles(),
            &q.order_by,
            &after,
            Dialect::Sqlite,
            params.len() + 1,
        )
        .expect("keyset");
        sql.push_str(&format!(" AND ({})", frag.sql));
        params.extend(frag.params);
    }
    let n = params.len();
    let page_sql = format!(
        "SELECT * FROM {sql} ORDER BY {} LIMIT ?{} OFFSET ?{}",
        compile_order_by(data::profiles(), &q.order_by, Dialect::Sqlite),
        n + 1,
        n + 2
    );
    params.push(SqlParam::Int(11));
    params.push(SqlParam::Int(q.skip.unwrap_or(0) as i64));
    let conn = rusqlite::Connection::open(db).expect("open");
    let explain = |sql: &str, params: &[SqlParam]| -> Vec<String> {
        let mut stmt = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .expect("explain");
        stmt.query_map(rusqlite::params_from_iter(params.iter().map(bind)), |r| {
            r.get::<_, String>(3)
        })
        .expect("plan")
        .collect::<Result<Vec<_>, _>>()
        .expect("rows")
    };
    let mut out = explain(&page_sql, &params);
    if q.count {
        out.extend(
            explain(&count_sql, &count_params)
                .into_iter()
                .map(|l| format!("count: {l}")),
        );
    }
    out
}

/// The one tenant of the seeded rows.
fn tenant_of(db: &Path) -> String {
    rusqlite::Connection::open(db)
        .and_then(|c| {
            c.query_row(
                &format!(
                    "SELECT {} FROM {} LIMIT 1",
                    quote(schema::TENANT_COLUMN),
                    quote(data::profiles().table)
                ),
                [],
                |r| r.get(0),
            )
        })
        .expect("tenant")
}

/// The keyset position inside a next link's `$skiptoken`: the payload is base64url JSON
/// `{"v":1,"q":..,"k":[..]}` before the signature. (Reading it is for EXPLAIN only; clients
/// treat the token as opaque.)
fn token_keys(next: &str) -> Vec<Value> {
    use base64::Engine;
    let token = reqwest::Url::parse(next)
        .expect("url")
        .query_pairs()
        .find(|(k, _)| k == "$skiptoken")
        .map(|(_, v)| v.into_owned())
        .expect("$skiptoken");
    let payload = token.split('.').next().expect("payload");
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64");
    let v: Value = serde_json::from_slice(&json).expect("json");
    v["k"].as_array().expect("keys").clone()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at.min(sorted.len() - 1)]
}

/// Times `n` GETs of the URLs `url(i)` (after a warm-up); returns (p50, p95, samples). A
/// request slower than 50 ms (a full scan) gets 20 samples instead, to keep the run short.
async fn time<F: Fn(usize) -> String>(s: &Server, n: usize, url: F) -> (Duration, Duration, usize) {
    let mut slow = false;
    for i in 0..20 {
        let started = Instant::now();
        let r = s.client.get(url(i + n)).send().await.expect("warm-up");
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
        if started.elapsed() > Duration::from_millis(50) {
            slow = true;
            break;
        }
    }
    let n = if slow { 20 } else { n };
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let u = url(i);
        let started = Instant::now();
        let r = s.client.get(&u).send().await.expect("request");
        let status = r.status();
        let body = r.bytes().await.expect("body");
        samples.push(started.elapsed());
        assert_eq!(status, 200, "{u}: {}", String::from_utf8_lossy(&body));
    }
    samples.sort();
    (percentile(&samples, 0.5), percentile(&samples, 0.95), n)
}

fn list_url(s: &Server, options: &[(&str, &str)]) -> String {
    let mut u = reqwest::Url::parse(&s.url(COLLECTION)).expect("url");
    u.query_pairs_mut().extend_pairs(options);
    u.to_string()
}

/// The URL of page `n` (1-based) of a listing, by following next links.
async fn page_url(s: &Server, options: &[(&str, &str)], n: usize) -> String {
    let mut url = list_url(s, options);
    for _ in 1..n {
        let v: Value = s
            .client
            .get(&url)
            .send()
            .await
            .expect("page")
            .json()
            .await
            .expect("json");
        url = v["@odata.nextLink"]
            .as_str()
            .expect("next link")
            .to_string();
    }
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: cargo test --release --test it perf -- --ignored --nocapture"]
async fn perf_query_latency_on_a_million_profiles() {
    let rows: u64 = std::env::var("GRAPHSEC_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let temp = tempfile::tempdir().expect("temp");
    let dir = std::env::var("GRAPHSEC_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| temp.path().to_path_buf());
    let db = dir.join("graphsec.db");
    let existing = existing_rows(&db);
    if existing < rows {
        // One profile through the API creates the schema and tells us the tenant the harness's
        // client maps to (with authentication, the token's tenant).
        let mut s = Server::start_in(&dir, &[]);
        s.create(&serde_json::json!({"name": "probe"})).await;
        s.kill9();
        let tenant = tenant_of(&db);
        rusqlite::Connection::open(&db)
            .and_then(|c| {
                c.execute(
                    &format!("DELETE FROM {}", quote(data::profiles().table)),
                    [],
                )
            })
            .expect("clear");
        seed(&db, &[&tenant], rows);
    }
    let tenant = tenant_of(&db);
    // The server never runs ANALYZE; GRAPHSEC_BENCH_ANALYZE=1 measures with statistics (and
    // `=0` drops them again), to show what they change in the planner's choices.
    match std::env::var("GRAPHSEC_BENCH_ANALYZE").as_deref() {
        Ok("1") => rusqlite::Connection::open(&db)
            .and_then(|c| c.execute_batch("ANALYZE"))
            .expect("analyze"),
        Ok("0") => rusqlite::Connection::open(&db)
            .and_then(|c| {
                c.execute_batch(
                    "DROP TABLE IF EXISTS sqlite_stat1; DROP TABLE IF EXISTS sqlite_stat4",
                )
            })
            .expect("drop stats"),
        _ => {}
    }
    let s = Server::start_in(&dir, &[]);
    let n = 200;
    let last = created_ticks(rows - 1);
    let recent = graphsec::model::edm::format_datetime(last - 7 * 86_400 * 10_000_000);
    let recent_filter_solaris = format!("platform eq 'Solaris' and createdDateTime gt {recent}");
    let recent_filter_linux = format!("platform eq 'Linux' and createdDateTime gt {recent}");
    let name_of = |i: usize| format!("name eq 'profile {:07}'", mix(i as u64) % rows);

    // (label, options for EXPLAIN, keyset position of a next link, URL generator)
    type UrlFn<'a> = Box<dyn Fn(usize) -> String + 'a>;
    type Case<'a> = (String, Vec<(String, String)>, Option<Vec<Value>>, UrlFn<'a>);
    let mut cases: Vec<Case> = Vec::new();
    let opts = |o: &[(&str, &str)]| -> Vec<(String, String)> {
        o.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    cases.push((
        "$filter=name eq '<random>'&$top=10".into(),
        opts(&[("$filter", &name_of(0)), ("$top", "10")]),
        None,
        Box::new(|i| list_url(&s, &[("$filter", &name_of(i)), ("$top", "10")])),
    ));
    for f in [&recent_filter_solaris, &recent_filter_linux] {
        let o = [("$filter", f.as_str()), ("$top", "10")];
        let url = list_url(&s, &o);
        cases.push((
            format!("$filter={f}&$top=10"),
            opts(&o),
            None,
            Box::new(move |_| url.clone()),
        ));
    }
    let o = [("$orderby", "createdDateTime desc"), ("$top", "10")];
    let url = list_url(&s, &o);
    cases.push((
        "$orderby=createdDateTime desc&$top=10".into(),
        opts(&o),
        None,
        Box::new(move |_| url.clone()),
    ));
    for o in [
        vec![("$top", "10")],
        vec![("$orderby", "createdDateTime desc"), ("$top", "10")],
        vec![
            ("$filter", "platform eq 'Linux'"),
            ("$orderby", "name"),
            ("$top", "10"),
        ],
    ] {
        let url = page_url(&s, &o, 50).await;
        let label = format!(
            "page 50 via nextLink of {}",
            o.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("&")
        );
        let after = token_keys(&url);
        cases.push((label, opts(&o), Some(after), Box::new(move |_| url.clone())));
    }
    for o in [
        vec![
            ("$filter", "platform eq 'Solaris'"),
            ("$count", "true"),
            ("$top", "10"),
        ],
        vec![
            ("$filter", "publisher eq 'publisher 42'"),
            ("$count", "true"),
            ("$top", "10"),
        ],
        vec![
            ("$filter", "platform eq 'Linux'"),
            ("$count", "true"),
            ("$top", "10"),
        ],
        // Contrasts: an OFFSET, an unindexed selective filter, a function (no index can help).
        vec![("$skip", "500000"), ("$top", "10")],
        vec![
            ("$filter", "riskScore eq '42' and isSigned eq true"),
            ("$top", "10"),
        ],
        vec![
            ("$filter", "vendorInformation/provider eq 'Nobody'"),
            ("$top", "10"),
        ],
        vec![
            ("$filter", "startswith(name, 'profile 09999')"),
            ("$top", "10"),
        ],
    ] {
        let url = list_url(&s, &o);
        let label = o
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        cases.push((label, opts(&o), None, Box::new(move |_| url.clone())));
    }
    let count_url = s.url(&format!("{COLLECTION}/$count"));
    let mut results = Vec::new();
    for (label, options, after, url) in &cases {
        let refs: Vec<(&str, &str)> = options
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let plan = plan(&db, &tenant, &refs, after.as_deref());
        let (p50, p95, k) = time(&s, n, url).await;
        results.push((label.clone(), p50, p95, k, plan));
    }
    let (p50, p95, k) = time(&s, n, |_| count_url.clone()).await;
    let plan = vec!["COUNT(*) over the tenant's primary-key range".into()];
    results.push(("/$count (no filter)".into(), p50, p95, k, plan));

    println!("\n| request | p50 | p95 | n | SQLite plan |\n|---|---|---|---|---|");
    for (label, p50, p95, k, plan) in &results {
        println!(
            "| `{}` | {:.2} ms | {:.2} ms | {k} | {} |",
            label.replace('|', "\\|"),
            p50.as_secs_f64() * 1000.0,
            p95.as_secs_f64() * 1000.0,
            plan.join("; ")
        );
    }
}
