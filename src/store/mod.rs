//! The `Store` trait: typed inputs scoped by tenant, typed outputs, no HTTP. Backends implement
//! it; the conformance tests run against each.

pub mod compile;
pub mod schema;
pub mod sqlite;

use std::future::Future;
use std::pin::Pin;

use crate::model::record::{Changes, Record};
use crate::odata::query::OrderKey;
use crate::odata::typecheck::TypedFilter;
use compile::SqlParam;

/// A boxed future, so `Store` can be used as `dyn Store`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What can go wrong in a store call. Client-caused outcomes are distinct variants so they can
/// never be mistaken for (or hidden behind) an internal failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    NotFound,
    Duplicate,
    /// `If-Match` named a version that is not the current one.
    VersionMismatch,
    /// The backend cannot be reached or is shutting down (503).
    Unavailable(String),
    /// A bug or a corrupt row (500); the message is for the log.
    Internal(String),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::NotFound => write!(f, "not found"),
            StoreError::Duplicate => write!(f, "duplicate id"),
            StoreError::VersionMismatch => write!(f, "version mismatch"),
            StoreError::Unavailable(m) => write!(f, "store unavailable: {m}"),
            StoreError::Internal(m) => write!(f, "store error: {m}"),
        }
    }
}

/// A list request as the store sees it: typed, already validated.
#[derive(Debug, Clone, Default)]
pub struct ListSpec {
    pub filter: Option<TypedFilter>,
    /// The client's order keys; `id` is appended as the tie-breaker.
    pub order_by: Vec<OrderKey>,
    /// Rows to return at most.
    pub limit: usize,
    /// Rows to skip (`$skip`).
    pub skip: u64,
    /// Keyset position: the order-key values of the last row of the previous page (one per
    /// [`compile::key_columns`] entry); the page starts after it.
    pub after: Option<Vec<SqlParam>>,
    /// Also count the whole filtered set.
    pub count: bool,
}

/// The order-key values of a record, as [`ListSpec::after`] wants them for the next page.
pub fn key_values(record: &Record, order_by: &[OrderKey]) -> Vec<SqlParam> {
    let names = schema::record_columns(schema::Dialect::Sqlite);
    let cells = schema::encode(record);
    compile::key_columns(order_by)
        .iter()
        .map(|k| {
            let cell = names
                .iter()
                .position(|n| *n == k.column)
                .and_then(|i| cells.get(i));
            match cell {
                Some(schema::Cell::Int(i)) => SqlParam::Int(*i),
                Some(schema::Cell::Bool(b)) => SqlParam::Bool(*b),
                Some(schema::Cell::Text(t)) => SqlParam::Text(t.clone()),
                Some(schema::Cell::Null) | None => SqlParam::Null,
            }
        })
        .collect()
}

/// One page of a list.
#[derive(Debug, Clone)]
pub struct Page {
    pub records: Vec<Record>,
    /// Whether rows remain after this page.
    pub more: bool,
    pub count: Option<u64>,
}

/// Optional precondition on a write: the version the caller last saw.
pub type IfMatch = Option<i64>;

/// A profile with the tenant it belongs to: the unit of export and import.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantRecord {
    pub tenant: String,
    pub record: Record,
}

/// The persistence interface. Every call is scoped by tenant.
pub trait Store: Send + Sync {
    /// Inserts a new profile; `Duplicate` if the id exists in the tenant.
    fn create(
        &self,
        tenant: &str,
        changes: Changes,
        id: String,
    ) -> BoxFuture<'_, Result<Record, StoreError>>;
    fn get(&self, tenant: &str, id: &str) -> BoxFuture<'_, Result<Record, StoreError>>;
    /// Applies PATCH semantics atomically (read-merge-write in one transaction).
    fn update(
        &self,
        tenant: &str,
        id: &str,
        changes: Changes,
        if_match: IfMatch,
    ) -> BoxFuture<'_, Result<Record, StoreError>>;
    fn delete(
        &self,
        tenant: &str,
        id: &str,
        if_match: IfMatch,
    ) -> BoxFuture<'_, Result<(), StoreError>>;
    fn list(&self, tenant: &str, spec: ListSpec) -> BoxFuture<'_, Result<Page, StoreError>>;
    /// Counts the tenant's profiles that match the filter (all of them without one).
    fn count(
        &self,
        tenant: &str,
        filter: Option<TypedFilter>,
    ) -> BoxFuture<'_, Result<u64, StoreError>>;
    /// Answers once the backend can both read and write (the readiness probe).
    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>>;
    /// Deletes every profile of `tenant` (of every tenant with `None`) in one transaction;
    /// returns how many were deleted.
    fn reset(&self, tenant: Option<&str>) -> BoxFuture<'_, Result<u64, StoreError>>;
    /// How many profiles each tenant has, ordered by tenant (tenants without profiles are absent).
    fn tenant_counts(&self) -> BoxFuture<'_, Result<Vec<(String, u64)>, StoreError>>;
    /// Up to `limit` profiles ordered by (tenant, id), strictly after the `after` (tenant, id)
    /// position, of one tenant or of all: export pages through the whole store with it.
    fn export_page(
        &self,
        tenant: Option<&str>,
        after: Option<(String, String)>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<TenantRecord>, StoreError>>;
    /// Writes the records exactly as given (timestamps and version included) in one
    /// transaction, replacing any profile with the same (tenant, id): all or nothing, and
    /// running it twice leaves the same state (imports resume by rerunning).
    fn import_chunk(&self, rows: Vec<TenantRecord>) -> BoxFuture<'_, Result<(), StoreError>>;
    /// The secret that signs paging tokens; kept in the store so every node and every restart
    /// agrees on it.
    fn paging_secret(&self) -> &[u8];
}
