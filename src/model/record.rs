//! An entity as values, the create and PATCH merge rules, and the one JSON serializer.
//!
//! Values are indexed like their entity type's `properties`, so every rule here is a walk over
//! the type.

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value as Json};

use super::edm::{self, ComplexType, EdmType};
use super::entity::{EntityType, Managed, NAMESPACE};

/// One property's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    String(String),
    Bool(bool),
    /// DateTimeOffset as 100 ns UTC ticks.
    DateTime(i64),
    /// Enum by underlying value.
    Enum(i64),
    /// Edm.Int32 or Edm.Int64.
    Int(i64),
    /// Edm.Double (finite).
    Double(f64),
    Collection(Vec<Value>),
    /// A value of a closed complex type: one entry per member, in the type's member order.
    Complex(Vec<Value>),
    /// A value of an open complex type: the declared members (as in `Complex`), then the
    /// members it does not declare, verbatim, in the order they were sent (boxed: rare, and it
    /// keeps every other value small).
    OpenComplex(Box<(Vec<Value>, Map<String, Json>)>),
}

/// See [`Value::complex_parts`].
pub type ComplexParts<'a> = (&'a [Value], Option<&'a Map<String, Json>>);

impl Value {
    /// A complex value of `c`: `OpenComplex` for an open type, else `Complex` (`extra` must
    /// then be empty).
    pub fn complex(c: &ComplexType, members: Vec<Value>, extra: Map<String, Json>) -> Value {
        if c.open {
            Value::OpenComplex(Box::new((members, extra)))
        } else {
            Value::Complex(members)
        }
    }

    /// The declared members of a complex value and its undeclared ones (empty for a closed
    /// type); `None` for any other value.
    pub fn complex_parts(&self) -> Option<ComplexParts<'_>> {
        match self {
            Value::Complex(m) => Some((m, None)),
            Value::OpenComplex(b) => Some((&b.0, Some(&b.1))),
            _ => None,
        }
    }
}

/// A stored entity.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Its entity set's type.
    pub entity: &'static EntityType,
    /// One per declared property, in the type's order.
    pub values: Vec<Value>,
    /// The open type's dynamic properties, in the order they were first sent.
    pub dynamic: Map<String, Json>,
    /// Set by every successful write to that write's unique tick (at least one more than the
    /// previous version): the basis of ETags, so it changes on every write and a re-created id
    /// does not repeat a deleted entity's versions.
    pub version: i64,
}

/// What a body asks to change for one declared property.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Replace the whole value (null clears).
    Set(Value),
    /// Merge into a complex value member by member (`None` = member absent from the body; a
    /// complex member merges recursively), then set the open type's undeclared members.
    Merge(Vec<Option<Change>>, Map<String, Json>),
    /// Append items to a collection (a null collection is empty): a documented history entry
    /// (see [`crate::model::entity::StateUpdate`]). `stamp`: the member of each (complex) item
    /// that gets the write's time.
    Append(Vec<Value>, Option<usize>),
}

/// `change` applied to a value of `ty` (see [`Record::apply`]; `now` is the write's time). A
/// merge that would leave a non-nullable member null is refused, naming it (`place` is the
/// property path).
fn changed(
    ty: &EdmType,
    current: Value,
    change: Change,
    place: &str,
    now: i64,
) -> Result<Value, String> {
    let (c, members, extra) = match (ty, change) {
        (_, Change::Set(v)) => return Ok(v),
        (EdmType::Collection(_), Change::Append(mut items, stamp)) => {
            let mut out = match current {
                Value::Collection(v) => v,
                _ => Vec::new(),
            };
            if let Some(m) = stamp {
                for item in &mut items {
                    if let Value::Complex(members) = item
                        && let Some(slot) = members.get_mut(m)
                    {
                        *slot = Value::DateTime(now);
                    }
                }
            }
            out.extend(items);
            return Ok(Value::Collection(out));
        }
        (ty, Change::Append(..)) => {
            return Err(format!(
                "'{place}' ({}) is not a collection",
                ty.csdl_name()
            ));
        }
        (EdmType::Complex(c), Change::Merge(members, extra)) => (*c, members, extra),
        (ty, Change::Merge(..)) => {
            return Err(format!(
                "'{place}' ({}) cannot be merged member by member",
                ty.csdl_name()
            ));
        }
    };
    let (mut values, mut kept) = match current {
        Value::Complex(m) => (m, Map::new()),
        Value::OpenComplex(b) => *b,
        _ => (vec![Value::Null; c.members.len()], Map::new()),
    };
    for (i, change) in members.into_iter().enumerate() {
        let (Some(change), Some(m)) = (change, c.members.get(i)) else {
            continue;
        };
        let here = format!("{place}/{}", m.name);
        let was = std::mem::replace(&mut values[i], Value::Null);
        values[i] = changed(&m.ty, was, change, &here, now)?;
    }
    for (m, v) in c.members.iter().zip(&values) {
        if !m.nullable && *v == Value::Null {
            return Err(format!(
                "Invalid value for '{place}/{}': it is not nullable; expected {}.",
                m.name,
                m.ty.csdl_name()
            ));
        }
    }
    kept.extend(extra);
    Ok(Value::complex(c, values, kept))
}

/// A validated body: what to change, nothing about HTTP.
#[derive(Debug, Clone, PartialEq)]
pub struct Changes {
    pub entity: &'static EntityType,
    /// One per declared property; `None` = absent from the body.
    pub props: Vec<Option<Change>>,
    pub dynamic: Map<String, Json>,
    /// Properties a create sets to its own time (a documented server value, see
    /// [`crate::model::entity::CallerValue::Now`]).
    pub stamp_now: Vec<usize>,
    /// The most bytes the entity may take once these changes are applied (0: no limit; see
    /// `validate::Options::max_entity_bytes`).
    pub max_entity_bytes: usize,
}

impl Changes {
    pub fn empty(entity: &'static EntityType) -> Self {
        Changes {
            entity,
            props: vec![None; entity.properties.len()],
            dynamic: Map::new(),
            stamp_now: Vec::new(),
            max_entity_bytes: 0,
        }
    }

    /// The id a body asked for, if any.
    pub fn requested_id(&self) -> Option<&str> {
        match &self.props[self.entity.key_index()] {
            Some(Change::Set(Value::String(id))) => Some(id),
            _ => None,
        }
    }
}

/// Which properties a response carries (`$select`); `id` always comes back.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selection {
    /// Indices into the entity type's `properties`.
    pub props: Vec<usize>,
    pub dynamic: Vec<String>,
}

impl Record {
    /// A new entity from a create body. The server owns the key and the timestamps. An error
    /// (a client mistake, see [`Record::apply`]) says what is wrong.
    pub fn create(changes: Changes, id: String, now: i64) -> Result<Record, String> {
        let entity = changes.entity;
        let mut record = Record {
            entity,
            values: vec![Value::Null; entity.properties.len()],
            dynamic: Map::new(),
            version: 0,
        };
        let stamps = changes.stamp_now.clone();
        record.apply(changes, now)?;
        for i in stamps {
            record.values[i] = Value::DateTime(now);
        }
        record.values[entity.key_index()] = Value::String(id);
        if let Some(i) = entity.managed_index(Managed::Created) {
            record.values[i] = Value::DateTime(now);
        }
        Ok(record)
    }

    /// Applies PATCH semantics (`now` is the write's unique tick, see `edm::unique_ticks`):
    /// absent keeps, null clears, collections replace, complex values merge member by member
    /// (recursively, undeclared members of open types like dynamic properties), dynamic
    /// properties merge like declared ones. A result that breaks the type (a non-nullable
    /// member left null by a merge onto a null value) is an error and leaves the record as it
    /// was.
    pub fn apply(&mut self, changes: Changes, now: i64) -> Result<(), String> {
        let entity = self.entity;
        let limit = changes.max_entity_bytes;
        let mut values = self.values.clone();
        for (i, (prop, change)) in entity.properties.iter().zip(changes.props).enumerate() {
            if prop.managed != Managed::Client {
                continue;
            }
            if let Some(change) = change {
                let current = std::mem::replace(&mut values[i], Value::Null);
                values[i] = changed(&prop.ty, current, change, prop.name, now)?;
            }
        }
        let values_before = std::mem::replace(&mut self.values, values);
        let dynamic_before =
            (limit > 0 && !changes.dynamic.is_empty()).then(|| self.dynamic.clone());
        for (k, v) in changes.dynamic {
            self.dynamic.insert(k, v);
        }
        if limit > 0 {
            let size = self.approx_wire_bytes();
            if size > limit {
                self.values = values_before;
                if let Some(d) = dynamic_before {
                    self.dynamic = d;
                }
                return Err(format!(
                    "The entity would take about {size} bytes, more than the {limit} this server \
                     stores for one entity (--max-entity-bytes); nothing was changed."
                ));
            }
        }
        if let Some(i) = entity.managed_index(Managed::Modified) {
            self.values[i] = Value::DateTime(now);
        }
        self.version = now.max(self.version.saturating_add(1));
        Ok(())
    }

    /// About how many bytes the record takes on the wire (its JSON without `@odata.context`):
    /// the text of its values, names, quotes and separators, counted without serializing. For
    /// the page byte budget, so it errs low by no more than escapes.
    pub fn approx_wire_bytes(&self) -> usize {
        fn json(v: &Json) -> usize {
            match v {
                Json::Null | Json::Bool(_) => 5,
                Json::Number(_) => 12,
                Json::String(s) => s.len() + 2,
                Json::Array(items) => 2 + items.iter().map(|i| json(i) + 1).sum::<usize>(),
                Json::Object(m) => 2 + m.iter().map(|(k, v)| k.len() + 4 + json(v)).sum::<usize>(),
            }
        }
        fn value(v: &Value) -> usize {
            match v {
                Value::Null | Value::Bool(_) => 5,
                Value::String(s) => s.len() + 2,
                Value::DateTime(_) => 30,
                Value::Enum(_) | Value::Int(_) | Value::Double(_) => 16,
                Value::Collection(items) => 2 + items.iter().map(|i| value(i) + 1).sum::<usize>(),
                // Member names are short: a fixed allowance each.
                Value::Complex(m) => 2 + m.iter().map(|x| value(x) + 16).sum::<usize>(),
                Value::OpenComplex(b) => {
                    2 + b.0.iter().map(|x| value(x) + 16).sum::<usize>()
                        + b.1
                            .iter()
                            .map(|(k, v)| k.len() + 4 + json(v))
                            .sum::<usize>()
                }
            }
        }
        let names: usize = self
            .entity
            .properties
            .iter()
            .map(|p| p.name.len() + 4)
            .sum();
        names
            + self.values.iter().map(value).sum::<usize>()
            + self
                .dynamic
                .iter()
                .map(|(k, v)| k.len() + 4 + json(v))
                .sum::<usize>()
    }

    pub fn id(&self) -> &str {
        match &self.values[self.entity.key_index()] {
            Value::String(s) => s,
            _ => "",
        }
    }

    /// The entity's JSON body: `@odata.type`, then declared properties in table order (null
    /// for unset), then dynamic properties. `select` narrows it (`id` is always kept). The same
    /// serializer as [`Record::wire`], collected into a map.
    pub fn to_json(&self, select: Option<&Selection>) -> Map<String, Json> {
        match serde_json::to_value(self.wire(select, None)) {
            Ok(Json::Object(m)) => m,
            _ => Map::new(),
        }
    }

    /// The record as the wire shows it, optionally preceded by an `@odata.context`: serialized
    /// straight into the response bytes, without building a JSON tree first (the hot path).
    pub fn wire<'a>(&'a self, select: Option<&'a Selection>, context: Option<&'a str>) -> Wire<'a> {
        Wire {
            record: self,
            select,
            context,
        }
    }
}

/// See [`Record::wire`].
pub struct Wire<'a> {
    record: &'a Record,
    select: Option<&'a Selection>,
    context: Option<&'a str>,
}

impl Serialize for Wire<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut out = s.serialize_map(None)?;
        if let Some(c) = self.context {
            out.serialize_entry("@odata.context", c)?;
        }
        let entity = self.record.entity;
        out.serialize_entry("@odata.type", &qualified("#", entity.name))?;
        let key = entity.key_index();
        for (i, prop) in entity.properties.iter().enumerate() {
            let wanted = prop.declared
                && match self.select {
                    None => true,
                    Some(s) => i == key || s.props.contains(&i),
                };
            if wanted {
                out.serialize_entry(prop.name, &Typed(&prop.ty, &self.record.values[i]))?;
            }
        }
        for (k, v) in &self.record.dynamic {
            if self.select.is_none_or(|s| s.dynamic.iter().any(|d| d == k)) {
                out.serialize_entry(k, v)?;
            }
        }
        out.end()
    }
}

/// `{prefix}microsoft.graph.{name}`, the value of an `@odata.type`: concatenated rather than
/// `format_args!`-ed, because serializing `format_args!` runs the formatting machinery and
/// escapes fragment by fragment (twice per profile on every list page).
fn qualified(prefix: &str, name: &str) -> String {
    let mut s = String::with_capacity(prefix.len() + NAMESPACE.len() + 1 + name.len());
    s.push_str(prefix);
    s.push_str(NAMESPACE);
    s.push('.');
    s.push_str(name);
    s
}

/// A primitive value (or a collection item) on the wire.
struct Primitive<'a>(&'a Value);

impl Serialize for Primitive<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::String(v) => s.serialize_str(v),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::DateTime(t) => s.serialize_str(edm::DateTimeText::new(*t).as_str()),
            Value::Int(i) => s.serialize_i64(*i),
            Value::Double(f) => s.serialize_f64(*f),
            _ => s.serialize_unit(),
        }
    }
}

/// One declared property's (or complex member's) value, serialized by its Edm type: complex
/// values as objects with `@odata.type` first and their members in declaration order (then an
/// open type's undeclared members), collections as arrays.
struct Typed<'a>(&'a EdmType, &'a Value);

impl Serialize for Typed<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match (self.0, self.1) {
            (_, Value::Null) => s.serialize_unit(),
            (EdmType::Primitive(_), v) => Primitive(v).serialize(s),
            (EdmType::Enum(e), Value::Enum(n)) => match e.by_value(*n) {
                Some((name, _)) => s.serialize_str(name),
                None => s.collect_str(n),
            },
            (EdmType::Collection(elem), Value::Collection(items)) => {
                s.collect_seq(items.iter().map(|v| Typed(elem, v)))
            }
            (EdmType::Complex(c), v @ (Value::Complex(_) | Value::OpenComplex(_))) => {
                let Some((members, extra)) = v.complex_parts() else {
                    return s.serialize_unit();
                };
                let mut m = s.serialize_map(None)?;
                m.serialize_entry("@odata.type", &qualified("", c.name))?;
                for (member, v) in c.members.iter().zip(members) {
                    m.serialize_entry(member.name, &Typed(&member.ty, v))?;
                }
                for (k, v) in extra.into_iter().flatten() {
                    m.serialize_entry(k, v)?;
                }
                m.end()
            }
            _ => s.serialize_unit(),
        }
    }
}

/// Serializes one declared property's value by its Edm type, as a JSON tree.
pub fn value_to_json(ty: &EdmType, v: &Value) -> Json {
    serde_json::to_value(Typed(ty, v)).unwrap_or(Json::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::validate::{Mode, Options, changes_from_json};
    use serde_json::json;

    fn changes(set: &str, mode: Mode, v: Json) -> Changes {
        let e = crate::model::catalog().set(set).unwrap();
        changes_from_json(e, &v, mode, Options::default()).unwrap()
    }

    #[test]
    fn patch_merges_complex_values_recursively_and_replaces_collections() {
        let mut r = Record::create(
            changes(
                "securityActions",
                Mode::Create,
                json!({"errorInfo": {"code": 1, "subcode": 2, "message": "m"},
                       "parameters": [{"name": "a"}, {"name": "b"}]}),
            ),
            "x".into(),
            1,
        )
        .unwrap();
        r.apply(
            changes(
                "securityActions",
                Mode::Patch,
                json!({"errorInfo": {"subcode": 3}, "parameters": [{"name": "c"}]}),
            ),
            2,
        )
        .unwrap();
        let v = r.to_json(None);
        assert_eq!(
            v["errorInfo"],
            json!({"@odata.type": "microsoft.graph.resultInfo", "code": 1, "message": "m", "subcode": 3})
        );
        assert_eq!(v["parameters"].as_array().unwrap().len(), 1);
        // A merge onto a null value must give every non-nullable member a value.
        let mut empty = Record::create(
            changes(
                "securityActions",
                Mode::Create,
                json!({"parameters": [{"name": "a"}]}),
            ),
            "y".into(),
            1,
        )
        .unwrap();
        let before = empty.clone();
        let e = empty
            .apply(
                changes(
                    "securityActions",
                    Mode::Patch,
                    json!({"errorInfo": {"code": 1}}),
                ),
                2,
            )
            .unwrap_err();
        assert!(e.contains("errorInfo/subcode"), "{e}");
        assert_eq!(empty, before, "a refused merge changes nothing");
    }

    #[test]
    fn open_complex_values_keep_and_merge_undeclared_members_on_the_wire() {
        let r = Record::create(
            changes(
                "secureScores",
                Mode::Create,
                json!({"azureTenantId": "t", "controlScores": [{"score": 2.5, "zeta": {"a": 1}, "alpha": 1}]}),
            ),
            "s".into(),
            1,
        )
        .unwrap();
        let v = r.to_json(None);
        let first = &v["controlScores"][0];
        let keys: Vec<_> = first.as_object().unwrap().keys().cloned().collect();
        assert_eq!(
            keys,
            [
                "@odata.type",
                "controlCategory",
                "controlName",
                "description",
                "score",
                "zeta",
                "alpha"
            ]
        );
        assert_eq!(first["score"], json!(2.5));
        assert_eq!(first["zeta"], json!({"a": 1}));
    }
}
