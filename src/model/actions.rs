//! Bound actions: the metadata's `<Action IsBound="true">` elements joined with what each one does
//! to the entities of its set (`actions.json`, embedded), resolved once at startup into
//! [`BoundAction`]s that the router and [`crate::api::actions`] use.
//!
//! The CSDL gives an action's name, its binding parameter (an entity type, or a collection of
//! one), its other parameters and its return type; the table gives the item-level effect
//! (create / update / delete by key / delete by a property / a fixed PATCH), with the Graph page
//! each comes from. Both are validated against each other at load: a bound action without an
//! entry, an entry without an action, a property the type lacks, or a parameter or return type
//! the effect cannot use is a load error naming it. No action or property name is spelled in Rust.

use std::sync::OnceLock;

use serde::Deserialize;
use serde_json::Value as Json;

use super::catalog;
use super::csdl::{ActionDef, TypeRef};
use super::edm::{EdmType, Primitive};
use super::entity::{EntityType, NAMESPACE};

/// The embedded table of action effects.
pub const TABLE: &str = include_str!("actions.json");

/// The complex type a bulk delete answers per item, and its members (Graph's `resultInfo`:
/// `code` and `subcode` non-null Int32, `message` String). [`load`] checks the metadata agrees.
pub const RESULT_INFO: &str = "resultInfo";
pub const RESULT_INFO_MEMBERS: [&str; 3] = ["code", "message", "subcode"];

/// What an action is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding {
    /// `/security/{set}/{action}`: the binding parameter is `Collection(type)`.
    Collection,
    /// `/security/{set}/{id}/{action}`: the binding parameter is the type.
    Entity,
}

/// The shape of the action's one non-binding parameter (the family's actions all call it
/// `value`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    /// `Collection(<the bound entity type>)`: each item a JSON object.
    Entities,
    /// `Collection(Edm.String)`: each item a JSON string.
    Strings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parameter {
    pub name: &'static str,
    pub kind: ParamKind,
}

/// What the action answers on success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returns {
    /// No return type: 200 with an empty body (Graph's cancelSecurityAction page).
    Nothing,
    /// `Collection(<the bound entity type>)`: the entities written, one per item.
    Entities,
    /// `Collection(graph.resultInfo)`: one result per item.
    ResultInfo,
}

/// What the action does per item.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Effect {
    /// Each item is a create body.
    Create,
    /// Each item names an entity by its key and is a PATCH body; `required` (indices into the
    /// type's properties, the key among them) must be present in every item.
    Update { required: &'static [usize] },
    /// Each string is a key.
    Delete,
    /// Each string is a value of `property` (an index); every entity with it is deleted.
    DeleteBy { property: usize },
    /// No parameter: `body` is applied to the bound entity as a PATCH.
    Set { body: &'static Json },
}

/// One bound action of one entity set, resolved.
#[derive(Debug)]
pub struct BoundAction {
    /// As the metadata spells it (`submitTiIndicators`).
    pub name: &'static str,
    pub entity: &'static EntityType,
    pub binding: Binding,
    pub parameter: Option<Parameter>,
    pub returns: Returns,
    pub effect: Effect,
    /// The most items one call may carry, where the action's page states a limit
    /// (submitTiIndicators: 100); more is a 400 before anything is written.
    pub max_items: Option<usize>,
}

/// Actions are singletons of the table: identity is (set, name).
impl PartialEq for BoundAction {
    fn eq(&self, other: &BoundAction) -> bool {
        self.name == other.name && self.entity == other.entity
    }
}

impl Eq for BoundAction {}

impl BoundAction {
    pub fn qualified_name(&self) -> String {
        format!("{NAMESPACE}.{}", self.name)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Table {
    #[serde(rename = "//")]
    _comment: Option<String>,
    actions: std::collections::BTreeMap<String, Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    effect: String,
    #[serde(default)]
    required: Vec<String>,
    property: Option<String>,
    body: Option<Json>,
    #[serde(rename = "maxItems")]
    max_items: Option<usize>,
    #[serde(rename = "//source")]
    _source: Option<String>,
}

fn leak<T>(v: T) -> &'static T {
    Box::leak(Box::new(v))
}

/// The qualified name of a metadata type name as the registry stores it.
fn is_type(t: &TypeRef, qualified: &str, collection: bool) -> bool {
    t.collection == collection && t.name == qualified
}

fn resolve_one(
    entity: &'static EntityType,
    def: &ActionDef,
    entry: &Entry,
) -> Result<BoundAction, String> {
    let at = format!("action {} bound to {}", def.name, entity.collection);
    let qualified = entity.qualified_name();
    let binding = match def.binding() {
        Some(t) if is_type(t, &qualified, true) => Binding::Collection,
        Some(t) if is_type(t, &qualified, false) => Binding::Entity,
        other => return Err(format!("{at}: unexpected binding parameter {other:?}")),
    };
    let parameter = match &def.parameters[1..] {
        [] => None,
        [p] if is_type(&p.ty, &qualified, true) => Some(Parameter {
            name: leak(p.name.clone()).as_str(),
            kind: ParamKind::Entities,
        }),
        [p] if is_type(&p.ty, "Edm.String", true) => Some(Parameter {
            name: leak(p.name.clone()).as_str(),
            kind: ParamKind::Strings,
        }),
        _ => {
            return Err(format!(
                "{at}: only one parameter, a collection of the bound type or of Edm.String, is supported"
            ));
        }
    };
    let result_info = format!("{NAMESPACE}.{RESULT_INFO}");
    let returns = match &def.return_type {
        None => Returns::Nothing,
        Some(t) if is_type(t, &qualified, true) => Returns::Entities,
        Some(t) if is_type(t, &result_info, true) => Returns::ResultInfo,
        Some(t) => return Err(format!("{at}: unsupported return type {}", t.csdl_name())),
    };
    let property = |name: &str| {
        entity
            .index_of(name)
            .ok_or_else(|| format!("{at}: {} has no property '{name}'", entity.name))
    };
    let effect = match entry.effect.as_str() {
        "create" => Effect::Create,
        "update" => {
            let mut required = entry
                .required
                .iter()
                .map(|n| property(n))
                .collect::<Result<Vec<_>, _>>()?;
            if !required.contains(&entity.key_index()) {
                required.insert(0, entity.key_index());
            }
            Effect::Update {
                required: Box::leak(required.into_boxed_slice()),
            }
        }
        "delete" => Effect::Delete,
        "deleteBy" => {
            let name = entry
                .property
                .as_deref()
                .ok_or_else(|| format!("{at}: 'deleteBy' needs 'property'"))?;
            let i = property(name)?;
            if !matches!(
                entity.properties[i].ty,
                EdmType::Primitive(Primitive::String)
            ) || !entity.properties[i].filterable
            {
                return Err(format!(
                    "{at}: '{name}' must be a filterable Edm.String property"
                ));
            }
            Effect::DeleteBy { property: i }
        }
        "set" => {
            let body = entry
                .body
                .as_ref()
                .ok_or_else(|| format!("{at}: 'set' needs 'body'"))?;
            let Json::Object(members) = body else {
                return Err(format!("{at}: 'body' must be an object"));
            };
            for name in members.keys() {
                property(name)?;
            }
            Effect::Set {
                body: leak(body.clone()),
            }
        }
        other => return Err(format!("{at}: unknown effect '{other}'")),
    };
    // The effect must fit the signature: what it reads per item and what it answers.
    let fits = match effect {
        Effect::Create | Effect::Update { .. } => {
            binding == Binding::Collection
                && parameter.map(|p| p.kind) == Some(ParamKind::Entities)
                && returns == Returns::Entities
        }
        Effect::Delete | Effect::DeleteBy { .. } => {
            binding == Binding::Collection
                && parameter.map(|p| p.kind) == Some(ParamKind::Strings)
                && returns == Returns::ResultInfo
        }
        Effect::Set { .. } => {
            binding == Binding::Entity && parameter.is_none() && returns == Returns::Nothing
        }
    };
    if !fits {
        return Err(format!(
            "{at}: effect '{}' does not fit the signature {}",
            entry.effect,
            def.signature(NAMESPACE)
        ));
    }
    Ok(BoundAction {
        name: leak(def.name.clone()).as_str(),
        entity,
        binding,
        parameter,
        returns,
        effect,
        max_items: entry.max_items,
    })
}

/// Joins the catalog's bound actions with the table.
pub fn load() -> Result<Vec<BoundAction>, String> {
    let table: Table =
        serde_json::from_str(TABLE).map_err(|e| format!("model/actions.json: {e}"))?;
    let mut out = Vec::new();
    let mut used = std::collections::BTreeSet::new();
    // Each version's sets with that version's bound actions (v1.0 binds none to alerts).
    for catalog in catalog::catalogs() {
        let registry = &catalog.registry;
        for entity in catalog.sets() {
            let Some(set) = registry.entity_set(entity.collection) else {
                return Err(format!(
                    "no entity set {} in the metadata",
                    entity.collection
                ));
            };
            for def in registry.actions_of(set) {
                let entry = table.actions.get(&def.name).ok_or_else(|| {
                    format!(
                        "model/actions.json: the bound action {} of {} has no entry",
                        def.name, entity.collection
                    )
                })?;
                used.insert(def.name.clone());
                out.push(
                    resolve_one(entity, def, entry)
                        .map_err(|e| format!("model/actions.json: {e}"))?,
                );
            }
        }
    }
    if let Some(extra) = table.actions.keys().find(|k| !used.contains(*k)) {
        return Err(format!(
            "model/actions.json: '{extra}' is not a bound action of any entity set in the metadata"
        ));
    }
    if out.iter().any(|a| a.returns == Returns::ResultInfo) {
        check_result_info()?;
    }
    Ok(out)
}

/// The members [`RESULT_INFO_MEMBERS`] are what the metadata's `resultInfo` declares.
fn check_result_info() -> Result<(), String> {
    let registry = &catalog::catalog().registry;
    let qualified = format!("{NAMESPACE}.{RESULT_INFO}");
    let declared: Vec<&str> = registry
        .complex_types
        .iter()
        .find(|c| c.qualified_name == qualified)
        .ok_or_else(|| format!("the metadata has no complex type {qualified}"))?
        .properties
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    if declared != RESULT_INFO_MEMBERS {
        return Err(format!(
            "{qualified} declares {declared:?}; graphsec writes {RESULT_INFO_MEMBERS:?}"
        ));
    }
    Ok(())
}

static ACTIONS: OnceLock<Result<Vec<BoundAction>, String>> = OnceLock::new();

/// Every bound action (built once). Panics if the embedded table disagrees with the metadata,
/// which the unit tests rule out.
pub fn all() -> &'static [BoundAction] {
    match ACTIONS.get_or_init(load) {
        Ok(v) => v,
        Err(e) => panic!("the embedded action table does not load: {e}"),
    }
}

/// The action a URL segment names on `entity` with this binding: the name in any ASCII case,
/// bare or namespace-qualified (`microsoft.graph.submitTiIndicators`), as Graph accepts.
pub fn find(
    entity: &'static EntityType,
    binding: Binding,
    segment: &str,
) -> Option<&'static BoundAction> {
    let name = strip_namespace(segment).unwrap_or(segment);
    all()
        .iter()
        .find(|a| a.entity == entity && a.binding == binding && a.name.eq_ignore_ascii_case(name))
}

/// `segment` without a leading `microsoft.graph.` (any case), if it has one.
pub fn strip_namespace(segment: &str) -> Option<&str> {
    let n = NAMESPACE.len();
    (segment.len() > n + 1
        && segment.as_bytes()[..n].eq_ignore_ascii_case(NAMESPACE.as_bytes())
        && segment.as_bytes()[n] == b'.')
        .then(|| &segment[n + 1..])
}

/// The other versions that bind an action named `segment` (as [`find`] reads it) to the
/// collection of `entity`'s set.
pub fn versions_binding(entity: &'static EntityType, segment: &str) -> Vec<&'static str> {
    let name = strip_namespace(segment).unwrap_or(segment);
    let mut out: Vec<&'static str> = all()
        .iter()
        .filter(|a| {
            a.entity.index == entity.index
                && a.entity.version != entity.version
                && a.binding == Binding::Collection
                && a.name.eq_ignore_ascii_case(name)
        })
        .map(|a| a.entity.version)
        .collect();
    out.dedup();
    out
}

/// The actions bound to `entity` (or a collection of it) with this binding.
pub fn of(
    entity: &'static EntityType,
    binding: Binding,
) -> impl Iterator<Item = &'static BoundAction> {
    all()
        .iter()
        .filter(move |a| a.entity == entity && a.binding == binding)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set(name: &str) -> &'static EntityType {
        catalog::catalog().set(name).unwrap()
    }

    #[test]
    fn every_bound_action_of_the_metadata_resolves() {
        let all = load().unwrap();
        assert_eq!(all.len(), 6);
        for entity in catalog::catalog().sets() {
            let names: Vec<&str> = all
                .iter()
                .filter(|a| a.entity == *entity)
                .map(|a| a.name)
                .collect();
            assert_eq!(names, entity.actions, "{}", entity.collection);
        }
    }

    #[test]
    fn entries_that_do_not_fit_the_metadata_are_refused() {
        let ti = set("tiIndicators");
        let registry = &catalog::catalog().registry;
        let def = |name: &str| {
            registry
                .actions_of(registry.entity_set("tiIndicators").unwrap())
                .find(|a| a.name == name)
                .unwrap()
        };
        let entry = |v: serde_json::Value| -> Entry { serde_json::from_value(v).unwrap() };
        for (action, e, needle) in [
            (
                "deleteTiIndicators",
                json!({"effect": "create"}),
                "does not fit",
            ),
            (
                "submitTiIndicators",
                json!({"effect": "delete"}),
                "does not fit",
            ),
            (
                "submitTiIndicators",
                json!({"effect": "set", "body": {}}),
                "does not fit",
            ),
            (
                "updateTiIndicators",
                json!({"effect": "update", "required": ["nope"]}),
                "'nope'",
            ),
            (
                "deleteTiIndicatorsByExternalId",
                json!({"effect": "deleteBy"}),
                "'property'",
            ),
            (
                "deleteTiIndicatorsByExternalId",
                json!({"effect": "deleteBy", "property": "confidence"}),
                "Edm.String",
            ),
            (
                "deleteTiIndicators",
                json!({"effect": "explode"}),
                "unknown effect",
            ),
        ] {
            let err = resolve_one(ti, def(action), &entry(e.clone())).unwrap_err();
            assert!(err.contains(needle), "{action} {e}: {err}");
        }
    }

    #[test]
    fn shapes_follow_the_signatures() {
        let ti = set("tiIndicators");
        let submit = find(ti, Binding::Collection, "submitTiIndicators").unwrap();
        assert_eq!(submit.effect, Effect::Create);
        assert_eq!(submit.returns, Returns::Entities);
        assert_eq!(
            submit.parameter,
            Some(Parameter {
                name: "value",
                kind: ParamKind::Entities
            })
        );
        let by_ext = find(ti, Binding::Collection, "deleteTiIndicatorsByExternalId").unwrap();
        assert_eq!(
            by_ext.effect,
            Effect::DeleteBy {
                property: ti.index_of("externalId").unwrap()
            }
        );
        assert_eq!(by_ext.returns, Returns::ResultInfo);
        let update = find(ti, Binding::Collection, "updateTiIndicators").unwrap();
        let Effect::Update { required } = update.effect else {
            panic!("{:?}", update.effect)
        };
        let names: Vec<&str> = required.iter().map(|i| ti.properties[*i].name).collect();
        assert_eq!(names, ["id"]);
        let cancel = find(
            set("securityActions"),
            Binding::Entity,
            "microsoft.graph.CANCELSECURITYACTION",
        )
        .unwrap();
        assert_eq!(cancel.returns, Returns::Nothing);
        assert!(cancel.parameter.is_none());
        // Bindings do not mix, and other sets have no such action.
        assert!(find(ti, Binding::Entity, "submitTiIndicators").is_none());
        assert!(find(set("alerts"), Binding::Collection, "submitTiIndicators").is_none());
        assert!(find(ti, Binding::Collection, "microsoft.graphsubmitTiIndicators").is_none());
        assert!(find(ti, Binding::Collection, "graph.submitTiIndicators").is_none());
    }
}
