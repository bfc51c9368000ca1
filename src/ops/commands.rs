//! The `graphsec export` and `graphsec import` commands: open the store of a data directory
//! (safe beside a running server: WAL readers, one writer at a time with a busy timeout), or the
//! PostgreSQL database of `--database-url`, and run [`transfer`](super::transfer).

use std::io::IsTerminal;
use std::sync::Arc;

use super::transfer::{self, ImportOptions};
use crate::config::{ExportArgs, ImportArgs};
use crate::model::validate;
use crate::store::Store;
use crate::store::postgres::{DatabaseArgs, PostgresStore};
use crate::store::sqlite::{Location, SqliteStore};

async fn open(dir: &std::path::Path, database: &DatabaseArgs) -> Result<Arc<dyn Store>, String> {
    if let Some(url) = &database.database_url {
        return Ok(Arc::new(PostgresStore::open(database, url).await?));
    }
    Ok(Arc::new(SqliteStore::open(&Location::File(
        dir.to_path_buf(),
    ))?))
}

/// `graphsec export`.
pub async fn export(args: &ExportArgs) -> Result<(), String> {
    let store = open(&args.data_dir, &args.database).await?;
    let n = match &args.out {
        Some(path) => {
            let file = std::fs::File::create(path)
                .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
            let mut out = std::io::BufWriter::new(file);
            let n = transfer::export(store.as_ref(), args.tenant.as_deref(), &mut out).await?;
            out.into_inner()
                .map_err(|e| e.to_string())?
                .sync_all()
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            n
        }
        None => {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            transfer::export(store.as_ref(), args.tenant.as_deref(), &mut out).await?
        }
    };
    tracing::info!(profiles = n, "export finished");
    Ok(())
}

/// `graphsec import`; an error when a line stopped it or some lines were refused.
pub async fn import(args: &ImportArgs) -> Result<(), String> {
    let store = open(&args.data_dir, &args.database).await?;
    let opts = ImportOptions {
        tenant: args.tenant.clone(),
        on_error: args.on_error,
        chunk_size: args.chunk_size,
        validation: validate::Options {
            strict: args.strict_properties,
            // An import restores what an export wrote, whatever a server's limit.
            max_entity_bytes: 0,
        },
        bar: std::io::stderr().is_terminal(),
    };
    let started = std::time::Instant::now();
    let report = transfer::import_path(store, &args.file, &opts).await?;
    let secs = started.elapsed().as_secs_f64().max(0.001);
    tracing::info!(
        lines = report.lines,
        imported = report.imported,
        rejected = report.rejected,
        seconds = format!("{secs:.1}"),
        per_second = (report.imported as f64 / secs) as u64,
        "import finished"
    );
    if let Some(line) = report.stopped_at {
        return Err(format!(
            "stopped at line {line} (--on-error stop): the chunk containing it was not written; \
             fix the line and rerun (imports are idempotent)"
        ));
    }
    if report.rejected > 0 {
        return Err(format!("{} line(s) were refused", report.rejected));
    }
    Ok(())
}
