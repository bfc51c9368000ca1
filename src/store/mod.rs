//! The `Store` trait: typed inputs scoped by tenant, typed outputs, no HTTP. Backends implement
//! it; the conformance tests run against each.

/// The value of a `Result`, or a ready future of its error (for the `Store` methods, which
/// return boxed futures).
macro_rules! try_or_fail {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return Box::pin(async move { Err(e) }),
        }
    };
}

pub mod compile;
pub mod notify;
pub mod postgres;
pub mod schema;
pub mod sqlite;

use std::future::Future;
use std::pin::Pin;

use crate::model::entity::EntityType;
use crate::model::record::{Changes, Record};
use crate::odata::query::OrderKey;
use crate::odata::typecheck::TypedFilter;
use compile::SqlParam;

/// One value per entity set of the catalog (a store's statements), found by the set's
/// [`EntityType::index`] in one step.
pub(crate) struct PerSet<T> {
    items: Vec<(&'static EntityType, T)>,
}

impl<T> PerSet<T> {
    /// `make` of every set of the catalog, in catalog order.
    pub(crate) fn new(mut make: impl FnMut(&'static EntityType) -> T) -> PerSet<T> {
        PerSet {
            items: crate::model::catalog()
                .sets()
                .iter()
                .map(|&e| (e, make(e)))
                .collect(),
        }
    }

    /// The value of `entity`'s set (any version's type of it: they share the set's rows and
    /// layout); `Internal` for an entity type that is not one of the catalog's sets (one built
    /// elsewhere).
    pub(crate) fn get(&self, entity: &'static EntityType) -> Result<&T, StoreError> {
        match self.items.get(entity.index) {
            Some((e, v)) if e.collection == entity.collection => Ok(v),
            _ => Err(StoreError::Internal(format!(
                "{} is not a catalog set",
                entity.collection
            ))),
        }
    }
}

/// Each tenant's share of a pool of read connections: a tenant holds at most `share` of them
/// at once, so one tenant's expensive reads (a scan, a lambda over long collections) queue
/// behind each other and leave the rest of the pool to every other tenant (issue 24: no
/// tenant can starve another).
pub(crate) struct TenantShares {
    share: usize,
    /// One semaphore of `share` permits per tenant, made on first use.
    map:
        std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<tokio::sync::Semaphore>>>,
}

impl TenantShares {
    /// Shares of `share` connections each (at least one).
    pub(crate) fn new(share: usize) -> TenantShares {
        TenantShares {
            share: share.max(1),
            map: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    /// One of `tenant`'s permits, waiting at most `wait`; `Unavailable` (503 with
    /// Retry-After) when the tenant's own reads kept every permit for that long.
    pub(crate) async fn acquire(
        &self,
        tenant: &str,
        wait: std::time::Duration,
    ) -> Result<tokio::sync::OwnedSemaphorePermit, StoreError> {
        let sem = {
            let mut map = self
                .map
                .lock()
                .map_err(|_| StoreError::Internal("tenant shares poisoned".into()))?;
            if map.len() > 4096 {
                // Forget the idle tenants (every permit free) so the map stays small.
                map.retain(|_, s| s.available_permits() < self.share);
            }
            // A known tenant costs a lookup, not a String: this runs on every PostgreSQL read.
            match map.get(tenant) {
                Some(sem) => sem.clone(),
                None => map
                    .entry(tenant.to_string())
                    .or_insert_with(|| std::sync::Arc::new(tokio::sync::Semaphore::new(self.share)))
                    .clone(),
            }
        };
        match tokio::time::timeout(wait, sem.acquire_owned()).await {
            Ok(Ok(p)) => Ok(p),
            Ok(Err(_)) => Err(StoreError::Unavailable("the store is shutting down".into())),
            Err(_) => Err(StoreError::Unavailable(format!(
                "the tenant's share of the read connections ({}) stayed busy for {} s",
                self.share,
                wait.as_secs()
            ))),
        }
    }
}

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
    /// The write would break the entity type (e.g. a PATCH merge leaving a non-nullable member
    /// of a complex value null): a client mistake (400), the message says what.
    Invalid(String),
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
            StoreError::Invalid(m) => write!(f, "invalid: {m}"),
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
    /// A page ends once its records take this many bytes on the wire
    /// ([`Record::approx_wire_bytes`]), even before `limit` (at least one record; 0: no
    /// budget): what a request holds in memory is bounded whatever `$top` asks. The next page
    /// continues after the last record returned.
    pub max_bytes: usize,
}

/// Whether a page that holds `bytes` (with `records` records) has reached `spec`'s byte budget.
pub fn page_is_full(spec: &ListSpec, records: usize, bytes: usize) -> bool {
    spec.max_bytes > 0 && records > 0 && bytes >= spec.max_bytes
}

/// The order-key values of a record, as [`ListSpec::after`] wants them for the next page: read
/// from the key columns' values only, in the stored form (`schema::encode`'s cells).
pub fn key_values(record: &Record, order_by: &[OrderKey]) -> Vec<SqlParam> {
    use crate::model::record::Value;
    compile::key_columns(record.entity, order_by)
        .iter()
        .map(|k| {
            let (prop, member) = k.source;
            let v = record.values.get(prop);
            let v = match member {
                None => v,
                // A null complex value has null members.
                Some(m) => match v {
                    Some(Value::Complex(members)) => members.get(m),
                    _ => None,
                },
            };
            match v {
                Some(Value::String(s)) => SqlParam::Text(s.clone()),
                Some(Value::Bool(b)) => SqlParam::Bool(*b),
                Some(Value::DateTime(t) | Value::Enum(t) | Value::Int(t)) => SqlParam::Int(*t),
                Some(Value::Double(f)) => SqlParam::Real(*f),
                // Only primitives and enums are order keys; anything else stores no scalar.
                _ => SqlParam::Null,
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

/// The entity versions a precondition names (`*` is any version of an existing entity).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tags {
    Any,
    /// The versions named; a tag that names no version of ours is left out, so a list that
    /// named only foreign tags is empty and matches nothing.
    Versions(Vec<i64>),
}

impl Tags {
    pub fn matches(&self, version: i64) -> bool {
        match self {
            Tags::Any => true,
            Tags::Versions(v) => v.contains(&version),
        }
    }
}

/// The preconditions of a request on one existing entity (`If-Match`, `If-None-Match`), in
/// typed form. A store checks them against the current version in the same transaction as the
/// write, so a conditional write can never be applied unconditionally.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Precondition {
    pub if_match: Option<Tags>,
    pub if_none_match: Option<Tags>,
}

impl Precondition {
    /// `VersionMismatch` unless the entity at `version` satisfies both conditions.
    pub fn check(&self, version: i64) -> Result<(), StoreError> {
        let fails_match = self.if_match.as_ref().is_some_and(|t| !t.matches(version));
        let fails_none = self
            .if_none_match
            .as_ref()
            .is_some_and(|t| t.matches(version));
        if fails_match || fails_none {
            Err(StoreError::VersionMismatch)
        } else {
            Ok(())
        }
    }
}

/// An entity with the tenant it belongs to: the unit of export and import.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantRecord {
    pub tenant: String,
    pub record: Record,
}

/// The persistence interface. Every call is scoped by tenant, and every data call by the entity
/// set (`entity`, from [`crate::model::catalog`]; its table is `entity.table`). A set whose
/// table the store's migrations have not created answers `Internal` (routes only reach served
/// sets).
pub trait Store: Send + Sync {
    /// Inserts a new entity built from `changes` (of `changes.entity`); `Duplicate` if the id
    /// exists in the tenant.
    fn create(
        &self,
        tenant: &str,
        changes: Changes,
        id: String,
    ) -> BoxFuture<'_, Result<Record, StoreError>>;
    fn get(
        &self,
        entity: &'static EntityType,
        tenant: &str,
        id: &str,
    ) -> BoxFuture<'_, Result<Record, StoreError>>;
    /// Applies PATCH semantics atomically (read-merge-write in one transaction), after checking
    /// `pre` in that transaction (`VersionMismatch` if it fails).
    /// The entity is `changes.entity`.
    fn update(
        &self,
        tenant: &str,
        id: &str,
        changes: Changes,
        pre: Precondition,
    ) -> BoxFuture<'_, Result<Record, StoreError>>;
    /// Deletes an entity if `pre` holds, checked in the same transaction.
    fn delete(
        &self,
        entity: &'static EntityType,
        tenant: &str,
        id: &str,
        pre: Precondition,
    ) -> BoxFuture<'_, Result<(), StoreError>>;
    /// The filter and order keys must have been typed against `entity`.
    fn list(
        &self,
        entity: &'static EntityType,
        tenant: &str,
        spec: ListSpec,
    ) -> BoxFuture<'_, Result<Page, StoreError>>;
    /// Counts the tenant's entities that match the filter (all of them without one).
    fn count(
        &self,
        entity: &'static EntityType,
        tenant: &str,
        filter: Option<TypedFilter>,
    ) -> BoxFuture<'_, Result<u64, StoreError>>;
    /// Answers once the backend can both read and write (the readiness probe).
    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>>;
    /// Deletes every entity of the set of `tenant` (of every tenant with `None`) in one
    /// transaction; returns how many were deleted.
    fn reset(
        &self,
        entity: &'static EntityType,
        tenant: Option<&str>,
    ) -> BoxFuture<'_, Result<u64, StoreError>>;
    /// How many entities of the set each tenant has (only `tenant`'s with `Some`), ordered by
    /// tenant (tenants without any are absent). With `limit`, a count stops at `limit`: the cost
    /// is then at most tenants × `limit` index entries instead of every row of the set (the
    /// explorer's overview pages), the tenants found one index seek each.
    fn tenant_counts(
        &self,
        entity: &'static EntityType,
        tenant: Option<&str>,
        limit: Option<u64>,
    ) -> BoxFuture<'_, Result<Vec<(String, u64)>, StoreError>>;
    /// Up to `limit` entities of the set ordered by (tenant, id), strictly after the `after`
    /// (tenant, id) position, of one tenant or of all: export pages through the set with it.
    fn export_page(
        &self,
        entity: &'static EntityType,
        tenant: Option<&str>,
        after: Option<(String, String)>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<TenantRecord>, StoreError>>;
    /// Writes the records exactly as given (timestamps and version included) in one
    /// transaction, each into its own set's table, replacing any entity with the same
    /// (tenant, id) in that set: all or nothing, and
    /// running it twice leaves the same state (imports resume by rerunning).
    fn import_chunk(&self, rows: Vec<TenantRecord>) -> BoxFuture<'_, Result<(), StoreError>>;
    /// The secret that signs paging tokens; kept in the store so every node and every restart
    /// agrees on it.
    fn paging_secret(&self) -> &[u8];
    /// Subscriptions, the notification outbox and the delivery log (change notifications).
    fn notify(&self) -> &dyn notify::NotifyStore;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::catalog;
    use crate::odata::query::parse_list_query;

    /// `key_values` reads the same values the keyset columns store: what `schema::encode`
    /// writes into those columns (how it was computed before).
    #[test]
    fn key_values_are_the_stored_key_columns() {
        let entity = catalog().set("cloudAppSecurityProfiles").unwrap();
        let body = serde_json::json!({
            "name": "n", "platform": "Linux", "isSigned": true, "riskScore": "7",
            "vendorInformation": {"provider": "p", "vendor": "v"}
        });
        let changes = crate::model::validate::changes_from_json(
            entity,
            &body,
            crate::model::validate::Mode::Create,
            Default::default(),
        )
        .unwrap();
        let with = Record::create(changes, "the-id".into(), 42).unwrap();
        let without = Record::create(Changes::empty(entity), "other".into(), 7).unwrap();
        let names = schema::record_column_names(entity);
        for orderby in [
            "",
            "name",
            "name desc,platform",
            "isSigned,createdDateTime desc",
            "vendorInformation/provider desc,vendorInformation/subProvider",
            "platform,id",
            "azureSubscriptionId",
        ] {
            let pairs = if orderby.is_empty() {
                vec![]
            } else {
                vec![("$orderby".to_string(), orderby.to_string())]
            };
            let q = parse_list_query(entity, &pairs).unwrap();
            for record in [&with, &without] {
                let cells = schema::encode(record);
                let stored: Vec<SqlParam> = compile::key_columns(entity, &q.order_by)
                    .iter()
                    .map(|k| {
                        let i = names.iter().position(|n| *n == k.column).unwrap();
                        match &cells[i] {
                            schema::Cell::Int(i) => SqlParam::Int(*i),
                            schema::Cell::Real(f) => SqlParam::Real(*f),
                            schema::Cell::Bool(b) => SqlParam::Bool(*b),
                            schema::Cell::Text(t) => SqlParam::Text(t.clone()),
                            schema::Cell::Null => SqlParam::Null,
                        }
                    })
                    .collect();
                assert_eq!(key_values(record, &q.order_by), stored, "{orderby}");
            }
        }
    }
}
