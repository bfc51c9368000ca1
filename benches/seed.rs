//! The seeder of `scripts/bench`: creates a graphsec data directory holding `ROWS` profiles
//! spread over a few tenants (the first, the one the benchmark's token names, gets 7 in 10), and
//! writes a sample of the first tenant's ids (one per line) for the wrk scripts.
//!
//! Usage: `seed DATA_DIR ROWS TENANTS(comma-separated) IDS_FILE`. A directory that already holds
//! at least `ROWS` profiles is left as it is (only the id file is rewritten).

mod data;

use std::io::Write;
use std::path::PathBuf;

use graphsec::store::schema::quote;
use graphsec::store::sqlite::{Location, SqliteStore};

/// How many ids the wrk scripts pick from.
const SAMPLE: u64 = 20_000;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, rows, tenants, ids] = args.as_slice() else {
        eprintln!("usage: seed DATA_DIR ROWS TENANTS IDS_FILE");
        std::process::exit(2);
    };
    let dir = PathBuf::from(dir);
    let rows: u64 = rows.parse().expect("ROWS is a number");
    let tenants: Vec<&str> = tenants.split(',').collect();
    std::fs::create_dir_all(&dir).expect("data dir");
    let db = SqliteStore::database_path(&dir);
    let existing = data::existing_rows(&db);
    if existing < rows {
        // The store creates the schema (and the paging secret) exactly as `graphsec serve` does.
        drop(SqliteStore::open(&Location::File(dir.clone())).expect("open store"));
        rusqlite::Connection::open(&db)
            .and_then(|c| {
                c.execute(
                    &format!("DELETE FROM {}", quote(data::profiles().table)),
                    [],
                )
            })
            .expect("clear");
        data::seed(&db, &tenants, rows);
    } else {
        eprintln!("{} already holds {existing} profiles", db.display());
    }
    let mut out = std::io::BufWriter::new(std::fs::File::create(ids).expect("ids file"));
    let mut written = 0;
    for k in 0.. {
        let i = data::mix(k ^ 0x5eed) % rows;
        if data::tenant_index(i, tenants.len()) == 0 {
            writeln!(out, "{}", data::id_of(i)).expect("write");
            written += 1;
            if written == SAMPLE.min(rows / 2) {
                break;
            }
        }
    }
    out.flush().expect("flush");
}
