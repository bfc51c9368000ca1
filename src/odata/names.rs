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

/// The declared names closest to `name` (case-insensitive Levenshtein distance, then
/// declaration order), at most `n`: what a 400 for an unknown name suggests.
pub fn closest<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
    n: usize,
) -> Vec<&'a str> {
    let target: Vec<char> = name.to_lowercase().chars().collect();
    let mut scored: Vec<(usize, usize, &'a str)> = candidates
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let cand: Vec<char> = c.to_lowercase().chars().collect();
            (edit_distance(&target, &cand), i, c)
        })
        .collect();
    scored.sort();
    scored.into_iter().take(n).map(|(_, _, c)| c).collect()
}

/// `'a', 'b' or 'c'`, for messages.
pub fn quoted_list(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("'{n}'")).collect();
    match quoted.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

/// Levenshtein distance (insertions, deletions, substitutions), two rows of memory. Names are
/// short (bounded by the parser), so the quadratic cost is a few thousand steps at most.
fn edit_distance(a: &[char], b: &[char]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = prev[j] + usize::from(ca != cb);
            cur[j + 1] = substitution.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The message for a name that is no declared property of `entity`, with the closest ones.
pub fn unknown_property(entity: &EntityType, name: &str, strict: bool) -> String {
    let near = closest(name, entity.properties.iter().map(|p| p.name), 3);
    let why = if strict && entity.open {
        " (--strict-properties: undeclared names are refused, not read as dynamic properties)"
    } else {
        ""
    };
    format!(
        "'{}' is not a declared property of {}{why}; the closest declared names are {}",
        super::parser::shorten(name),
        entity.qualified_name(),
        quoted_list(&near)
    )
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
    fn closest_names_by_edit_distance() {
        let names = ["name", "riskScore", "platform", "tags", "publisher"];
        assert_eq!(closest("nmae", names, 2), vec!["name", "tags"]);
        assert_eq!(closest("RISKSCOR", names, 1), vec!["riskScore"]);
        assert_eq!(closest("plattform", names, 1), vec!["platform"]);
        assert_eq!(closest("x", [], 3), Vec::<&str>::new());
        assert_eq!(quoted_list(&["a", "b", "c"]), "'a', 'b' or 'c'");
        assert_eq!(quoted_list(&["a"]), "'a'");
        assert_eq!(edit_distance(&['a', 'b'], &[]), 2);
        let e = crate::model::catalog().set("alerts").unwrap();
        let m = unknown_property(e, "severty", true);
        assert!(
            m.starts_with(
                "'severty' is not a declared property of microsoft.graph.alert (--strict-properties"
            ),
            "{m}"
        );
        assert!(m.contains("'severity'"), "{m}");
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
