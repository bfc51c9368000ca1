//! JSON body -> [`Changes`], by walking the entity type. Every client mistake becomes a
//! [`BodyError`] naming the property and the expected Edm type; nothing here panics.

use std::fmt::{self, Display};

use serde_json::{Map, Value as Json};

use super::edm::{self, ComplexType, EdmType, EnumType, Primitive};
use super::entity::{CallerValue, EntityType, Managed, OnCreate, StateUpdate, ValueRule};
use super::record::{Change, Changes, Value};

/// The most bytes (UTF-8) a string of an indexed property may have, on every store alike:
/// PostgreSQL's btree refuses index entries over about 2,700 bytes (tenant, value and id
/// together), SQLite has no such limit; one rule keeps `export | import` between them working.
pub const MAX_INDEXED_STRING_BYTES: usize = 1024;

/// Why a body was refused (rendered as 400 BadRequest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyError(pub String);

/// What the body is for.
#[derive(Debug, Clone, Copy)]
pub enum Mode {
    Create,
    /// A PATCH: the URL names the entity, so a key value in the body never changes which one.
    Patch,
}

/// Validation switches from configuration.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Refuse undeclared properties instead of storing them as dynamic properties.
    pub strict: bool,
    /// The most bytes an entity may take on the wire once the write is applied (about, see
    /// `Record::approx_wire_bytes`; `--max-entity-bytes`), so PATCHes, each within the body
    /// limit, cannot grow one entity without bound. 0: no limit.
    pub max_entity_bytes: usize,
}

/// The longest client-chosen id, in bytes.
pub const MAX_ID_BYTES: usize = 256;
/// The longest dynamic property name, in bytes.
pub const MAX_DYNAMIC_NAME_BYTES: usize = 128;

fn err<T>(msg: impl Into<String>) -> Result<T, BodyError> {
    Err(BodyError(msg.into()))
}

fn json_kind(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

/// Where a value sits in the body (`vendorInformation/provider`, `tags[2]`), for error
/// messages: written out only when one is, so valid bodies build no path strings.
struct At<'a>(&'a dyn Display, Step<'a>);

enum Step<'a> {
    Member(&'a str),
    Item(usize),
}

impl Display for At<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1 {
            Step::Member(k) => write!(f, "{}/{k}", self.0),
            Step::Item(i) => write!(f, "{}[{i}]", self.0),
        }
    }
}

/// Checks an `@odata.type` annotation against the expected qualified type name.
fn check_type_annotation(v: &Json, expected: &str, place: &dyn Display) -> Result<(), BodyError> {
    let ok = match v {
        Json::String(s) => s.strip_prefix('#').unwrap_or(s) == expected,
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        err(format!(
            "Invalid @odata.type {} on {place}: expected '#{expected}'.",
            match v {
                Json::String(s) => format!("'{s}'"),
                other => json_kind(other).to_string(),
            }
        ))
    }
}

/// Is this an OData simple identifier (what a dynamic property name must be to be selectable)?
pub fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || c == '_')
        && name.len() <= MAX_DYNAMIC_NAME_BYTES
}

/// Checks a client-chosen id.
pub fn check_id(id: &str) -> Result<(), BodyError> {
    if id.is_empty() {
        return err("The id must not be empty.");
    }
    if id.len() > MAX_ID_BYTES {
        return err(format!("The id is longer than {MAX_ID_BYTES} bytes."));
    }
    if let Some(c) = id
        .chars()
        .find(|c| matches!(c, '/' | '?' | '#') || c.is_control())
    {
        return err(format!("The id must not contain {c:?}."));
    }
    Ok(())
}

fn primitive(p: Primitive, v: &Json, name: &dyn Display) -> Result<Value, BodyError> {
    match (p, v) {
        (_, Json::Null) => Ok(Value::Null),
        (Primitive::String, Json::String(s)) => Ok(Value::String(s.clone())),
        (Primitive::Boolean, Json::Bool(b)) => Ok(Value::Bool(*b)),
        (Primitive::DateTimeOffset, Json::String(s)) => match edm::parse_datetime(s) {
            Ok(t) => Ok(Value::DateTime(t)),
            Err(e) => err(format!(
                "Invalid value '{s}' for property '{name}' of type Edm.DateTimeOffset: {}.",
                e.0
            )),
        },
        (Primitive::Int32, Json::Number(n)) => match n.as_i64().map(i32::try_from) {
            Some(Ok(i)) => Ok(Value::Int(i64::from(i))),
            _ => err(format!(
                "Invalid value {n} for property '{name}': expected an Edm.Int32 (an integer from {} to {}).",
                i32::MIN,
                i32::MAX
            )),
        },
        (Primitive::Int64, Json::Number(n)) => match n.as_i64() {
            Some(i) => Ok(Value::Int(i)),
            None => err(format!(
                "Invalid value {n} for property '{name}': expected an Edm.Int64 (an integer from {} to {}).",
                i64::MIN,
                i64::MAX
            )),
        },
        (Primitive::Double, Json::Number(n)) => match n.as_f64() {
            Some(f) if f.is_finite() => Ok(Value::Double(f)),
            _ => err(format!(
                "Invalid value {n} for property '{name}': expected a finite Edm.Double."
            )),
        },
        // OData JSON §7.1 spells the IEEE special values as these strings; graphsec stores
        // finite doubles only (SQLite turns NaN into NULL, JSON has no infinity).
        (Primitive::Double, Json::String(s)) if matches!(s.as_str(), "INF" | "-INF" | "NaN") => {
            err(format!(
                "Invalid value '{s}' for property '{name}': this server stores finite Edm.Double values only."
            ))
        }
        (p, other) => err(format!(
            "Invalid value for property '{name}': expected {} but found {}.",
            p.edm_name(),
            json_kind(other)
        )),
    }
}

/// A member of an open complex type that it does not declare: kept verbatim (CSDL XML §9.1.3),
/// under the same naming rule as an open entity type's dynamic properties.
fn check_extra_member(key: &str, c: &ComplexType, place: &dyn Display) -> Result<(), BodyError> {
    if is_identifier(key) {
        return Ok(());
    }
    err(format!(
        "'{key}' (in '{place}') is not a valid name for an undeclared member of the open type '{}': use letters, digits and '_' (at most {MAX_DYNAMIC_NAME_BYTES} bytes), starting with a letter or '_'.",
        c.qualified_name()
    ))
}

/// A declared member that differs from `key` only in case, if any: such a key is refused rather
/// than kept as an undeclared member a query could never tell apart.
fn case_twin(c: &ComplexType, key: &str) -> Option<&'static str> {
    c.members
        .iter()
        .find(|m| m.name != key && m.name.eq_ignore_ascii_case(key))
        .map(|m| m.name)
}

fn unknown_member(c: &ComplexType, key: &str, place: &dyn Display) -> BodyError {
    BodyError(format!(
        "Property '{key}' does not exist on type '{}' (in '{place}'). Valid members: {}.",
        c.qualified_name(),
        c.members
            .iter()
            .map(|m| m.name)
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

fn null_refused(place: &dyn Display, ty: &EdmType) -> BodyError {
    BodyError(format!(
        "Invalid value for '{place}': it is not nullable; expected {}.",
        ty.csdl_name()
    ))
}

/// An enum member from its wire form; `sentinel_ok` lets the evolvable-enum sentinel through as
/// `None` (the caller decides what it means).
fn enum_value(
    e: &'static EnumType,
    v: &Json,
    place: &dyn Display,
    sentinel_ok: bool,
) -> Result<Option<i64>, BodyError> {
    match v {
        Json::String(s) => match e.resolve(s) {
            Some((member, _)) if Some(member) == e.sentinel => {
                if sentinel_ok {
                    Ok(None)
                } else {
                    err(format!(
                        "Invalid value '{s}' for property '{place}': '{member}' is a sentinel that clients may not send. Valid values: {}.",
                        valid_members(e)
                    ))
                }
            }
            Some((_, value)) => Ok(Some(value)),
            None => err(format!(
                "Invalid value '{s}' for property '{place}' of enum type {}. Valid values: {}.",
                e.qualified_name(),
                e.member_list()
            )),
        },
        other => err(format!(
            "Invalid value for property '{place}': expected a member name of {} but found {}.",
            e.qualified_name(),
            json_kind(other)
        )),
    }
}

/// A whole value of `ty` from its wire form (`null` included: nullability is the caller's).
/// Complex values are complete: members absent from the body are null, and a non-nullable
/// member must be present with a value (CSDL `Nullable="false"`).
fn whole(ty: &EdmType, v: &Json, place: &dyn Display) -> Result<Value, BodyError> {
    if v.is_null() {
        return Ok(Value::Null);
    }
    match ty {
        EdmType::Primitive(p) => primitive(*p, v, place),
        EdmType::Enum(e) => Ok(enum_value(e, v, place, false)?.map_or(Value::Null, Value::Enum)),
        EdmType::Collection(elem) => {
            let Json::Array(items) = v else {
                return err(format!(
                    "Invalid value for property '{place}': expected {} but found {}.",
                    ty.csdl_name(),
                    json_kind(v)
                ));
            };
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                if item.is_null() {
                    return err(format!(
                        "Invalid value for property '{place}': item {i} is null; expected {}.",
                        elem.csdl_name()
                    ));
                }
                out.push(whole(elem, item, &At(place, Step::Item(i)))?);
            }
            Ok(Value::Collection(out))
        }
        EdmType::Complex(c) => {
            let Change::Merge(members, extra) = merge(c, v, place, Mode::Create)? else {
                return err(format!("Invalid value for property '{place}'."));
            };
            let mut values = Vec::with_capacity(members.len());
            for (m, change) in c.members.iter().zip(members) {
                let value = match change {
                    Some(Change::Set(v)) => v,
                    // Nested merges only come from PATCH bodies.
                    Some(Change::Merge(..) | Change::Append(..)) | None => Value::Null,
                };
                if value == Value::Null && !m.nullable {
                    return Err(null_refused(&At(place, Step::Member(m.name)), &m.ty));
                }
                values.push(value);
            }
            Ok(Value::complex(c, values, extra))
        }
    }
}

/// A complex value from its wire form as a member-wise change: `Change::Merge` with one entry
/// per declared member (`None` = absent) and the open type's undeclared members. In a PATCH,
/// complex members merge recursively, an enum member set to the sentinel is left as it is, and
/// collections replace; in a create every member is a whole value.
fn merge(
    c: &'static ComplexType,
    v: &Json,
    place: &dyn Display,
    mode: Mode,
) -> Result<Change, BodyError> {
    let Json::Object(obj) = v else {
        return err(format!(
            "Invalid value for property '{place}': expected an object of type {} but found {}.",
            c.qualified_name(),
            json_kind(v)
        ));
    };
    let mut members: Vec<Option<Change>> = vec![None; c.members.len()];
    let mut extra = Map::new();
    for (k, mv) in obj {
        if k == "@odata.type" {
            check_type_annotation(mv, &c.qualified_name(), &format!("'{place}'"))?;
            continue;
        }
        if k.contains('@') {
            continue;
        }
        let here = At(place, Step::Member(k));
        let Some(i) = c.member_index(k) else {
            if !c.open {
                return Err(unknown_member(c, k, place));
            }
            if let Some(twin) = case_twin(c, k) {
                return err(format!(
                    "Property '{k}' (in '{place}') differs only in case from the declared member '{twin}' of type '{}'; names in a request body are case-sensitive.",
                    c.qualified_name()
                ));
            }
            check_extra_member(k, c, place)?;
            extra.insert(k.clone(), mv.clone());
            continue;
        };
        let m = &c.members[i];
        members[i] = match (&m.ty, mode) {
            _ if mv.is_null() => {
                if !m.nullable {
                    return Err(null_refused(&here, &m.ty));
                }
                Some(Change::Set(Value::Null))
            }
            (EdmType::Complex(inner), Mode::Patch) => Some(merge(inner, mv, &here, mode)?),
            (EdmType::Enum(e), Mode::Patch) => {
                enum_value(e, mv, &here, true)?.map(|n| Change::Set(Value::Enum(n)))
            }
            (ty, _) => Some(Change::Set(whole(ty, mv, &here)?)),
        };
    }
    Ok(Change::Merge(members, extra))
}

/// Validates one declared property's JSON value. `Ok(None)` means "leave it as it is" (the
/// evolvable-enum sentinel in a PATCH).
fn declared(
    ty: &EdmType,
    v: &Json,
    name: &dyn Display,
    mode: Mode,
) -> Result<Option<Change>, BodyError> {
    match ty {
        _ if v.is_null() => Ok(Some(Change::Set(Value::Null))),
        EdmType::Enum(e) => Ok(enum_value(e, v, name, matches!(mode, Mode::Patch))?
            .map(|n| Change::Set(Value::Enum(n)))),
        // A PATCH merges a complex value member by member (OData 4.01 §11.4.3); a create
        // writes it whole.
        EdmType::Complex(c) if matches!(mode, Mode::Patch) => Ok(Some(merge(c, v, name, mode)?)),
        _ => Ok(Some(Change::Set(whole(ty, v, name)?))),
    }
}

fn valid_members(e: &edm::EnumType) -> String {
    e.members
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| Some(*n) != e.sentinel)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether a JSON value holds a U+0000 anywhere (keys included), allocating nothing.
fn has_nul(v: &Json) -> bool {
    match v {
        Json::String(s) => s.contains('\0'),
        Json::Array(items) => items.iter().any(has_nul),
        Json::Object(m) => m.iter().any(|(k, item)| k.contains('\0') || has_nul(item)),
        _ => false,
    }
}

/// Finds a U+0000 anywhere in a JSON value (keys included). PostgreSQL cannot store it in TEXT
/// or JSONB and SQLite's string functions stop at it, so it is refused on every store alike.
fn find_nul(v: &Json, path: &str) -> Option<String> {
    match v {
        Json::String(s) if s.contains('\0') => Some(path.to_string()),
        Json::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| find_nul(item, &format!("{path}[{i}]"))),
        Json::Object(m) => m.iter().find_map(|(k, item)| {
            let here = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}/{k}")
            };
            if k.contains('\0') {
                Some(here)
            } else {
                find_nul(item, &here)
            }
        }),
        _ => None,
    }
}

/// Turns a parsed JSON body into [`Changes`] to an entity of `entity` for a create or a PATCH.
pub fn changes_from_json(
    entity: &'static EntityType,
    body: &Json,
    mode: Mode,
    opts: Options,
) -> Result<Changes, BodyError> {
    // `find_nul` builds the path of every value it visits; look for the error first.
    if has_nul(body)
        && let Some(place) = find_nul(body, "")
    {
        return err(format!(
            "The value of '{}' contains the character U+0000, which is not supported.",
            place.replace('\0', "\\u0000")
        ));
    }
    let Json::Object(obj) = body else {
        return err(format!(
            "The request body must be a JSON object representing a {}, not {}.",
            entity.qualified_name(),
            json_kind(body)
        ));
    };
    changes_from_map(entity, obj, mode, opts)
}

fn changes_from_map(
    entity: &'static EntityType,
    obj: &Map<String, Json>,
    mode: Mode,
    opts: Options,
) -> Result<Changes, BodyError> {
    if let Some(reference) = obj.get("@odata.id")
        && matches!(mode, Mode::Create)
        && obj.keys().all(|k| k.starts_with('@'))
    {
        return err(format!(
            "Entity references ({{\"@odata.id\": {reference}}}) cannot be added: '{}' is a contained collection. Send the profile's properties instead.",
            entity.collection
        ));
    }
    let mut changes = Changes::empty(entity);
    changes.max_entity_bytes = opts.max_entity_bytes;
    // The documented state members a PATCH carries at the top level (see `state_entry`).
    let mut state: Vec<(&str, &[&str], &Json)> = Vec::new();
    for (name, v) in obj {
        if name == "@odata.type" {
            check_type_annotation(v, &entity.qualified_name(), &"the request body")?;
            continue;
        }
        // Control information and instance/property annotations: SDKs echo what they read.
        if name.contains('@') {
            continue;
        }
        if matches!(mode, Mode::Patch)
            && let Some(su) = entity.rules.state_update
            && let Some((member, allowed)) = su.members.iter().find(|(m, _)| m == name)
        {
            state.push((member, allowed, v));
            continue;
        }
        let Some(i) = entity.index_of(name) else {
            // The set's rows have this property, but this version's metadata does not declare
            // it: stored as a dynamic property it would shadow the declared one in the other
            // version, so it is refused, naming the version to use.
            if entity.undeclared(name).is_some() {
                let elsewhere = crate::model::catalog::catalogs()
                    .iter()
                    .filter(|c| c.same_set(entity).and_then(|e| e.property(name)).is_some())
                    .map(|c| format!("/{}", c.version))
                    .collect::<Vec<_>>()
                    .join(", ");
                return err(format!(
                    "Property '{name}' is not declared by type '{}' in Graph {}; it is declared in {elsewhere}: send it through that version.",
                    entity.qualified_name(),
                    entity.version
                ));
            }
            if opts.strict || !entity.open {
                return err(format!(
                    "Property '{name}' does not exist on type '{}'{}.",
                    entity.qualified_name(),
                    if entity.open {
                        " (undeclared properties are refused by this server's configuration)"
                    } else {
                        " (the type is not open)"
                    }
                ));
            }
            // A query resolves `Name` to the declared `name` (CONTRACT §4 "Case"), so a dynamic
            // property spelled like a declared one but for case could be written and never be
            // selected or filtered again: refuse it, naming the declared spelling.
            if let Some(p) = crate::odata::names::property(entity, name) {
                return err(format!(
                    "Property '{name}' differs only in case from the declared property '{}' of type '{}'; property names in a request body are case-sensitive.",
                    p.name,
                    entity.qualified_name()
                ));
            }
            if !is_identifier(name) {
                return err(format!(
                    "'{name}' is not a valid dynamic property name: use letters, digits and '_' (at most {MAX_DYNAMIC_NAME_BYTES} bytes), starting with a letter or '_'."
                ));
            }
            changes.dynamic.insert(name.clone(), v.clone());
            continue;
        };
        let prop = &entity.properties[i];
        if v.is_null() && !prop.nullable && prop.managed == Managed::Client {
            return Err(null_refused(name, &prop.ty));
        }
        let mut change = declared(&prop.ty, v, name, mode)?;
        if prop.indexed
            && let Some(Change::Set(Value::String(text))) = &change
            && text.len() > MAX_INDEXED_STRING_BYTES
        {
            return err(format!(
                "The value of '{name}' has {} bytes; an indexed property accepts at most {MAX_INDEXED_STRING_BYTES} bytes (UTF-8).",
                text.len()
            ));
        }
        if let Some(rule) = entity.rules.values.iter().find(|r| r.property == i) {
            check_value(entity, rule, &mut change)?;
        }
        if matches!(mode, Mode::Patch) && entity.rules.read_only.contains(&i) {
            // Not updatable (the overlay cites Graph's rule): OData 4.01 §11.4.3 has a service
            // ignore values of non-updatable properties, after the type check above.
            continue;
        }
        match prop.managed {
            Managed::Key => match (mode, change) {
                (Mode::Create, Some(Change::Set(Value::String(id)))) => {
                    check_id(&id)?;
                    changes.props[i] = Some(Change::Set(Value::String(id)));
                }
                (Mode::Create, _) => {}
                // OData: key values in an update body are ignored (CONTRACT §3 "Changed"), like
                // the other read-only values, after the type check above; so GET -> modify ->
                // PATCH of a copy of another entity still writes the entity in the URL.
                (Mode::Patch, _) => {}
            },
            // Type-checked above, then owned by the server's clock.
            Managed::Created | Managed::Modified => {}
            Managed::Client => changes.props[i] = change,
        }
    }
    if !state.is_empty()
        && let Some(su) = entity.rules.state_update
    {
        changes.props[su.property] = Some(state_entry(entity, su, &state)?);
    }
    match mode {
        Mode::Create => {
            for rule in entity.rules.values {
                if let Some(default) = rule.default
                    && changes.props[rule.property].is_none()
                {
                    let p = &entity.properties[rule.property];
                    changes.props[rule.property] = declared(&p.ty, default, &p.name, mode)?;
                }
            }
            check_create(entity, &changes)?
        }
        Mode::Patch => check_update(entity, obj)?,
    }
    Ok(changes)
}

/// A documented value rule (the overlay's `values`) on a value just type-checked: a number in
/// its bounds, a string of the documented list (matched ignoring ASCII case and stored as
/// listed: the MISP sample sends `watchlist` for `WatchList`) and not too long. Null passes
/// (nullability is checked apart).
fn check_value(
    entity: &EntityType,
    rule: &ValueRule,
    change: &mut Option<Change>,
) -> Result<(), BodyError> {
    let name = entity.properties[rule.property].name;
    let Some(Change::Set(v)) = change else {
        return Ok(());
    };
    let number = match v {
        Value::Int(n) => Some(*n as f64),
        Value::Double(f) => Some(*f),
        _ => None,
    };
    if let Some(n) = number
        && (rule.min.is_some_and(|m| n < m) || rule.max.is_some_and(|m| n > m))
    {
        return err(format!(
            "Invalid value {n} for property '{name}': {} accepts {} to {} (Graph's documented rule: {}).",
            entity.qualified_name(),
            rule.min.map_or("any".into(), |m| m.to_string()),
            rule.max.map_or("any".into(), |m| m.to_string()),
            rule.source
        ));
    }
    if let Value::String(text) = v {
        if !rule.one_of.is_empty() {
            match rule.one_of.iter().find(|o| o.eq_ignore_ascii_case(text)) {
                Some(listed) => *text = (*listed).to_string(),
                None => {
                    return err(format!(
                        "Invalid value '{text}' for property '{name}'. Valid values: {} (Graph's documented rule: {}).",
                        rule.one_of.join(", "),
                        rule.source
                    ));
                }
            }
        }
        if let Some(max) = rule.max_length
            && text.chars().count() > max
        {
            return err(format!(
                "The value of '{name}' has {} characters; at most {max} are accepted (Graph's documented rule: {}).",
                text.chars().count(),
                rule.source
            ));
        }
    }
    Ok(())
}

/// The new entry a PATCH's state members make (secureScoreControlProfile: `assignedTo`,
/// `comment`, `state` -> one `controlStateUpdates` item; `by` and `at` are filled by
/// [`caller_values`] and the write's time).
fn state_entry(
    entity: &EntityType,
    su: &StateUpdate,
    given: &[(&str, &[&str], &Json)],
) -> Result<Change, BodyError> {
    let EdmType::Collection(EdmType::Complex(c)) = &entity.properties[su.property].ty else {
        return err("the state collection is not a collection of a complex type"); // the catalog checks
    };
    let mut members = vec![Value::Null; c.members.len()];
    for (name, allowed, v) in given {
        let Some(i) = c.member_index(name) else {
            continue;
        };
        let value = match v {
            Json::Null => Value::Null,
            Json::String(text) if allowed.is_empty() => Value::String(text.clone()),
            Json::String(text) => match allowed.iter().find(|a| a.eq_ignore_ascii_case(text)) {
                Some(listed) => Value::String((*listed).to_string()),
                None => {
                    return err(format!(
                        "Invalid value '{text}' for '{name}'. Valid values: {} (Graph's documented rule: {}).",
                        allowed.join(", "),
                        su.source
                    ));
                }
            },
            other => {
                return err(format!(
                    "Invalid value for '{name}': expected Edm.String, got {}.",
                    json_kind(other)
                ));
            }
        };
        members[i] = value;
    }
    Ok(Change::Append(
        vec![Value::Complex(members)],
        c.member_index(su.at),
    ))
}

/// A body sent through the API by `caller`: [`changes_from_json`], then the values the service
/// owns ([`caller_values`]). Every API write path (single writes, bound actions, the explorer)
/// takes this one; only import, which keeps the exported values, uses `changes_from_json` alone.
pub fn changes_from_caller(
    entity: &'static EntityType,
    body: &Json,
    mode: Mode,
    opts: Options,
    caller: &Caller,
) -> Result<Changes, BodyError> {
    let mut changes = changes_from_json(entity, body, mode, opts)?;
    caller_values(&mut changes, mode, caller)?;
    Ok(changes)
}

/// Who writes, for the values the service takes from the caller (the overlay's `from`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caller {
    /// The caller's tenant (`tid`).
    pub tenant: String,
    /// The calling application (`azp`/`appid`).
    pub app: Option<String>,
    /// The signed-in user (`oid`/`sub` of a delegated token); `None` for an application.
    pub user: Option<String>,
}

/// Sets what the service owns in a validated body from the API (not on import, which keeps
/// the exported values): at create, each documented `set`/`from` value (a body's value was
/// type-checked and is replaced, as for the created timestamp); on a PATCH, who made a state
/// entry.
pub fn caller_values(changes: &mut Changes, mode: Mode, caller: &Caller) -> Result<(), BodyError> {
    let entity = changes.entity;
    let from = |c: CallerValue| -> Value {
        let text = match c {
            CallerValue::Tenant => Some(caller.tenant.clone()),
            CallerValue::App => caller.app.clone(),
            CallerValue::User => caller.user.clone(),
            CallerValue::Now => None,
        };
        text.map_or(Value::Null, Value::String)
    };
    match mode {
        Mode::Create => {
            for rule in entity.rules.values {
                let p = &entity.properties[rule.property];
                match rule.on_create {
                    None => {}
                    Some(OnCreate::From(CallerValue::Now)) => {
                        changes.props[rule.property] = None;
                        changes.stamp_now.push(rule.property);
                    }
                    Some(OnCreate::From(c)) => {
                        changes.props[rule.property] = Some(Change::Set(from(c)));
                    }
                    Some(OnCreate::Value(v)) => {
                        changes.props[rule.property] = declared(&p.ty, v, &p.name, mode)?;
                    }
                }
            }
        }
        Mode::Patch => {
            if let Some(su) = entity.rules.state_update
                && let Some(Change::Append(items, _)) = &mut changes.props[su.property]
                && let EdmType::Collection(EdmType::Complex(c)) = &entity.properties[su.property].ty
                && let Some(by) = c.member_index(su.by)
            {
                let who = caller.user.clone().or_else(|| caller.app.clone());
                for item in items {
                    if let Value::Complex(members) = item {
                        members[by] = who.clone().map_or(Value::Null, Value::String);
                    }
                }
            }
        }
    }
    Ok(())
}

/// The set's documented paths an update must carry (the overlay's `requiredOnUpdate`).
fn check_update(entity: &EntityType, obj: &Map<String, Json>) -> Result<(), BodyError> {
    let missing: Vec<&str> = entity
        .rules
        .required_on_update
        .iter()
        .copied()
        .filter(|path| {
            let mut at = Some(obj);
            let mut value = None;
            for seg in path.split('/') {
                value = at.and_then(|o| o.get(seg));
                at = value.and_then(Json::as_object);
            }
            value.is_none_or(Json::is_null)
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    err(format!(
        "An update in '{}' must contain {} (Graph's rule for this resource).",
        entity.collection,
        missing
            .iter()
            .map(|p| format!("'{p}'"))
            .collect::<Vec<_>>()
            .join(" and ")
    ))
}

/// Whether a create body gives the property at `i` a non-null value.
fn given(changes: &Changes, i: usize) -> bool {
    matches!(&changes.props[i], Some(c) if *c != Change::Set(Value::Null))
}

/// The rules of a create beyond each value's type: non-nullable properties (CSDL
/// `Nullable="false"`) and the set's documented required properties must have a value, and of
/// the set's alternative properties (tiIndicator's observables) at least one.
fn check_create(entity: &EntityType, changes: &Changes) -> Result<(), BodyError> {
    let missing: Vec<&str> = entity
        .properties
        .iter()
        .enumerate()
        .filter(|(i, p)| {
            p.managed == Managed::Client
                && (!p.nullable || entity.rules.required_on_create.contains(i))
                && !given(changes, *i)
                // The service sets it (see `caller_values`).
                && !entity
                    .rules
                    .values
                    .iter()
                    .any(|r| r.property == *i && r.on_create.is_some())
        })
        .map(|(_, p)| p.name)
        .collect();
    if !missing.is_empty() {
        return err(format!(
            "A create in '{}' needs a value for {}.",
            entity.collection,
            missing
                .iter()
                .map(|n| format!("'{n}'"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let one_of = entity.rules.one_of_on_create;
    if !one_of.is_empty() && !one_of.iter().any(|i| given(changes, *i)) {
        return err(format!(
            "A create in '{}' needs at least one of these properties: {}.",
            entity.collection,
            one_of
                .iter()
                .map(|i| entity.properties[*i].name)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn profiles() -> &'static EntityType {
        crate::model::catalog()
            .set("cloudAppSecurityProfiles")
            .unwrap()
    }

    fn create(v: Json) -> Result<Changes, BodyError> {
        changes_from_json(profiles(), &v, Mode::Create, Options::default())
    }

    #[test]
    fn placeholder_enum_names_the_property_and_members() {
        let e = create(json!({"permissionsRequired": "String"})).unwrap_err();
        assert!(e.0.contains("permissionsRequired"), "{}", e.0);
        for m in [
            "unknown",
            "anonymous",
            "guest",
            "user",
            "administrator",
            "system",
        ] {
            assert!(e.0.contains(m), "{}", e.0);
        }
    }

    #[test]
    fn enum_numeric_strings_normalise_and_sentinel_rules() {
        let c = create(json!({"permissionsRequired": "4"})).unwrap();
        let i = profiles().index_of("permissionsRequired").unwrap();
        assert_eq!(c.props[i], Some(Change::Set(Value::Enum(4))));
        assert!(create(json!({"permissionsRequired": "unknownFutureValue"})).is_err());
        assert!(create(json!({"permissionsRequired": 4})).is_err());
        let p = changes_from_json(
            profiles(),
            &json!({"permissionsRequired": "unknownFutureValue"}),
            Mode::Patch,
            Options::default(),
        )
        .unwrap();
        assert_eq!(p.props[i], None);
    }

    #[test]
    fn wrong_types_name_property_and_edm_type() {
        for (body, needle) in [
            (json!({"name": 5}), "Edm.String"),
            (json!({"isSigned": "Boolean"}), "Edm.Boolean"),
            (json!({"tags": {"a": 1}}), "Collection(Edm.String)"),
            (json!({"tags": ["a", 1]}), "Edm.String"),
            (json!({"tags": [null]}), "item 0"),
            (
                json!({"createdDateTime": "yesterday"}),
                "Edm.DateTimeOffset",
            ),
            (
                json!({"createdDateTime": "2020-01-01T00:00:00"}),
                "time zone",
            ),
            (
                json!({"vendorInformation": "x"}),
                "securityVendorInformation",
            ),
            (json!({"vendorInformation": {"colour": "x"}}), "colour"),
            (
                json!({"vendorInformation": {"vendor": true}}),
                "vendorInformation/vendor",
            ),
            (
                json!({"@odata.type": "#microsoft.graph.user"}),
                "@odata.type",
            ),
            (json!([1]), "JSON object"),
            (json!({"bad name": 1}), "dynamic property name"),
            (json!({"Name": "x"}), "declared property 'name'"),
            (json!({"ID": "x"}), "declared property 'id'"),
            (json!({"name": "a\u{0}b"}), "U+0000"),
            (json!({"tags": ["ok", "\u{0}"]}), "tags[1]"),
            (json!({"dyn": {"deep": ["\u{0}"]}}), "dyn/deep[0]"),
        ] {
            let e = create(body.clone()).unwrap_err();
            assert!(e.0.contains(needle), "{body}: {}", e.0);
        }
    }

    #[test]
    fn annotations_ignored_and_dynamic_kept_in_order() {
        let c = create(json!({
            "@odata.context": "x", "@odata.etag": "W/1", "name@odata.type": "x",
            "@odata.type": "microsoft.graph.cloudAppSecurityProfile",
            "zeta": 1, "alpha": {"nested": [1, 2]}
        }))
        .unwrap();
        assert_eq!(c.dynamic.keys().collect::<Vec<_>>(), ["zeta", "alpha"]);
        assert!(
            changes_from_json(
                profiles(),
                &json!({"zeta": 1}),
                Mode::Create,
                Options {
                    strict: true,
                    ..Options::default()
                }
            )
            .is_err()
        );
    }

    #[test]
    fn ids_and_references() {
        assert_eq!(
            create(json!({"id": "my-id"})).unwrap().requested_id(),
            Some("my-id")
        );
        for bad in ["", "a/b", "a?b", "a#b", "a\nb"] {
            assert!(create(json!({"id": bad})).is_err(), "{bad:?}");
        }
        assert!(create(json!({"id": "x".repeat(257)})).is_err());
        assert!(create(json!({"id": 5})).is_err());
        let e = create(json!({"@odata.id": "https://graph.microsoft.com/beta/x"})).unwrap_err();
        assert!(e.0.contains("contained"), "{}", e.0);
        let patch = |v| changes_from_json(profiles(), &v, Mode::Patch, Options::default());
        for id in [json!("a"), json!("b"), json!(null)] {
            let c = patch(json!({"id": id, "name": "n"})).unwrap();
            assert_eq!(c.requested_id(), None, "a PATCH never sets the key");
        }
        assert!(patch(json!({"id": 5})).is_err(), "still type-checked");
    }

    fn set(name: &str) -> &'static EntityType {
        crate::model::catalog().set(name).unwrap()
    }

    fn on(set_name: &str, mode: Mode, v: Json) -> Result<Changes, BodyError> {
        changes_from_json(set(set_name), &v, mode, Options::default())
    }

    fn value_of(c: &Changes, name: &str) -> Value {
        match &c.props[c.entity.index_of(name).unwrap()] {
            Some(Change::Set(v)) => v.clone(),
            other => panic!("{name}: {other:?}"),
        }
    }

    /// A valid alert: its three non-nullable properties.
    fn alert(extra: Json) -> Json {
        let mut v = json!({"azureTenantId": "t", "severity": "high", "status": "newAlert"});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        v
    }

    #[test]
    fn nested_complex_collections_and_non_nullable_properties() {
        let c = on(
            "alerts",
            Mode::Create,
            alert(json!({
                "fileStates": [{"name": "a.exe", "fileHash": {"hashType": "sha256", "hashValue": "ab"}}],
                "networkConnections": [{"protocol": "unknown"}, {"protocol": "-1"}, {"protocol": "tcp"}],
                "confidence": 80,
            })),
        )
        .unwrap();
        let Value::Collection(files) = value_of(&c, "fileStates") else {
            panic!("collection");
        };
        let Value::Complex(members) = &files[0] else {
            panic!("complex");
        };
        // fileHash, name, path, riskScore: the nested complex value is whole.
        assert!(matches!(&members[0], Value::Complex(h) if h[1] == Value::String("ab".into())));
        assert_eq!(members[2], Value::Null);
        let Value::Collection(conns) = value_of(&c, "networkConnections") else {
            panic!("collection");
        };
        // Sparse and negative enum values, by name or by value.
        let protocol = set("alerts").property("networkConnections").unwrap();
        let crate::model::edm::EdmType::Collection(crate::model::edm::EdmType::Complex(nc)) =
            protocol.ty
        else {
            panic!("collection of complex");
        };
        let at = nc.member_index("protocol").unwrap();
        let protocols: Vec<_> = conns
            .iter()
            .map(|c| match c {
                Value::Complex(m) => m[at].clone(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            protocols,
            [Value::Enum(-1), Value::Enum(-1), Value::Enum(6)]
        );
        for (body, needle) in [
            (
                json!({"azureTenantId": "t", "severity": "high"}),
                "'status'",
            ),
            (alert(json!({"severity": null})), "not nullable"),
            (alert(json!({"fileStates": [null]})), "item 0 is null"),
            (
                alert(json!({"fileStates": {"name": "x"}})),
                "Collection(microsoft.graph.fileSecurityState)",
            ),
            (
                alert(json!({"fileStates": [{"fileHash": {"hashType": "md6"}}]})),
                "fileStates[0]/fileHash/hashType",
            ),
            (alert(json!({"fileStates": [{"colour": 1}]})), "colour"),
            (alert(json!({"confidence": 2147483648_i64})), "Edm.Int32"),
            (alert(json!({"confidence": 1.5})), "Edm.Int32"),
            (alert(json!({"severity": "unknownFutureValue"})), "sentinel"),
        ] {
            let e = on("alerts", Mode::Create, body.clone()).unwrap_err();
            assert!(e.0.contains(needle), "{body}: {}", e.0);
        }
    }

    #[test]
    fn non_nullable_members_enum_collections_and_enums_without_sentinel() {
        let c = on(
            "securityActions",
            Mode::Create,
            json!({
                "status": "Running",
                "parameters": [{"name": "k", "value": "v"}],
                "errorInfo": {"code": 1, "subcode": 2},
            }),
        )
        .unwrap();
        assert_eq!(value_of(&c, "status"), Value::Enum(1));
        for (body, needle) in [
            (
                json!({"parameters": [{"value": "v"}]}),
                "parameters[0]/name",
            ),
            (json!({"errorInfo": {"code": 1}}), "errorInfo/subcode"),
            (
                json!({"errorInfo": {"code": null, "subcode": 1}}),
                "errorInfo/code",
            ),
            (
                json!({"status": "running"}),
                "NotStarted, Running, Completed, Failed",
            ),
        ] {
            let e = on("securityActions", Mode::Create, body.clone()).unwrap_err();
            assert!(e.0.contains(needle), "{body}: {}", e.0);
        }
        // A PATCH merges: members it does not name stay as they are (checked on apply).
        let p = on(
            "securityActions",
            Mode::Patch,
            json!({"errorInfo": {"message": "m"}}),
        )
        .unwrap();
        assert!(matches!(
            &p.props[p.entity.index_of("errorInfo").unwrap()],
            Some(Change::Merge(..))
        ));
        let h = on(
            "hostSecurityProfiles",
            Mode::Create,
            json!({"azureTenantId": "t", "logonUsers": [{"logonTypes": ["interactive", "network"]}]}),
        )
        .unwrap();
        assert!(matches!(value_of(&h, "logonUsers"), Value::Collection(u) if u.len() == 1));
        let e = on(
            "hostSecurityProfiles",
            Mode::Create,
            json!({"azureTenantId": "t", "logonUsers": [{"logonTypes": ["unknownFutureValue"]}]}),
        )
        .unwrap_err();
        assert!(e.0.contains("sentinel"), "{}", e.0);
    }

    #[test]
    fn open_complex_types_keep_undeclared_members_and_numbers_are_typed() {
        let c = on(
            "secureScores",
            Mode::Create,
            json!({
                "azureTenantId": "t",
                "activeUserCount": 3,
                "currentScore": 12.5,
                "maxScore": 100,
                "controlScores": [{"controlName": "mfa", "score": 1, "implementationStatus": "x", "count": [1]}],
            }),
        )
        .unwrap();
        assert_eq!(value_of(&c, "activeUserCount"), Value::Int(3));
        assert_eq!(value_of(&c, "currentScore"), Value::Double(12.5));
        assert_eq!(value_of(&c, "maxScore"), Value::Double(100.0));
        let Value::Collection(scores) = value_of(&c, "controlScores") else {
            panic!("collection");
        };
        let (members, extra) = scores[0].complex_parts().unwrap();
        assert_eq!(members[3], Value::Double(1.0));
        let extra: Vec<_> = extra.unwrap().keys().collect();
        assert_eq!(extra, ["implementationStatus", "count"]);
        for (body, needle) in [
            (
                json!({"azureTenantId": "t", "currentScore": "INF"}),
                "finite",
            ),
            (
                json!({"azureTenantId": "t", "currentScore": "1.5"}),
                "Edm.Double",
            ),
            (
                json!({"azureTenantId": "t", "controlScores": [{"ControlName": "x"}]}),
                "differs only in case",
            ),
            (
                json!({"azureTenantId": "t", "controlScores": [{"bad name": "x"}]}),
                "not a valid name",
            ),
        ] {
            let e = on("secureScores", Mode::Create, body.clone()).unwrap_err();
            assert!(e.0.contains(needle), "{body}: {}", e.0);
        }
        let ti = on(
            "tiIndicators",
            Mode::Create,
            json!({
                "action": "alert", "description": "d", "expirationDateTime": "2030-01-01T00:00:00Z",
                "targetProduct": "Azure Sentinel", "threatType": "Malware", "tlpLevel": "green",
                "fileSize": 9007199254740993_i64,
            }),
        )
        .unwrap();
        assert_eq!(value_of(&ti, "fileSize"), Value::Int(9_007_199_254_740_993));
    }

    #[test]
    fn per_resource_rules_from_the_overlay() {
        let e = on(
            "tiIndicators",
            Mode::Create,
            json!({"targetProduct": "Azure Sentinel"}),
        )
        .unwrap_err();
        for name in [
            "action",
            "description",
            "expirationDateTime",
            "threatType",
            "tlpLevel",
        ] {
            assert!(e.0.contains(&format!("'{name}'")), "{}", e.0);
        }
        let e = on(
            "tiIndicators",
            Mode::Create,
            json!({
                "action": "alert", "description": "d", "expirationDateTime": "2030-01-01T00:00:00Z",
                "targetProduct": "Azure Sentinel", "threatType": "Malware", "tlpLevel": "green",
            }),
        )
        .unwrap_err();
        assert!(
            e.0.contains("at least one") && e.0.contains("url"),
            "{}",
            e.0
        );
        // alerts: only Graph's updatable properties change in a PATCH; others are ignored.
        let vendor = json!({"provider": "p", "vendor": "v"});
        let p = on(
            "alerts",
            Mode::Patch,
            json!({"status": "resolved", "title": "t", "vendorInformation": vendor}),
        )
        .unwrap();
        assert!(p.props[p.entity.index_of("status").unwrap()].is_some());
        assert!(p.props[p.entity.index_of("title").unwrap()].is_none());
        // ...and an alert update must name the vendor and provider (Graph's 'Update alert').
        for body in [
            json!({"status": "resolved"}),
            json!({"status": "resolved", "vendorInformation": {"provider": "p"}}),
            json!({"status": "resolved", "vendorInformation": {"provider": "p", "vendor": null}}),
        ] {
            let e = on("alerts", Mode::Patch, body.clone()).unwrap_err();
            assert!(
                e.0.contains("'vendorInformation/vendor'"),
                "{body}: {}",
                e.0
            );
        }
    }
}
