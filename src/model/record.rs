//! An entity as values, the create and PATCH merge rules, and the one JSON serializer.
//!
//! Values are indexed like their entity type's `properties`, so every rule here is a walk over
//! the type.

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value as Json};

use super::edm::{self, EdmType};
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
    /// A complex value: one entry per member, in the complex type's member order.
    Complex(Vec<Value>),
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
    /// Merge into a complex value member by member (`None` = member absent from the body).
    Merge(Vec<Option<Value>>),
}

/// A validated body: what to change, nothing about HTTP.
#[derive(Debug, Clone, PartialEq)]
pub struct Changes {
    pub entity: &'static EntityType,
    /// One per declared property; `None` = absent from the body.
    pub props: Vec<Option<Change>>,
    pub dynamic: Map<String, Json>,
}

impl Changes {
    pub fn empty(entity: &'static EntityType) -> Self {
        Changes {
            entity,
            props: vec![None; entity.properties.len()],
            dynamic: Map::new(),
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
    /// A new entity from a create body. The server owns the key and the timestamps.
    pub fn create(changes: Changes, id: String, now: i64) -> Record {
        let entity = changes.entity;
        let mut record = Record {
            entity,
            values: vec![Value::Null; entity.properties.len()],
            dynamic: Map::new(),
            version: 0,
        };
        record.apply(changes, now);
        record.values[entity.key_index()] = Value::String(id);
        if let Some(i) = entity.managed_index(Managed::Created) {
            record.values[i] = Value::DateTime(now);
        }
        record
    }

    /// Applies PATCH semantics (`now` is the write's unique tick, see `edm::unique_ticks`):
    /// absent keeps, null clears, collections replace, complex values
    /// merge member by member, dynamic properties merge like declared ones.
    pub fn apply(&mut self, changes: Changes, now: i64) {
        let entity = self.entity;
        for (i, (prop, change)) in entity.properties.iter().zip(changes.props).enumerate() {
            if prop.managed != Managed::Client {
                continue;
            }
            match change {
                None => {}
                Some(Change::Set(v)) => self.values[i] = v,
                Some(Change::Merge(members)) => {
                    let mut current = match std::mem::replace(&mut self.values[i], Value::Null) {
                        Value::Complex(m) => m,
                        _ => vec![Value::Null; members.len()],
                    };
                    for (slot, m) in current.iter_mut().zip(members) {
                        if let Some(v) = m {
                            *slot = v;
                        }
                    }
                    self.values[i] = Value::Complex(current);
                }
            }
        }
        for (k, v) in changes.dynamic {
            self.dynamic.insert(k, v);
        }
        if let Some(i) = entity.managed_index(Managed::Modified) {
            self.values[i] = Value::DateTime(now);
        }
        self.version = now.max(self.version.saturating_add(1));
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
        out.serialize_entry("@odata.type", &format_args!("#{NAMESPACE}.{}", entity.name))?;
        let key = entity.key_index();
        for (i, prop) in entity.properties.iter().enumerate() {
            let wanted = match self.select {
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

/// A primitive value (or a collection item) on the wire.
struct Primitive<'a>(&'a Value);

impl Serialize for Primitive<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::String(v) => s.serialize_str(v),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::DateTime(t) => s.serialize_str(&edm::format_datetime(*t)),
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
            (EdmType::Complex(c), Value::Complex(members)) => {
                let mut m = s.serialize_map(Some(members.len() + 1))?;
                m.serialize_entry("@odata.type", &format_args!("{NAMESPACE}.{}", c.name))?;
                for (member, v) in c.members.iter().zip(members) {
                    m.serialize_entry(member.name, &Typed(&member.ty, v))?;
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
