//! The `Store` trait: typed inputs scoped by tenant, typed outputs, no HTTP. Backends implement
//! it; the conformance tests run against each.

pub mod schema;
pub mod sqlite;

use std::future::Future;
use std::pin::Pin;

use crate::model::record::{Changes, Record};

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

/// A list request as the store sees it.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// Rows to return at most.
    pub limit: usize,
    /// Rows to skip (`$skip`).
    pub skip: u64,
    /// Id of the last row of the previous page: the page starts after it (keyset paging).
    pub after_id: Option<String>,
    /// Also count the whole (filtered) set.
    pub count: bool,
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
    fn list(&self, tenant: &str, query: ListQuery) -> BoxFuture<'_, Result<Page, StoreError>>;
    fn count(&self, tenant: &str) -> BoxFuture<'_, Result<u64, StoreError>>;
    /// The secret that signs paging tokens; kept in the store so every node and every restart
    /// agrees on it.
    fn paging_secret(&self) -> &[u8];
}
