//! The SQL schema, derived from the catalog: table, column names and types for every backend.
//!
//! One table per entity set, named snake_case of the set ([`EntityType::table`], so
//! `cloud_app_security_profiles` is unchanged), primary key (tenant, key). Layout of one row:
//! `tenant`, then per declared property, by its [`Storage`]:
//! - [`Storage::Column`] (a primitive or an enum): one column named exactly like the property;
//! - [`Storage::Flattened`] (a closed complex type whose members are all primitive or enum):
//!   a presence column named like the property (NULL when the property is null, 1 when it is an
//!   object) plus one column per member (`vendorInformation_provider`);
//! - [`Storage::Json`] (everything else: collections of anything, nested or open complex
//!   types): one JSON column (SQLite TEXT, PostgreSQL JSONB) named like the property;
//!
//! then `version` and `dynamic` (a JSON object of the open type's dynamic properties, in the
//! order they were sent).
//!
//! Column forms, identical on every backend so ordering and comparison agree: String -> TEXT;
//! Boolean -> INTEGER 0/1 (SQLite) or BOOLEAN (PostgreSQL); DateTimeOffset -> BIGINT 100 ns UTC
//! ticks; Int32/Int64 -> BIGINT; Double -> REAL (SQLite) or DOUBLE PRECISION (PostgreSQL); enum
//! -> INTEGER underlying value.
//!
//! JSON storage form (what `store::compile` reads with `json_each`/`json_extract` on SQLite and
//! `jsonb_array_elements`/`->` on PostgreSQL): DateTimeOffset as integer ticks, enum as its
//! integer underlying value, Int32/Int64 as JSON integers, Double as a JSON number, Boolean as a
//! JSON bool, String as a string; a complex value as an object of its declared members by name
//! (null members written as null), plus, for an open complex type, its undeclared members
//! verbatim (wire JSON); a collection as an array of its elements' forms. No `@odata.type`.

use serde_json::{Map, Value as Json};

use crate::model::edm::{ComplexType, EdmType, Primitive};
use crate::model::entity::{EntityType, Property};
use crate::model::record::{Record, Value};

pub const TENANT_COLUMN: &str = "tenant";
pub const VERSION_COLUMN: &str = "version";
pub const DYNAMIC_COLUMN: &str = "dynamic";

/// The SQL dialects graphsec speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// How a declared property is stored (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// One column: a primitive or an enum.
    Column,
    /// A presence column plus one column per member.
    Flattened(&'static ComplexType),
    /// One JSON column.
    Json,
}

/// The storage of a declared property.
pub fn storage_of(prop: &Property) -> Storage {
    match prop.ty {
        EdmType::Primitive(_) | EdmType::Enum(_) => Storage::Column,
        EdmType::Complex(c) if c.is_flat() => Storage::Flattened(c),
        EdmType::Complex(_) | EdmType::Collection(_) => Storage::Json,
    }
}

/// The column that holds a declared property (for a flattened complex property: its presence
/// column).
pub fn column(prop: &Property) -> &'static str {
    prop.name
}

/// The column that holds one member of a flattened complex property.
pub fn member_column(prop: &Property, member: &str) -> String {
    format!("{}_{}", prop.name, member)
}

/// Quotes an identifier the same way on every dialect.
pub fn quote(ident: &str) -> String {
    let mut out = String::with_capacity(ident.len() + 2);
    push_quoted(&mut out, ident);
    out
}

/// Appends [`quote`]`(ident)` to `out` (SQL is assembled without a `String` per identifier).
pub fn push_quoted(out: &mut String, ident: &str) {
    out.push('"');
    if ident.contains('"') {
        out.push_str(&ident.replace('"', "\"\""));
    } else {
        out.push_str(ident);
    }
    out.push('"');
}

fn sql_type(p: Primitive, dialect: Dialect) -> &'static str {
    match (p, dialect) {
        (Primitive::String, _) => "TEXT",
        (Primitive::Boolean, Dialect::Sqlite) => "INTEGER",
        (Primitive::Boolean, Dialect::Postgres) => "BOOLEAN",
        (Primitive::DateTimeOffset | Primitive::Int32 | Primitive::Int64, _) => "BIGINT",
        (Primitive::Double, Dialect::Sqlite) => "REAL",
        (Primitive::Double, Dialect::Postgres) => "DOUBLE PRECISION",
    }
}

fn json_type(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => "TEXT",
        Dialect::Postgres => "JSONB",
    }
}

/// The SQL type of a single-column value (a primitive or an enum).
fn scalar_type(ty: &EdmType, dialect: Dialect) -> &'static str {
    match ty {
        EdmType::Primitive(p) => sql_type(*p, dialect),
        EdmType::Enum(_) => "INTEGER",
        EdmType::Complex(_) | EdmType::Collection(_) => json_type(dialect),
    }
}

/// Every stored column of the entity in row order, with its SQL type and NOT NULL-ness.
/// The `tenant`, `version` and `dynamic` columns are included.
pub fn columns(entity: &EntityType, dialect: Dialect) -> Vec<(String, &'static str, bool)> {
    let mut out = vec![(TENANT_COLUMN.to_string(), "TEXT", true)];
    for prop in entity.properties {
        let not_null = !prop.nullable;
        match storage_of(prop) {
            Storage::Column => out.push((
                column(prop).to_string(),
                scalar_type(&prop.ty, dialect),
                not_null,
            )),
            Storage::Json => out.push((column(prop).to_string(), json_type(dialect), not_null)),
            Storage::Flattened(c) => {
                out.push((column(prop).to_string(), "INTEGER", not_null));
                for m in c.members {
                    out.push((
                        member_column(prop, m.name),
                        scalar_type(&m.ty, dialect),
                        false,
                    ));
                }
            }
        }
    }
    out.push((VERSION_COLUMN.to_string(), "BIGINT", true));
    out.push((DYNAMIC_COLUMN.to_string(), json_type(dialect), true));
    out
}

/// The properties that get an index of their own (tenant-first, so every index serves one
/// tenant's queries), chosen for the common filters and orders (the overlay says which).
pub fn indexed_properties(entity: &'static EntityType) -> impl Iterator<Item = &'static Property> {
    entity.properties.iter().filter(|p| p.indexed)
}

/// The DDL that creates the entity set's table and its indexes.
pub fn create_ddl(entity: &'static EntityType, dialect: Dialect) -> Vec<String> {
    let key = column(entity.key());
    let table = entity.table;
    let mut cols: Vec<String> = columns(entity, dialect)
        .into_iter()
        .map(|(name, ty, not_null)| {
            let collate = if ty == "TEXT" && dialect == Dialect::Postgres {
                " COLLATE \"C\""
            } else {
                ""
            };
            format!(
                "    {} {ty}{collate}{}",
                quote(&name),
                if not_null { " NOT NULL" } else { "" }
            )
        })
        .collect();
    cols.push(format!(
        "    PRIMARY KEY ({}, {})",
        quote(TENANT_COLUMN),
        quote(key)
    ));
    let mut ddl = vec![format!(
        "CREATE TABLE {} (\n{}\n)",
        quote(table),
        cols.join(",\n")
    )];
    for prop in indexed_properties(entity) {
        ddl.push(format!(
            "CREATE INDEX {} ON {} ({}, {}, {})",
            quote(&format!("ix_{}_{}", table, prop.name)),
            quote(table),
            quote(TENANT_COLUMN),
            quote(column(prop)),
            quote(key)
        ));
    }
    ddl
}

/// The entity sets whose tables the numbered migrations create, by migration: element `i`
/// lists the sets migration `i + 1` creates, in catalog order. Released migrations never
/// change; a new set gets the next number (the overlay's `migration`). A gap in the numbers
/// is an empty migration.
pub fn migration_sets() -> Vec<Vec<&'static EntityType>> {
    let sets = crate::model::catalog().sets();
    let last = sets.iter().filter_map(|s| s.migration).max().unwrap_or(0);
    (1..=last)
        .map(|n| {
            sets.iter()
                .copied()
                .filter(|s| s.migration == Some(n))
                .collect()
        })
        .collect()
}

/// A bind placeholder in the dialect's syntax (1-based).
pub fn placeholder(dialect: Dialect, n: usize) -> String {
    let mut out = String::with_capacity(4);
    push_placeholder(&mut out, dialect, n);
    out
}

/// Appends [`placeholder`]`(dialect, n)` to `out`.
pub fn push_placeholder(out: &mut String, dialect: Dialect, n: usize) {
    use std::fmt::Write;
    out.push(match dialect {
        Dialect::Sqlite => '?',
        Dialect::Postgres => '$',
    });
    let _ = write!(out, "{n}");
}

/// The export page query (`Store::export_page`): `select_list`, then the tenant column, of the
/// rows after a (tenant, id) position, in (tenant, id) order. Its parameters, in order: the
/// tenant if `one_tenant`, the position's tenant and id if `after`, then the row limit. Each
/// shape is its own statement (rather than `? IS NULL OR …`) so every page is a range scan of
/// the (tenant, id) key.
pub fn export_page_sql(
    entity: &EntityType,
    dialect: Dialect,
    select_list: &str,
    one_tenant: bool,
    after: bool,
) -> String {
    let t = quote(TENANT_COLUMN);
    let key = quote(column(entity.key()));
    let mut n = 0;
    let mut next = || {
        n += 1;
        placeholder(dialect, n)
    };
    let mut conditions = Vec::new();
    if one_tenant {
        conditions.push(format!("{t} = {}", next()));
    }
    if after {
        let (pt, pk) = (next(), next());
        conditions.push(format!("({t}, {key}) > ({pt}, {pk})"));
    }
    let where_sql = if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    };
    format!(
        "SELECT {select_list}, {t} FROM {}{where_sql} ORDER BY {t}, {key} LIMIT {}",
        quote(entity.table),
        next()
    )
}

/// `INSERT` of one whole row: every column of [`columns`], `tenant` first.
pub fn insert_sql(entity: &EntityType, dialect: Dialect) -> String {
    let cols = columns(entity, dialect);
    format!(
        "INSERT INTO {} ({}) VALUES ({})",
        quote(entity.table),
        cols.iter()
            .map(|(c, _, _)| quote(c))
            .collect::<Vec<_>>()
            .join(", "),
        (1..=cols.len())
            .map(|i| placeholder(dialect, i))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// A backend-neutral SQL value: what encoding a record produces and decoding consumes.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Int(i64),
    /// A double (Edm.Double columns).
    Real(f64),
    Bool(bool),
    Text(String),
}

/// The stored columns a record maps to (every column of [`columns`] except `tenant`).
pub fn record_columns(entity: &EntityType, dialect: Dialect) -> Vec<String> {
    columns(entity, dialect)
        .into_iter()
        .skip(1)
        .map(|(name, _, _)| name)
        .collect()
}

/// The names of [`record_columns`], which are the same on every dialect.
pub fn record_column_names(entity: &EntityType) -> Vec<String> {
    record_columns(entity, Dialect::Sqlite)
}

/// Cell type of a [`Cell::Real`]: a double on both backends.
fn encode_primitive(v: &Value) -> Cell {
    match v {
        Value::String(s) => Cell::Text(s.clone()),
        Value::Bool(b) => Cell::Bool(*b),
        Value::DateTime(t) | Value::Enum(t) | Value::Int(t) => Cell::Int(*t),
        Value::Double(f) => Cell::Real(*f),
        _ => Cell::Null,
    }
}

/// A value in the JSON storage form (module doc).
pub fn to_storage_json(ty: &EdmType, v: &Value) -> Json {
    match (ty, v) {
        (_, Value::Null) => Json::Null,
        (_, Value::String(s)) => Json::String(s.clone()),
        (_, Value::Bool(b)) => Json::Bool(*b),
        (_, Value::DateTime(i) | Value::Enum(i) | Value::Int(i)) => Json::from(*i),
        (_, Value::Double(f)) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
        (EdmType::Collection(elem), Value::Collection(items)) => {
            Json::Array(items.iter().map(|i| to_storage_json(elem, i)).collect())
        }
        (EdmType::Complex(c), v @ (Value::Complex(_) | Value::OpenComplex(_))) => {
            let mut m = Map::new();
            let Some((members, extra)) = v.complex_parts() else {
                return Json::Null;
            };
            for (member, v) in c.members.iter().zip(members) {
                m.insert(member.name.to_string(), to_storage_json(&member.ty, v));
            }
            // Undeclared members of an open type after the declared ones, verbatim; a name
            // equal to a declared one cannot occur (validation refuses it).
            for (k, v) in extra.into_iter().flatten() {
                m.entry(k.clone()).or_insert_with(|| v.clone());
            }
            Json::Object(m)
        }
        _ => Json::Null,
    }
}

/// The inverse of [`to_storage_json`]; a value that does not fit is a corrupt row.
pub fn from_storage_json(ty: &EdmType, j: Json) -> Result<Value, String> {
    Ok(match (ty, j) {
        (_, Json::Null) => Value::Null,
        (EdmType::Primitive(Primitive::String), Json::String(s)) => Value::String(s),
        (EdmType::Primitive(Primitive::Boolean), Json::Bool(b)) => Value::Bool(b),
        (EdmType::Primitive(Primitive::DateTimeOffset), Json::Number(n)) if n.is_i64() => {
            Value::DateTime(n.as_i64().unwrap_or_default())
        }
        (EdmType::Primitive(Primitive::Int32 | Primitive::Int64), Json::Number(n))
            if n.is_i64() =>
        {
            Value::Int(n.as_i64().unwrap_or_default())
        }
        (EdmType::Primitive(Primitive::Double), Json::Number(n)) => {
            Value::Double(n.as_f64().unwrap_or_default())
        }
        (EdmType::Enum(_), Json::Number(n)) if n.is_i64() => {
            Value::Enum(n.as_i64().unwrap_or_default())
        }
        (EdmType::Collection(elem), Json::Array(items)) => Value::Collection(
            items
                .into_iter()
                .map(|i| from_storage_json(elem, i))
                .collect::<Result<_, _>>()?,
        ),
        (EdmType::Complex(c), Json::Object(mut m)) => {
            let members = c
                .members
                .iter()
                .map(|member| {
                    from_storage_json(
                        &member.ty,
                        m.shift_remove(member.name).unwrap_or(Json::Null),
                    )
                })
                .collect::<Result<_, _>>()?;
            if !c.open && !m.is_empty() {
                return Err(format!(
                    "stored {} has undeclared members",
                    c.qualified_name()
                ));
            }
            Value::complex(c, members, m)
        }
        (ty, other) => {
            return Err(format!("stored JSON {other} is not a {}", ty.csdl_name()));
        }
    })
}

/// A record as cells, in [`record_columns`] order.
pub fn encode(record: &Record) -> Vec<Cell> {
    let entity = record.entity;
    let mut out = Vec::with_capacity(entity.properties.len() + 8);
    for (prop, v) in entity.properties.iter().zip(&record.values) {
        encode_property(prop, v, &mut out);
    }
    out.push(Cell::Int(record.version));
    out.push(encode_dynamic(record));
    out
}

/// The cells of one declared property's value, appended to `out`: [`property_width`] of them,
/// as [`encode`] lays them out.
pub fn encode_property(prop: &Property, v: &Value, out: &mut Vec<Cell>) {
    match storage_of(prop) {
        Storage::Column => out.push(encode_primitive(v)),
        Storage::Json => out.push(match v {
            Value::Null => Cell::Null,
            v => Cell::Text(to_storage_json(&prop.ty, v).to_string()),
        }),
        Storage::Flattened(c) => {
            let members = match v {
                Value::Complex(m) => Some(m),
                _ => None,
            };
            out.push(if members.is_some() {
                Cell::Int(1)
            } else {
                Cell::Null
            });
            for i in 0..c.members.len() {
                out.push(
                    members
                        .and_then(|m| m.get(i))
                        .map_or(Cell::Null, encode_primitive),
                );
            }
        }
    }
}

/// The dynamic-properties cell of a record (the last of [`encode`]'s cells).
pub fn encode_dynamic(record: &Record) -> Cell {
    Cell::Text(Json::Object(record.dynamic.clone()).to_string())
}

/// How many record columns a declared property occupies (one, or a flattened complex
/// property's presence column plus its members).
pub fn property_width(prop: &Property) -> usize {
    match storage_of(prop) {
        Storage::Column | Storage::Json => 1,
        Storage::Flattened(c) => 1 + c.members.len(),
    }
}

/// A cell borrowed from a backend's row: what [`decode_with`] reads, so text that becomes a
/// `Value::String` is copied once and JSON text is parsed where it lies (no `String` per cell).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CellRef<'a> {
    Null,
    Int(i64),
    Real(f64),
    Bool(bool),
    Text(&'a str),
}

impl Cell {
    /// The cell borrowed.
    pub fn as_ref(&self) -> CellRef<'_> {
        match self {
            Cell::Null => CellRef::Null,
            Cell::Int(i) => CellRef::Int(*i),
            Cell::Real(f) => CellRef::Real(*f),
            Cell::Bool(b) => CellRef::Bool(*b),
            Cell::Text(t) => CellRef::Text(t),
        }
    }
}

fn decode_scalar(ty: &EdmType, cell: CellRef<'_>) -> Result<Value, String> {
    Ok(match (ty, cell) {
        (_, CellRef::Null) => Value::Null,
        (EdmType::Primitive(Primitive::String), CellRef::Text(s)) => Value::String(s.to_owned()),
        (EdmType::Primitive(Primitive::Boolean), CellRef::Bool(b)) => Value::Bool(b),
        (EdmType::Primitive(Primitive::Boolean), CellRef::Int(i)) => Value::Bool(i != 0),
        (EdmType::Primitive(Primitive::DateTimeOffset), CellRef::Int(t)) => Value::DateTime(t),
        (EdmType::Primitive(Primitive::Int32 | Primitive::Int64), CellRef::Int(i)) => Value::Int(i),
        (EdmType::Primitive(Primitive::Double), CellRef::Real(f)) => Value::Double(f),
        (EdmType::Primitive(Primitive::Double), CellRef::Int(i)) => Value::Double(i as f64),
        (EdmType::Enum(_), CellRef::Int(n)) => Value::Enum(n),
        (ty, c) => return Err(format!("a {c:?} cell cannot hold {}", ty.csdl_name())),
    })
}

/// Parses a value of `ty` from its JSON storage text (module doc) without building a JSON tree
/// first where the shape allows (primitives and collections of them: `tags`); complex values
/// go through [`from_storage_json`]. Text that is not the storage form of `ty` is an error.
fn parse_storage_json(ty: &'static EdmType, text: &str) -> Result<Value, String> {
    use serde::de::DeserializeSeed;
    let mut de = serde_json::Deserializer::from_str(text);
    let v = StorageSeed(ty)
        .deserialize(&mut de)
        .map_err(|e| e.to_string())?;
    de.end().map_err(|e| e.to_string())?;
    Ok(v)
}

/// Deserializes the JSON storage form of one `EdmType` straight into a [`Value`]; the same
/// acceptance as [`from_storage_json`] (which it defers to for complex values).
struct StorageSeed(&'static EdmType);

impl<'de> serde::de::DeserializeSeed<'de> for StorageSeed {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        match self.0 {
            EdmType::Complex(_) => {
                let j = <Json as serde::Deserialize>::deserialize(d)?;
                from_storage_json(self.0, j).map_err(serde::de::Error::custom)
            }
            _ => d.deserialize_any(self),
        }
    }
}

impl<'de> serde::de::Visitor<'de> for StorageSeed {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the JSON storage form of {}", self.0.csdl_name())
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E: serde::de::Error>(self, b: bool) -> Result<Value, E> {
        match self.0 {
            EdmType::Primitive(Primitive::Boolean) => Ok(Value::Bool(b)),
            _ => Err(E::invalid_type(serde::de::Unexpected::Bool(b), &self)),
        }
    }

    fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Value, E> {
        match self.0 {
            EdmType::Primitive(Primitive::DateTimeOffset) => Ok(Value::DateTime(n)),
            EdmType::Primitive(Primitive::Int32 | Primitive::Int64) => Ok(Value::Int(n)),
            EdmType::Primitive(Primitive::Double) => Ok(Value::Double(n as f64)),
            EdmType::Enum(_) => Ok(Value::Enum(n)),
            _ => Err(E::invalid_type(serde::de::Unexpected::Signed(n), &self)),
        }
    }

    fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Value, E> {
        match (self.0, i64::try_from(n)) {
            (EdmType::Primitive(Primitive::Double), _) => Ok(Value::Double(n as f64)),
            (_, Ok(i)) => self.visit_i64(i),
            (_, Err(_)) => Err(E::invalid_type(serde::de::Unexpected::Unsigned(n), &self)),
        }
    }

    fn visit_f64<E: serde::de::Error>(self, f: f64) -> Result<Value, E> {
        match self.0 {
            EdmType::Primitive(Primitive::Double) => Ok(Value::Double(f)),
            _ => Err(E::invalid_type(serde::de::Unexpected::Float(f), &self)),
        }
    }

    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Value, E> {
        match self.0 {
            EdmType::Primitive(Primitive::String) => Ok(Value::String(s.to_owned())),
            _ => Err(E::invalid_type(serde::de::Unexpected::Str(s), &self)),
        }
    }

    fn visit_string<E: serde::de::Error>(self, s: String) -> Result<Value, E> {
        match self.0 {
            EdmType::Primitive(Primitive::String) => Ok(Value::String(s)),
            _ => Err(E::invalid_type(serde::de::Unexpected::Str(&s), &self)),
        }
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let EdmType::Collection(elem) = self.0 else {
            return Err(serde::de::Error::invalid_type(
                serde::de::Unexpected::Seq,
                &self,
            ));
        };
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(v) = seq.next_element_seed(StorageSeed(elem))? {
            items.push(v);
        }
        Ok(Value::Collection(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, _: A) -> Result<Value, A::Error> {
        // Complex values never get here (`deserialize` hands them to `from_storage_json`).
        Err(serde::de::Error::invalid_type(
            serde::de::Unexpected::Map,
            &self,
        ))
    }
}

/// The `dynamic` column's text as the open type's dynamic properties (an object).
fn parse_dynamic(text: &str) -> Result<Map<String, Json>, String> {
    // Almost every row has none: skip the parser for the text `encode` writes then.
    if text == "{}" {
        return Ok(Map::new());
    }
    match serde_json::from_str(text).map_err(|e| format!("dynamic: {e}"))? {
        Json::Object(m) => Ok(m),
        other => Err(format!("dynamic is not an object: {other}")),
    }
}

/// The inverse of [`encode`] for a row of `entity`. A cell that does not fit is a corrupt row,
/// reported as an error.
pub fn decode(entity: &'static EntityType, cells: Vec<Cell>) -> Result<Record, String> {
    decode_with(entity, |i| {
        cells
            .get(i)
            .map(Cell::as_ref)
            .ok_or_else(|| "row has too few columns".to_string())
    })
}

/// [`decode`] reading the cells from where they lie: `cell(i)` is the `i`-th column of
/// [`record_columns`] (called once per column, in order), so a backend decodes straight from
/// its row without a `Cell` (and a `String`) per column. A cell that does not fit is a corrupt
/// row, reported as an error.
pub fn decode_with<'r>(
    entity: &'static EntityType,
    mut cell: impl FnMut(usize) -> Result<CellRef<'r>, String>,
) -> Result<Record, String> {
    let mut i = 0;
    let mut next = || {
        let c = cell(i);
        i += 1;
        c
    };
    let mut values = Vec::with_capacity(entity.properties.len());
    for prop in entity.properties {
        let v = match storage_of(prop) {
            Storage::Column => {
                decode_scalar(&prop.ty, next()?).map_err(|e| format!("{}: {e}", prop.name))?
            }
            Storage::Json => match next()? {
                CellRef::Null => Value::Null,
                CellRef::Text(t) => {
                    parse_storage_json(&prop.ty, t).map_err(|e| format!("{}: {e}", prop.name))?
                }
                c => return Err(format!("{}: bad JSON cell {c:?}", prop.name)),
            },
            Storage::Flattened(c) => {
                let present = !matches!(next()?, CellRef::Null);
                let mut members = Vec::with_capacity(c.members.len());
                for m in c.members {
                    members.push(
                        decode_scalar(&m.ty, next()?)
                            .map_err(|e| format!("{}/{}: {e}", prop.name, m.name))?,
                    );
                }
                if present {
                    Value::Complex(members)
                } else {
                    Value::Null
                }
            }
        };
        values.push(v);
    }
    let version = match next()? {
        CellRef::Int(v) => v,
        c => return Err(format!("bad version cell {c:?}")),
    };
    let dynamic = match next()? {
        CellRef::Text(t) => parse_dynamic(t)?,
        c => return Err(format!("bad dynamic cell {c:?}")),
    };
    Ok(Record {
        entity,
        values,
        dynamic,
        version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::catalog;
    use crate::model::record::{Change, Changes};

    /// The committed DDL files are what the catalog derives for the tables the migrations
    /// create; a change shows up as a diff to review (and, for a released schema, as a new
    /// numbered migration).
    #[test]
    fn golden_ddl_matches_the_catalog() {
        for (dialect, file) in [
            (Dialect::Sqlite, "sqlite.sql"),
            (Dialect::Postgres, "postgres.sql"),
        ] {
            let derived = migration_sets()
                .into_iter()
                .flatten()
                .map(|e| create_ddl(e, dialect).join(";\n\n") + ";\n")
                .collect::<Vec<_>>()
                .join("\n");
            let path = format!("{}/docs/schema/{file}", env!("CARGO_MANIFEST_DIR"));
            if std::env::var_os("GRAPHSEC_BLESS").is_some() {
                std::fs::write(&path, &derived).unwrap();
            }
            let golden = std::fs::read_to_string(&path).unwrap_or_default();
            assert_eq!(
                golden, derived,
                "{path} is stale: rerun with GRAPHSEC_BLESS=1 and review the diff"
            );
        }
    }

    /// A non-null value of every shape, different per property.
    fn sample(ty: &EdmType, seed: &str) -> Value {
        match ty {
            EdmType::Primitive(Primitive::String) => Value::String(format!("{seed}-v")),
            EdmType::Primitive(Primitive::Boolean) => Value::Bool(true),
            EdmType::Primitive(Primitive::DateTimeOffset) => Value::DateTime(123_456_789),
            EdmType::Primitive(Primitive::Int32) => Value::Int(-7),
            EdmType::Primitive(Primitive::Int64) => Value::Int(1 << 40),
            EdmType::Primitive(Primitive::Double) => Value::Double(2.5),
            EdmType::Enum(e) => Value::Enum(e.members[e.members.len().min(2) - 1].1),
            EdmType::Collection(elem) => {
                Value::Collection(vec![sample(elem, seed), sample(elem, "")])
            }
            EdmType::Complex(c) => {
                let mut extra = serde_json::Map::new();
                if c.open {
                    extra.insert("undeclared".into(), serde_json::json!({"kept": [1, "a"]}));
                }
                Value::complex(
                    c,
                    c.members.iter().map(|m| sample(&m.ty, m.name)).collect(),
                    extra,
                )
            }
        }
    }

    #[test]
    fn every_property_of_every_set_has_columns_and_survives_encode_decode() {
        for &entity in catalog().sets() {
            let names = record_columns(entity, Dialect::Sqlite);
            for prop in entity.properties {
                assert!(
                    names.iter().any(|c| c == column(prop)),
                    "{} has a column",
                    prop.name
                );
            }
            let mut changes = Changes::empty(entity);
            for (i, prop) in entity.properties.iter().enumerate() {
                changes.props[i] = Some(Change::Set(sample(&prop.ty, prop.name)));
            }
            changes
                .dynamic
                .insert("extra".into(), serde_json::json!({"a": [1, null]}));
            let record = Record::create(changes, "the-id".into(), 42).unwrap();
            let cells = encode(&record);
            assert_eq!(cells.len(), names.len(), "{}", entity.collection);
            assert_eq!(
                decode(entity, cells).unwrap(),
                record,
                "{}",
                entity.collection
            );
            let json = record.to_json(None);
            for prop in entity.properties {
                assert!(!json[prop.name].is_null(), "{} is serialized", prop.name);
            }
        }
    }

    /// Every table's column and index names are distinct, clear of the row's own columns, and
    /// within PostgreSQL's 63-byte identifier limit.
    #[test]
    fn every_set_has_distinct_identifiers_postgres_accepts() {
        for &entity in catalog().sets() {
            let cols = columns(entity, Dialect::Postgres);
            let mut names: Vec<&str> = cols.iter().map(|c| c.0.as_str()).collect();
            names.push("dynamic_doc");
            let n = names.len();
            names.sort_unstable();
            names.dedup();
            assert_eq!(
                names.len(),
                n,
                "{}: duplicate column names",
                entity.collection
            );
            for name in names.iter().copied().chain(std::iter::once(entity.table)) {
                assert!(name.len() <= 63, "{name}");
            }
            for stmt in create_ddl(entity, Dialect::Postgres) {
                if let Some(ix) = stmt.strip_prefix("CREATE INDEX \"") {
                    let ix = ix.split('"').next().unwrap_or("");
                    assert!(ix.len() <= 63, "{ix}");
                }
            }
        }
    }

    #[test]
    fn storage_follows_the_shape() {
        let profiles = catalog().set("cloudAppSecurityProfiles").unwrap();
        let of = |e: &EntityType, n: &str| storage_of(e.property(n).unwrap());
        assert_eq!(of(profiles, "name"), Storage::Column);
        assert_eq!(of(profiles, "permissionsRequired"), Storage::Column);
        assert_eq!(of(profiles, "tags"), Storage::Json);
        assert!(matches!(
            of(profiles, "vendorInformation"),
            Storage::Flattened(_)
        ));
        let scores = catalog().set("secureScores").unwrap();
        // An open complex type is stored as JSON (it keeps undeclared members).
        assert_eq!(of(scores, "controlScores"), Storage::Json);
        assert_eq!(of(scores, "currentScore"), Storage::Column);
        assert_eq!(
            columns(scores, Dialect::Postgres)
                .iter()
                .find(|c| c.0 == "currentScore")
                .map(|c| c.1),
            Some("DOUBLE PRECISION")
        );
    }
}
