//! Example bodies derived from the catalog: the create template of a set (its required and
//! non-nullable members filled), the PATCH body an edit form starts from, and the documented
//! body of a bound action. No property name is spelled here: everything comes from the type.

use serde_json::{Map, Value as Json, json};

use crate::model::actions::{BoundAction, Effect, ParamKind};
use crate::model::edm::{EdmType, Primitive};
use crate::model::entity::{EntityType, Managed, Property};
use crate::model::record::Record;

/// A placeholder value of `ty` (its first enum member, a zero, `false`, the current instant, a
/// complex value with its non-nullable members filled, an empty collection).
fn placeholder(ty: &EdmType, name: &str) -> Json {
    match ty {
        EdmType::Primitive(Primitive::String) => Json::String(format!("example {name}")),
        EdmType::Primitive(Primitive::Boolean) => Json::Bool(false),
        EdmType::Primitive(Primitive::Int32 | Primitive::Int64) => json!(0),
        EdmType::Primitive(Primitive::Double) => json!(0.0),
        EdmType::Primitive(Primitive::DateTimeOffset) => Json::String(
            crate::model::edm::format_datetime(crate::model::edm::now_ticks()),
        ),
        EdmType::Enum(e) => e
            .members
            .first()
            .map_or(Json::Null, |(n, _)| Json::String((*n).into())),
        EdmType::Complex(c) => {
            let mut m = Map::new();
            for member in c.members.iter().filter(|m| !m.nullable) {
                m.insert(member.name.into(), placeholder(&member.ty, member.name));
            }
            Json::Object(m)
        }
        EdmType::Collection(_) => Json::Array(vec![]),
    }
}

/// The value a create template gives `p`: the documented default, the first documented
/// string, the lower bound of a range, else a placeholder of its type.
fn template_value(entity: &EntityType, index: usize, p: &Property) -> Json {
    if let Some(rule) = entity.rules.values.iter().find(|r| r.property == index) {
        if let Some(d) = rule.default {
            return d.clone();
        }
        if let Some(first) = rule.one_of.first() {
            return Json::String((*first).into());
        }
        if let Some(min) = rule.min {
            return if matches!(p.ty, EdmType::Primitive(Primitive::Double)) {
                json!(min)
            } else {
                json!(min as i64)
            };
        }
    }
    placeholder(&p.ty, p.name)
}

/// Whether a PATCH of `entity` must carry (a member of) `p`.
fn required_on_update(entity: &EntityType, p: &Property) -> bool {
    entity
        .rules
        .required_on_update
        .iter()
        .any(|path| path.split('/').next() == Some(p.name))
}

/// `value` (of `p`) with the members a PATCH must carry filled where they are null or absent.
fn with_required_members(entity: &EntityType, p: &Property, mut value: Json) -> Json {
    let EdmType::Complex(c) = p.ty else {
        return value;
    };
    if !value.is_object() {
        value = Json::Object(Map::new());
    }
    for path in entity.rules.required_on_update {
        let Some((name, member)) = path.split_once('/') else {
            continue;
        };
        if name != p.name {
            continue;
        }
        let Some(m) = c.members.iter().find(|m| m.name == member) else {
            continue;
        };
        if let Some(obj) = value.as_object_mut()
            && obj.get(member).is_none_or(Json::is_null)
        {
            obj.insert(member.into(), placeholder(&m.ty, member));
        }
    }
    value
}

/// A create body for `entity`: every property a create must carry (`required_on_create`), every
/// non-nullable client property, and the first of the `one_of_on_create` alternatives.
pub fn create_body(entity: &EntityType) -> Json {
    let rules = &entity.rules;
    let mut body = Map::new();
    for (i, p) in entity.properties.iter().enumerate() {
        if !p.declared || p.managed != Managed::Client {
            continue;
        }
        let wanted = rules.required_on_create.contains(&i)
            || !p.nullable
            || required_on_update(entity, p)
            || rules.one_of_on_create.first() == Some(&i);
        if wanted {
            let v = template_value(entity, i, p);
            body.insert(p.name.into(), with_required_members(entity, p, v));
        }
    }
    Json::Object(body)
}

/// The PATCH body an edit form starts from: the record's current values of the client-writable
/// primitive and enum properties, and the members a PATCH must carry (`required_on_update`).
pub fn edit_body(record: &Record) -> Json {
    let entity = record.entity;
    let current = record.to_json(None);
    let mut body = Map::new();
    for (i, p) in entity.properties.iter().enumerate() {
        let required = required_on_update(entity, p);
        if !p.declared
            || p.managed != Managed::Client
            || (entity.rules.read_only.contains(&i) && !required)
        {
            continue;
        }
        let simple = matches!(p.ty, EdmType::Primitive(_) | EdmType::Enum(_));
        match current.get(p.name) {
            Some(v) if required => {
                body.insert(p.name.into(), with_required_members(entity, p, v.clone()));
            }
            Some(v) if simple && !v.is_null() => {
                body.insert(p.name.into(), v.clone());
            }
            _ if required => {
                let v = template_value(entity, i, p);
                body.insert(p.name.into(), with_required_members(entity, p, v));
            }
            _ => {}
        }
    }
    Json::Object(body)
}

/// The body a bound action documents (`docs/ACTIONS.md`), with this set's values: a create
/// template per item, the key and the required members of an update, keys or values for the
/// deletes, nothing for an action without a parameter. `id` is the entity an item names.
pub fn action_body(action: &BoundAction, id: Option<&str>) -> Json {
    let entity = action.entity;
    let Some(param) = action.parameter else {
        return json!({});
    };
    let item = match (param.kind, action.effect) {
        (ParamKind::Entities, Effect::Update { required }) => {
            // Each item is a PATCH body with its key: the action's required properties and
            // what every update of the set must carry (updateTiIndicators: expirationDateTime
            // and targetProduct; updateAlerts: vendorInformation's provider and vendor).
            let mut m = Map::new();
            for (i, p) in entity.properties.iter().enumerate() {
                if !required.contains(&i) && !required_on_update(entity, p) {
                    continue;
                }
                let v = if p.managed == Managed::Key {
                    Json::String(id.unwrap_or("the-id").into())
                } else {
                    with_required_members(entity, p, template_value(entity, i, p))
                };
                m.insert(p.name.into(), v);
            }
            Json::Object(m)
        }
        (ParamKind::Entities, _) => create_body(entity),
        (ParamKind::Strings, Effect::DeleteBy { property }) => {
            Json::String(format!("a {}", entity.properties[property].name))
        }
        (ParamKind::Strings, _) => Json::String(id.unwrap_or("the-id").into()),
    };
    json!({ param.name: [item] })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::catalog::catalogs;
    use crate::model::validate::{self, Mode};

    /// An update action's item carries every member an update requires, filled (updateAlerts'
    /// vendorInformation with its provider and vendor, not `{}`).
    #[test]
    fn update_action_items_carry_the_required_members() {
        {
            for action in crate::model::actions::all() {
                let Effect::Update { .. } = action.effect else {
                    continue;
                };
                let body = action_body(action, Some("x"));
                let item = body.as_object().unwrap().values().next().unwrap()[0].clone();
                for path in action.entity.rules.required_on_update {
                    let value = path.split('/').fold(&item, |v, seg| &v[seg]);
                    assert!(
                        !value.is_null(),
                        "{}: {path} missing in {item}",
                        action.name
                    );
                }
            }
        }
    }

    /// Every served set's template passes the API's own create validation, in every version.
    #[test]
    fn every_create_template_validates() {
        for catalog in catalogs() {
            for entity in catalog.served().filter(|e| e.capabilities.insertable) {
                let body = create_body(entity);
                let r =
                    validate::changes_from_json(entity, &body, Mode::Create, Default::default());
                assert!(
                    r.is_ok(),
                    "{} {}: {body} -> {:?}",
                    catalog.version,
                    entity.collection,
                    r.err()
                );
            }
        }
    }

    /// The edit body of a created entity is a valid PATCH.
    #[test]
    fn every_edit_body_validates() {
        for catalog in catalogs() {
            for entity in catalog.served().filter(|e| e.capabilities.insertable) {
                let changes = validate::changes_from_json(
                    entity,
                    &create_body(entity),
                    Mode::Create,
                    Default::default(),
                )
                .unwrap();
                let record = Record::create(changes, "x".into(), 1).unwrap();
                let body = edit_body(&record);
                let r = validate::changes_from_json(entity, &body, Mode::Patch, Default::default());
                assert!(r.is_ok(), "{}: {body} -> {:?}", entity.collection, r.err());
            }
        }
    }
}
