//! NDJSON export and import: one entity a line, as the Graph API serializes it, plus the
//! `@graphsec.tenant` annotation (an instance annotation, so it can never collide with a dynamic
//! property and the API's own validation ignores it) and, for every set but the default one
//! ([`crate::model::catalog::Catalog::default_set`], `cloudAppSecurityProfiles`, so files
//! written before the family was served import unchanged), `@graphsec.set`. Server timestamps
//! travel with the line.
//!
//! Import validates every line with the API's create rules (`model::validate`), keeps the line's
//! `createdDateTime`/`lastModifiedDateTime`, and writes chunks through
//! [`Store::import_chunk`]: a chunk is one transaction, and a (tenant, id) that exists is
//! replaced, so a crashed import is resumed by running it again.

use std::io::{BufRead, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value as Json};

use crate::model::edm::{self, unique_ticks};
use crate::model::entity::{EntityType, Managed};
use crate::model::record::{Record, Value};
use crate::model::validate::{self, Mode};
use crate::store::{Store, StoreError, TenantRecord};

/// The annotation that names a line's tenant.
pub const TENANT_ANNOTATION: &str = "@graphsec.tenant";
/// The annotation that names a line's entity set (absent: the default set).
pub const SET_ANNOTATION: &str = "@graphsec.set";
/// Lines per import transaction unless told otherwise.
pub const DEFAULT_CHUNK: usize = 5000;
/// Profiles read from the store per export page.
const EXPORT_PAGE: usize = 1000;
/// How often a non-terminal import logs its progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// One entity as an NDJSON line (without the newline).
pub fn to_line(row: &TenantRecord) -> String {
    let mut m = Map::new();
    m.insert(TENANT_ANNOTATION.into(), Json::String(row.tenant.clone()));
    let entity = row.record.entity;
    if !std::ptr::eq(entity, crate::model::catalog().default_set()) {
        m.insert(
            SET_ANNOTATION.into(),
            Json::String(entity.collection.into()),
        );
    }
    m.extend(row.record.to_json(None));
    Json::Object(m).to_string()
}

/// Writes every entity of every served set (of one tenant) to `out`, set by set in the
/// metadata's order, each ordered by tenant and id; returns how many.
pub async fn export(
    store: &dyn Store,
    tenant: Option<&str>,
    out: &mut dyn Write,
) -> Result<u64, String> {
    let mut n = 0u64;
    for entity in crate::model::catalog().served() {
        let mut after = None;
        loop {
            let page = store
                .export_page(entity, tenant, after.take(), EXPORT_PAGE)
                .await
                .map_err(|e| e.to_string())?;
            for row in &page {
                writeln!(out, "{}", to_line(row)).map_err(|e| format!("cannot write: {e}"))?;
            }
            n += page.len() as u64;
            match page.last() {
                Some(last) if page.len() == EXPORT_PAGE => {
                    after = Some((last.tenant.clone(), last.record.id().to_string()));
                }
                _ => break,
            }
        }
    }
    out.flush().map_err(|e| format!("cannot write: {e}"))?;
    Ok(n)
}

fn check_tenant(t: &str) -> Result<(), String> {
    if t.is_empty() || t.len() > 256 || t.chars().any(char::is_control) {
        return Err(format!(
            "invalid tenant {t:?} (1 to 256 bytes, no control characters)"
        ));
    }
    Ok(())
}

/// A server-managed timestamp carried by the line (already type-checked by validation).
fn timestamp(entity: &EntityType, obj: &Map<String, Json>, which: Managed) -> Option<i64> {
    let name = entity.properties[entity.managed_index(which)?].name;
    obj.get(name)
        .and_then(Json::as_str)
        .and_then(|s| edm::parse_datetime(s).ok())
}

/// Parses and validates one line into the record to store.
pub fn parse_line(
    line: &str,
    default_tenant: Option<&str>,
    opts: validate::Options,
) -> Result<TenantRecord, String> {
    let json: Json = serde_json::from_str(line).map_err(|e| format!("not valid JSON: {e}"))?;
    let catalog = crate::model::catalog();
    let entity = match json.get(SET_ANNOTATION) {
        None => catalog.default_set(),
        Some(Json::String(name)) => catalog
            .set(name)
            .filter(|e| e.served)
            .ok_or_else(|| format!("{SET_ANNOTATION} '{name}' is not a served entity set"))?,
        Some(_) => return Err(format!("{SET_ANNOTATION} must be a string")),
    };
    let changes =
        validate::changes_from_json(entity, &json, Mode::Create, opts).map_err(|e| e.0)?;
    let Json::Object(obj) = &json else {
        return Err("not a JSON object".into());
    };
    let tenant = match obj.get(TENANT_ANNOTATION) {
        Some(Json::String(t)) => t.clone(),
        Some(_) => return Err(format!("{TENANT_ANNOTATION} must be a string")),
        None => default_tenant
            .ok_or_else(|| format!("no {TENANT_ANNOTATION} on the line and no --tenant given"))?
            .to_string(),
    };
    check_tenant(&tenant)?;
    let id = changes
        .requested_id()
        .ok_or("no id: imported profiles need one (imports are idempotent by tenant and id)")?
        .to_string();
    // A fresh version per import, like any write: ETags never repeat.
    let now = unique_ticks();
    let created = timestamp(entity, obj, Managed::Created).unwrap_or(now);
    let modified = timestamp(entity, obj, Managed::Modified).unwrap_or(created);
    let mut record = Record::create(changes, id, now)?;
    if let Some(i) = entity.managed_index(Managed::Created) {
        record.values[i] = Value::DateTime(created);
    }
    if let Some(i) = entity.managed_index(Managed::Modified) {
        record.values[i] = Value::DateTime(modified);
    }
    Ok(TenantRecord { tenant, record })
}

/// What to do with a line that does not validate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnError {
    /// Report it and go on with the next line.
    Continue,
    /// Report it and stop; its chunk is not written.
    Stop,
}

/// How to import.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// The tenant of lines without `@graphsec.tenant`.
    pub tenant: Option<String>,
    pub on_error: OnError,
    /// Lines per transaction.
    pub chunk_size: usize,
    pub validation: validate::Options,
    /// Draw a progress bar (on a terminal) instead of periodic log lines.
    pub bar: bool,
}

/// How an import went.
#[derive(Debug, Clone, Default)]
pub struct ImportReport {
    /// Lines read (blank lines included).
    pub lines: u64,
    /// Profiles written.
    pub imported: u64,
    /// Lines refused.
    pub rejected: u64,
    /// The line that stopped the import (`--on-error stop`).
    pub stopped_at: Option<u64>,
}

/// Where an import's messages go: above the progress bar when there is one, else to the log.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    last_log: Instant,
    started: Instant,
}

impl Progress {
    fn new(bar: bool, total_bytes: Option<u64>) -> Progress {
        let bar = bar.then(|| {
            let b = indicatif::ProgressBar::new(total_bytes.unwrap_or(0));
            let style = if total_bytes.is_some() {
                "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({eta}) {msg}"
            } else {
                "{spinner} [{elapsed_precise}] {bytes} {msg}"
            };
            if let Ok(s) = indicatif::ProgressStyle::with_template(style) {
                b.set_style(s);
            }
            b
        });
        Progress {
            bar,
            last_log: Instant::now(),
            started: Instant::now(),
        }
    }

    fn bad_line(&self, n: u64, why: &str) {
        let msg = format!("line {n}: {why}");
        match &self.bar {
            Some(b) => b.println(msg),
            None => tracing::warn!("{msg}"),
        }
    }

    fn update(&mut self, bytes: u64, report: &ImportReport) {
        match &self.bar {
            Some(b) => {
                b.set_position(bytes);
                b.set_message(format!(
                    "{} imported, {} rejected",
                    report.imported, report.rejected
                ));
            }
            None if self.last_log.elapsed() >= PROGRESS_EVERY => {
                self.last_log = Instant::now();
                let secs = self.started.elapsed().as_secs_f64().max(0.001);
                tracing::info!(
                    lines = report.lines,
                    imported = report.imported,
                    rejected = report.rejected,
                    per_second = (report.imported as f64 / secs) as u64,
                    "import progress"
                );
            }
            None => {}
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// The chunk being committed while the next one is parsed.
/// A chunk being written: its task, its row count and the input lines it came from.
type InFlight = Option<(
    tokio::task::JoinHandle<Result<(), StoreError>>,
    u64,
    std::ops::RangeInclusive<u64>,
)>;

/// Why a chunk could not be written, naming its input lines (a chunk is one transaction, so
/// none of those lines was written; earlier chunks were).
fn chunk_failed(lines: &std::ops::RangeInclusive<u64>, e: &StoreError) -> String {
    format!(
        "cannot write lines {}-{} (one transaction: none of them was written, the lines before \
         were): {e}",
        lines.start(),
        lines.end()
    )
}

async fn settle(in_flight: &mut InFlight, report: &mut ImportReport) -> Result<(), String> {
    if let Some((task, n, lines)) = in_flight.take() {
        task.await
            .map_err(|e| format!("import task failed: {e}"))?
            .map_err(|e| chunk_failed(&lines, &e))?;
        report.imported += n;
    }
    Ok(())
}

/// Imports NDJSON from `input`. Bad lines are reported by number; `--on-error stop` ends the
/// import at the first one without writing any of its chunk.
pub async fn import(
    store: Arc<dyn Store>,
    mut input: impl BufRead,
    total_bytes: Option<u64>,
    opts: &ImportOptions,
) -> Result<ImportReport, String> {
    let mut report = ImportReport::default();
    let mut progress = Progress::new(opts.bar, total_bytes);
    let chunk_size = opts.chunk_size.max(1);
    let mut chunk: Vec<TenantRecord> = Vec::with_capacity(chunk_size);
    let mut in_flight: InFlight = None;
    let mut buf = Vec::new();
    let mut bytes = 0u64;
    // The input line of the current chunk's first row.
    let mut chunk_first = 1u64;
    loop {
        buf.clear();
        let read = input
            .read_until(b'\n', &mut buf)
            .map_err(|e| format!("cannot read the input after line {}: {e}", report.lines))?;
        if read == 0 {
            break;
        }
        bytes += read as u64;
        report.lines += 1;
        let parsed = match std::str::from_utf8(&buf) {
            Ok(line) if line.trim().is_empty() => continue,
            Ok(line) => parse_line(line, opts.tenant.as_deref(), opts.validation),
            Err(_) => Err("not valid UTF-8".to_string()),
        };
        match parsed {
            Ok(row) => {
                if chunk.is_empty() {
                    chunk_first = report.lines;
                }
                chunk.push(row);
            }
            Err(why) => {
                report.rejected += 1;
                progress.bad_line(report.lines, &why);
                if opts.on_error == OnError::Stop {
                    report.stopped_at = Some(report.lines);
                    break;
                }
            }
        }
        if chunk.len() >= chunk_size {
            settle(&mut in_flight, &mut report).await?;
            let rows = std::mem::replace(&mut chunk, Vec::with_capacity(chunk_size));
            let n = rows.len() as u64;
            let store = store.clone();
            in_flight = Some((
                tokio::spawn(async move { store.import_chunk(rows).await }),
                n,
                chunk_first..=report.lines,
            ));
        }
        progress.update(bytes, &report);
    }
    settle(&mut in_flight, &mut report).await?;
    // A stopped import drops the chunk it stopped in: nothing of it is written.
    if report.stopped_at.is_none() && !chunk.is_empty() {
        let n = chunk.len() as u64;
        store
            .import_chunk(chunk)
            .await
            .map_err(|e| chunk_failed(&(chunk_first..=report.lines), &e))?;
        report.imported += n;
    }
    progress.finish();
    Ok(report)
}

/// Imports a file (`-` is standard input), with a progress bar when stderr is a terminal.
pub async fn import_path(
    store: Arc<dyn Store>,
    path: &str,
    opts: &ImportOptions,
) -> Result<ImportReport, String> {
    if path == "-" {
        let stdin = std::io::stdin();
        return import(store, stdin.lock(), None, opts).await;
    }
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open {path}: {e}"))?;
    let size = file.metadata().ok().map(|m| m.len());
    import(
        store,
        std::io::BufReader::with_capacity(1 << 16, file),
        size,
        opts,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str, tenant: Option<&str>) -> Result<TenantRecord, String> {
        parse_line(line, tenant, validate::Options::default())
    }

    #[test]
    fn a_line_needs_an_id_and_a_tenant() {
        let e = parse(r#"{"@graphsec.tenant":"t","name":"x"}"#, None).unwrap_err();
        assert!(e.contains("no id"), "{e}");
        let e = parse(r#"{"id":"a"}"#, None).unwrap_err();
        assert!(e.contains("--tenant"), "{e}");
        let row = parse(r#"{"id":"a"}"#, Some("fallback")).unwrap();
        assert_eq!(row.tenant, "fallback");
        let row = parse(r#"{"@graphsec.tenant":"own","id":"a"}"#, Some("fallback")).unwrap();
        assert_eq!(row.tenant, "own");
        let e = parse(r#"{"@graphsec.tenant":"","id":"a"}"#, None).unwrap_err();
        assert!(e.contains("invalid tenant"), "{e}");
    }

    #[test]
    fn timestamps_are_kept_and_a_line_round_trips() {
        let line = r#"{"@graphsec.tenant":"t","id":"a","createdDateTime":"2020-01-01T00:00:00+02:00","lastModifiedDateTime":"2021-01-01T00:00:00.5Z","tags":["x"],"dyn":{"k":1}}"#;
        let row = parse(line, None).unwrap();
        let out: Json = serde_json::from_str(&to_line(&row)).unwrap();
        assert_eq!(out["createdDateTime"], "2019-12-31T22:00:00Z");
        assert_eq!(out["lastModifiedDateTime"], "2021-01-01T00:00:00.5Z");
        assert_eq!(out[TENANT_ANNOTATION], "t");
        assert_eq!(out["dyn"]["k"], 1);
        let mut again = parse(&to_line(&row), None).unwrap();
        // Every import is a write with a fresh version (ETags never repeat); the rest is kept.
        assert!(again.record.version > row.record.version);
        again.record.version = row.record.version;
        assert_eq!(again, row);
    }

    #[test]
    fn the_api_rules_apply() {
        let e = parse(r#"{"@graphsec.tenant":"t","id":"a/b"}"#, None).unwrap_err();
        assert!(e.contains("id"), "{e}");
        let e = parse(
            r#"{"@graphsec.tenant":"t","id":"a","isSigned":"yes"}"#,
            None,
        )
        .unwrap_err();
        assert!(e.contains("isSigned"), "{e}");
        assert!(parse("[1]", Some("t")).is_err());
        assert!(
            parse("{", Some("t"))
                .unwrap_err()
                .contains("not valid JSON")
        );
    }

    #[test]
    fn a_line_carries_its_set_unless_it_is_the_default_one() {
        let line = r#"{"@graphsec.tenant":"t","@graphsec.set":"alerts","id":"a","azureTenantId":"x","severity":"low","status":"newAlert","createdDateTime":"2020-01-01T00:00:00Z"}"#;
        let row = parse(line, None).unwrap();
        assert_eq!(row.record.entity.collection, "alerts");
        let out: Json = serde_json::from_str(&to_line(&row)).unwrap();
        assert_eq!(out[SET_ANNOTATION], "alerts");
        assert_eq!(out["createdDateTime"], "2020-01-01T00:00:00Z");
        let profile = parse(r#"{"@graphsec.tenant":"t","id":"p"}"#, None).unwrap();
        let out: Json = serde_json::from_str(&to_line(&profile)).unwrap();
        assert!(out.get(SET_ANNOTATION).is_none(), "{out}");
        // The set's own rules apply (alerts need severity and status).
        let e = parse(
            r#"{"@graphsec.tenant":"t","@graphsec.set":"alerts","id":"a"}"#,
            None,
        )
        .unwrap_err();
        assert!(e.contains("'severity'"), "{e}");
        let e = parse(
            r#"{"@graphsec.tenant":"t","@graphsec.set":"nope","id":"a"}"#,
            None,
        )
        .unwrap_err();
        assert!(e.contains("not a served entity set"), "{e}");
    }
}
