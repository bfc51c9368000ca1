//! A profile as values, the create and PATCH merge rules, and the one JSON serializer.
//!
//! Values are indexed like `ENTITY.properties`, so every rule here is a walk over the table.

use serde_json::{Map, Value as Json};

use super::edm::{self, EdmType};
use super::entity::{ENTITY, Managed};

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
    Collection(Vec<Value>),
    /// A complex value: one entry per member, in the complex type's member order.
    Complex(Vec<Value>),
}

/// A stored profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// One per declared property, in table order.
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
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changes {
    /// One per declared property; `None` = absent from the body.
    pub props: Vec<Option<Change>>,
    pub dynamic: Map<String, Json>,
}

impl Changes {
    pub fn empty() -> Self {
        Changes {
            props: vec![None; ENTITY.properties.len()],
            dynamic: Map::new(),
        }
    }

    /// The id a body asked for, if any.
    pub fn requested_id(&self) -> Option<&str> {
        match &self.props[ENTITY.key_index()] {
            Some(Change::Set(Value::String(id))) => Some(id),
            _ => None,
        }
    }
}

/// Which properties a response carries (`$select`); `id` always comes back.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selection {
    /// Indices into `ENTITY.properties`.
    pub props: Vec<usize>,
    pub dynamic: Vec<String>,
}

impl Record {
    /// A new profile from a create body. The server owns the key and the timestamps.
    pub fn create(changes: Changes, id: String, now: i64) -> Record {
        let mut record = Record {
            values: vec![Value::Null; ENTITY.properties.len()],
            dynamic: Map::new(),
            version: 0,
        };
        record.apply(changes, now);
        record.values[ENTITY.key_index()] = Value::String(id);
        record.values[ENTITY.managed_index(Managed::Created)] = Value::DateTime(now);
        record
    }

    /// Applies PATCH semantics (`now` is the write's unique tick, see `edm::unique_ticks`):
    /// absent keeps, null clears, collections replace, complex values
    /// merge member by member, dynamic properties merge like declared ones.
    pub fn apply(&mut self, changes: Changes, now: i64) {
        for (i, (prop, change)) in ENTITY.properties.iter().zip(changes.props).enumerate() {
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
        self.values[ENTITY.managed_index(Managed::Modified)] = Value::DateTime(now);
        self.version = now.max(self.version.saturating_add(1));
    }

    pub fn id(&self) -> &str {
        match &self.values[ENTITY.key_index()] {
            Value::String(s) => s,
            _ => "",
        }
    }

    /// The entity's JSON body: `@odata.type`, then declared properties in table order (null
    /// for unset), then dynamic properties. `select` narrows it (`id` is always kept).
    pub fn to_json(&self, select: Option<&Selection>) -> Map<String, Json> {
        let mut out = Map::new();
        out.insert(
            "@odata.type".into(),
            Json::String(format!("#{}", ENTITY.qualified_name())),
        );
        for (i, prop) in ENTITY.properties.iter().enumerate() {
            let wanted = match select {
                None => true,
                Some(s) => i == ENTITY.key_index() || s.props.contains(&i),
            };
            if wanted {
                out.insert(prop.name.into(), value_to_json(&prop.ty, &self.values[i]));
            }
        }
        for (k, v) in &self.dynamic {
            if select.is_none_or(|s| s.dynamic.iter().any(|d| d == k)) {
                out.insert(k.clone(), v.clone());
            }
        }
        out
    }
}

fn primitive_to_json(v: &Value) -> Json {
    match v {
        Value::String(s) => Json::String(s.clone()),
        Value::Bool(b) => Json::Bool(*b),
        Value::DateTime(t) => Json::String(edm::format_datetime(*t)),
        _ => Json::Null,
    }
}

/// Serializes one declared property's value by its Edm type.
pub fn value_to_json(ty: &EdmType, v: &Value) -> Json {
    match (ty, v) {
        (_, Value::Null) => Json::Null,
        (EdmType::Primitive(_), v) => primitive_to_json(v),
        (EdmType::Enum(e), Value::Enum(n)) => match e.by_value(*n) {
            Some((name, _)) => Json::String(name.into()),
            None => Json::String(n.to_string()),
        },
        (EdmType::Collection(_), Value::Collection(items)) => {
            Json::Array(items.iter().map(primitive_to_json).collect())
        }
        (EdmType::Complex(c), Value::Complex(members)) => {
            let mut m = Map::new();
            m.insert("@odata.type".into(), Json::String(c.qualified_name()));
            for (member, v) in c.members.iter().zip(members) {
                m.insert(member.name.into(), primitive_to_json(v));
            }
            Json::Object(m)
        }
        _ => Json::Null,
    }
}
