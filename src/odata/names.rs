//! OData's case rules (CONTRACT §4 "Case"), written once; every query option resolves names
//! and keywords through here.
//!
//! - A *name* (property, complex member, enum member) means the declared one spelled exactly
//!   so, else the one declared name equal to it ignoring case; when several differ only in case
//!   and none matches exactly, nothing is resolved (and an open type falls back to a dynamic
//!   property). Graph resolves names this way on its main services.
//! - *Keywords* (operators, function names, `asc`/`desc`, `true`/`false`/`null`, `any`/`all`,
//!   system query option names) are case-insensitive, as OData 4.01 requires.
//!
//! String *values* are never folded: they compare ordinally everywhere.

use crate::model::edm::{ComplexType, EnumType, Member};
use crate::model::entity::{EntityType, Property};

/// The index of the item named `name` under the case rule.
pub fn resolve<T>(items: &[T], name: &str, name_of: impl Fn(&T) -> &str) -> Option<usize> {
    if let Some(i) = items.iter().position(|it| name_of(it) == name) {
        return Some(i);
    }
    let mut folded = items
        .iter()
        .enumerate()
        .filter(|(_, it)| name_of(it).eq_ignore_ascii_case(name))
        .map(|(i, _)| i);
    match (folded.next(), folded.next()) {
        (Some(i), None) => Some(i),
        _ => None,
    }
}

/// A property `entity`'s version declares, named in a query. A property of the set's storage
/// layout that this version does not declare is not a name here (its empty name never matches:
/// a query name is never empty).
pub fn property(entity: &'static EntityType, name: &str) -> Option<&'static Property> {
    resolve(entity.properties, name, |p| {
        if p.declared { p.name } else { "" }
    })
    .and_then(|i| entity.properties.get(i))
}

/// A member of a complex type named in a query.
pub fn member(ty: &'static ComplexType, name: &str) -> Option<&'static Member> {
    resolve(ty.members, name, |m| m.name).and_then(|i| ty.members.get(i))
}

/// An enum member named in a query: its declared name and underlying value.
pub fn enum_member(ty: &EnumType, name: &str) -> Option<(&'static str, i64)> {
    resolve(ty.members, name, |(n, _)| n).and_then(|i| ty.members.get(i).copied())
}

/// A keyword in its canonical (lowercase) spelling, for matching against the grammar's words.
pub fn keyword(word: &str) -> String {
    word.to_ascii_lowercase()
}

/// Is `word` the keyword (or qualified type name) `kw`, ignoring case?
pub fn is_keyword(word: &str, kw: &str) -> bool {
    word.eq_ignore_ascii_case(kw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::edm::EdmType;

    #[test]
    fn exact_first_then_the_one_equal_ignoring_case() {
        let items = ["name", "Name", "riskScore"];
        let r = |n| resolve(&items, n, |s| s);
        assert_eq!(r("Name"), Some(1), "exact wins");
        assert_eq!(r("name"), Some(0));
        assert_eq!(r("NAME"), None, "ambiguous ignoring case");
        assert_eq!(r("RISKSCORE"), Some(2));
        assert_eq!(r("risk"), None);
    }

    #[test]
    fn table_names_resolve_in_any_case() {
        let e = crate::model::catalog()
            .set("cloudAppSecurityProfiles")
            .unwrap();
        assert_eq!(property(e, "RiskScore").map(|p| p.name), Some("riskScore"));
        assert!(property(e, "custom").is_none());
        let EdmType::Complex(vendor) = e.property("vendorInformation").unwrap().ty else {
            panic!("complex");
        };
        assert_eq!(member(vendor, "PROVIDER").map(|m| m.name), Some("provider"));
        let EdmType::Enum(perm) = e.property("permissionsRequired").unwrap().ty else {
            panic!("enum");
        };
        assert_eq!(
            enum_member(perm, "Administrator"),
            Some(("administrator", 4))
        );
        assert!(is_keyword("DESC", "desc") && keyword("Eq") == "eq");
    }
}
