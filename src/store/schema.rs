//! The SQL schema, derived from the entity table: column names and types for every backend.
//!
//! Layout of one row: `tenant`, then one column per declared primitive/enum/collection property
//! (named exactly like the property), a complex property as a presence column (named like the
//! property: NULL when the property is null, 1 when it is an object) plus one column per member
//! (`vendorInformation_provider`), then `version` and `dynamic` (a JSON object of the open type's
//! dynamic properties, in the order they were sent).
//!
//! Storage forms, identical on every backend so ordering and comparison agree:
//! String -> TEXT; Boolean -> INTEGER 0/1 (SQLite) or BOOLEAN (PostgreSQL); DateTimeOffset ->
//! BIGINT 100 ns UTC ticks; enum -> INTEGER underlying value; Collection -> JSON array text
//! (SQLite TEXT, PostgreSQL JSONB).

use serde_json::Value as Json;

use crate::model::edm::{EdmType, Primitive};
use crate::model::entity::{ENTITY, Property};
use crate::model::record::{Record, Value, value_to_json};

pub const TABLE: &str = "cloud_app_security_profiles";
pub const TENANT_COLUMN: &str = "tenant";
pub const VERSION_COLUMN: &str = "version";
pub const DYNAMIC_COLUMN: &str = "dynamic";

/// The SQL dialects graphsec speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// The column that holds a declared property (for a complex property: its presence column).
pub fn column(prop: &Property) -> &'static str {
    prop.name
}

/// The column that holds one member of a complex property.
pub fn member_column(prop: &Property, member: &str) -> String {
    format!("{}_{}", prop.name, member)
}

/// Quotes an identifier the same way on every dialect.
pub fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

fn sql_type(p: Primitive, dialect: Dialect) -> &'static str {
    match (p, dialect) {
        (Primitive::String, _) => "TEXT",
        (Primitive::Boolean, Dialect::Sqlite) => "INTEGER",
        (Primitive::Boolean, Dialect::Postgres) => "BOOLEAN",
        (Primitive::DateTimeOffset, _) => "BIGINT",
    }
}

/// Every stored column of the entity in row order, with its SQL type and NOT NULL-ness.
/// The `tenant`, `version` and `dynamic` columns are included.
pub fn columns(dialect: Dialect) -> Vec<(String, &'static str, bool)> {
    let json = match dialect {
        Dialect::Sqlite => "TEXT",
        Dialect::Postgres => "JSONB",
    };
    let mut out = vec![(TENANT_COLUMN.to_string(), "TEXT", true)];
    for prop in ENTITY.properties {
        let not_null = !prop.nullable;
        match prop.ty {
            EdmType::Primitive(p) => {
                out.push((column(prop).to_string(), sql_type(p, dialect), not_null))
            }
            EdmType::Enum(_) => out.push((column(prop).to_string(), "INTEGER", not_null)),
            EdmType::Collection(_) => out.push((column(prop).to_string(), json, not_null)),
            EdmType::Complex(c) => {
                out.push((column(prop).to_string(), "INTEGER", not_null));
                for m in c.members {
                    out.push((member_column(prop, m.name), sql_type(m.ty, dialect), false));
                }
            }
        }
    }
    out.push((VERSION_COLUMN.to_string(), "BIGINT", true));
    out.push((DYNAMIC_COLUMN.to_string(), json, true));
    out
}

/// The properties that get an index of their own (tenant-first, so every index serves one
/// tenant's queries), chosen for the common filters and orders.
pub fn indexed_properties() -> impl Iterator<Item = &'static Property> {
    ENTITY.properties.iter().filter(|p| p.indexed)
}

/// The DDL that creates the schema at version 1.
pub fn create_ddl(dialect: Dialect) -> Vec<String> {
    let key = column(&ENTITY.properties[ENTITY.key_index()]);
    let mut cols: Vec<String> = columns(dialect)
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
        quote(TABLE),
        cols.join(",\n")
    )];
    for prop in indexed_properties() {
        ddl.push(format!(
            "CREATE INDEX {} ON {} ({}, {}, {})",
            quote(&format!("ix_{}_{}", TABLE, prop.name)),
            quote(TABLE),
            quote(TENANT_COLUMN),
            quote(column(prop)),
            quote(key)
        ));
    }
    ddl
}

/// A bind placeholder in the dialect's syntax (1-based).
pub fn placeholder(dialect: Dialect, n: usize) -> String {
    match dialect {
        Dialect::Sqlite => format!("?{n}"),
        Dialect::Postgres => format!("${n}"),
    }
}

/// The export page query (`Store::export_page`): `select_list`, then the tenant column, of the
/// rows after a (tenant, id) position, in (tenant, id) order. Its parameters, in order: the
/// tenant if `one_tenant`, the position's tenant and id if `after`, then the row limit. Each
/// shape is its own statement (rather than `? IS NULL OR …`) so every page is a range scan of
/// the (tenant, id) key.
pub fn export_page_sql(
    dialect: Dialect,
    select_list: &str,
    one_tenant: bool,
    after: bool,
) -> String {
    let t = quote(TENANT_COLUMN);
    let key = quote(column(&ENTITY.properties[ENTITY.key_index()]));
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
        quote(TABLE),
        next()
    )
}

/// `INSERT` of one whole row: every column of [`columns`], `tenant` first.
pub fn insert_sql(dialect: Dialect) -> String {
    let cols = columns(dialect);
    format!(
        "INSERT INTO {} ({}) VALUES ({})",
        quote(TABLE),
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
    Bool(bool),
    Text(String),
}

/// The stored columns a record maps to (every column of [`columns`] except `tenant`).
pub fn record_columns(dialect: Dialect) -> Vec<String> {
    columns(dialect)
        .into_iter()
        .skip(1)
        .map(|(name, _, _)| name)
        .collect()
}

/// The names of [`record_columns`], which are the same on every dialect.
pub fn record_column_names() -> Vec<String> {
    record_columns(Dialect::Sqlite)
}

fn encode_primitive(v: &Value) -> Cell {
    match v {
        Value::String(s) => Cell::Text(s.clone()),
        Value::Bool(b) => Cell::Bool(*b),
        Value::DateTime(t) => Cell::Int(*t),
        Value::Enum(n) => Cell::Int(*n),
        _ => Cell::Null,
    }
}

/// A record as cells, in [`record_columns`] order.
pub fn encode(record: &Record) -> Vec<Cell> {
    let mut out = Vec::with_capacity(ENTITY.properties.len() + 8);
    for (prop, v) in ENTITY.properties.iter().zip(&record.values) {
        match (&prop.ty, v) {
            (EdmType::Collection(ty), Value::Collection(items)) => {
                let json: Vec<Json> = items
                    .iter()
                    .map(|i| value_to_json(&EdmType::Primitive(*ty), i))
                    .collect();
                out.push(Cell::Text(Json::Array(json).to_string()));
            }
            (EdmType::Complex(c), v) => {
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
            (_, v) => out.push(encode_primitive(v)),
        }
    }
    out.push(Cell::Int(record.version));
    out.push(Cell::Text(Json::Object(record.dynamic.clone()).to_string()));
    out
}

fn decode_primitive(p: Primitive, cell: Cell) -> Result<Value, String> {
    Ok(match (p, cell) {
        (_, Cell::Null) => Value::Null,
        (Primitive::String, Cell::Text(s)) => Value::String(s),
        (Primitive::Boolean, Cell::Bool(b)) => Value::Bool(b),
        (Primitive::Boolean, Cell::Int(i)) => Value::Bool(i != 0),
        (Primitive::DateTimeOffset, Cell::Int(t)) => Value::DateTime(t),
        (p, c) => return Err(format!("a {c:?} cell cannot hold {}", p.edm_name())),
    })
}

/// The inverse of [`encode`]. A cell that does not fit is a corrupt row, reported as an error.
pub fn decode(cells: Vec<Cell>) -> Result<Record, String> {
    let mut it = cells.into_iter();
    let mut next = || {
        it.next()
            .ok_or_else(|| "row has too few columns".to_string())
    };
    let mut values = Vec::with_capacity(ENTITY.properties.len());
    for prop in ENTITY.properties {
        let v = match prop.ty {
            EdmType::Primitive(p) => decode_primitive(p, next()?)?,
            EdmType::Enum(_) => match next()? {
                Cell::Null => Value::Null,
                Cell::Int(n) => Value::Enum(n),
                c => return Err(format!("{}: bad enum cell {c:?}", prop.name)),
            },
            EdmType::Collection(p) => match next()? {
                Cell::Null => Value::Null,
                Cell::Text(t) => {
                    let items: Vec<Json> =
                        serde_json::from_str(&t).map_err(|e| format!("{}: {e}", prop.name))?;
                    let mut out = Vec::with_capacity(items.len());
                    for item in items {
                        out.push(match (p, item) {
                            (Primitive::String, Json::String(s)) => Value::String(s),
                            (Primitive::Boolean, Json::Bool(b)) => Value::Bool(b),
                            (Primitive::DateTimeOffset, Json::String(s)) => Value::DateTime(
                                crate::model::edm::parse_datetime(&s)
                                    .map_err(|e| e.0.to_string())?,
                            ),
                            (_, other) => return Err(format!("{}: bad item {other}", prop.name)),
                        });
                    }
                    Value::Collection(out)
                }
                c => return Err(format!("{}: bad collection cell {c:?}", prop.name)),
            },
            EdmType::Complex(c) => {
                let present = !matches!(next()?, Cell::Null);
                let mut members = Vec::with_capacity(c.members.len());
                for m in c.members {
                    members.push(decode_primitive(m.ty, next()?)?);
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
        Cell::Int(v) => v,
        c => return Err(format!("bad version cell {c:?}")),
    };
    let dynamic = match next()? {
        Cell::Text(t) => match serde_json::from_str(&t).map_err(|e| format!("dynamic: {e}"))? {
            Json::Object(m) => m,
            other => return Err(format!("dynamic is not an object: {other}")),
        },
        c => return Err(format!("bad dynamic cell {c:?}")),
    };
    Ok(Record {
        values,
        dynamic,
        version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::record::Changes;

    /// The committed DDL files are what the table derives; a change to the table shows up as a
    /// diff to review (and, for a released schema, as a new numbered migration).
    #[test]
    fn golden_ddl_matches_the_table() {
        for (dialect, file) in [
            (Dialect::Sqlite, "sqlite.sql"),
            (Dialect::Postgres, "postgres.sql"),
        ] {
            let derived = create_ddl(dialect).join(";\n\n") + ";\n";
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

    #[test]
    fn every_property_has_columns_and_survives_encode_decode() {
        let names = record_columns(Dialect::Sqlite);
        for prop in ENTITY.properties {
            assert!(
                names.iter().any(|c| c == column(prop)),
                "{} has a column",
                prop.name
            );
        }
        let mut changes = Changes::empty();
        for (i, prop) in ENTITY.properties.iter().enumerate() {
            let v = match prop.ty {
                EdmType::Primitive(Primitive::String) => Value::String(format!("{}-v", prop.name)),
                EdmType::Primitive(Primitive::Boolean) => Value::Bool(true),
                EdmType::Primitive(Primitive::DateTimeOffset) => Value::DateTime(123_456_789),
                EdmType::Enum(e) => Value::Enum(e.members[1].1),
                EdmType::Collection(_) => {
                    Value::Collection(vec![Value::String("a".into()), Value::String("".into())])
                }
                EdmType::Complex(c) => Value::Complex(
                    c.members
                        .iter()
                        .map(|m| Value::String(m.name.into()))
                        .collect(),
                ),
            };
            changes.props[i] = Some(crate::model::record::Change::Set(v));
        }
        changes
            .dynamic
            .insert("extra".into(), serde_json::json!({"a": [1, null]}));
        let record = Record::create(changes, "the-id".into(), 42);
        let cells = encode(&record);
        assert_eq!(cells.len(), names.len());
        assert_eq!(decode(cells).unwrap(), record);
        let json = record.to_json(None);
        for prop in ENTITY.properties {
            assert!(!json[prop.name].is_null(), "{} is serialized", prop.name);
        }
    }
}
