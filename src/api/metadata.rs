//! `$metadata`: the CSDL XML of exactly what graphsec serves, rendered from the catalog's entity
//! types: their enum and complex types (at any depth), the bound actions of the served sets, and
//! each type's capability and deprecation annotations. The output is deterministic (declaration
//! order) so a committed golden file can be re-derived; the strict CSDL reader reads it back in
//! a unit test and finds what Graph's metadata says.

use crate::model::csdl::registry::Registry;
use crate::model::edm::{ComplexType, EdmType, EnumType};
use crate::model::entity::{EntityType, Managed, NAMESPACE};

/// The alias Graph's own metadata gives its namespace.
const ALIAS: &str = "graph";
/// The container Graph's metadata declares.
pub const CONTAINER: &str = "GraphService";

/// Escapes text for an XML attribute value.
fn attr(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A type as CSDL spells it within the schema (qualified with the namespace's alias).
fn type_name(ty: &EdmType) -> String {
    ty.csdl_name()
        .replace(&format!("{NAMESPACE}."), &format!("{ALIAS}."))
}

/// The enum and complex types the entity types use, each once, in first-use order.
fn used_types(entities: &[&EntityType]) -> (Vec<&'static EnumType>, Vec<&'static ComplexType>) {
    let mut enums: Vec<&'static EnumType> = Vec::new();
    let mut complex: Vec<&'static ComplexType> = Vec::new();
    fn walk(
        ty: &EdmType,
        enums: &mut Vec<&'static EnumType>,
        complex: &mut Vec<&'static ComplexType>,
    ) {
        match ty {
            EdmType::Enum(e) if !enums.iter().any(|x| x.name == e.name) => enums.push(e),
            EdmType::Complex(c) if !complex.iter().any(|x| x.name == c.name) => {
                complex.push(c);
                for m in c.members {
                    walk(&m.ty, enums, complex);
                }
            }
            EdmType::Collection(elem) => walk(elem, enums, complex),
            _ => {}
        }
    }
    for p in entities.iter().flat_map(|e| e.declared()) {
        walk(&p.ty, &mut enums, &mut complex);
    }
    (enums, complex)
}

/// The capability annotations for one entity type: the query options graphsec's engine serves
/// for every type, and the properties the table marks as not filterable or not sortable.
fn capabilities(out: &mut String, e: &EntityType) {
    let record = |out: &mut String, term: &str, body: &str| {
        out.push_str(&format!(
            "        <Annotation Term=\"Org.OData.Capabilities.V1.{term}\">\n          <Record>\n{body}          </Record>\n        </Annotation>\n"
        ));
    };
    let flag = |property: &str, value: bool| {
        format!("            <PropertyValue Property=\"{property}\" Bool=\"{value}\" />\n")
    };
    let paths = |property: &str, names: Vec<&str>| {
        if names.is_empty() {
            return String::new();
        }
        let mut s = format!(
            "            <PropertyValue Property=\"{property}\">\n              <Collection>\n"
        );
        for n in names {
            s.push_str(&format!(
                "                <PropertyPath>{}</PropertyPath>\n",
                attr(n)
            ));
        }
        s.push_str("              </Collection>\n            </PropertyValue>\n");
        s
    };
    let not = |f: fn(&crate::model::entity::Property) -> bool| {
        e.declared()
            .filter(|p| !f(p))
            .map(|p| p.name)
            .collect::<Vec<_>>()
    };
    let caps = &e.capabilities;
    record(out, "CountRestrictions", &flag("Countable", caps.countable));
    let filterable = caps.filterable && e.declared().any(|p| p.filterable);
    record(
        out,
        "FilterRestrictions",
        &format!(
            "{}{}",
            flag("Filterable", filterable),
            if filterable {
                paths("NonFilterableProperties", not(|p| p.filterable))
            } else {
                String::new()
            }
        ),
    );
    record(out, "SelectSupport", &flag("Supported", caps.select));
    out.push_str(&format!(
        "        <Annotation Term=\"Org.OData.Capabilities.V1.SkipSupported\" Bool=\"{}\" />\n",
        caps.skip
    ));
    let sortable = caps.sortable && e.declared().any(|p| p.sortable);
    record(
        out,
        "SortRestrictions",
        &format!(
            "{}{}",
            flag("Sortable", sortable),
            if sortable {
                paths("NonSortableProperties", not(|p| p.sortable))
            } else {
                String::new()
            }
        ),
    );
    out.push_str(&format!(
        "        <Annotation Term=\"Org.OData.Capabilities.V1.TopSupported\" Bool=\"{}\" />\n",
        caps.top
    ));
    // Graph's metadata states no insert/update/delete restriction for the family; say one only
    // where the catalog has it.
    for (term, property, allowed) in [
        ("InsertRestrictions", "Insertable", caps.insertable),
        ("UpdateRestrictions", "Updatable", caps.updatable),
        ("DeleteRestrictions", "Deletable", caps.deletable),
    ] {
        if !allowed {
            record(out, term, &flag(property, false));
        }
    }
}

/// The Org.OData.Core.V1.Revisions annotation of a deprecated entity type, as Graph writes it.
fn revisions(out: &mut String, e: &EntityType) {
    let Some(d) = &e.deprecation else {
        return;
    };
    out.push_str("        <Annotation Term=\"Org.OData.Core.V1.Revisions\">\n          <Collection>\n            <Record>\n");
    let value = |out: &mut String, property: &str, kind: &str, v: Option<&str>| {
        if let Some(v) = v {
            out.push_str(&format!(
                "              <PropertyValue Property=\"{property}\" {kind}=\"{}\" />\n",
                attr(v)
            ));
        }
    };
    value(out, "Date", "Date", d.date);
    value(out, "Description", "String", d.description);
    out.push_str("              <PropertyValue Property=\"Kind\">\n                <EnumMember>Org.OData.Core.V1.RevisionKind/Deprecated</EnumMember>\n              </PropertyValue>\n");
    value(out, "RemovalDate", "Date", d.removal_date);
    value(out, "Version", "String", d.version);
    out.push_str("            </Record>\n          </Collection>\n        </Annotation>\n");
}

/// The bound actions of the served sets (CSDL XML §12), as the version's metadata (`registry`)
/// declares them.
fn actions(out: &mut String, registry: &Registry, entities: &[&EntityType]) {
    let ns = format!("{NAMESPACE}.");
    let alias = format!("{ALIAS}.");
    let mut seen: Vec<&str> = Vec::new();
    for e in entities {
        let Some(set) = registry.entity_set(e.collection) else {
            continue;
        };
        for a in registry.actions_of(set) {
            if seen.contains(&a.name.as_str()) {
                continue;
            }
            seen.push(&a.name);
            out.push_str(&format!(
                "      <Action Name=\"{}\"{}>\n",
                attr(&a.name),
                if a.is_bound { " IsBound=\"true\"" } else { "" }
            ));
            for p in &a.parameters {
                out.push_str(&format!(
                    "        <Parameter Name=\"{}\" Type=\"{}\"{}{} />\n",
                    attr(&p.name),
                    attr(&p.ty.csdl_name().replace(&ns, &alias)),
                    if p.nullable {
                        ""
                    } else {
                        " Nullable=\"false\""
                    },
                    match p.unicode {
                        Some(u) => format!(" Unicode=\"{u}\""),
                        None => String::new(),
                    }
                ));
            }
            if let Some(r) = &a.return_type {
                out.push_str(&format!(
                    "        <ReturnType Type=\"{}\" />\n",
                    attr(&r.csdl_name().replace(&ns, &alias))
                ));
            }
            out.push_str("      </Action>\n");
        }
    }
}

/// Renders the CSDL XML document for `entities` (all contained in their singletons) of the
/// version whose metadata is `registry`.
pub fn render(registry: &Registry, entities: &[&EntityType]) -> String {
    let mut out = String::new();
    out.push_str("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
    out.push_str(
        "<edmx:Edmx Version=\"4.0\" xmlns:edmx=\"http://docs.oasis-open.org/odata/ns/edmx\">\n",
    );
    for (vocabulary, alias) in [("Core", "Core"), ("Capabilities", "Capabilities")] {
        out.push_str(&format!(
            "  <edmx:Reference Uri=\"https://oasis-tcs.github.io/odata-vocabularies/vocabularies/Org.OData.{vocabulary}.V1.xml\">\n    <edmx:Include Namespace=\"Org.OData.{vocabulary}.V1\" Alias=\"{alias}\" />\n  </edmx:Reference>\n"
        ));
    }
    out.push_str("  <edmx:DataServices>\n");
    out.push_str(&format!(
        "    <Schema Namespace=\"{NAMESPACE}\" Alias=\"{ALIAS}\" xmlns=\"http://docs.oasis-open.org/odata/ns/edm\">\n"
    ));
    let (enums, complex) = used_types(entities);
    for en in enums {
        out.push_str(&format!("      <EnumType Name=\"{}\">\n", attr(en.name)));
        for (name, value) in en.members {
            out.push_str(&format!(
                "        <Member Name=\"{}\" Value=\"{value}\" />\n",
                attr(name)
            ));
        }
        out.push_str("      </EnumType>\n");
    }
    for c in complex {
        out.push_str(&format!(
            "      <ComplexType Name=\"{}\"{}>\n",
            attr(c.name),
            if c.open { " OpenType=\"true\"" } else { "" }
        ));
        for m in c.members {
            out.push_str(&format!(
                "        <Property Name=\"{}\" Type=\"{}\"{} />\n",
                attr(m.name),
                type_name(&m.ty),
                if m.nullable {
                    ""
                } else {
                    " Nullable=\"false\""
                }
            ));
        }
        out.push_str("      </ComplexType>\n");
    }
    // The abstract base type that declares the key, as Graph's `microsoft.graph.entity` does.
    let mut bases: Vec<&str> = Vec::new();
    for e in entities {
        if bases.contains(&e.base_type) {
            continue;
        }
        bases.push(e.base_type);
        let key = &e.properties[e.key_index()];
        let base = e.base_type.rsplit('.').next().unwrap_or(e.base_type);
        out.push_str(&format!(
            "      <EntityType Name=\"{}\" Abstract=\"true\">\n        <Key>\n          <PropertyRef Name=\"{}\" />\n        </Key>\n        <Property Name=\"{}\" Type=\"{}\" Nullable=\"false\" />\n      </EntityType>\n",
            attr(base),
            attr(key.name),
            attr(key.name),
            type_name(&key.ty)
        ));
    }
    for e in entities {
        let base = e
            .base_type
            .replace(&format!("{NAMESPACE}."), &format!("{ALIAS}."));
        out.push_str(&format!(
            "      <EntityType Name=\"{}\" BaseType=\"{}\"{}>\n",
            attr(e.name),
            attr(&base),
            if e.open { " OpenType=\"true\"" } else { "" }
        ));
        for p in e.declared().filter(|p| p.managed != Managed::Key) {
            out.push_str(&format!(
                "        <Property Name=\"{}\" Type=\"{}\"{} />\n",
                attr(p.name),
                type_name(&p.ty),
                if p.nullable {
                    ""
                } else {
                    " Nullable=\"false\""
                }
            ));
        }
        out.push_str("      </EntityType>\n");
    }
    // Each singleton is an entity type whose contained navigation properties are the sets.
    let mut singletons: Vec<&str> = Vec::new();
    for e in entities {
        if !singletons.contains(&e.singleton) {
            singletons.push(e.singleton);
        }
    }
    for s in &singletons {
        out.push_str(&format!("      <EntityType Name=\"{}\">\n", attr(s)));
        for e in entities.iter().filter(|e| e.singleton == *s) {
            out.push_str(&format!(
                "        <NavigationProperty Name=\"{}\" Type=\"Collection({ALIAS}.{})\" ContainsTarget=\"true\" />\n",
                attr(e.collection),
                attr(e.name)
            ));
        }
        out.push_str("      </EntityType>\n");
    }
    actions(&mut out, registry, entities);
    out.push_str(&format!("      <EntityContainer Name=\"{CONTAINER}\">\n"));
    for s in &singletons {
        out.push_str(&format!(
            "        <Singleton Name=\"{}\" Type=\"{ALIAS}.{}\" />\n",
            attr(s),
            attr(s)
        ));
    }
    out.push_str("      </EntityContainer>\n");
    for e in entities {
        out.push_str(&format!(
            "      <Annotations Target=\"{}\">\n",
            attr(&e.qualified_name())
        ));
        capabilities(&mut out, e);
        revisions(&mut out, e);
        out.push_str("      </Annotations>\n");
    }
    out.push_str("    </Schema>\n  </edmx:DataServices>\n</edmx:Edmx>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_property_and_member_is_declared() {
        let e = crate::model::catalog()
            .set("cloudAppSecurityProfiles")
            .unwrap();
        let xml = render(&crate::model::catalog().registry, &[e]);
        for p in e.properties {
            assert!(xml.contains(&format!("Name=\"{}\"", p.name)), "{}", p.name);
        }
        assert!(xml.contains("OpenType=\"true\""));
        assert!(xml.contains("ContainsTarget=\"true\""));
        assert!(xml.contains("<PropertyPath>tags</PropertyPath>"));
    }
}
