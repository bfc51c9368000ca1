//! The shape of an entity set as the rest of the crate sees it: [`EntityType`] with its
//! [`Property`] table, capabilities, deprecation and per-resource rules.
//!
//! The values are not written here: [`crate::model::catalog`] builds one `&'static EntityType`
//! per entity set at startup from Graph's metadata (the embedded CSDL slice) and graphsec's
//! overlay. Validation, the SQL schema, `$filter` typing, `$select`, `$metadata`, OpenAPI and
//! the JSON field order are all derived from it; every user takes the entity type as a
//! parameter. No property name is spelled in Rust outside tests.

use super::edm::EdmType;

pub const NAMESPACE: &str = "microsoft.graph";

/// Who owns a property's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Managed {
    /// Clients set it freely.
    Client,
    /// The key: generated unless a POST supplies one; immutable afterwards.
    Key,
    /// Set by the server at create.
    Created,
    /// Set by the server at every successful write.
    Modified,
}

/// A declared property.
#[derive(Debug)]
pub struct Property {
    pub name: &'static str,
    pub ty: EdmType,
    pub nullable: bool,
    pub managed: Managed,
    /// May appear in `$filter`.
    pub filterable: bool,
    /// May appear in `$orderby`.
    pub sortable: bool,
    /// Gets a (tenant, property, id) index: the common filters and orders. Every index costs
    /// every write, so only a few properties have one.
    pub indexed: bool,
    /// Declared by this version's metadata. Every version's type of a set has the same
    /// property table (the set's one storage layout, see [`crate::model::catalog`]); a property
    /// another version declares and this one does not is kept in the table with `declared`
    /// false: this version never serializes it, never resolves it in a query, refuses it in a
    /// body, and so never clears it.
    pub declared: bool,
}

/// Capability restrictions of an entity set (Org.OData.Capabilities.V1), with OData's default
/// ("supported") applied where the metadata says nothing. `annotated` tells whether the values
/// came from the metadata (or the overlay) at all, so `$metadata` repeats only what Graph says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    pub annotated: bool,
    pub countable: bool,
    pub filterable: bool,
    pub sortable: bool,
    pub select: bool,
    pub top: bool,
    pub skip: bool,
    pub expandable: bool,
    pub searchable: bool,
    pub insertable: bool,
    pub updatable: bool,
    pub deletable: bool,
}

impl Capabilities {
    /// Nothing annotated: everything supported (OData Capabilities vocabulary defaults).
    pub const DEFAULT: Capabilities = Capabilities {
        annotated: false,
        countable: true,
        filterable: true,
        sortable: true,
        select: true,
        top: true,
        skip: true,
        expandable: true,
        searchable: true,
        insertable: true,
        updatable: true,
        deletable: true,
    };
}

/// A deprecation notice (Org.OData.Core.V1.Revisions, Kind `Deprecated`), dates as written
/// (`yyyy-mm-dd`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deprecation {
    pub version: Option<&'static str>,
    pub date: Option<&'static str>,
    pub removal_date: Option<&'static str>,
    pub description: Option<&'static str>,
}

/// Graph's documented per-resource rules (the overlay, `model/overlay.json`; the source of each
/// is cited there). Indices point into the entity type's `properties`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rules {
    /// Properties a create must carry with a non-null value.
    pub required_on_create: &'static [usize],
    /// Alternatives of which a create must carry at least one (tiIndicator's observables).
    pub one_of_on_create: &'static [usize],
    /// Properties a client may not change after create (a PATCH ignores them).
    pub read_only: &'static [usize],
    /// Paths (`property` or `property/member`, names as declared) a PATCH body must give a
    /// non-null value (alerts: `vendorInformation/provider` and `/vendor`).
    pub required_on_update: &'static [&'static str],
    /// The largest `$top` the set accepts (`None`: graphsec's general page cap).
    pub max_top: Option<u32>,
    /// The largest `$skip` the set accepts (`None`: no limit). Graph's "Microsoft Graph security
    /// API error responses" page: alerts refuse `$skip` above 500.
    pub max_skip: Option<u64>,
    /// Graph's documented throttling limits for the set, per app per tenant ("Microsoft Graph
    /// service-specific throttling limits", security detections and incidents): every one
    /// applies (`--throttle graph`). Empty: the family's general figure.
    pub graph_throttle: &'static [RateLimit],
    /// The overlay's citations for the set's rules (its `//rules` and `//source` notes), for
    /// `docs/FAMILY.md`.
    pub sources: &'static [&'static str],
    /// The status of a successful PATCH without a `Prefer` header: `204` (No Content) where
    /// the set's update page says so ("If successful, this method returns a 204 No Content
    /// response code"), else `200` with the entity. `Prefer: return=representation` always
    /// gets 200 and `return=minimal` 204.
    pub update_status: u16,
    /// The order of a list without `$orderby` (an `$orderby` value, e.g. `createdDateTime
    /// desc`; ties by id): the secure-score list page's "sorted by createdDateTime, from
    /// latest to earliest". `None`: by id.
    pub default_order: Option<&'static str>,
    /// The documented rules on single properties' values (ranges, lists, lengths, defaults,
    /// values the service sets), each naming its property by index.
    pub values: &'static [ValueRule],
    /// The documented permissions of the set, where its pages name others than the family's
    /// (`SecurityEvents.*`); `None`: the family's.
    pub permissions: Option<&'static SetPermissions>,
    /// A PATCH's documented state members that the service records as a new entry of a
    /// collection instead of storing them (secureScoreControlProfile's `assignedTo`, `comment`
    /// and `state` -> a `controlStateUpdates` entry).
    pub state_update: Option<&'static StateUpdate>,
    /// Graph change notifications can subscribe to the set (of the legacy family, only
    /// `security/alerts`; `shared/spec/change-notifications.md`).
    pub change_notifications: bool,
}

/// Where a value the service sets comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallerValue {
    /// The caller's tenant (`tid`).
    Tenant,
    /// The calling application (`azp`/`appid`).
    App,
    /// The signed-in user (`upn`/`oid`) or, for an application token, the application.
    User,
    /// The write's timestamp (the same instant as the entity's created stamp).
    Now,
}

/// What the service does with one property's value (the overlay's `values`).
#[derive(Debug, Clone, PartialEq)]
pub struct ValueRule {
    /// The index of the property in the type's `properties`.
    pub property: usize,
    /// Inclusive bounds of a number.
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// The documented strings (matched ignoring ASCII case, stored as listed).
    pub one_of: &'static [&'static str],
    /// The most characters a string may have.
    pub max_length: Option<usize>,
    /// The value a create gets when its body does not name the property.
    pub default: Option<&'static serde_json::Value>,
    /// A value the service sets at create whatever the body says (type-checked, then
    /// replaced, as for the created timestamp).
    pub on_create: Option<OnCreate>,
    /// The reference page that states the rule.
    pub source: &'static str,
}

/// A value the service sets at create.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OnCreate {
    /// A fixed value (securityAction `status`: `notStarted`).
    Value(&'static serde_json::Value),
    /// A value of the caller or the clock.
    From(CallerValue),
}

/// Accepted permissions of one set (see [`crate::auth`]): for reads and for writes, the
/// delegated scopes and the application roles.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetPermissions {
    pub read: PermissionLists,
    pub write: PermissionLists,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PermissionLists {
    pub delegated: Vec<String>,
    pub application: Vec<String>,
}

/// See [`Rules::state_update`]: the body members (names of the collection's element type) a
/// PATCH may carry at the top level, and the element members the service fills.
#[derive(Debug, Clone, PartialEq)]
pub struct StateUpdate {
    /// The collection property (index) the entry is appended to.
    pub property: usize,
    /// The members a PATCH names at the top level, each with the strings it accepts (empty:
    /// any string).
    pub members: &'static [(&'static str, &'static [&'static str])],
    /// The member that records who (the caller's user, else application).
    pub by: &'static str,
    /// The member that records when.
    pub at: &'static str,
    pub source: &'static str,
}

/// A rate limit: at most `requests` in any `seconds`-long window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub requests: u32,
    pub seconds: u32,
}

impl Rules {
    pub const NONE: Rules = Rules {
        required_on_create: &[],
        one_of_on_create: &[],
        read_only: &[],
        required_on_update: &[],
        max_top: None,
        max_skip: None,
        graph_throttle: &[],
        sources: &[],
        update_status: 200,
        default_order: None,
        values: &[],
        permissions: None,
        state_update: None,
        change_notifications: false,
    };
}

/// The entity type and the collection that serves it: everything the catalog
/// ([`crate::model::catalog`]) knows about one entity set.
#[derive(Debug)]
pub struct EntityType {
    /// The Graph version root whose metadata declares this type (`beta`, `v1.0`).
    pub version: &'static str,
    pub name: &'static str,
    pub base_type: &'static str,
    pub open: bool,
    /// The contained collection's name on the `security` singleton.
    pub collection: &'static str,
    pub singleton: &'static str,
    /// The key first, then the metadata's order.
    pub properties: &'static [Property],
    /// The SQL table: snake_case of the collection (`cloud_app_security_profiles`).
    pub table: &'static str,
    pub capabilities: Capabilities,
    pub deprecation: Option<Deprecation>,
    pub rules: Rules,
    /// The names of the actions bound to the type or a collection of it, in metadata order.
    pub actions: &'static [&'static str],
    /// The numbered schema migration that creates the set's table (`None`: no table yet).
    pub migration: Option<u32>,
    /// Whether the set is served: every shape of the type is handled end to end (validation,
    /// storage, queries, serialization) and its table exists. A set that is not is routed but
    /// answered with a clear error.
    pub served: bool,
    /// The set's position in the storage catalog (the default version's sets,
    /// [`crate::model::catalog::catalog`]), the same in every version: per-set tables (a
    /// store's statements) are indexed by it instead of searched.
    pub index: usize,
}

/// Entity types are catalog singletons: identity is the version and the collection name. The
/// store compares sets by [`EntityType::index`] only, so every version reads the same rows.
impl PartialEq for EntityType {
    fn eq(&self, other: &EntityType) -> bool {
        self.collection == other.collection && self.version == other.version
    }
}

impl Eq for EntityType {}

impl EntityType {
    pub fn qualified_name(&self) -> String {
        format!("{NAMESPACE}.{}", self.name)
    }

    /// The index of the property this version declares with exactly this name.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.properties
            .iter()
            .position(|p| p.declared && p.name == name)
    }

    /// The property this version declares with exactly this name.
    pub fn property(&self, name: &str) -> Option<&'static Property> {
        self.properties
            .iter()
            .find(|p| p.declared && p.name == name)
    }

    /// The properties this version declares, in table order.
    pub fn declared(&self) -> impl Iterator<Item = &'static Property> {
        self.properties.iter().filter(|p| p.declared)
    }

    /// The name of a property that is in the set's storage layout but not declared by this
    /// version (see [`Property::declared`]).
    pub fn undeclared(&self, name: &str) -> Option<&'static Property> {
        self.properties
            .iter()
            .find(|p| !p.declared && p.name == name)
    }

    /// The key's index (the catalog refuses a type without a `Managed::Key` property).
    pub fn key_index(&self) -> usize {
        self.managed_index(Managed::Key).unwrap_or(0)
    }

    pub fn key(&self) -> &'static Property {
        &self.properties[self.key_index()]
    }

    /// The property that has this managed role, if the set has one (not every set has a
    /// created or modified timestamp).
    pub fn managed_index(&self, m: Managed) -> Option<usize> {
        self.properties.iter().position(|p| p.managed == m)
    }
}
