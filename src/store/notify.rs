//! The store side of change notifications: subscriptions, the transactional outbox and the
//! delivery log, as typed rows (no HTTP, no JSON bodies) and one trait both stores implement.
//!
//! - **Subscriptions** (`graphsec_subscriptions`) are keyed by (tenant, id); a unique index on
//!   (tenant, app, dedupe) turns Graph's duplicate rule into a constraint (409 at the insert,
//!   never a racy check first). The head-of-line retry state of a subscription (attempts, next
//!   attempt, the delivering node's lease) lives on its row, so delivery stays in order per
//!   subscription and a dead node's lease simply runs out.
//! - **Outbox** (`graphsec_outbox`): every write of an entity set that can be subscribed to
//!   (alerts) inserts, in its own transaction, one row per live subscription whose resource and
//!   `$filter` match the entity *as written* (an `INSERT … SELECT … WHERE <compiled filter>`
//!   against the row the write just wrote, so the filter means exactly what it means in a GET).
//!   Rows are deleted once delivered or dropped.
//! - **Deliveries** (`graphsec_deliveries`): the last [`DELIVERY_LOG`] attempts per
//!   subscription, for the admin API.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::compile::{self, SqlParam};
use super::schema::{self, Dialect, quote};
use super::{BoxFuture, StoreError};
use crate::model::entity::EntityType;

/// The schema migration that creates the notification tables (after the sets' 1 and 2).
pub const MIGRATION: usize = 3;
/// Delivery attempts kept per subscription.
pub const DELIVERY_LOG: i64 = 50;
/// Outbox event of a lifecycle notification.
pub const REAUTHORIZATION_REQUIRED: &str = "reauthorizationRequired";

/// Entity sets a subscription may name (the overlay's `changeNotifications`: of Graph's legacy
/// family, alerts only).
pub fn subscribable(entity: &EntityType) -> bool {
    entity.rules.change_notifications
}

/// The set subscriptions name in a version's catalog (the first subscribable one).
pub fn subscribable_set(catalog: &crate::model::catalog::Catalog) -> Option<&'static EntityType> {
    catalog.sets().iter().copied().find(|e| subscribable(e))
}

/// What a write did to an entity, as a notification's `changeType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Created,
    Updated,
}

impl Change {
    pub fn name(self) -> &'static str {
        match self {
            Change::Created => "created",
            Change::Updated => "updated",
        }
    }
}

/// A stored subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionRow {
    pub tenant: String,
    pub id: String,
    /// The creating application (`""` when the token named none).
    pub app: String,
    /// The creating user (delegated) or service principal (application).
    pub creator: Option<String>,
    /// The entity set subscribed to (`alerts`).
    pub set_name: String,
    /// `security/alerts/{id}`: the one entity; `None` for a filtered collection.
    pub entity_id: Option<String>,
    /// The `$filter` text of a collection subscription.
    pub filter: Option<String>,
    /// `resource` as the client wrote it.
    pub resource: String,
    /// Normalised comma list (`created,updated`).
    pub change_types: String,
    pub notification_url: String,
    pub lifecycle_url: Option<String>,
    pub client_state: Option<String>,
    /// 100 ns UTC ticks.
    pub expiration: i64,
    pub created: i64,
    /// The echoed properties graphsec does not act on, as a JSON object text.
    pub extra: String,
    /// Whether a `reauthorizationRequired` lifecycle notification is outstanding.
    pub reauth_sent: bool,
    /// Duplicate key: the normalised resource and change types.
    pub dedupe: String,
}

impl SubscriptionRow {
    pub fn notifies(&self, change: Change) -> bool {
        self.change_types.split(',').any(|c| c == change.name())
    }
}

/// One pending notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    pub seq: i64,
    /// `change` (to the notification URL) or `lifecycle` (to the lifecycle URL).
    pub kind: String,
    /// `created`/`updated`, or the lifecycle event.
    pub event: String,
    pub set_name: Option<String>,
    pub resource_id: Option<String>,
    /// When the write was committed (ticks): the age limit counts from here.
    pub created: i64,
}

/// A subscription's pending work, as the dispatcher reads it.
#[derive(Debug, Clone)]
pub struct Pending {
    pub subscription: SubscriptionRow,
    /// Failed attempts at the head of its queue so far.
    pub attempts: i64,
    pub rows: Vec<OutboxRow>,
}

/// How a delivery attempt ended, for [`NotifyStore::finish`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The receiver took these rows: delete them.
    Delivered(Vec<i64>),
    /// Try again at `next_attempt` (ticks); `attempts` failures so far.
    Retry { next_attempt: i64, attempts: i64 },
    /// Gave up on these rows (too old): delete them.
    Dropped(Vec<i64>),
}

/// One delivery attempt, as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryLog {
    pub at: i64,
    pub kind: String,
    pub attempt: i64,
    pub notifications: i64,
    /// The receiver's HTTP status, if it answered.
    pub status: Option<i64>,
    /// `delivered`, `retry`, `dropped` or `delayed` (a slow endpoint's new notifications).
    pub outcome: String,
    pub error: Option<String>,
}

/// What a sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sweep {
    pub expired: u64,
    pub challenged: u64,
}

/// The notification calls of a store. Every subscription call is scoped by tenant; the outbox
/// calls serve the dispatcher across tenants.
pub trait NotifyStore: Send + Sync {
    /// Inserts a subscription; `Ok(Some(id))` names the live subscription it duplicates
    /// (same tenant, app and dedupe key) instead.
    fn create_subscription(
        &self,
        row: SubscriptionRow,
    ) -> BoxFuture<'_, Result<Option<String>, StoreError>>;
    /// A live (unexpired at `now`) subscription.
    fn get_subscription(
        &self,
        tenant: &str,
        id: &str,
        now: i64,
    ) -> BoxFuture<'_, Result<SubscriptionRow, StoreError>>;
    /// The tenant's live subscriptions, by id.
    fn list_subscriptions(
        &self,
        tenant: &str,
        now: i64,
    ) -> BoxFuture<'_, Result<Vec<SubscriptionRow>, StoreError>>;
    /// Renews and/or re-points a live subscription; a renewal clears an outstanding
    /// reauthorization challenge (neither, as `reauthorize` calls it, only checks it is live).
    fn update_subscription(
        &self,
        tenant: &str,
        id: &str,
        now: i64,
        expiration: Option<i64>,
        notification_url: Option<String>,
    ) -> BoxFuture<'_, Result<SubscriptionRow, StoreError>>;
    /// Deletes a subscription with its pending notifications and delivery log.
    fn delete_subscription(&self, tenant: &str, id: &str) -> BoxFuture<'_, Result<(), StoreError>>;
    /// Deletes expired subscriptions (with their outbox rows and logs) and queues one
    /// `reauthorizationRequired` for each live subscription with a lifecycle URL that expires
    /// before `challenge_before` and has none outstanding.
    fn sweep(&self, now: i64, challenge_before: i64) -> BoxFuture<'_, Result<Sweep, StoreError>>;
    /// Leases up to `limit` subscriptions that have due notifications and no live lease to
    /// `owner` until `lease_until`; returns their (tenant, id).
    fn claim(
        &self,
        owner: &str,
        now: i64,
        lease_until: i64,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<(String, String)>, StoreError>>;
    /// The subscription and its first `limit` pending rows, in commit order.
    fn pending(
        &self,
        tenant: &str,
        id: &str,
        limit: usize,
    ) -> BoxFuture<'_, Result<Pending, StoreError>>;
    /// Records an attempt's outcome, releases the lease and logs the attempt (if any).
    fn finish(
        &self,
        tenant: &str,
        id: &str,
        outcome: Outcome,
        log: Option<DeliveryLog>,
    ) -> BoxFuture<'_, Result<(), StoreError>>;
    /// Pending rows and the commit time of the oldest.
    fn outbox_stats(&self) -> BoxFuture<'_, Result<(u64, Option<i64>), StoreError>>;
    /// The subscription's logged attempts, newest first (any tenant with `None`).
    fn deliveries(
        &self,
        tenant: Option<&str>,
        id: &str,
    ) -> BoxFuture<'_, Result<Vec<DeliveryLog>, StoreError>>;
}

/// The DDL of [`MIGRATION`].
pub fn ddl(dialect: Dialect) -> Vec<String> {
    let (text, seq, big) = match dialect {
        Dialect::Sqlite => ("TEXT", "INTEGER PRIMARY KEY AUTOINCREMENT", "INTEGER"),
        Dialect::Postgres => (
            "TEXT COLLATE \"C\"",
            "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
            "BIGINT",
        ),
    };
    vec![
        format!(
            "CREATE TABLE graphsec_subscriptions (\n    tenant {text} NOT NULL,\n    id {text} NOT NULL,\n    \
             app {text} NOT NULL,\n    creator {text},\n    set_name {text} NOT NULL,\n    entity_id {text},\n    \
             filter {text},\n    resource {text} NOT NULL,\n    change_types {text} NOT NULL,\n    \
             notification_url {text} NOT NULL,\n    lifecycle_url {text},\n    client_state {text},\n    \
             expiration {big} NOT NULL,\n    created {big} NOT NULL,\n    extra {text} NOT NULL,\n    \
             reauth_sent {big} NOT NULL DEFAULT 0,\n    dedupe {text} NOT NULL,\n    \
             attempts {big} NOT NULL DEFAULT 0,\n    next_attempt {big} NOT NULL DEFAULT 0,\n    \
             lease_owner {text},\n    lease_until {big} NOT NULL DEFAULT 0,\n    \
             PRIMARY KEY (tenant, id)\n)"
        ),
        "CREATE UNIQUE INDEX ux_graphsec_subscriptions_dedupe ON graphsec_subscriptions (tenant, app, dedupe)".into(),
        "CREATE INDEX ix_graphsec_subscriptions_set ON graphsec_subscriptions (tenant, set_name)".into(),
        "CREATE INDEX ix_graphsec_subscriptions_expiration ON graphsec_subscriptions (expiration)".into(),
        format!(
            "CREATE TABLE graphsec_outbox (\n    seq {seq},\n    tenant {text} NOT NULL,\n    \
             subscription_id {text} NOT NULL,\n    kind {text} NOT NULL,\n    event {text} NOT NULL,\n    \
             set_name {text},\n    resource_id {text},\n    created {big} NOT NULL\n)"
        ),
        "CREATE INDEX ix_graphsec_outbox_subscription ON graphsec_outbox (tenant, subscription_id, seq)".into(),
        format!(
            "CREATE TABLE graphsec_deliveries (\n    seq {seq},\n    tenant {text} NOT NULL,\n    \
             subscription_id {text} NOT NULL,\n    at {big} NOT NULL,\n    kind {text} NOT NULL,\n    \
             attempt {big} NOT NULL,\n    notifications {big} NOT NULL,\n    status {big},\n    \
             outcome {text} NOT NULL,\n    error {text}\n)"
        ),
        "CREATE INDEX ix_graphsec_deliveries_subscription ON graphsec_deliveries (tenant, subscription_id, seq)".into(),
    ]
}

/// The subscription columns, in [`SubscriptionRow`] field order.
pub const SUBSCRIPTION_COLUMNS: &str = "tenant, id, app, creator, set_name, entity_id, filter, resource, \
     change_types, notification_url, lifecycle_url, client_state, expiration, created, extra, \
     reauth_sent, dedupe";

/// `?1..?n` or `$1..$n`.
pub fn placeholders(dialect: Dialect, from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| schema::placeholder(dialect, i))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The subscription row's values, in [`SUBSCRIPTION_COLUMNS`] order.
pub fn subscription_params(row: &SubscriptionRow) -> Vec<SqlParam> {
    let opt = |v: &Option<String>| match v {
        Some(s) => SqlParam::Text(s.clone()),
        None => SqlParam::Null,
    };
    vec![
        SqlParam::Text(row.tenant.clone()),
        SqlParam::Text(row.id.clone()),
        SqlParam::Text(row.app.clone()),
        opt(&row.creator),
        SqlParam::Text(row.set_name.clone()),
        opt(&row.entity_id),
        opt(&row.filter),
        SqlParam::Text(row.resource.clone()),
        SqlParam::Text(row.change_types.clone()),
        SqlParam::Text(row.notification_url.clone()),
        opt(&row.lifecycle_url),
        opt(&row.client_state),
        SqlParam::Int(row.expiration),
        SqlParam::Int(row.created),
        SqlParam::Text(row.extra.clone()),
        SqlParam::Int(i64::from(row.reauth_sent)),
        SqlParam::Text(row.dedupe.clone()),
    ]
}

/// A live subscription of the write's tenant that may match it (read in the write's
/// transaction).
#[derive(Debug, Clone)]
pub struct Subscriber {
    pub id: String,
    pub entity_id: Option<String>,
    pub filter: Option<String>,
    pub change_types: String,
}

/// `SELECT` of the live subscriptions of a (tenant, set): `tenant`, `set`, `now`.
pub fn subscribers_sql(dialect: Dialect) -> String {
    format!(
        "SELECT id, entity_id, filter, change_types FROM graphsec_subscriptions \
         WHERE tenant = {} AND set_name = {} AND expiration > {}",
        schema::placeholder(dialect, 1),
        schema::placeholder(dialect, 2),
        schema::placeholder(dialect, 3)
    )
}

/// The statement that queues a notification for one subscriber of a write, if the entity as
/// written matches the subscription (its id, its `$filter`), and its parameters. `None` when
/// the subscriber does not take this change at all.
pub fn enqueue_sql(
    entity: &'static EntityType,
    dialect: Dialect,
    tenant: &str,
    id: &str,
    change: Change,
    sub: &Subscriber,
    now: i64,
) -> Option<(String, Vec<SqlParam>)> {
    if !sub.change_types.split(',').any(|c| c == change.name()) {
        return None;
    }
    if sub.entity_id.as_deref().is_some_and(|e| e != id) {
        return None;
    }
    let p = |n| schema::placeholder(dialect, n);
    let (t, b) = match dialect {
        Dialect::Sqlite => ("", ""),
        Dialect::Postgres => ("::TEXT", "::BIGINT"),
    };
    let mut sql = format!(
        "INSERT INTO graphsec_outbox (tenant, subscription_id, kind, event, set_name, resource_id, created) \
         SELECT {}{t}, {}{t}, 'change', {}{t}, {}{t}, {}{t}, {}{b} FROM {} WHERE {} = {} AND {} = {}",
        p(1),
        p(2),
        p(3),
        p(4),
        p(5),
        p(6),
        quote(entity.table),
        quote(schema::TENANT_COLUMN),
        p(7),
        quote(schema::column(entity.key())),
        p(8)
    );
    let mut params = vec![
        SqlParam::Text(tenant.to_string()),
        SqlParam::Text(sub.id.clone()),
        SqlParam::Text(change.name().to_string()),
        SqlParam::Text(entity.collection.to_string()),
        SqlParam::Text(id.to_string()),
        SqlParam::Int(now),
        SqlParam::Text(tenant.to_string()),
        SqlParam::Text(id.to_string()),
    ];
    if let Some(text) = &sub.filter {
        let (frag, fparams) = compiled_filter(entity, dialect, text)?;
        sql.push_str(" AND (");
        sql.push_str(&frag);
        sql.push(')');
        params.extend(fparams);
    }
    Some((sql, params))
}

type FilterKey = (&'static str, bool, String);
type Compiled = Option<Arc<(String, Vec<SqlParam>)>>;

/// A subscription's `$filter`, typed against `entity` and compiled from parameter 9 on, cached
/// by text (writes run it for every subscriber). A filter that no longer type-checks (it did at
/// create) matches nothing and is logged.
fn compiled_filter(
    entity: &'static EntityType,
    dialect: Dialect,
    text: &str,
) -> Option<(String, Vec<SqlParam>)> {
    static CACHE: Mutex<Option<HashMap<FilterKey, Compiled>>> = Mutex::new(None);
    let key = (
        entity.collection,
        dialect == Dialect::Postgres,
        text.to_string(),
    );
    if let Some(hit) = CACHE
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_or_insert_with(HashMap::new)
        .get(&key)
    {
        return hit.as_ref().map(|c| (c.0.clone(), c.1.clone()));
    }
    let compiled = match crate::odata::query::parse_list_query(
        entity,
        &[("$filter".to_string(), text.to_string())],
    ) {
        Ok(q) => q.filter.map(|f| {
            let frag = compile::compile_filter(&f, dialect, 9);
            Arc::new((frag.sql, frag.params))
        }),
        Err(e) => {
            tracing::warn!(filter = text, error = %e.message, "a subscription's filter no longer type-checks; it matches nothing");
            None
        }
    };
    let mut cache = CACHE.lock().unwrap_or_else(|p| p.into_inner());
    let map = cache.get_or_insert_with(HashMap::new);
    if map.len() > 4096 {
        map.clear();
    }
    map.insert(key, compiled.clone());
    compiled.map(|c| (c.0.clone(), c.1.clone()))
}

/// Counts queued notifications (the metric; the rows are the truth).
pub fn count_queued(n: u64) {
    if n > 0 {
        metrics::counter!(crate::ops::metrics::NOTIFY_QUEUED).increment(n);
    }
}
