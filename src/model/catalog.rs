//! The catalogs: for each Graph version root graphsec serves (`beta`, `v1.0`), one
//! [`EntityType`] per entity set of the `security` singleton, built ONCE at startup from that
//! version's metadata (an embedded CSDL slice) and graphsec's overlay (`overlay.json`,
//! embedded: what the CSDL does not say — managed roles, indexes, documented per-resource
//! rules, the annotations the slice lacks).
//!
//! **Versions are data.** Each version's catalog has exactly the sets its metadata declares on
//! the singleton, with its own types, capabilities and bound actions. The rows are shared: a
//! set has one storage layout, the property table of the default version (beta, the version
//! unversioned paths address), and every version's type of that set has that same table in
//! the same order, each property marked [`Property::declared`] or not for the version. So one
//! row reads and writes through every version; a version never shows, filters on or clears a
//! property it does not declare. The default version must declare every set and property any
//! version declares (Graph adds to beta first; a load error says so if a slice ever breaks
//! that), because the storage schema, export and import speak it.
//!
//! Everything is leaked into `&'static` once ([`catalog`] is a `OnceLock`), so handlers, the
//! OData engine and the stores pass `&'static EntityType` around and compare enum and complex
//! types by pointer. A load error (a bad embedded file; the unit tests catch it first) stops
//! startup: [`init`] reports it, [`catalog`] panics with it.
//!
//! The overlay is validated against the registries: a set, property or role it names that no
//! version's metadata declares is an error, and so is an overlay annotation for a set the
//! metadata already annotates (one source per fact).

use std::collections::HashMap;
use std::sync::OnceLock;

use serde::Deserialize;

use super::csdl::registry::{Registry, Resolved, TypeKind};
use super::csdl::{self, EdmPrimitive};
use super::edm::{ComplexType, EdmType, EnumType, Member, Primitive};
use super::entity::{
    CallerValue, Capabilities, Deprecation, EntityType, Managed, OnCreate, Property, RateLimit,
    Rules, SetPermissions, StateUpdate, ValueRule,
};

/// The embedded overlay.
pub const OVERLAY: &str = include_str!("overlay.json");

/// The evolvable-enum sentinel Graph appends to most enums (OData "evolvable enums").
const SENTINEL: &str = "unknownFutureValue";

/// The version roots graphsec serves, each with its embedded metadata slice; the first is the
/// default (unversioned paths) and the storage layout.
pub const VERSIONS: [(&str, &str); 2] = [
    ("beta", csdl::LEGACY_SECURITY_CSDL),
    ("v1.0", csdl::LEGACY_SECURITY_V1_CSDL),
];

/// One version's entity sets, with their resolved types.
#[derive(Debug)]
pub struct Catalog {
    /// The version root (`beta`, `v1.0`): the URL segment and the name Graph gives it.
    pub version: &'static str,
    sets: Vec<&'static EntityType>,
    /// The resolved metadata the catalog was built from (bound actions' signatures live here).
    pub registry: Registry,
}

/// A catalog is its version's: one per version root, built once.
impl PartialEq for Catalog {
    fn eq(&self, other: &Catalog) -> bool {
        self.version == other.version
    }
}

impl Eq for Catalog {}

impl Catalog {
    /// Every entity set of this version, in the metadata's order.
    pub fn sets(&self) -> &[&'static EntityType] {
        &self.sets
    }

    /// The sets graphsec serves (see [`EntityType::served`]).
    pub fn served(&self) -> impl Iterator<Item = &'static EntityType> + '_ {
        self.sets.iter().copied().filter(|s| s.served)
    }

    /// The set graphsec served before the family (the one the first migration creates): export
    /// files and admin requests that name no set mean it, so they keep working unchanged.
    pub fn default_set(&self) -> &'static EntityType {
        self.sets
            .iter()
            .copied()
            .find(|s| s.migration == Some(1))
            .unwrap_or(self.sets[0])
    }

    /// The set with this collection name, ignoring ASCII case (Graph's URL segments are
    /// case-insensitive).
    pub fn set(&self, name: &str) -> Option<&'static EntityType> {
        self.sets
            .iter()
            .copied()
            .find(|s| s.collection.eq_ignore_ascii_case(name))
    }

    /// This version's type of `entity`'s set (of any version), if this version has the set.
    pub fn same_set(&self, entity: &EntityType) -> Option<&'static EntityType> {
        self.sets.iter().copied().find(|s| s.index == entity.index)
    }
}

/// Builds one catalog per `(version, CSDL text)`, the first being the default version (the
/// storage layout every later version's types follow).
pub fn load_versions(versions: &[(&'static str, &str)]) -> Result<Vec<Catalog>, String> {
    let overlay: Overlay =
        serde_json::from_str(OVERLAY).map_err(|e| format!("model/overlay.json: {e}"))?;
    let mut out: Vec<Catalog> = Vec::with_capacity(versions.len());
    for &(version, text) in versions {
        let registry =
            Registry::from_csdl(text).map_err(|e| format!("the {version} metadata: {e}"))?;
        let base = out.first().map(|c| c.sets.as_slice());
        let sets = Builder::new(&registry, version).build(&overlay, base)?;
        if base.is_none() && !sets.iter().any(|s| s.migration == Some(1)) {
            return Err("model/overlay.json: no set has migration 1".into());
        }
        out.push(Catalog {
            version,
            sets,
            registry,
        });
    }
    Ok(out)
}

static CATALOGS: OnceLock<Result<Vec<Catalog>, String>> = OnceLock::new();

/// Builds the catalogs (once); the error says what in the embedded files is wrong.
pub fn init() -> Result<&'static [Catalog], String> {
    CATALOGS
        .get_or_init(|| load_versions(&VERSIONS))
        .as_ref()
        .map(Vec::as_slice)
        .map_err(Clone::clone)
}

/// Every version's catalog, the default version first. Panics if the embedded metadata does
/// not load, which the unit tests rule out (and `main` checks through [`init`] before serving).
pub fn catalogs() -> &'static [Catalog] {
    match init() {
        Ok(c) => c,
        Err(e) => panic!("the embedded model does not load: {e}"),
    }
}

/// The default version's catalog (beta): what unversioned paths address, and the storage
/// layout (its sets are every set's table; export and import speak its types).
pub fn catalog() -> &'static Catalog {
    &catalogs()[0]
}

/// The catalog of the version root named `name` (ASCII case ignored, as Graph's segments).
pub fn version(name: &str) -> Option<&'static Catalog> {
    catalogs()
        .iter()
        .find(|c| c.version.eq_ignore_ascii_case(name))
}

/// snake_case of a camelCase name (`cloudAppSecurityProfiles` -> `cloud_app_security_profiles`).
pub fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 8);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether the engine handles every shape of this type end to end (a set is served when it
/// does and a migration creates its table): every primitive the catalog admits, enums,
/// complex values at any depth (closed, open, with non-nullable members) and collections of
/// any of them. The catalog refuses what is outside that surface (other primitives, flags
/// enums, recursive complex types) at load, so today every loaded type qualifies; the check
/// stays so that widening the loader cannot serve a shape by accident.
fn supported(properties: &[Property]) -> bool {
    fn shape(ty: &EdmType, depth: usize) -> bool {
        match ty {
            EdmType::Primitive(_) | EdmType::Enum(_) => true,
            EdmType::Collection(elem) => {
                !matches!(elem, EdmType::Collection(_)) && shape(elem, depth)
            }
            EdmType::Complex(c) => depth < 8 && c.members.iter().all(|m| shape(&m.ty, depth + 1)),
        }
    }
    properties.iter().all(|p| shape(&p.ty, 0))
}

fn leak_str(s: &str) -> &'static str {
    Box::leak(s.to_string().into_boxed_str())
}

fn leak_slice<T>(v: Vec<T>) -> &'static [T] {
    Box::leak(v.into_boxed_slice())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Overlay {
    #[serde(rename = "//")]
    _note: Option<String>,
    sets: HashMap<String, SetOverlay>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SetOverlay {
    key: String,
    created: Option<String>,
    modified: Option<String>,
    #[serde(default)]
    indexed: Vec<String>,
    #[serde(default)]
    required_on_create: Vec<String>,
    #[serde(default)]
    one_of_on_create: Vec<String>,
    /// The only properties a PATCH may change; the others (besides managed ones) are read-only.
    updatable_only: Option<Vec<String>>,
    /// Paths (`property` or `property/member`) a PATCH body must give a non-null value.
    #[serde(default)]
    required_on_update: Vec<String>,
    max_top: Option<u32>,
    max_skip: Option<u64>,
    #[serde(default)]
    graph_throttle: Vec<RateLimit>,
    /// The numbered schema migration that creates the set's table (absent: no table yet).
    migration: Option<u32>,
    /// `"likeTheFamily"`: the annotations every annotated legacy set shares.
    capabilities: Option<String>,
    deprecation: Option<String>,
    #[serde(rename = "//rules")]
    rules_note: Option<String>,
    /// 200 or 204: a PATCH's status without `Prefer` (see [`Rules::update_status`]).
    update_status: Option<u16>,
    /// An `$orderby` value applied when a list names none.
    default_order: Option<String>,
    /// Per property: the documented rules on its values (see [`ValueOverlay`]), in the
    /// overlay's order.
    #[serde(default)]
    values: serde_json::Map<String, serde_json::Value>,
    permissions: Option<SetPermissions>,
    state_update: Option<StateUpdateOverlay>,
    /// Graph change notifications (subscriptions) can name the set.
    #[serde(default)]
    change_notifications: bool,
    #[serde(rename = "//source")]
    source_note: Option<String>,
}

/// One property's documented value rules (every field optional but `source`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ValueOverlay {
    min: Option<f64>,
    max: Option<f64>,
    #[serde(default)]
    one_of: Vec<String>,
    max_length: Option<usize>,
    default: Option<serde_json::Value>,
    /// A fixed value the service sets at create.
    set: Option<serde_json::Value>,
    /// `tenant`, `app`, `user` or `now`: a value the service sets at create from the caller.
    from: Option<String>,
    source: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateUpdateOverlay {
    property: String,
    members: serde_json::Map<String, serde_json::Value>,
    by: String,
    at: String,
    source: String,
}

const LIKE_THE_FAMILY: &str = "likeTheFamily";

struct Builder<'a> {
    reg: &'a Registry,
    version: &'static str,
    enums: Vec<Option<&'static EnumType>>,
    complex: Vec<Option<&'static ComplexType>>,
}

impl<'a> Builder<'a> {
    fn new(reg: &'a Registry, version: &'static str) -> Self {
        Builder {
            reg,
            version,
            enums: vec![None; reg.schema.enum_types.len()],
            complex: vec![None; reg.complex_types.len()],
        }
    }

    fn enum_type(&mut self, i: usize) -> Result<&'static EnumType, String> {
        if let Some(e) = self.enums[i] {
            return Ok(e);
        }
        let def = &self.reg.schema.enum_types[i];
        if def.is_flags {
            return Err(format!("enum {}: flags enums are not supported", def.name));
        }
        let members: Vec<(&'static str, i64)> =
            def.members.iter().map(|(n, v)| (leak_str(n), *v)).collect();
        let sentinel = members.iter().map(|(n, _)| *n).find(|n| *n == SENTINEL);
        let e: &'static EnumType = Box::leak(Box::new(EnumType {
            name: leak_str(&def.name),
            members: leak_slice(members),
            sentinel,
        }));
        self.enums[i] = Some(e);
        Ok(e)
    }

    fn complex_type(
        &mut self,
        i: usize,
        stack: &mut Vec<usize>,
    ) -> Result<&'static ComplexType, String> {
        if let Some(c) = self.complex[i] {
            return Ok(c);
        }
        let reg = self.reg;
        let def = &reg.complex_types[i];
        if stack.contains(&i) {
            return Err(format!(
                "complex type {} contains itself; recursive types are not supported",
                def.qualified_name
            ));
        }
        stack.push(i);
        let mut members = Vec::with_capacity(def.properties.len());
        for p in &def.properties {
            let ty = self
                .edm_type(p.ty, stack)
                .map_err(|e| format!("{}/{}: {e}", def.qualified_name, p.name))?;
            members.push(Member {
                name: leak_str(&p.name),
                ty,
                nullable: p.nullable,
            });
        }
        stack.pop();
        let c: &'static ComplexType = Box::leak(Box::new(ComplexType {
            name: leak_str(&def.name),
            open: def.open,
            members: leak_slice(members),
        }));
        self.complex[i] = Some(c);
        Ok(c)
    }

    fn edm_type(&mut self, ty: Resolved, stack: &mut Vec<usize>) -> Result<EdmType, String> {
        let element = match ty.kind {
            TypeKind::Primitive(p) => EdmType::Primitive(primitive(p)?),
            TypeKind::Enum(i) => EdmType::Enum(self.enum_type(i)?),
            TypeKind::Complex(i) => EdmType::Complex(self.complex_type(i, stack)?),
            TypeKind::Entity(i) => {
                return Err(format!(
                    "the entity type {} as a property type is not supported",
                    self.reg.entity_types[i].qualified_name
                ));
            }
        };
        Ok(if ty.collection {
            EdmType::Collection(Box::leak(Box::new(element)))
        } else {
            element
        })
    }

    /// The capabilities and deprecation every annotated legacy set shares (what
    /// `"likeTheFamily"` copies); an error if the annotated sets disagree.
    fn family(&self) -> Result<(csdl::Capabilities, csdl::Revision), String> {
        let mut caps: Option<&csdl::Capabilities> = None;
        let mut rev: Option<&csdl::Revision> = None;
        for s in &self.reg.entity_sets {
            let Some(r) = s.revisions.first() else {
                continue; // not legacy (the score sets live on in v1.0)
            };
            if s.capabilities == csdl::Capabilities::default() {
                continue; // not annotated: nothing to compare
            }
            match caps {
                Some(c) if *c != s.capabilities => {
                    return Err(format!(
                        "{}: its capabilities differ from the other legacy sets', so 'likeTheFamily' is ambiguous",
                        s.name
                    ));
                }
                _ => caps = Some(&s.capabilities),
            }
            match rev {
                Some(x) if x != r => {
                    return Err(format!(
                        "{}: its deprecation differs from the other legacy sets', so 'likeTheFamily' is ambiguous",
                        s.name
                    ));
                }
                _ => rev = Some(r),
            }
        }
        match (caps, rev) {
            (Some(c), Some(r)) => Ok((c.clone(), r.clone())),
            _ => Err("no annotated legacy set to copy 'likeTheFamily' from".into()),
        }
    }

    /// The version's entity types. `base` is the default version's (`None` when building
    /// it): a later version's sets must be among them, and its types take their storage
    /// layout ([`relayout`]) and index.
    fn build(
        mut self,
        overlay: &Overlay,
        base: Option<&[&'static EntityType]>,
    ) -> Result<Vec<&'static EntityType>, String> {
        let reg = self.reg;
        if base.is_none() {
            for name in overlay.sets.keys() {
                if reg.entity_set(name).is_none() {
                    return Err(format!(
                        "model/overlay.json: '{name}' is not an entity set of the metadata"
                    ));
                }
            }
        }
        let family = self.family();
        let mut out = Vec::with_capacity(reg.entity_sets.len());
        for set in &reg.entity_sets {
            let at = format!("model/overlay.json, set '{}'", set.name);
            let o = overlay
                .sets
                .get(&set.name)
                .ok_or_else(|| format!("{at}: missing (every set needs its key role)"))?;
            let ty = reg.entity_type_of(set);
            let base_ty = match base {
                None => None,
                Some(b) => Some(b.iter().copied().find(|e| e.collection == set.name).ok_or_else(
                    || {
                        format!(
                            "the {} metadata declares the set '{}', which the default version ({}) lacks: its rows would have no table",
                            self.version, set.name, VERSIONS[0].0
                        )
                    },
                )?),
            };
            // A rule may name a property only another version declares: it applies there.
            let elsewhere = |name: &str| base_ty.is_some_and(|b| b.property(name).is_some());
            let has = |name: &str, what: &str| -> Result<(), String> {
                if ty.property(name).is_some() || elsewhere(name) {
                    Ok(())
                } else {
                    Err(format!(
                        "{at}: {what} '{name}' is not a property of {}",
                        ty.qualified_name
                    ))
                }
            };
            if ty.key != [o.key.clone()] {
                return Err(format!(
                    "{at}: key '{}' is not the metadata's key {:?}",
                    o.key, ty.key
                ));
            }
            for (name, what) in [(&o.created, "created"), (&o.modified, "modified")] {
                if let Some(n) = name {
                    has(n, what)?;
                    let p = ty.property(n).map(|p| p.ty);
                    if p != Some(Resolved {
                        kind: TypeKind::Primitive(EdmPrimitive::DateTimeOffset),
                        collection: false,
                    }) {
                        return Err(format!("{at}: {what} '{n}' is not an Edm.DateTimeOffset"));
                    }
                }
            }
            for path in &o.required_on_update {
                let mut segments = path.split('/');
                let head = segments.next().unwrap_or("");
                has(head, "required-on-update property")?;
                if ty.property(head).is_none() {
                    continue; // checked where it is declared
                }
                let mut ty = ty.property(head).map(|p| p.ty);
                for seg in segments {
                    let member = match ty {
                        Some(Resolved {
                            kind: TypeKind::Complex(c),
                            collection: false,
                        }) => reg.complex_types[c].property(seg).map(|m| m.ty),
                        _ => None,
                    };
                    if member.is_none() {
                        return Err(format!(
                            "{at}: required-on-update path '{path}' names no member '{seg}'"
                        ));
                    }
                    ty = member;
                }
            }
            for n in o
                .indexed
                .iter()
                .chain(&o.required_on_create)
                .chain(&o.one_of_on_create)
                .chain(o.updatable_only.iter().flatten())
            {
                has(n, "property")?;
            }
            let family = || family.clone();
            let (caps, revision) = {
                let annotated = set.capabilities != csdl::Capabilities::default();
                let caps = match (o.capabilities.as_deref(), annotated) {
                    (None, _) => set.capabilities.clone(),
                    (Some(LIKE_THE_FAMILY), false) => family()?.0,
                    (Some(LIKE_THE_FAMILY), true) => {
                        return Err(format!(
                            "{at}: the metadata annotates this set's capabilities; drop the overlay's"
                        ));
                    }
                    (Some(other), _) => return Err(format!("{at}: capabilities '{other}'?")),
                };
                let revision = match (o.deprecation.as_deref(), set.revisions.first()) {
                    (None, r) => r.cloned(),
                    (Some(LIKE_THE_FAMILY), None) => Some(family()?.1),
                    (Some(LIKE_THE_FAMILY), Some(_)) => {
                        return Err(format!(
                            "{at}: the metadata annotates this set's deprecation; drop the overlay's"
                        ));
                    }
                    (Some(other), _) => return Err(format!("{at}: deprecation '{other}'?")),
                };
                (caps, revision)
            };
            let capabilities = Capabilities {
                annotated: caps != csdl::Capabilities::default(),
                countable: caps.countable.unwrap_or(true),
                filterable: caps.filterable.unwrap_or(true),
                sortable: caps.sortable.unwrap_or(true),
                select: caps.select.unwrap_or(true),
                top: caps.top.unwrap_or(true),
                skip: caps.skip.unwrap_or(true),
                expandable: caps.expandable.unwrap_or(true),
                searchable: caps.searchable.unwrap_or(true),
                insertable: caps.insertable.unwrap_or(true),
                updatable: caps.updatable.unwrap_or(true),
                deletable: caps.deletable.unwrap_or(true),
            };
            for n in caps.non_filterable.iter().chain(&caps.non_sortable) {
                has(n, "capability property path")?;
            }
            let mut properties = Vec::with_capacity(ty.properties.len());
            for p in &ty.properties {
                let edm = self
                    .edm_type(p.ty, &mut Vec::new())
                    .map_err(|e| format!("{}/{}: {e}", ty.qualified_name, p.name))?;
                let managed = if p.name == o.key {
                    Managed::Key
                } else if o.created.as_deref() == Some(p.name.as_str()) {
                    Managed::Created
                } else if o.modified.as_deref() == Some(p.name.as_str()) {
                    Managed::Modified
                } else {
                    Managed::Client
                };
                let indexed = o.indexed.contains(&p.name);
                if indexed && !matches!(edm, EdmType::Primitive(_) | EdmType::Enum(_)) {
                    return Err(format!(
                        "{at}: indexed '{}' is not a primitive or enum property",
                        p.name
                    ));
                }
                properties.push(Property {
                    name: leak_str(&p.name),
                    ty: edm,
                    nullable: p.nullable,
                    managed,
                    filterable: capabilities.filterable && !caps.non_filterable.contains(&p.name),
                    // A collection is filtered through any/all lambdas, never ordered.
                    sortable: capabilities.sortable
                        && !p.ty.collection
                        && !caps.non_sortable.contains(&p.name),
                    indexed,
                    declared: true,
                });
            }
            if let Some(b) = base_ty {
                properties = relayout(
                    &format!("{} {}", self.version, ty.qualified_name),
                    properties,
                    b,
                )?;
            }
            let index = |names: &[String]| -> Vec<usize> {
                names
                    .iter()
                    .filter_map(|n| properties.iter().position(|p| p.declared && p.name == n))
                    .collect()
            };
            let read_only = match &o.updatable_only {
                None => Vec::new(),
                Some(allowed) => properties
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| {
                        p.declared
                            && p.managed == Managed::Client
                            && !allowed.contains(&p.name.to_string())
                    })
                    .map(|(i, _)| i)
                    .collect(),
            };
            let values = value_rules(&at, &o.values, &properties)?;
            let state_update = match &o.state_update {
                None => None,
                Some(su) => Some(&*Box::leak(Box::new(state_update(&at, su, &properties)?))),
            };
            let update_status = o.update_status.unwrap_or(200);
            if update_status != 200 && update_status != 204 {
                return Err(format!(
                    "{at}: updateStatus {update_status} is not 200 or 204"
                ));
            }
            let rules = Rules {
                sources: leak_slice(
                    [&o.rules_note, &o.source_note]
                        .into_iter()
                        .flatten()
                        .map(|n| leak_str(n))
                        .collect(),
                ),
                update_status,
                default_order: o.default_order.as_deref().map(leak_str),
                values: leak_slice(values),
                permissions: o.permissions.clone().map(|p| &*Box::leak(Box::new(p))),
                state_update,
                change_notifications: o.change_notifications,
                required_on_update: leak_slice(
                    o.required_on_update.iter().map(|p| leak_str(p)).collect(),
                ),
                required_on_create: leak_slice(index(&o.required_on_create)),
                one_of_on_create: leak_slice(index(&o.one_of_on_create)),
                read_only: leak_slice(read_only),
                max_top: o.max_top,
                max_skip: o.max_skip,
                graph_throttle: leak_slice(o.graph_throttle.clone()),
            };
            if let Some(bad) = rules
                .graph_throttle
                .iter()
                .find(|r| r.requests == 0 || r.seconds == 0)
            {
                return Err(format!(
                    "{at}: graphThrottle {bad:?} needs non-zero requests and seconds"
                ));
            }
            let deprecation = revision
                .filter(|r| r.kind.as_deref() == Some("Deprecated"))
                .map(|r| Deprecation {
                    version: r.version.as_deref().map(leak_str),
                    date: r.date.as_deref().map(leak_str),
                    removal_date: r.removal_date.as_deref().map(leak_str),
                    description: r.description.as_deref().map(leak_str),
                });
            let def = reg
                .schema
                .entity_type(&ty.qualified_name)
                .ok_or_else(|| format!("{at}: the type is not declared"))?;
            let served = supported(&properties) && o.migration.is_some();
            let index = base_ty.map_or(out.len(), |b| b.index);
            out.push(&*Box::leak(Box::new(EntityType {
                version: self.version,
                name: leak_str(&ty.name),
                base_type: leak_str(def.base_type.as_deref().unwrap_or("")),
                open: ty.open,
                collection: leak_str(&set.name),
                singleton: leak_str(&set.singleton),
                properties: leak_slice(properties),
                table: leak_str(&snake_case(&set.name)),
                capabilities,
                deprecation,
                rules,
                actions: leak_slice(reg.actions_of(set).map(|a| leak_str(&a.name)).collect()),
                migration: o.migration,
                served,
                index,
            })));
        }
        Ok(out)
    }
}

/// The overlay's `values` of a set, checked against its properties: a rule must fit the
/// property's type (bounds for numbers, lists and lengths for strings, `now` for a
/// DateTimeOffset, `tenant`/`app`/`user` for a string).
fn value_rules(
    at: &str,
    values: &serde_json::Map<String, serde_json::Value>,
    properties: &[Property],
) -> Result<Vec<ValueRule>, String> {
    let mut out = Vec::with_capacity(values.len());
    for (name, v) in values {
        let at = format!("{at}, values '{name}'");
        let o: ValueOverlay =
            serde_json::from_value(v.clone()).map_err(|e| format!("{at}: {e}"))?;
        let Some(i) = properties.iter().position(|p| p.name == name) else {
            return Err(format!("{at}: not a property of the type"));
        };
        let ty = &properties[i].ty;
        let is = |p: Primitive| matches!(ty, EdmType::Primitive(q) if *q == p);
        let number = is(Primitive::Int32) || is(Primitive::Int64) || is(Primitive::Double);
        let string = is(Primitive::String);
        if (o.min.is_some() || o.max.is_some()) && !number {
            return Err(format!("{at}: min/max need a number property"));
        }
        if (!o.one_of.is_empty() || o.max_length.is_some()) && !string {
            return Err(format!("{at}: oneOf/maxLength need a string property"));
        }
        let on_create = match (&o.set, o.from.as_deref()) {
            (Some(_), Some(_)) => return Err(format!("{at}: both 'set' and 'from'")),
            (Some(v), None) => Some(OnCreate::Value(Box::leak(Box::new(v.clone())))),
            (None, Some(from)) => Some(OnCreate::From(match from {
                "tenant" if string => CallerValue::Tenant,
                "app" if string => CallerValue::App,
                "user" if string => CallerValue::User,
                "now" if is(Primitive::DateTimeOffset) => CallerValue::Now,
                other => {
                    return Err(format!(
                        "{at}: 'from': '{other}' does not fit {} (tenant, app, user: strings; now: a DateTimeOffset)",
                        ty.csdl_name()
                    ));
                }
            })),
            (None, None) => None,
        };
        out.push(ValueRule {
            property: i,
            min: o.min,
            max: o.max,
            one_of: leak_slice(o.one_of.iter().map(|s| leak_str(s)).collect()),
            max_length: o.max_length,
            default: o.default.map(|d| &*Box::leak(Box::new(d))),
            on_create,
            source: leak_str(&o.source),
        });
    }
    Ok(out)
}

/// The overlay's `stateUpdate`, checked: a collection of a complex type whose members it names.
fn state_update(
    at: &str,
    o: &StateUpdateOverlay,
    properties: &[Property],
) -> Result<StateUpdate, String> {
    let at = format!("{at}, stateUpdate");
    let i = properties
        .iter()
        .position(|p| p.name == o.property)
        .ok_or_else(|| format!("{at}: '{}' is not a property", o.property))?;
    let EdmType::Collection(EdmType::Complex(c)) = &properties[i].ty else {
        return Err(format!(
            "{at}: '{}' is not a collection of a complex type",
            o.property
        ));
    };
    let mut members = Vec::new();
    for (name, allowed) in &o.members {
        if c.member_index(name).is_none() {
            return Err(format!("{at}: '{name}' is not a member of {}", c.name));
        }
        let allowed: Vec<String> =
            serde_json::from_value(allowed.clone()).map_err(|e| format!("{at}: {name}: {e}"))?;
        members.push((
            leak_str(name),
            leak_slice(allowed.iter().map(|s| leak_str(s)).collect()),
        ));
    }
    for name in [&o.by, &o.at] {
        if c.member_index(name).is_none() {
            return Err(format!("{at}: '{name}' is not a member of {}", c.name));
        }
    }
    Ok(StateUpdate {
        property: i,
        members: leak_slice(members),
        by: leak_str(&o.by),
        at: leak_str(&o.at),
        source: leak_str(&o.source),
    })
}

/// `own` (a later version's properties of a set) in the default version's order `base`: a
/// property the version lacks is kept, not declared; a property only the version declares, or
/// one whose type differs, is a load error (the set's one table could not hold it).
fn relayout(at: &str, own: Vec<Property>, base: &EntityType) -> Result<Vec<Property>, String> {
    let mut own: Vec<Option<Property>> = own.into_iter().map(Some).collect();
    let mut out = Vec::with_capacity(base.properties.len());
    for b in base.properties {
        let mine = own
            .iter_mut()
            .find(|p| p.as_ref().is_some_and(|p| p.name == b.name))
            .and_then(Option::take);
        out.push(match mine {
            Some(p) if p.ty.csdl_name() != b.ty.csdl_name() => {
                return Err(format!(
                    "{at}/{}: {} here, {} in {} (the set's one table cannot hold both)",
                    p.name,
                    p.ty.csdl_name(),
                    b.ty.csdl_name(),
                    VERSIONS[0].0
                ));
            }
            Some(p) => Property {
                // The storage's index, so the versions agree on the schema.
                indexed: b.indexed,
                ..p
            },
            None => Property {
                name: b.name,
                ty: b.ty,
                nullable: b.nullable,
                managed: b.managed,
                filterable: false,
                sortable: false,
                indexed: b.indexed,
                declared: false,
            },
        });
    }
    if let Some(p) = own.into_iter().flatten().next() {
        return Err(format!(
            "{at}/{}: not declared by the default version ({}), whose layout every version's rows share",
            p.name, VERSIONS[0].0
        ));
    }
    Ok(out)
}

fn primitive(p: EdmPrimitive) -> Result<Primitive, String> {
    Ok(match p {
        EdmPrimitive::String => Primitive::String,
        EdmPrimitive::Boolean => Primitive::Boolean,
        EdmPrimitive::DateTimeOffset => Primitive::DateTimeOffset,
        EdmPrimitive::Int32 => Primitive::Int32,
        EdmPrimitive::Int64 => Primitive::Int64,
        EdmPrimitive::Double => Primitive::Double,
        other => return Err(format!("{} is not supported", other.edm_name())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profiles() -> &'static EntityType {
        catalog()
            .set("cloudAppSecurityProfiles")
            .expect("the catalog has cloudAppSecurityProfiles")
    }

    /// The catalog's cloudAppSecurityProfile is, fact for fact, the hand-written table graphsec
    /// served before the catalog existed (frozen here): same order, types, nullability, managed
    /// roles, filterable/sortable flags and indexes, so existing databases and clients see no
    /// change.
    #[test]
    fn cloud_app_security_profile_equals_the_former_static_table() {
        use Managed::*;
        // (name, CSDL type, nullable, managed, filterable, sortable, indexed)
        let frozen: &[(&str, &str, bool, Managed, bool, bool, bool)] = &[
            ("id", "Edm.String", false, Key, true, true, false),
            (
                "azureSubscriptionId",
                "Edm.String",
                true,
                Client,
                true,
                true,
                false,
            ),
            (
                "azureTenantId",
                "Edm.String",
                true,
                Client,
                true,
                true,
                true,
            ),
            (
                "createdDateTime",
                "Edm.DateTimeOffset",
                true,
                Created,
                true,
                true,
                true,
            ),
            (
                "deploymentPackageUrl",
                "Edm.String",
                true,
                Client,
                true,
                true,
                false,
            ),
            (
                "destinationServiceName",
                "Edm.String",
                true,
                Client,
                true,
                true,
                false,
            ),
            ("isSigned", "Edm.Boolean", true, Client, true, true, false),
            (
                "lastModifiedDateTime",
                "Edm.DateTimeOffset",
                true,
                Modified,
                true,
                true,
                true,
            ),
            ("manifest", "Edm.String", true, Client, true, true, false),
            ("name", "Edm.String", true, Client, true, true, true),
            (
                "permissionsRequired",
                "microsoft.graph.applicationPermissionsRequired",
                true,
                Client,
                true,
                true,
                false,
            ),
            ("platform", "Edm.String", true, Client, true, true, true),
            ("policyName", "Edm.String", true, Client, true, true, false),
            ("publisher", "Edm.String", true, Client, true, true, true),
            ("riskScore", "Edm.String", true, Client, true, true, false),
            (
                "tags",
                "Collection(Edm.String)",
                true,
                Client,
                true,
                false,
                false,
            ),
            ("type", "Edm.String", true, Client, true, true, false),
            (
                "vendorInformation",
                "microsoft.graph.securityVendorInformation",
                true,
                Client,
                true,
                true,
                false,
            ),
        ];
        let e = profiles();
        assert_eq!(e.name, "cloudAppSecurityProfile");
        assert_eq!(e.base_type, "microsoft.graph.entity");
        assert!(e.open);
        assert_eq!(e.collection, "cloudAppSecurityProfiles");
        assert_eq!(e.singleton, "security");
        assert_eq!(e.table, "cloud_app_security_profiles");
        assert!(e.served);
        let got: Vec<_> = e
            .properties
            .iter()
            .map(|p| {
                (
                    p.name,
                    p.ty.csdl_name(),
                    p.nullable,
                    p.managed,
                    p.filterable,
                    p.sortable,
                    p.indexed,
                )
            })
            .collect();
        let want: Vec<_> = frozen
            .iter()
            .map(|&(n, t, nl, m, f, s, i)| (n, t.to_string(), nl, m, f, s, i))
            .collect();
        assert_eq!(got, want);
        let EdmType::Enum(perm) = e.property("permissionsRequired").unwrap().ty else {
            panic!("permissionsRequired is an enum");
        };
        assert_eq!(
            perm.members,
            [
                ("unknown", 0),
                ("anonymous", 1),
                ("guest", 2),
                ("user", 3),
                ("administrator", 4),
                ("system", 5),
                ("unknownFutureValue", 127),
            ]
        );
        assert_eq!(perm.sentinel, Some("unknownFutureValue"));
        assert_eq!(perm.resolve("4"), Some(("administrator", 4)));
        assert_eq!(perm.resolve("String"), None);
        let EdmType::Complex(vendor) = e.property("vendorInformation").unwrap().ty else {
            panic!("vendorInformation is complex");
        };
        assert!(!vendor.open && vendor.is_flat());
        let members: Vec<_> = vendor
            .members
            .iter()
            .map(|m| (m.name, m.ty.csdl_name(), m.nullable))
            .collect();
        assert_eq!(
            members,
            [
                ("provider", "Edm.String".to_string(), true),
                ("providerVersion", "Edm.String".to_string(), true),
                ("subProvider", "Edm.String".to_string(), true),
                ("vendor", "Edm.String".to_string(), true),
            ]
        );
        assert!(e.capabilities.annotated && e.capabilities.filterable && e.capabilities.top);
        let d = e.deprecation.expect("deprecated in the metadata");
        assert_eq!(d.date, Some("2024-04-10"));
        assert_eq!(d.removal_date, Some("2026-04-10"));
        assert!(e.actions.is_empty());
        assert_eq!(
            e.rules,
            Rules {
                sources: e.rules.sources,
                ..Rules::NONE
            }
        );
    }

    #[test]
    fn every_set_loads_with_its_overlay() {
        let c = catalog();
        assert_eq!(c.sets().len(), 12);
        for s in c.sets() {
            assert_eq!(s.key().name, "id", "{}", s.collection);
            assert!(s.capabilities.annotated, "{}", s.collection);
            assert_eq!(c.set(&s.collection.to_uppercase()), Some(*s));
        }
        assert_eq!(c.served().count(), 12, "every set of the slice is served");
        assert!(c.sets().iter().all(|s| s.migration.is_some()));
        assert_eq!(c.default_set().collection, "cloudAppSecurityProfiles");
        let alerts = c.set("alerts").unwrap();
        assert_eq!(alerts.rules.max_top, Some(1000));
        assert_eq!(alerts.rules.max_skip, Some(500));
        let ti = catalog().set("tiIndicators").unwrap();
        assert_eq!(
            ti.rules.graph_throttle,
            &[RateLimit {
                requests: 1000,
                seconds: 60
            }]
        );
        assert_eq!(alerts.actions, ["updateAlerts"]);
        assert!(!alerts.rules.read_only.is_empty());
        let ti = c.set("tiIndicators").unwrap();
        assert_eq!(ti.rules.required_on_create.len(), 6);
        assert_eq!(
            ti.properties[ti.managed_index(Managed::Created).unwrap()].name,
            "ingestedDateTime"
        );
        assert_eq!(ti.managed_index(Managed::Modified), None);
        for name in ["fileSecurityProfiles", "providerTenantSettings"] {
            assert!(c.set(name).unwrap().deprecation.is_some(), "{name}");
        }
        for name in ["secureScores", "secureScoreControlProfiles"] {
            assert!(c.set(name).unwrap().deprecation.is_none(), "{name}");
        }
        assert_eq!(
            snake_case("secureScoreControlProfiles"),
            "secure_score_control_profiles"
        );
    }

    /// The per-version rule before real metadata needs it (issue 20): a version whose type
    /// lacks a property the default version declares keeps the set's layout, never shows,
    /// resolves or accepts the property, and a write through it keeps the stored value.
    #[test]
    fn a_version_without_a_property_omits_it_and_keeps_its_value() {
        use crate::model::validate::{self, Mode};
        let line = "        <Property Name=\"activityGroupName\" Type=\"Edm.String\" />\n";
        let v1 = csdl::LEGACY_SECURITY_V1_CSDL;
        assert_eq!(v1.matches(line).count(), 1);
        let slice = v1.replacen(line, "", 1);
        let slice: &'static str = Box::leak(slice.into_boxed_str());
        let cats = load_versions(&[VERSIONS[0], ("vtest", slice)]).unwrap();
        let (beta, test) = (
            cats[0].set("alerts").unwrap(),
            cats[1].set("alerts").unwrap(),
        );
        assert_eq!(test.version, "vtest");
        assert_eq!(test.index, beta.index);
        assert_eq!(test.properties.len(), beta.properties.len());
        let p = test
            .undeclared("activityGroupName")
            .expect("kept, undeclared");
        assert!(!p.declared && !p.filterable && !p.sortable);
        assert!(test.property("activityGroupName").is_none());
        assert!(test.index_of("activityGroupName").is_none());
        assert!(crate::odata::names::property(test, "activityGroupName").is_none());
        assert!(crate::odata::names::property(test, "ACTIVITYGROUPNAME").is_none());
        assert!(crate::odata::names::property(beta, "activityGroupName").is_some());
        // Written through beta.
        let body = serde_json::json!({
            "azureTenantId": "t", "severity": "high", "status": "newAlert",
            "title": "x", "activityGroupName": "APT-1"
        });
        let changes =
            validate::changes_from_json(beta, &body, Mode::Create, Default::default()).unwrap();
        let mut stored = crate::model::record::Record::create(changes, "a1".into(), 1).unwrap();
        // Read through the test version: the property is not in its answer.
        stored.entity = test;
        let shown = stored.to_json(None);
        assert!(!shown.contains_key("activityGroupName"), "{shown:?}");
        assert_eq!(shown["title"], "x");
        // Sent through the test version: refused, naming the version that declares it.
        let bad = serde_json::json!({"activityGroupName": "APT-2"});
        let e =
            validate::changes_from_json(test, &bad, Mode::Patch, Default::default()).unwrap_err();
        assert!(
            e.0.contains("activityGroupName") && e.0.contains("/beta"),
            "{}",
            e.0
        );
        // A PATCH through the test version keeps the value it cannot see.
        let patch = serde_json::json!({"status": "resolved",
            "vendorInformation": {"provider": "p", "vendor": "v"}});
        let changes =
            validate::changes_from_json(test, &patch, Mode::Patch, Default::default()).unwrap();
        stored.apply(changes, 2).unwrap();
        stored.entity = beta;
        let after = stored.to_json(None);
        assert_eq!(after["activityGroupName"], "APT-1");
        assert_eq!(after["status"], "resolved");
    }

    /// A version that declares what the default version lacks, or declares it with another
    /// type, cannot share the set's table: a load error naming it.
    #[test]
    fn a_version_cannot_outgrow_the_default_layout() {
        let v1 = csdl::LEGACY_SECURITY_V1_CSDL;
        let line = "        <Property Name=\"activityGroupName\" Type=\"Edm.String\" />\n";
        let extra = v1.replacen(
            line,
            &format!("{line}        <Property Name=\"newInV1\" Type=\"Edm.String\" />\n"),
            1,
        );
        let e = load_versions(&[VERSIONS[0], ("vtest", Box::leak(extra.into_boxed_str()))])
            .unwrap_err();
        assert!(e.contains("newInV1"), "{e}");
        let retyped = v1.replacen(
            line,
            "        <Property Name=\"activityGroupName\" Type=\"Edm.Int32\" />\n",
            1,
        );
        let e = load_versions(&[VERSIONS[0], ("vtest", Box::leak(retyped.into_boxed_str()))])
            .unwrap_err();
        assert!(
            e.contains("activityGroupName") && e.contains("Edm.Int32"),
            "{e}"
        );
    }

    #[test]
    fn v1_has_the_three_sets_with_betas_layout() {
        let v1 = version("v1.0").expect("v1.0 is served");
        let names: Vec<&str> = v1.sets().iter().map(|s| s.collection).collect();
        assert_eq!(
            names,
            ["alerts", "secureScoreControlProfiles", "secureScores"]
        );
        for s in v1.sets() {
            let b = catalog().set(s.collection).unwrap();
            assert_eq!(s.index, b.index);
            assert!(s.served && s.version == "v1.0" && b.version == "beta");
            assert!(
                s.properties.iter().all(|p| p.declared),
                "identical types today"
            );
            assert_eq!(s.rules, b.rules, "{}", s.collection);
            assert_ne!(*s, b, "types of different versions are different types");
        }
        assert!(v1.set("alerts").unwrap().actions.is_empty());
        assert_eq!(catalog().set("alerts").unwrap().actions, ["updateAlerts"]);
        assert!(version("V1.0").is_some() && version("v2.0").is_none());
    }

    #[test]
    fn overlay_names_are_checked_against_the_metadata() {
        let reg = Registry::legacy_security().unwrap();
        let load = |text: &str| {
            let o: Overlay = serde_json::from_str(text).map_err(|e| e.to_string())?;
            Builder::new(&reg, "beta").build(&o, None).map(|_| ())
        };
        let bad = OVERLAY.replacen("\"platform\"", "\"platfrom\"", 1);
        assert!(load(&bad).unwrap_err().contains("platfrom"));
        let bad = OVERLAY.replacen("\"alerts\"", "\"alertz\"", 1);
        assert!(load(&bad).unwrap_err().contains("alertz"));
        let bad = OVERLAY.replacen("\"maxTop\"", "\"maxtop\"", 1);
        assert!(load(&bad).is_err());
        // The metadata annotates alerts: an overlay annotation for it is a second source.
        let bad = OVERLAY.replacen(
            "\"maxTop\": 1000,",
            "\"maxTop\": 1000, \"capabilities\": \"likeTheFamily\",",
            1,
        );
        assert!(load(&bad).unwrap_err().contains("drop the overlay"));
        assert!(load(OVERLAY).is_ok());
    }
}
