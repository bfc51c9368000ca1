//! JSON body -> [`Changes`], by walking the entity type. Every client mistake becomes a
//! [`BodyError`] naming the property and the expected Edm type; nothing here panics.

use serde_json::{Map, Value as Json};

use super::edm::{self, EdmType, Primitive};
use super::entity::{EntityType, Managed};
use super::record::{Change, Changes, Value};

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

/// Checks an `@odata.type` annotation against the expected qualified type name.
fn check_type_annotation(v: &Json, expected: &str, place: &str) -> Result<(), BodyError> {
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

fn primitive(p: Primitive, v: &Json, name: &str) -> Result<Value, BodyError> {
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
        (p, other) => err(format!(
            "Invalid value for property '{name}': expected {} but found {}.",
            p.edm_name(),
            json_kind(other)
        )),
    }
}

/// Validates one declared property's JSON value. `Ok(None)` means "leave it as it is" (the
/// evolvable-enum sentinel in a PATCH).
fn declared(ty: &EdmType, v: &Json, name: &str, mode: Mode) -> Result<Option<Change>, BodyError> {
    match ty {
        EdmType::Primitive(p) => Ok(Some(Change::Set(primitive(*p, v, name)?))),
        EdmType::Enum(e) => match v {
            Json::Null => Ok(Some(Change::Set(Value::Null))),
            Json::String(s) => match e.resolve(s) {
                Some((member, _)) if Some(member) == e.sentinel => match mode {
                    Mode::Create => err(format!(
                        "Invalid value '{s}' for property '{name}': '{member}' is a sentinel that clients may not send. Valid values: {}.",
                        valid_members(e)
                    )),
                    Mode::Patch => Ok(None),
                },
                Some((_, value)) => Ok(Some(Change::Set(Value::Enum(value)))),
                None => err(format!(
                    "Invalid value '{s}' for property '{name}' of enum type {}. Valid values: {}.",
                    e.qualified_name(),
                    e.member_list()
                )),
            },
            other => err(format!(
                "Invalid value for property '{name}': expected a member name of {} but found {}.",
                e.qualified_name(),
                json_kind(other)
            )),
        },
        EdmType::Collection(elem) => {
            let EdmType::Primitive(p) = elem else {
                return err(format!(
                    "The property '{name}' ({}) cannot be written yet: collections of enum or complex values are not supported by this server version.",
                    ty.csdl_name()
                ));
            };
            match v {
                Json::Null => Ok(Some(Change::Set(Value::Null))),
                Json::Array(items) => {
                    let mut out = Vec::with_capacity(items.len());
                    for (i, item) in items.iter().enumerate() {
                        if item.is_null() {
                            return err(format!(
                                "Invalid value for property '{name}': item {i} is null; expected {}.",
                                p.edm_name()
                            ));
                        }
                        out.push(primitive(*p, item, &format!("{name}[{i}]"))?);
                    }
                    Ok(Some(Change::Set(Value::Collection(out))))
                }
                other => err(format!(
                    "Invalid value for property '{name}': expected Collection({}) but found {}.",
                    p.edm_name(),
                    json_kind(other)
                )),
            }
        }
        EdmType::Complex(c) => match v {
            Json::Null => Ok(Some(Change::Set(Value::Null))),
            Json::Object(obj) => {
                let mut members = vec![None; c.members.len()];
                for (k, mv) in obj {
                    if k == "@odata.type" {
                        check_type_annotation(mv, &c.qualified_name(), &format!("'{name}'"))?;
                        continue;
                    }
                    if k.contains('@') {
                        continue;
                    }
                    let Some(i) = c.member_index(k) else {
                        return err(format!(
                            "Property '{k}' does not exist on type '{}' (in '{name}'). Valid members: {}.",
                            c.qualified_name(),
                            c.members
                                .iter()
                                .map(|m| m.name)
                                .collect::<Vec<_>>()
                                .join(", ")
                        ));
                    };
                    let m = &c.members[i];
                    let EdmType::Primitive(p) = m.ty else {
                        return err(format!(
                            "The member '{name}/{k}' ({}) cannot be written yet: nested complex, enum and collection members are not supported by this server version.",
                            m.ty.csdl_name()
                        ));
                    };
                    members[i] = Some(primitive(p, mv, &format!("{name}/{k}"))?);
                }
                Ok(Some(Change::Merge(members)))
            }
            other => err(format!(
                "Invalid value for property '{name}': expected an object of type {} but found {}.",
                c.qualified_name(),
                json_kind(other)
            )),
        },
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
    if let Some(place) = find_nul(body, "") {
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
    for (name, v) in obj {
        if name == "@odata.type" {
            check_type_annotation(v, &entity.qualified_name(), "the request body")?;
            continue;
        }
        // Control information and instance/property annotations: SDKs echo what they read.
        if name.contains('@') {
            continue;
        }
        let Some(i) = entity.index_of(name) else {
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
        let change = declared(&prop.ty, v, name, mode)?;
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
    Ok(changes)
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
                Options { strict: true }
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
}
