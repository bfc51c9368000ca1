//! The benchmark data set, shared by `tests/it/perf.rs` (query latency) and `benches/seed.rs`
//! (the `scripts/bench` seeder): reproducible profiles built from their row number and written
//! straight into a graphsec SQLite database through the crate's own `schema::encode`, so the
//! rows are exactly what the server writes (ingest speed is not what these benchmarks measure).

use std::path::Path;
use std::time::Instant;

use graphsec::model::edm::parse_datetime;
use graphsec::model::entity::EntityType;
use graphsec::model::record::{Record, Value as V};
use graphsec::store::schema::{self, Cell, Dialect, quote};
use rusqlite::types::Value as Sql;

pub const PLATFORMS: &[&str] = &[
    "Windows", "macOS", "Linux", "Android", "iOS", "ChromeOS", "Web", "Other",
];
const PROVIDERS: &[&str] = &["MCAS", "Microsoft", "Contoso", "Fabrikam", "Tailspin"];
/// Seeded rows are created from this instant on, 30 s apart (about a year for 1M rows).
const BASE: &str = "2025-11-25T00:00:00Z";

pub fn mix(mut x: u64) -> u64 {
    // splitmix64: reproducible pseudo-random values from the row number.
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

pub fn created_ticks(i: u64) -> i64 {
    parse_datetime(BASE).expect("base")
        + (i as i64) * 30 * 10_000_000
        + (mix(i) % 300_000_000) as i64
}

/// The id of row `i` (32 hex digits, random order).
pub fn id_of(i: u64) -> String {
    let h = mix(i);
    format!("{:016x}{:016x}", h, mix(h))
}

/// Which of `tenants` row `i` belongs to: the first tenant gets 7 rows in 10, the others share
/// the rest (so the measured tenant is large and its neighbours are in the same indexes).
pub fn tenant_index(i: u64, tenants: usize) -> usize {
    if tenants <= 1 || i % 10 < 7 {
        0
    } else {
        1 + (i as usize / 10) % (tenants - 1)
    }
}

/// The set the benchmarks seed.
pub fn profiles() -> &'static EntityType {
    graphsec::model::catalog()
        .set("cloudAppSecurityProfiles")
        .expect("cloudAppSecurityProfiles")
}

/// One seeded profile. 1 row in 1000 has the rare platform 'Solaris' (a selective filter).
pub fn record(i: u64) -> Record {
    let set = |values: &mut Vec<V>, name: &str, v: V| {
        let at = profiles().index_of(name).expect("property");
        values[at] = v;
    };
    let h = mix(i);
    let mut values = vec![V::Null; profiles().properties.len()];
    let s = |t: String| V::String(t);
    set(&mut values, "id", s(id_of(i)));
    set(&mut values, "name", s(format!("profile {i:07}")));
    let platform = if i % 1000 == 1 {
        "Solaris"
    } else {
        PLATFORMS[(h % 8) as usize]
    };
    set(&mut values, "platform", s(platform.into()));
    let created = created_ticks(i);
    set(&mut values, "createdDateTime", V::DateTime(created));
    set(
        &mut values,
        "lastModifiedDateTime",
        V::DateTime(created + (h % 864_000_000_000) as i64),
    );
    set(
        &mut values,
        "publisher",
        s(format!("publisher {}", h % 5000)),
    );
    set(
        &mut values,
        "azureTenantId",
        s(format!("tenant-{:04}", h % 1000)),
    );
    set(&mut values, "riskScore", s((h % 101).to_string()));
    set(&mut values, "isSigned", V::Bool(h.is_multiple_of(3)));
    set(&mut values, "permissionsRequired", V::Enum((h % 6) as i64));
    set(
        &mut values,
        "tags",
        V::Collection(vec![s(format!("t{}", h % 20)), s(format!("t{}", h % 7))]),
    );
    set(
        &mut values,
        "vendorInformation",
        V::Complex(vec![
            s(PROVIDERS[(h % 5) as usize].into()),
            s("1.0".into()),
            V::Null,
            s("Microsoft".into()),
        ]),
    );
    Record {
        entity: profiles(),
        values,
        dynamic: serde_json::Map::new(),
        version: 1,
    }
}

fn to_sql(c: Cell) -> Sql {
    match c {
        Cell::Null => Sql::Null,
        Cell::Int(i) => Sql::Integer(i),
        Cell::Real(f) => Sql::Real(f),
        Cell::Bool(b) => Sql::Integer(i64::from(b)),
        Cell::Text(t) => Sql::Text(t),
    }
}

/// Seeds `rows` profiles spread over `tenants` (see [`tenant_index`]) into an existing graphsec
/// database (schema created by the server); the secondary indexes are dropped during the load
/// and rebuilt after.
/// How many profiles the database file at `db` already holds (0 when it or its table is missing),
/// so a seeded data directory is reused instead of seeded again.
pub fn existing_rows(db: &Path) -> u64 {
    rusqlite::Connection::open(db)
        .and_then(|c| {
            c.query_row(
                &format!("SELECT COUNT(*) FROM {}", quote(profiles().table)),
                [],
                |r| r.get::<_, i64>(0),
            )
        })
        .map_or(0, |n| n as u64)
}

pub fn seed(db: &Path, tenants: &[&str], rows: u64) {
    let started = Instant::now();
    let mut conn = rusqlite::Connection::open(db).expect("open");
    conn.execute_batch("PRAGMA synchronous=OFF")
        .expect("pragma");
    let ddl = schema::create_ddl(profiles(), Dialect::Sqlite);
    let indexes: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .expect("indexes");
    for ix in &indexes {
        conn.execute_batch(&format!("DROP INDEX {}", quote(ix)))
            .expect("drop index");
    }
    let sql = schema::insert_sql(profiles(), Dialect::Sqlite);
    let tx = conn.transaction().expect("tx");
    {
        let mut stmt = tx.prepare(&sql).expect("insert");
        for i in 0..rows {
            let tenant = tenants[tenant_index(i, tenants.len())];
            let mut cells = vec![Sql::Text(tenant.to_string())];
            cells.extend(schema::encode(&record(i)).into_iter().map(to_sql));
            stmt.execute(rusqlite::params_from_iter(cells))
                .expect("row");
        }
    }
    tx.commit().expect("commit");
    let loaded = started.elapsed();
    for stmt in ddl.iter().filter(|s| s.starts_with("CREATE INDEX")) {
        conn.execute_batch(stmt).expect("create index");
    }
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .expect("checkpoint");
    eprintln!(
        "seeded {rows} rows in {loaded:.1?}, indexes rebuilt, total {:.1?}",
        started.elapsed()
    );
}
