//! The system query options of a list request, from the decoded query string: [`ListQuery`].
//!
//! Names are case-insensitive and the `$` is optional (`filter` = `$FILTER` = `$filter`), as on
//! Graph beta. An option given twice, an unknown or unsupported `$option`, or a bad value is a
//! [`QueryError`] (HTTP 400); parameters without `$` that are not system options are ignored
//! (they are the client's own). Everything is checked against the entity table.

use super::QueryError;
use super::names;
use super::typecheck::{TypedFilter, parse_and_check_with};
use crate::model::edm::{EdmType, Member};
use crate::model::entity::{EntityType, Property};

/// Largest `$top` (Graph's page size cap for this family).
pub const MAX_TOP: u32 = 1000;
/// Most `$orderby` keys; each key adds a term to the keyset predicate (quadratic in keys).
pub const MAX_ORDER_KEYS: usize = 8;
/// Most `$select` items.
pub const MAX_SELECT_ITEMS: usize = 100;

/// A column `$orderby` can sort on.
#[derive(Debug, Clone, Copy)]
pub enum SortTarget {
    /// A declared primitive or enum property.
    Property(&'static Property),
    /// A member of a declared complex property (`vendorInformation/provider`).
    Member(&'static Property, &'static Member),
}

impl SortTarget {
    /// The path as the client writes it.
    pub fn path(&self) -> String {
        match self {
            SortTarget::Property(p) => p.name.to_string(),
            SortTarget::Member(p, m) => format!("{}/{}", p.name, m.name),
        }
    }

    fn same(&self, other: &SortTarget) -> bool {
        self.path() == other.path()
    }
}

/// One `$orderby` key.
#[derive(Debug, Clone, Copy)]
pub struct OrderKey {
    pub target: SortTarget,
    pub descending: bool,
}

/// One `$select` item.
#[derive(Debug, Clone)]
pub enum SelectItem {
    /// A declared property (a complex property is selected as a whole).
    Declared(&'static Property),
    /// A dynamic property of the open type.
    Dynamic(String),
}

/// A parsed `$select`.
#[derive(Debug, Clone)]
pub struct Select {
    /// The entity set selected from.
    pub entity: &'static EntityType,
    /// Items as the client wrote them (duplicates removed), for `@odata.context`:
    /// `...#security/cloudAppSecurityProfiles(name,riskScore)`.
    pub items: Vec<SelectItem>,
}

impl Select {
    /// Whether the declared property at this table index is returned (`id` always is).
    pub fn includes_declared(&self, index: usize) -> bool {
        index == self.entity.key_index()
            || self.items.iter().any(|i| {
                matches!(i, SelectItem::Declared(p) if self.entity.index_of(p.name) == Some(index))
            })
    }

    /// Whether the dynamic property with this name is returned.
    pub fn includes_dynamic(&self, name: &str) -> bool {
        self.items
            .iter()
            .any(|i| matches!(i, SelectItem::Dynamic(n) if n == name))
    }

    /// The comma list for `@odata.context`, e.g. `name,riskScore`.
    pub fn context_list(&self) -> String {
        self.items
            .iter()
            .map(|i| match i {
                SelectItem::Declared(p) => p.name,
                SelectItem::Dynamic(n) => n.as_str(),
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// The system query options of a list request.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub filter: Option<TypedFilter>,
    /// None: every property (no `$select`, or `$select=*`).
    pub select: Option<Select>,
    /// The client's keys; the store appends `id` as the tie-breaker.
    pub order_by: Vec<OrderKey>,
    pub top: Option<u32>,
    pub skip: Option<u64>,
    pub count: bool,
    /// Opaque; verified by the caller.
    pub skiptoken: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opt {
    Filter,
    Select,
    OrderBy,
    Top,
    Skip,
    Count,
    SkipToken,
    Expand,
    Search,
}

const OPTIONS: &[(&str, Opt)] = &[
    ("filter", Opt::Filter),
    ("select", Opt::Select),
    ("orderby", Opt::OrderBy),
    ("top", Opt::Top),
    ("skip", Opt::Skip),
    ("count", Opt::Count),
    ("skiptoken", Opt::SkipToken),
    ("expand", Opt::Expand),
    ("search", Opt::Search),
];

/// Parses the system query options of a request to `entity`'s set from decoded
/// `(name, value)` pairs, in request order.
pub fn parse_list_query(
    entity: &'static EntityType,
    params: &[(String, String)],
) -> Result<ListQuery, QueryError> {
    parse_list_query_with(entity, params, false)
}

/// [`parse_list_query`]; with `strict` (`--strict-properties`) a name that is no declared
/// property is a 400 in `$filter`, `$select` and `$orderby`, naming the closest declared ones,
/// instead of a dynamic property of the open type.
pub fn parse_list_query_with(
    entity: &'static EntityType,
    params: &[(String, String)],
    strict: bool,
) -> Result<ListQuery, QueryError> {
    let mut seen: Vec<(Opt, &str)> = Vec::new();
    let mut out = ListQuery::default();
    for (raw_name, value) in params {
        // U+0000 has no place in a query, and PostgreSQL cannot even bind it: refused here, on
        // every store alike.
        if value.contains('\0') || raw_name.contains('\0') {
            return Err(QueryError::new(format!(
                "The query option '{}' contains the character U+0000 (%00), which is not supported.",
                super::parser::shorten(&raw_name.replace('\0', "\\u0000"))
            )));
        }
        let lower = raw_name.to_ascii_lowercase();
        let (has_dollar, bare) = match lower.strip_prefix('$') {
            Some(rest) => (true, rest),
            None => (false, lower.as_str()),
        };
        let Some(opt) = OPTIONS.iter().find(|(n, _)| *n == bare).map(|(_, o)| *o) else {
            if has_dollar {
                return Err(QueryError::new(format!(
                    "The query option '{}' is not supported. Supported options: $filter, $select, $orderby, $top, $skip, $count.",
                    super::parser::shorten(raw_name)
                )));
            }
            continue;
        };
        if let Some((_, first)) = seen.iter().find(|(o, _)| *o == opt) {
            return Err(QueryError::new(format!(
                "The query option '{}' is specified more than once (also as '{}').",
                super::parser::shorten(raw_name),
                super::parser::shorten(first)
            )));
        }
        seen.push((opt, raw_name.as_str()));
        refuse_by_capability(entity, opt, raw_name)?;
        match opt {
            Opt::Filter => out.filter = Some(parse_and_check_with(entity, value, strict)?),
            Opt::Select => out.select = parse_select(entity, value, strict)?,
            Opt::OrderBy => out.order_by = parse_order_by(entity, value, strict)?,
            Opt::Top => out.top = Some(parse_top(entity, value)?),
            Opt::Skip => out.skip = Some(parse_skip(entity, value)?),
            Opt::Count => out.count = parse_count(value)?,
            Opt::SkipToken => {
                if value.is_empty() {
                    return Err(QueryError::new("The '$skiptoken' is empty."));
                }
                out.skiptoken = Some(value.clone());
            }
            Opt::Expand => {
                return Err(QueryError::new(format!(
                    "The query option '$expand' is not supported: {} has no navigation properties to expand.",
                    entity.qualified_name()
                )));
            }
            Opt::Search => {
                return Err(QueryError::new(format!(
                    "The query option '$search' is not supported: the {} collection is not searchable; use $filter.",
                    entity.collection
                )));
            }
        }
    }
    Ok(out)
}

/// The order of a list that names no `$orderby`: the set's documented one (secure scores:
/// newest first, [`crate::model::entity::Rules::default_order`]), else none (by id).
pub fn default_order(entity: &'static EntityType) -> Result<Vec<OrderKey>, QueryError> {
    match entity.rules.default_order {
        Some(order) => parse_order_by(entity, order, false),
        None => Ok(Vec::new()),
    }
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || c == '_')
        && s.chars().count() <= super::parser::MAX_IDENTIFIER_CHARS
}

fn parse_select(
    entity: &'static EntityType,
    value: &str,
    strict: bool,
) -> Result<Option<Select>, QueryError> {
    let mut items: Vec<SelectItem> = Vec::new();
    let parts: Vec<&str> = value.split(',').map(str::trim).collect();
    if parts.len() > MAX_SELECT_ITEMS {
        return Err(QueryError::new(format!(
            "The '$select' has more than {MAX_SELECT_ITEMS} items."
        )));
    }
    let mut star = false;
    for part in parts {
        let shown = super::parser::shorten(part);
        if part.is_empty() {
            return Err(QueryError::new("The '$select' has an empty item."));
        }
        if part == "*" {
            star = true;
            continue;
        }
        if part.contains('/') {
            let head = part.split('/').next().unwrap_or("");
            return Err(QueryError::new(
                match names::property(entity, head).map(|p| p.ty) {
                    Some(EdmType::Complex(_)) => format!(
                        "The '$select' item '{shown}' selects a member of a complex property; select '{head}' as a whole."
                    ),
                    _ => format!("The '$select' item '{shown}' is not a property name."),
                },
            ));
        }
        let item = match names::property(entity, part) {
            Some(p) => SelectItem::Declared(p),
            None if entity.open && !strict && is_identifier(part) => {
                SelectItem::Dynamic(part.to_string())
            }
            None if is_identifier(part) => {
                return Err(QueryError::new(format!(
                    "The '$select' item {}.",
                    names::unknown_property(entity, part, strict)
                )));
            }
            None => {
                return Err(QueryError::new(format!(
                    "The '$select' item '{shown}' is not a property name."
                )));
            }
        };
        let dup = items.iter().any(|i| match (i, &item) {
            (SelectItem::Declared(a), SelectItem::Declared(b)) => a.name == b.name,
            (SelectItem::Dynamic(a), SelectItem::Dynamic(b)) => a == b,
            _ => false,
        });
        if !dup {
            items.push(item);
        }
    }
    Ok(if star {
        None
    } else {
        Some(Select { entity, items })
    })
}

fn parse_order_by(
    entity: &'static EntityType,
    value: &str,
    strict: bool,
) -> Result<Vec<OrderKey>, QueryError> {
    let mut keys: Vec<OrderKey> = Vec::new();
    for part in value.split(',') {
        let words: Vec<&str> = part.split_whitespace().collect();
        let shown = super::parser::shorten(part.trim());
        let (path, descending) = match words.as_slice() {
            [path] => (*path, false),
            [path, dir] if names::is_keyword(dir, "asc") => (*path, false),
            [path, dir] if names::is_keyword(dir, "desc") => (*path, true),
            [] => return Err(QueryError::new("The '$orderby' has an empty item.")),
            _ => {
                return Err(QueryError::new(format!(
                    "The '$orderby' item '{shown}' is not valid: expected a property path optionally followed by 'asc' or 'desc'."
                )));
            }
        };
        let target = sort_target(entity, path, &shown, strict)?;
        if keys.iter().any(|k| k.target.same(&target)) {
            return Err(QueryError::new(format!(
                "The '$orderby' names '{}' more than once.",
                target.path()
            )));
        }
        keys.push(OrderKey { target, descending });
        if keys.len() > MAX_ORDER_KEYS {
            return Err(QueryError::new(format!(
                "The '$orderby' has more than {MAX_ORDER_KEYS} keys."
            )));
        }
    }
    Ok(keys)
}

fn sort_target(
    entity: &'static EntityType,
    path: &str,
    shown: &str,
    strict: bool,
) -> Result<SortTarget, QueryError> {
    let mut segments = path.split('/');
    let head = segments.next().unwrap_or("");
    let member = segments.next();
    let extra = segments.next();
    let Some(prop) = names::property(entity, head) else {
        let why = if entity.open && !strict && is_identifier(head) {
            "dynamic properties cannot be used in $orderby".to_owned()
        } else if is_identifier(head) {
            names::unknown_property(entity, head, strict)
        } else {
            "it is not a property path".to_owned()
        };
        return Err(QueryError::new(format!(
            "The '$orderby' item '{shown}' is not sortable: {why}."
        )));
    };
    if !prop.sortable {
        return Err(QueryError::new(format!(
            "The '$orderby' item '{shown}' is not sortable: '{}' is {}.",
            prop.name,
            prop.ty.csdl_name()
        )));
    }
    match (prop.ty, member, extra) {
        (EdmType::Primitive(_) | EdmType::Enum(_), None, _) => Ok(SortTarget::Property(prop)),
        (EdmType::Complex(c), Some(_), None) if !c.is_flat() => Err(QueryError::new(format!(
            "The '$orderby' item '{shown}' is not sortable: '{}' is stored as one JSON value (nested or open complex type); only members of closed complex values of primitives sort.",
            prop.name
        ))),
        (EdmType::Complex(c), Some(m), None) => names::member(c, m)
            .map(|m| SortTarget::Member(prop, m))
            .ok_or_else(|| {
                QueryError::new(format!(
                    "The '$orderby' item '{shown}' is not valid: '{}' has no member '{}'.",
                    prop.name,
                    super::parser::shorten(m)
                ))
            }),
        (EdmType::Complex(_), None, _) => Err(QueryError::new(format!(
            "The '$orderby' item '{shown}' is not sortable: order by a member such as '{}/<member>'.",
            prop.name
        ))),
        (EdmType::Collection(_), _, _) => Err(QueryError::new(format!(
            "The '$orderby' item '{shown}' is not sortable: '{}' is a collection.",
            prop.name
        ))),
        _ => Err(QueryError::new(format!(
            "The '$orderby' item '{shown}' is not a valid property path."
        ))),
    }
}

/// The largest `$top` of the set: Graph's documented limit for it (the overlay's `maxTop`, e.g.
/// 1000 on alerts), never above graphsec's own page cap.
pub fn max_top(entity: &EntityType) -> u32 {
    entity.rules.max_top.map_or(MAX_TOP, |m| m.min(MAX_TOP))
}

fn parse_top(entity: &EntityType, value: &str) -> Result<u32, QueryError> {
    let max = max_top(entity);
    match value.trim().parse::<u32>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(QueryError::new(format!(
            "The '$top' value '{}' is not valid: expected an integer from 1 to {max}.",
            super::parser::shorten(value)
        ))),
    }
}

/// A query option the set's capability annotations switch off (Org.OData.Capabilities.V1:
/// FilterRestrictions, SortRestrictions, SelectSupport, TopSupported, SkipSupported,
/// CountRestrictions) is refused, naming the set.
fn refuse_by_capability(entity: &EntityType, opt: Opt, raw_name: &str) -> Result<(), QueryError> {
    let caps = &entity.capabilities;
    let supported = match opt {
        Opt::Filter => caps.filterable,
        Opt::OrderBy => caps.sortable,
        Opt::Select => caps.select,
        Opt::Top => caps.top,
        Opt::Skip => caps.skip,
        Opt::Count => caps.countable,
        Opt::SkipToken | Opt::Expand | Opt::Search => true,
    };
    if supported {
        Ok(())
    } else {
        Err(QueryError::new(format!(
            "The query option '{}' is not supported on '{}'.",
            super::parser::shorten(raw_name),
            entity.collection
        )))
    }
}

fn parse_skip(entity: &EntityType, value: &str) -> Result<u64, QueryError> {
    // Capped at i64::MAX so it always fits a SQL OFFSET.
    match value.trim().parse::<u64>() {
        Ok(n) if entity.rules.max_skip.is_some_and(|max| n > max) => Err(QueryError::new(format!(
            "The '$skip' value '{n}' is not valid: '{}' accepts at most {}.",
            entity.collection,
            entity.rules.max_skip.unwrap_or_default()
        ))),
        Ok(n) if i64::try_from(n).is_ok() => Ok(n),
        _ => Err(QueryError::new(format!(
            "The '$skip' value '{}' is not valid: expected a non-negative integer.",
            super::parser::shorten(value)
        ))),
    }
}

fn parse_count(value: &str) -> Result<bool, QueryError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(QueryError::new(format!(
            "The '$count' value '{}' is not valid: expected true or false.",
            super::parser::shorten(value)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profiles() -> &'static EntityType {
        crate::model::catalog()
            .set("cloudAppSecurityProfiles")
            .unwrap()
    }

    fn q(pairs: &[(&str, &str)]) -> Result<ListQuery, String> {
        let owned: Vec<(String, String)> = pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        parse_list_query(profiles(), &owned).map_err(|e| e.message)
    }

    fn err(pairs: &[(&str, &str)]) -> String {
        match q(pairs) {
            Ok(v) => panic!("{pairs:?} accepted: {v:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn names_are_case_insensitive_and_the_dollar_is_optional() {
        for name in ["$filter", "filter", "$FILTER", "Filter"] {
            assert!(
                q(&[(name, "name eq 'a'")]).unwrap().filter.is_some(),
                "{name}"
            );
        }
        let all = q(&[
            ("$top", "10"),
            ("skip", "5"),
            ("$Count", "true"),
            ("$orderby", "name desc,vendorInformation/provider"),
            ("$select", "name,riskScore"),
            ("$skiptoken", "opaque"),
            ("api-version", "ignored"),
            ("custom", "ignored"),
            ("format", "ignored without a dollar"),
        ])
        .unwrap();
        assert_eq!(all.top, Some(10));
        assert_eq!(all.skip, Some(5));
        assert!(all.count);
        assert_eq!(all.order_by.len(), 2);
        assert!(all.order_by[0].descending && !all.order_by[1].descending);
        assert_eq!(all.order_by[1].target.path(), "vendorInformation/provider");
        assert_eq!(all.skiptoken.as_deref(), Some("opaque"));
        assert_eq!(all.select.unwrap().context_list(), "name,riskScore");
        let none = q(&[]).unwrap();
        assert!(
            none.filter.is_none()
                && none.select.is_none()
                && none.order_by.is_empty()
                && !none.count
        );
    }

    #[test]
    fn refuses_repeats_unknown_and_unsupported_options() {
        assert!(
            err(&[("$filter", "isSigned"), ("filter", "isSigned")])
                .contains("'filter' is specified more than once (also as '$filter')")
        );
        assert!(err(&[("$top", "1"), ("$TOP", "2")]).contains("more than once"));
        assert!(err(&[("$expand", "x")]).contains("'$expand' is not supported: microsoft.graph.cloudAppSecurityProfile has no navigation properties"));
        assert!(err(&[("expand", "x")]).contains("'$expand' is not supported"));
        assert!(err(&[("$search", "x")]).contains("not searchable"));
        assert!(
            err(&[("$format", "json")]).contains("The query option '$format' is not supported")
        );
        assert!(err(&[("$apply", "x")]).contains("'$apply'"));
        assert!(
            err(&[("$filter", "isSigned eq 'x'")])
                .starts_with("Type error at position 9 in '$filter'")
        );
    }

    #[test]
    fn top_skip_count_values() {
        assert_eq!(q(&[("$top", "1000")]).unwrap().top, Some(1000));
        for bad in ["0", "1001", "-1", "abc", "", "1.5"] {
            assert!(
                err(&[("$top", bad)]).contains("expected an integer from 1 to 1000"),
                "{bad}"
            );
        }
        assert_eq!(q(&[("$skip", "0")]).unwrap().skip, Some(0));
        for bad in ["-1", "x", "", "9223372036854775808"] {
            assert!(
                err(&[("$skip", bad)]).contains("non-negative integer"),
                "{bad}"
            );
        }
        assert!(!q(&[("$count", "false")]).unwrap().count);
        assert!(q(&[("$count", "TRUE")]).unwrap().count);
        assert!(err(&[("$count", "yes")]).contains("expected true or false"));
        assert!(err(&[("$skiptoken", "")]).contains("empty"));
    }

    #[test]
    fn select_items() {
        let s = q(&[("$select", "name, custom,name,vendorInformation,tags")])
            .unwrap()
            .select
            .unwrap();
        assert_eq!(s.context_list(), "name,custom,vendorInformation,tags");
        let e = profiles();
        assert!(s.includes_declared(e.key_index()), "id always comes back");
        assert!(s.includes_declared(e.index_of("name").unwrap()));
        assert!(!s.includes_declared(e.index_of("riskScore").unwrap()));
        assert!(s.includes_dynamic("custom") && !s.includes_dynamic("other"));
        assert!(q(&[("$select", "*")]).unwrap().select.is_none());
        assert!(
            err(&[("$select", "vendorInformation/provider")])
                .contains("select 'vendorInformation' as a whole")
        );
        assert!(err(&[("$select", "name,")]).contains("empty item"));
        assert!(err(&[("$select", "")]).contains("empty item"));
        assert!(err(&[("$select", "a-b")]).contains("'a-b' is not a property name"));
        assert!(err(&[("$select", "x/y")]).contains("'x/y' is not a property name"));
    }

    #[test]
    fn order_by_items() {
        let keys = q(&[(
            "$orderby",
            "permissionsRequired desc, createdDateTime asc, id",
        )])
        .unwrap()
        .order_by;
        assert_eq!(keys.len(), 3);
        assert!(err(&[("$orderby", "tags")]).contains("'tags' is Collection(Edm.String)"));
        assert!(
            err(&[("$orderby", "vendorInformation")])
                .contains("order by a member such as 'vendorInformation/<member>'")
        );
        assert!(err(&[("$orderby", "vendorInformation/nope")]).contains("has no member 'nope'"));
        assert!(
            err(&[("$orderby", "vendorInformation/provider/x")])
                .contains("not a valid property path")
        );
        assert!(err(&[("$orderby", "name/x")]).contains("not a valid property path"));
        assert!(
            err(&[("$orderby", "custom")])
                .contains("dynamic properties cannot be used in $orderby")
        );
        assert!(
            err(&[("$orderby", "name sideways")])
                .contains("optionally followed by 'asc' or 'desc'")
        );
        assert!(
            err(&[("$orderby", "name DOWN")]).contains("optionally followed by 'asc' or 'desc'")
        );
        // Keywords and names in any case (CONTRACT §4 "Case").
        let o = q(&[("$orderby", "Name DESC,VendorInformation/PROVIDER Asc")]).unwrap();
        assert!(o.order_by[0].descending && !o.order_by[1].descending);
        assert_eq!(o.order_by[1].target.path(), "vendorInformation/provider");
        assert!(err(&[("$orderby", "name,name desc")]).contains("names 'name' more than once"));
        assert!(err(&[("$orderby", "name,")]).contains("empty item"));
        assert!(err(&[("$orderby", "")]).contains("empty item"));
        let many =
            "name,policyName,platform,publisher,riskScore,type,manifest,isSigned,azureTenantId";
        assert!(err(&[("$orderby", many)]).contains("more than 8 keys"));
    }

    #[test]
    fn capability_annotations_and_per_set_top_limits_are_honoured() {
        use crate::model::entity::{Capabilities, Rules};
        let strict: &'static EntityType = Box::leak(Box::new(EntityType {
            capabilities: Capabilities {
                filterable: false,
                sortable: false,
                countable: false,
                ..Capabilities::DEFAULT
            },
            rules: Rules {
                max_top: Some(10),
                ..Rules::NONE
            },
            ..*profiles()
        }));
        let run = |pairs: &[(&str, &str)]| {
            let owned: Vec<(String, String)> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            parse_list_query(strict, &owned).map_err(|e| e.message)
        };
        for (name, value) in [
            ("$filter", "name eq 'a'"),
            ("$orderby", "name"),
            ("$count", "true"),
        ] {
            let e = run(&[(name, value)]).unwrap_err();
            assert!(
                e.contains("not supported on 'cloudAppSecurityProfiles'"),
                "{e}"
            );
        }
        assert!(run(&[("$select", "name")]).is_ok());
        assert_eq!(run(&[("$top", "10")]).unwrap().top, Some(10));
        assert!(run(&[("$top", "11")]).unwrap_err().contains("from 1 to 10"));
    }
}
